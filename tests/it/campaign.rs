//! `faultline campaign` end to end: the CI campaign on real clusters with its three output
//! files, resuming an interrupted campaign, and refusing a matrix before anything runs.

use crate::run::{cluster_lock, faultline, root_cluster, store};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// The campaign directory a finished `faultline campaign` printed (its index.html last).
fn campaign_dir_of(out: &Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let page = PathBuf::from(stdout.lines().last().unwrap_or_default());
    page.parent().unwrap_or(Path::new("")).to_path_buf()
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `faultline campaign FILE --store STORE [ARGS]`.
fn campaign(file: &Path, store: &Path, args: &[&str]) -> std::process::Command {
    let mut c = faultline();
    c.arg("campaign")
        .arg(file)
        .arg("--store")
        .arg(store)
        .args(args);
    c
}

fn show(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The acceptance test: 2 nemeses × 2 bug switches, 20 s each, over SSH hosts
/// (sshd in local network namespaces, as on VMs), every verdict as expected, and the
/// summary page, summary.json and junit.xml written and well-formed.
#[test]
fn the_ci_campaign_over_ssh_meets_its_expectations_and_writes_page_json_and_junit() {
    let Some((_cluster, store)) = root_cluster("campaign-ci") else {
        return;
    };
    let Some(lab) = crate::ssh::SshLab::start(&store.join("lab"), 3) else {
        return;
    };
    let out = faultline()
        .args(["campaign", "campaigns/ci.yaml", "--store"])
        .arg(&store)
        .arg("--inventory")
        .arg(&lab.inventory)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hosts ssh"),
        "{}",
        show(&out)
    );
    let dir = campaign_dir_of(&out);
    assert!(
        dir.starts_with(store.join("campaigns/ci")),
        "{}",
        dir.display()
    );

    let summary = json(&dir.join("summary.json"));
    assert_eq!(summary["outcome"], "as-expected", "{summary:#}");
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["finished"], true);
    let verdicts: Vec<(String, String)> = summary["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["verdict"].as_str().unwrap_or("none").to_string(),
            )
        })
        .collect();
    let expected = [
        ("raftkv-register-partition-primaries-stale-read", "invalid"),
        ("raftkv-register-clock-partition-stale-read", "invalid"),
        ("raftkv-register-partition-primaries-lease-read", "valid"),
        ("raftkv-register-clock-partition-lease-read", "invalid"),
    ];
    assert_eq!(
        verdicts,
        expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    );
    for r in summary["runs"].as_array().unwrap() {
        let run_dir = dir.join(r["run_dir"].as_str().unwrap());
        assert!(
            run_dir.join("index.html").is_file(),
            "{}",
            run_dir.display()
        );
        assert!(r["seed"].as_u64() == Some(1) && r["seconds"].as_f64().unwrap() > 20.0);
        if r["verdict"] == "invalid" {
            // Found while the clients ran (ci.yaml: 20 s), not only in the final reads.
            assert!(r["first_anomaly_s"].as_f64().unwrap() < 20.0, "{r}");
        }
    }

    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap_or_else(|e| panic!("{e}\n{junit}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("4"));
    assert_eq!(root.attribute("failures"), Some("0"));
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    let cases: Vec<_> = suites[0]
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 4);
    // Cases carry properties and a system-out line; none failed, erred or was skipped.
    assert!(
        cases.iter().all(|c| c
            .children()
            .all(|n| !["failure", "error", "skipped"].contains(&n.tag_name().name()))),
        "all pass: {junit}"
    );
    assert!(
        cases.iter().all(|c| c
            .descendants()
            .any(|p| p.attribute("name") == Some("verdict"))),
        "every finished run has its verdict: {junit}"
    );
    assert_eq!(
        cases[0].attribute("classname"),
        Some("ci.raftkv-register-partition-primaries-stale-read")
    );

    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(page.contains("all 4 runs as expected"));
    assert!(page.contains("1/1 valid") && page.contains("1/1 invalid"));
    for (name, _) in expected {
        assert!(page.contains(&format!("href=\"runs/{name}/")), "{name}");
    }
    assert!(dir.join("campaign.yaml").is_file() && dir.join("state.json").is_file());
    let reports = std::fs::read_to_string(store.join("index.html")).unwrap();
    assert!(
        reports.contains("<h2>Campaigns</h2>"),
        "the reports index lists it"
    );
    assert!(junit.contains("name=\"hosts\" value=\"ssh\""));
    // Every run ran on the SSH hosts and left nothing on them.
    let log = std::fs::read_to_string(
        dir.join(summary["runs"][0]["run_dir"].as_str().unwrap())
            .join("faultline.log"),
    )
    .unwrap();
    assert!(log.contains("hosts: 3 SSH hosts"), "{log}");
    let left: Vec<_> = std::fs::read_dir(lab.dir.join("remote"))
        .map(|it| it.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "runs left {left:?} on their hosts");
    lab.stop();
}

