//! `http_timeout_ms` (time to the response header) and `http_body_timeout_ms` (gaps in the
//! body), on the streaming path and on the buffered exchange, against scripted back ends that
//! answer on raw TCP at a chosen pace.

use crate::config;
use crate::harness::{client, Poolgate};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A back end that answers each request with a script: `answer(n, stream)` writes the answer
/// to the `n`-th request (counted from 0 over all connections) and says whether the
/// connection stays open for another one.
pub struct Scripted {
    pub port: u16,
    requests: Arc<AtomicUsize>,
}

impl Scripted {
    pub fn start<F>(answer: F) -> Scripted
    where
        F: Fn(usize, &mut TcpStream) -> bool + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let (counter, answer) = (requests.clone(), Arc::new(answer));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (counter, answer) = (counter.clone(), answer.clone());
                std::thread::spawn(move || serve(stream, &counter, &*answer));
            }
        });
        Scripted { port, requests }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Read requests (head and `Content-Length` body) off one connection and answer each.
fn serve(
    mut stream: TcpStream,
    counter: &AtomicUsize,
    answer: &(dyn Fn(usize, &mut TcpStream) -> bool + Send + Sync),
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(reading) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reading);
    loop {
        let mut body_len = 0usize;
        let mut first = true;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" && !first {
                break;
            }
            first = false;
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                body_len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; body_len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let n = counter.fetch_add(1, Ordering::SeqCst);
        if !answer(n, &mut stream) {
            return;
        }
    }
}

/// A head with `Content-Length: len`, written at once.
fn head(stream: &mut TcpStream, len: usize) {
    let head =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: text/plain\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.flush();
}

/// A head at once, then `pieces` pieces of 4 bytes, each after `gap`.
fn paced(stream: &mut TcpStream, pieces: usize, gap: Duration) -> bool {
    head(stream, pieces * 4);
    for i in 0..pieces {
        std::thread::sleep(gap);
        if stream.write_all(format!("{:04}", i).as_bytes()).is_err() {
            return false;
        }
        let _ = stream.flush();
    }
    true
}

fn paced_body(pieces: usize) -> String {
    (0..pieces).map(|i| format!("{i:04}")).collect()
}

/// A streaming pool `stream` and a buffered (retrying) pool `buffered`, routed by `X-Proxy`.
fn pools(port: u16, extra: &str) -> String {
    let pool = |id: &str, more: &str| {
        format!("{id}: {{target_hostname: 127.0.0.1, target_port: {port}, x_proxy_only: true, {extra}{more}}}")
    };
    config(&format!(
        "{{{}, {}}}",
        pool("stream", ""),
        pool("buffered", ", retries: 1")
    ))
}

/// Send a raw GET through `pool`; the whole reply, how long until poolgate closed the
/// connection (or 15 s passed), and whether it closed.
fn raw_get(addr: SocketAddr, pool: &str) -> (String, Duration, bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let started = Instant::now();
    let req = format!("GET /x HTTP/1.1\r\nHost: a\r\nX-Proxy: {pool}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut out = Vec::new();
    let closed = s.read_to_end(&mut out).is_ok();
    let text = String::from_utf8_lossy(&out).into_owned();
    (text, started.elapsed(), closed)
}

#[tokio::test]
async fn a_body_with_gaps_longer_than_http_timeout_ms_arrives_whole() {
    let origin = Scripted::start(|_, s| paced(s, 3, Duration::from_millis(1500)));
    let pg = Poolgate::start(&pools(origin.port, "http_timeout_ms: 1000"));
    let c = client();
    let get = |pool: &'static str| {
        let req = c.get(pg.url("/x")).header("X-Proxy", pool);
        async move {
            let resp = req.send().await.expect("send");
            assert_eq!(resp.status(), 200, "{pool}");
            resp.text()
                .await
                .unwrap_or_else(|e| panic!("{pool}: {e:?}"))
        }
    };
    let (streamed, buffered) = tokio::join!(get("stream"), get("buffered"));
    assert_eq!(streamed, paced_body(3), "streaming path");
    assert_eq!(buffered, paced_body(3), "buffered exchange");
    assert_eq!(origin.requests(), 2, "nothing was retried");
}

