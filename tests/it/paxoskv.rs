//! paxoskv end to end (issue 22): real Multi-Paxos nodes on the node shell, under a
//! partition nemesis, checked by linearizability and by the agreement oracle over their
//! chosen slots, with `next-primaries`-style leader naming from the status request.

use crate::run::{assert_valid_and_agreed, faultline, results, root_cluster, run_dir_of};

#[test]
fn paxoskv_under_partitions_of_its_leader_is_valid_and_its_nodes_agree() {
    let Some((_cluster, store)) = root_cluster("paxoskv") else {
        return;
    };
    let out = faultline()
        .args([
            "run",
            "--target",
            "paxoskv",
            "--nemesis",
            "partition-primaries",
        ])
        .args(["--nodes", "3", "--time-limit", "10s", "--quiet", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let run_dir = run_dir_of(&out);
    let r = results(&run_dir);
    // Not vacuous: writes were acknowledged, the leader was found and cut off, and every
    // node's chosen slots were read back and compared.
    assert_valid_and_agreed(&r, 100, 100);
    let a = &r["agreement"];
    for node in ["n1", "n2", "n3"] {
        assert!(a["nodes"][node]["entries"].as_u64().unwrap() > 0, "{a}");
    }
}
