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
//! declare `clock: unsupported` and faultline refuses clock faults for them.

use super::ssh::{self, quote, SshConn};
use super::{Hosts, Registry};
use crate::spec::inventory::ClockMode;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where Debian's libfaketime lives; the multi-threaded variant, since targets are.
pub const LIBFAKETIME_CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
    "/usr/local/lib/faketime/libfaketimeMT.so.1",
];

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

/// Find libfaketime, or say how to get it.
pub fn find_libfaketime() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("FAULTLINE_LIBFAKETIME") {
        return Ok(PathBuf::from(p));
    }
    for c in LIBFAKETIME_CANDIDATES {
        if Path::new(c).is_file() {
            return Ok(PathBuf::from(c));
        }
    }
    bail!("clock faults need libfaketime, which is not installed (Debian: apt-get install libfaketime faketime)")
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
                    d = quote(h.root(node)?),
                    f = quote(&f.display().to_string())
                );
                h.conn(node)?
                    .check(&script, "creating the clock file")
                    .await?;
                h.libfaketime(node).await?
            }
        };
        let mut env = BTreeMap::new();
        env.insert("LD_PRELOAD".into(), lib);
        env.insert("FAKETIME_TIMESTAMP_FILE".into(), f.display().to_string());
        env.insert("FAKETIME_NO_CACHE".into(), "1".into());
        env.insert("DONT_FAKE_MONOTONIC".into(), "1".into());
        Ok(env)
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
                    t = quote(&tmp.display().to_string()),
                    f = quote(&f.display().to_string())
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
                ssh::clock_undo_script(dir)
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
        &ssh::step_clock_script(dir, &origin, offset_ms),
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
}
