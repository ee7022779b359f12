//! An HTTP/1.1 keep-alive client for the JSON APIs of targets (etcd's v3 gateway,
//! `ready: {check: http}` probes), on hyper's client connection API.
//!
//! Classifying an op soundly needs "never sent" (fail) told apart from "sent, no answer"
//! (info). So this client keeps what a pooled client hides: it connects its own socket
//! (a connect failure or connect timeout is [`HttpError::NotSent`]), owns at most one
//! connection, sends one request at a time, and never resends a request that may have
//! left. The one resend is of a request hyper hands back unsent because a kept-alive
//! connection turned out to be closed by the server: that request provably did nothing,
//! so it goes out once more on a fresh connection instead of failing an op.
//!
//! hyper does the protocol: 1xx before the answer, bodiless 204/304, chunked framing
//! (also `Transfer-Encoding: gzip, chunked`; no `Accept-Encoding` is sent, so bodies come
//! back uncompressed), `Connection: close`.
//!
//! The connection is driven only inside [`HttpConn::request`], by the caller's task: no
//! background task, so dropping an [`HttpConn`] (after a timeout, say) closes the socket
//! and a late answer is never read as the next request's. Does not own: TLS, redirects.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Largest response head accepted (hyper's read buffer).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest response body accepted; a target sending more is broken (our ranges are one key).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The request did not leave this machine (connect failed, or hyper handed it back
    /// unwritten): it certainly had no effect.
    NotSent(String),
    /// The request was (maybe) sent but no complete response came back: unknown.
    NoAnswer(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::NotSent(e) | HttpError::NoAnswer(e) => f.write_str(e),
        }
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A client for one address, holding at most one keep-alive connection.
#[derive(Debug)]
pub struct HttpConn {
    addr: SocketAddr,
    /// The open connection, if any; `None` after an error, a timeout or a close by the
    /// server, so the next request connects afresh.
    live: Option<Live>,
    /// Connections made so far (tests check keep-alive reuse with it).
    connects: u64,
}

type Body = Full<Bytes>;

/// One connection: hyper's request handle and the future that drives the socket.
struct Live {
    sender: SendRequest<Body>,
    /// `None` once the connection has ended (the server closed it, or an error).
    conn: Option<Connection<TokioIo<TcpStream>, Body>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("open", &self.conn.is_some())
            .finish()
    }
}

impl Live {
    /// Whether another request may go out on this connection.
    fn open(&self) -> bool {
        self.conn.is_some() && !self.sender.is_closed()
    }

    /// Send `req` and read its whole response, driving the connection meanwhile.
    async fn exchange(&mut self, req: Request<Body>, who: &str) -> Result<Response, HttpError> {
        let Live { sender, conn } = self;
        let answer = async {
            // The handle becomes ready once the connection has taken in the previous
            // response; an error here means the connection ended with nothing written.
            sender
                .ready()
                .await
                .map_err(|e| HttpError::NotSent(format!("{who}: {e}")))?;
            let resp = sender.try_send_request(req).await.map_err(|mut e| {
                if e.take_message().is_some() {
                    HttpError::NotSent(format!("{who}: {}", e.error()))
                } else {
                    HttpError::NoAnswer(format!("{who}: {}", e.into_error()))
                }
            })?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| HttpError::NoAnswer(format!("{who}: reading the body: {e}")))?
                .to_bytes();
            Ok(Response {
                status,
                body: body.to_vec(),
            })
        };
        tokio::pin!(answer);
        let Some(driver) = conn.as_mut() else {
            return Err(HttpError::NotSent(format!("{who}: connection closed")));
        };
        tokio::select! {
            // The answer first: what the connection read before ending is still delivered.
            biased;
            r = &mut answer => r,
            _ended = driver => {
                // Whatever ended it (a close, an error) shows in the answer's own error.
                *conn = None;
                answer.await
            }
        }
    }
}

impl HttpConn {
    /// A client for `addr`; it connects on the first request.
    pub fn new(addr: SocketAddr) -> HttpConn {
        HttpConn {
            addr,
            live: None,
            connects: 0,
        }
    }

