//! A node's view of time, which clock faults change (never this machine's clock).
//!
//! libfaketime is preloaded into every node of a run that plans clock faults, reading its
//! offset from a per-node file that we rewrite at run time (`FAKETIME_TIMESTAMP_FILE` with
//! `FAKETIME_NO_CACHE=1`, so each time call sees the current offset).
//!
//! Decision: `DONT_FAKE_MONOTONIC=1`. Only the wall clock (`CLOCK_REALTIME`, Rust's
//! `SystemTime`) moves. Raft's election and heartbeat timers rightly run on the monotonic
//! clock; letting it jump — even backwards — would test the kernel's promise that it never
//! does, not the target. What real clock faults break is code that trusts the wall clock
//! across nodes (leases, TTLs, timestamps), and that is what this exercises. Programs that
//! bypass libc for time (Go: etcd) or are statically linked are not affected; such targets
//! declare `clock: unsupported` and faultline refuses clock faults for them. CPython 3.11's
//! `time.sleep` fails under this preload (libfaketime 0.9.10); the plan probes such targets
//! first (`spec::target::probe_clock`).

use super::ssh::{self, SshConn};
use super::{Hosts, Registry};
use crate::shell::quote;
use crate::spec::inventory::ClockMode;
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::spec::target::{find_libfaketime, LIBFAKETIME_CANDIDATES};

/// The per-node offset files of one run: on this machine, or on each SSH host (where the
/// offset file lives in the run's directory and is rewritten over SSH).
#[derive(Debug)]
pub struct Clocks {
    files: Files,
}

#[derive(Debug)]
enum Files {
    Local {
        dir: PathBuf,
        lib: PathBuf,
    },
    Remote {
        hosts: Arc<Hosts>,
        reg: crate::hosts::Registry,
    },
}

/// libfaketime's syntax for an offset: `+1.500` / `-60.000` seconds.
pub fn offset_text(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let a = offset_ms.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

impl Clocks {
    pub fn new(dir: &Path) -> Result<Clocks> {
        let lib = find_libfaketime()?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Clocks {
            files: Files::Local {
                dir: dir.to_path_buf(),
                lib,
            },
        })
    }

    /// Offsets on SSH hosts (each host's libfaketime, or for `clock: system` hosts that
    /// their clock is their own, was checked before the run started).
    pub fn remote(hosts: Arc<Hosts>, reg: crate::hosts::Registry) -> Clocks {
        Clocks {
            files: Files::Remote { hosts, reg },
        }
    }

    /// A `clock: system` SSH host: faults step its real clock.
    fn system(&self, node: &str) -> Option<&crate::hosts::ssh::SshConn> {
        match &self.files {
            Files::Remote { hosts, .. } => hosts
                .remote()
                .and_then(|h| h.conn(node).ok())
                .filter(|c| c.node.clock == ClockMode::System),
            Files::Local { .. } => None,
        }
    }

    fn file(&self, node: &str) -> Result<PathBuf> {
        match &self.files {
            Files::Local { dir, .. } => Ok(dir.join(format!("{node}.faketime"))),
            Files::Remote { hosts, .. } => {
                let h = hosts
                    .remote()
                    .ok_or_else(|| anyhow!("remote clocks without SSH hosts"))?;
                Ok(Path::new(h.root(node)?).join("clock.faketime"))
            }
        }
    }

    /// Environment that makes `node` read its wall clock through its offset file. Creates
    /// the file at +0 if it does not exist (a restarted node keeps its current offset).
    pub async fn env_for(&self, node: &str) -> Result<BTreeMap<String, String>> {
        if self.system(node).is_some() {
            return Ok(BTreeMap::new());
        }
        let f = self.file(node)?;
        let lib = match &self.files {
            Files::Local { lib, .. } => {
                if !f.exists() {
                    self.set(node, 0).await?;
                }
                lib.display().to_string()
            }
            Files::Remote { hosts, .. } => {
                let h = hosts
                    .remote()
                    .ok_or_else(|| anyhow!("remote clocks without SSH hosts"))?;
                let script = format!(
                    "mkdir -p {d} && {{ [ -f {f} ] || printf '+0.000\\n' > {f}; }}",
                    d = quote(h.root(node)?)?,
                    f = quote(&f.display().to_string())?
                );
                h.conn(node)?
                    .check(&script, "creating the clock file")
                    .await?;
                h.libfaketime(node).await?
            }
        };
        Ok(crate::spec::target::preload_env(
            &lib,
            &f.display().to_string(),
        ))
    }

    /// Set a node's offset; atomic, so the node never reads a half-written file.
    pub async fn set(&self, node: &str, offset_ms: i64) -> Result<()> {
        if let (Some(conn), Files::Remote { hosts, reg }) = (self.system(node), &self.files) {
            let dir = hosts
                .remote()
                .ok_or_else(|| anyhow!("remote clocks without SSH hosts"))?
                .root(node)?;
            return set_system(conn, reg, dir, node, offset_ms).await;
        }
        let f = self.file(node)?;
        let tmp = f.with_extension("tmp");
        let text = offset_text(offset_ms);
        match &self.files {
            Files::Local { .. } => {
                std::fs::write(&tmp, format!("{text}\n"))
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                std::fs::rename(&tmp, &f)
                    .with_context(|| format!("cannot write {}", f.display()))?;
            }
            Files::Remote { hosts, .. } => {
                let h = hosts
                    .remote()
                    .ok_or_else(|| anyhow!("remote clocks without SSH hosts"))?;
                let script = format!(
                    "printf '%s\\n' {text} > {t} && mv {t} {f}",
                    t = quote(&tmp.display().to_string())?,
                    f = quote(&f.display().to_string())?
                );
                h.conn(node)?
                    .check(&script, "setting the clock offset")
                    .await?;
            }
        }
        Ok(())
    }
}

