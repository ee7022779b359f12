//! The data dir: where a node's durable Raft state lives, and how it is read back.
//!
//! Layout (all JSON, human-readable on purpose — faultline users inspect these after a
//! failed run):
//! - `hard_state.json`: `{"term":…,"voted_for":…}`, replaced atomically (write a temp
//!   file, fsync, rename, fsync the dir).
//! - `snapshot.json`: `{"index":…,"term":…,"data":{key: value…}}`, replaced atomically.
//! - `log.jsonl`: one entry per line, the entries after the snapshot. Appends go to the
//!   end; conflict truncation cuts the file at the entry's byte offset; compaction
//!   rewrites it (temp file + rename) without the entries the snapshot covers.
//!
//! [`DiskStorage::persist`] carries out one [`Ready`](crate::raft::Ready)'s changes and
//! then fsyncs once (group commit). Recovery tolerates what a crash can leave: a torn last
//! log line (dropped), entries the snapshot already covers (skipped), entries older than
//! the snapshot's term after an interrupted install (dropped). Anything else malformed is
//! an error naming the file and line.

use crate::raft::{Entry, HardState, Persist, Recovered, Snapshot};
use anyhow::{bail, Context, Result};
use nodeshell::disk::{write_atomic, Store};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const HARD_STATE: &str = "hard_state.json";
const SNAPSHOT: &str = "snapshot.json";
const LOG: &str = "log.jsonl";

/// An open data dir.
pub struct DiskStorage {
    dir: PathBuf,
    log: File,
    /// Index covered by the snapshot; the log file holds `snap_index + 1 ..`.
    snap_index: u64,
    /// Byte offset where each entry's line starts, in index order.
    offsets: Vec<u64>,
    /// Length of the log file.
    end: u64,
}

impl DiskStorage {
    /// Opens (creating if needed) the data dir and reads back what it holds.
    pub fn open(dir: &Path) -> Result<(DiskStorage, Recovered)> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let probe = dir.join(".write-test");
        fs::write(&probe, b"ok")
            .with_context(|| format!("data dir {} is not writable", dir.display()))?;
        let _ = fs::remove_file(&probe);

        let hard_state: HardState = read_json(&dir.join(HARD_STATE))?.unwrap_or_default();
        let snapshot: Option<Snapshot> = read_json(&dir.join(SNAPSHOT))?;
        let (snap_index, snap_term) = snapshot.as_ref().map_or((0, 0), |s| (s.index, s.term));

        let log_path = dir.join(LOG);
        let raw = match fs::read(&log_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", log_path.display())),
        };
        let mut entries = Vec::new();
        let mut starts = Vec::new();
        let mut clean = true; // the file holds exactly `entries`, nothing more
        let mut pos = 0usize;
        let mut line_no = 0usize;
        while pos < raw.len() {
            line_no += 1;
            let Some(nl) = raw[pos..].iter().position(|b| *b == b'\n') else {
                clean = false; // torn last line: the append never completed, never acked
                break;
            };
            let line = &raw[pos..pos + nl];
            let start = pos as u64;
            pos += nl + 1;
            let e: Entry = match serde_json::from_slice(line) {
                Ok(e) => e,
                Err(_) if pos >= raw.len() => {
                    clean = false;
                    break;
                }
                Err(err) => bail!(
                    "{}:{line_no}: not a log entry ({err}); the log is corrupt",
                    log_path.display()
                ),
            };
            if e.index <= snap_index {
                clean = false;
                continue;
            }
            if e.term < snap_term {
                // Left over from an install interrupted between snapshot and log rewrite.
                clean = false;
                break;
            }
            let expected = snap_index + entries.len() as u64 + 1;
            if e.index != expected {
                bail!(
                    "{}:{line_no}: entry has index {} where {expected} was expected; the log has a hole",
                    log_path.display(),
                    e.index
                );
            }
            entries.push(e);
            starts.push(start);
        }

        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut storage = DiskStorage {
            dir: dir.to_path_buf(),
            log,
            snap_index,
            offsets: Vec::new(),
            end: 0,
        };
        if clean {
            storage.offsets = starts;
            storage.end = raw.len() as u64;
        } else {
            storage.rewrite_log(&entries)?;
        }
        let recovered = Recovered {
            hard_state,
            snapshot,
            entries,
        };
        Ok((storage, recovered))
    }

    /// Carries out `changes` in order, then fsyncs once.
    pub fn persist(&mut self, changes: &[Persist]) -> Result<()> {
        let mut log_dirty = false;
        for c in changes {
            match c {
                Persist::HardState(hs) => {
                    write_atomic(&self.dir, HARD_STATE, &serde_json::to_vec(hs)?)?
                }
                Persist::Append(entries) => {
                    let mut buf = Vec::with_capacity(entries.len() * 64);
                    for e in entries {
                        self.offsets.push(self.end + buf.len() as u64);
                        serde_json::to_writer(&mut buf, e)?;
                        buf.push(b'\n');
                    }
                    self.log
                        .write_all_at(&buf, self.end)
                        .with_context(|| format!("appending to {}", self.log_path().display()))?;
                    self.end += buf.len() as u64;
                    log_dirty = true;
                }
                Persist::Truncate { from } => {
                    let k = from.saturating_sub(self.snap_index + 1) as usize;
                    if k < self.offsets.len() {
                        self.end = self.offsets[k];
                        self.offsets.truncate(k);
                        self.log
                            .set_len(self.end)
                            .with_context(|| format!("truncating {}", self.log_path().display()))?;
                        log_dirty = true;
                    }
                }
                Persist::Compact(s) => {
                    write_atomic(&self.dir, SNAPSHOT, &serde_json::to_vec(s)?)?;
                    let keep = self.read_entries_after(s.index)?;
                    self.snap_index = s.index;
                    self.rewrite_log(&keep)?;
                }
                Persist::Install(s) => {
                    write_atomic(&self.dir, SNAPSHOT, &serde_json::to_vec(s)?)?;
                    self.snap_index = s.index;
                    self.rewrite_log(&[])?;
                }
            }
        }
        if log_dirty {
            self.log
                .sync_data()
                .with_context(|| format!("fsync of {}", self.log_path().display()))?;
        }
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG)
    }

    /// The log's entries with index > `index`, read back from the file.
    fn read_entries_after(&self, index: u64) -> Result<Vec<Entry>> {
        let k = index.saturating_sub(self.snap_index) as usize;
        if k >= self.offsets.len() {
            return Ok(Vec::new());
        }
        let start = self.offsets[k];
        let mut buf = vec![0u8; (self.end - start) as usize];
        self.log
            .read_exact_at(&mut buf, start)
            .with_context(|| format!("reading {}", self.log_path().display()))?;
        buf.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).context("re-reading the log for compaction"))
            .collect()
    }

    /// Replaces the log file by one holding exactly `entries` (atomically).
    fn rewrite_log(&mut self, entries: &[Entry]) -> Result<()> {
        let mut buf = Vec::new();
        self.offsets.clear();
        for e in entries {
            self.offsets.push(buf.len() as u64);
            serde_json::to_writer(&mut buf, e)?;
            buf.push(b'\n');
        }
        write_atomic(&self.dir, LOG, &buf)?;
        let path = self.log_path();
        self.log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("reopening {}", path.display()))?;
        self.end = buf.len() as u64;
        Ok(())
    }
}

