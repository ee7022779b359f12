//! The data dir's replica state: the core's [`Durable`] (view, log, stable checkpoint,
//! last new-view, own view-change) as one JSON file, `pbft.json`, replaced atomically
//! (temp file, fsync, rename, dir fsync) whenever the core says it changed.
//!
//! Why one file rewritten rather than an append-only record log: the core hands over its
//! whole durable state, which the water marks keep small (at most L log entries above the
//! stable checkpoint, plus that checkpoint's state), and the shell's disk thread writes
//! one file for every batch waiting (the last state of the batch is the one that counts).
//! A crash leaves the old or the new file, never a torn one.

use crate::pbft::Durable;
use anyhow::{Context, Result};
use nodeshell::disk::{write_atomic, Store};
use std::fs;
use std::path::{Path, PathBuf};

const STATE: &str = "pbft.json";

/// An open data dir.
pub struct PbftStorage {
    dir: PathBuf,
}

impl PbftStorage {
    /// Opens (creating if needed) the data dir; returns it and the state it holds (the
    /// default for a fresh one).
    pub fn open(dir: &Path) -> Result<(PbftStorage, Durable)> {
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
        Ok((
            PbftStorage {
                dir: dir.to_path_buf(),
            },
            durable,
        ))
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
    type Record = Box<Durable>;
    fn persist(&mut self, records: &[Box<Durable>]) -> Result<()> {
        match records.last() {
            Some(state) => self.write(state),
            None => Ok(()),
        }
    }
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
        let (mut s, d) = PbftStorage::open(&dir).unwrap();
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
        Store::persist(&mut s, &[Box::default(), Box::new(d.clone())]).unwrap();
        let (_, back) = PbftStorage::open(&dir).unwrap();
        assert_eq!(back, d);
        fs::write(dir.join(STATE), "{").unwrap();
        let err = format!("{:#}", PbftStorage::open(&dir).err().unwrap());
        assert!(
            err.contains("pbft.json") && err.contains("corrupt"),
            "{err}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
