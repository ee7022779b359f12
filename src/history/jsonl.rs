//! `history.jsonl`: the journal a run writes and the streaming reader for it.
//!
//! Owns [`HistoryWriter`], the single journaling point of a run (it stamps `index` and
//! `time_ns` and writes each op as one line straight to the file), and [`JsonlReader`],
//! which streams a journal back line by line and tolerates the one defect a killed harness
//! can leave: a torn last line.

use super::{HistoryError, Op, OpType, Process};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Read buffer for journals; large enough that reading is one syscall per few thousand ops.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Appends ops to `history.jsonl` so that a harness killed at any moment leaves every op
/// it journaled readable, except possibly a torn last line.
///
/// Each op is serialised into a reused buffer and handed to the kernel with one
/// `write_all` on the unbuffered [`File`], so readers see every completed line while the
/// run is still going. [`HistoryWriter::stage_stamped`] lets a caller that is about to
/// append again at once (a worker's completion, then its next invocation) hand both lines
/// over in one `write`: staged lines are only ever written in stamp order, so the file
/// is always a prefix of the run's history, whatever moment a SIGKILL picks.
#[derive(Debug)]
pub struct HistoryWriter {
    file: File,
    path: PathBuf,
    /// The index the next stamped op gets; one past the highest index journaled.
    next_index: u64,
    /// Origin of `time_ns`: the start of the run.
    start: Instant,
    /// Reused serialisation buffer: staged lines not yet written, then the line being
    /// appended; journaling does not allocate per op.
    pending: Vec<u8>,
}

impl HistoryWriter {
    /// Create (or truncate) the journal at `path`; `time_ns` counts from now.
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::create_at(path, Instant::now())
    }

    /// Like [`HistoryWriter::create`], with `time_ns` counted from `run_start` so that op
    /// times line up with the other clocks of the run (nemesis schedule, plots).
    pub fn create_at(path: &Path, run_start: Instant) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(HistoryWriter {
            file,
            path: path.to_path_buf(),
            next_index: 0,
            start: run_start,
            pending: Vec::with_capacity(1024),
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many index values have been handed out (the next stamped op's index).
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Journal `op` as it is (index and time already set by the caller).
    pub fn append(&mut self, op: &Op) -> io::Result<()> {
        self.stage(op)?;
        self.flush()
    }

    /// Serialise `op` behind the staged lines without writing anything yet.
    fn stage(&mut self, op: &Op) -> io::Result<()> {
        let mark = self.pending.len();
        if let Err(e) = serde_json::to_writer(&mut self.pending, op) {
            self.pending.truncate(mark);
            return Err(e.into());
        }
        self.pending.push(b'\n');
        self.next_index = self.next_index.max(op.index.saturating_add(1));
        Ok(())
    }

    /// Write every staged line (one `write_all`); a no-op when nothing is staged.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.pending);
        // After a failed write the run ends; the lines are not retried behind later ones.
        self.pending.clear();
        r
    }

    /// Stamp `op` with the next index and the time since the run started, journal it and
    /// return the stamped op. This is the one place a run assigns `index` and `time_ns`,
    /// so the journal order, the indices and the times agree.
    pub fn append_stamped(&mut self, op: Op) -> io::Result<Op> {
        let op = self.stage_stamped(op)?;
        self.flush()?;
        Ok(op)
    }

    /// Stamp `op` like [`HistoryWriter::append_stamped`] but leave its line staged: the
    /// next append or [`HistoryWriter::flush`] writes it, together with its own line. For
    /// a caller that appends again within microseconds and without waiting on anything.
    pub fn stage_stamped(&mut self, mut op: Op) -> io::Result<Op> {
        op.index = self.next_index;
        op.time_ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stage(&op)?;
        Ok(op)
    }

    /// Write what is staged and force the journal to stable storage (end of run);
    /// appends are already visible to readers without this.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.file.sync_all()
    }
}

