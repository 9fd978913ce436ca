//! The client-facing side: HTTPS next to HTTP, keep-alive modes, idle timeout, malformed input,
//! graceful shutdown.

use crate::harness::{client, Poolgate};
use crate::{config_with, described, origin, raw, seen, tls};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn pools(origin_port: u16) -> String {
    format!("{{default: {{target_hostname: 127.0.0.1, target_port: {origin_port}}}}}")
}

#[tokio::test]
async fn https_and_http_listen_at_once_and_tls_clients_get_x_forwarded_proto() {
    let o = origin::http();
    let cert = tls::self_signed();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_file, key_file) = cert.write(dir.path());
    let web = format!(
        "  https: true\n  https_port: $HTTPS_PORT\n  https_cert_file: '{}'\n  https_key_file: '{}'\n",
        cert_file.display(),
        key_file.display()
    );
    let pg = Poolgate::start(&config_with(&web, &pools(o.port())));
    let tls_client = reqwest::Client::builder()
        .add_root_certificate(cert.reqwest_cert())
        .build()
        .expect("client");
    let url = format!("https://localhost:{}/secure", pg.https_port);
    let desc = described(tls_client.get(&url).send().await.expect("https request")).await;
    assert_eq!(seen(&desc, "x-forwarded-proto"), Some("https"));
    let desc = described(
        client()
            .get(pg.url("/plain"))
            .send()
            .await
            .expect("http request"),
    )
    .await;
    assert_eq!(seen(&desc, "x-forwarded-proto"), None);
}

/// Two requests on one raw connection; returns the raw replies and whether the second got one.
fn two_requests(pg: &Poolgate, connection_header: &str) -> (String, bool) {
    let mut s = TcpStream::connect(pg.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let req = format!("GET / HTTP/1.1\r\nHost: t\r\n{connection_header}\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let first = read_response(&mut s);
    let second_ok = s.write_all(req.as_bytes()).is_ok() && !read_response(&mut s).is_empty();
    (first, second_ok)
}

/// Read one response with a Content-Length body.
fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return String::from_utf8_lossy(&buf).into_owned(),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = s.read_exact(&mut body);
    head
}

#[tokio::test]
async fn keep_alive_mode_default_keeps_connections_unless_the_client_closes() {
    let o = origin::http();
    let pg = Poolgate::start(&config_with(
        "  http_keep_alives: default\n",
        &pools(o.port()),
    ));
    let (first, second) = two_requests(&pg, "");
    assert!(first.contains("connection: keep-alive"), "{first}");
    assert!(second);
    let (first, second) = two_requests(&pg, "Connection: close\r\n");
    assert!(first.contains("connection: close"), "{first}");
    assert!(!second);
}

#[tokio::test]
async fn keep_alive_mode_request_keeps_only_when_asked() {
    let o = origin::http();
    let pg = Poolgate::start(&config_with(
        "  http_keep_alives: request\n",
        &pools(o.port()),
    ));
    let (first, second) = two_requests(&pg, "");
    assert!(first.contains("connection: close"), "{first}");
    assert!(!second);
    let (first, second) = two_requests(&pg, "Connection: keep-alive\r\n");
    assert!(first.contains("connection: keep-alive"), "{first}");
    assert!(second);
}

#[tokio::test]
async fn keep_alive_mode_close_closes_every_connection() {
    let o = origin::http();
    let pg = Poolgate::start(&config_with(
        "  http_keep_alives: close\n",
        &pools(o.port()),
    ));
    let (first, second) = two_requests(&pg, "Connection: keep-alive\r\n");
    assert!(first.contains("connection: close"), "{first}");
    assert!(!second);
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_server_keeps_serving() {
    let o = origin::http();
    let pg = Poolgate::start(&config_with("", &pools(o.port())));
    let reply = raw(pg.addr(), b"THIS IS NOT HTTP\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    let reply = raw(
        pg.addr(),
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    let desc = described(client().get(pg.url("/")).send().await.expect("send")).await;
    assert_eq!(desc["uri"], "/");
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let o = origin::http();
    let text = config_with("", &pools(o.port())).replace(
        "shutdown_timeout_sec: 1",
        "shutdown_timeout_sec: 3\npid_file: $DIR/poolgate.pid",
    );
    let mut pg = Poolgate::start(&text);
    let pid_file =
        std::fs::read_to_string(pg.dir().join("poolgate.pid")).expect("pid_file written");
    assert_eq!(pid_file.trim(), pg.pid().to_string());
    let url = pg.url("/slow/1500");
    let in_flight =
        tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) });
    // Wait until the origin has the request, then ask poolgate to stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while o.requests() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pg.signal("TERM");
    let status = in_flight.await.expect("join").expect("in-flight request");
    assert_eq!(status, 200);
    let exit = pg
        .wait_exit(Duration::from_secs(20))
        .expect("poolgate exits after SIGTERM");
    assert_eq!(exit.code(), Some(0));
}

#[tokio::test]
async fn sigterm_exits_as_soon_as_the_last_request_is_done_and_removes_the_pid_file() {
    let o = origin::http();
    // A long timeout: the process must not wait for it.
    let text = config_with("", &pools(o.port())).replace(
        "shutdown_timeout_sec: 1",
        "shutdown_timeout_sec: 60\npid_file: $DIR/poolgate.pid",
    );
    let mut pg = Poolgate::start(&text);
    let url = pg.url("/slow/1000");
    let in_flight =
        tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while o.requests() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pg.signal("TERM");
    assert_eq!(
        in_flight.await.expect("join").expect("in-flight request"),
        200
    );
    let exit = pg
        .wait_exit(Duration::from_secs(30))
        .expect("exits long before its 60 s shutdown timeout");
    assert_eq!(exit.code(), Some(0));
    assert!(!pg.dir().join("poolgate.pid").exists(), "pid file removed");
}
