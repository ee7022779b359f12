//! The damage a `corrupt` fault does to one file: the draws (which bits, how long a cut,
//! which stale chunk), pure functions of the file's bytes and a seeded generator, and the
//! writes that carry them out, each fsynced so the damage is on the disk the node restarts
//! from (a data dir on the power-failure filesystem keeps only what was fsynced).
//!
//! Drawing apart from writing lets the draws be tested on bytes: the same seed and the
//! same file give the same damage.

use crate::spec::nemesis::Damage;
use anyhow::{Context, Result};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Zipf};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// At most this many bits flip in one file, whatever the probability: the journal lists
/// every flip, and a file rewritten at random is not a disk error but a lost disk.
pub const MAX_FLIPS_PER_FILE: u64 = 256;
/// A stale chunk is one page at a page boundary, the unit a disk or the page cache writes
/// back (a misdirected or lost write brings back one page, not a byte range).
pub const CHUNK_BYTES: u64 = 4096;
/// How much of a node's data files an earlier copy keeps; files past it are not copied
/// (and cannot have a chunk restored): the copies live in the controller's memory.
pub const SNAPSHOT_LIMIT_BYTES: u64 = 64 << 20;
/// The Zipf exponent of truncation lengths: with 1, a cut of k bytes is about k times less
/// likely than a cut of one byte, so most cuts take a record's tail and a few take most of
/// the file.
const ZIPF_EXPONENT: f64 = 1.0;

/// One change made to one file of a node, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub node: String,
    /// Relative to the node's data dir.
    pub file: String,
    pub damage: Damage,
    /// bitflip: the byte; truncate: the new length; restore: the chunk's start.
    pub offset: u64,
    /// bitflip: 1; truncate: the bytes cut; restore: the chunk's length.
    pub length: u64,
    /// bitflip: the bits of the byte that flipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<u8>,
    /// restore: how many bytes of the chunk the earlier copy changed, and when that copy
    /// was taken (`armed`: when the schedule started; `previous corrupt`: this node's
    /// last corruption, before its damage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// Copies of a node's data files at one point of the run, for `restore`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Path relative to the data dir → its bytes then.
    pub files: BTreeMap<String, Vec<u8>>,
    /// When it was taken, for the journal.
    pub taken: String,
}

impl Snapshot {
    /// Copy `files` of `dir` (up to [`SNAPSHOT_LIMIT_BYTES`] in all); a file that vanished
    /// meanwhile (a rename) or would pass the limit is left out.
    pub fn take(dir: &Path, files: &[PathBuf], taken: &str) -> Snapshot {
        let mut s = Snapshot {
            files: BTreeMap::new(),
            taken: taken.to_string(),
        };
        let mut total = 0;
        for f in files {
            let Ok(len) = std::fs::metadata(f).map(|m| m.len()) else {
                continue;
            };
            if total + len > SNAPSHOT_LIMIT_BYTES {
                tracing::info!(
                    "nemesis: {} not copied for a later restore: the copies of a node's files are limited to {} MiB",
                    f.display(),
                    SNAPSHOT_LIMIT_BYTES >> 20
                );
                continue;
            }
            if let Ok(bytes) = std::fs::read(f) {
                total += bytes.len() as u64;
                s.files.insert(relative(dir, f), bytes);
            }
        }
        s
    }
}

/// `file`'s path below `dir`, as journaled.
pub fn relative(dir: &Path, file: &Path) -> String {
    file.strip_prefix(dir).unwrap_or(file).display().to_string()
}

/// The bits of a `len`-byte file that flip when each flips with `probability`: (byte,
/// mask) sorted by byte, at most [`MAX_FLIPS_PER_FILE`] bits.
pub fn bitflips(len: u64, probability: f64, rng: &mut ChaCha8Rng) -> Vec<(u64, u8)> {
    let bits = len.saturating_mul(8);
    if bits == 0 {
        return Vec::new();
    }
    let k = match Binomial::new(bits, probability.clamp(0.0, 1.0)) {
        Ok(b) => b.sample(rng).min(MAX_FLIPS_PER_FILE),
        Err(_) => 0,
    };
    let mut bytes: BTreeMap<u64, u8> = BTreeMap::new();
    for bit in rand::seq::index::sample(rng, bits as usize, k as usize) {
        *bytes.entry(bit as u64 / 8).or_insert(0) ^= 1 << (bit % 8);
    }
    bytes.into_iter().collect()
}

