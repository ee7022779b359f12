//! The twin fault: a second process with a node's identity, on a host of its own
//! ([`crate::hosts::twin`]), seen by some of its peers in place of the original. Several
//! nodes may have twins at once, each with its own split (`start-twin`), or a Twins
//! scenario may partition every node and twin into groups, round by round (`twins-round`).
//! Both come down to one relation, who hears whom ([`Hearing`]), which [`set_views`] makes
//! true in every copy's namespace: an nft table that drops the frames of every copy it
//! must not hear (by Ethernet source, so two copies sharing an address stay apart) and a
//! host route per twinned node to the copy it hears. The inverse stops every twin (its
//! output stays in `nodes/<node>-twin/`) and gives every node the originals back.
//!
//! A twin starts from its node's identity alone (`state: fresh`) or from a copy of the
//! node's data dir taken while the node is frozen (`state: fork`), so the two share
//! their history up to the fork. Clients reach a running twin as peers do, through the
//! node's address (each client chooses per op which copy it reaches).

use super::{Failed, Landed, Nemesis};
use crate::hosts::twin::{drop_macs_script, mac_of, route_command};
use crate::hosts::TWIN_TABLE;
use crate::spec::nemesis::{RoundLeader, TwinState};
use crate::spec::schedule::{twin_name, LeaderStep};
use crate::target::{twin_key, SNAPSHOT_TIMEOUT};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Copy (a node, or its twin `nX-twin`) → the copies it hears. A copy never hears its own
/// other half, and hears at most one copy of each other node.
pub type Hearing = BTreeMap<String, BTreeSet<String>>;

/// The node a copy is of.
fn identity(copy: &str) -> &str {
    copy.strip_suffix("-twin").unwrap_or(copy)
}

/// Every copy of a run whose `twins` have twins: the nodes, then the twins.
fn copies(nodes: &[String], twins: &BTreeSet<String>) -> Vec<String> {
    nodes
        .iter()
        .cloned()
        .chain(twins.iter().map(|t| twin_name(t)))
        .collect()
}

/// Who hears whom when each twinned node's split is given (node → the peers that see its
/// twin): both copies of a peer see what the split says, every copy hears every node
/// that has no twin.
pub fn hearing_of_splits(nodes: &[String], splits: &BTreeMap<String, Vec<String>>) -> Hearing {
    let twins: BTreeSet<String> = splits.keys().cloned().collect();
    copies(nodes, &twins)
        .into_iter()
        .map(|x| {
            let me = identity(&x).to_string();
            let heard = nodes
                .iter()
                .filter(|p| **p != me)
                .map(|p| match splits.get(p) {
                    Some(sees) if sees.contains(&me) => twin_name(p),
                    _ => p.clone(),
                })
                .collect();
            (x, heard)
        })
        .collect()
}

/// Who hears whom in a scenario round: every copy hears the other members of its group.
pub fn hearing_of_groups(groups: &[Vec<String>]) -> Hearing {
    groups
        .iter()
        .flat_map(|g| {
            g.iter().map(move |x| {
                let heard = g.iter().filter(|y| *y != x).cloned().collect();
                (x.clone(), heard)
            })
        })
        .collect()
}

/// Each twinned node's split as the originals see it (for the journal and the in-force
/// set): the nodes whose original hears its twin.
fn splits_of(
    nodes: &[String],
    twins: &BTreeSet<String>,
    h: &Hearing,
) -> BTreeMap<String, Vec<String>> {
    twins
        .iter()
        .map(|t| {
            let sees = nodes
                .iter()
                .filter(|p| h.get(*p).is_some_and(|s| s.contains(&twin_name(t))))
                .cloned()
                .collect();
            (t.clone(), sees)
        })
        .collect()
}

/// Move `leader`'s original into `groups[group]`; if its twin is there, the twin takes
/// the original's old place, so no group holds both.
pub fn place_leader(groups: &[Vec<String>], leader: &str, group: usize) -> Vec<Vec<String>> {
    let mut g = groups.to_vec();
    let (Some(from), true) = (
        g.iter().position(|m| m.iter().any(|x| x == leader)),
        group < g.len(),
    ) else {
        return g;
    };
    if from == group {
        return g;
    }
    let twin = twin_name(leader);
    g[from].retain(|x| x != leader);
    if let Some(i) = g[group].iter().position(|x| *x == twin) {
        g[group].remove(i);
        g[from].push(twin);
    }
    g[group].push(leader.to_string());
    for m in &mut g {
        m.sort();
    }
    g.retain(|m| !m.is_empty());
    g
}

