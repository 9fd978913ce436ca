//! The front door: strict request heads (`Host`, targets, absolute form, framing), bounded
//! heads (`http_max_header_size`, `http_max_request_line`, `http_max_header_count`,
//! `http_header_timeout`), poolgate's own answers to what it refuses, and the log lines,
//! counters and metrics of the refusals.

use crate::harness::{client, Poolgate};
use crate::{described, origin};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A config with a stats API, metrics, a signature and a global header, so refusals can be
/// checked for all of them.
fn config(origin_port: u16, web_extra: &str) -> String {
    format!(
        "threads: 2\nshutdown_timeout_sec: 1\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\n  http_server_signature: poolgate-test\n  http_response_headers: {{X-Edge: front}}\n{web_extra}PixlProxy:\n  stats_uri_match: '^/proxy-stats'\n  metrics_uri: /metrics\n  pools:\n    default: {{target_hostname: 127.0.0.1, target_port: {origin_port}}}\n"
    )
}

/// What came back for raw bytes: the reply, and whether poolgate closed the connection
/// (rather than the 10 s read limit ending the wait).
fn exchange(addr: SocketAddr, request: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let closed = s.read_to_end(&mut out).is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// Assert that `request` is refused with `status` by poolgate itself, and the connection
/// closed.
fn assert_refused(addr: SocketAddr, request: &[u8], status: u16, reason: &str) -> String {
    let (reply, closed) = exchange(addr, request);
    let shown = String::from_utf8_lossy(request);
    assert!(
        reply.starts_with(&format!("HTTP/1.1 {status} ")),
        "{shown:?} -> {reply:?}"
    );
    let lower = reply.to_ascii_lowercase();
    assert!(lower.contains("\r\nserver: poolgate-test\r\n"), "{reply:?}");
    assert!(lower.contains("\r\nx-edge: front\r\n"), "{reply:?}");
    assert!(lower.contains("\r\nconnection: close\r\n"), "{reply:?}");
    assert!(
        lower.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"),
        "{reply:?}"
    );
    assert!(!lower.contains("pingora"), "{reply:?}");
    assert!(
        reply.contains(reason),
        "{shown:?}: wanted {reason:?} in {reply:?}"
    );
    assert!(closed, "{shown:?}: the connection stayed open");
    reply
}

#[tokio::test]
async fn requests_without_a_valid_single_host_get_400_and_never_reach_the_back_end() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), ""));
    assert_refused(
        pg.addr(),
        b"GET / HTTP/1.1\r\n\r\n",
        400,
        "the request has no Host header",
    );
    assert_refused(
        pg.addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        "more than one Host header",
    );
    for host in ["a b", "a\tb", "a/b", "user@a", "a:", "a, b", "", "a:99999"] {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_refused(
            pg.addr(),
            request.as_bytes(),
            400,
            "the Host header is not a valid host[:port]",
        );
    }
    assert_refused(
        pg.addr(),
        b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
        400,
        "a header line is malformed",
    );
    // HTTP/1.0 needs no Host; a good one passes.
    let (reply, _) = exchange(pg.addr(), b"GET /ten HTTP/1.0\r\n\r\n");
    assert!(
        reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
        "{reply:?}"
    );
    let desc = described(client().get(pg.url("/ok")).send().await.expect("send")).await;
    assert_eq!(desc["uri"], "/ok");
    assert_eq!(
        o.requests(),
        2,
        "only the good requests reached the back end"
    );
}

#[tokio::test]
async fn targets_with_spaces_or_control_characters_are_refused_not_forwarded() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), ""));
    for target in ["/a b", "/a\x00b", "/a\x7fb", "/a\tb", "/a\x1bb"] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_refused(
            pg.addr(),
            request.as_bytes(),
            400,
            "the request target contains a space or a control character",
        );
    }
    assert_refused(
        pg.addr(),
        b"GET ftp://t/x HTTP/1.1\r\nHost: t\r\n\r\n",
        400,
        "form or scheme",
    );
    assert_refused(
        pg.addr(),
        b"CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n",
        405,
        "CONNECT is not served",
    );
    assert_refused(
        pg.addr(),
        b"GET / HTTP/3.0\r\nHost: t\r\n\r\n",
        505,
        "only HTTP/1.0 and HTTP/1.1",
    );
    assert_refused(
        pg.addr(),
        b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n",
        400,
        "a header line is malformed",
    );
    assert_eq!(o.requests(), 0);
}

