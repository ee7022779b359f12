//! The twin fault: a second process with a node's identity, on a host of its own
//! ([`crate::hosts::twin`]), seen by some of its peers in place of the original. Starting
//! it again while it runs switches who sees which; its inverse stops the twin (its output
//! stays in `nodes/<node>-twin/`) and gives every peer the original back.
//!
//! The controller's clients keep talking to the original: the twin answers only its peers.

use super::{Failed, Landed, Nemesis};
use crate::hosts::twin::{drop_mac_script, mac_of, route_command, TwinPlace};
use crate::hosts::TWIN_TABLE;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;

/// Start `node`'s twin if it does not run, and make `sees_twin` see it at the node's
/// address and every other peer the original.
pub async fn start(n: &Nemesis, node: &str, sees_twin: &[String]) -> Result<Landed> {
    {
        let mut f = n.in_force().await;
        if let Some(other) = f.twins.keys().find(|k| *k != node) {
            bail!("the twin of {other} is in force; one twinned node at a time (stop it first: `stop: twin`)");
        }
        // Intent first: a start cut half-way is healed.
        f.twins.insert(node.to_string(), sees_twin.to_vec());
    }
    let place = n.cluster.prepare_twin(node).await?;
    let original_ns = n
        .cluster
        .hosts()
        .node(node)
        .and_then(|h| h.netns.clone())
        .ok_or_else(|| anyhow!("node {node} has no namespace of its own"))?;
    let twin_ns = place
        .host
        .netns
        .clone()
        .ok_or_else(|| anyhow!("node {node}'s twin has no namespace"))?;
    let (original_mac, twin_mac) = (mac_of(&original_ns)?, mac_of(&twin_ns)?);
    // The pair never hear each other.
    n.nft(node, &drop_mac_script(&twin_mac)).await?;
    nft_in(&twin_ns, &drop_mac_script(&original_mac)).await?;
    let mut sees_original = Vec::new();
    for peer in n.cluster.nodes().iter().filter(|p| *p != node) {
        let twin = sees_twin.contains(peer);
        if !twin {
            sees_original.push(peer.clone());
        }
        view(n, peer, &place, twin, &original_mac, &twin_mac).await?;
    }
    // Started only now, so its first packets already meet the views it is given.
    n.cluster.start_twin(node).await?;
    n.cluster.twin_alive(node).await?;
    tracing::info!(
        "nemesis: twin of {node} (bridge address {}) seen by {}; the original by {}",
        place.bridge_ip,
        super::nodes_list(sees_twin),
        super::nodes_list(&sees_original)
    );
    Ok(Landed::on(json!({
        "nodes": [node],
        "twin": node,
        "sees_twin": sees_twin,
        "sees_original": sees_original,
    })))
}

/// Make `peer` see `node`'s twin (`twin`) or its original: the drop rule first, so the
/// one it leaves is silent before packets go to the one it joins.
async fn view(
    n: &Nemesis,
    peer: &str,
    place: &TwinPlace,
    twin: bool,
    original_mac: &str,
    twin_mac: &str,
) -> Result<()> {
    let (drop, via) = if twin {
        (original_mac, Some(place.bridge_ip))
    } else {
        (twin_mac, None)
    };
    n.nft(peer, &drop_mac_script(drop)).await?;
    let argv = route_command(place.host.ip, via);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    n.exec_checked(peer, &argv, b"").await
}

/// Stop every twin and give its peers the original back: routes and tables go, the
/// twin's namespace stays for the run (a later start reuses it; teardown removes it).
pub async fn stop(n: &Nemesis) -> Result<Landed> {
    let twins: Vec<String> = n.in_force().await.twins.keys().cloned().collect();
    let mut failed = Failed::default();
    for node in &twins {
        let stopped = n.cluster.stop_twin(node).await;
        let mut ok = failed.keep(stopped);
        let place = n.cluster.twin_place(node);
        for peer in n.cluster.nodes().iter().filter(|p| *p != node) {
            let undone = async {
                if let Ok(place) = &place {
                    let argv = route_command(place.host.ip, None);
                    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                    n.exec_checked(peer, &argv, b"").await?;
                }
                n.nft(peer, &super::partition::delete_script(TWIN_TABLE))
                    .await
            }
            .await;
            ok &= failed.keep(undone);
        }
        ok &= failed.keep(
            n.nft(node, &super::partition::delete_script(TWIN_TABLE))
                .await,
        );
        if ok {
            n.in_force().await.twins.remove(node);
        }
    }
    failed.into_result()?;
    tracing::info!("nemesis: twins stopped ({})", super::nodes_list(&twins));
    Ok(Landed::on(json!({ "nodes": twins })))
}

/// Load an nft script in a twin's namespace (not a node's host, so not through
/// [`Nemesis::nft`]).
async fn nft_in(netns: &str, script: &str) -> Result<()> {
    let out = crate::hosts::local::exec_in(Some(netns), &["nft", "-f", "-"], script.as_bytes())
        .await
        .with_context(|| format!("cannot run nft in {netns}"))?;
    if !out.status.success() {
        bail!(
            "nft in {netns} failed: {}\ninput:\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