/// How many bytes to cut from the end of a `len`-byte file: Zipf-distributed over
/// 1..=len, so never more than the file (0 for an empty file).
pub fn truncation(len: u64, rng: &mut ChaCha8Rng) -> u64 {
    if len == 0 {
        return 0;
    }
    match Zipf::new(len as f64, ZIPF_EXPONENT) {
        Ok(z) => (z.sample(rng) as u64).clamp(1, len),
        Err(_) => 1,
    }
}

/// The pages of the earlier copy `old` that writing back would change the file with,
/// (offset, length) in file order. A page is one that held data in the copy; what the
/// copy had past its end reads as zeros (a lost write of the page that held the copy's
/// end brings back the page as it was, so bytes appended into it since are gone). The
/// length stops at the longer of the copy and the file now, so a restore never makes a
/// file longer than both. `current` is the file now, at least up to the page after the
/// copy's end ([`stale_span`]).
pub fn stale_chunks(old: &[u8], current: &[u8]) -> Vec<(u64, u64)> {
    let end_all = old.len().max(current.len()) as u64;
    let mut out = Vec::new();
    let mut start = 0u64;
    while start < old.len() as u64 {
        let end = (start + CHUNK_BYTES).min(end_all);
        if differing(old, current, start, end - start) > 0 {
            out.push((start, end - start));
        }
        start += CHUNK_BYTES;
    }
    out
}

/// How many bytes of a file (at least [`stale_span`] of it) to read to compare it with an
/// earlier copy of `old_len` bytes: up to the end of the copy's last page.
pub fn stale_span(old_len: usize) -> u64 {
    (old_len as u64).div_ceil(CHUNK_BYTES) * CHUNK_BYTES
}

/// The bytes the earlier copy had at `offset..offset + length`, zeros past its end.
pub fn stale_page(old: &[u8], offset: u64, length: u64) -> Vec<u8> {
    (offset..offset + length)
        .map(|i| old.get(i as usize).copied().unwrap_or(0))
        .collect()
}

/// How many bytes of [`stale_page`] differ from `current` there (bytes past `current`'s
/// end all count).
pub fn differing(old: &[u8], current: &[u8], offset: u64, length: u64) -> u64 {
    (offset..offset + length)
        .filter(|&i| current.get(i as usize) != Some(old.get(i as usize).unwrap_or(&0)))
        .count() as u64
}

/// Flip `mask` bits at each byte of `flips` in `path`, then fsync.
pub fn flip(path: &Path, flips: &[(u64, u8)]) -> Result<()> {
    let f = open_rw(path)?;
    for &(at, mask) in flips {
        let mut b = [0u8];
        f.read_exact_at(&mut b, at)
            .with_context(|| format!("cannot read byte {at} of {}", path.display()))?;
        b[0] ^= mask;
        f.write_all_at(&b, at)
            .with_context(|| format!("cannot write byte {at} of {}", path.display()))?;
    }
    sync(&f, path)
}

/// Cut `path` to `len` bytes, then fsync.
pub fn truncate(path: &Path, len: u64) -> Result<()> {
    let f = open_rw(path)?;
    f.set_len(len)
        .with_context(|| format!("cannot truncate {} to {len} bytes", path.display()))?;
    sync(&f, path)
}

/// Write `bytes` at `offset` of `path`, then fsync.
pub fn write_back(path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    let f = open_rw(path)?;
    f.write_all_at(bytes, offset).with_context(|| {
        format!(
            "cannot write {} bytes at {offset} of {}",
            bytes.len(),
            path.display()
        )
    })?;
    sync(&f, path)
}

/// The first `max` bytes of `path` (fewer if it is shorter).
pub fn read_prefix(path: &Path, max: u64) -> Result<Vec<u8>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    f.take(max)
        .read_to_end(&mut out)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(out)
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {} to damage it", path.display()))
}

