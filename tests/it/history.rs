//! History I/O end to end: every corpus file imports with the counts MANIFEST.tsv states,
//! EDN and JSONL exports read back to the same ops, the journal survives a killed writer,
//! and `faultline export` fails cleanly on bad input.

use faultline::history::{
    open, read_all, write_edn, write_jsonl, Format, HistoryWriter, Op, OpType, Process,
};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The conformance corpus: `$FAULTLINE_CORPUS`, else `../shared/corpus` beside the repo.
fn corpus_dir() -> PathBuf {
    match std::env::var_os("FAULTLINE_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
    }
}

/// One row of MANIFEST.tsv, the columns this test checks.
struct Row {
    path: String,
    format: String,
    ops: u64,
    ok: Option<u64>,
    fail: Option<u64>,
    info_or_pending: Option<u64>,
    processes: u64,
}

fn manifest() -> Vec<Row> {
    let path = corpus_dir().join("MANIFEST.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e} (set FAULTLINE_CORPUS)", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("MANIFEST.tsv is empty")
        .split('\t')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("MANIFEST.tsv has no column {name}"))
    };
    let (c_path, c_format, c_ops, c_ok, c_fail, c_info, c_procs) = (
        col("corpus_path"),
        col("format"),
        col("ops"),
        col("ok"),
        col("fail"),
        col("info_or_pending"),
        col("processes"),
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let num = |i: usize| -> Option<u64> {
                let s = f.get(i).copied().unwrap_or("").trim();
                (!s.is_empty()).then(|| {
                    s.parse()
                        .unwrap_or_else(|_| panic!("bad number {s:?} in {l}"))
                })
            };
            Row {
                path: f[c_path].to_owned(),
                format: f[c_format].to_owned(),
                ops: num(c_ops).expect("ops column is always filled"),
                ok: num(c_ok),
                fail: num(c_fail),
                info_or_pending: num(c_info),
                processes: num(c_procs).expect("processes column is always filled"),
            }
        })
        .collect()
}

/// History files on disk under the corpus (data files, not licences or notes).
fn history_files_on_disk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            history_files_on_disk(&path, root, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("edn" | "log" | "txt")
        ) && !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("LICENSE")
        {
            out.insert(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
}

/// Counts as MANIFEST.tsv defines them: client ops only (nemesis excluded); `ops` are
/// invocations; `info_or_pending` counts info completions plus invocations never
/// completed.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    ops: u64,
    ok: u64,
    fail: u64,
    info_or_pending: u64,
    processes: u64,
}

fn counts(path: &Path, ops: &[Op]) -> Counts {
    let mut c = Counts {
        ops: 0,
        ok: 0,
        fail: 0,
        info_or_pending: 0,
        processes: 0,
    };
    let mut open: HashMap<Process, &Op> = HashMap::new();
    let mut procs = BTreeSet::new();
    for op in ops.iter().filter(|o| o.is_client()) {
        procs.insert(op.process);
        match op.kind {
            OpType::Invoke => {
                c.ops += 1;
                let prev = open.insert(op.process, op);
                assert!(
                    prev.is_none(),
                    "{}: process {} invoked twice without completing: {op:?}",
                    path.display(),
                    op.process
                );
            }
            kind => {
                assert!(
                    open.remove(&op.process).is_some(),
                    "{}: completion without an invocation: {op:?}",
                    path.display()
                );
                match kind {
                    OpType::Ok => c.ok += 1,
                    OpType::Fail => c.fail += 1,
                    _ => c.info_or_pending += 1,
                }
            }
        }
    }
    c.info_or_pending += open.len() as u64;
    c.processes = procs.len() as u64;
    c
}

fn expected_format(manifest_format: &str) -> Format {
    match manifest_format {
        "jepsen-log" => Format::JepsenLog,
        "kv-edn-lines" => Format::KvLines,
        "edn-vector" | "edn-list" => Format::Edn,
        other => panic!("MANIFEST.tsv names an unknown format {other:?}"),
    }
}

