//! HTTP/2: to clients over TLS (ALPN) and in clear (`http_h2c`), to back ends
//! (`target_http2`), and certificates chosen by SNI.

use crate::harness::{client, Poolgate};
use crate::{config_with, described, origin, tls};
use reqwest::Version;

fn pool(port: u16, extra: &str) -> String {
    format!("{{default: {{target_hostname: 127.0.0.1, target_port: {port}{extra}}}}}")
}

/// `WebServer` lines for HTTPS with `cert` as the default certificate, plus `extra`.
fn https_web(dir: &std::path::Path, cert: &tls::TestCert, extra: &str) -> String {
    let (cert_file, key_file) = cert.write(dir);
    format!(
        "  https: true\n  https_port: $HTTPS_PORT\n  https_cert_file: '{}'\n  https_key_file: '{}'\n{extra}",
        cert_file.display(),
        key_file.display()
    )
}

fn tls_client(roots: &[&tls::TestCert], https_port: u16) -> reqwest::Client {
    let mut b = reqwest::Client::builder().tcp_user_timeout(None);
    for root in roots {
        b = b.add_root_certificate(root.reqwest_cert());
    }
    for name in ["api.test", "x.wild.test"] {
        b = b.resolve(name, ([127, 0, 0, 1], https_port).into());
    }
    b.build().expect("client")
}

#[tokio::test]
async fn clients_get_http2_over_tls_by_alpn_unless_turned_off() {
    let o = origin::http();
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = tls::self_signed();
    let web = https_web(dir.path(), &cert, "");
    let pg = Poolgate::start(&config_with(&web, &pool(o.port(), "")));
    let c = tls_client(&[&cert], pg.https_port);
    let url = format!("https://localhost:{}/h2?x=1", pg.https_port);
    let resp = c.get(&url).send().await.expect("h2 request");
    assert_eq!(resp.version(), Version::HTTP_2);
    let desc = described(resp).await;
    assert_eq!(desc["uri"], "/h2?x=1");
    assert_eq!(
        desc["version"], "HTTP/1.1",
        "the back end still gets HTTP/1.1"
    );
    // Several streams on the one connection at once.
    let all =
        futures_util::future::join_all((0..8).map(|i| c.get(format!("{url}&i={i}")).send())).await;
    assert!(all
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.status() == 200)));
    let web = https_web(dir.path(), &cert, "  https_http2: false\n");
    let h1 = Poolgate::start(&config_with(&web, &pool(o.port(), "")));
    let url = format!("https://localhost:{}/h1", h1.https_port);
    let resp = tls_client(&[&cert], h1.https_port)
        .get(&url)
        .send()
        .await
        .expect("h1");
    assert_eq!(resp.version(), Version::HTTP_11);
}

#[tokio::test]
async fn cleartext_http2_with_prior_knowledge_when_enabled() {
    let o = origin::http();
    let pg = Poolgate::start(&config_with("  http_h2c: true\n", &pool(o.port(), "")));
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .tcp_user_timeout(None)
        .build()
        .expect("client");
    let resp = h2.get(pg.url("/h2c")).send().await.expect("h2c request");
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(described(resp).await["uri"], "/h2c");
    // HTTP/1.1 clients keep working on the same port.
    let resp = client().get(pg.url("/h1")).send().await.expect("h1");
    assert_eq!(resp.version(), Version::HTTP_11);
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn back_ends_get_http2_when_the_pool_asks_for_it() {
    let o = origin::h2c();
    let pg = Poolgate::start(&config_with("", &pool(o.port(), ", target_http2: true")));
    for i in 0..3 {
        let resp = client()
            .post(pg.url(&format!("/up/{i}")))
            .body("abc")
            .send()
            .await
            .expect("send");
        let desc = described(resp).await;
        assert_eq!(desc["version"], "HTTP/2.0");
        assert_eq!(desc["body_len"], 3);
    }
    assert_eq!(o.connections(), 1, "one multiplexed connection, reused");
}

#[tokio::test]
async fn certificates_are_chosen_by_the_name_the_client_asks_for() {
    let o = origin::http();
    let dir = tempfile::tempdir().expect("tempdir");
    let default = tls::self_signed();
    let api = tls::for_names(&["api.test"]);
    let wild = tls::for_names(&["*.wild.test"]);
    let mut sni = String::from("  https_sni_certs:\n");
    for (name, cert, sub) in [("api.test", &api, "api"), ("'*.wild.test'", &wild, "wild")] {
        let d = dir.path().join(sub);
        std::fs::create_dir(&d).expect("mkdir");
        let (c, k) = cert.write(&d);
        sni += &format!(
            "    {name}: {{cert_file: '{}', key_file: '{}'}}\n",
            c.display(),
            k.display()
        );
    }
    let web = https_web(dir.path(), &default, &sni);
    let pg = Poolgate::start(&config_with(&web, &pool(o.port(), "")));
    let port = pg.https_port;
    // Each client trusts only one certificate: the handshake succeeds only if poolgate
    // presented exactly that one.
    for (host, cert) in [
        ("localhost", &default),
        ("api.test", &api),
        ("x.wild.test", &wild),
    ] {
        let url = format!("https://{host}:{port}/sni");
        let resp = tls_client(&[cert], port).get(&url).send().await;
        assert_eq!(
            resp.map(|r| r.status()).ok(),
            Some(reqwest::StatusCode::OK),
            "{host}"
        );
    }
    let url = format!("https://api.test:{port}/sni");
    assert!(tls_client(&[&default], port)
        .get(&url)
        .send()
        .await
        .is_err());
}
