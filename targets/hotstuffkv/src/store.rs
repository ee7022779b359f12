//! The library's `KVStore`, persistent: hotstuff_rs keeps its whole block tree — blocks,
//! the locked and highest phase certificates, the highest view voted in, the committed
//! app state — in the store it is given, and reads it back when a replica starts
//! (`Algorithm::new` resumes from the stored highest view; `ReplicaSpec::start` reads the
//! committed validator set). A replica that forgot its votes or its lock after a crash
//! could vote twice in a view, so every write batch is on disk before `write` returns.
//!
//! Layout: one append-only log (`blocktree.wal`) of write batches, each record
//! `[len u32][crc32 u32][entries]`, every append followed by an fsync; the map is rebuilt
//! from it at start. A torn last record (a power failure mid-append: it was never
//! acknowledged) fails its checksum and is cut off. When the log grows past
//! [`COMPACT_BYTES`] and twice the live data, it is rewritten as one record of the whole
//! map (temp file, fsync, rename, directory fsync).
//!
//! **A library bug worked around here.** hotstuff_rs 0.4.0's provided `KVGet::block_data`
//! (src/block_tree/pluggables.rs, line 152) checks its datums with `Iterator::find` on
//! the iterator it then collects: `find` consumes it, so every block comes back with no
//! data. The block-sync server sends blocks read that way, so a replica that catches up
//! by sync receives blocks whose data no longer matches their data hash, and a correct
//! app must reject them (a replica that missed blocks can then never catch up). The trait
//! lets a store provide the method; ours reads the datums correctly ([`read_block_data`]),
//! unless the store was opened with `stock_block_data` (`--bug stock-block-data`), which
//! keeps the library's version so the finding can be reproduced.
//!
//! The lock discipline is the library's own in-memory test store's: one mutex over the
//! map, held by a snapshot for as long as the snapshot lives.

use anyhow::{Context, Result};
use hotstuff_rs::block_tree::pluggables::{KVGet, KVGetError, KVStore, Key, WriteBatch};
use hotstuff_rs::types::data_types::{CryptoHash, Data};
use nodeshell::disk::write_atomic;
use nodeshell::log_line;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The log's file name in the data dir.
pub const WAL_FILE: &str = "blocktree.wal";
/// The log is compacted once it is this long (and twice the live data).
const COMPACT_BYTES: u64 = 64 << 20;
/// Largest record accepted when reading back (a corrupt length must not allocate GiBs).
const MAX_RECORD_BYTES: usize = 1 << 30;

type Map = HashMap<Vec<u8>, Vec<u8>>;
/// A batch's entries in order: key, and the value to set (None: delete).
type Entries = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// The store: the map in memory, the log on disk. Clones share both (the library clones
/// its store into each of its threads).
#[derive(Clone)]
pub struct DiskStore(Arc<Mutex<Inner>>);

struct Inner {
    map: Map,
    dir: PathBuf,
    wal: File,
    wal_bytes: u64,
    live_bytes: u64,
    /// Who to name in the log line before exiting on a failed write.
    node: String,
    /// Use the library's `block_data` (see the module doc) instead of ours.
    stock_block_data: bool,
}

/// `KVGet::block_data` as the library means it: the block's datums, in order (None when
/// the block is unknown; an error when a datum is missing).
pub fn read_block_data<G: KVGet + ?Sized>(
    g: &G,
    block: &CryptoHash,
) -> Result<Option<Data>, KVGetError> {
    let Some(len) = g.block_data_len(block)? else {
        return Ok(None);
    };
    let datums: Option<Vec<_>> = (0..len.int()).map(|i| g.block_datum(block, i)).collect();
    match datums {
        Some(d) => Ok(Some(Data::new(d))),
        None => Err(KVGetError::ValueExpectedButNotFound {
            key: Key::BlockData { block: *block },
        }),
    }
}

/// The library's provided `block_data`, called on a wrapper that does not override it.
struct Stock<'a, G: KVGet>(&'a G);

impl<G: KVGet> KVGet for Stock<'_, G> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key)
    }
}

