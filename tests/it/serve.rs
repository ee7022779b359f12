//! `faultline serve` over real sockets: paths out of the store refused, content types,
//! HEAD, the `.tar.gz` download unpacked back to the run's files, and large files and
//! archives streamed through a `faultline serve` process whose peak memory stays far below
//! their size. (Pages, logs and the node-file policy: tests/it/report.rs.)

use super::report::store;
use faultline::report::serve;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One raw request, the path exactly as written (an HTTP client would normalise `..`).
fn raw(addr: SocketAddr, method: &str, path: &str) -> (u16, String, Vec<u8>) {
    super::report::raw(
        addr,
        &format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
}

/// A header's value from a raw response head (names compared without case).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn serve_refuses_dot_dot_encoded_absolute_and_symlinked_paths_out_of_the_store() {
    let base = store("traversal");
    let root = base.join("reports");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("t/r")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("t/r/index.html"), "inside").unwrap();
    std::fs::write(outside.join("secret.txt"), "SECRET").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("t/r/dirlink")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("t/r/filelink")).unwrap();
    let server = serve::spawn(&root, "127.0.0.1:0").unwrap();
    let abs = outside.join("secret.txt").display().to_string();
    let abs_encoded = abs.replace('/', "%2f");
    assert_eq!(raw(server.addr, "GET", "/t/r/index.html").0, 200);
    for path in [
        "/../outside/secret.txt",
        "/t/r/../../../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/t/%2E%2E/%2e%2E/../outside/secret.txt",
        "/t/r/..%2f..%2f..%2foutside%2fsecret.txt",
        // Absolute paths, as the path, doubled and encoded: all name files inside the root.
        &abs,
        &format!("/{abs}"),
        &format!("/{abs_encoded}"),
        "/etc/passwd",
        // Symlinks out of the store: to a directory and to a file.
        "/t/r/dirlink/secret.txt",
        "/t/r/dirlink/",
        "/t/r/filelink",
        "/download/t/r%2f..%2f...tar.gz",
        "/download/%2e%2e/outside.tar.gz",
    ] {
        for method in ["GET", "HEAD"] {
            let (status, _, body) = raw(server.addr, method, path);
            assert!(matches!(status, 400 | 404), "{method} {path}: {status}");
            assert!(
                !String::from_utf8_lossy(&body).contains("SECRET"),
                "{path} leaked"
            );
        }
    }
}

#[test]
fn serve_sends_each_kind_of_file_with_its_content_type_and_answers_head() {
    let root = store("types");
    let dir = root.join("t/run");
    std::fs::create_dir_all(&dir).unwrap();
    let files: [(&str, &[u8], &str); 8] = [
        ("index.html", b"<p>run</p>", "text/html; charset=utf-8"),
        ("plot.svg", b"<svg/>", "image/svg+xml"),
        ("plot.png", b"\x89PNG\r\n\x1a\n", "image/png"),
        ("results.json", b"{}", "application/json"),
        ("history.jsonl", b"{}\n{}\n", "text/plain; charset=utf-8"),
        ("style.css", b"p{}", "text/css; charset=utf-8"),
        ("app.js", b"1;", "text/javascript; charset=utf-8"),
        ("plan.yaml", b"seed: 1\n", "text/plain; charset=utf-8"),
    ];
    for (name, bytes, _) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let server = serve::spawn(&root, "127.0.0.1:0").unwrap();
    for (name, bytes, want) in files {
        let path = format!("/t/run/{name}");
        let (status, head, body) = raw(server.addr, "GET", &path);
        assert_eq!(status, 200, "{path}: {head}");
        assert_eq!(header(&head, "content-type"), Some(want), "{path}");
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
        assert_eq!(body, bytes, "{path}");
        // HEAD: the same head, the length of the body it leaves out, no body.
        let (status, head, body) = raw(server.addr, "HEAD", &path);
        assert_eq!(status, 200, "HEAD {path}: {head}");
        assert_eq!(header(&head, "content-type"), Some(want), "HEAD {path}");
        let length = bytes.len().to_string();
        assert_eq!(header(&head, "content-length"), Some(length.as_str()));
        assert!(body.is_empty(), "HEAD {path} sent a body");
    }
    let (status, head, body) = raw(server.addr, "HEAD", "/t/run/");
    assert_eq!((status, body.len()), (200, 0), "{head}");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/html; charset=utf-8")
    );
    // Keep-alive: two requests on one connection, both answered.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /t/run/app.js HTTP/1.1\r\nHost: x\r\n\r\nGET /t/run/app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut both = String::new();
    s.read_to_string(&mut both).unwrap();
    assert_eq!(both.matches("HTTP/1.1 200 OK").count(), 2, "{both}");
}