#[test]
fn every_corpus_history_imports_with_the_manifest_counts() {
    let root = corpus_dir();
    let rows = manifest();
    let mut on_disk = BTreeSet::new();
    history_files_on_disk(&root, &root, &mut on_disk);
    let listed: BTreeSet<String> = rows.iter().map(|r| r.path.clone()).collect();
    assert_eq!(listed.len(), rows.len(), "MANIFEST.tsv lists a file twice");
    assert_eq!(
        on_disk, listed,
        "history files on disk and rows of MANIFEST.tsv differ"
    );
    assert!(
        rows.len() >= 230,
        "only {} histories in the corpus",
        rows.len()
    );

    let mut checked = 0;
    for row in &rows {
        let path = root.join(&row.path);
        let format = Format::detect(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(format, expected_format(&row.format), "{}", row.path);
        let mut ops = Vec::new();
        let mut last_line = 0;
        for item in open(&path, format).unwrap_or_else(|e| panic!("{e}")) {
            let (line, op) = item.unwrap_or_else(|e| panic!("{e}"));
            assert!(
                line > last_line || (line == last_line && format == Format::Edn),
                "{}: line numbers go backwards",
                row.path
            );
            last_line = line;
            assert_eq!(
                op.index,
                ops.len() as u64,
                "{}: index is the position",
                row.path
            );
            ops.push(op);
        }
        let got = counts(&path, &ops);
        let want = Counts {
            ops: row.ops,
            ok: row.ok.unwrap_or(got.ok),
            fail: row.fail.unwrap_or(got.fail),
            info_or_pending: row.info_or_pending.unwrap_or(got.info_or_pending),
            processes: row.processes,
        };
        assert_eq!(got, want, "{}", row.path);
        if row.ok.is_none() {
            // The kv histories leave ok/fail/info blank: the README says only invoke
            // and ok occur and nothing stays open.
            assert_eq!(
                (got.ok, got.fail, got.info_or_pending),
                (got.ops, 0, 0),
                "{}",
                row.path
            );
        }
        checked += 1;
    }
    assert_eq!(checked, rows.len());
}

#[test]
fn imports_jepsen_log_semantics_on_a_real_file() {
    let path = corpus_dir().join("porcupine/jepsen/etcd_000.log");
    let ops = read_all(&path, Format::JepsenLog).unwrap();
    let fail_cas = ops
        .iter()
        .find(|o| o.kind == OpType::Fail && o.f == "cas")
        .expect("etcd_000 has failed cas ops");
    assert_eq!(
        fail_cas.error.as_deref(),
        Some(faultline::history::COMPARE_FAILED)
    );
    assert!(fail_cas.value.is_array());
    let info = ops
        .iter()
        .find(|o| o.kind == OpType::Info)
        .expect("has info ops");
    assert_eq!(info.error.as_deref(), Some("timed-out"));
    assert!(!info.value.is_null(), "info carries the invocation's value");
}

#[test]
fn knossos_line_numbers_point_at_the_start_of_each_map() {
    let path = corpus_dir().join("knossos/multi-register/good/multi-register.edn");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut n = 0;
    for item in open(&path, Format::Edn).unwrap() {
        let (line, op) = item.unwrap();
        let src = lines[line - 1];
        assert!(
            src.trim_start().trim_start_matches('[').starts_with('{'),
            "line {line}: {src}"
        );
        if op.f == "txn" {
            assert!(op.value.is_array());
        }
        n += 1;
    }
    assert_eq!(n, 123 * 2 + 4, "123 pairs and 4 nemesis ops");
}

/// Import → export → import gives the same ops, for every corpus file and both outputs.
#[test]
fn exports_of_every_corpus_history_read_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    for row in manifest() {
        let path = corpus_dir().join(&row.path);
        let ops = read_all(&path, Format::detect(&path).unwrap()).unwrap();

        let edn_path = dir.path().join("out.edn");
        write_edn(&ops, std::fs::File::create(&edn_path).unwrap()).unwrap();
        assert_eq!(Format::detect(&edn_path).unwrap(), Format::Edn);
        let back = read_all(&edn_path, Format::Edn).unwrap_or_else(|e| panic!("{}: {e}", row.path));
        assert_eq!(back, ops, "EDN round trip of {}", row.path);

        let jsonl_path = dir.path().join("out.jsonl");
        write_jsonl(&ops, std::fs::File::create(&jsonl_path).unwrap()).unwrap();
        let back = read_all(&jsonl_path, Format::Jsonl).unwrap();
        assert_eq!(back, ops, "JSONL round trip of {}", row.path);
    }
}

