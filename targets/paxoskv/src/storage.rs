//! The data dir: a node's durable Paxos state — promised ballot, accepted votes, snapshot —
//! and how it is read back.
//!
//! Layout (JSON, human-readable on purpose — faultline users inspect these after a failed
//! run):
//! - `paxos.jsonl`: one [`Persist`] record per line, appended in the order the core made
//!   them and fsynced once per batch (the shell's disk thread batches; group commit).
//!   Replaying the lines through [`Durable::record`] gives back the state. A snapshot
//!   record rewrites the file (temp file + rename + dir fsync) to the snapshot, the
//!   promise and the votes past it, so the file stays as long as the votes since.
//! - `incarnation`: how many times the node started, replaced atomically at each start.
//!   The node's client id is derived from it, so request numbers restart from 1 without
//!   colliding with an earlier life's in the replicated client table.
//!
//! Recovery tolerates what a crash can leave: a torn last line (dropped: its append was
//! never fsynced, so nothing was answered on it). Anything else malformed is an error
//! naming the file and line.

use crate::paxos::{Durable, Persist};
use anyhow::{bail, Context, Result};
use nodeshell::disk::{write_atomic, Store};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const RECORDS: &str = "paxos.jsonl";
const INCARNATION: &str = "incarnation";

/// An open data dir.
pub struct PaxosStorage {
    dir: PathBuf,
    file: File,
    /// What the file adds up to, so a snapshot can rewrite it.
    state: Durable,
}

