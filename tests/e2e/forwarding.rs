//! PixlProxy pool properties that shape forwarding: target, keep-alives, headers, timeouts,
//! HTTPS back ends, failures, and byte-exact streaming of bodies.

use crate::harness::{client, free_port, Poolgate};
use crate::origin::{self, checksum, pattern_byte};
use crate::{config, config_with, described, seen, tls};
use futures_util::StreamExt;

fn pool(origin_port: u16, extra: &str) -> String {
    config(&format!(
        "{{default: {{target_hostname: 127.0.0.1, target_port: {origin_port} {extra}}}}}"
    ))
}

#[tokio::test]
async fn every_method_is_forwarded_with_its_body() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), ""));
    let c = client();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let body = format!("body of {method}");
        let desc = described(
            c.request(m, pg.url("/m?x=1"))
                .body(body.clone())
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(desc["method"], method);
        assert_eq!(desc["uri"], "/m?x=1");
        assert_eq!(desc["body_len"], body.len() as u64);
        assert_eq!(desc["body_sum"], checksum(body.as_bytes()));
    }
    let head = c.head(pg.url("/m")).send().await.expect("head");
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.expect("head body").is_empty());
}

#[tokio::test]
async fn large_bodies_stream_byte_exact_in_both_directions_with_bounded_memory() {
    const UP: usize = 32 * 1024 * 1024;
    const DOWN: u64 = 96 * 1024 * 1024;
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), ""));
    // Moving ~160 MiB through a debug build on a loaded 2-core machine can take a while; the
    // client only gives up if nothing is left to wait for.
    // reqwest aborts a socket whose data stays unacknowledged for 30 s (TCP_USER_TIMEOUT); a
    // starved debug build can hold a window shut that long, so only the overall timeout applies.
    let c = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .tcp_user_timeout(None)
        .build()
        .expect("client");

    // Upload with Content-Length, echoed back (chunked) byte for byte.
    let up: Vec<u8> = (0..UP as u64).map(pattern_byte).collect();
    let resp = c
        .post(pg.url("/echo/body"))
        .body(up.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 200);
    let back = resp.bytes().await.expect("echo");
    assert!(
        back == up,
        "echoed body differs ({} vs {} bytes)",
        back.len(),
        up.len()
    );

    // Chunked upload (a stream of unknown length).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        up.chunks(1 << 20).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let desc = described(
        c.put(pg.url("/describe"))
            .body(body)
            .send()
            .await
            .expect("chunked"),
    )
    .await;
    assert_eq!(desc["body_len"], UP as u64);
    assert_eq!(desc["body_sum"], checksum(&up));
    drop(up);

    // Download larger than any buffer, verified as it streams.
    let resp = c
        .get(pg.url(&format!("/large/{DOWN}")))
        .send()
        .await
        .expect("download");
    let mut stream = resp.bytes_stream();
    let mut at = 0u64;
    while let Some(chunk) = stream.next().await {
        for b in chunk.expect("chunk").iter() {
            assert_eq!(*b, pattern_byte(at), "byte {at} differs");
            at += 1;
        }
    }
    assert_eq!(at, DOWN);

    // Bodies streamed, not buffered: peak memory stays far below the bytes moved.
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", pg.pid())).expect("proc status");
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    assert!(
        peak_kb < 64 * 1024,
        "poolgate peak RSS {peak_kb} kB after moving ~160 MiB"
    );
}

#[tokio::test]
async fn keep_alive_back_end_connections_are_reused() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), ""));
    let c = client();
    for _ in 0..20 {
        described(c.get(pg.url("/")).send().await.expect("send")).await;
    }
    assert_eq!(o.requests(), 20);
    assert_eq!(
        o.connections(),
        1,
        "20 sequential requests should share one back-end connection"
    );
}

#[tokio::test]
async fn use_keep_alives_false_opens_a_connection_per_request() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), ", use_keep_alives: false"));
    let c = client();
    for _ in 0..5 {
        let desc = described(c.get(pg.url("/")).send().await.expect("send")).await;
        assert_eq!(seen(&desc, "connection"), Some("close"));
    }
    assert_eq!(o.connections(), 5);
}