fn sample_op(i: u64) -> Op {
    Op {
        index: i,
        time_ns: 1_000 * i,
        process: if i % 7 == 6 {
            Process::Nemesis
        } else {
            Process::Client(i % 5)
        },
        kind: if i.is_multiple_of(2) {
            OpType::Invoke
        } else {
            OpType::Ok
        },
        f: if i.is_multiple_of(3) {
            "cas".into()
        } else {
            "write".into()
        },
        key: (i.is_multiple_of(4)).then(|| format!("k{i}")),
        value: if i.is_multiple_of(3) {
            json!([i, i + 1])
        } else {
            json!(i)
        },
        node: (i.is_multiple_of(5)).then(|| "n1".into()),
        error: (i.is_multiple_of(11)).then(|| "timed \"out\"\n".into()),
    }
}

#[test]
fn journal_round_trips_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let ops: Vec<Op> = (0..200).map(sample_op).collect();
    let mut w = HistoryWriter::create(&path).unwrap();
    for op in &ops {
        w.append(op).unwrap();
    }
    w.sync().unwrap();
    assert_eq!(read_all(&path, Format::Jsonl).unwrap(), ops);
    assert_eq!(Format::detect(&path).unwrap(), Format::Jsonl);
}

#[test]
fn journal_lines_are_readable_while_the_writer_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let mut w = HistoryWriter::create(&path).unwrap();
    for i in 0..20 {
        let stamped = w.append_stamped(sample_op(i)).unwrap();
        // No flush, no drop: what a concurrent reader (or a post-mortem) sees.
        let seen = read_all(&path, Format::Jsonl).unwrap();
        assert_eq!(seen.len() as u64, i + 1);
        assert_eq!(seen.last(), Some(&stamped));
        assert!(std::fs::read(&path).unwrap().ends_with(b"\n"));
    }
}

#[test]
fn tolerates_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let mut w = HistoryWriter::create(&path).unwrap();
    for i in 0..10 {
        w.append(&sample_op(i)).unwrap();
    }
    drop(w);
    // Cut the file in the middle of the last line, as a SIGKILL during write(2) could.
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 20).unwrap();
    let ops = read_all(&path, Format::Jsonl).unwrap();
    assert_eq!(ops, (0..9).map(sample_op).collect::<Vec<_>>());
}

#[test]
fn rejects_a_malformed_middle_line_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let good = serde_json::to_string(&sample_op(1)).unwrap();
    std::fs::write(
        &path,
        format!(
            "{good}\n{good}\n{{\"index\":2,\"time_ns\":3,\"process\":1,\"type\":\"ok\"}}\n{good}\n"
        ),
    )
    .unwrap();
    let err = read_all(&path, Format::Jsonl).unwrap_err();
    assert_eq!(err.line, 3);
    assert_eq!(
        err.to_string(),
        format!("{}:3: missing field \"f\"", path.display())
    );
    // A torn-looking line that is *not* last is corruption, not a torn write.
    std::fs::write(&path, format!("{good}\n{{\"index\":2,\"ti\n{good}")).unwrap();
    let err = read_all(&path, Format::Jsonl).unwrap_err();
    assert_eq!(err.line, 2);
}

