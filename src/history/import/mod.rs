//! Reading histories in every format faultline understands, behind one [`open`].
//!
//! Owns [`Format`] (names, content sniffing) and the importers of other tools' formats:
//! Jepsen log lines ([`jepsen_log`]), and EDN op maps ([`edn_ops`]: Knossos/Jepsen
//! `history.edn` and Porcupine's kv lines). Our own `history.jsonl` is read by
//! [`super::jsonl`].
//!
//! Imports normalise to [`Op`] the same way everywhere: `index` is the op's position in
//! the stream (0-based, nemesis ops included), `time_ns` is the source's time where it has
//! one and the position otherwise, and every op carries the line on which it starts.

mod edn_ops;
mod jepsen_log;

use super::jsonl::JsonlReader;
use super::{HistoryError, Op, OpStream};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::str::FromStr;

/// A history file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// faultline's own `history.jsonl`: one JSON op per line.
    Jsonl,
    /// Jepsen log lines `INFO  jepsen.util - <process> :<type> :<f> <value>` (Porcupine's
    /// `test_data/jepsen/etcd_*.log`); other log lines are ignored.
    JepsenLog,
    /// One EDN op map per line (Porcupine's `test_data/kv/*.txt`).
    KvLines,
    /// An EDN vector or list of op maps (Knossos `data/**.edn`, Jepsen `history.edn`).
    /// Loose top-level maps (newer Jepsen writes `history.edn` one op per line, possibly
    /// as `#jepsen.history.Op{…}`) are read too; detection picks this over kv-lines for
    /// a `.edn` file.
    Edn,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 4] = [
        Format::Jsonl,
        Format::JepsenLog,
        Format::KvLines,
        Format::Edn,
    ];

    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::JepsenLog => "jepsen-log",
            Format::KvLines => "kv-lines",
            Format::Edn => "edn",
        }
    }

    /// One line describing the format, for `--help`.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Jsonl => "faultline's history.jsonl, one JSON op per line",
            Format::JepsenLog => {
                "Jepsen log lines 'INFO jepsen.util - <process> :<type> :<f> <value>'"
            }
            Format::KvLines => "one EDN op map per line (Porcupine kv histories)",
            Format::Edn => "a Jepsen/Knossos EDN vector or list of op maps (history.edn)",
        }
    }

    /// Tell the format of a file from its first significant line (the first one that is
    /// neither blank nor a `;` comment); the extension decides only when the content
    /// cannot (an empty file).
    pub fn detect(path: &Path) -> Result<Format, HistoryError> {
        let file = File::open(path)
            .map_err(|e| HistoryError::new(path, 0, format!("cannot open: {e}")))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut line_no = 0;
        // Sniff at most this many lines: a file that starts with more blank or comment
        // lines than this is not a history faultline knows.
        const SNIFF_LINES: usize = 10_000;
        while line_no < SNIFF_LINES {
            line.clear();
            let n = reader
                .by_ref()
                .take(1 << 20)
                .read_until(b'\n', &mut line)
                .map_err(|e| HistoryError::new(path, line_no + 1, format!("read error: {e}")))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let text = String::from_utf8_lossy(line.trim_ascii());
            if text.is_empty() || text.starts_with(';') {
                continue;
            }
            // Loose EDN maps are Porcupine kv lines, except in a `.edn` file: that is a
            // newer Jepsen `history.edn` (one op per line), whatever its workload.
            let sniffed = match sniff(&text) {
                Some(Format::KvLines) if by_extension(path) == Some(Format::Edn) => {
                    Some(Format::Edn)
                }
                other => other,
            };
            return sniffed.ok_or_else(|| {
                HistoryError::new(
                    path,
                    line_no,
                    format!(
                        "cannot tell the history format from this line; pass --format (one of: {})",
                        Format::names()
                    ),
                )
            });
        }
        by_extension(path).ok_or_else(|| {
            HistoryError::new(
                path,
                0,
                format!(
                    "no ops in the file to tell its format from; pass --format (one of: {})",
                    Format::names()
                ),
            )
        })
    }

    /// `jsonl, jepsen-log, kv-lines, edn`.
    pub fn names() -> String {
        Format::ALL
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The format a first significant line belongs to.
fn sniff(line: &str) -> Option<Format> {
    let first = line.as_bytes()[0];
    match first {
        b'{' => {
            let rest = line[1..].trim_start();
            if rest.starts_with('"') || rest.starts_with('}') {
                Some(Format::Jsonl)
            } else {
                Some(Format::KvLines)
            }
        }
        b'[' | b'(' | b'#' => Some(Format::Edn),
        _ if jepsen_log::looks_like_log_line(line) => Some(Format::JepsenLog),
        _ => None,
    }
}

fn by_extension(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "jsonl" | "json" => Some(Format::Jsonl),
        "edn" => Some(Format::Edn),
        "log" => Some(Format::JepsenLog),
        "txt" => Some(Format::KvLines),
        _ => None,
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown history format {s:?} (expected one of: {})",
                    Format::names()
                )
            })
    }
}

