//! A new target from nothing: `faultline init-target` writes the skeleton, `faultline
//! probe-target` says which ops work, and the skeleton with its TODOs filled in for
//! lazykv runs a real test. Local hosts as root, loopback otherwise.

use super::run::{cluster_lock, faultline, is_root, run_dir_of, store};
use std::path::Path;
use std::process::Output;

fn hosts() -> &'static str {
    if is_root() {
        "local"
    } else {
        "loopback"
    }
}

fn probe(target: &Path) -> Output {
    faultline()
        .args([
            "probe-target",
            "--nodes",
            "3",
            "--hosts",
            hosts(),
            "--target",
        ])
        .arg(target)
        .output()
        .unwrap()
}

/// The table row of `op` (the first one when there are two).
fn row<'a>(stdout: &'a str, op: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(op))
        .unwrap_or_else(|| panic!("no {op} row in:\n{stdout}"))
}

fn init(dir: &Path) {
    let out = faultline().arg("init-target").arg(dir).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A target.yaml running lazykv nodes behind `dir/adapter.py`.
fn lazykv_behind_adapter(dir: &Path, ready: &str) {
    let lazy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lazykv/lazykv.py");
    std::fs::remove_file(dir.join("target.yaml")).unwrap();
    std::fs::write(
        dir.join("target.yaml"),
        format!(
            r#"name: skeleton
binary: /usr/bin/python3
ports: {{peer: 7101, client: 7102}}
start: ["{{binary}}", "{}", --id, "{{node}}", --client-listen, "{{ip}}:{{port.client}}",
        --peer-listen, "{{ip}}:{{port.peer}}", --peers, "{{peers}}"]
peer: "{{node}}={{ip}}:{{port.peer}}"
ready: {ready}
stop: {{signal: TERM, grace: 2s}}
client: {{protocol: stdio, port: client, command: [python3, "{{target_dir}}/adapter.py"]}}
clock_probe: []
"#,
            lazy.display()
        ),
    )
    .unwrap();
}

#[test]
fn probing_lazykv_says_write_read_and_cas_work() {
    let _cluster = cluster_lock();
    let out = probe(Path::new("tests/fixtures/lazykv/target.yaml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for op in ["write", "read", "cas", "leaders"] {
        let r = row(&stdout, op);
        assert!(r.ends_with("yes"), "{op}: {r}\n{stdout}");
    }
    assert!(row(&stdout, "write").contains(" ok "), "{stdout}");
    assert!(row(&stdout, "read").contains(" ok      1 "), "{stdout}");
    assert!(stdout.contains("fail    compare-failed"), "{stdout}");
    assert!(stderr.contains("teardown complete"), "{stderr}");
}

#[test]
fn probing_the_untouched_skeleton_says_every_op_fails_and_exits_1() {
    let _cluster = cluster_lock();
    let dir = store("probe-skeleton");
    init(&dir);
    // The skeleton's read is a TODO too, so readiness by a read could never pass.
    lazykv_behind_adapter(&dir, "{timeout: 10s, check: tcp}");
    let out = probe(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for op in ["write", "read", "cas"] {
        let r = row(&stdout, op);
        assert!(r.contains(" fail ") && r.contains("NO: "), "{op}: {r}");
        assert!(
            r.contains(&format!("not implemented yet: node_{op}")),
            "{r}"
        );
    }
    assert!(
        row(&stdout, "leaders").contains("no (optional)"),
        "{stdout}"
    );
    assert!(stdout.contains("does not work yet"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn readiness_through_the_untouched_skeleton_fails_naming_the_todo() {
    let _cluster = cluster_lock();
    let dir = store("probe-unready");
    init(&dir);
    lazykv_behind_adapter(&dir, "{timeout: 2s, check: client}");
    let out = probe(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("not implemented yet: node_read"),
        "{stderr}"
    );
    assert!(stderr.contains("teardown complete"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// What a user writes into the skeleton's TODOs for lazykv (raftkv's JSON-lines protocol).
const FILLED_IN: [(&str, &str); 4] = [
    (
        "raise NotImplementedError(\"node_read\")",
        "return rpc({\"op\": \"read\", \"key\": key}).get(\"value\")",
    ),
    (
        "raise NotImplementedError(\"node_write\")",
        "rpc({\"op\": \"write\", \"key\": key, \"value\": value})",
    ),
    (
        "raise NotImplementedError(\"node_cas\")",
        "return rpc({\"op\": \"cas\", \"key\": key, \"from\": old, \"to\": new})[\"type\"] == \"ok\"",
    ),
    (
        "raise NotImplementedError(\"node_leaders\")",
        "return [n for n, a in ENDPOINTS.items() if status(a).get(\"leader\")]",
    ),
];

const HELPERS: &str = r#"
def rpc(req, conn=None):
    c = conn or connection()
    req["id"] = 1
    c.sendall((json.dumps(req) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = c.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the node")
        buf += chunk
    resp = json.loads(buf)
    if resp.get("type") == "fail" and resp.get("error") != "compare-failed":
        raise NotApplied(resp.get("error", "fail"))
    return resp


def status(addr):
    try:
        with socket.create_connection(addr, timeout=CALL_TIMEOUT_S) as c:
            return rpc({"op": "status"}, c)
    except (OSError, NotApplied):
        return {}


if __name__ == "__main__":"#;

#[test]
fn the_skeleton_filled_in_for_lazykv_probes_clean_and_runs_a_test() {
    let _cluster = cluster_lock();
    let dir = store("probe-filled");
    init(&dir);
    let mut adapter = std::fs::read_to_string(dir.join("adapter.py")).unwrap();
    for (todo, code) in FILLED_IN {
        assert!(adapter.contains(todo), "the skeleton lost {todo}");
        adapter = adapter.replace(todo, code);
    }
    adapter = adapter.replace("\nif __name__ == \"__main__\":", HELPERS);
    std::fs::write(dir.join("adapter.py"), adapter).unwrap();
    lazykv_behind_adapter(&dir, "{timeout: 10s, check: client}");

    let out = probe(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(row(&stdout, "leaders").contains("n1,n2,n3"), "{stdout}");
    assert!(
        stdout.contains("the adapter names leaders: declare `leaders: true` under `client:`"),
        "its target.yaml does not declare it yet: {stdout}"
    );

    // A run through the adapter reaches a verdict on real ops. (lazykv's stale reads make it
    // invalid nearly always, but through one adapter process per worker a 5 s run on a
    // busy machine has once missed them, so the verdict itself is not asserted.)
    let reports = dir.join("reports");
    let out = faultline()
        .args([
            "run",
            "--nodes",
            "3",
            "--nemesis",
            "none",
            "--time-limit",
            "5s",
        ])
        .args(["--seed", "1", "--quiet", "--hosts", hosts(), "--target"])
        .arg(&dir)
        .arg("--store")
        .arg(&reports)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = super::run::results(&run_dir_of(&out));
    assert!(r["run"]["ok"].as_u64().unwrap_or(0) > 100, "{r}");
    std::fs::remove_dir_all(&dir).ok();
}
