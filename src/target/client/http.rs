//! A small HTTP/1.1 keep-alive client for the JSON APIs of targets (etcd's v3 gateway,
//! `ready: {check: http}` probes).
//!
//! Why hand-written: faultline only ever sends one request at a time on a connection to
//! an address inside its own namespaces (or loopback), with a small JSON body, and must
//! tell "never sent" apart from "sent, no answer" to classify ops soundly. That is a
//! request line, three headers and a response parsed with `httparse` (hyper's parser,
//! already a dependency of `faultline serve`); a full HTTP stack (hyper, reqwest) would
//! add a connection pool and retries that hide exactly that distinction.
//!
//! Does not own: deadlines (callers wrap a request in `timeout_at` and drop the connection
//! on expiry, so a late answer is never read as the next request's), TLS, redirects.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest response body accepted; a target sending more is broken (our ranges are one key).
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Headers parsed per response.
const MAX_HEADERS: usize = 32;

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The request did not leave this machine (connect failed): it certainly had no effect.
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

/// One keep-alive connection.
#[derive(Debug)]
pub struct HttpConn {
    stream: TcpStream,
    /// `Host:` header value.
    authority: String,
    /// Bytes read past the end of the previous response (none with a well-behaved server,
    /// which answers one request at a time).
    buf: Vec<u8>,
    /// The server said `Connection: close` (or the body ran to EOF): do not reuse.
    closed: bool,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> Result<HttpConn, HttpError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| HttpError::NotSent(format!("connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(HttpConn {
            stream,
            authority: addr.to_string(),
            buf: Vec::new(),
            closed: false,
        })
    }

    /// Whether the connection may carry another request.
    pub fn reusable(&self) -> bool {
        !self.closed
    }

    /// Send one request (a JSON body when `body` is set) and read its response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, HttpError> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n",
            self.authority
        );
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        let sent = self
            .stream
            .write_all(&bytes)
            .await
            .map_err(|e| HttpError::NoAnswer(format!("send to {}: {e}", self.authority)));
        let result = match sent {
            Ok(()) => self.read_response().await,
            Err(e) => Err(e),
        };
        // After any error the stream's position in the protocol is unknown.
        if result.is_err() {
            self.closed = true;
        }
        result
    }

    /// Read more bytes into `buf`; `Ok(0)` at EOF.
    async fn fill(&mut self) -> Result<usize, HttpError> {
        let mut chunk = [0u8; 8192];
        let n = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(|e| HttpError::NoAnswer(format!("read from {}: {e}", self.authority)))?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn eof(&self, what: &str) -> HttpError {
        HttpError::NoAnswer(format!("{} closed the connection {what}", self.authority))
    }

    async fn read_response(&mut self) -> Result<Response, HttpError> {
        let (status, head_len, framing) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    let framing = Framing::of(resp.headers)
                        .map_err(|e| HttpError::NoAnswer(format!("{}: {e}", self.authority)))?;
                    if resp.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("connection")
                            && String::from_utf8_lossy(h.value).eq_ignore_ascii_case("close")
                    }) {
                        self.closed = true;
                    }
                    break (status, len, framing);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_HEAD_BYTES {
                        return Err(HttpError::NoAnswer(format!(
                            "{} sent a response head over {MAX_HEAD_BYTES} bytes",
                            self.authority
                        )));
                    }
                    if self.fill().await? == 0 {
                        self.closed = true;
                        return Err(self.eof("before answering"));
                    }
                }
                Err(e) => {
                    self.closed = true;
                    return Err(HttpError::NoAnswer(format!(
                        "{} sent a malformed response: {e}",
                        self.authority
                    )));
                }
            }
        };
        self.buf.drain(..head_len);
        let body = match framing {
            Framing::Length(n) => {
                if n > MAX_BODY_BYTES {
                    self.closed = true;
                    return Err(HttpError::NoAnswer(format!(
                        "{} announced a body of {n} bytes (limit {MAX_BODY_BYTES})",
                        self.authority
                    )));
                }
                while self.buf.len() < n {
                    if self.fill().await? == 0 {
                        self.closed = true;
                        return Err(self.eof("in the middle of a response body"));
                    }
                }
                self.buf.drain(..n).collect()
            }
            Framing::Chunked => self.read_chunked().await?,
            Framing::UntilClose => {
                self.closed = true;
                while self.fill().await? > 0 {
                    if self.buf.len() > MAX_BODY_BYTES {
                        return Err(HttpError::NoAnswer(format!(
                            "{} sent a body over {MAX_BODY_BYTES} bytes",
                            self.authority
                        )));
                    }
                }
                std::mem::take(&mut self.buf)
            }
        };
        Ok(Response { status, body })
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| {
                HttpError::NoAnswer(format!(
                    "{} sent a bad chunk size {size_text:?}",
                    self.authority
                ))
            })?;
            if size == 0 {
                // Trailers (none expected) end with an empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY_BYTES {
                self.closed = true;
                return Err(HttpError::NoAnswer(format!(
                    "{} sent a body over {MAX_BODY_BYTES} bytes",
                    self.authority
                )));
            }
            while self.buf.len() < size + 2 {
                if self.fill().await? == 0 {
                    self.closed = true;
                    return Err(self.eof("in the middle of a chunk"));
                }
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    async fn read_line(&mut self) -> Result<String, HttpError> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                self.closed = true;
                return Err(HttpError::NoAnswer(format!(
                    "{} sent a line over {MAX_HEAD_BYTES} bytes",
                    self.authority
                )));
            }
            if self.fill().await? == 0 {
                self.closed = true;
                return Err(self.eof("in the middle of a chunked body"));
            }
        }
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

impl Framing {
    fn of(headers: &[httparse::Header<'_>]) -> Result<Framing, String> {
        let value = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        if value("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            return Ok(Framing::Chunked);
        }
        match value("content-length") {
            Some(v) => v
                .parse()
                .map(Framing::Length)
                .map_err(|_| format!("bad Content-Length {v:?}")),
            None => Ok(Framing::UntilClose),
        }
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
            if let Some(v) = line.strip_prefix("Content-Length: ") {
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
    use tokio::net::TcpListener;

    /// A server on 127.0.0.1 that answers each request with the next canned reply.
    async fn serve(replies: Vec<&'static str>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut s = tokio::io::BufReader::new(s);
            for r in replies {
                if read_request(&mut s).await.is_none() {
                    return;
                }
                s.get_mut().write_all(r.as_bytes()).await.unwrap();
            }
        });
        addr
    }
    #[tokio::test]
    async fn reads_length_and_chunked_bodies_on_one_connection() {
        let addr = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
            "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        ])
        .await;
        let mut c = HttpConn::connect(addr).await.unwrap();
        let r = c.request("POST", "/a", Some(b"{}")).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = c.request("GET", "/b", None).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (503, &b"abcde"[..]));
        assert!(c.reusable());
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_no_answer() {
        let addr = serve(vec![]).await;
        let mut c = HttpConn::connect(addr).await.unwrap();
        let e = c.request("POST", "/a", Some(b"{}")).await.unwrap_err();
        assert!(matches!(e, HttpError::NoAnswer(_)), "{e:?}");
        assert!(!c.reusable());
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_sent() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = HttpConn::connect(addr).await.unwrap_err();
        assert!(matches!(e, HttpError::NotSent(_)), "{e:?}");
    }
}