#[tokio::test]
async fn a_body_that_stalls_past_http_body_timeout_ms_is_cut() {
    let origin = Scripted::start(|_, s| {
        head(s, 10);
        let _ = s.write_all(b"hello");
        let _ = s.flush();
        std::thread::sleep(Duration::from_secs(12));
        false
    });
    let extra = "http_timeout_ms: 1000, http_body_timeout_ms: 1500";
    let pg = Poolgate::start(&pools(origin.port, extra));
    let addr = pg.addr();
    let (streamed, buffered) = tokio::join!(
        tokio::task::spawn_blocking(move || raw_get(addr, "stream")),
        tokio::task::spawn_blocking(move || raw_get(addr, "buffered")),
    );
    for (path, (reply, took, closed)) in [
        ("stream", streamed.expect("join")),
        ("buffered", buffered.expect("join")),
    ] {
        assert!(reply.starts_with("HTTP/1.1 200"), "{path}: {reply}");
        assert!(
            reply.ends_with("\r\n\r\nhello"),
            "{path}: truncated: {reply:?}"
        );
        assert!(closed, "{path}: poolgate closes the connection");
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_secs(10),
            "{path}: cut after about 1.5 s, took {took:?}"
        );
    }
    assert!(
        pg.wait_for_event_log("reading body, timeout"),
        "the log says why:\n{}",
        std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default()
    );
}

#[tokio::test]
async fn a_body_ended_by_its_connection_that_stalls_is_cut_not_ended() {
    // No length and no chunks: the body ends when the back end closes. A cut one must not
    // reach the client as a whole body (the last chunk of a chunked answer).
    let origin = Scripted::start(|_, s| {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello",
        );
        let _ = s.flush();
        std::thread::sleep(Duration::from_secs(12));
        false
    });
    let pg = Poolgate::start(&pools(
        origin.port,
        "http_timeout_ms: 1000, http_body_timeout_ms: 1500",
    ));
    let addr = pg.addr();
    let (reply, took) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let started = Instant::now();
        s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Proxy: stream\r\n\r\n")
            .expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        (
            String::from_utf8_lossy(&out).into_owned(),
            started.elapsed(),
        )
    })
    .await
    .expect("join");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("hello"), "{reply:?}");
    assert!(
        !reply.ends_with("0\r\n\r\n"),
        "the cut body reads as whole: {reply:?}"
    );
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(10),
        "cut after about 1.5 s, took {took:?}"
    );
    assert!(
        pg.wait_for_event_log("reading body, timeout"),
        "the log says why:\n{}",
        std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default()
    );
}

#[tokio::test]
async fn a_back_end_without_a_header_within_http_timeout_ms_gets_504() {
    // The first request is answered (its connection is kept), the others never are.
    let origin = Scripted::start(|n, s| {
        if n == 0 {
            head(s, 2);
            let _ = s.write_all(b"ok");
            return true;
        }
        std::thread::sleep(Duration::from_secs(8));
        false
    });
    let pg = Poolgate::start(&pools(origin.port, "http_timeout_ms: 1000"));
    let c = client();
    let first = c
        .get(pg.url("/x"))
        .header("X-Proxy", "stream")
        .send()
        .await
        .expect("send");
    assert_eq!(first.text().await.expect("body"), "ok");
    for pool in ["stream", "buffered"] {
        let started = Instant::now();
        let resp = c
            .get(pg.url("/x"))
            .header("X-Proxy", pool)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 504, "{pool}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(6),
            "{pool}: about http_timeout_ms, took {took:?}"
        );
    }
    // The stalled streaming request went out on the kept connection: it is not sent again.
    // The buffered pool's one retry is its own (`retries: 1`): 1 + 1 + 2.
    assert_eq!(origin.requests(), 4);
    assert!(
        pg.wait_for_event_log("no response header within http_timeout_ms (1000 ms)"),
        "{}",
        std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default()
    );
}

#[tokio::test]
async fn an_upload_slower_than_http_timeout_ms_is_not_cut() {
    let origin = Scripted::start(|_, s| {
        head(s, 2);
        let _ = s.write_all(b"ok");
        false
    });
    let pg = Poolgate::start(&pools(origin.port, "http_timeout_ms: 1000"));
    let addr = pg.addr();
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let head = "POST /up HTTP/1.1\r\nHost: a\r\nX-Proxy: stream\r\nContent-Length: 12\r\nConnection: close\r\n\r\n";
        s.write_all(head.as_bytes()).expect("write");
        for piece in [b"abcd", b"efgh", b"ijkl"] {
            std::thread::sleep(Duration::from_millis(700));
            s.write_all(piece).expect("write body");
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("join");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("ok"), "{reply}");
}
