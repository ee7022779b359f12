//! Unpacking a tar stream that came from another machine (an SSH host's node logs) into
//! a directory of the run, confined to it.
//!
//! The archive is the host's word, and a host may be compromised or just odd: an entry may
//! not land outside the destination. Refused, each with its reason: absolute paths, paths
//! with `..`, symbolic links that are absolute or climb with `..` (a link may point only
//! below its own directory, so no chain of links can lead out, without resolving any of
//! them), hard links and special files (devices, FIFOs). Files and directories go through
//! the `tar` crate's `unpack_in`, which also refuses to write through a link that leads
//! out of the destination. Everything allowed is unpacked; the refusals are returned.

use anyhow::{Context, Result};
use std::io::Read;
use std::path::{Component, Path};

/// Unpack `stream` into `dst` (created if missing) as it is read. Returns the entries
/// that were refused, each as "PATH: why"; an error means the stream itself was bad or a
/// file could not be written.
pub fn unpack_confined(stream: impl Read, dst: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dst).with_context(|| format!("cannot create {}", dst.display()))?;
    let root = dst
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dst.display()))?;
    let mut archive = tar::Archive::new(stream);
    // Our files, with our umask: a host's owners and modes mean nothing here.
    archive.set_preserve_permissions(false);
    archive.set_preserve_ownerships(false);
    let mut refused = Vec::new();
    for entry in archive.entries().context("not a tar stream")? {
        let mut entry = entry.context("a damaged tar entry")?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if let Some(why) = refusal(&entry)? {
            refused.push(format!("{name}: {why}"));
            continue;
        }
        let unpacked = entry
            .unpack_in(&root)
            .with_context(|| format!("cannot unpack {name} into {}", root.display()))?;
        if !unpacked {
            refused.push(format!("{name}: it would land outside {}", root.display()));
        }
    }
    Ok(refused)
}

/// Why an entry may not be unpacked, or `None` if it may.
fn refusal<R: Read>(entry: &tar::Entry<'_, R>) -> Result<Option<&'static str>> {
    use tar::EntryType;
    let path = entry.path().context("an entry with an unreadable path")?;
    if !stays_below(&path) {
        return Ok(Some("its path is absolute or climbs out with `..`"));
    }
    let kind = entry.header().entry_type();
    Ok(match kind {
        EntryType::Regular | EntryType::Continuous | EntryType::Directory => None,
        EntryType::Symlink => match entry.link_name().context("a link with no target")? {
            Some(target) if stays_below(&target) => None,
            _ => Some("a symbolic link that points out of its directory"),
        },
        EntryType::Link => Some("a hard link"),
        _ => Some("not a file, directory or symbolic link"),
    })
}

/// Whether a relative path names something at or below where it starts: only plain names
/// and `.` in it.
fn stays_below(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive entry written byte by byte, as a hostile host would: the `tar` crate's
    /// builder refuses `..` and absolute names, so the name goes into the header directly.
    fn append(
        b: &mut tar::Builder<Vec<u8>>,
        kind: tar::EntryType,
        name: &str,
        link: &str,
        data: &[u8],
    ) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    #[test]
    fn a_hostile_archive_lands_nothing_outside_its_directory() {
        use tar::EntryType as E;
        let outer = tempfile::tempdir().unwrap();
        let dst = outer.path().join("nodes").join("n1");
        let abs = outer.path().join("abs.txt");
        let mut b = tar::Builder::new(Vec::new());
        append(&mut b, E::Directory, "./", "", b"");
        append(&mut b, E::Regular, "./stdout.log", "", b"hello\n");
        append(&mut b, E::Regular, "../escape.txt", "", b"x");
        append(&mut b, E::Regular, "./sub/../../../escape2.txt", "", b"x");
        append(&mut b, E::Regular, &abs.display().to_string(), "", b"x");
        append(&mut b, E::Symlink, "./up", "../..", b"");
        append(&mut b, E::Symlink, "./etc", "/etc", b"");
        // Through the refused link: lands in a plain directory `up` inside instead.
        append(&mut b, E::Regular, "./up/pwned.txt", "", b"x");
        append(&mut b, E::Symlink, "./latest.log", "stdout.log", b"");
        append(&mut b, E::Link, "./hard", "/etc/passwd", b"");
        append(&mut b, E::Fifo, "./fifo", "", b"");
        let bytes = b.into_inner().unwrap();

        let refused = unpack_confined(&bytes[..], &dst).unwrap();
        let names: Vec<&str> = refused
            .iter()
            .map(|r| r.split(": ").next().unwrap())
            .collect();
        let abs_name = abs.display().to_string();
        assert_eq!(
            names,
            [
                "../escape.txt",
                "./sub/../../../escape2.txt",
                abs_name.as_str(),
                "./up",
                "./etc",
                "./hard",
                "./fifo"
            ],
            "{refused:#?}"
        );
        assert_eq!(std::fs::read(dst.join("stdout.log")).unwrap(), b"hello\n");
        assert_eq!(
            std::fs::read(dst.join("latest.log")).unwrap(),
            b"hello\n",
            "a link below its own directory is kept"
        );
        assert!(dst.join("up").is_dir() && !dst.join("up").is_symlink());
        assert!(dst.join("up/pwned.txt").is_file());
        // Outside the destination: nothing but the destination itself.
        let mut outside: Vec<_> = walk(outer.path())
            .into_iter()
            .filter(|p| !p.starts_with(&dst))
            .collect();
        outside.sort();
        assert_eq!(outside, vec![outer.path().join("nodes")], "{outside:?}");
    }

    #[test]
    fn a_stream_that_is_not_tar_is_an_error() {
        let dst = tempfile::tempdir().unwrap();
        let err = unpack_confined(&[7u8; 700][..], dst.path()).unwrap_err();
        assert!(format!("{err:#}").contains("tar"), "{err:#}");
        assert_eq!(
            unpack_confined(&[][..], dst.path()).unwrap(),
            Vec::<String>::new(),
            "an empty stream is an empty archive"
        );
    }

    fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            out.push(p.clone());
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            }
        }
        out
    }
}