/// Start `node`'s twin if it does not run, and make `sees_twin` (both copies of each,
/// when they have twins too) see it at the node's address and every other peer the
/// original. Other twins keep their splits.
pub async fn start(
    n: &Nemesis,
    node: &str,
    sees_twin: &[String],
    state: TwinState,
) -> Result<Landed> {
    let nodes = n.cluster.nodes();
    let splits = {
        let mut f = n.in_force().await;
        // Intent first: a start cut half-way is healed.
        f.twins.insert(node.to_string(), sees_twin.to_vec());
        f.twins.clone()
    };
    let hearing = hearing_of_splits(&nodes, &splits);
    if let Some(died) = twin_died(set_views(n, &hearing, state).await)? {
        return Ok(died);
    }
    let sees_original: Vec<String> = nodes
        .iter()
        .filter(|p| *p != node && !sees_twin.contains(p))
        .cloned()
        .collect();
    tracing::info!(
        "nemesis: twin of {node} seen by {}; the original by {}",
        super::nodes_list(sees_twin),
        super::nodes_list(&sees_original)
    );
    Ok(Landed::on(json!({
        "nodes": [node],
        "twin": node,
        "sees_twin": sees_twin,
        "sees_original": sees_original,
        "twins": splits.keys().collect::<Vec<_>>(),
        "state": state,
    })))
}

/// One window of a Twins scenario: `twins` get twins (started in the first round), the
/// leader (if the round aims at one) is moved into its drawn group, and every copy hears
/// exactly the others of its group.
pub async fn round(
    n: &Nemesis,
    round: u32,
    twins: &[String],
    groups: &[Vec<String>],
    leader: Option<&LeaderStep>,
    state: TwinState,
) -> Result<Landed> {
    let nodes = n.cluster.nodes();
    let mut groups = groups.to_vec();
    let mut led = None;
    if let Some(step) = leader {
        let found = match step.aim {
            RoundLeader::Primaries => n.leaders().await,
            RoundLeader::NextPrimaries => {
                n.next_leaders_within(step.settle_ms, Duration::from_millis(step.wait_ms))
                    .await
            }
        };
        if let Some(l) = found.first() {
            groups = place_leader(&groups, l, step.group);
            led = Some(l.clone());
        }
    }
    let hearing = hearing_of_groups(&groups);
    let twinned: BTreeSet<String> = twins.iter().cloned().collect();
    let splits = splits_of(&nodes, &twinned, &hearing);
    n.in_force().await.twins.extend(splits.clone());
    if let Some(died) = twin_died(set_views(n, &hearing, state).await)? {
        return Ok(died);
    }
    let desc: Vec<String> = groups.iter().map(|g| g.join(",")).collect();
    tracing::info!(
        "nemesis: twins round {round}: {}{}",
        desc.join(" | "),
        led.as_ref()
            .map(|l| format!(" (leader {l})"))
            .unwrap_or_default()
    );
    Ok(Landed::on(json!({
        "nodes": nodes,
        "round": round,
        "twins": twins,
        "groups": groups,
        "leader": led,
        "sees_twin": splits,
        "state": state,
    })))
}

/// A copy's place: its namespace, the address it speaks with, its MAC.
struct Place {
    netns: String,
    ip: Ipv4Addr,
    mac: String,
}