#[tokio::test]
async fn preserve_host_passes_the_client_host_or_sends_the_target_host() {
    let o = origin::http();
    let kept = Poolgate::start(&pool(o.port(), ""));
    let desc = described(
        client()
            .get(kept.url("/"))
            .header("Host", "front.example")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(seen(&desc, "host"), Some("front.example"));

    let replaced = Poolgate::start(&pool(o.port(), ", preserve_host: false"));
    let desc = described(
        client()
            .get(replaced.url("/"))
            .header("Host", "front.example")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        seen(&desc, "host"),
        Some(format!("127.0.0.1:{}", o.port()).as_str())
    );
}

#[tokio::test]
async fn x_forwarded_for_is_appended_unless_disabled() {
    let o = origin::http();
    let on = Poolgate::start(&pool(o.port(), ""));
    let desc = described(
        client()
            .get(on.url("/"))
            .header("X-Forwarded-For", "203.0.113.9")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        seen(&desc, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    let desc = described(client().get(on.url("/")).send().await.expect("send")).await;
    assert_eq!(seen(&desc, "x-forwarded-for"), Some("127.0.0.1"));

    let off = Poolgate::start(&pool(o.port(), ", append_to_x_forwarded_for: false"));
    let desc = described(client().get(off.url("/")).send().await.expect("send")).await;
    assert_eq!(seen(&desc, "x-forwarded-for"), None);
    assert_eq!(
        seen(&desc, "x-forwarded-proto"),
        None,
        "plain HTTP clients get no X-Forwarded-Proto"
    );
}

#[tokio::test]
async fn user_agent_and_basic_auth_are_added() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(
        o.port(),
        ", http_user_agent: 'Pool Agent 1.0', http_basic_auth: 'admin:12345'",
    ));
    let c = reqwest::Client::builder().build().expect("client");
    let desc = described(c.get(pg.url("/")).send().await.expect("send")).await;
    assert_eq!(seen(&desc, "user-agent"), Some("Pool Agent 1.0"));
    assert_eq!(seen(&desc, "authorization"), Some("Basic YWRtaW46MTIzNDU="));
    let desc = described(
        c.get(pg.url("/"))
            .header("User-Agent", "curl/8")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        seen(&desc, "user-agent"),
        Some("curl/8"),
        "the client's own User-Agent wins"
    );
}

#[tokio::test]
async fn headers_are_inserted_and_scrubbed_both_ways() {
    let o = origin::http();
    let extra = ", insert_request_headers: {Via: 'PG 1.0', X-Env: prod}, insert_response_headers: {X-Served-By: pool-a}, \
                 scrub_request_headers: '^(x-proxy|x-secret-\\w+)$', scrub_response_headers: '^(x-origin-secret)$'";
    let pg = Poolgate::start(&pool(o.port(), extra));
    let c = client();
    let req = c
        .get(pg.url("/"))
        .header("X-Secret-Token", "t")
        .header("X-Proxy", "default")
        .header("X-Env", "dev");
    let desc = described(req.send().await.expect("send")).await;
    assert_eq!(seen(&desc, "via"), Some("PG 1.0"));
    assert_eq!(
        seen(&desc, "x-env"),
        Some("prod"),
        "inserted headers replace the client's"
    );
    assert_eq!(seen(&desc, "x-secret-token"), None);
    assert_eq!(seen(&desc, "x-proxy"), None);
    let resp = c.get(pg.url("/server-header")).send().await.expect("send");
    assert_eq!(resp.headers()["x-served-by"], "pool-a");
    assert!(resp.headers().get("x-origin-secret").is_none());
}

#[tokio::test]
async fn default_scrub_removes_x_proxy_headers() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), ""));
    let req = client()
        .get(pg.url("/"))
        .header("X-Proxy", "default")
        .header("X-Proxy-Queue", "1");
    let desc = described(req.send().await.expect("send")).await;
    assert_eq!(seen(&desc, "x-proxy"), None);
    assert_eq!(seen(&desc, "x-proxy-queue"), None);
}

#[tokio::test]
async fn global_response_headers_and_server_signature() {
    let o = origin::http();
    let web = "  http_server_signature: 'poolgate-test'\n  http_response_headers: {Via: 'poolgate 1.0'}\n";
    let pools = format!(
        "{{api: {{target_hostname: 127.0.0.1, target_port: {}, uri_match: '^/'}}}}",
        o.port()
    );
    let pg = Poolgate::start(&config_with(web, &pools));
    let c = client();
    let resp = c.get(pg.url("/")).send().await.expect("send");
    assert_eq!(resp.headers()["via"], "poolgate 1.0");
    assert_eq!(
        resp.headers()["server"],
        "poolgate-test",
        "back end sent no Server header"
    );
    let resp = c.get(pg.url("/server-header")).send().await.expect("send");
    assert_eq!(
        resp.headers()["server"],
        "OriginServer/1",
        "the back end's Server header is kept"
    );
    let resp = c.get(pg.url("/server-header")).send().await.expect("send");
    assert_eq!(resp.headers()["via"], "poolgate 1.0");
    let unrouted = Poolgate::start(&config_with(web, "{}"));
    let resp = c.get(unrouted.url("/")).send().await.expect("send");
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.headers()["via"],
        "poolgate 1.0",
        "proxy-made responses get them too"
    );
}

