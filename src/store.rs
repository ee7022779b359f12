//! The run directory: `reports/<test-name>/<timestamp>/` and the `latest` links.
//!
//! Every file faultline writes as a whole goes through [`write_atomic`] (unique temp file,
//! fsync, rename, fsync of the directory), so a reader never sees half a `results.json`
//! and a crash leaves the old file or the new. Only the journals that stream while the run
//! goes on (`history.jsonl`, `faultline.log`, node output) are appended in place.

use anyhow::{Context, Result};
use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Create a fresh run directory for test `name` under `store`.
pub fn create_run_dir(store: &Path, name: &str) -> Result<PathBuf> {
    let stamp = timestamp();
    let test_dir = store.join(name);
    std::fs::create_dir_all(&test_dir)
        .with_context(|| format!("cannot create {}", test_dir.display()))?;
    for n in 0..1000 {
        let leaf = if n == 0 {
            stamp.clone()
        } else {
            format!("{stamp}-{n}")
        };
        let dir = test_dir.join(leaf);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    anyhow::bail!(
        "cannot find a free run directory under {}",
        test_dir.display()
    )
}

/// UTC time as `20261123T221542Z` (sorts by time, safe in paths).
pub fn timestamp() -> String {
    let s = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    s.replace(['-', ':'], "")
}

/// Write a file so that readers see the old content or the new, never a mix, and so that
/// after a crash (power loss included) the file holds one of the two.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| {
        w.write_all(bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    })
}

/// [`write_atomic`] for content produced by a writer (large outputs that should not be held
/// in memory): `fill` writes to a unique temporary file in `path`'s directory, which is
/// then flushed, fsynced, renamed over `path`, and the directory fsynced so the rename
/// itself is durable. If `fill` fails, the temporary file is removed, `path` is untouched
/// and `fill`'s error is returned as it is (callers match on it).
pub fn write_atomic_with<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    let tmp = temp_beside(path)?;
    let mut out = BufWriter::new(tmp);
    fill(&mut out)?;
    let tmp = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", path.display()))?;
    commit(tmp, path)
}

/// [`write_atomic`] for libraries that insist on writing to a path themselves (plotters'
/// PNG backend): `fill` gets the unique temporary path to write, the rest is the same.
pub fn write_atomic_at<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let tmp = temp_beside(path)?;
    fill(tmp.path())?;
    commit(tmp, path)
}

/// A new, uniquely named empty file in `path`'s directory, removed again when dropped.
fn temp_beside(path: &Path) -> Result<NamedTempFile> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .with_context(|| format!("cannot write {}: no file name", path.display()))?;
    // A unique name per writer: two processes writing the same file (parallel campaign
    // runs, a re-render during a run) must not share, truncate or rename each other's
    // temporary. Hidden, so a directory listing or the reports index never shows one.
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    // The extension is kept last: writers that pick a format by it (plotters' PNG) must
    // see the real one.
    let mut suffix = OsString::from(".tmp");
    if let Some(ext) = path.extension() {
        suffix.push(".");
        suffix.push(ext);
    }
    tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(&suffix)
        // What `fs::write` would give (0o666 less the umask), not tempfile's private 0o600:
        // reports are read by web servers and CI artifact uploaders under other users.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

/// Make the written temporary durable and move it over `path`, durably.
fn commit(tmp: NamedTempFile, path: &Path) -> Result<()> {
    // Through a fresh descriptor: a `write_atomic_at` writer may have replaced the file
    // behind the temporary's own one.
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot rename into {}", path.display()))?;
    sync_dir(parent_dir(path))
}

/// The directory a path's entry lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Make the entries of `dir` (a rename into it) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// Point `reports/<name>/latest` and `reports/latest` at `run_dir`.
pub fn update_latest(store: &Path, run_dir: &Path) -> Result<()> {
    let leaf = run_dir
        .file_name()
        .context("run directory has no name")?
        .to_owned();
    let test_dir = run_dir.parent().context("run directory has no parent")?;
    let name = test_dir
        .file_name()
        .context("test directory has no name")?
        .to_owned();
    relink(&test_dir.join("latest"), Path::new(&leaf))?;
    relink(&store.join("latest"), &Path::new(&name).join(&leaf))?;
    Ok(())
}

