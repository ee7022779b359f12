//! The data dir's replica state: the core's [`Durable`] (view, log, stable checkpoint,
//! last new-view, own view-change) as one JSON file, `pbft.json`, replaced atomically
//! (temp file, fsync, rename, dir fsync) whenever the core says it changed.
//!
//! Why one file rewritten rather than an append-only record log: the core hands over its
//! whole durable state, which the water marks keep small (at most L log entries above the
//! stable checkpoint, plus that checkpoint's state), and the shell's disk thread writes
//! one file for every batch waiting (the last state of the batch is the one that counts).
//! A crash leaves the old or the new file, never a torn one.
//!
//! Beside it, `executed.jsonl`: one line `{"seq", "digest"}` per request the replica
//! executed, appended and fsynced with the batch that executed it, so the `log` answer
//! (faultline's agreement oracle) covers what ran before a restart too. The core does not
//! need it (the stable checkpoint and the log above it are its state); a crash can tear
//! only its last line, which opening cuts off.

use crate::pbft::Durable;
use anyhow::{bail, Context, Result};
use nodeshell::disk::{write_atomic, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const STATE: &str = "pbft.json";
const EXECUTED: &str = "executed.jsonl";

/// One durable change handed to the disk thread.
#[derive(Debug)]
pub enum Record {
    /// The core's whole durable state (only a batch's last one is written).
    State(Box<Durable>),
    /// Requests executed: (sequence number, digest in hex).
    Executed(Vec<(u64, String)>),
}

/// One line of `executed.jsonl`.
#[derive(Serialize, Deserialize)]
struct ExecutedLine {
    seq: u64,
    digest: String,
}

/// Sequence number → digest of the request executed there.
pub type Executed = BTreeMap<u64, String>;

/// An open data dir.
pub struct PbftStorage {
    dir: PathBuf,
}

impl PbftStorage {
    /// Opens (creating if needed) the data dir; returns it, the state it holds (the
    /// default for a fresh one) and the requests it executed.
    pub fn open(dir: &Path) -> Result<(PbftStorage, Durable, Executed)> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        let path = dir.join(STATE);
        let durable = match fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw).with_context(|| {
                format!(
                    "{}: not a pbftkv replica state; the file is corrupt",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Durable::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let executed = read_executed(&dir.join(EXECUTED))?;
        Ok((
            PbftStorage {
                dir: dir.to_path_buf(),
            },
            durable,
            executed,
        ))
    }

    /// Appends `entries` to `executed.jsonl` and fsyncs it.
    fn append_executed(&mut self, entries: &[&(u64, String)]) -> Result<()> {
        let path = self.dir.join(EXECUTED);
        let mut text = Vec::new();
        for (seq, digest) in entries {
            serde_json::to_writer(
                &mut text,
                &ExecutedLine {
                    seq: *seq,
                    digest: digest.clone(),
                },
            )?;
            text.push(b'\n');
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        f.write_all(&text)
            .and_then(|()| f.sync_data())
            .with_context(|| format!("appending to {}", path.display()))
    }

    /// Makes `state` the durable one.
    pub fn write(&mut self, state: &Durable) -> Result<()> {
        let bytes = serde_json::to_vec(state).context("encoding the replica state")?;
        write_atomic(&self.dir, STATE, &bytes)
    }
}

/// The shell's disk thread persists through this: each record is a whole state, so only
/// the batch's last one is written.
impl Store for PbftStorage {
    type Record = Record;
    fn persist(&mut self, records: &[Record]) -> Result<()> {
        let last_state = records.iter().rev().find_map(|r| match r {
            Record::State(s) => Some(s),
            Record::Executed(_) => None,
        });
        if let Some(state) = last_state {
            self.write(state)?;
        }
        let executed: Vec<&(u64, String)> = records
            .iter()
            .flat_map(|r| match r {
                Record::Executed(e) => e.as_slice(),
                Record::State(_) => &[],
            })
            .collect();
        if executed.is_empty() {
            return Ok(());
        }
        self.append_executed(&executed)
    }
}

/// Reads `executed.jsonl` (absent: nothing executed). A last line a crash tore (no
/// newline, or not JSON) is cut off the file, so the next append starts a fresh line; a
/// bad line before it is corruption, refused with its number.
fn read_executed(path: &Path) -> Result<Executed> {
    let raw = match fs::read(path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Executed::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = Executed::new();
    let mut good = 0usize;
    let mut lines = raw.split_inclusive(|b| *b == b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let last = lines.peek().is_none();
        let parsed = line
            .strip_suffix(b"\n")
            .and_then(|l| serde_json::from_slice::<ExecutedLine>(l).ok());
        match parsed {
            Some(e) => {
                out.insert(e.seq, e.digest);
                good += line.len();
            }
            None if last => {
                fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(good as u64).and_then(|()| f.sync_data()))
                    .with_context(|| format!("cutting the torn last line of {}", path.display()))?;
            }
            None => bail!(
                "{}:{}: not an executed-request line; the file is corrupt",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ClientSigner;
    use crate::kv::{Kv, Op};
    use crate::pbft::{PrePrepare, Signed, Slot, Vote};

    #[test]
    fn the_state_survives_a_restart_and_corruption_is_named() {
        let dir = std::env::temp_dir().join(format!("pbftkv-storage-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (mut s, d, _) = PbftStorage::open(&dir).unwrap();
        assert_eq!(d, Durable::default());
        let req = ClientSigner::from_secret([7; 32]).request(
            1,
            Op::Write {
                key: "k".into(),
                value: 3,
            },
        );
        let mut kv = Kv::default();
        kv.execute(&req);
        let mut d = Durable {
            view: 2,
            ..Durable::default()
        };
        d.stable.state = Some(kv);
        let mut slot = Slot {
            pre_prepare: Some(Signed {
                body: PrePrepare {
                    view: 2,
                    seq: 1,
                    digest: req.digest(),
                    request: Some(req.clone()),
                    replica: 2,
                },
                sig: crate::kv::Sig([9; 64]),
            }),
            ..Slot::default()
        };
        let vote = Signed {
            body: Vote {
                view: 2,
                seq: 1,
                digest: req.digest(),
                replica: 1,
            },
            sig: crate::kv::Sig([1; 64]),
        };
        slot.prepares.insert((2, 1), vote);
        d.slots.insert(1, slot);
        Store::persist(
            &mut s,
            &[
                Record::State(Box::default()),
                Record::Executed(vec![(1, "aa".into())]),
                Record::State(Box::new(d.clone())),
                Record::Executed(vec![(2, "bb".into())]),
            ],
        )
        .unwrap();
        let (_, back, executed) = PbftStorage::open(&dir).unwrap();
        assert_eq!(back, d);
        let want: Executed = [(1, "aa".to_string()), (2, "bb".to_string())].into();
        assert_eq!(executed, want);
        // A torn last line (a crash mid-append) is cut off; the next append starts clean.
        let log = dir.join(EXECUTED);
        let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"{\"seq\":3,\"dig").unwrap();
        drop(f);
        let (mut s, _, executed) = PbftStorage::open(&dir).unwrap();
        assert_eq!(executed, want);
        Store::persist(&mut s, &[Record::Executed(vec![(3, "cc".into())])]).unwrap();
        let (_, _, executed) = PbftStorage::open(&dir).unwrap();
        assert_eq!(executed.get(&3).map(String::as_str), Some("cc"));
        // A bad line before the last is corruption, named with its line.
        fs::write(
            &log,
            "{\"seq\":1,\"digest\":\"aa\"}\nxx\n{\"seq\":2,\"digest\":\"bb\"}\n",
        )
        .unwrap();
        let err = format!("{:#}", PbftStorage::open(&dir).err().unwrap());
        assert!(err.contains("executed.jsonl:2"), "{err}");
        fs::remove_file(&log).unwrap();
        fs::write(dir.join(STATE), "{").unwrap();
        let err = format!("{:#}", PbftStorage::open(&dir).err().unwrap());
        assert!(
            err.contains("pbft.json") && err.contains("corrupt"),
            "{err}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