#[tokio::test]
async fn slow_back_end_past_http_timeout_ms_is_504() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), ", http_timeout_ms: 300"));
    let c = client();
    let resp = c.get(pg.url("/slow/3000")).send().await.expect("send");
    assert_eq!(resp.status(), 504);
    assert_eq!(
        resp.headers()["connection"],
        "close",
        "failed requests close the client connection"
    );
    assert!(resp
        .text()
        .await
        .expect("body")
        .contains("did not answer in time"));
    let resp = c.get(pg.url("/slow/10")).send().await.expect("send");
    assert_eq!(resp.status(), 200, "a fast answer within the limit passes");
    assert!(pg.wait_for_log("Proxy Request Error"), "log:\n{}", pg.log());
}

#[tokio::test]
async fn refused_back_end_is_502_with_a_log_line() {
    let dead = free_port();
    let pg = Poolgate::start(&pool(dead, ""));
    let resp = client().get(pg.url("/x")).send().await.expect("send");
    assert_eq!(resp.status(), 502);
    assert!(resp.text().await.expect("body").contains("502 Bad Gateway"));
    assert!(
        pg.wait_for_log(&format!("127.0.0.1:{dead}/x")),
        "log:\n{}",
        pg.log()
    );
    let log = pg.log();
    assert_eq!(
        log.matches("Proxy Request Error").count(),
        1,
        "one line per failure:\n{log}"
    );
    assert!(
        !log.contains("Fail to proxy"),
        "no second line from Pingora:\n{log}"
    );
    // Still serving after the failure.
    assert_eq!(
        client()
            .get(pg.url("/y"))
            .send()
            .await
            .expect("send")
            .status(),
        502
    );
}

#[tokio::test]
async fn back_end_reset_is_502() {
    let o = origin::resetting();
    let pg = Poolgate::start(&pool(o.port(), ""));
    let resp = client()
        .post(pg.url("/x"))
        .body("data")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 502);
    assert!(pg.wait_for_log("Proxy Request Error"), "log:\n{}", pg.log());
}

#[tokio::test]
async fn unresolvable_target_hostname_is_502_not_a_crash() {
    let pg = Poolgate::start(&config(
        "{default: {target_hostname: no-such-host.invalid, target_port: 80}}",
    ));
    let resp = client().get(pg.url("/")).send().await.expect("send");
    assert_eq!(resp.status(), 502);
    assert!(
        pg.wait_for_log("DNS lookup of no-such-host.invalid failed"),
        "log:\n{}",
        pg.log()
    );
}

#[tokio::test]
async fn target_hostname_is_resolved_and_cached() {
    let o = origin::http();
    let pg = Poolgate::start(&config(&format!(
        "{{default: {{target_hostname: localhost, target_port: {}, cache_dns_sec: 60}}}}\ndebug_level: 5",
        o.port()
    )));
    for _ in 0..3 {
        described(client().get(pg.url("/")).send().await.expect("send")).await;
    }
    assert_eq!(o.requests(), 3);
    assert!(
        pg.wait_for_log("[default] Proxy Request Completed: GET http://localhost:"),
        "debug_level 5 logs each request:\n{}",
        pg.log()
    );
}

#[tokio::test]
async fn https_back_end_with_and_without_certificate_validation() {
    let cert = tls::self_signed();
    let o = origin::start(Some(cert.acceptor()));
    let target = format!(
        "target_protocol: https, target_hostname: localhost, target_port: {}",
        o.port()
    );
    let lax = Poolgate::start(&format!(
        "{}  validate_ssl_certs: false\n",
        config(&format!("{{default: {{{target}}}}}"))
    ));
    let desc = described(client().get(lax.url("/tls")).send().await.expect("send")).await;
    assert_eq!(desc["uri"], "/tls");

    let strict = Poolgate::start(&config(&format!("{{default: {{{target}}}}}")));
    let resp = client().get(strict.url("/tls")).send().await.expect("send");
    assert_eq!(
        resp.status(),
        502,
        "a self-signed back end fails validation"
    );
}

#[tokio::test]
async fn back_end_statuses_bodies_and_redirects_pass_through_unchanged() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), ""));
    let c = client();
    let resp = c.get(pg.url("/status/503")).send().await.expect("send");
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.text().await.expect("body"), "status 503");
    let resp = c.get(pg.url("/redirect/2")).send().await.expect("send");
    assert_eq!(
        resp.status(),
        302,
        "redirects reach the client unless follow_redirects is set"
    );
    assert_eq!(resp.headers()["location"], "/redirect/1");
    let resp = c.get(pg.url("/fail/1")).send().await.expect("send");
    assert_eq!(
        resp.status(),
        500,
        "a failing back end's own status reaches the client"
    );
    assert_eq!(o.requests(), 3, "no retries without `retries`");
}