/// The shell's disk thread persists through this.
impl Store for DiskStorage {
    type Record = Persist;
    fn persist(&mut self, records: &[Persist]) -> Result<()> {
        DiskStorage::persist(self, records)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .with_context(|| format!("{}: malformed", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodeshell::kv::Command;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            cmd: Some(Command::Write {
                key: format!("k{index}"),
                value: index as i64,
            }),
        }
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("raftkv-storage-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn reopening_reads_back_what_was_persisted() {
        let dir = tempdir("roundtrip");
        let changes = vec![
            Persist::HardState(HardState {
                term: 3,
                voted_for: Some("n2".into()),
            }),
            Persist::Append((1..=6).map(|i| entry(i, 1)).collect()),
            Persist::Truncate { from: 5 },
            Persist::Append(vec![entry(5, 3), entry(6, 3)]),
            Persist::Compact(Snapshot {
                index: 2,
                term: 1,
                data: [("k1".to_string(), 1), ("k2".to_string(), 2)].into(),
            }),
            Persist::Append(vec![entry(7, 3)]),
            Persist::Truncate { from: 7 },
            Persist::Append(vec![entry(7, 3), entry(8, 3)]),
        ];
        let mut expected = Recovered::default();
        {
            let (mut s, r) = DiskStorage::open(&dir).unwrap();
            assert!(r.entries.is_empty() && r.snapshot.is_none());
            for c in &changes {
                s.persist(std::slice::from_ref(c)).unwrap();
                expected.apply(c);
            }
        }
        let (_, r) = DiskStorage::open(&dir).unwrap();
        assert_eq!(r.hard_state, expected.hard_state);
        assert_eq!(r.snapshot, expected.snapshot);
        assert_eq!(r.entries, expected.entries);
        assert_eq!(r.entries.first().map(|e| e.index), Some(3));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn install_replaces_the_log_and_survives_reopen() {
        let dir = tempdir("install");
        let (mut s, _) = DiskStorage::open(&dir).unwrap();
        s.persist(&[Persist::Append((1..=3).map(|i| entry(i, 1)).collect())])
            .unwrap();
        let snap = Snapshot {
            index: 10,
            term: 2,
            data: Default::default(),
        };
        s.persist(&[
            Persist::Install(snap.clone()),
            Persist::Append(vec![entry(11, 2)]),
        ])
        .unwrap();
        drop(s);
        let (_, r) = DiskStorage::open(&dir).unwrap();
        assert_eq!(r.snapshot, Some(snap));
        assert_eq!(r.entries, vec![entry(11, 2)]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn drops_a_torn_last_line_but_rejects_a_corrupt_middle() {
        let dir = tempdir("torn");
        let (mut s, _) = DiskStorage::open(&dir).unwrap();
        s.persist(&[Persist::Append((1..=3).map(|i| entry(i, 1)).collect())])
            .unwrap();
        drop(s);
        let path = dir.join(LOG);
        let mut raw = fs::read(&path).unwrap();
        raw.extend_from_slice(b"{\"index\":4,\"te");
        fs::write(&path, &raw).unwrap();
        let (mut s, r) = DiskStorage::open(&dir).unwrap();
        assert_eq!(r.entries.len(), 3);
        s.persist(&[Persist::Append(vec![entry(4, 1)])]).unwrap();
        drop(s);
        let (_, r) = DiskStorage::open(&dir).unwrap();
        assert_eq!(
            r.entries.len(),
            4,
            "the torn line was cut off before appending"
        );

        let text = fs::read_to_string(&path)
            .unwrap()
            .replacen("\"index\":2", "\"index\":9", 1);
        fs::write(&path, text).unwrap();
        let err = DiskStorage::open(&dir).err().unwrap().to_string();
        assert!(err.contains("log.jsonl:2") && err.contains("hole"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn unwritable_data_dir_is_a_clear_error() {
        let err = DiskStorage::open(Path::new("/proc/raftkv-cannot-be-here"))
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("/proc/raftkv-cannot-be-here"),
            "{err:#}"
        );
    }
}
