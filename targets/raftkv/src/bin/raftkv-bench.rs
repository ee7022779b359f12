//! `raftkv-bench`: acknowledged writes per second and write latency of a real raftkv
//! cluster on loopback, with fsync on (it always is).
//!
//! For each cluster size × client count it starts fresh `raftkv` processes (the binary
//! next to this one unless `--raftkv` says otherwise) in a temporary directory, waits for
//! a leader, runs that many closed-loop clients — each with its own connection, one write
//! outstanding at a time — against the leader for `--duration-s`, prints one line of
//! figures (`not_ok` counts answers other than ok: not-leader, unknown, overloaded; a
//! client follows a not-leader hint to the new leader), and kills the cluster. Nothing
//! outlives it: the processes are killed by a drop guard, also on error or panic.
//!
//! `--route home` gives each client a home node (client i → node i mod n, as faultline
//! binds its workers) and sends every write there first, following a `not-leader` hint
//! for that one write: the access pattern of a faultline run, so the two can be compared
//! with only the harness differing.
//!
//! ```text
//! cargo build --release -p raftkv
//! target/release/raftkv-bench --nodes 3,5 --clients 1,50 --duration-s 10
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Benchmark a local raftkv cluster: acknowledged writes/s and latency p50/p99.
#[derive(Debug, Parser)]
struct Args {
    /// Cluster sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "3,5")]
    nodes: Vec<usize>,
    /// Concurrent clients to measure with.
    #[arg(long, value_delimiter = ',', default_value = "1,50")]
    clients: Vec<usize>,
    /// Measured duration of each configuration.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Distinct keys written (spread over clients).
    #[arg(long, default_value_t = 100)]
    keys: usize,
    /// The raftkv binary (default: next to this program).
    #[arg(long)]
    raftkv: Option<PathBuf>,
    /// Where the nodes' data dirs go (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the nodes' data dirs and logs (printed) instead of deleting them.
    #[arg(long)]
    keep: bool,
    /// Extra flags for every node (e.g. --extra=--max-batch=512).
    #[arg(long, allow_hyphen_values = true)]
    extra: Vec<String>,
    /// Where a client sends its writes: `leader` (stay with the leader) or `home` (its
    /// own node first, every write, following the hint from there).
    #[arg(long, value_enum, default_value_t = Route::Leader)]
    route: Route,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Route {
    Leader,
    Home,
}

/// The processes of one cluster; dropping it kills and reaps them and removes the dirs.
struct Cluster {
    children: Vec<Child>,
    client_ports: Vec<u16>,
    root: PathBuf,
    keep: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.keep {
            eprintln!("kept {}", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// `n` distinct free ports (the listeners are held until all are chosen, so the kernel
/// cannot hand out one twice).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

fn start(bin: &PathBuf, root: PathBuf, n: usize, extra: &[String], keep: bool) -> Result<Cluster> {
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let ports = free_ports(2 * n)?;
    let (peer_ports, client_ports) = (ports[..n].to_vec(), ports[n..].to_vec());
    let mut cluster = Cluster {
        children: Vec::new(),
        client_ports: client_ports.clone(),
        root: root.clone(),
        keep,
    };
    for i in 0..n {
        let peers: Vec<String> = (0..n)
            .filter(|j| *j != i)
            .map(|j| format!("n{}=127.0.0.1:{}", j + 1, peer_ports[j]))
            .collect();
        let log = std::fs::File::create(root.join(format!("n{}.log", i + 1)))?;
        let child = Command::new(bin)
            .args(["--id", &format!("n{}", i + 1)])
            .args(["--peer-listen", &format!("127.0.0.1:{}", peer_ports[i])])
            .args(["--client-listen", &format!("127.0.0.1:{}", client_ports[i])])
            .args(["--peers", &peers.join(",")])
            .arg("--data-dir")
            .arg(root.join(format!("n{}", i + 1)))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        cluster.children.push(child);
    }
    Ok(cluster)
}

/// A client connection: one request at a time.
struct Conn {
    wr: TcpStream,
    rd: BufReader<TcpStream>,
    line: String,
}

impl Conn {
    fn open(port: u16) -> Result<Conn> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn {
            rd: BufReader::new(s.try_clone()?),
            wr: s,
            line: String::new(),
        })
    }

    fn call(&mut self, req: &Value) -> Result<Value> {
        // One write per request: Value's Display writes piecewise, and with TCP_NODELAY
        // each piece would be its own packet.
        let mut line = req.to_string();
        line.push('\n');
        self.wr.write_all(line.as_bytes())?;
        self.line.clear();
        if self.rd.read_line(&mut self.line)? == 0 {
            bail!("connection closed");
        }
        Ok(serde_json::from_str(&self.line)?)
    }
}

fn wait_leader(c: &Cluster) -> Result<u16> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        for &port in &c.client_ports {
            if let Ok(mut conn) = Conn::open(port) {
                if let Ok(s) = conn.call(&json!({"id": 0, "op": "status"})) {
                    if s["leader"] == true {
                        return Ok(port);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("no leader within 20 s")
}

struct Figures {
    ok: usize,
    other: usize,
    latencies_us: Vec<u64>,
}

/// What every client thread of one measurement is given.
#[derive(Clone)]
struct Load {
    ports: Vec<u16>,
    leader: u16,
    clients: usize,
    keys: usize,
    route: Route,
}

/// Port of the node a `not-leader` answer names (node n<k> listens on ports[k-1]).
fn hinted_port(r: &Value, ports: &[u16]) -> Option<u16> {
    r["leader"]
        .as_str()
        .and_then(|l| l.strip_prefix('n'))
        .and_then(|k| k.parse::<usize>().ok())
        .and_then(|k| ports.get(k.wrapping_sub(1)).copied())
}

/// One write the `home` way: the home node, then the node it names as leader.
fn call_via_home(
    conns: &mut std::collections::BTreeMap<u16, Conn>,
    home: u16,
    ports: &[u16],
    req: &Value,
) -> Result<Value> {
    let mut port = home;
    for _ in 0..2 {
        let conn = match conns.entry(port) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(Conn::open(port)?),
        };
        let r = conn.call(req)?;
        match hinted_port(&r, ports) {
            Some(p) if r["type"] != "ok" && p != port => port = p,
            _ => return Ok(r),
        }
    }
    bail!("the hinted leader redirected again")
}

fn run_clients(load: &Load, duration: Duration) -> Result<Figures> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for c in 0..load.clients {
        let stop = stop.clone();
        let load = load.clone();
        handles.push(std::thread::spawn(move || -> Result<Figures> {
            let (ports, clients, keys) = (&load.ports, load.clients, load.keys);
            let mut conn = Conn::open(load.leader)?;
            let home = ports[c % ports.len()];
            let mut conns = std::collections::BTreeMap::new();
            let mut f = Figures {
                ok: 0,
                other: 0,
                latencies_us: Vec::new(),
            };
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let key = format!("k{}", (c + i as usize * clients) % keys.max(1));
                let req = json!({"id": i, "op": "write", "key": key, "value": i});
                let t = Instant::now();
                let r = match load.route {
                    Route::Leader => conn.call(&req)?,
                    Route::Home => call_via_home(&mut conns, home, ports, &req)?,
                };
                if r["type"] == "ok" {
                    f.ok += 1;
                    f.latencies_us.push(t.elapsed().as_micros() as u64);
                } else {
                    f.other += 1;
                    // Leadership moved: follow the hint, or wait for an election to finish.
                    match hinted_port(&r, ports) {
                        Some(p) => conn = Conn::open(p)?,
                        None => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
            Ok(f)
        }));
    }
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut all = Figures {
        ok: 0,
        other: 0,
        latencies_us: Vec::new(),
    };
    for h in handles {
        let f = h
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        all.ok += f.ok;
        all.other += f.other;
        all.latencies_us.extend(f.latencies_us);
    }
    all.latencies_us.sort_unstable();
    Ok(all)
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[i] as f64 / 1000.0
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bin = match &args.raftkv {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("locating this program's directory")?
            .join("raftkv"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p raftkv) or pass --raftkv",
            bin.display()
        );
    }
    let base = args
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("raftkv-bench-{}", std::process::id()));
    let duration = Duration::from_secs(args.duration_s);
    for &n in &args.nodes {
        for &clients in &args.clients {
            let root = base.join(format!("{n}n-{clients}c"));
            let cluster = start(&bin, root, n, &args.extra, args.keep)?;
            let load = Load {
                ports: cluster.client_ports.clone(),
                leader: wait_leader(&cluster)?,
                clients,
                keys: args.keys,
                route: args.route,
            };
            // Warm-up: connections, the leader's first fsyncs.
            run_clients(&load, Duration::from_millis(500))?;
            let f = run_clients(&load, duration)?;
            let secs = duration.as_secs_f64();
            println!(
                "nodes={n} clients={clients} route={} duration_s={secs:.0} acked_writes={} writes_per_s={:.0} p50_ms={:.2} p99_ms={:.2} not_ok={}",
                match args.route {
                    Route::Leader => "leader",
                    Route::Home => "home",
                },
                f.ok,
                f.ok as f64 / secs,
                percentile_ms(&f.latencies_us, 0.50),
                percentile_ms(&f.latencies_us, 0.99),
                f.other
            );
            drop(cluster);
        }
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(())
}
