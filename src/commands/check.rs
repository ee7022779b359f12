//! The `faultline check` subcommand: read a history file, check it for linearizability,
//! print the verdict (and counterexample), optionally write the results as JSON.
//!
//! Exit codes: 0 valid, 1 invalid, 2 unknown (a budget ran out, or — `--require-ok`,
//! on for jsonl — a client f the history invokes never succeeded:
//! [`crate::checker::stats`]), 3 bad input (a
//! malformed history, an unknown model or format, a bad `--init`) — in which case
//! nothing is written.

use super::cli::CheckArgs;
use crate::checker::model::{ModelKind, ModelSpec};
use crate::checker::stats::{Required, Tally};
use crate::checker::{check, CheckOptions, Results, Verdict};
use crate::history::{self, Format, HistoryError, Op, OpStream};
use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

/// Shown after the options in `faultline check --help`.
pub const AFTER_HELP: &str = "\
Default model, when --model is not given:
  jepsen-log  cas-register, init null (Porcupine's reading of Jepsen's etcd logs)
  kv-lines    kv
  edn         from the first client op's f: txn → multi-register, acquire/release → mutex,
              get/put/append → kv, otherwise cas-register with Knossos' rule that a read
              returning null is unknown (--nil-read-unknown=false turns it off)
  jsonl       from the first client op's f, as for edn, but null reads are values
--init takes JSON: a register's initial value (default null) or a multi-register map
such as '{\"x\":0,\"y\":0}' (default: every register null).

Exit status: 0 valid, 1 invalid, 2 unknown (time or memory budget exhausted, or — with
--require-ok, the default for jsonl — some f the history invokes never succeeded: no ok,
and for a cas no compare-failed), 3 bad input.";

/// Run `faultline check`; returns the process exit code.
pub fn run(args: &CheckArgs) -> ExitCode {
    match execute(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn execute(args: &CheckArgs) -> Result<u8> {
    let path = args.history.as_path();
    let (format, stream) = history::open_detect(path, args.format)?;
    let (first, stream) = peek_first_client_op(stream)?;
    let spec = model_spec(args, format, first.as_ref())?;
    let opts = CheckOptions {
        time_limit: args.time_limit,
        memory_limit_bytes: args.memory_limit,
        partition_by_key: !args.no_partition,
        threads: args.threads.unwrap_or(0),
        counterexample: true,
        ..CheckOptions::default()
    };
    // A bare history says nothing about its workload's mix: every client f it invokes
    // must have succeeded at least once (Jepsen's stats checker does the same). Imported
    // histories are judged for linearizability alone unless asked: the tests that wrote
    // them had their own stats, and the corpus's verdicts are about linearizability.
    let mut tally = Tally::new(Required::Invoked, None);
    let require_ok = args.require_ok.unwrap_or(format == Format::Jsonl);
    let stream = stream.inspect(|item| {
        if let Ok((_, op)) = item {
            tally.add(op);
        }
    });
    let report = check(stream, path, &spec, &opts)?;
    let stats = tally.finish();
    let (verdict, reason) = if require_ok {
        stats.compose(report.verdict, report.reason.as_deref())
    } else {
        (report.verdict, report.reason.clone())
    };
    if let Some(out) = &args.json {
        let results = Results {
            checker: "linearizability",
            history: path.display().to_string(),
            format: format.to_string(),
            report: &report,
        };
        let mut value = serde_json::to_value(&results)?;
        value["checker_verdict"] = serde_json::to_value(report.verdict)?;
        value["verdict"] = serde_json::to_value(verdict)?;
        value["reason"] = serde_json::to_value(&reason)?;
        if require_ok {
            value["stats"] = serde_json::to_value(&stats)?;
        }
        write_json_atomically(out, &value)
            .with_context(|| format!("cannot write results to {}", out.display()))?;
    }
    if args.quiet {
        println!("{verdict}");
    } else {
        println!("history: {} ({format})", path.display());
        // Said whenever the rule is why the verdict is unknown, also when the checker's
        // budget ran out as well.
        if let (true, Verdict::Unknown, Some(why)) = (require_ok, verdict, &stats.reason) {
            println!("verdict: UNKNOWN");
            println!("unknown because: {why}");
            println!("linearizability checker:");
        }
        print!("{report}");
    }
    Ok(verdict.exit_code())
}

/// Read ahead to the first client op (its `f` picks the default model), then hand back
/// a stream that still yields every op.
fn peek_first_client_op(mut stream: OpStream) -> Result<(Option<Op>, OpStream), HistoryError> {
    let mut seen = Vec::new();
    let mut first = None;
    for item in stream.by_ref() {
        let (line, op) = item?;
        let client = op.is_client();
        seen.push(Ok((line, op)));
        if client {
            first = seen
                .last()
                .and_then(|r| r.as_ref().ok())
                .map(|(_, op)| op.clone());
            break;
        }
    }
    Ok((first, Box::new(seen.into_iter().chain(stream))))
}

/// The model for a history: `--model` if given, else the format's default.
fn model_spec(args: &CheckArgs, format: Format, first: Option<&Op>) -> Result<ModelSpec> {
    let inferred = match first.map(|op| op.f.as_str()) {
        Some("txn") => ModelKind::MultiRegister,
        Some("acquire" | "release") => ModelKind::Mutex,
        Some("get" | "put" | "append") => ModelKind::Kv,
        _ => ModelKind::CasRegister,
    };
    let kind = args.model.unwrap_or(match format {
        Format::JepsenLog => ModelKind::CasRegister,
        Format::KvLines => ModelKind::Kv,
        Format::Edn | Format::Jsonl => inferred,
    });
    let init = match &args.init {
        Some(text) => serde_json::from_str::<Value>(text).with_context(|| {
            format!("--init {text:?} is not JSON (a string needs quotes: '\"x\"')")
        })?,
        None => Value::Null,
    };
    if !init.is_null() && matches!(kind, ModelKind::Mutex | ModelKind::Kv) {
        anyhow::bail!("--init does not apply to model {kind} (it has a fixed initial state)");
    }
    let nil_read_unknown = args.nil_read_unknown.unwrap_or(format == Format::Edn);
    Ok(ModelSpec::new(kind)
        .with_init(init)
        .with_nil_read_unknown(nil_read_unknown))
}

/// Write `value` as pretty JSON to `path` (atomically, see [`crate::store::write_atomic`]).
pub fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    crate::store::write_atomic(path, &text)
}