/// A campaign over an inventory with a host that cannot be reached stops before its first
/// run, naming the node and the reason.
#[test]
fn a_campaign_with_a_bad_inventory_stops_before_its_first_run() {
    let Some((_cluster, store)) = root_cluster("campaign-badinv") else {
        return;
    };
    let key = store.join("key");
    std::fs::write(&key, "not a key").unwrap();
    let inv = store.join("nodes.yaml");
    // Loopback addresses where nothing listens on port 22: refused at once, and no packet
    // leaves this machine.
    std::fs::write(
        &inv,
        format!(
            "defaults: {{key: {}, host_keys: off}}\nnodes:\n  - {{name: n1, address: 127.213.250.1}}\n  - {{name: n2, address: 127.213.250.2}}\n  - {{name: n3, address: 127.213.250.3}}\n",
            key.display()
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let out = campaign(Path::new("campaigns/ci.yaml"), &store, &[])
        .arg("--inventory")
        .arg(&inv)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SSH hosts are not usable") && err.contains("node n1"),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert!(
        !store.join("campaigns").exists(),
        "a campaign directory was started"
    );
}

/// Three short runs of correct raftkv on loopback addresses (no root needed).
const RESUMABLE: &str = "name: resumable
time_limit: 2s
repeats: 3
seed: 7
nodes: 3
matrix:
  target: [raftkv]
  workload: [register]
  nemesis: [none]
";

fn state(dir: &Path) -> Value {
    json(&dir.join("state.json"))
}

#[test]
fn an_interrupted_campaign_resumes_without_redoing_finished_runs() {
    let _cluster = cluster_lock();
    let store = store("campaign-resume");
    let file = store.join("resumable.yaml");
    std::fs::write(&file, RESUMABLE).unwrap();
    let loopback = || campaign(&file, &store, &["--hosts", "loopback"]);

    let child = loopback()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let root = store.join("campaigns/resumable");
    let deadline = Instant::now() + Duration::from_secs(120);
    let dir = loop {
        let dir = root.join("latest");
        if dir.join("state.json").is_file() && state(&dir)["runs"][0]["status"] == "done" {
            break std::fs::canonicalize(&dir).unwrap();
        }
        assert!(Instant::now() < deadline, "the first run never finished");
        std::thread::sleep(Duration::from_millis(100));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "interrupted: {}", show(&out));
    let first = state(&dir);
    let statuses: Vec<&str> = first["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["done", "pending", "pending"], "{first:#}");
    assert_eq!(first["runs"][0]["verdict"], "valid", "{first:#}");
    let summary = json(&dir.join("summary.json"));
    assert_eq!(summary["outcome"], "incomplete");
    assert!(String::from_utf8_lossy(&out.stdout).contains("interrupted"));

    // Resumed two at a time: runs 2 and 3 go side by side.
    let out = loopback().args(["--parallel", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("resuming") && stdout.contains("1 of 3 runs done, continuing with run 2"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("[1/3] start"),
        "run 1 was redone: {stdout}"
    );
    assert_eq!(campaign_dir_of(&out), dir, "the same campaign directory");
    let second = state(&dir);
    assert_eq!(second["runs"][0], first["runs"][0], "run 1 untouched");
    for r in second["runs"].as_array().unwrap() {
        assert_eq!(r["status"], "done");
        assert_eq!(r["verdict"], "valid");
    }
    let seeds: Vec<u64> = second["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [7, 8, 9]);
    // Runs 2 and 3 went side by side, each into its own faultline.log.
    let summary = json(&dir.join("summary.json"));
    let logs: Vec<(String, String)> = summary["runs"].as_array().unwrap()[1..]
        .iter()
        .map(|r| {
            let run_dir = r["run_dir"].as_str().unwrap().to_string();
            let log = std::fs::read_to_string(dir.join(&run_dir).join("faultline.log")).unwrap();
            (run_dir, log)
        })
        .collect();
    let ids: Vec<String> = logs
        .iter()
        .map(|(_, log)| {
            let ids: Vec<&str> = log
                .lines()
                .filter_map(|l| l.split("run id ").nth(1))
                .collect();
            assert_eq!(ids.len(), 1, "one run per log:\n{log}");
            ids[0].trim().to_string()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    for (i, (run_dir, log)) in logs.iter().enumerate() {
        let named = log.lines().find_map(|l| l.split("run directory ").nth(1));
        assert!(
            named.is_some_and(|d| d.ends_with(run_dir.as_str())),
            "{run_dir}: {log}"
        );
        assert!(log.contains("checker: valid"), "{log}");
        assert!(!log.contains(&ids[1 - i]), "the other run's lines:\n{log}");
    }
    std::fs::remove_dir_all(&store).ok();
}

#[test]
fn a_matrix_that_cannot_run_here_is_refused_before_anything_starts() {
    let store = store("campaign-refused");
    let file = store.join("net.yaml");
    std::fs::write(
        &file,
        "name: net\ntime_limit: 5s\nmatrix: {target: [raftkv], workload: [register], nemesis: [none, partition]}\n",
    )
    .unwrap();
    let out = campaign(&file, &store, &["--hosts", "loopback"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("net.yaml: cell raftkv / register / partition / default:")
            && err.contains("need network namespaces"),
        "{err}"
    );
    assert!(
        !err.contains("/ none /"),
        "only the broken cell is named: {err}"
    );
    assert!(!store.join("campaigns").exists(), "nothing was started");

    std::fs::write(&file, "name: net\ntime_limit: 5s\nrepeat: 2\nmatrix: {target: [raftkv], workload: [register], nemesis: [none]}\n").unwrap();
    let out = campaign(&file, &store, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("net.yaml:3:") && err.contains("unknown field `repeat`"),
        "{err}"
    );
    std::fs::remove_dir_all(&store).ok();
}

/// The shipped campaigns resolve, every cell of them.
#[test]
fn the_shipped_campaigns_resolve_cell_by_cell() {
    for (file, runs) in [
        ("campaigns/ci.yaml", 4),
        ("campaigns/raftkv-bugs.yaml", 110),
        ("campaigns/etcd.yaml", 35),
        ("campaigns/paxos.yaml", 380),
        // Series cells list every slot; a series skips the rest once it breaks.
        ("campaigns/byzantine.yaml", 2055),
        ("campaigns/hotstuff.yaml", 185),
        ("campaigns/protocols.yaml", 84),
        ("campaigns/durability.yaml", 113),
    ] {
        let out = faultline()
            .args(["campaign", file, "--dry-run", "--hosts", "local"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}: {}", show(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!(": {runs} runs in ")), "{stdout}");
        assert_eq!(stdout.lines().count(), runs + 1);
    }
}
