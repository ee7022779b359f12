//! `faultline serve`: browse a reports tree over HTTP and download a run as `.tar.gz`.
//!
//! An axum router on hyper's HTTP/1.1 connection (keep-alive, HEAD, chunked bodies and
//! the request grammar are theirs), GET and HEAD only. Every request path goes through
//! one function, [`resolve`], which maps a URL path to a file *inside* the root: the path
//! is percent-decoded first, any `..` segment, backslash or NUL is refused, and the
//! canonical result (symlinks resolved) must still lie under the canonical root — so
//! neither `/../`, `%2e%2e`, `..%2f` nor a symlink pointing outside can reach another file.
//! Only that checked canonical path is handed to tower-http's `ServeFile` (the single-file
//! form of `ServeDir`), which streams it with Content-Length, Range and conditional GET:
//! `ServeDir` over the whole root would refuse `..` too, but follows symlinks out of it.
//!
//! Files under a run's `nodes/` directory were written by the target, not by us: whatever
//! their name, they are sent as `text/plain` under a policy that lets nothing load or run
//! ([`served_as`]), so a node's `evil.html` can never act as a page of ours.
//!
//! `/download/<test>/<run>.tar.gz` streams the run directory through `tar` and `flate2`
//! on a blocking thread into a bounded channel that is the response body (chunked), so a
//! large run is never held in memory, a slow client slows the archiver, and a failed
//! archive ends the response without its last chunk, which a client can detect.
//!
//! Limits: request head ≤ 16 KiB and read within 10 s (which also ends idle keep-alive
//! connections), each write within 30 s, at most 64 connections at once. Default bind is
//! loopback only; any other address is allowed, with a warning.

use super::page::href;
use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use percent_encoding::percent_decode_str;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;
use tower_http::services::ServeFile;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// hyper's read buffer, hence the largest request head (it may not go below 8 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;
const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: usize = 64;
/// Most entries a directory listing shows.
const MAX_LISTING: usize = 10_000;
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks buffered between the tar thread and the socket (bounded: a slow client slows
/// the archiver instead of growing memory).
const DOWNLOAD_QUEUE_CHUNKS: usize = 8;

/// The policy of our own pages: scripts and styles only from the page itself (the
/// timeline and report pages are self-contained, with inline script and style).
const PAGE_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'none'; frame-ancestors 'none'";

/// The policy of files a target wrote (and of every response that does not set its
/// own): nothing may load or run, even if a browser were to render one despite its
/// `text/plain` type.
const STRICT_CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

/// The directory of a run that holds what its nodes wrote (logs, stdout, stderr).
const NODES_DIR: &str = "nodes";

/// How a file is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    pub content_type: &'static str,
    pub csp: &'static str,
}

/// How to serve `path` (canonical, inside the canonical `root`).
pub fn served_as(path: &Path, root: &Path) -> Served {
    if target_written(path, root) {
        return Served {
            content_type: "text/plain; charset=utf-8",
            csp: STRICT_CSP,
        };
    }
    Served {
        content_type: content_type(path),
        csp: PAGE_CSP,
    }
}

/// Whether `path` lies in a run's `nodes/` directory, i.e. was written by the target and
/// must never be served as something a browser runs (an `evil.html` in a node's log dir
/// would otherwise be a page with our origin and an inline-script policy).
///
/// Below the root any `nodes` component counts, at any depth, since the root may be a
/// reports tree (`<test>/<run>/nodes`), a campaign (`runs/<cell>/<run>/nodes`) or a run
/// (`nodes`). At or above it, a root named `nodes`, or inside a `nodes` directory of a
/// run (its parent holds `plan.yaml` or `history.jsonl`), is a node directory served on
/// its own. A test named `nodes` loses its pages to plain text: the safe direction.
fn target_written(path: &Path, root: &Path) -> bool {
    let rel = path.strip_prefix(root).unwrap_or(path);
    if rel.components().any(|c| c.as_os_str() == NODES_DIR) {
        return true;
    }
    root.file_name().is_some_and(|n| n == NODES_DIR)
        || root.ancestors().any(|a| {
            a.file_name().is_some_and(|n| n == NODES_DIR)
                && a.parent().is_some_and(|run| {
                    run.join("plan.yaml").is_file() || run.join("history.jsonl").is_file()
                })
        })
}