#[tokio::test]
async fn an_absolute_form_target_reaches_the_back_end_in_origin_form_with_its_host() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), ""));
    let (reply, _) = exchange(
        pg.addr(),
        b"GET http://b.example:81/p?q=1 HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    let seen = o.described();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["uri"], "/p?q=1");
    assert_eq!(seen[0]["headers"]["host"], "b.example:81");
}

#[tokio::test]
async fn framing_faults_get_poolgates_answer_and_te_with_length_is_refused_by_default() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), ""));
    let post = |extra: &str| format!("POST / HTTP/1.1\r\nHost: t\r\n{extra}\r\n");
    for (extra, status, reason) in [
        (
            "Content-Length: 3\r\nContent-Length: 3\r\n",
            400,
            "more than one Content-Length",
        ),
        ("Content-Length: 3, 3\r\n", 400, "not a number"),
        ("Content-Length: -1\r\n", 400, "not a number"),
        (
            "Transfer-Encoding: gzip\r\n",
            400,
            "does not end with chunked",
        ),
        (
            "Transfer-Encoding: gzip, chunked\r\n",
            501,
            "other than chunked",
        ),
        (
            "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            400,
            "both Content-Length and Transfer-Encoding",
        ),
    ] {
        assert_refused(pg.addr(), post(extra).as_bytes(), status, reason);
    }
    assert_refused(
        pg.addr(),
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "does not end with chunked (or is on HTTP/1.0)",
    );
    assert_eq!(o.requests(), 0);
}

#[tokio::test]
async fn te_with_length_passes_as_chunked_when_the_operator_allows_it() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), "  http_allow_te_and_cl: true\n"));
    let (reply, closed) = exchange(
        pg.addr(),
        b"POST /both HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    assert!(closed, "the connection closes after such a request");
    let seen = o.described();
    assert_eq!(seen[0]["body_len"], 3);
}

#[tokio::test]
async fn oversized_heads_get_431_and_long_request_lines_414_before_any_back_end_sees_them() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), ""));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "v".repeat(40 * 1024)
    );
    assert_refused(
        pg.addr(),
        big.as_bytes(),
        431,
        "larger than http_max_header_size",
    );
    let mut many = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_refused(
        pg.addr(),
        many.as_bytes(),
        431,
        "more header fields than http_max_header_count",
    );
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    assert_refused(
        pg.addr(),
        long.as_bytes(),
        414,
        "longer than http_max_request_line",
    );
    // A HEAD request's refusal has no body.
    let (reply, _) = exchange(
        pg.addr(),
        format!("HEAD /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000)).as_bytes(),
    );
    assert!(reply.starts_with("HTTP/1.1 414"), "{reply:?}");
    assert!(reply.ends_with("\r\n\r\n"), "{reply:?}");
    assert_eq!(o.requests(), 0);
    let desc = described(client().get(pg.url("/after")).send().await.expect("send")).await;
    assert_eq!(desc["uri"], "/after");
}

#[tokio::test]
async fn the_head_limits_are_settings() {
    let o = origin::http();
    let extra =
        "  http_max_header_size: 2048\n  http_max_request_line: 256\n  http_max_header_count: 5\n";
    let pg = Poolgate::start(&config(o.port(), extra));
    let head = |value_len: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-V: {}\r\nConnection: close\r\n\r\n",
            "v".repeat(value_len)
        )
    };
    let (reply, _) = exchange(pg.addr(), head(1500).as_bytes());
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    assert_refused(
        pg.addr(),
        head(2100).as_bytes(),
        431,
        "http_max_header_size",
    );
    let line = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(300));
    assert_refused(pg.addr(), line.as_bytes(), 414, "http_max_request_line");
    let six = "GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    assert_refused(pg.addr(), six.as_bytes(), 431, "http_max_header_count");
    assert_eq!(o.requests(), 1);
}

