//! Real origins for the end-to-end tests, written with hyper on loopback.
//!
//! One HTTP origin serves every behaviour by path (like httpbin):
//! - `/echo/body`: answers with the request body, byte for byte (read ahead, streamed back).
//! - `/status/N`: answers status N.
//! - `/slow/MS`: waits MS milliseconds before answering (the most at once is recorded).
//! - `/large/N`: streams N bytes (chunked, no Content-Length).
//! - `/fail/N`: answers 500 to the first N requests, then 200 (status-N-times).
//! - `/redirect/N`: answers 302 to `/redirect/N-1`, down to `/redirect/0` which answers 200.
//! - `/flaky/N`: like `/fail/N`, but once recovered it describes the request (see below).
//! - `/goto/CODE`: answers status CODE with `Location` set to the request's `X-Location` header.
//! - `/server-header`: answers with its own `Server` header.
//! - `/typed/N`: N bytes of text with the `Content-Type` of the request's `X-Want-Type`
//!   (default `text/plain`); `X-Want-Gzip: 1` sends them gzip-encoded, `X-Want-Stream: 1`
//!   without `Content-Length`.
//! - anything else: 200 with a JSON description of the request (method, uri, headers, body
//!   length and checksum).
//!
//! Besides it, `resetting()` closes every connection without an answer and `silent()` keeps
//! every connection open without ever answering.
//!
//! Every accepted connection is counted; every request's arrival time and `X-Proxy-Request-Id`
//! are recorded, and so is every description (for requests whose answer nobody reads).

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

type Body = UnsyncBoxBody<Bytes, Infallible>;

#[derive(Default)]
pub struct Counters {
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
    failures_left: AtomicUsize,
    /// `/slow/MS` requests being answered now, and the most there ever were at once.
    slow_now: AtomicUsize,
    pub slow_max: AtomicUsize,
    /// Every request as (Unix ms of arrival, `X-Proxy-Request-Id` if any), in arrival order.
    pub arrivals: Mutex<Vec<(u64, Option<String>)>>,
    /// The JSON description of every request the describing route answered.
    pub described: Mutex<Vec<serde_json::Value>>,
}

/// A running origin; it stops when dropped.
pub struct Origin {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        // Safe inside async tests, unlike dropping the runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Origin {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }
    /// Arrivals so far: (Unix ms, request id header).
    pub fn arrivals(&self) -> Vec<(u64, Option<String>)> {
        self.counters.arrivals.lock().expect("arrivals").clone()
    }
    /// Descriptions of the requests answered by the describing route so far.
    pub fn described(&self) -> Vec<serde_json::Value> {
        self.counters.described.lock().expect("described").clone()
    }
    /// The most `/slow/MS` requests that were ever being answered at once.
    pub fn slow_max(&self) -> usize {
        self.counters.slow_max.load(Ordering::SeqCst)
    }
    /// How many requests arrived in each wall-clock second (Unix seconds).
    pub fn arrivals_per_second(&self) -> std::collections::BTreeMap<u64, usize> {
        let mut per_second = std::collections::BTreeMap::new();
        for (ms, _) in self.arrivals() {
            *per_second.entry(ms / 1000).or_insert(0) += 1;
        }
        per_second
    }
    /// Wait (bounded) until `done` holds for the origin.
    pub fn wait_until(&self, limit: Duration, done: impl Fn(&Origin) -> bool) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if done(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        done(self)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A non-blocking loopback listener on a free port (bound here, so the port is known at once).
fn bind() -> (std::net::TcpListener, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind origin");
    l.set_nonblocking(true).expect("nonblocking");
    let addr = l.local_addr().expect("origin addr");
    (l, addr)
}

/// Start the HTTP origin (plain, or TLS with the given acceptor).
pub fn start(tls: Option<TlsAcceptor>) -> Origin {
    let (std_listener, addr) = bind();
    serve(std_listener, addr, tls, false)
}

/// An origin that speaks only HTTP/2 in clear (prior knowledge, `h2c`).
pub fn h2c() -> Origin {
    let (std_listener, addr) = bind();
    serve(std_listener, addr, None, true)
}

/// A plain HTTP origin on a given loopback port (to bring a stopped origin back).
pub fn http_on(port: u16) -> Origin {
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind origin port");
    l.set_nonblocking(true).expect("nonblocking");
    let addr = l.local_addr().expect("origin addr");
    serve(l, addr, None, false)
}

fn serve(
    std_listener: std::net::TcpListener,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    http2: bool,
) -> Origin {
    let rt = runtime();
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    rt.spawn(async move {
        let listener = TcpListener::from_std(std_listener).expect("origin listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            c.connections.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, c.clone()));
                if http2 {
                    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    return;
                }
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            });
        }
    });
    Origin {
        addr,
        counters,
        rt: Some(rt),
    }
}

