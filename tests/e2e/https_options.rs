//! `https_force`, `https_header_detect` and the opt-in `secure_headers`.

use crate::harness::{client, Poolgate};
use crate::{config_with, described, origin, seen, tls};

fn pool(port: u16) -> String {
    format!("{{default: {{target_hostname: 127.0.0.1, target_port: {port}}}}}")
}

fn https_web(dir: &std::path::Path, extra: &str) -> (String, tls::TestCert) {
    let cert = tls::self_signed();
    let (cert_file, key_file) = cert.write(dir);
    let web = format!(
        "  https: true\n  https_port: $HTTPS_PORT\n  https_cert_file: '{}'\n  https_key_file: '{}'\n{extra}",
        cert_file.display(),
        key_file.display()
    );
    (web, cert)
}

#[tokio::test]
async fn https_force_redirects_plain_http_unless_a_load_balancer_says_https() {
    let o = origin::http();
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "  https_force: true\n  https_header_detect: {X-Forwarded-Proto: '^https$'}\n";
    let (web, cert) = https_web(dir.path(), extra);
    let pg = Poolgate::start(&config_with(&web, &pool(o.port())));
    let resp = client().get(pg.url("/a?b=1")).send().await.expect("send");
    assert_eq!(resp.status(), 301);
    let location = resp.headers()["location"].to_str().expect("location");
    assert_eq!(
        location,
        format!("https://127.0.0.1:{}/a?b=1", pg.https_port)
    );
    assert_eq!(o.requests(), 0, "nothing reached the back end");
    // Behind a TLS-terminating load balancer: served, and the back end is told it was HTTPS.
    let resp = client()
        .get(pg.url("/lb"))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .expect("send");
    let desc = described(resp).await;
    assert_eq!(seen(&desc, "x-forwarded-proto"), Some("https"));
    // Over HTTPS itself: served.
    let tls_client = reqwest::Client::builder()
        .add_root_certificate(cert.reqwest_cert())
        .build()
        .expect("client");
    let url = format!("https://localhost:{}/secure", pg.https_port);
    assert_eq!(
        tls_client.get(&url).send().await.expect("https").status(),
        200
    );
}

#[tokio::test]
async fn secure_headers_are_added_when_on_and_absent_when_off() {
    let o = origin::http();
    let off = Poolgate::start(&config_with("", &pool(o.port())));
    let resp = client().get(off.url("/x")).send().await.expect("send");
    for name in [
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "strict-transport-security",
    ] {
        assert!(
            resp.headers().get(name).is_none(),
            "{name} without secure_headers"
        );
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "  secure_headers: true\n  csp_allowed: {script: [cdn.example.com], img: ['*.example.org']}\n";
    let (web, cert) = https_web(dir.path(), extra);
    let on = Poolgate::start(&config_with(&web, &pool(o.port())));
    let resp = client().get(on.url("/x")).send().await.expect("send");
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "SAMEORIGIN");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("script-src 'self' cdn.example.com"), "{csp}");
    assert!(csp.contains("img-src 'self' data: *.example.org"), "{csp}");
    assert!(
        h.get("strict-transport-security").is_none(),
        "no HSTS over plain HTTP"
    );
    let tls_client = reqwest::Client::builder()
        .add_root_certificate(cert.reqwest_cert())
        .build()
        .expect("client");
    let url = format!("https://localhost:{}/x", on.https_port);
    let resp = tls_client.get(&url).send().await.expect("https");
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test]
async fn a_request_a_load_balancer_calls_https_counts_as_https_everywhere() {
    let o = origin::http();
    let web = "  https_header_detect: {X-Forwarded-Proto: '^https$'}\n  secure_headers: true\n  http_log_requests: true\n";
    let pools = format!(
        "{{api: {{uri_match: '^/api', target_hostname: 127.0.0.1, target_port: {}}}}}",
        o.port()
    );
    let pg = Poolgate::start(&config_with(web, &pools));
    let c = client();
    let proxied = c
        .get(pg.url("/api/x"))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .expect("send");
    assert!(proxied.headers().contains_key("strict-transport-security"));
    let desc = described(proxied).await;
    assert_eq!(seen(&desc, "x-forwarded-proto"), Some("https"));
    // An answer poolgate writes itself (no pool takes `/other`) follows the same decision.
    let own = c
        .get(pg.url("/other"))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .expect("send");
    assert_eq!(own.status(), 404);
    assert!(own.headers().contains_key("strict-transport-security"));
    let plain = c.get(pg.url("/other")).send().await.expect("send");
    assert!(!plain.headers().contains_key("strict-transport-security"));
    // And the web server's request log says so.
    let line = "][WebServer][transaction][HTTP 200 OK][/api/x][";
    assert!(pg.wait_for_event_log(line), "no request line");
    let log = std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default();
    let entry = log.lines().find(|l| l.contains(line)).unwrap_or_default();
    assert!(entry.contains("\"proto\":\"https\""), "{entry}");
}
