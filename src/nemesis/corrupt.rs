//! The corrupt fault: SIGKILL to the target nodes, then damage to the files their target
//! declares (`data_files` in target.yaml, globs under `{data_dir}`), as a disk would:
//! flipped bits, a truncated tail, or a chunk written back from an earlier copy
//! ([`damage`]). Its inverse, `restart-corrupted`, starts them again on the damaged
//! files: whether the target notices (checksums, refusing to start) or serves what the
//! disk gave it is what the run shows.
//!
//! Every draw (which bits, how long a cut, which file and chunk) comes from the step's
//! seed, compiled into plan.yaml, on a stream per node: the same seed damages the same
//! files the same way. Each change is journaled with the node, file, offset, length and
//! kind of damage. A `restore` needs an earlier copy: the nemesis copies every node's
//! files when its schedule starts (armed) and again at each corruption of a node, before
//! the damage, so a later restore brings back bytes from the previous fault.

pub mod damage;

use super::{nodes_list, Landed, Nemesis};
use crate::spec::nemesis::Damage;
use crate::spec::schedule::{Action, Step};
use anyhow::{Context, Result};
use damage::{Change, Snapshot};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Earlier copies of the nodes' data files, kept only when the schedule restores chunks.
#[derive(Debug, Default)]
pub struct Snapshots {
    /// Whether to copy files at all: set when the schedule holds a `restore`.
    keep: bool,
    /// Node → its files at the latest copy.
    by_node: BTreeMap<String, Snapshot>,
}

/// Copy every node's data files if the schedule will restore chunks of them: the earliest
/// copy a first `restore` can write back.
pub fn arm(n: &Nemesis, steps: &[Step]) {
    let restores = steps.iter().any(|s| {
        matches!(
            s.action,
            Action::Corrupt {
                damage: Damage::Restore,
                ..
            }
        )
    });
    if !restores {
        return;
    }
    let mut copies = BTreeMap::new();
    for node in n.cluster.nodes() {
        match n.cluster.data_files(&node) {
            Ok(files) => {
                let s = Snapshot::take(&n.cluster.data_dir(&node), &files, "armed");
                tracing::info!(
                    "nemesis: copied {} data file(s) of {node} for later restores",
                    s.files.len()
                );
                copies.insert(node, s);
            }
            Err(e) => tracing::info!("nemesis: cannot copy {node}'s data files: {e:#}"),
        }
    }
    let mut s = n.snapshots();
    s.keep = true;
    s.by_node = copies;
}