    /// Connections opened so far.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    async fn connect(&mut self, deadline: Instant) -> Result<Live, HttpError> {
        let addr = self.addr;
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(|_| HttpError::NotSent(format!("connect to {addr} timed out")))?
            .map_err(|e| HttpError::NotSent(format!("connect to {addr}: {e}")))?;
        self.connects += 1;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(MAX_HEAD_BYTES.max(8192))
            .handshake(TokioIo::new(stream))
            .await
            // The http1 handshake does no I/O; failing here sent nothing.
            .map_err(|e| HttpError::NotSent(format!("{addr}: {e}")))?;
        Ok(Live {
            sender,
            conn: Some(conn),
        })
    }

    /// Send one request (a JSON body when `body` is set) and read its response, all by
    /// `deadline`. A timeout after connecting is [`HttpError::NoAnswer`] and drops the
    /// connection.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<Response, HttpError> {
        let who = self.addr.to_string();
        let build = || {
            let mut b = Request::builder()
                .method(method)
                .uri(path)
                .header(HOST, &who)
                .header(ACCEPT, "application/json");
            if body.is_some() {
                b = b.header(CONTENT_TYPE, "application/json");
            }
            let bytes = Bytes::copy_from_slice(body.unwrap_or_default());
            b.body(Full::new(bytes))
                .map_err(|e| HttpError::NotSent(format!("{who}: {method} {path}: {e}")))
        };
        // At most two tries: the second only after a kept-alive connection handed the
        // request back unsent.
        for _ in 0..2 {
            let reused = self.live.as_ref().is_some_and(Live::open);
            let mut live = match self.live.take() {
                Some(l) if reused => l,
                _ => self.connect(deadline).await?,
            };
            let req = build()?;
            let result = tokio::time::timeout_at(deadline, live.exchange(req, &who))
                .await
                .unwrap_or_else(|_| Err(HttpError::NoAnswer(format!("{who}: timed out"))));
            match result {
                Err(HttpError::NotSent(_)) if reused => continue,
                Ok(r) => {
                    if live.open() {
                        self.live = Some(live);
                    }
                    return Ok(r);
                }
                Err(e) => return Err(e),
            }
        }
        Err(HttpError::NotSent(format!(
            "{who}: the server closed two connections before the request could be sent"
        )))
    }
}

/// For tests of HTTP clients against stand-in servers.
#[cfg(test)]
pub(crate) mod test_support {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    use tokio::net::TcpStream;