/// Step a `clock: system` host's real clock to `offset_ms` from the right time. Before its
/// first step the host's time is recorded (registry and host), so any cleanup — also a
/// sweep after a SIGKILL — restores the clock from there, once; back at 0 the step is
/// undone the same way, record and all.
async fn set_system(
    conn: &SshConn,
    reg: &Registry,
    dir: &str,
    node: &str,
    offset_ms: i64,
) -> Result<()> {
    let host = reg
        .snapshot()
        .remote
        .into_iter()
        .find(|h| h.ssh.name == node)
        .ok_or_else(|| anyhow!("node {node}: not a recorded SSH host"))?;
    if host.clock_offset_ms == offset_ms {
        return Ok(());
    }
    if offset_ms == 0 {
        conn.check(
            &format!(
                "clock_failed=\n{}[ -z \"$clock_failed\" ]",
                ssh::clock_undo_script(dir)?
            ),
            "restoring the clock",
        )
        .await?;
        return reg.set_remote_clock(node, 0);
    }
    let origin = match host.clock_origin {
        Some(o) => o,
        None => {
            // Read while the clock is still the host's own; only reads, so a retry is safe.
            let text = conn
                .check(ssh::CLOCK_ORIGIN_SCRIPT, "reading the clock")
                .await?;
            let o = ssh::parse_clock_origin(&text).ok_or_else(|| {
                anyhow!("node {node}: cannot read its clock: the host printed {text:?}")
            })?;
            reg.set_remote_clock_origin(node, o.clone())?;
            o
        }
    };
    reg.set_remote_clock(node, offset_ms)?;
    conn.check(
        &ssh::step_clock_script(dir, &origin, offset_ms)?,
        "stepping the clock",
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_use_libfaketimes_seconds_syntax() {
        assert_eq!(offset_text(0), "+0.000");
        assert_eq!(offset_text(1500), "+1.500");
        assert_eq!(offset_text(-60_000), "-60.000");
        assert_eq!(offset_text(-5), "-0.005");
    }

    #[test]
    fn a_preloaded_program_sees_the_offset_and_the_machine_clock_does_not_move() {
        if find_libfaketime().is_err() {
            eprintln!("skipped: libfaketime is not installed");
            return;
        }
        let dir = std::env::temp_dir().join(format!("fl-clock-{}", std::process::id()));
        let clocks = Clocks::new(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let env = rt.block_on(clocks.env_for("n1")).unwrap();
        rt.block_on(clocks.set("n1", -3_600_000)).unwrap();
        let out = std::process::Command::new("date")
            .arg("+%s")
            .envs(&env)
            .output()
            .unwrap();
        let seen: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (real - seen - 3600).abs() <= 2,
            "node saw {seen}, machine {real}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_plan_time_probe_predicts_what_a_python_node_does_under_our_clock_env() {
        let python = "/usr/bin/python3";
        if find_libfaketime().is_err() || !Path::new(python).is_file() {
            eprintln!("skipped: needs libfaketime and {python}");
            return;
        }
        let probe: Vec<String> = ["{binary}", "-c", "import time; time.sleep(0.01)"]
            .iter()
            .map(|a| a.replace("{binary}", python))
            .collect();
        let broken = crate::spec::target::probe_clock(&probe).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clocks = Clocks::new(dir.path()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let env = rt.block_on(clocks.env_for("n1")).unwrap();
        rt.block_on(clocks.set("n1", -30_000)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sleepy/sleepy.py");
        let mut child = std::process::Command::new(python)
            .arg(&script)
            .arg(format!("127.0.0.1:{port}"))
            .envs(&env)
            .spawn()
            .unwrap();
        let mut answer = None;
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut c, &mut text).unwrap();
                let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
                if v["ticks"].as_u64().unwrap_or(0) > 3 || !v["error"].is_null() {
                    answer = Some(v);
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let v = answer.expect("the node answered");
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let skew = v["time"].as_f64().unwrap() - real;
        assert!(
            (skew + 30.0).abs() < 2.0,
            "node's wall clock off by {skew} s"
        );
        match broken {
            // The port still answers while the timer is dead: why the run must refuse.
            Some(why) => {
                assert!(why.contains("Invalid argument"), "{why}");
                let err = v["error"].as_str().unwrap_or("");
                assert!(err.contains("Invalid argument"), "probe: {why}; node: {v}");
            }
            None => assert!(
                v["error"].is_null(),
                "the probe passed, the node failed: {v}"
            ),
        }
    }
}
