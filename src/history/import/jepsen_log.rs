//! Importer for Jepsen log lines, as in Porcupine's `test_data/jepsen/etcd_*.log`.
//!
//! An event line is `<level> jepsen.util - <process> :<type> :<f> <value> [<error>]`,
//! fields separated by tabs or runs of spaces; anything before `jepsen.util` (timestamps,
//! thread names) is ignored, and so are log lines that are not events. The mapping
//! follows how Porcupine reads Jepsen's etcd logs:
//!
//! - `:invoke`/`:ok` carry the value as is (`nil` becomes null).
//! - A `:fail`/`:info` whose value is a keyword (`:timed-out`) carries that keyword as its
//!   error and the invocation's value (`:fail :read :timed-out` is a read that certainly
//!   returned nothing; `:info :write :timed-out` leaves the write open, as Porcupine's
//!   ignoring the line does).
//! - `:fail :cas [a b]` is a cas whose comparison failed: error [`COMPARE_FAILED`], so the
//!   checker keeps it as the observation "the register did not hold a".

use super::super::edn::{Edn, Reader};
use super::super::{HistoryError, Op, OpType, Process, COMPARE_FAILED};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Longest line read; a longer one is an error rather than an unbounded allocation.
const MAX_LINE_BYTES: u64 = 1 << 20;

/// Whether a line is a Jepsen log line (used to sniff the format).
pub(super) fn looks_like_log_line(line: &str) -> bool {
    event_fields(line).is_some()
        || line
            .split_whitespace()
            .next()
            .is_some_and(|w| matches!(w, "INFO" | "WARN" | "DEBUG" | "ERROR" | "TRACE"))
}

/// The fields after `jepsen.util -` (or `jepsen.util:`), if the line has that marker.
fn event_fields(line: &str) -> Option<&str> {
    let at = line.find("jepsen.util")?;
    let rest = &line[at + "jepsen.util".len()..];
    let rest = rest
        .strip_prefix(':')
        .or_else(|| rest.trim_start().strip_prefix('-'))?;
    Some(rest.trim())
}

pub(super) struct JepsenLogReader {
    path: PathBuf,
    reader: BufReader<File>,
    buf: Vec<u8>,
    line_no: usize,
    next_index: u64,
    /// Value of each process's open invocation, given to a `:fail`/`:info` that reports an
    /// error keyword instead of a value.
    open: HashMap<Process, Value>,
    done: bool,
}

impl JepsenLogReader {
    pub(super) fn open(path: &Path) -> Result<Self, HistoryError> {
        let file = File::open(path)
            .map_err(|e| HistoryError::new(path, 0, format!("cannot open: {e}")))?;
        Ok(JepsenLogReader {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            buf: Vec::new(),
            line_no: 0,
            next_index: 0,
            open: HashMap::new(),
            done: false,
        })
    }

    /// The op of one line, `None` for a line that is not an event.
    fn parse_line(&mut self, line: &str) -> Result<Option<Op>, String> {
        let Some(fields) = event_fields(line) else {
            return Ok(None);
        };
        let mut words = fields.split_whitespace();
        let (Some(process), Some(kind)) = (words.next(), words.next()) else {
            return Ok(None);
        };
        let process = match process {
            ":nemesis" | "nemesis" => Process::Nemesis,
            p => match p.parse::<u64>() {
                Ok(p) => Process::Client(p),
                // `jepsen.util - Relative time begins now` and other non-event lines.
                Err(_) => return Ok(None),
            },
        };
        let kind = match kind {
            ":invoke" => OpType::Invoke,
            ":ok" => OpType::Ok,
            ":fail" => OpType::Fail,
            ":info" => OpType::Info,
            k if k.starts_with(':') => {
                return Err(format!(
                    "event type must be one of :invoke/:ok/:fail/:info, got {k}"
                ))
            }
            _ => return Ok(None),
        };
        let f = words
            .next()
            .ok_or("event has no :f field (expected <process> :<type> :<f> <value>)")?;
        let f = f.strip_prefix(':').unwrap_or(f).to_owned();
        // The value (and an optional error after it) may contain spaces: `[3 0]`.
        let rest = words.collect::<Vec<_>>().join(" ");
        let mut reader = Reader::from_bytes(rest.as_bytes());
        let value = match reader.read().map_err(|e| format!("value: {}", e.message))? {
            Some((_, v)) => v,
            None => {
                return Err(
                    "event has no value field (expected <process> :<type> :<f> <value>)".into(),
                )
            }
        };
        let explicit_error = reader
            .read()
            .map_err(|e| format!("error field: {}", e.message))?
            .map(|(_, e)| render_error(&e));
        if reader
            .read()
            .map_err(|e| format!("after the error field: {}", e.message))?
            .is_some()
        {
            return Err("more fields than <process> :<type> :<f> <value> <error>".into());
        }

        let index = self.next_index;
        let mut op = Op {
            index,
            time_ns: index,
            process,
            kind,
            f,
            key: None,
            value: Value::Null,
            node: None,
            error: explicit_error,
        };
        let invoked_value = match kind {
            OpType::Invoke => None,
            _ => self.open.remove(&process),
        };
        match (kind, &value) {
            (OpType::Fail | OpType::Info, Edn::Keyword(k)) if op.error.is_none() => {
                op.error = Some(k.clone());
                op.value = invoked_value.unwrap_or(Value::Null);
            }
            _ => op.value = value.to_json().map_err(|e| format!("value: {e}"))?,
        }
        if kind == OpType::Fail && op.f == "cas" && op.error.is_none() {
            op.error = Some(COMPARE_FAILED.to_owned());
        }
        if kind == OpType::Invoke {
            self.open.insert(process, op.value.clone());
        }
        self.next_index += 1;
        Ok(Some(op))
    }
}