/// Why a request path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed or forbidden path (400).
    BadPath,
    /// Nothing there, or outside the root (404: do not tell which).
    NotFound,
}

/// Map a URL path (`/test/run/index.html`, still percent-encoded, query removed) to a
/// canonical path inside `root` (itself canonical).
pub fn resolve(root: &Path, url_path: &str) -> Result<PathBuf, Refusal> {
    if !url_path.starts_with('/') {
        return Err(Refusal::BadPath);
    }
    let decoded = percent_decode_str(url_path)
        .decode_utf8()
        .map_err(|_| Refusal::BadPath)?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return Err(Refusal::BadPath);
    }
    let mut path = root.to_path_buf();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(Refusal::BadPath),
            s => path.push(s),
        }
    }
    let canon = path.canonicalize().map_err(|_| Refusal::NotFound)?;
    if canon.starts_with(root) {
        Ok(canon)
    } else {
        Err(Refusal::NotFound)
    }
}

/// The content type of one of our own files, by its extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "gz" => "application/gzip",
        "jsonl" | "log" | "txt" | "yaml" | "yml" | "edn" | "md" | "out" | "err" | "" => {
            "text/plain; charset=utf-8"
        }
        _ => "application/octet-stream",
    }
}

/// A running server (for tests and embedding): stops when dropped.
pub struct Handle {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start serving `root` on `bind` in a background thread with its own runtime.
pub fn spawn(root: &Path, bind: &str) -> Result<Handle> {
    let root = canonical_root(root)?;
    let std_listener =
        std::net::TcpListener::bind(bind).with_context(|| format!("cannot listen on {bind}"))?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let rt = runtime()?;
    let thread = std::thread::Builder::new()
        .name("faultline-serve".into())
        .spawn(move || {
            rt.block_on(async move {
                if let Ok(listener) = TcpListener::from_std(std_listener) {
                    serve(listener, root, stopped).await;
                }
            })
        })
        .context("cannot start the server thread")?;
    Ok(Handle {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server runtime")
}

fn canonical_root(root: &Path) -> Result<PathBuf> {
    let root = root
        .canonicalize()
        .with_context(|| format!("cannot serve {}: no such directory", root.display()))?;
    if !root.is_dir() {
        anyhow::bail!("cannot serve {}: not a directory", root.display());
    }
    Ok(root)
}

/// `faultline serve`: serve until Ctrl-C.
pub fn run_until_interrupted(root: &Path, bind: &str) -> Result<()> {
    let root = canonical_root(root)?;
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            eprintln!("warning: serving on {addr}, which is reachable from other machines");
        }
        eprintln!(
            "serving {} at http://{addr}/ (Ctrl-C stops)",
            root.display()
        );
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            let _ = stop.send(true);
        });
        serve(listener, root, stopped).await;
        Ok(())
    })
}

/// The routes: a run's archive, and every other path as a file or directory of the root.
fn router(root: PathBuf) -> Router {
    Router::new()
        .route("/download/{*rest}", get(download))
        .fallback(file)
        .layer(axum::middleware::map_response(common_headers))
        .with_state(Arc::new(root))
}

/// Headers on every response: no sniffing a log into HTML, no caching of pages that are
/// rewritten after each run, and the strict policy unless a handler chose the page one.
async fn common_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(STRICT_CSP));
    response
}

async fn serve(listener: TcpListener, root: PathBuf, mut stopped: watch::Receiver<bool>) {
    let app = router(root);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stopped.changed() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        // A response is often a head and a body in two writes; with Nagle's algorithm the
        // second waits for the client's delayed ACK (40 ms) on a keep-alive connection.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut stream = TimeoutStream::new(stream);
            stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                // `Content-Type`, not `content-type`: the spelling the server always sent,
                // for people and scripts reading raw responses.
                .title_case_headers(true)
                .serve_connection(TokioIo::new(Box::pin(stream)), service)
                .await;
            drop(permit);
        });
    }
}