/// Every file under `dir`, by relative path, with its bytes (symlinks as their target).
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.push((rel, target.into_os_string().into_encoded_bytes()));
            } else if meta.is_dir() {
                todo.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn serve_download_unpacks_to_the_same_files_and_keeps_links_as_links() {
    let base = store("download");
    let root = base.join("reports");
    let run = root.join("register/20261101T000000Z");
    std::fs::create_dir_all(run.join("nodes/n1/data")).unwrap();
    std::fs::write(base.join("secret.txt"), "SECRET").unwrap();
    std::fs::write(run.join("plan.yaml"), "seed: 1\n").unwrap();
    std::fs::write(run.join("index.html"), "<p>run</p>").unwrap();
    std::fs::write(run.join("nodes/n1/stdout.log"), "started\n".repeat(10_000)).unwrap();
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(run.join("nodes/n1/data/blob.bin"), &binary).unwrap();
    std::os::unix::fs::symlink(base.join("secret.txt"), run.join("nodes/n1/escape")).unwrap();
    std::os::unix::fs::symlink("20261101T000000Z", root.join("register/latest")).unwrap();
    let server = serve::spawn(&root, "127.0.0.1:0").unwrap();

    let url = format!("http://{}/download/register/latest.tar.gz", server.addr);
    let response = ureq::get(&url).call().unwrap();
    assert_eq!(response.header("Content-Type"), Some("application/gzip"));
    assert_eq!(response.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(
        response.header("Content-Disposition"),
        Some("attachment; filename=\"register-20261101T000000Z.tar.gz\"")
    );
    let unpacked = base.join("unpacked");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(response.into_reader()));
    archive.unpack(&unpacked).unwrap();
    let top = unpacked.join("register-20261101T000000Z");
    assert_eq!(tree(&top), tree(&run));
    // The link came back as a link, not as the file outside the run it points to.
    assert!(std::fs::symlink_metadata(top.join("nodes/n1/escape"))
        .unwrap()
        .file_type()
        .is_symlink());

    let (status, head, body) = raw(server.addr, "HEAD", "/download/register/latest.tar.gz");
    assert_eq!((status, body.len()), (200, 0), "{head}");
    assert_eq!(header(&head, "content-type"), Some("application/gzip"));
    assert_eq!(
        header(&head, "content-length"),
        None,
        "not an empty archive"
    );
}

/// Peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// The `faultline serve` process, killed (and reaped) when dropped.
struct ServeProcess(std::process::Child);

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_streams_a_large_file_and_a_large_run_in_bounded_memory() {
    const BIG: u64 = 256 << 20;
    const BOUND: u64 = 96 << 20;
    let root = store("large");
    let run = root.join("t/run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("plan.yaml"), "seed: 1\n").unwrap();
    // Random bytes: gzip cannot shrink them, so the archive is as large as the file.
    let mut random = std::fs::File::open("/dev/urandom").unwrap().take(BIG);
    let mut big = std::fs::File::create(run.join("history.jsonl")).unwrap();
    assert_eq!(std::io::copy(&mut random, &mut big).unwrap(), BIG);
    drop(big);

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["serve", root.to_str().unwrap(), "--bind", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let server = ServeProcess(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let before = peak_rss(server.0.id());

    let response = ureq::get(&format!("http://{addr}/t/run/history.jsonl"))
        .call()
        .unwrap();
    assert_eq!(response.header("Content-Length"), Some(&*BIG.to_string()));
    let sent = std::io::copy(&mut response.into_reader(), &mut std::io::sink()).unwrap();
    assert_eq!(sent, BIG);

    let response = ureq::get(&format!("http://{addr}/download/t/run.tar.gz"))
        .call()
        .unwrap();
    assert_eq!(response.header("Transfer-Encoding"), Some("chunked"));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(response.into_reader()));
    let mut archived = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("history.jsonl") {
            archived = std::io::copy(&mut entry, &mut std::io::sink()).unwrap();
        }
    }
    assert_eq!(archived, BIG);

    let peak = peak_rss(server.0.id());
    assert!(
        peak < BOUND,
        "serving {} MiB twice peaked at {} MiB (started at {} MiB)",
        BIG >> 20,
        peak >> 20,
        before >> 20
    );
}
