//! `faultline hosts lab`: SSH hosts without VMs — one network namespace per node, each
//! running its own `sshd` bound to the node's address, with throwaway host and client keys.
//!
//! Commands run over SSH land inside the node's namespace, so partitions, pauses and
//! kills over SSH behave as they would on VMs (the nodes share this machine's filesystem
//! and clock, which is why every run keeps per-node directories and clock faults use
//! libfaketime). The CI tests of the SSH path and of campaigns over SSH use it; users can
//! try `--hosts ssh` with it before they have VMs. It runs until SIGINT/SIGTERM and then
//! removes everything it created (a SIGKILLed lab is swept by `faultline cleanup`).

use super::cleanup::{ProcId, Registry};
use super::local::{spawn_in, LocalHosts};
use super::SpawnSpec;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a lab made: where its inventory is.
#[derive(Debug)]
pub struct Lab {
    pub inventory: PathBuf,
    pub reg: Registry,
    _hosts: LocalHosts,
    _sshd: Vec<tokio::process::Child>,
}

fn keygen(path: &Path) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "faultline-lab", "-f"])
        .arg(path)
        .output()
        .context("cannot run ssh-keygen (Debian: apt-get install openssh-client)")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Where Debian keeps sshd.
const SSHD: &str = "/usr/sbin/sshd";

impl Lab {
    /// Create `nodes` namespaces on a free slice of `subnet`, start an sshd in each and
    /// write `dir/nodes.yaml`.
    pub async fn create(dir: &Path, nodes: u32, subnet: (std::net::Ipv4Addr, u8)) -> Result<Lab> {
        if !Path::new(SSHD).is_file() {
            bail!("the SSH lab needs sshd (Debian: apt-get install openssh-server)");
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        // sshd refuses to start without its privilege-separation directory; the package
        // creates it only when its service starts, which never happens in a container.
        std::fs::create_dir_all("/run/sshd").context("cannot create /run/sshd")?;
        let run_id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let reg = Registry::new(&run_id)?;
        let names: Vec<String> = (1..=nodes).map(|i| format!("n{i}")).collect();
        let hosts = LocalHosts::create(&reg, subnet, &names)?;

        let client_key = dir.join("client_key");
        let host_key = dir.join("host_key");
        keygen(&client_key)?;
        keygen(&host_key)?;
        let authorized = dir.join("authorized_keys");
        let client_pub = std::fs::read(client_key.with_extension("pub"))
            .context("cannot read the client key")?;
        crate::store::write_atomic(&authorized, &client_pub)?;
        let host_pub = std::fs::read_to_string(host_key.with_extension("pub"))?;
        let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        let mut known = String::new();
        let mut sshd = Vec::new();
        let mut inventory = format!(
            "# Written by `faultline hosts lab`: sshd in network namespaces, throwaway keys.\ndefaults:\n  user: root\n  key: {}\n  known_hosts: {}\n  dir: {}\nnodes:\n",
            client_key.display(),
            dir.join("known_hosts").display(),
            dir.join("remote").display()
        );
        for n in &hosts.nodes {
            known.push_str(&format!("{} {}\n", n.ip, host_pub.join(" ")));
            inventory.push_str(&format!("  - name: {}\n    address: {}\n", n.node, n.ip));
            let conf = dir.join(format!("sshd-{}.conf", n.node));
            crate::store::write_atomic(
                &conf,
                format!(
                    "ListenAddress {ip}\nPort 22\nHostKey {hk}\nPidFile none\nAuthorizedKeysFile {ak}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPrintMotd no\nMaxStartups 100:30:200\nMaxSessions 100\n",
                    ip = n.ip,
                    hk = host_key.display(),
                    ak = authorized.display()
                )
                .as_bytes(),
            )?;
            let spec = SpawnSpec {
                argv: vec![
                    SSHD.into(),
                    "-D".into(),
                    "-e".into(),
                    "-f".into(),
                    conf.display().to_string(),
                ],
                env: BTreeMap::new(),
                cwd: dir.clone(),
                stdout: dir.join(format!("sshd-{}.log", n.node)),
                stderr: dir.join(format!("sshd-{}.err", n.node)),
                die_with_controller: true,
                cgroup: None,
            };
            let child = spawn_in(n.netns.as_deref(), &spec)?;
            if let Some(id) = child.id().and_then(|p| ProcId::of(p as i32)) {
                reg.add_group(id)?;
            }
            sshd.push(child);
        }
        crate::store::write_atomic(&dir.join("known_hosts"), known.as_bytes())?;
        let inv = dir.join("nodes.yaml");
        crate::store::write_atomic(&inv, inventory.as_bytes())?;
        for n in &hosts.nodes {
            wait_listening(n.ip, &dir.join(format!("sshd-{}.err", n.node))).await?;
        }
        Ok(Lab {
            inventory: inv,
            reg,
            _hosts: hosts,
            _sshd: sshd,
        })
    }
}

async fn wait_listening(ip: std::net::Ipv4Addr, log: &Path) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect((ip, 22)),
        )
        .await;
        if matches!(c, Ok(Ok(_))) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "sshd on {ip} did not listen within 10s: {}",
                std::fs::read_to_string(log).unwrap_or_default().trim()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `faultline hosts lab`: run a lab until SIGINT/SIGTERM.
pub async fn serve(dir: &Path, nodes: u32, subnet: (std::net::Ipv4Addr, u8)) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let lab = Lab::create(dir, nodes, subnet).await?;
    println!("{}", lab.inventory.display());
    eprintln!(
        "lab ready: {nodes} SSH hosts; use `faultline run --inventory {}`; Ctrl-C removes them",
        lab.inventory.display()
    );
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    let problems = lab.reg.teardown();
    for p in &problems {
        eprintln!("cleanup: {p}");
    }
    if !problems.is_empty() {
        bail!("the lab could not remove everything");
    }
    eprintln!("lab removed");
    Ok(())
}