/// Encodes one batch: per entry a tag (1 set, 0 delete), the key, and for a set the value,
/// each length-prefixed (u32 little-endian).
fn encode(entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in entries {
        body.push(u8::from(v.is_some()));
        body.extend_from_slice(&(k.len() as u32).to_le_bytes());
        body.extend_from_slice(k);
        if let Some(v) = v {
            body.extend_from_slice(&(v.len() as u32).to_le_bytes());
            body.extend_from_slice(v);
        }
    }
    let mut rec = Vec::with_capacity(body.len() + 8);
    rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    rec.extend_from_slice(&body);
    rec
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

fn take_u32(buf: &mut &[u8]) -> Option<usize> {
    Some(u32::from_le_bytes(take(buf, 4)?.try_into().ok()?) as usize)
}

/// One record's entries; None if the body does not parse.
fn decode_body(mut body: &[u8]) -> Option<Entries> {
    let mut entries = Vec::new();
    while !body.is_empty() {
        let tag = take(&mut body, 1)?[0];
        let klen = take_u32(&mut body)?;
        let key = take(&mut body, klen)?.to_vec();
        let value = if tag == 1 {
            let vlen = take_u32(&mut body)?;
            Some(take(&mut body, vlen)?.to_vec())
        } else {
            None
        };
        entries.push((key, value));
    }
    Some(entries)
}

/// Replays a log: the map and the length of its intact prefix.
fn replay(bytes: &[u8]) -> (Map, usize) {
    let mut map = Map::new();
    let mut rest = bytes;
    let mut good = 0;
    loop {
        let mut cur = rest;
        let (Some(len), Some(crc)) = (take_u32(&mut cur), take_u32(&mut cur)) else {
            break;
        };
        if len > MAX_RECORD_BYTES {
            break;
        }
        let Some(body) = take(&mut cur, len) else {
            break;
        };
        if crc32fast::hash(body) as usize != crc {
            break;
        }
        let Some(entries) = decode_body(body) else {
            break;
        };
        for (k, v) in entries {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        good += 8 + len;
        rest = cur;
    }
    (map, good)
}

fn live_bytes(map: &Map) -> u64 {
    map.iter()
        .map(|(k, v)| (k.len() + v.len() + 9) as u64)
        .sum()
}

impl DiskStore {
    /// Opens (or creates) the store in `dir`, replaying its log; a torn tail is cut off.
    /// `stock_block_data`: keep the library's broken `block_data` (module doc).
    pub fn open(dir: &Path, node: &str, stock_block_data: bool) -> Result<DiskStore> {
        let path = dir.join(WAL_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let (map, good) = replay(&bytes);
        if good < bytes.len() {
            log_line(
                node,
                &format!(
                    "{}: cutting a torn tail of {} bytes after {good} intact bytes",
                    path.display(),
                    bytes.len() - good
                ),
            );
        }
        let wal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        wal.set_len(good as u64)
            .and_then(|()| wal.sync_all())
            .with_context(|| format!("truncating {}", path.display()))?;
        let live = live_bytes(&map);
        Ok(DiskStore(Arc::new(Mutex::new(Inner {
            map,
            dir: dir.to_path_buf(),
            wal,
            wal_bytes: good as u64,
            live_bytes: live,
            node: node.to_string(),
            stock_block_data,
        }))))
    }

    /// True when nothing was ever written (the replica must be initialized).
    pub fn is_empty(&self) -> bool {
        self.lock().map.is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a library thread panicked mid-read; the map itself is only
        // changed after its record is durable, so it is still consistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn append(&mut self, rec: &[u8]) -> Result<()> {
        self.wal.write_all(rec)?;
        self.wal.sync_data()?;
        self.wal_bytes += rec.len() as u64;
        Ok(())
    }

    fn compact(&mut self) -> Result<()> {
        let entries: Vec<_> = self
            .map
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        let rec = encode(&entries);
        write_atomic(&self.dir, WAL_FILE, &rec)?;
        let path = self.dir.join(WAL_FILE);
        self.wal = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("reopening {}", path.display()))?;
        self.wal_bytes = rec.len() as u64;
        Ok(())
    }

    /// The store cannot tell the library a write failed (`write` returns nothing), and a
    /// replica that went on after losing a vote record could vote twice: stop the node.
    fn fail(&self, what: &str, e: anyhow::Error) -> ! {
        log_line(
            &self.node,
            &format!("fatal: {what} {}: {e:#}", self.dir.join(WAL_FILE).display()),
        );
        std::process::exit(1)
    }
}

/// A batch as the library builds it: the entries in order.
pub struct Batch(Entries);

impl WriteBatch for Batch {
    fn new() -> Self {
        Batch(Vec::new())
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        self.0.push((key.to_vec(), Some(value.to_vec())));
    }

    fn delete(&mut self, key: &[u8]) {
        self.0.push((key.to_vec(), None));
    }
}

impl KVStore for DiskStore {
    type WriteBatch = Batch;
    type Snapshot<'a> = Snapshot<'a>;

    fn write(&mut self, wb: Batch) {
        if wb.0.is_empty() {
            return;
        }
        let rec = encode(&wb.0);
        let mut inner = self.lock();
        if let Err(e) = inner.append(&rec) {
            inner.fail("appending to", e);
        }
        for (k, v) in wb.0 {
            match v {
                Some(v) => {
                    inner.live_bytes += (k.len() + v.len() + 9) as u64;
                    inner.map.insert(k, v);
                }
                None => {
                    inner.map.remove(&k);
                }
            }
        }
        if inner.wal_bytes > COMPACT_BYTES && inner.wal_bytes > 2 * inner.live_bytes {
            inner.live_bytes = live_bytes(&inner.map);
            if inner.wal_bytes > 2 * inner.live_bytes {
                if let Err(e) = inner.compact() {
                    inner.fail("compacting", e);
                }
            }
        }
    }

    fn clear(&mut self) {
        let mut inner = self.lock();
        inner.map.clear();
        inner.live_bytes = 0;
        if let Err(e) = inner.compact() {
            inner.fail("clearing", e);
        }
    }

    fn snapshot(&self) -> Snapshot<'_> {
        Snapshot(self.lock())
    }
}

impl KVGet for DiskStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lock().map.get(key).cloned()
    }

    fn block_data(&self, block: &CryptoHash) -> Result<Option<Data>, KVGetError> {
        if self.lock().stock_block_data {
            return Stock(self).block_data(block);
        }
        read_block_data(self, block)
    }
}