fn sync(f: &File, path: &Path) -> Result<()> {
    f.sync_all()
        .with_context(|| format!("cannot fsync {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    #[test]
    fn bit_flips_are_the_same_for_a_seed_and_differ_across_seeds() {
        let a = bitflips(10_000, 0.001, &mut rng(1));
        let b = bitflips(10_000, 0.001, &mut rng(1));
        let c = bitflips(10_000, 0.001, &mut rng(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // 80 000 bits at 1/1000: about 80 flips; every one inside the file, one mask a byte.
        let bits: u32 = a.iter().map(|(_, m)| m.count_ones()).sum();
        assert!((40..=140).contains(&bits), "{bits} bits flipped");
        assert!(a.iter().all(|&(at, m)| at < 10_000 && m != 0));
        assert!(a.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn bit_flips_are_bounded_and_none_in_an_empty_file() {
        assert!(bitflips(0, 1.0, &mut rng(1)).is_empty());
        let all = bitflips(1 << 20, 1.0, &mut rng(1));
        let bits: u64 = all.iter().map(|(_, m)| u64::from(m.count_ones())).sum();
        assert_eq!(bits, MAX_FLIPS_PER_FILE);
    }

    #[test]
    fn truncation_lengths_are_zipf_bounded_by_the_file_and_seeded() {
        let draws: Vec<u64> = {
            let mut r = rng(3);
            (0..2000).map(|_| truncation(5000, &mut r)).collect()
        };
        let again: Vec<u64> = {
            let mut r = rng(3);
            (0..2000).map(|_| truncation(5000, &mut r)).collect()
        };
        assert_eq!(draws, again);
        assert!(draws.iter().all(|&c| (1..=5000).contains(&c)));
        // Zipf with exponent 1 over 1..=5000: P(1) = 1/H(5000) ≈ 0.11, P(≤ 70) ≈ 0.5.
        let ones = draws.iter().filter(|&&c| c == 1).count();
        let small = draws.iter().filter(|&&c| c <= 70).count();
        assert!((120..=330).contains(&ones), "{ones} cuts of one byte");
        assert!(
            (800..=1200).contains(&small),
            "{small} cuts of at most 70 bytes"
        );
        assert!(draws.iter().any(|&c| c > 2500), "no long cut in 2000 draws");
        assert_eq!(truncation(0, &mut rng(1)), 0);
        assert_eq!(truncation(1, &mut rng(1)), 1);
    }

    #[test]
    fn stale_chunks_are_the_pages_that_changed() {
        let old = vec![7u8; 10_000];
        let mut cur = old.clone();
        cur[5000] = 8;
        assert_eq!(stale_chunks(&old, &cur), vec![(4096, 4096)]);
        // A shorter file now: the old tail is stale too; the last chunk is short.
        assert_eq!(
            stale_chunks(&old, &cur[..9000]),
            vec![(4096, 4096), (8192, 1808)]
        );
        assert!(stale_chunks(&old, &old).is_empty());
        assert_eq!(differing(&old, &cur[..9000], 8192, 1808), 1000);
        // An append-only file that grew: only the page that held the copy's end is stale,
        // and writing it back zeroes what was appended into that page since.
        let mut grown = old.clone();
        grown.extend(vec![9u8; 6000]);
        assert_eq!(stale_span(old.len()), 12_288);
        let now = &grown[..stale_span(old.len()) as usize];
        assert_eq!(stale_chunks(&old, now), vec![(8192, 4096)]);
        assert_eq!(differing(&old, now, 8192, 4096), 2288);
        let page = stale_page(&old, 8192, 4096);
        assert_eq!(
            (&page[..1808], &page[1808..]),
            (&old[8192..], &[0u8; 2288][..])
        );
    }

    #[test]
    fn damage_is_written_to_the_file_and_fsynced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, b"hello world").unwrap();
        flip(&p, &[(0, 0b0010_0000), (6, 0b0000_0001)]).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"Hello vorld");
        truncate(&p, 5).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"Hello");
        // Restore: the earlier copy's page comes back at its offset, zeros past the copy's
        // end (what was written into that page since is lost); the file keeps its length.
        let old = Snapshot::take(dir.path(), std::slice::from_ref(&p), "armed");
        std::fs::write(&p, b"HELLO, again").unwrap();
        let cur = read_prefix(&p, stale_span(5)).unwrap();
        let copy = &old.files["log"];
        let chunks = stale_chunks(copy, &cur);
        assert_eq!(chunks, vec![(0, 12)]);
        assert_eq!(differing(copy, &cur, 0, 12), 11);
        write_back(&p, 0, &stale_page(copy, 0, 12)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"Hello\0\0\0\0\0\0\0");
        assert_eq!(read_prefix(&p, 3).unwrap(), b"Hel");
        assert!(flip(&dir.path().join("missing"), &[(0, 1)]).is_err());
    }
}