impl Drop for HistoryWriter {
    /// Staged lines are part of the history: a writer dropped on an error path still
    /// hands them to the kernel.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Streams the ops of a `history.jsonl`, one line at a time.
///
/// Blank lines are skipped. A last line without a trailing newline that does not parse is
/// a write torn by a killed harness: it is skipped with a warning on stderr (also
/// available from [`JsonlReader::torn_line`]). Any other line that is not an op is an
/// error naming the file, the line and the broken rule; the stream ends after it.
pub struct JsonlReader {
    path: PathBuf,
    reader: BufReader<File>,
    /// Reused line buffer: the reader never holds more than one line of text.
    buf: Vec<u8>,
    line_no: usize,
    done: bool,
    torn_line: Option<usize>,
}

impl JsonlReader {
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        let file = File::open(path)
            .map_err(|e| HistoryError::new(path, 0, format!("cannot open: {e}")))?;
        Ok(JsonlReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, file),
            buf: Vec::with_capacity(256),
            line_no: 0,
            done: false,
            torn_line: None,
        })
    }

    /// The line number of a torn last line that was skipped, once the stream has reached
    /// it.
    pub fn torn_line(&self) -> Option<usize> {
        self.torn_line
    }

    fn fail(&mut self, message: String) -> Option<Result<(usize, Op), HistoryError>> {
        self.done = true;
        Some(Err(HistoryError::new(&self.path, self.line_no, message)))
    }
}

impl Iterator for JsonlReader {
    type Item = Result<(usize, Op), HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line_no += 1;
                    let complete = self.buf.last() == Some(&b'\n');
                    let text = self.buf.trim_ascii();
                    if text.is_empty() {
                        continue;
                    }
                    // Validate UTF-8 once for the line: serde_json's slice reader would
                    // re-validate every string and field name it meets.
                    let parsed = match std::str::from_utf8(text) {
                        Ok(line) => match parse_fast(line) {
                            Some(op) => Ok(op),
                            None => serde_json::from_str::<Op>(line),
                        },
                        Err(_) => serde_json::from_slice::<Op>(text),
                    };
                    match parsed {
                        Ok(op) => return Some(Ok((self.line_no, op))),
                        Err(_) if !complete => {
                            self.done = true;
                            self.torn_line = Some(self.line_no);
                            eprintln!(
                                "warning: {}:{}: skipping a torn last line (no newline at the end; \
                                 the writer was probably killed mid-write)",
                                self.path.display(),
                                self.line_no
                            );
                        }
                        Err(e) => {
                            let message = diagnose(text, &e);
                            return self.fail(message);
                        }
                    }
                }
                Err(e) => {
                    self.line_no += 1;
                    return self.fail(format!("read error: {e}"));
                }
            }
        }
        None
    }
}

/// How deeply [`parse_fast`] follows nested arrays before leaving a value to serde.
const FAST_VALUE_DEPTH: usize = 4;

/// Parse a line of exactly the shape [`HistoryWriter`] writes — fields in declaration
/// order, no whitespace, no escapes in strings, values made of integers, strings, booleans,
/// null and arrays of those — several times faster than serde's general path. Anything
/// else (another field order, an unknown field, an escape, a float, an object) returns
/// `None` and the caller falls back to serde, so the result is always what serde would
/// give; the tests check that on many shapes.
fn parse_fast(line: &str) -> Option<Op> {
    let mut c = Cursor {
        s: line.as_bytes(),
        i: 0,
    };
    c.lit(b"{\"index\":")?;
    let index = c.u64()?;
    c.lit(b",\"time_ns\":")?;
    let time_ns = c.u64()?;
    c.lit(b",\"process\":")?;
    let process = if c.eat(b"\"nemesis\"") {
        Process::Nemesis
    } else {
        Process::Client(c.u64()?)
    };
    c.lit(b",\"type\":\"")?;
    let kind = match c.plain_str(line)? {
        "invoke" => OpType::Invoke,
        "ok" => OpType::Ok,
        "fail" => OpType::Fail,
        "info" => OpType::Info,
        _ => return None,
    };
    c.lit(b",\"f\":\"")?;
    let f = c.plain_str(line)?.to_owned();
    let mut op = Op {
        index,
        time_ns,
        process,
        kind,
        f,
        key: None,
        value: Value::Null,
        node: None,
        error: None,
    };
    if c.eat(b",\"key\":\"") {
        op.key = Some(c.plain_str(line)?.to_owned());
    }
    if c.eat(b",\"value\":") {
        op.value = c.value(line, 0)?;
    }
    if c.eat(b",\"node\":\"") {
        op.node = Some(c.plain_str(line)?.to_owned());
    }
    if c.eat(b",\"error\":\"") {
        op.error = Some(c.plain_str(line)?.to_owned());
    }
    c.lit(b"}")?;
    (c.i == c.s.len()).then_some(op)
}