/// Make `hearing` true: every copy's namespace drops the frames of the copies it does not
/// hear and routes each twinned node's address to the copy it hears. Drops go in first
/// everywhere, so a copy a peer leaves is silent before packets go to the one it joins;
/// twins not running yet start last (from `state`), so their first packets meet their views. Copies are
/// set concurrently, one `nft` and one `ip -batch` each: a round's views land within a
/// few process starts, not a few per copy (4 nodes and 2 twins in series slipped rounds
/// by 1.5 s on a loaded 2-core machine).
pub(crate) async fn set_views(n: &Nemesis, hearing: &Hearing, state: TwinState) -> Result<()> {
    let nodes = n.cluster.nodes();
    let twins: BTreeSet<String> = hearing
        .keys()
        .filter(|c| identity(c) != c.as_str())
        .map(|c| identity(c).to_string())
        .collect();
    // copy → (namespace, address it speaks with)
    let mut at: BTreeMap<String, (String, Ipv4Addr)> = BTreeMap::new();
    let mut bridge_ips: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    for node in &nodes {
        let host = n
            .cluster
            .hosts()
            .node(node)
            .cloned()
            .ok_or_else(|| anyhow!("no host for node {node}"))?;
        let netns = host
            .netns
            .clone()
            .ok_or_else(|| anyhow!("node {node} has no namespace of its own"))?;
        at.insert(node.clone(), (netns, host.ip));
    }
    for t in &twins {
        let place = n.cluster.prepare_twin(t).await?;
        let netns = place
            .host
            .netns
            .clone()
            .ok_or_else(|| anyhow!("node {t}'s twin has no namespace"))?;
        bridge_ips.insert(t.clone(), place.bridge_ip);
        at.insert(twin_name(t), (netns, place.host.ip));
    }
    let macs = futures::future::try_join_all(at.values().map(|(ns, _)| {
        let ns = ns.clone();
        async move {
            tokio::task::spawn_blocking(move || mac_of(&ns))
                .await
                .context("reading a MAC address")?
        }
    }))
    .await?;
    let places: BTreeMap<&String, Place> = at
        .iter()
        .zip(macs)
        .map(|((copy, (netns, ip)), mac)| {
            (
                copy,
                Place {
                    netns: netns.clone(),
                    ip: *ip,
                    mac,
                },
            )
        })
        .collect();
    let empty = BTreeSet::new();
    futures::future::try_join_all(places.iter().map(|(copy, place)| {
        let heard = hearing.get(*copy).unwrap_or(&empty);
        let drop: Vec<&str> = places
            .iter()
            .filter(|(other, _)| *other != copy && !heard.contains(**other))
            .map(|(_, p)| p.mac.as_str())
            .collect();
        let script = drop_macs_script(&drop);
        async move { nft_in(&place.netns, &script).await }
    }))
    .await?;
    futures::future::try_join_all(places.iter().map(|(copy, place)| {
        let heard = hearing.get(*copy).unwrap_or(&empty);
        let batch: String = bridge_ips
            .iter()
            .filter(|(t, _)| t.as_str() != identity(copy))
            .map(|(t, via)| {
                let via = heard.contains(&twin_name(t)).then_some(*via);
                let argv = route_command(at[t].1, via, place.ip);
                // `ip -batch` takes the commands without the leading `ip`.
                format!("{}\n", argv[1..].join(" "))
            })
            .collect();
        async move {
            if batch.is_empty() {
                return Ok(());
            }
            exec_in(&place.netns, &["ip", "-batch", "-"], batch.as_bytes()).await
        }
    }))
    .await?;
    for t in &twins {
        // A node a pause holds is frozen already; the fork must not thaw it.
        let frozen = n.in_force().await.paused.contains(t);
        n.cluster.start_twin(t, state, frozen).await?;
        if let Err(e) = n.cluster.twin_alive(t).await {
            return Err(TwinDied(format!("{e:#}")).into());
        }
    }
    Ok(())
}

/// A twin process that exited on its own as it started: the target's code failed (a
/// panic, a refused identity), not faultline's set-up.
#[derive(Debug)]
struct TwinDied(String);

impl std::fmt::Display for TwinDied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TwinDied {}

/// A twin that died as it started did not land: the step is recorded as hitting no node,
/// with the twin's last words as the reason, and the run goes on to its verdict (the twin
/// stays in force, so the next round starts it again and the heal cleans up after it).
/// Any other failure stays an error.
fn twin_died(set: Result<()>) -> Result<Option<Landed>> {
    match set {
        Ok(()) => Ok(None),
        Err(e) => match e.downcast_ref::<TwinDied>() {
            Some(TwinDied(why)) => {
                tracing::info!("nemesis: the twin did not land: {why}");
                Ok(Some(Landed {
                    value: json!({ "nodes": [], "twin_died": why }),
                    note: Some(format!("the twin exited as it started: {why}")),
                }))
            }
            None => Err(e),
        },
    }
}

/// Stop every twin and give every node the originals back: routes and tables go, the
/// twins' namespaces stay for the run (a later start reuses them; teardown removes them).
pub async fn stop(n: &Nemesis) -> Result<Landed> {
    let twins: Vec<String> = n.in_force().await.twins.keys().cloned().collect();
    snapshot_logs(n, &twins).await;
    let mut failed = Failed::default();
    let mut ok = true;
    for node in &twins {
        ok &= failed.keep(n.cluster.stop_twin(node).await);
    }
    for peer in n.cluster.nodes() {
        for node in twins.iter().filter(|t| **t != peer) {
            let undone = async {
                let argv = route_command(n.ip(node)?, None, n.ip(&peer)?);
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                n.exec_checked(&peer, &argv, b"").await
            }
            .await;
            ok &= failed.keep(undone);
        }
        ok &= failed.keep(
            n.nft(&peer, &super::partition::delete_script(TWIN_TABLE))
                .await,
        );
    }
    if ok {
        n.in_force().await.twins.clear();
    }
    failed.into_result()?;
    tracing::info!("nemesis: twins stopped ({})", super::nodes_list(&twins));
    Ok(Landed::on(json!({ "nodes": twins })))
}

