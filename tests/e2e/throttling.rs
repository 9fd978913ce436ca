//! Throttling: `max_concurrent_requests`, `max_requests_per_sec`, the per-client limits and
//! `WebServer.http_max_connections`.

use crate::harness::{client, free_port, Poolgate};
use crate::origin;
use crate::{config, config_with};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn pool(origin_port: u16, extra: &str) -> String {
    config(&format!(
        "{{default: {{target_hostname: 127.0.0.1, target_port: {origin_port}, {extra}}}}}"
    ))
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock")
}

/// Sleep until just after the next wall-clock second (or minute) starts.
async fn align_to(period_sec: u64, leave_at_least: Duration) {
    let now = unix_now();
    let into = Duration::from_millis((now.as_millis() % (u128::from(period_sec) * 1000)) as u64);
    let left = Duration::from_secs(period_sec) - into;
    if left < leave_at_least {
        tokio::time::sleep(left + Duration::from_millis(20)).await;
    }
}

/// Poll `f` (bounded) until it returns true.
async fn eventually<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_answers_429_and_frees_slots_on_every_path() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), "max_concurrent_requests: 2"));
    let c = client();
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(c.get(pg.url("/slow/3000")).send()))
        .collect();
    assert!(
        eventually(|| async { o.requests() == 2 }).await,
        "slow requests in flight"
    );
    let refused = c.get(pg.url("/x")).send().await.expect("send");
    assert_eq!(refused.status(), 429);
    let body = refused.text().await.expect("body");
    assert!(
        body.contains("pool default") && body.contains("max_concurrent_requests limit (2)"),
        "{body}"
    );
    assert!(pg.wait_for_log("max_concurrent_requests limit (2)"));
    for s in slow {
        assert_eq!(s.await.expect("join").expect("slow").status(), 200);
    }
    // Success released both slots.
    assert_eq!(
        c.get(pg.url("/x")).send().await.expect("send").status(),
        200
    );

    // A client that gives up mid-request frees its slot too.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    for _ in 0..2 {
        assert!(impatient.get(pg.url("/slow/1500")).send().await.is_err());
    }
    assert!(
        eventually(|| async {
            c.get(pg.url("/x"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "slots come back after client aborts"
    );
}

#[tokio::test]
async fn failed_requests_release_their_slot() {
    let dead = free_port();
    let pg = Poolgate::start(&pool(dead, "max_concurrent_requests: 1"));
    let c = client();
    for _ in 0..3 {
        let resp = c.get(pg.url("/x")).send().await.expect("send");
        assert_eq!(resp.status(), 502, "a refused back end, never 429");
    }
}

#[tokio::test]
async fn rate_limit_admits_exactly_max_per_second() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), "max_requests_per_sec: 3"));
    let c = client();
    align_to(1, Duration::from_millis(800)).await;
    let first = unix_now().as_secs();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            c.get(pg.url("/x"))
                .send()
                .await
                .expect("send")
                .status()
                .as_u16(),
        );
    }
    let seconds = unix_now().as_secs() - first + 1;
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64;
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    if seconds == 1 {
        assert_eq!(ok, 3, "{statuses:?}");
    } else {
        assert!(
            ok >= 3 && ok <= 3 * seconds,
            "{statuses:?} over {seconds} s"
        );
    }
    assert!(pg.wait_for_log("max_requests_per_sec limit (3)"));
}

#[tokio::test]
async fn per_client_limit_answers_429_with_retry_after() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), "max_requests_per_min_per_ip: 3"));
    let c = client();
    align_to(60, Duration::from_secs(5)).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let resp = c.get(pg.url("/x")).send().await.expect("send");
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            let value = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok());
            retry_after = value.map(str::to_string);
            let body = resp.text().await.expect("body");
            assert!(
                body.contains("max_requests_per_min_per_ip limit (3)"),
                "{body}"
            );
        }
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    let seconds: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&seconds), "{seconds}");
}

/// Open a keep-alive connection and complete one request on it; `None` if it was closed.
fn try_open(addr: std::net::SocketAddr) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n").ok()?;
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .starts_with("HTTP/1.1 200")
        .then_some(s)
}

/// Open a connection, retrying (bounded) while the slot of an earlier, just-closed connection
/// (such as the harness's readiness probe) is still being released.
fn open_connection(addr: std::net::SocketAddr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = try_open(addr) {
            return s;
        }
        assert!(Instant::now() < deadline, "no connection slot came free");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a new connection is served (true) or closed without an answer (false).
fn served(addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200")
}

#[tokio::test]
async fn connections_beyond_http_max_connections_are_closed_and_counted() {
    let o = origin::http();
    let cfg = config_with(
        "  http_max_connections: 2\n",
        &format!(
            "{{default: {{target_hostname: 127.0.0.1, target_port: {}}}}}",
            o.port()
        ),
    );
    let pg = Poolgate::start(&cfg);
    let a = open_connection(pg.addr());
    let _b = open_connection(pg.addr());
    assert!(!served(pg.addr()), "a third connection is closed at once");
    assert!(pg.wait_for_log("http_max_connections (2) reached"));
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ok = false;
    while Instant::now() < deadline && !ok {
        ok = served(pg.addr());
        if !ok {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(ok, "a freed slot takes a new connection");
}