pub fn http() -> Origin {
    start(None)
}

/// An origin that reads a request and closes the connection without answering.
pub fn resetting() -> Origin {
    let rt = runtime();
    let counters = Arc::new(Counters::default());
    let (std_listener, addr) = bind();
    let c = counters.clone();
    rt.spawn(async move {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::from_std(std_listener).expect("origin listener");
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            c.connections.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            drop(stream);
        }
    });
    Origin {
        addr,
        counters,
        rt: Some(rt),
    }
}

/// A back end that accepts connections and reads what comes, but never answers (until the
/// client gives up): whatever is sent to it stays unfinished.
pub fn silent() -> Origin {
    let rt = runtime();
    let counters = Arc::new(Counters::default());
    let (std_listener, addr) = bind();
    let c = counters.clone();
    rt.spawn(async move {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::from_std(std_listener).expect("origin listener");
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            c.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    Origin {
        addr,
        counters,
        rt: Some(rt),
    }
}

fn full(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Full::new(body.into()).boxed_unsync())
        .expect("response")
}

async fn handle(req: Request<Incoming>, c: Arc<Counters>) -> Result<Response<Body>, Infallible> {
    let id = req
        .headers()
        .get("x-proxy-request-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    c.arrivals.lock().expect("arrivals").push((now, id));
    c.requests.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    let arg = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|n| n.parse::<u64>().ok())
    };
    if path == "/echo/body" {
        return Ok(Response::new(echo(req.into_body())));
    }
    if let Some(code) = arg("/status/") {
        return Ok(full(code as u16, format!("status {code}")));
    }
    if let Some(ms) = arg("/slow/") {
        let now = c.slow_now.fetch_add(1, Ordering::SeqCst) + 1;
        c.slow_max.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        c.slow_now.fetch_sub(1, Ordering::SeqCst);
        return Ok(full(200, "slow done"));
    }
    if let Some(n) = arg("/large/") {
        return Ok(Response::new(pattern_stream(n)));
    }
    if let Some(n) = arg("/fail/") {
        let _ =
            c.failures_left
                .compare_exchange(0, n as usize + 1, Ordering::SeqCst, Ordering::SeqCst);
        let left = c.failures_left.fetch_sub(1, Ordering::SeqCst);
        return Ok(if left > 1 {
            full(500, "failing")
        } else {
            full(200, "recovered")
        });
    }
    if let Some(n) = arg("/flaky/") {
        let _ =
            c.failures_left
                .compare_exchange(0, n as usize + 1, Ordering::SeqCst, Ordering::SeqCst);
        if c.failures_left.fetch_sub(1, Ordering::SeqCst) > 1 {
            // Read the whole request first, as a back end that failed while handling it would.
            let _ = req.into_body().collect().await;
            return Ok(full(500, "failing"));
        }
        return Ok(describe(req, &c).await);
    }
    if let Some(code) = arg("/goto/") {
        let loc = req
            .headers()
            .get("x-location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("/")
            .to_string();
        let mut resp = full(code as u16, format!("go to {loc}"));
        resp.headers_mut()
            .insert("location", loc.parse().expect("location"));
        return Ok(resp);
    }
    if let Some(n) = arg("/redirect/") {
        if n > 0 {
            let mut resp = full(302, "");
            let loc = format!("/redirect/{}", n - 1);
            resp.headers_mut()
                .insert("location", loc.parse().expect("location"));
            return Ok(resp);
        }
        return Ok(full(200, "arrived"));
    }
    if let Some(n) = arg("/typed/") {
        return Ok(typed(req.headers(), n as usize));
    }
    if path == "/set-cookie" {
        let mut resp = full(200, "cookie set");
        resp.headers_mut()
            .insert("set-cookie", "session=abc123".parse().expect("cookie"));
        return Ok(resp);
    }
    if path == "/server-header" {
        let mut resp = full(200, "own server header");
        resp.headers_mut()
            .insert("server", "OriginServer/1".parse().expect("server"));
        resp.headers_mut()
            .insert("x-origin-secret", "s3cret".parse().expect("header"));
        return Ok(resp);
    }
    Ok(describe(req, &c).await)
}

/// The text `/typed/N` answers with.
pub fn text_of(n: usize) -> Vec<u8> {
    b"poolgate compresses text. "
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

fn typed(headers: &hyper::HeaderMap, n: usize) -> Response<Body> {
    let want = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut text = text_of(n);
    let gzip = want("x-want-gzip") == Some("1");
    if gzip {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&text).expect("gzip");
        text = enc.finish().expect("gzip");
    }
    let mut resp = if want("x-want-stream") == Some("1") {
        let chunks: Vec<Result<Frame<Bytes>, Infallible>> = text
            .chunks(16 * 1024)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        Response::new(StreamBody::new(stream::iter(chunks)).boxed_unsync())
    } else {
        full(200, text)
    };
    let ct = want("x-want-type").unwrap_or("text/plain").to_string();
    let h = resp.headers_mut();
    h.insert("content-type", ct.parse().expect("ct"));
    if gzip {
        h.insert("content-encoding", "gzip".parse().expect("ce"));
    }
    resp
}

/// The byte at position `i` of every generated body: verifiable without storing the body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

fn pattern_stream(total: u64) -> Body {
    const CHUNK: u64 = 64 * 1024;
    let chunks = stream::unfold(0u64, move |sent| async move {
        if sent >= total {
            return None;
        }
        let n = CHUNK.min(total - sent);
        let data: Vec<u8> = (sent..sent + n).map(pattern_byte).collect();
        Some((
            Ok::<_, Infallible>(Frame::data(Bytes::from(data))),
            sent + n,
        ))
    });
    StreamBody::new(chunks).boxed_unsync()
}

async fn describe(req: Request<Incoming>, c: &Counters) -> Response<Body> {
    let (parts, mut body) = req.into_parts();
    let (mut len, mut sum) = (0u64, 0u64);
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            for b in data.iter() {
                sum = sum.wrapping_mul(31).wrapping_add(*b as u64);
            }
            len += data.len() as u64;
        }
    }
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into(),
            )
        })
        .collect();
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "version": format!("{:?}", parts.version),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body_len": len,
        "body_sum": sum,
    });
    let mut resp = full(200, json.to_string());
    c.described.lock().expect("described").push(json);
    resp.headers_mut()
        .insert("content-type", "application/json".parse().expect("ct"));
    resp
}

/// The checksum `describe` computes, for comparing with what a client sent.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter()
        .fold(0u64, |s, b| s.wrapping_mul(31).wrapping_add(*b as u64))
}

/// Echo a request body back as it arrives. The body is read ahead of the echo, as servers
/// that read their input whatever their output is doing do: Pingora's HTTP/1 proxy writes the
/// request body and reads the answer in turn, so an echo that stopped reading while its answer
/// waited could stall both directions until `http_timeout_ms` (see README, "Differences").
fn echo(mut body: Incoming) -> Body {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                if tx.send(data).is_err() {
                    return;
                }
            }
        }
    });
    let frames = stream::unfold(rx, |mut rx| async move {
        let data = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(data)), rx))
    });
    StreamBody::new(frames).boxed_unsync()
}
