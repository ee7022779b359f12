//! The conformance corpus: every history of `../shared/corpus` (or `$FAULTLINE_CORPUS`)
//! is checked with the model its `MANIFEST.tsv` row names and must get the row's
//! expected verdict. A missing or skipped file fails the test.

use faultline::checker::model::{ModelKind, ModelSpec};
use faultline::checker::{check, CheckOptions, Verdict};
use faultline::history::{self, Format};
use serde_json::json;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    std::env::var_os("FAULTLINE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
}

/// The model a MANIFEST `model` cell names, with the semantics of the project whose
/// tests gave the expected verdict (corpus README): Porcupine's etcd logs start at nil
/// and read nil as "no key"; Knossos' `cas-register 0` treats a nil read as unknown.
fn spec(model: &str) -> ModelSpec {
    if model.starts_with("cas-register, init nil") {
        ModelSpec::new(ModelKind::CasRegister)
    } else if model.starts_with("cas-register 0") {
        ModelSpec::new(ModelKind::CasRegister)
            .with_init(json!(0))
            .with_nil_read_unknown(true)
    } else if model.starts_with("multi-register") {
        ModelSpec::new(ModelKind::MultiRegister)
            .with_init(json!({"x": 0, "y": 0}))
            .with_nil_read_unknown(true)
    } else if model == "mutex" {
        ModelSpec::new(ModelKind::Mutex)
    } else if model.starts_with("kv") {
        ModelSpec::new(ModelKind::Kv)
    } else {
        panic!("MANIFEST names a model this test does not know: {model:?}")
    }
}

fn expected(cell: &str) -> Verdict {
    if cell.starts_with("NOT linearizable") {
        Verdict::Invalid
    } else if cell.starts_with("linearizable") {
        Verdict::Valid
    } else {
        panic!("MANIFEST has an expected verdict this test does not know: {cell:?}")
    }
}

fn verdict(path: &Path, spec: &ModelSpec, opts: &CheckOptions) -> Result<Verdict, String> {
    let format = Format::detect(path).map_err(|e| e.to_string())?;
    let ops = history::open(path, format).map_err(|e| e.to_string())?;
    check(ops, path, spec, opts)
        .map(|r| r.verdict)
        .map_err(|e| e.to_string())
}

fn verdicts_only() -> CheckOptions {
    CheckOptions {
        counterexample: false,
        ..CheckOptions::default()
    }
}

#[test]
fn every_corpus_history_gets_its_manifest_verdict() {
    let dir = corpus();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set FAULTLINE_CORPUS)",
            dir.join("MANIFEST.tsv").display()
        )
    });
    let mut header = manifest.lines().next().unwrap_or_default().split('\t');
    let column = |name: &str, header: &mut std::str::Split<'_, char>| {
        header
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("MANIFEST has no {name} column"))
    };
    let (path_col, model_col, expected_col) = (
        column("corpus_path", &mut header.clone()),
        column("model", &mut header.clone()),
        column("expected", &mut header),
    );
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = row.split('\t').collect();
        let file = dir.join(cells[path_col]);
        let want = expected(cells[expected_col]);
        match verdict(&file, &spec(cells[model_col]), &verdicts_only()) {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!("{}: expected {want}, got {got}", cells[path_col])),
            Err(e) => failures.push(format!("{}: {e}", cells[path_col])),
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} corpus histories failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        checked, 230,
        "the corpus has 230 histories; a file was skipped or added"
    );
}

#[test]
fn porcupine_kv_histories_agree_when_checked_unpartitioned() {
    let opts = CheckOptions {
        partition_by_key: false,
        ..verdicts_only()
    };
    for (file, want) in [
        ("c01-ok", Verdict::Valid),
        ("c01-bad", Verdict::Invalid),
        ("c10-ok", Verdict::Valid),
        ("c10-bad", Verdict::Invalid),
    ] {
        let path = corpus().join(format!("porcupine/kv/{file}.txt"));
        assert_eq!(
            verdict(&path, &ModelSpec::new(ModelKind::Kv), &opts),
            Ok(want),
            "{file}"
        );
    }
}

#[test]
fn rethink_histories_are_invalid_from_nil_too() {
    for file in [
        "rethink-fail",
        "rethink-fail-minimal",
        "rethink-fail-smaller",
    ] {
        let path = corpus().join(format!("knossos/cas-register/bad/{file}.edn"));
        let spec = ModelSpec::new(ModelKind::CasRegister).with_nil_read_unknown(true);
        assert_eq!(
            verdict(&path, &spec, &verdicts_only()),
            Ok(Verdict::Invalid),
            "{file}"
        );
    }
}

#[test]
fn the_etcd_mutex_history_is_invalid_with_a_counterexample() {
    let path = corpus().join("knossos/mutex/bad/etcd.edn");
    let ops = history::open(&path, Format::Edn).unwrap();
    let report = check(
        ops,
        &path,
        &ModelSpec::new(ModelKind::Mutex),
        &CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(report.verdict, Verdict::Invalid);
    let cx = report
        .counterexample
        .expect("an invalid verdict comes with a counterexample");
    assert!(!cx.window.is_empty());
    assert!(
        cx.window
            .iter()
            .all(|c| c.f == "acquire" || c.f == "release"),
        "{cx}"
    );
}
