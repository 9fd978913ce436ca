//! pixl-server-web's `WebServer.http_code_response_headers` (headers by status code, on every
//! response: proxied, poolgate's own, the front door's refusals) and `http_clean_headers`
//! (response header values reduced to printable ASCII).

use crate::harness::{client, run_cli, Poolgate};
use crate::timeouts::Scripted;
use crate::{config_with, origin, raw};
use std::io::Write;
use std::net::TcpStream;

const CODE_HEADERS: &str = "  http_code_response_headers:\n    429: {Retry-After: 10}\n    404: {X-Message: \"And don't come back!\"}\n    \"400\": {X-Refused: \"yes\"}\n    200: {X-Fine: \"1\"}\n";

#[tokio::test]
async fn status_code_headers_go_on_every_response_with_that_status() {
    let o = origin::http();
    let pools = format!(
        "{{api: {{target_hostname: 127.0.0.1, target_port: {0}, uri_match: '^/status/'}}, limited: {{target_hostname: 127.0.0.1, target_port: {0}, uri_match: '^/limited', max_requests_per_sec: 1}}}}",
        o.port()
    );
    let pg = Poolgate::start(&config_with(CODE_HEADERS, &pools));
    let c = client();
    // A back end's 404 and poolgate's own 404 (no pool matches).
    for path in ["/status/404", "/no/pool/here"] {
        let resp = c.get(pg.url(path)).send().await.expect("send");
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(
            resp.headers()["x-message"],
            "And don't come back!",
            "{path}"
        );
        assert!(!resp.headers().contains_key("x-fine"), "{path}");
    }
    let ok = c.get(pg.url("/status/200")).send().await.expect("send");
    assert_eq!(ok.headers()["x-fine"], "1");
    assert!(!ok.headers().contains_key("x-message"));
    // poolgate's own 429 (the pool's rate limit): within a few tries one is refused.
    let mut refused = None;
    for _ in 0..20 {
        let resp = c.get(pg.url("/limited")).send().await.expect("send");
        if resp.status() == 429 {
            refused = Some(resp);
            break;
        }
    }
    let refused = refused.expect("the rate limit refuses one of 20 quick requests");
    assert_eq!(refused.headers()["retry-after"], "10");
    // The front door's raw refusal of a head without Host.
    let reply = raw(pg.addr(), b"GET / HTTP/1.1\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(
        reply.contains("X-Refused: yes") || reply.contains("x-refused: yes"),
        "{reply}"
    );
}

#[tokio::test]
async fn check_names_the_key_of_a_bad_status_code_or_header_and_no_longer_warns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    let write = |web: &str| {
        let text = format!(
            "WebServer:\n{web}PixlProxy:\n  pools:\n    api:\n      target_hostname: 127.0.0.1\n"
        );
        std::fs::write(&path, text).expect("write");
        run_cli(
            &["check", "--config", &path.display().to_string()],
            &[],
            None,
        )
    };
    let (code, out) = write(
        "  http_clean_headers: true\n  http_code_response_headers:\n    abc: {X-A: \"1\"}\n    429: {\"Bad Name\": \"x\", X-Ok: \"line\\nbreak\"}\n",
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("WebServer.http_code_response_headers.abc"),
        "{out}"
    );
    assert!(
        out.contains("WebServer.http_code_response_headers.429.Bad Name"),
        "{out}"
    );
    assert!(
        out.contains("WebServer.http_code_response_headers.429.X-Ok"),
        "{out}"
    );
    let (code, out) = write(CODE_HEADERS);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("http_code_response_headers"),
        "no warning: {out}"
    );
    let (code, out) = write("  http_clean_headers: true\n");
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("http_clean_headers"), "no warning: {out}");
}

/// A back end whose answer carries `X-Odd` with obs-text and a tab (bytes hyper and Pingora
/// let through, which strict clients refuse).
fn odd_back_end() -> Scripted {
    Scripted::start(|_, s| {
        let mut head =
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Odd: caf\xe9\tau lait\xff\r\n".to_vec();
        head.extend_from_slice(b"X-Plain: as is\r\n\r\nok");
        let _ = s.write_all(&head);
        true
    })
}

/// Raw GET through the pool named `pool`; the reply's bytes.
fn raw_bytes(addr: std::net::SocketAddr, pool: &str) -> Vec<u8> {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let req = format!("GET /x HTTP/1.1\r\nHost: a\r\nX-Proxy: {pool}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn pools(port: u16) -> String {
    format!(
        "{{stream: {{target_hostname: 127.0.0.1, target_port: {port}, x_proxy_only: true}}, buffered: {{target_hostname: 127.0.0.1, target_port: {port}, x_proxy_only: true, retries: 1}}}}"
    )
}

#[tokio::test]
async fn clean_headers_strips_what_is_not_printable_ascii_from_back_end_and_configured_values() {
    let back_end = odd_back_end();
    let web = "  http_clean_headers: true\n  http_response_headers: {X-Configured: \"caf\u{e9} cr\u{e8}me\"}\n";
    let pg = Poolgate::start(&config_with(web, &pools(back_end.port)));
    for pool in ["stream", "buffered"] {
        let reply = raw_bytes(pg.addr(), pool);
        let text = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with(b"HTTP/1.1 200"), "{pool}: {text}");
        assert!(contains(&reply, b"X-Odd: cafau lait\r\n"), "{pool}: {text}");
        assert!(contains(&reply, b"X-Plain: as is\r\n"), "{pool}: {text}");
        assert!(
            contains(&reply, b"X-Configured: caf crme\r\n"),
            "{pool}: {text}"
        );
        assert!(reply.ends_with(b"\r\n\r\nok"), "{pool}: {text}");
    }
}

#[tokio::test]
async fn without_clean_headers_the_values_pass_as_the_back_end_sent_them() {
    let back_end = odd_back_end();
    let pg = Poolgate::start(&config_with("", &pools(back_end.port)));
    for pool in ["stream", "buffered"] {
        let reply = raw_bytes(pg.addr(), pool);
        let text = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with(b"HTTP/1.1 200"), "{pool}: {text}");
        assert!(
            contains(&reply, b"X-Odd: caf\xe9\tau lait\xff\r\n"),
            "{pool}: {text}"
        );
    }
}