/// A short plain-text answer (errors, redirects).
fn simple(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Any path but `/download/…`: a file, a directory's index.html, or a listing.
async fn file(State(root): State<Arc<PathBuf>>, request: Request) -> Response {
    // A fallback sees every method; a route's `get` would answer 405 by itself.
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = simple(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let path = request.uri().path().to_string();
    let found = match resolve(&root, &path) {
        Ok(f) => f,
        Err(Refusal::BadPath) => return simple(StatusCode::BAD_REQUEST, "bad path\n"),
        Err(Refusal::NotFound) => return simple(StatusCode::NOT_FOUND, "not found\n"),
    };
    if !found.is_dir() {
        return send_file(&root, &found, request).await;
    }
    if !path.ends_with('/') {
        // Relative links in a directory's page need the trailing slash.
        let mut response = simple(StatusCode::MOVED_PERMANENTLY, "moved\n");
        if let Ok(location) = HeaderValue::from_str(&format!("{path}/")) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        return response;
    }
    let index = found.join("index.html");
    if index.is_file() {
        return send_file(&root, &index, request).await;
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
        ],
        listing(&root, &found),
    )
        .into_response()
}

/// Stream `path` (canonical, inside `root`) with our content type and policy.
async fn send_file(root: &Path, path: &Path, request: Request) -> Response {
    let served = served_as(path, root);
    let Ok(response) = ServeFile::new(path).oneshot(request).await;
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        // Gone between resolving and opening.
        return simple(StatusCode::NOT_FOUND, "not found\n");
    }
    let mut response = response.map(Body::new);
    let h = response.headers_mut();
    if status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(served.content_type),
        );
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(served.csp),
    );
    response
}

/// A directory listing (for directories without index.html, e.g. `nodes/n1/`).
fn listing(root: &Path, dir: &Path) -> String {
    let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
    let title = format!("/{}", rel.display());
    let mut entries: Vec<(bool, String)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    Some((e.path().is_dir(), name))
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let more = entries.len().saturating_sub(MAX_LISTING);
    let body = maud::html! {
        main {
            h2 { (title) }
            ul {
                li { a href="../" { "../" } }
                @for (is_dir, name) in entries.iter().take(MAX_LISTING) {
                    @let slash = if *is_dir { "/" } else { "" };
                    li { a href={ (href(&[name])) (slash) } { (name) (slash) } }
                }
                @if more > 0 {
                    li { "… " (more) " more" }
                }
            }
        }
    };
    let mut out = super::layout::document(&title, "", None, body).into_string();
    out.push('\n');
    out
}

/// A single path segment a download may name: no separators, not `.`/`..`.
fn plain_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0'])
}

/// What the archiver sends the response body: chunks, or the error that cut it short.
type Chunk = std::io::Result<Bytes>;