/// A read position in one line, for [`parse_fast`].
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn lit(&mut self, lit: &[u8]) -> Option<()> {
        self.eat(lit).then_some(())
    }

    /// Digits of a JSON non-negative integer that fits in u64 (no leading zeros).
    fn u64(&mut self) -> Option<u64> {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(d) = self.s.get(self.i).filter(|b| b.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        if digits == 0 || (digits > 1 && self.s[start] == b'0') {
            return None;
        }
        // A fraction or exponent makes it a float: serde's business.
        match self.s.get(self.i) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(v),
        }
    }

    /// The body of a string whose opening quote was consumed, if it has no escapes or
    /// control characters; consumes the closing quote. `line` is the same text as `s`.
    fn plain_str<'l>(&mut self, line: &'l str) -> Option<&'l str> {
        let start = self.i;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = start + len;
        if self.s[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        // Quotes are ASCII, so both ends are character boundaries.
        line.get(start..end)
    }

    fn value(&mut self, line: &str, depth: usize) -> Option<Value> {
        match *self.s.get(self.i)? {
            b'"' => {
                self.i += 1;
                Some(Value::String(self.plain_str(line)?.to_owned()))
            }
            b'-' => {
                self.i += 1;
                let v = self.u64()?;
                // -0 and values below i64::MIN are left to serde (it reads them as floats).
                let neg = i64::try_from(v).ok().filter(|v| *v != 0)?;
                Some(Value::from(-neg))
            }
            b'0'..=b'9' => Some(Value::from(self.u64()?)),
            b'n' => self.eat(b"null").then_some(Value::Null),
            b't' => self.eat(b"true").then_some(Value::Bool(true)),
            b'f' => self.eat(b"false").then_some(Value::Bool(false)),
            b'[' if depth < FAST_VALUE_DEPTH => {
                self.i += 1;
                let mut items = Vec::new();
                if self.eat(b"]") {
                    return Some(Value::Array(items));
                }
                loop {
                    items.push(self.value(line, depth + 1)?);
                    if self.eat(b"]") {
                        return Some(Value::Array(items));
                    }
                    self.lit(b",")?;
                }
            }
            _ => None,
        }
    }
}

/// Explain why a line is not an op, in terms of the documented format rather than serde's
/// internals. Only runs on the error path, so it may re-parse.
fn diagnose(text: &[u8], serde_err: &serde_json::Error) -> String {
    let value: Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => return format!("not valid JSON: {}", strip_position(&e)),
    };
    let Value::Object(map) = &value else {
        return format!(
            "expected a JSON object (one op per line), found {}",
            json_kind(&value)
        );
    };
    for field in ["index", "time_ns", "process", "type", "f"] {
        if !map.contains_key(field) {
            return format!("missing field \"{field}\"");
        }
    }
    for field in ["index", "time_ns"] {
        if !map[field].is_u64() {
            return format!(
                "\"{field}\" must be a non-negative integer, got {}",
                map[field]
            );
        }
    }
    if serde_json::from_value::<Process>(map["process"].clone()).is_err() {
        return format!(
            "\"process\" must be a non-negative integer or \"nemesis\", got {}",
            map["process"]
        );
    }
    if serde_json::from_value::<OpType>(map["type"].clone()).is_err() {
        return format!(
            "\"type\" must be one of invoke/ok/fail/info, got {}",
            map["type"]
        );
    }
    if !map["f"].is_string() {
        return format!("\"f\" must be a string, got {}", map["f"]);
    }
    for field in ["key", "node", "error"] {
        if let Some(v) = map.get(field) {
            if !(v.is_string() || v.is_null()) {
                return format!("\"{field}\" must be a string, got {v}");
            }
        }
    }
    strip_position(serde_err)
}