/// Before twins stop, read every copy's committed log into `logs/twins-<k>/` for the
/// agreement oracle (target.yaml `inspect`): a twin's log goes with it, and the fork a
/// twin made may be overwritten on the nodes by the end of the run. A copy that does not
/// answer within [`SNAPSHOT_TIMEOUT`] is noted (`<copy>.error`), not waited for.
async fn snapshot_logs(n: &Nemesis, twins: &[String]) {
    if twins.is_empty() || n.cluster.plan().target.spec.inspect.is_none() {
        return;
    }
    let logs = n.cluster.logs_dir();
    let taken = std::fs::read_dir(&logs).map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("twins-"))
            .count()
    });
    let dir = logs.join(format!("twins-{}", taken + 1));
    let mut copies = n.cluster.nodes();
    copies.extend(twins.iter().map(|t| twin_key(t)));
    if let Err(e) = n.cluster.save_logs(&dir, &copies, SNAPSHOT_TIMEOUT).await {
        tracing::info!("nemesis: reading the copies' logs before the twins stopped: {e:#}");
    }
}

/// Run `argv` with `stdin` in namespace `netns` (a node's or a twin's) and fail with its
/// stderr.
async fn exec_in(netns: &str, argv: &[&str], stdin: &[u8]) -> Result<()> {
    let out = crate::hosts::local::exec_in(Some(netns), argv, stdin)
        .await
        .with_context(|| format!("cannot run {} in {netns}", argv[0]))?;
    if !out.status.success() {
        bail!(
            "{} in {netns} failed: {}\ninput:\n{}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(stdin)
        );
    }
    Ok(())
}

/// Load an nft script in a copy's namespace (a twin's is not a node's host, so not
/// through [`Nemesis::nft`]).
async fn nft_in(netns: &str, script: &str) -> Result<()> {
    exec_in(netns, &["nft", "-f", "-"], script.as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_twin_that_died_starting_is_a_fault_that_missed_and_other_errors_stay_errors() {
        let died = twin_died(Err(
            TwinDied("twin of n1: exited (status 101)".into()).into()
        ))
        .unwrap()
        .unwrap();
        assert_eq!(died.value["nodes"], json!([]));
        assert!(died.note.unwrap().contains("exited (status 101)"));
        assert!(twin_died(Ok(())).unwrap().is_none());
        let other = twin_died(Err(anyhow!("nft failed"))).unwrap_err();
        assert_eq!(format!("{other:#}"), "nft failed");
    }

    fn nodes(k: usize) -> Vec<String> {
        (1..=k).map(|i| format!("n{i}")).collect()
    }

    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn two_twins_each_with_its_split() {
        let splits = BTreeMap::from([
            ("n1".to_string(), vec!["n2".to_string()]),
            ("n2".to_string(), vec!["n3".to_string(), "n4".to_string()]),
        ]);
        let h = hearing_of_splits(&nodes(4), &splits);
        assert_eq!(h.len(), 6, "four nodes and two twins");
        // n2 (both copies) sees n1's twin; n1's copies see n2's original (n1 not in n2's split).
        assert_eq!(h["n2"], set(&["n1-twin", "n3", "n4"]));
        assert_eq!(h["n2-twin"], set(&["n1-twin", "n3", "n4"]));
        assert_eq!(h["n1"], set(&["n2", "n3", "n4"]));
        assert_eq!(h["n1-twin"], set(&["n2", "n3", "n4"]));
        assert_eq!(h["n3"], set(&["n1", "n2-twin", "n4"]));
        // No copy hears its own other half.
        for (x, heard) in &h {
            assert!(
                !heard.iter().any(|y| identity(y) == identity(x)),
                "{x}: {heard:?}"
            );
        }
        let twins = set(&["n1", "n2"]);
        assert_eq!(splits_of(&nodes(4), &twins, &h), splits);
    }

    #[test]
    fn a_round_hears_its_group_and_the_leader_moves_without_meeting_its_twin() {
        let groups = vec![
            vec!["n1".to_string(), "n2-twin".to_string(), "n3".to_string()],
            vec!["n1-twin".to_string(), "n2".to_string(), "n4".to_string()],
        ];
        let h = hearing_of_groups(&groups);
        assert_eq!(h["n1"], set(&["n2-twin", "n3"]));
        assert_eq!(h["n4"], set(&["n1-twin", "n2"]));
        let moved = place_leader(&groups, "n2", 0);
        assert_eq!(
            moved,
            vec![
                vec!["n1".to_string(), "n2".to_string(), "n3".to_string()],
                vec![
                    "n1-twin".to_string(),
                    "n2-twin".to_string(),
                    "n4".to_string()
                ],
            ]
        );
        assert_eq!(place_leader(&groups, "n4", 1), groups, "already there");
        assert_eq!(place_leader(&groups, "n9", 0), groups, "not a node");
    }
}