impl PaxosStorage {
    /// Opens (creating if needed) the data dir; returns it, what it holds, and this
    /// start's incarnation number (1 on the first start).
    pub fn open(dir: &Path) -> Result<(PaxosStorage, Durable, u64)> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let inc_path = dir.join(INCARNATION);
        let incarnation = match fs::read_to_string(&inc_path) {
            Ok(s) => s
                .trim()
                .parse::<u64>()
                .with_context(|| format!("{}: not a number: {:?}", inc_path.display(), s.trim()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).with_context(|| format!("reading {}", inc_path.display())),
        } + 1;
        write_atomic(dir, INCARNATION, format!("{incarnation}\n").as_bytes())
            .with_context(|| format!("data dir {} is not writable", dir.display()))?;

        let path = dir.join(RECORDS);
        let raw = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut state = Durable::default();
        let mut good = 0usize; // bytes of whole, parsed lines
        let mut line_no = 0usize;
        while good < raw.len() {
            line_no += 1;
            let Some(nl) = raw[good..].iter().position(|b| *b == b'\n') else {
                break; // torn last line: never fsynced, never answered on
            };
            let line = &raw[good..good + nl];
            match serde_json::from_slice::<Persist>(line) {
                Ok(p) => state.record(&p),
                Err(_) if good + nl + 1 >= raw.len() => break,
                Err(e) => bail!(
                    "{}:{line_no}: not a Paxos record ({e}); the file is corrupt",
                    path.display()
                ),
            }
            good += nl + 1;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if good < raw.len() {
            file.set_len(good as u64)
                .with_context(|| format!("cutting the torn last line off {}", path.display()))?;
        }
        let storage = PaxosStorage {
            dir: dir.to_path_buf(),
            file,
            state: state.clone(),
        };
        Ok((storage, state, incarnation))
    }

    /// Carries out `records` in order, then fsyncs once: appends, or a rewrite when a
    /// snapshot compacts the votes it covers.
    pub fn persist(&mut self, records: &[Persist]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        for r in records {
            self.state.record(r);
        }
        if records.iter().any(|r| matches!(r, Persist::Snapshot(_))) {
            return self.rewrite();
        }
        let mut buf = Vec::with_capacity(records.len() * 96);
        for r in records {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        self.file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("appending to {}", self.dir.join(RECORDS).display()))
    }

    /// Replaces the file by the records that add up to the current state (atomically).
    fn rewrite(&mut self) -> Result<()> {
        let s = &self.state;
        let mut records = Vec::new();
        records.extend(s.snapshot.clone().map(Persist::Snapshot));
        records.push(Persist::Promise(s.promised));
        for (slot, (ballot, value)) in &s.accepted {
            records.push(Persist::Accept {
                slot: *slot,
                ballot: *ballot,
                value: value.clone(),
            });
        }
        let mut buf = Vec::new();
        for r in &records {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        write_atomic(&self.dir, RECORDS, &buf)?;
        let path = self.dir.join(RECORDS);
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("reopening {}", path.display()))?;
        Ok(())
    }
}

/// The shell's disk thread persists through this.
impl Store for PaxosStorage {
    type Record = Persist;
    fn persist(&mut self, records: &[Persist]) -> Result<()> {
        PaxosStorage::persist(self, records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Command, Kv, Request};
    use crate::paxos::{Ballot, Snapshot, Value};

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("paxoskv-storage-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn ballot(round: u64) -> Ballot {
        Ballot { round, node: 1 }
    }

    fn vote(slot: u64, round: u64, v: i64) -> Persist {
        Persist::Accept {
            slot,
            ballot: ballot(round),
            value: Value::Request(Request {
                client: 1,
                seq: slot,
                cmd: Command::Write {
                    key: "x".into(),
                    value: v,
                },
            }),
        }
    }

    #[test]
    fn records_survive_a_restart_and_a_snapshot_compacts_the_file() {
        let dir = tempdir("roundtrip");
        let mut expected = Durable::default();
        {
            let (mut s, d, inc) = PaxosStorage::open(&dir).unwrap();
            assert_eq!((d, inc), (Durable::default(), 1));
            let batches = [
                vec![Persist::Promise(ballot(1)), vote(1, 1, 10), vote(2, 1, 20)],
                vec![Persist::Promise(ballot(2)), vote(2, 2, 21), vote(3, 2, 30)],
            ];
            for b in &batches {
                s.persist(b).unwrap();
                b.iter().for_each(|p| expected.record(p));
            }
        }
        let (mut s, d, inc) = PaxosStorage::open(&dir).unwrap();
        assert_eq!((&d, inc), (&expected, 2));
        let snap = Persist::Snapshot(Snapshot {
            slot: 2,
            kv: Kv::default(),
        });
        s.persist(std::slice::from_ref(&snap)).unwrap();
        expected.record(&snap);
        drop(s);
        let text = fs::read_to_string(dir.join(RECORDS)).unwrap();
        assert_eq!(
            text.lines().count(),
            3,
            "snapshot, promise, the vote past it: {text}"
        );
        let (_, d, inc) = PaxosStorage::open(&dir).unwrap();
        assert_eq!((&d, inc), (&expected, 3));
        assert_eq!(d.accepted.keys().copied().collect::<Vec<_>>(), vec![3]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn drops_a_torn_last_line_but_rejects_a_corrupt_middle() {
        let dir = tempdir("torn");
        let (mut s, _, _) = PaxosStorage::open(&dir).unwrap();
        s.persist(&[Persist::Promise(ballot(1)), vote(1, 1, 10)])
            .unwrap();
        drop(s);
        let path = dir.join(RECORDS);
        let mut raw = fs::read(&path).unwrap();
        raw.extend_from_slice(b"{\"Accept\":{\"slot\":2,");
        fs::write(&path, &raw).unwrap();
        let (mut s, d, _) = PaxosStorage::open(&dir).unwrap();
        assert_eq!(d.accepted.len(), 1);
        s.persist(&[vote(2, 1, 20)]).unwrap();
        drop(s);
        let (_, d, _) = PaxosStorage::open(&dir).unwrap();
        assert_eq!(
            d.accepted.len(),
            2,
            "the torn line was cut off before appending"
        );

        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replacen("Promise", "Promize", 1)).unwrap();
        let err = format!("{:#}", PaxosStorage::open(&dir).err().unwrap());
        assert!(
            err.contains("paxos.jsonl:1") && err.contains("corrupt"),
            "{err}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn unwritable_data_dir_is_a_clear_error() {
        let err = PaxosStorage::open(Path::new("/proc/paxoskv-cannot-be-here"))
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("/proc/paxoskv-cannot-be-here"),
            "{err:#}"
        );
    }
}