/// Keywords read as their name, strings as themselves, anything else as EDN text.
fn render_error(e: &Edn) -> String {
    match e {
        Edn::Keyword(s) | Edn::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Iterator for JepsenLogReader {
    type Item = Result<(usize, Op), HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buf.clear();
            let read = self
                .reader
                .by_ref()
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut self.buf);
            self.line_no += 1;
            let fail = |this: &mut Self, message: String| {
                this.done = true;
                Some(Err(HistoryError::new(&this.path, this.line_no, message)))
            };
            match read {
                Ok(0) => self.done = true,
                Ok(n) if n as u64 == MAX_LINE_BYTES && self.buf.last() != Some(&b'\n') => {
                    return fail(self, format!("line longer than {MAX_LINE_BYTES} bytes"));
                }
                Ok(_) => {
                    let Ok(line) = std::str::from_utf8(&self.buf) else {
                        return fail(self, "invalid UTF-8".into());
                    };
                    let line = line.to_owned();
                    match self.parse_line(&line) {
                        Ok(Some(op)) => return Some(Ok((self.line_no, op))),
                        Ok(None) => {}
                        Err(message) => return fail(self, message),
                    }
                }
                Err(e) => return fail(self, format!("read error: {e}")),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Result<Vec<(usize, Op)>, HistoryError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.log");
        std::fs::write(&path, text).unwrap();
        JepsenLogReader::open(&path).unwrap().collect()
    }

    #[test]
    fn maps_each_event_shape_as_porcupine_reads_it() {
        let ops = read(
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
             INFO  jepsen.util - 0\t:ok\t:read\t3\n\
             INFO  jepsen.util - 1   :invoke :cas    [3 0]\n\
             INFO  jepsen.util - 1\t:fail\t:cas\t[3 0]\n\
             INFO  jepsen.util - 2\t:invoke\t:write\t4\n\
             INFO  jepsen.util - 2\t:info\t:write\t:timed-out\n\
             INFO  jepsen.util - 3\t:invoke\t:read\tnil\n\
             INFO  jepsen.util - 3\t:fail\t:read\t:timed-out\n\
             INFO  jepsen.util - 4\t:invoke\t:cas\t[1 2]\n\
             INFO  jepsen.util - 4\t:ok\t:cas\t[1 2]\n",
        )
        .unwrap();
        let get = |i: usize| &ops[i].1;
        assert_eq!(ops.len(), 10);
        assert_eq!(ops[3].0, 4, "source line numbers");
        assert_eq!(
            (get(0).kind, get(0).f.as_str(), &get(0).value),
            (OpType::Invoke, "read", &Value::Null)
        );
        assert_eq!((get(1).kind, &get(1).value), (OpType::Ok, &json!(3)));
        assert_eq!((get(3).kind, &get(3).value), (OpType::Fail, &json!([3, 0])));
        assert_eq!(get(3).error.as_deref(), Some(COMPARE_FAILED));
        assert_eq!((get(5).kind, &get(5).value), (OpType::Info, &json!(4)));
        assert_eq!(get(5).error.as_deref(), Some("timed-out"));
        assert_eq!((get(7).kind, &get(7).value), (OpType::Fail, &Value::Null));
        assert_eq!(get(7).error.as_deref(), Some("timed-out"));
        assert_eq!((get(9).kind, get(9).error.as_deref()), (OpType::Ok, None));
        for (i, (_, op)) in ops.iter().enumerate() {
            assert_eq!((op.index, op.time_ns), (i as u64, i as u64));
        }
    }

    #[test]
    fn ignores_log_noise_and_reads_timestamped_lines() {
        let ops = read(
            "INFO  jepsen.core - Running test\n\
             2017-03-21 10:41:06,563{GMT}\tINFO\t[jepsen worker 0] jepsen.util: 0\t:invoke\t:read\tnil\n\
             INFO  jepsen.util - Relative time begins now\n\
             INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
             \n",
        )
        .unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].0, 2);
        assert_eq!(ops[1].1.process, Process::Nemesis);
    }

    #[test]
    fn rejects_an_unknown_event_type_naming_the_line() {
        let err = read(
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:done\t:read\t1\n",
        )
        .unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains(":invoke/:ok/:fail/:info"), "{err}");
    }

    #[test]
    fn rejects_a_malformed_value() {
        let err = read("INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.starts_with("value:"), "{err}");
        let err = read("INFO  jepsen.util - 0\t:invoke\t:read\n").unwrap_err();
        assert!(err.message.contains("no value"), "{err}");
    }
}