/// A consistent view: the store's lock, held while the snapshot lives.
pub struct Snapshot<'a>(MutexGuard<'a, Inner>);

impl KVGet for Snapshot<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.map.get(key).cloned()
    }

    fn block_data(&self, block: &CryptoHash) -> Result<Option<Data>, KVGetError> {
        if self.0.stock_block_data {
            return Stock(self).block_data(block);
        }
        read_block_data(self, block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("hotstuffkv-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_survive_a_reopen_and_a_torn_tail_is_cut_off() {
        let d = dir("reopen");
        let mut s = DiskStore::open(&d, "n1", false).unwrap();
        assert!(s.is_empty());
        let mut wb = Batch::new();
        wb.set(b"a", b"1");
        wb.set(b"b", b"2");
        s.write(wb);
        let mut wb = Batch::new();
        wb.delete(b"a");
        wb.set(b"c", b"3");
        s.write(wb);
        drop(s);
        // Half a record at the end: what a power failure mid-append leaves.
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.join(WAL_FILE))
            .unwrap();
        let torn = encode(&[(b"d".to_vec(), Some(b"4".to_vec()))]);
        f.write_all(&torn[..torn.len() - 1]).unwrap();
        drop(f);
        let s = DiskStore::open(&d, "n1", false).unwrap();
        assert_eq!(s.get(b"a"), None);
        assert_eq!(s.get(b"b"), Some(b"2".to_vec()));
        assert_eq!(s.get(b"c"), Some(b"3".to_vec()));
        assert_eq!(s.get(b"d"), None);
        // The torn bytes are gone, so a new append is readable after the next start.
        let mut s2 = s.clone();
        let mut wb = Batch::new();
        wb.set(b"e", b"5");
        s2.write(wb);
        drop((s, s2));
        let s = DiskStore::open(&d, "n1", false).unwrap();
        assert_eq!(s.snapshot().get(b"e"), Some(b"5".to_vec()));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A block of two datums, its length and datums answered by the per-key methods.
    struct TwoDatums;

    impl KVGet for TwoDatums {
        fn get(&self, _: &[u8]) -> Option<Vec<u8>> {
            None
        }
        fn block_data_len(
            &self,
            _: &CryptoHash,
        ) -> Result<Option<hotstuff_rs::types::data_types::DataLen>, KVGetError> {
            Ok(Some(hotstuff_rs::types::data_types::DataLen::new(2)))
        }
        fn block_datum(
            &self,
            _: &CryptoHash,
            i: u32,
        ) -> Option<hotstuff_rs::types::data_types::Datum> {
            Some(hotstuff_rs::types::data_types::Datum::new(vec![i as u8]))
        }
    }

    #[test]
    fn block_data_reads_every_datum_where_the_librarys_reads_none() {
        let hash = CryptoHash::new([7; 32]);
        let ours = read_block_data(&TwoDatums, &hash).unwrap().unwrap();
        assert_eq!(ours.len().int(), 2);
        assert_eq!(
            ours.iter().map(|d| d.bytes()[0]).collect::<Vec<_>>(),
            [0, 1]
        );
        // The library's provided method on the same store: the finding, kept reproducible.
        let stock = TwoDatums.block_data(&hash).unwrap().unwrap();
        assert_eq!(stock.len().int(), 0);
    }

    #[test]
    fn compaction_keeps_exactly_the_live_map() {
        let d = dir("compact");
        let mut s = DiskStore::open(&d, "n1", false).unwrap();
        for i in 0..10u8 {
            let mut wb = Batch::new();
            wb.set(&[i % 3], &[i]);
            s.write(wb);
        }
        s.lock().compact().unwrap();
        let mut wb = Batch::new();
        wb.set(b"z", b"after");
        s.write(wb);
        drop(s);
        let s = DiskStore::open(&d, "n1", false).unwrap();
        assert_eq!(s.get(&[0]), Some(vec![9]));
        assert_eq!(s.get(&[1]), Some(vec![7]));
        assert_eq!(s.get(&[2]), Some(vec![8]));
        assert_eq!(s.get(b"z"), Some(b"after".to_vec()));
        let _ = std::fs::remove_dir_all(&d);
    }
}
