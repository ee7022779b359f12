//! Build script: records the git revision the binary is built from.
//!
//! `plan.yaml` names the revision a run was made with. Asking git at run time would name
//! whatever the checkout holds by then (a later commit, a branch switch, uncommitted edits
//! made after the build), so the revision is taken here, at build time, and compiled in as
//! `FAULTLINE_GIT_REVISION`: the commit, with `-dirty` when tracked files differed from it,
//! or `unknown` without git or outside a checkout (a packaged crate).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    // Without these, cargo would rerun the script on any change in the package; with
    // them, only on what can change the answer: a commit or checkout (HEAD and the ref it
    // names), staging (the index) and edits to the crate's own sources (dirtiness).
    for p in ["build.rs", "Cargo.toml", "Cargo.lock", "src"] {
        println!("cargo:rerun-if-changed={p}");
    }
    let revision = match git_dir(&manifest) {
        Some(git) => {
            watch_head(&git);
            revision(&manifest).unwrap_or_else(|| "unknown".into())
        }
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=FAULTLINE_GIT_REVISION={revision}");
}

/// The repository's git directory: `.git` itself, or where a worktree's (or submodule's)
/// `.git` file points (`gitdir: …`).
fn git_dir(manifest: &Path) -> Option<PathBuf> {
    let dot = manifest.join(".git");
    if dot.is_dir() {
        return Some(dot);
    }
    let text = std::fs::read_to_string(&dot).ok()?;
    let target = text.strip_prefix("gitdir:")?.trim();
    Some(manifest.join(target))
}

/// Ask cargo to rerun when HEAD moves: HEAD itself (checkout of another branch) and the
/// branch it names (a commit), which lives in the common dir for a worktree and may be
/// packed.
fn watch_head(git: &Path) {
    let head = git.join("HEAD");
    println!("cargo:rerun-if-changed={}", head.display());
    println!("cargo:rerun-if-changed={}", git.join("index").display());
    let common = match std::fs::read_to_string(git.join("commondir")) {
        Ok(rel) => git.join(rel.trim()),
        Err(_) => git.to_path_buf(),
    };
    let Ok(text) = std::fs::read_to_string(&head) else {
        return;
    };
    // Detached, HEAD holds the commit itself and is watched already.
    let Some(name) = text.strip_prefix("ref:").map(str::trim) else {
        return;
    };
    // A watched path that does not exist makes cargo rerun the script on every build, so
    // only existing files are named. A packed branch gets its loose file back on the next
    // commit, which HEAD's reflog (appended on every commit and checkout) tells.
    let candidates = [
        git.join(name),
        common.join(name),
        common.join("packed-refs"),
        git.join("logs").join("HEAD"),
    ];
    for candidate in candidates.iter().filter(|c| c.is_file()) {
        println!("cargo:rerun-if-changed={}", candidate.display());
    }
}

/// `<commit>` or `<commit>-dirty`; `None` if git cannot tell.
fn revision(manifest: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(manifest)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    if rev.is_empty() {
        return None;
    }
    let dirty = Command::new("git")
        .arg("-C")
        .arg(manifest)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    if dirty {
        rev.push_str("-dirty");
    }
    Some(rev)
}
