//! Writing histories for other tools: Jepsen EDN (readable by Knossos, Elle and Jepsen's
//! own checkers) and faultline's JSONL, plus `faultline export`, which converts any
//! readable history and writes the result atomically.
//!
//! EDN output is one op map per line inside `[…]`:
//! `{:index 0, :time 1234, :process 3, :type :invoke, :f :write, :value 5, :key "k1"}` —
//! the nemesis is `:process :nemesis`, `f` becomes a keyword (a string where it cannot be
//! one), JSON strings stay strings, arrays become vectors and objects maps (keyword keys
//! where the key is a valid keyword). Importing the output gives back the same ops.

use super::edn::{write_float, write_string};
use super::import::open_detect;
use super::{Format, HistoryError, Op, Process};
use serde_json::Value;
use std::fmt::{self, Write as _};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What `faultline export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// Jepsen EDN: a vector of op maps, one per line.
    Edn,
    /// faultline's `history.jsonl`.
    Jsonl,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 2] = [ExportFormat::Edn, ExportFormat::Jsonl];

    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Edn => "edn",
            ExportFormat::Jsonl => "jsonl",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown export format {s:?} (expected edn or jsonl)"))
    }
}

/// Streams ops out as a Jepsen EDN vector: [`EdnWriter::op`] per op, then
/// [`EdnWriter::finish`].
pub struct EdnWriter<W: Write> {
    out: W,
    count: u64,
    /// Reused text buffer for one op map.
    line: String,
}

impl<W: Write> EdnWriter<W> {
    pub fn new(out: W) -> Self {
        EdnWriter {
            out,
            count: 0,
            line: String::with_capacity(256),
        }
    }

    pub fn op(&mut self, op: &Op) -> io::Result<()> {
        self.line.clear();
        self.line.push(if self.count == 0 { '[' } else { ' ' });
        write_op(&mut self.line, op).map_err(|_| io::Error::other("formatting an op failed"))?;
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())?;
        self.count += 1;
        Ok(())
    }

    /// Close the vector and flush; returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.count == 0 {
            self.out.write_all(b"[]\n")?;
        } else {
            // Replace nothing already written: close on its own line.
            self.out.write_all(b"]\n")?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Write ops as a Jepsen EDN history.
pub fn write_edn<'a>(ops: impl IntoIterator<Item = &'a Op>, out: impl Write) -> io::Result<()> {
    let mut w = EdnWriter::new(BufWriter::new(out));
    for op in ops {
        w.op(op)?;
    }
    w.finish()?;
    Ok(())
}

/// Write ops as `history.jsonl` (buffered; for journaling during a run use
/// [`super::HistoryWriter`]).
pub fn write_jsonl<'a>(ops: impl IntoIterator<Item = &'a Op>, out: impl Write) -> io::Result<()> {
    let mut out = BufWriter::new(out);
    for op in ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn write_op(s: &mut String, op: &Op) -> fmt::Result {
    write!(s, "{{:index {}, :time {}, :process ", op.index, op.time_ns)?;
    match op.process {
        Process::Client(p) => write!(s, "{p}")?,
        Process::Nemesis => s.push_str(":nemesis"),
    }
    write!(s, ", :type :{}, :f ", op.kind)?;
    write_name(s, &op.f)?;
    s.push_str(", :value ");
    write_value(s, &op.value)?;
    for (name, field) in [("key", &op.key), ("node", &op.node), ("error", &op.error)] {
        if let Some(text) = field {
            write!(s, ", :{name} ")?;
            write_string(s, text)?;
        }
    }
    s.push('}');
    Ok(())
}

/// As a keyword where the name is a valid one, else as a string.
fn write_name(s: &mut String, name: &str) -> fmt::Result {
    if is_keyword_name(name) {
        write!(s, ":{name}")
    } else {
        write_string(s, name)
    }
}

/// Conservative: characters every EDN reader accepts in a keyword, and a first character
/// that cannot make it read as a number.
fn is_keyword_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || "*+!-_?<>=.".contains(c);
    (first.is_ascii_alphabetic() || "*!_?<>=".contains(first))
        && chars.all(ok)
        && !name.ends_with('.')
}

fn write_value(s: &mut String, v: &Value) -> fmt::Result {
    match v {
        Value::Null => s.push_str("nil"),
        Value::Bool(b) => write!(s, "{b}")?,
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => write!(s, "{i}")?,
            (None, Some(u), _) => write!(s, "{u}N")?,
            (None, None, Some(f)) => write_float(s, f)?,
            (None, None, None) => write!(s, "{n}")?,
        },
        Value::String(text) => write_string(s, text)?,
        Value::Array(items) => {
            s.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                write_value(s, item)?;
            }
            s.push(']');
        }
        Value::Object(map) => {
            s.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                write_name(s, k)?;
                s.push(' ');
                write_value(s, item)?;
            }
            s.push('}');
        }
    }
    Ok(())
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub input_format: Format,
    pub ops: u64,
    /// Where the output went; `None` for stdout.
    pub output: Option<PathBuf>,
}

/// Convert the history at `input` (format detected unless given) to `to`, writing to
/// `output` or to stdout. Nothing half-written is ever left: a file output is written to a
/// temporary file beside it and renamed into place only when every op was read; stdout
/// gets output only after a first pass has read the whole input without error.
pub fn export_file(
    input: &Path,
    format: Option<Format>,
    to: ExportFormat,
    output: Option<&Path>,
) -> anyhow::Result<ExportSummary> {
    let (input_format, ops) = open_detect(input, format)?;
    match output {
        Some(out_path) => {
            let mut n = 0;
            let result = crate::store::write_atomic_with(out_path, |w| {
                n = convert(ops, to, w)?;
                Ok(())
            });
            match result {
                Ok(()) => Ok(ExportSummary {
                    input_format,
                    ops: n,
                    output: Some(out_path.to_path_buf()),
                }),
                Err(e) => {
                    if e.is::<HistoryError>() {
                        // Already says `path:line: what is wrong`.
                        Err(e)
                    } else {
                        Err(e.context(format!(
                            "exporting {} to {}",
                            input.display(),
                            out_path.display()
                        )))
                    }
                }
            }
        }
        None => {
            // Validate first so a bad line never leaves half a history on stdout.
            for item in ops {
                item?;
            }
            let (_, ops) = open_detect(input, Some(input_format))?;
            let n = convert(ops, to, BufWriter::new(io::stdout().lock()))?;
            Ok(ExportSummary {
                input_format,
                ops: n,
                output: None,
            })
        }
    }
}

fn convert(
    ops: impl Iterator<Item = Result<(usize, Op), HistoryError>>,
    to: ExportFormat,
    mut out: impl Write,
) -> anyhow::Result<u64> {
    let mut n = 0;
    match to {
        ExportFormat::Edn => {
            let mut w = EdnWriter::new(out);
            for item in ops {
                let (_, op) = item?;
                w.op(&op)?;
                n += 1;
            }
            w.finish()?;
        }
        ExportFormat::Jsonl => {
            for item in ops {
                let (_, op) = item?;
                serde_json::to_writer(&mut out, &op)?;
                out.write_all(b"\n")?;
                n += 1;
            }
            out.flush()?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType;
    use serde_json::json;

    fn op(index: u64, process: Process, kind: OpType, f: &str, value: Value) -> Op {
        Op {
            index,
            time_ns: 1000 + index,
            process,
            kind,
            f: f.into(),
            key: None,
            value,
            node: None,
            error: None,
        }
    }

    fn edn_of(ops: &[Op]) -> String {
        let mut out = Vec::new();
        write_edn(ops, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_one_jepsen_op_map_per_line() {
        let mut a = op(0, Process::Client(3), OpType::Invoke, "write", json!(5));
        a.key = Some("k1".into());
        a.node = Some("n1".into());
        let mut b = op(1, Process::Client(3), OpType::Info, "write", json!(5));
        b.error = Some("timed \"out\"".into());
        let c = op(
            2,
            Process::Nemesis,
            OpType::Info,
            "start-partition",
            json!(["n1", "n2"]),
        );
        assert_eq!(
            edn_of(&[a, b, c]),
            "[{:index 0, :time 1000, :process 3, :type :invoke, :f :write, :value 5, :key \"k1\", :node \"n1\"}\n \
             {:index 1, :time 1001, :process 3, :type :info, :f :write, :value 5, :error \"timed \\\"out\\\"\"}\n \
             {:index 2, :time 1002, :process :nemesis, :type :info, :f :start-partition, :value [\"n1\" \"n2\"]}\n]\n"
        );
    }

    #[test]
    fn writes_an_empty_history_as_an_empty_vector() {
        assert_eq!(edn_of(&[]), "[]\n");
    }

    #[test]
    fn renders_values_of_every_json_shape() {
        let mut s = String::new();
        write_value(
            &mut s,
            &json!({"a": [1, -2, 2.5, null, true], "not a keyword": "x\ny", "n": 18446744073709551615u64}),
        )
        .unwrap();
        assert_eq!(
            s,
            "{:a [1 -2 2.5 nil true], :n 18446744073709551615N, \"not a keyword\" \"x\\ny\"}"
        );
        let mut s = String::new();
        write_name(&mut s, "3rd").unwrap();
        assert_eq!(s, "\"3rd\"");
    }

    #[test]
    fn export_formats_parse_by_name() {
        assert_eq!("edn".parse::<ExportFormat>().unwrap(), ExportFormat::Edn);
        assert_eq!(
            "jsonl".parse::<ExportFormat>().unwrap(),
            ExportFormat::Jsonl
        );
        assert!("csv".parse::<ExportFormat>().is_err());
    }
}