/// Sends a blocking writer's output to the response body in bounded chunks.
struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.tx
            .blocking_send(Ok(chunk.into()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Write the run directory `dir` as a gzipped tar under the top-level name `top`.
fn archive(dir: &Path, top: &str, out: ChannelWriter) -> std::io::Result<()> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    // Symlinks stay links: following them could pull in files from outside the run.
    tar.follow_symlinks(false);
    tar.append_dir_all(top, dir)?;
    let gz = tar.into_inner()?;
    let mut out = gz.finish()?;
    out.flush()
}

/// `/download/<test>/<run>.tar.gz`: the run directory, archived while it is sent.
async fn download(State(root): State<Arc<PathBuf>>, method: Method, request: Request) -> Response {
    let rest = request
        .uri()
        .path()
        .strip_prefix("/download/")
        .unwrap_or("");
    let decoded = percent_decode_str(rest)
        .decode_utf8()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let parsed = decoded
        .strip_suffix(".tar.gz")
        .and_then(|s| s.split_once('/'))
        .filter(|(t, r)| plain_segment(t) && plain_segment(r));
    let Some((test, run)) = parsed else {
        return simple(
            StatusCode::BAD_REQUEST,
            "expected /download/<test>/<run>.tar.gz\n",
        );
    };
    let dir = match resolve(&root, &format!("/{}", href(&[test, run]))) {
        Ok(d)
            if d.is_dir() && (d.join("plan.yaml").exists() || d.join("results.json").exists()) =>
        {
            d
        }
        _ => return simple(StatusCode::NOT_FOUND, "no such run\n"),
    };
    // The archive's folder is named after the real run (`latest` resolved).
    let leaf = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(run)
        .to_string();
    let top: String = format!("{test}-{leaf}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let headers = [
        (header::CONTENT_TYPE, "application/gzip".to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{top}.tar.gz\""),
        ),
    ];
    if method == Method::HEAD {
        // A body of unknown length, as GET's: hyper then announces it chunked, not as
        // `Content-Length: 0`, and no archive is built for nothing.
        let none = futures::stream::empty::<Chunk>();
        return (headers, Body::from_stream(none)).into_response();
    }
    let (tx, rx) = mpsc::channel::<Chunk>(DOWNLOAD_QUEUE_CHUNKS);
    let writer = ChannelWriter {
        tx: tx.clone(),
        buf: Vec::with_capacity(CHUNK_BYTES),
    };
    tokio::task::spawn_blocking(move || {
        if let Err(e) = archive(&dir, &top, writer) {
            // Only a complete archive gets the final chunk: an error in the body makes
            // hyper cut the connection instead, so a client can tell a truncated one.
            let _ = tx.blocking_send(Err(e));
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    (headers, Body::from_stream(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (PathBuf, PathBuf) {
        let base = std::env::temp_dir().join(format!("fl-serve-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("reports");
        std::fs::create_dir_all(root.join("t/r")).unwrap();
        std::fs::write(root.join("t/r/index.html"), "x").unwrap();
        std::fs::write(base.join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("t/r/escape")).unwrap();
        (base, root.canonicalize().unwrap())
    }

    #[test]
    fn resolve_refuses_every_way_out_of_the_root() {
        let (base, root) = root();
        assert_eq!(
            resolve(&root, "/t/r/index.html").unwrap(),
            root.join("t/r/index.html")
        );
        assert_eq!(
            resolve(&root, "/t/./r/%69ndex.html").unwrap(),
            root.join("t/r/index.html")
        );
        for bad in [
            "/../secret.txt",
            "/t/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/t/..%2f..%2fsecret.txt",
            "/t\\..\\x",
            "/a%00b",
            "relative",
        ] {
            assert_eq!(resolve(&root, bad), Err(Refusal::BadPath), "{bad}");
        }
        assert_eq!(
            resolve(&root, "/t/r/escape"),
            Err(Refusal::NotFound),
            "symlink out of the root"
        );
        assert_eq!(resolve(&root, "/nothing"), Err(Refusal::NotFound));
        std::fs::remove_dir_all(&base).unwrap();
    }

    const PLAIN: Served = Served {
        content_type: "text/plain; charset=utf-8",
        csp: STRICT_CSP,
    };

    #[test]
    fn our_files_are_served_by_their_extension_with_the_page_policy() {
        let root = Path::new("/r");
        for (file, want) in [
            ("/r/t/run/index.html", "text/html; charset=utf-8"),
            ("/r/t/run/latency.png", "image/png"),
            ("/r/t/run/results.json", "application/json"),
            ("/r/t/run/history.jsonl", "text/plain; charset=utf-8"),
            ("/r/index.html", "text/html; charset=utf-8"),
            // Names that merely contain "nodes" are ours.
            ("/r/nodes-test/run/index.html", "text/html; charset=utf-8"),
            ("/r/t/run/n1/nodes.html", "text/html; charset=utf-8"),
        ] {
            let got = served_as(Path::new(file), root);
            assert_eq!(got.content_type, want, "{file}");
            assert_eq!(got.csp, PAGE_CSP, "{file}");
        }
    }

    #[test]
    fn anything_under_a_nodes_directory_is_plain_text_under_a_strict_policy() {
        let root = Path::new("/r");
        for file in [
            // A reports tree.
            "/r/t/run/nodes/n1/page.html",
            "/r/t/run/nodes/n1/evil.html",
            // One level up or down from where a run usually sits.
            "/r/x/nodes/n1/evil.html",
            "/r/runs/cell/ts/nodes/n1/evil.html",
            "/r/campaigns/c/ts/runs/cell/ts/nodes/n1/sub/dir/evil.svg",
            // The root is a run directory.
            "/r/nodes/n1/evil.html",
            "/r/nodes/index.html",
        ] {
            assert_eq!(served_as(Path::new(file), root), PLAIN, "{file}");
        }
    }

    #[test]
    fn a_served_nodes_directory_or_node_directory_is_all_plain_text() {
        let base = tempfile::tempdir().unwrap();
        let run = base.path().join("t/run");
        std::fs::create_dir_all(run.join("nodes/n1")).unwrap();
        std::fs::write(run.join("plan.yaml"), "seed: 1\n").unwrap();
        let run = run.canonicalize().unwrap();
        let nodes = run.join("nodes");
        let n1 = nodes.join("n1");
        assert_eq!(served_as(&n1.join("evil.html"), &nodes), PLAIN);
        assert_eq!(served_as(&n1.join("evil.html"), &n1), PLAIN);
        // The run directory itself as root: its pages are ours.
        assert_eq!(
            served_as(&run.join("index.html"), &run).content_type,
            "text/html; charset=utf-8"
        );
        // A nodes directory served on its own, outside any run, is still a nodes directory.
        let loose = base.path().join("copy/nodes");
        std::fs::create_dir_all(&loose).unwrap();
        assert_eq!(served_as(&loose.join("n1/evil.html"), &loose), PLAIN);
    }

    /// GET `path` from the server at `addr`: the response head and body.
    fn fetch(addr: SocketAddr, path: &str) -> (String, String) {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // The server keeps connections alive; reading the response to its end needs this.
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    }

    #[test]
    fn the_server_sends_a_node_written_html_file_as_inert_plain_text() {
        const EVIL: &str = "<script>alert('target')</script>";
        let base = tempfile::tempdir().unwrap();
        let root = base.path();
        let run = root.join("campaign/runs/cell/20261101T000000Z");
        for dir in [root.join("x/nodes/n1"), run.join("nodes/n1")] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("evil.html"), EVIL).unwrap();
        }
        std::fs::write(run.join("plan.yaml"), "seed: 1\n").unwrap();
        std::fs::write(run.join("index.html"), "<p>ours</p>").unwrap();
        let check = |served: &Path, paths: &[&str]| {
            let server = spawn(served, "127.0.0.1:0").unwrap();
            for path in paths {
                let (head, body) = fetch(server.addr, path);
                assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
                assert!(
                    head.contains("Content-Type: text/plain; charset=utf-8"),
                    "{path}: {head}"
                );
                assert!(
                    head.contains("X-Content-Type-Options: nosniff"),
                    "{path}: {head}"
                );
                assert!(
                    head.contains(&format!("Content-Security-Policy: {STRICT_CSP}\r\n")),
                    "{path}: {head}"
                );
                assert!(!head.contains("unsafe-inline"), "{path}: {head}");
                assert_eq!(body, EVIL);
            }
        };
        check(
            root,
            &[
                "/x/nodes/n1/evil.html",
                "/campaign/runs/cell/20261101T000000Z/nodes/n1/evil.html",
            ],
        );
        check(&run, &["/nodes/n1/evil.html"]);
        check(&run.join("nodes"), &["/n1/evil.html"]);
        check(&run.join("nodes/n1"), &["/evil.html"]);
        // Our own page beside it keeps its type and policy.
        let server = spawn(&run, "127.0.0.1:0").unwrap();
        let (head, _) = fetch(server.addr, "/index.html");
        assert!(
            head.contains("text/html") && head.contains("unsafe-inline"),
            "{head}"
        );
    }
}
