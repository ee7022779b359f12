//! Importer for EDN histories: Knossos/Jepsen `history.edn` (one vector or list of op
//! maps) and one-map-per-line files (Porcupine's kv histories, newer Jepsen).
//!
//! The top-level collection is streamed element by element, so a large `history.edn` is
//! never held whole. Op maps map to [`Op`] as follows: `:process` is an integer or
//! `:nemesis`; `:type` one of `:invoke :ok :fail :info`; `:f` a keyword (its name becomes
//! `f`); `:value` any EDN, converted by [`Edn::to_json`] (keywords lose their colon, so
//! `[[:read :x nil]]` becomes `[["read","x",null]]`); `:key` and `:node` become strings;
//! `:time` becomes `time_ns`; `:error` becomes its name (keyword), itself (string) or its
//! EDN text (anything else; `nil` means no error). Other keys — `:index` included, since
//! `index` is the position in the stream — are ignored. Tagged maps
//! (`#jepsen.history.Op{…}`) read as plain maps. A Jepsen independent-key history keeps its
//! `[key value]` tuples in `value`; splitting them into `key` is the checker's business.

use super::super::edn::{Edn, EdnError, Reader};
use super::super::{HistoryError, Op, OpType, Process};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};

pub(super) struct EdnOpReader {
    path: PathBuf,
    reader: Reader<File>,
    state: State,
    next_index: u64,
}

enum State {
    /// Nothing read yet: the first form decides between a collection and loose maps.
    Start,
    /// Inside the top-level collection opened at `line`, which `close` ends.
    InCollection {
        close: u8,
        line: usize,
    },
    /// Loose top-level op maps, one after another.
    TopLevel,
    Done,
}

impl EdnOpReader {
    pub(super) fn open(path: &Path) -> Result<Self, HistoryError> {
        let file = File::open(path)
            .map_err(|e| HistoryError::new(path, 0, format!("cannot open: {e}")))?;
        Ok(EdnOpReader {
            path: path.to_path_buf(),
            reader: Reader::new(file),
            state: State::Start,
            next_index: 0,
        })
    }

    fn edn_err(&self, e: EdnError) -> HistoryError {
        HistoryError::new(
            &self.path,
            e.pos.line,
            format!("column {}: {}", e.pos.column, e.message),
        )
    }

    fn step(&mut self) -> Result<Option<(usize, Op)>, HistoryError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Start => {
                    let next = self
                        .reader
                        .peek_significant()
                        .map_err(|e| self.edn_err(e))?;
                    match next {
                        None => self.state = State::Done,
                        Some(open @ (b'[' | b'(')) => {
                            let line = self.reader.pos().line;
                            self.reader.bump().map_err(|e| self.edn_err(e))?;
                            let close = if open == b'[' { b']' } else { b')' };
                            self.state = State::InCollection { close, line };
                        }
                        Some(_) => self.state = State::TopLevel,
                    }
                }
                State::InCollection { close, line } => {
                    let next = self
                        .reader
                        .peek_significant()
                        .map_err(|e| self.edn_err(e))?;
                    match next {
                        None => {
                            return Err(HistoryError::new(
                                &self.path,
                                self.reader.pos().line,
                                format!(
                                    "end of input inside the history opened on line {line} (missing '{}')",
                                    close as char
                                ),
                            ))
                        }
                        Some(b) if b == close => {
                            self.reader.bump().map_err(|e| self.edn_err(e))?;
                            self.state = State::Done;
                            let after = self.reader.pos();
                            if self
                                .reader
                                .peek_significant()
                                .map_err(|e| self.edn_err(e))?
                                .is_some()
                            {
                                let at = self.reader.pos();
                                return Err(HistoryError::new(
                                    &self.path,
                                    at.line,
                                    format!(
                                        "column {}: data after the end of the history (closed on line {})",
                                        at.column, after.line
                                    ),
                                ));
                            }
                            return Ok(None);
                        }
                        Some(_) => return self.read_op(),
                    }
                }
                State::TopLevel => return self.read_op(),
            }
        }
    }

    fn read_op(&mut self) -> Result<Option<(usize, Op)>, HistoryError> {
        let Some((pos, form)) = self.reader.read().map_err(|e| self.edn_err(e))? else {
            self.state = State::Done;
            return Ok(None);
        };
        let op = op_from_edn(form, self.next_index)
            .map_err(|m| HistoryError::new(&self.path, pos.line, m))?;
        self.next_index += 1;
        Ok(Some((pos.line, op)))
    }
}

impl Iterator for EdnOpReader {
    type Item = Result<(usize, Op), HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => None,
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}