/// Open a history for streaming in the given format.
pub fn open(path: &Path, format: Format) -> Result<OpStream, HistoryError> {
    Ok(match format {
        Format::Jsonl => Box::new(JsonlReader::open(path)?),
        Format::JepsenLog => Box::new(jepsen_log::JepsenLogReader::open(path)?),
        Format::KvLines | Format::Edn => Box::new(edn_ops::EdnOpReader::open(path)?),
    })
}

/// Open a history, detecting its format unless one is given.
pub fn open_detect(
    path: &Path,
    format: Option<Format>,
) -> Result<(Format, OpStream), HistoryError> {
    let format = match format {
        Some(f) => f,
        None => Format::detect(path)?,
    };
    Ok((format, open(path, format)?))
}

/// Read a whole history into memory (for small histories and tests).
pub fn read_all(path: &Path, format: Format) -> Result<Vec<Op>, HistoryError> {
    open(path, format)?.map(|r| r.map(|(_, op)| op)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
            assert_eq!(f.to_string(), f.name());
        }
        let err = "yaml".parse::<Format>().unwrap_err();
        assert!(err.contains("jsonl, jepsen-log, kv-lines, edn"), "{err}");
    }

    #[test]
    fn sniffs_each_format_from_its_first_line() {
        assert_eq!(sniff(r#"{"index":0}"#), Some(Format::Jsonl));
        assert_eq!(sniff("{:process 0, :type :invoke}"), Some(Format::KvLines));
        assert_eq!(sniff("[{:process 0"), Some(Format::Edn));
        assert_eq!(sniff("({:type :invoke"), Some(Format::Edn));
        assert_eq!(sniff("#jepsen.history.Op{:index 0}"), Some(Format::Edn));
        assert_eq!(
            sniff("INFO  jepsen.util - 0\t:invoke\t:read\tnil"),
            Some(Format::JepsenLog)
        );
        assert_eq!(sniff("hello world"), None);
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn detect_skips_blank_and_comment_lines_and_uses_the_extension_only_as_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a.txt", "\n; a comment\n\n[{:process 0}]\n");
        assert_eq!(Format::detect(&p).unwrap(), Format::Edn);
        let p = write(dir.path(), "b.edn", "{\"index\":0}\n");
        assert_eq!(Format::detect(&p).unwrap(), Format::Jsonl);
        let p = write(dir.path(), "c.txt", "{:process 0, :type :invoke}\n");
        assert_eq!(Format::detect(&p).unwrap(), Format::KvLines);
        let p = write(dir.path(), "history.edn", "{:process 0, :type :invoke}\n");
        assert_eq!(Format::detect(&p).unwrap(), Format::Edn);
        let p = write(dir.path(), "empty.jsonl", "");
        assert_eq!(Format::detect(&p).unwrap(), Format::Jsonl);
        let p = write(dir.path(), "empty", "\n\n");
        let err = Format::detect(&p).unwrap_err();
        assert!(err.message.contains("--format"), "{err}");
        let p = write(dir.path(), "odd.jsonl", "\nsomething else\n");
        let err = Format::detect(&p).unwrap_err();
        assert_eq!(err.line, 2);
    }
}