#[tokio::test]
async fn a_client_dripping_its_head_is_cut_off_at_the_deadline_while_others_are_served() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), "  http_header_timeout: 2\n"));
    let addr = pg.addr();
    let dripper = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let started = Instant::now();
        let head = b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Padding: ".to_vec();
        let mut reply = Vec::new();
        // One byte every 200 ms, an endless header value; stop once poolgate answers or
        // after 30 s.
        for i in 0..150 {
            let byte = head.get(i).copied().unwrap_or(b'x');
            if s.write_all(&[byte]).is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if reply.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        (
            String::from_utf8_lossy(&reply).into_owned(),
            started.elapsed(),
        )
    });
    // Meanwhile other clients are served.
    for i in 0..3 {
        let path = format!("/meanwhile{i}");
        let desc = described(client().get(pg.url(&path)).send().await.expect("send")).await;
        assert_eq!(desc["uri"], path);
    }
    let (reply, took) = dripper.join().expect("dripper");
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply:?}");
    assert!(reply.contains("http_header_timeout"), "{reply:?}");
    assert!(
        took >= Duration::from_secs(2),
        "cut off before the deadline: {took:?}"
    );
    assert_eq!(o.requests(), 3);
}

fn stats(pg: &Poolgate) -> serde_json::Value {
    let (reply, _) = exchange(
        pg.addr(),
        b"GET /proxy-stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

#[tokio::test]
async fn refusals_are_logged_with_the_client_and_request_counted_and_in_the_web_log() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), "  http_log_requests: true\n"));
    assert_refused(
        pg.addr(),
        b"GET /secret-path?x=1 HTTP/1.1\r\n\r\n",
        400,
        "no Host header",
    );
    assert!(
        pg.wait_for_event_log(
            "Refused a request from 127.0.0.1: the request has no Host header (400)"
        ),
        "{}",
        std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default()
    );
    assert!(pg.wait_for_event_log(r#""request":"GET /secret-path?x=1 HTTP/1.1""#));
    assert!(
        pg.wait_for_event_log("[WebServer][transaction][HTTP 400 Bad Request][/secret-path?x=1]")
    );
    let doc = stats(&pg);
    assert_eq!(doc["web"]["refused"]["missing_host"], 1, "{doc}");
    assert_eq!(doc["web"]["refused"]["total"], 1, "{doc}");
    let metrics = client()
        .get(pg.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("poolgate_refused_requests_total{reason=\"missing_host\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("poolgate_refused_requests_total{reason=\"header_timeout\"} 0"));
}

#[tokio::test]
async fn a_flood_of_refusals_logs_a_line_and_a_summary_per_second_not_one_line_each() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), ""));
    let started = Instant::now();
    for _ in 0..40 {
        let (reply, _) = exchange(pg.addr(), b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    }
    let seconds = started.elapsed().as_secs() + 2;
    assert!(pg.wait_for_event_log("more requests in the last second"));
    let log = std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default();
    let single = log.matches("Refused a request from").count() as u64;
    assert!(
        single >= 1 && single <= seconds,
        "{single} lines in {seconds} s:\n{log}"
    );
    let summarized: u64 = log
        .lines()
        .filter(|l| l.contains("more requests in the last second"))
        .filter_map(|l| {
            l.split("Refused ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    // Summaries may still be on their way for the last second; none is counted twice.
    assert!(single + summarized <= 40, "{single} + {summarized}:\n{log}");
    let doc = stats(&pg);
    assert_eq!(doc["web"]["refused"]["invalid_host"], 40);
}

#[tokio::test]
async fn http2_header_blocks_are_bounded_too() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), "  http_h2c: true\n"));
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client");
    let resp = h2
        .get(pg.url("/h2"))
        .header("x-big", "v".repeat(40 * 1024))
        .send()
        .await
        .expect("h2c request");
    assert_eq!(resp.status(), 431);
    let resp = h2.get(pg.url("/h2ok")).send().await.expect("h2c request");
    assert_eq!(described(resp).await["uri"], "/h2ok");
    assert_eq!(o.requests(), 1);
}