    /// Read one request (head and Content-Length body); `None` at EOF.
    pub async fn read_request(s: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
        let mut len = 0;
        loop {
            let mut line = String::new();
            if s.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length: ") {
                len = v.trim().parse().ok()?;
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.ok()?;
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::read_request;
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// What a stand-in server does on one connection.
    #[derive(Clone)]
    enum Conn {
        /// Answer each request with the next reply, then close.
        Answer(Vec<&'static str>),
        /// Read one request, then close without answering.
        ReadAndClose,
    }

    /// A server on 127.0.0.1: the n-th accepted connection behaves as `conns[n]`. Counts
    /// the requests it read.
    async fn serve(conns: Vec<Conn>) -> (SocketAddr, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = requests.clone();
        tokio::spawn(async move {
            for c in conns {
                let (s, _) = l.accept().await.unwrap();
                let mut s = BufReader::new(s);
                match c {
                    Conn::Answer(replies) => {
                        for r in replies {
                            if read_request(&mut s).await.is_none() {
                                break;
                            }
                            seen.fetch_add(1, Ordering::SeqCst);
                            s.get_mut().write_all(r.as_bytes()).await.unwrap();
                        }
                    }
                    Conn::ReadAndClose => {
                        read_request(&mut s).await;
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        (addr, requests)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn reads_length_and_chunked_bodies_on_one_connection() {
        let (addr, _) = serve(vec![Conn::Answer(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
            "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        ])])
        .await;
        let mut c = HttpConn::new(addr);
        let r = c.request("POST", "/a", Some(b"{}"), soon()).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = c.request("GET", "/b", None, soon()).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (503, &b"abcde"[..]));
        assert_eq!(c.connects(), 1);
    }

    #[tokio::test]
    async fn skips_informational_answers_before_the_real_one() {
        let (addr, _) = serve(vec![Conn::Answer(vec![
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntrue",
        ])])
        .await;
        let mut c = HttpConn::new(addr);
        let r = c.request("POST", "/a", Some(b"{}"), soon()).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"true"[..]));
    }

    /// A 204 (and a 304 despite its Content-Length) ends at the head: waiting for a body
    /// would hang until the deadline.
    #[tokio::test]
    async fn bodiless_answers_end_at_their_head_and_keep_the_connection() {
        let (addr, _) = serve(vec![Conn::Answer(vec![
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ])])
        .await;
        let mut c = HttpConn::new(addr);
        let quick = || Instant::now() + Duration::from_secs(2);
        let r = c.request("GET", "/", None, quick()).await.unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = c.request("GET", "/", None, quick()).await.unwrap();
        assert_eq!((r.status, r.body.len()), (304, 0));
        let r = c.request("GET", "/", None, quick()).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        assert_eq!(c.connects(), 1);
    }

    #[tokio::test]
    async fn reads_a_chunked_body_under_another_transfer_coding() {
        let (addr, _) = serve(vec![Conn::Answer(vec![
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;ext=1\r\nwxyz\r\n0\r\nTrailer: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1",
        ])])
        .await;
        let mut c = HttpConn::new(addr);
        let r = c.request("GET", "/", None, soon()).await.unwrap();
        assert_eq!(r.body, b"wxyz");
        // The framing ended exactly: the next answer is read whole on the same connection.
        let r = c.request("GET", "/", None, soon()).await.unwrap();
        assert_eq!(r.body, b"1");
        assert_eq!(c.connects(), 1);
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_no_answer() {
        let (addr, seen) = serve(vec![Conn::ReadAndClose]).await;
        let mut c = HttpConn::new(addr);
        let e = c
            .request("POST", "/a", Some(b"{}"), soon())
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::NoAnswer(_)), "{e:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 1, "the server got the request");
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_sent() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = HttpConn::new(addr)
            .request("GET", "/", None, soon())
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::NotSent(_)), "{e:?}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out_as_no_answer() {
        // The kernel accepts; nobody answers.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = HttpConn::new(l.local_addr().unwrap());
        let deadline = Instant::now() + Duration::from_millis(200);
        let e = c.request("GET", "/", None, deadline).await.unwrap_err();
        assert_eq!(
            e,
            HttpError::NoAnswer(format!("{}: timed out", l.local_addr().unwrap()))
        );
    }

    /// Keep-alive: requests share one connection until the server closes it; the next
    /// request then goes out, once, on a fresh connection.
    #[tokio::test]
    async fn reuses_one_connection_and_reconnects_after_the_server_closed_it() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, seen) = serve(vec![
            // Closes after two answers without saying so.
            Conn::Answer(vec![ok, ok]),
            Conn::Answer(vec![
                ok,
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            ]),
            Conn::Answer(vec![ok]),
        ])
        .await;
        let mut c = HttpConn::new(addr);
        for _ in 0..2 {
            c.request("GET", "/", None, soon()).await.unwrap();
        }
        assert_eq!(c.connects(), 1);
        // The server has closed its end once it waits for a third request that never comes
        // on that connection; give its FIN time to arrive.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for _ in 0..2 {
            c.request("GET", "/", None, soon()).await.unwrap();
        }
        assert_eq!(c.connects(), 2);
        // `Connection: close` is honoured without a failed try.
        c.request("GET", "/", None, soon()).await.unwrap();
        assert_eq!(c.connects(), 3);
        assert_eq!(seen.load(Ordering::SeqCst), 5, "each request was sent once");
    }
}