/// serde_json appends "at line 1 column N"; on a one-line input only the column matters.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((msg, _)) => format!("{msg} (column {})", e.column()),
        None => text,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(index: u64, process: u64, kind: OpType, value: Value) -> Op {
        Op {
            index,
            time_ns: index * 10,
            process: Process::Client(process),
            kind,
            f: "write".into(),
            key: None,
            value,
            node: None,
            error: None,
        }
    }

    fn read_all(path: &Path) -> Result<Vec<(usize, Op)>, HistoryError> {
        JsonlReader::open(path)?.collect()
    }

    fn message_for(line: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let good = serde_json::to_string(&op(0, 1, OpType::Invoke, json!(1))).unwrap();
        std::fs::write(&path, format!("{good}\n{line}\n")).unwrap();
        let err = read_all(&path).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        err.message
    }

    #[test]
    fn explains_each_broken_rule_in_format_terms() {
        let base = r#""index":1,"time_ns":2,"process":1,"type":"ok","f":"read""#;
        assert_eq!(
            message_for(r#"{"index":1,"time_ns":2,"process":1,"type":"ok"}"#),
            "missing field \"f\""
        );
        assert_eq!(
            message_for(r#"{"index":1,"time_ns":2,"process":1,"type":"done","f":"read"}"#),
            "\"type\" must be one of invoke/ok/fail/info, got \"done\""
        );
        assert_eq!(
            message_for(r#"{"index":1,"time_ns":2,"process":-4,"type":"ok","f":"read"}"#),
            "\"process\" must be a non-negative integer or \"nemesis\", got -4"
        );
        assert_eq!(
            message_for(r#"{"index":"1","time_ns":2,"process":1,"type":"ok","f":"read"}"#),
            "\"index\" must be a non-negative integer, got \"1\""
        );
        assert_eq!(
            message_for(&format!("{{{base},\"key\":7}}")),
            "\"key\" must be a string, got 7"
        );
        assert_eq!(
            message_for("[1,2]"),
            "expected a JSON object (one op per line), found an array"
        );
        assert!(message_for("{\"index\":1,").starts_with("not valid JSON: EOF"));
    }

    /// Many op shapes as the writer serialises them: the fast path must take them and
    /// agree with serde.
    #[test]
    fn fast_path_takes_writer_output_and_agrees_with_serde() {
        let values = [
            json!(null),
            json!(0),
            json!(7),
            json!(-3),
            json!(u64::MAX),
            json!(i64::MIN + 1),
            json!(true),
            json!("x 0 1 y"),
            json!("é ☃"),
            json!([]),
            json!([1, 2]),
            json!([["read", "x", null], ["write", "y", 3]]),
        ];
        let mut n = 0;
        for (i, value) in values.iter().enumerate() {
            for kind in [OpType::Invoke, OpType::Ok, OpType::Fail, OpType::Info] {
                let mut o = op(i as u64 * 1000, i as u64, kind, value.clone());
                if i % 2 == 0 {
                    o.key = Some(format!("k{i}"));
                    o.process = Process::Nemesis;
                }
                if i % 3 == 0 {
                    o.node = Some("n2".into());
                    o.error = Some("timed-out".into());
                }
                let line = serde_json::to_string(&o).unwrap();
                let fast = parse_fast(&line).unwrap_or_else(|| panic!("fast path refused {line}"));
                assert_eq!(fast, o, "{line}");
                assert_eq!(fast, serde_json::from_str::<Op>(&line).unwrap(), "{line}");
                n += 1;
            }
        }
        assert_eq!(n, values.len() * 4);
    }

    #[test]
    fn fast_path_leaves_every_other_shape_to_serde() {
        let base = r#"{"index":1,"time_ns":2,"process":3,"type":"ok","f":"read""#;
        for line in [
            format!("{base},\"value\":1.5}}"),
            format!("{base},\"value\":1e3}}"),
            format!("{base},\"value\":-0}}"),
            format!("{base},\"value\":{{\"a\":1}}}}"),
            format!("{base},\"value\":[[[[[1]]]]]}}"),
            format!("{base},\"value\":99999999999999999999}}"),
            format!("{base},\"key\":\"a\\\"b\"}}"),
            format!("{base},\"extra\":1}}"),
            format!("{base},\"value\":1,\"key\":\"k\"}}"),
            format!("{base} }}"),
            format!("{base}}} "),
            format!("{base},\"value\":01}}"),
            r#"{"time_ns":2,"index":1,"process":3,"type":"ok","f":"read"}"#.to_owned(),
            r#"{"index":1,"time_ns":2,"process":3,"type":"done","f":"read"}"#.to_owned(),
        ] {
            assert!(parse_fast(&line).is_none(), "fast path took {line}");
        }
        // …and serde reads the valid ones among them exactly.
        let line = format!("{base},\"value\":1,\"key\":\"k\"}}");
        let o: Op = serde_json::from_str(&line).unwrap();
        assert_eq!((o.key.as_deref(), o.value), (Some("k"), json!(1)));
    }

    #[test]
    fn skips_blank_lines_and_reports_true_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let a = serde_json::to_string(&op(0, 1, OpType::Invoke, json!(1))).unwrap();
        let b = serde_json::to_string(&op(1, 1, OpType::Ok, json!(1))).unwrap();
        std::fs::write(&path, format!("\n{a}\n   \n{b}\r\n")).unwrap();
        let ops = read_all(&path).unwrap();
        assert_eq!(ops.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [2, 4]);
    }

    #[test]
    fn append_stamped_assigns_consecutive_indices_and_monotonic_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let mut w = HistoryWriter::create(&path).unwrap();
        let a = w
            .append_stamped(op(99, 1, OpType::Invoke, json!(3)))
            .unwrap();
        let b = w.append_stamped(op(99, 1, OpType::Ok, json!(3))).unwrap();
        assert_eq!((a.index, b.index), (0, 1));
        assert!(a.time_ns <= b.time_ns);
        let back: Vec<Op> = read_all(&path)
            .unwrap()
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        assert_eq!(back, vec![a, b]);
    }

    #[test]
    fn staged_lines_reach_the_file_in_stamp_order_with_the_next_append_or_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let mut w = HistoryWriter::create(&path).unwrap();
        let a = w.stage_stamped(op(0, 1, OpType::Invoke, json!(1))).unwrap();
        let b = w.stage_stamped(op(0, 1, OpType::Ok, json!(1))).unwrap();
        // Staged only: a reader sees nothing yet.
        assert_eq!(std::fs::read(&path).unwrap().len(), 0);
        let c = w
            .append_stamped(op(0, 2, OpType::Invoke, json!(2)))
            .unwrap();
        assert_eq!((a.index, b.index, c.index), (0, 1, 2));
        let d = w.stage_stamped(op(0, 2, OpType::Ok, json!(2))).unwrap();
        drop(w);
        let back: Vec<Op> = read_all(&path)
            .unwrap()
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        assert_eq!(back, vec![a, b, c, d]);
    }

    #[test]
    fn append_keeps_the_next_index_past_explicit_indices() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = HistoryWriter::create(&dir.path().join("h.jsonl")).unwrap();
        w.append(&op(7, 1, OpType::Invoke, json!(1))).unwrap();
        assert_eq!(w.next_index(), 8);
        let s = w.append_stamped(op(0, 1, OpType::Ok, json!(1))).unwrap();
        assert_eq!(s.index, 8);
    }
}