/// The op an EDN op map describes; `index` is its position in the stream.
pub(crate) fn op_from_edn(form: Edn, index: u64) -> Result<Op, String> {
    let entries = match form.into_untagged() {
        Edn::Map(entries) => entries,
        other => {
            return Err(format!(
                "expected an op map {{:process … :type … :f …}}, found {}",
                other.kind()
            ))
        }
    };
    const KNOWN: [&str; 8] = [
        "process", "type", "f", "value", "time", "key", "node", "error",
    ];
    let mut process = None;
    let mut kind = None;
    let mut f = None;
    let mut op = Op {
        index,
        time_ns: index,
        process: Process::Nemesis,
        kind: OpType::Info,
        f: String::new(),
        key: None,
        value: Value::Null,
        node: None,
        error: None,
    };
    // Bit i set: KNOWN[i] was seen (a duplicate known key is ambiguous, so an error).
    let mut seen = 0u8;
    for (k, v) in entries {
        let Edn::Keyword(name) = k.untagged() else {
            // Op maps are keyed by keywords; other keys are foreign annotations.
            continue;
        };
        let Some(slot) = KNOWN.iter().position(|known| known == name) else {
            continue;
        };
        if seen & (1 << slot) != 0 {
            return Err(format!("duplicate key :{name}"));
        }
        seen |= 1 << slot;
        let v = v.into_untagged();
        match KNOWN[slot] {
            "process" => {
                process = Some(match &v {
                    Edn::Int(p) => u64::try_from(*p).map(Process::Client).map_err(|_| {
                        format!(":process must be a non-negative integer or :nemesis, got {v}")
                    })?,
                    _ if v.as_name() == Some("nemesis") => Process::Nemesis,
                    _ => {
                        return Err(format!(
                            ":process must be a non-negative integer or :nemesis, got {v}"
                        ))
                    }
                })
            }
            "type" => {
                kind = Some(match v.as_name() {
                    Some("invoke") => OpType::Invoke,
                    Some("ok") => OpType::Ok,
                    Some("fail") => OpType::Fail,
                    Some("info") => OpType::Info,
                    _ => {
                        return Err(format!(
                            ":type must be one of :invoke/:ok/:fail/:info, got {v}"
                        ))
                    }
                })
            }
            "f" => {
                f = Some(match v {
                    Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => s,
                    other => return Err(format!(":f must be a keyword, got {other}")),
                })
            }
            "value" => op.value = v.into_json().map_err(|e| format!(":value: {e}"))?,
            "time" => {
                op.time_ns = match v {
                    Edn::Int(t) => u64::try_from(t).ok(),
                    _ => None,
                }
                .ok_or_else(|| format!(":time must be a non-negative integer (ns), got {v}"))?
            }
            "key" => op.key = name_or_text(v),
            "node" => op.node = name_or_text(v),
            _ => op.error = name_or_text(v),
        }
    }
    op.process = process.ok_or("missing key :process")?;
    op.kind = kind.ok_or("missing key :type")?;
    op.f = f.ok_or("missing key :f")?;
    Ok(op)
}

/// `nil` → none; a keyword, symbol or string → its name; an integer → its digits; anything
/// else → its EDN text.
fn name_or_text(v: Edn) -> Option<String> {
    match v {
        Edn::Nil => None,
        Edn::Int(i) => Some(i.to_string()),
        Edn::Keyword(s) | Edn::Symbol(s) | Edn::Str(s) => Some(s),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::edn::parse_one;
    use super::*;
    use serde_json::json;

    fn op(text: &str) -> Result<Op, String> {
        op_from_edn(parse_one(text).unwrap(), 5)
    }

    #[test]
    fn maps_a_knossos_op() {
        let o = op("{:type :fail, :process 101, :f :write, :value 3, :error [:temporarily-unavailable nil]}")
            .unwrap();
        assert_eq!(o.process, Process::Client(101));
        assert_eq!(o.kind, OpType::Fail);
        assert_eq!(o.f, "write");
        assert_eq!(o.value, json!(3));
        assert_eq!(o.error.as_deref(), Some("[:temporarily-unavailable nil]"));
        assert_eq!((o.index, o.time_ns), (5, 5));
    }

    #[test]
    fn maps_nemesis_time_txn_values_and_keyword_errors() {
        let o = op("{:type :info, :f :start, :process :nemesis, :time 5326396898, :index 169}")
            .unwrap();
        assert_eq!(o.process, Process::Nemesis);
        assert_eq!((o.index, o.time_ns), (5, 5326396898));
        let o = op("{:type :invoke, :f :txn, :value [[:read :x nil] [:write :y 3]], :process 2}")
            .unwrap();
        assert_eq!(o.value, json!([["read", "x", null], ["write", "y", 3]]));
        let o = op("{:type :fail, :f :release, :process 1, :error :not-held}").unwrap();
        assert_eq!(o.error.as_deref(), Some("not-held"));
        let o = op("{:type :ok, :f :read, :process 1, :error nil, :value nil}").unwrap();
        assert_eq!((o.error, o.value), (None, Value::Null));
    }

    #[test]
    fn maps_kv_lines_with_keys_and_tagged_jepsen_ops() {
        let o =
            op("{:process 0, :type :invoke, :f :append, :key \"4\", :value \"x 0 1 y\"}").unwrap();
        assert_eq!((o.key.as_deref(), o.value), (Some("4"), json!("x 0 1 y")));
        let o = op(
            "#jepsen.history.Op{:index 0, :time 7, :type :ok, :process 3, :f :read, :value [:k 1]}",
        )
        .unwrap();
        assert_eq!((o.time_ns, o.value), (7, json!(["k", 1])));
    }

    #[test]
    fn rejects_ops_that_break_a_rule() {
        assert_eq!(
            op("{:type :ok, :f :read}").unwrap_err(),
            "missing key :process"
        );
        assert_eq!(
            op("{:process 1, :f :read}").unwrap_err(),
            "missing key :type"
        );
        assert_eq!(op("{:process 1, :type :ok}").unwrap_err(), "missing key :f");
        assert!(op("{:process 1, :type :done, :f :read}")
            .unwrap_err()
            .contains(":type must be one of"));
        assert!(op("{:process -1, :type :ok, :f :read}")
            .unwrap_err()
            .contains(":process must be"));
        assert!(op("{:process 1, :type :ok, :f :read, :time -3}")
            .unwrap_err()
            .contains(":time"));
        assert_eq!(
            op("{:process 1, :process 2, :type :ok, :f :r}").unwrap_err(),
            "duplicate key :process"
        );
        assert!(op("[1 2]").unwrap_err().contains("found a vector"));
    }
}