/// Kill `nodes` together, then damage each one's data files; a paused node dies too and
/// is no longer paused. Lands on the nodes whose files changed.
pub async fn corrupt(
    n: &Nemesis,
    nodes: &[String],
    damage: Damage,
    probability: Option<f64>,
    seed: u64,
) -> Result<Landed> {
    {
        let mut f = n.in_force().await;
        f.corrupted.extend(nodes.iter().cloned());
    }
    super::kill::kill_together(n, nodes).await?;
    let cluster_nodes = n.cluster.nodes();
    let mut changes = Vec::new();
    let mut untouched = Vec::new();
    for node in nodes {
        let dir = n.cluster.data_dir(node);
        let files = n.cluster.data_files(node)?;
        // A stream per node: one node's files do not change another's damage.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(cluster_nodes.iter().position(|x| x == node).unwrap_or(0) as u64);
        let (earlier, keep) = {
            let mut s = n.snapshots();
            (s.by_node.remove(node), s.keep)
        };
        let before = keep.then(|| Snapshot::take(&dir, &files, "previous corrupt"));
        let done = damage_node(
            node,
            &dir,
            &files,
            damage,
            probability,
            earlier.as_ref(),
            &mut rng,
        )
        .with_context(|| format!("node {node}: {} damage", damage.as_str()))?;
        if let Some(b) = before {
            n.snapshots().by_node.insert(node.clone(), b);
        }
        if done.is_empty() {
            untouched.push(format!(
                "{node} ({})",
                why_untouched(damage, files.len(), earlier.is_some())
            ));
        }
        changes.extend(done);
    }
    let damaged: Vec<String> = changes
        .iter()
        .map(|c| c.node.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    tracing::info!(
        "nemesis: stopped {} and damaged {} ({} change(s), {}){}",
        nodes_list(nodes),
        nodes_list(&damaged),
        changes.len(),
        damage.as_str(),
        if untouched.is_empty() {
            String::new()
        } else {
            format!("; untouched: {}", untouched.join(", "))
        }
    );
    let note = (damaged.is_empty() && !nodes.is_empty())
        .then(|| format!("no file was damaged: {}", untouched.join(", ")));
    Ok(Landed {
        value: json!({
            "nodes": damaged,
            "stopped": nodes,
            "damage": damage,
            "seed": seed,
            "changes": changes,
        }),
        note,
    })
}

/// Start every corrupted node again on its damaged files. A node that refuses its files
/// exits at once: those that exited within [`STARTUP_WATCH`] are journaled (`exited`,
/// with the last line of their stderr), the target's finding rather than the nemesis's
/// failure.
pub async fn restart(n: &Nemesis) -> Result<Landed> {
    let nodes = super::kill::start_listed(n, |f| &mut f.corrupted).await?;
    tokio::time::sleep(STARTUP_WATCH).await;
    let mut exited = BTreeMap::new();
    for node in &nodes {
        if n.cluster.has_exited(node).await {
            let tail = crate::target::stderr_tail(&n.cluster.node_dir(node));
            let last = tail.lines().last().unwrap_or("").to_string();
            exited.insert(node.clone(), last);
        }
    }
    tracing::info!(
        "nemesis: restarted {} on damaged files{}",
        nodes_list(&nodes),
        if exited.is_empty() {
            String::new()
        } else {
            format!(
                "; exited at once: {}",
                exited
                    .iter()
                    .map(|(k, v)| format!("{k} ({v})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(Landed::on(json!({ "nodes": nodes, "exited": exited })))
}

/// How long a restarted node is watched for refusing its damaged files: raftkv and
/// paxoskv read their data dirs before they listen, in milliseconds.
const STARTUP_WATCH: std::time::Duration = std::time::Duration::from_millis(500);

/// Draw and write one node's damage; the changes made, in order.
fn damage_node(
    node: &str,
    dir: &Path,
    files: &[PathBuf],
    kind: Damage,
    probability: Option<f64>,
    earlier: Option<&Snapshot>,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Change>> {
    let change = |file: &Path, offset: u64, length: u64| Change {
        node: node.to_string(),
        file: damage::relative(dir, file),
        damage: kind,
        offset,
        length,
        mask: None,
        changed: None,
        from: None,
    };
    let len_of = |f: &Path| {
        std::fs::metadata(f)
            .map(|m| m.len())
            .with_context(|| format!("cannot stat {}", f.display()))
    };
    let mut out = Vec::new();
    match kind {
        Damage::Bitflip => {
            for f in files {
                let flips = damage::bitflips(len_of(f)?, probability.unwrap_or(0.0), rng);
                if flips.is_empty() {
                    continue;
                }
                damage::flip(f, &flips)?;
                out.extend(flips.iter().map(|&(at, mask)| Change {
                    mask: Some(mask),
                    ..change(f, at, 1)
                }));
            }
        }
        Damage::Truncate => {
            let mut sized = Vec::new();
            for f in files {
                let len = len_of(f)?;
                if len > 0 {
                    sized.push((f, len));
                }
            }
            if !sized.is_empty() {
                let (f, len) = sized[rng.random_range(0..sized.len())];
                let cut = damage::truncation(len, rng);
                damage::truncate(f, len - cut)?;
                out.push(change(f, len - cut, cut));
            }
        }
        Damage::Restore => {
            let Some(old) = earlier else {
                return Ok(out);
            };
            let mut stale = Vec::new();
            for f in files {
                let Some(copy) = old.files.get(&damage::relative(dir, f)) else {
                    continue;
                };
                let now = damage::read_prefix(f, damage::stale_span(copy.len()))?;
                let chunks = damage::stale_chunks(copy, &now);
                if !chunks.is_empty() {
                    stale.push((f, copy, now, chunks));
                }
            }
            if !stale.is_empty() {
                let (f, copy, now, chunks) = &stale[rng.random_range(0..stale.len())];
                let (at, len) = chunks[rng.random_range(0..chunks.len())];
                damage::write_back(f, at, &damage::stale_page(copy, at, len))?;
                out.push(Change {
                    changed: Some(damage::differing(copy, now, at, len)),
                    from: Some(old.taken.clone()),
                    ..change(f, at, len)
                });
            }
        }
    }
    Ok(out)
}

/// Why a node's files came through a corruption unchanged.
fn why_untouched(kind: Damage, files: usize, had_copy: bool) -> &'static str {
    match (kind, files, had_copy) {
        (_, 0, _) => "no file matches the target's data_files",
        (Damage::Bitflip, _, _) => "no bit drew a flip",
        (Damage::Truncate, _, _) => "every matching file is empty",
        (Damage::Restore, _, false) => "no earlier copy of its files",
        (Damage::Restore, _, true) => "its files match their earlier copy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    fn lay_out(dir: &Path) {
        fs::write(dir.join("log.jsonl"), "x".repeat(20_000)).unwrap();
        fs::write(
            dir.join("hard_state.json"),
            r#"{"term":3,"voted_for":"n2"}"#,
        )
        .unwrap();
    }

    /// Damage two identical data dirs with one seed: the same changes, the same bytes.
    #[test]
    fn a_seed_damages_the_same_files_the_same_way() {
        for kind in [Damage::Bitflip, Damage::Truncate] {
            let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            lay_out(a.path());
            lay_out(b.path());
            let run = |dir: &Path, seed: u64| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                damage_node("n1", dir, &files(dir), kind, Some(0.001), None, &mut rng).unwrap()
            };
            let ca = run(a.path(), 9);
            let cb = run(b.path(), 9);
            assert!(!ca.is_empty(), "{kind:?} changed nothing");
            assert_eq!(ca, cb);
            for f in ["log.jsonl", "hard_state.json"] {
                assert_eq!(
                    fs::read(a.path().join(f)).unwrap(),
                    fs::read(b.path().join(f)).unwrap()
                );
            }
            let c = tempfile::tempdir().unwrap();
            lay_out(c.path());
            assert_ne!(
                run(c.path(), 10),
                ca,
                "{kind:?}: another seed, the same damage"
            );
        }
    }

    #[test]
    fn restore_writes_back_the_earlier_bytes_of_one_changed_chunk() {
        let dir = tempfile::tempdir().unwrap();
        lay_out(dir.path());
        let old = Snapshot::take(dir.path(), &files(dir.path()), "armed");
        // The node went on: a new vote, and the log's second page rewritten.
        fs::write(
            dir.path().join("hard_state.json"),
            r#"{"term":4,"voted_for":"n3"}"#,
        )
        .unwrap();
        let mut log = "x".repeat(20_000).into_bytes();
        log[5000..5010].copy_from_slice(b"0123456789");
        fs::write(dir.path().join("log.jsonl"), &log).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let ch = damage_node(
            "n1",
            dir.path(),
            &files(dir.path()),
            Damage::Restore,
            None,
            Some(&old),
            &mut rng,
        )
        .unwrap();
        assert_eq!(ch.len(), 1);
        let c = &ch[0];
        assert_eq!(c.from.as_deref(), Some("armed"));
        let now = fs::read(dir.path().join(&c.file)).unwrap();
        let copy = &old.files[&c.file];
        let (at, len) = (c.offset as usize, c.length as usize);
        assert_eq!(&now[at..at + len], &copy[at..at + len]);
        match c.file.as_str() {
            "hard_state.json" => assert_eq!((at, len, c.changed), (0, 27, Some(2))),
            "log.jsonl" => {
                assert_eq!((at, len, c.changed), (4096, 4096, Some(10)));
                assert_eq!(now, "x".repeat(20_000).into_bytes());
            }
            f => panic!("restored {f}"),
        }
        // Without an earlier copy, or with nothing stale, a restore changes nothing.
        let none = damage_node(
            "n1",
            dir.path(),
            &files(dir.path()),
            Damage::Restore,
            None,
            None,
            &mut rng,
        );
        assert!(none.unwrap().is_empty());
    }
}
