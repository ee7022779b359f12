//! The journal: the one point where a run's ops get their index and time, shared by the
//! workers and the nemesis, streaming into `history.jsonl`.

use super::{HistoryWriter, Op};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Mutex;

/// The journal: the single point where ops get their index and time.
#[derive(Debug)]
pub struct Journal {
    writer: Mutex<HistoryWriter>,
}

impl Journal {
    pub fn create(path: &Path, start: std::time::Instant) -> Result<Journal> {
        let writer = HistoryWriter::create_at(path, start)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Journal {
            writer: Mutex::new(writer),
        })
    }

    /// Stamp and append; a journal that cannot be written ends the run (a history with
    /// holes would be checked wrongly).
    pub fn record(&self, op: Op) -> Result<Op> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        w.append_stamped(op)
            .context("cannot append to history.jsonl")
    }

    /// Stamp now, write with the next [`Journal::record`] or [`Journal::flush`] (whoever's):
    /// a worker's completion rides along with its next invocation, halving the journal's
    /// system calls. Only for a caller that records or flushes again without awaiting.
    pub fn stage(&self, op: Op) -> Result<Op> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        w.stage_stamped(op)
            .context("cannot append to history.jsonl")
    }

    pub fn flush(&self) -> Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        w.flush().context("cannot append to history.jsonl")
    }

    pub fn sync(&self) {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let _ = w.sync();
    }
}