#[test]
fn reports_edn_errors_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.edn");
    std::fs::write(
        &path,
        "[{:process 0, :type :invoke, :f :read, :value nil}\n {:process 0, :type :ok, :f :read, :value [1 2}\n]",
    )
    .unwrap();
    let err = read_all(&path, Format::Edn).unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.message.starts_with("column 47:"), "{err}");
    std::fs::write(
        &path,
        "[{:process 0, :type :invoke, :f :read}\n {:process 0, :f :read}]",
    )
    .unwrap();
    let err = read_all(&path, Format::Edn).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:2: missing key :type", path.display())
    );
}

/// Entry point for [`journal_survives_sigkill_of_the_writer`]: when the parent sets
/// `FAULTLINE_TEST_JOURNAL`, journal ops there as fast as possible until killed. Bounded
/// so an orphan cannot run forever. Without the variable it does nothing.
#[test]
#[ignore = "child process of journal_survives_sigkill_of_the_writer"]
fn journal_writer_child() {
    let Some(path) = std::env::var_os("FAULTLINE_TEST_JOURNAL") else {
        return;
    };
    let mut w = HistoryWriter::create(Path::new(&path)).unwrap();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(30) {
        w.append_stamped(sample_op(i)).unwrap();
        i += 1;
    }
}

#[test]
fn journal_survives_sigkill_of_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "history::journal_writer_child",
            "--ignored",
            "--test-threads=1",
        ])
        .env("FAULTLINE_TEST_JOURNAL", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) < 200_000 {
        assert!(Instant::now() < deadline, "child wrote too little");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL, to our own child's pid
    child.wait().unwrap();
    let ops = read_all(&path, Format::Jsonl).unwrap();
    assert!(ops.len() > 1000, "{} ops", ops.len());
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(op.index, i as u64);
    }
}

fn faultline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn export_cli_converts_and_writes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let src = corpus_dir().join("porcupine/kv/c01-ok.txt");
    let out = dir.path().join("c01.edn");
    let run = faultline(&["export", src.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        read_all(&out, Format::Edn).unwrap(),
        read_all(&src, Format::KvLines).unwrap()
    );
    let run = faultline(&["export", out.to_str().unwrap(), "--to", "jsonl"]);
    assert!(run.status.success());
    let jsonl = dir.path().join("c01.jsonl");
    std::fs::write(&jsonl, &run.stdout).unwrap();
    assert_eq!(
        read_all(&jsonl, Format::Jsonl).unwrap(),
        read_all(&src, Format::KvLines).unwrap()
    );
}

#[test]
fn export_cli_exits_3_on_bad_input_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    let mut f = std::fs::File::create(&bad).unwrap();
    for i in 0..3 {
        writeln!(f, "{}", serde_json::to_string(&sample_op(i)).unwrap()).unwrap();
    }
    writeln!(
        f,
        r#"{{"index":3,"time_ns":1,"process":1,"type":"done","f":"read"}}"#
    )
    .unwrap();
    drop(f);
    let out = dir.path().join("out.edn");
    for to_file in [true, false] {
        let mut args = vec!["export", bad.to_str().unwrap()];
        if to_file {
            args.extend(["-o", out.to_str().unwrap()]);
        }
        let run = faultline(&args);
        assert_eq!(run.status.code(), Some(3));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(&format!(
                "{}:4: \"type\" must be one of invoke/ok/fail/info",
                bad.display()
            )),
            "{stderr}"
        );
        assert!(run.stdout.is_empty(), "nothing half-written to stdout");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("bad.jsonl")],
        "no output or temp file"
    );
    let run = faultline(&["export", "--format", "yaml", bad.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(3), "an unknown format is bad input");
    assert!(String::from_utf8_lossy(&run.stderr).contains("jepsen-log"));
}