/// Point the symlink `link` at `target` atomically: a new link under a unique temporary
/// name, renamed over the old. Concurrent callers (parallel campaign runs finishing at
/// once) each rename their own link, so none fails and `link` always names one of their
/// targets; the last rename wins.
pub fn relink(link: &Path, target: &Path) -> Result<()> {
    let dir = parent_dir(link);
    let mut prefix = OsString::from(".");
    prefix.push(link.file_name().context("link has no name")?);
    prefix.push(".");
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp-link")
        .make_in(dir, |p| std::os::unix::fs::symlink(target, p))
        .with_context(|| format!("cannot create a link in {}", dir.display()))?;
    // `persist` is a rename(2), which replaces `link` itself and never follows it.
    tmp.persist(link)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot update {}", link.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dirs_are_unique_and_latest_follows_the_newest() {
        let store = std::env::temp_dir().join(format!("fl-store-{}", std::process::id()));
        let a = create_run_dir(&store, "t").unwrap();
        let b = create_run_dir(&store, "t").unwrap();
        assert_ne!(a, b);
        update_latest(&store, &b).unwrap();
        assert_eq!(
            std::fs::canonicalize(store.join("t/latest")).unwrap(),
            std::fs::canonicalize(&b).unwrap()
        );
        assert_eq!(
            std::fs::canonicalize(store.join("latest")).unwrap(),
            std::fs::canonicalize(&b).unwrap()
        );
        write_atomic(&b.join("results.json"), b"{}").unwrap();
        assert_eq!(std::fs::read(b.join("results.json")).unwrap(), b"{}");
        std::fs::remove_dir_all(&store).unwrap();
    }

    /// Names in `dir`, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn concurrent_latest_updates_never_fail_and_leave_a_valid_link() {
        let store = tempfile::tempdir().unwrap();
        let runs: Vec<PathBuf> = (0..16)
            .map(|_| create_run_dir(store.path(), "t").unwrap())
            .collect();
        let failures = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for run in &runs {
                let (store, failures) = (store.path(), &failures);
                s.spawn(move || {
                    for _ in 0..50 {
                        if let Err(e) = update_latest(store, run) {
                            eprintln!("{e:#}");
                            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(failures.into_inner(), 0);
        let canon: Vec<PathBuf> = runs
            .iter()
            .map(|r| std::fs::canonicalize(r).unwrap())
            .collect();
        for link in [store.path().join("latest"), store.path().join("t/latest")] {
            let meta = std::fs::symlink_metadata(&link).unwrap();
            assert!(meta.file_type().is_symlink(), "{}", link.display());
            let to = std::fs::canonicalize(&link).unwrap();
            assert!(
                canon.contains(&to),
                "{} -> {}",
                link.display(),
                to.display()
            );
        }
        // No temporary link is left behind by any of the 800 updates.
        assert_eq!(entries(store.path()), ["latest", "t"]);
        assert_eq!(
            entries(&store.path().join("t"))
                .iter()
                .filter(|n| n.starts_with('.'))
                .count(),
            0
        );
    }

    #[test]
    fn concurrent_atomic_writes_leave_one_whole_file_and_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        let contents: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'a' + i; 100_000]).collect();
        std::thread::scope(|s| {
            for c in &contents {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(path, c).unwrap();
                    }
                });
            }
        });
        let got = std::fs::read(&path).unwrap();
        assert!(contents.contains(&got));
        assert_eq!(entries(dir.path()), ["results.json"]);
    }

    #[test]
    fn a_failed_atomic_write_keeps_the_old_file_and_removes_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |w| {
            w.write_all(b"half")?;
            anyhow::bail!("generator broke")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("generator broke"), "{err:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["plan.yaml"]);
    }

    #[test]
    fn atomic_writes_get_the_permissions_a_plain_write_gets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plain"), b"x").unwrap();
        write_atomic(&dir.path().join("atomic"), b"x").unwrap();
        let mode = |n: &str| {
            std::fs::metadata(dir.path().join(n))
                .unwrap()
                .permissions()
                .mode()
        };
        assert_eq!(mode("atomic"), mode("plain"));
    }
}
