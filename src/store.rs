//! The run directory: `reports/<test-name>/<timestamp>/` and the `latest` links.
//!
//! Files in a run directory are written atomically (temp file + rename) except the two
//! that stream while the run goes on (`history.jsonl`, `faultline.log`), so a reader never
//! sees half a `results.json`.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

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

/// Write a file so that readers see the old content or the new, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
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

/// Point the symlink `link` at `target` atomically (a new link renamed over the old).
pub fn relink(link: &Path, target: &Path) -> Result<()> {
    let tmp = link.with_extension("tmp-link");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("cannot create link {}", tmp.display()))?;
    std::fs::rename(&tmp, link).with_context(|| format!("cannot update {}", link.display()))?;
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
}
