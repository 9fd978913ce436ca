//! Client connections and their timeouts: `http_alt_ports`, `https_alt_ports`, `https_ca_file`,
//! `https_timeout`, `http_keep_alive_timeout`, `http_socket_prelim_timeout`,
//! `http_max_requests_per_connection`, `http_request_timeout`, and the front end's request
//! queue (`http_max_concurrent_requests`, `http_max_queue_length`, `http_max_queue_active`,
//! `http_queue_skip_uri_match`).

use crate::harness::{client, free_port, Poolgate};
use crate::{config_with, described, origin, tls};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn pools(port: u16) -> String {
    format!("{{default: {{target_hostname: 127.0.0.1, target_port: {port}}}}}")
}

/// Read one response (head and Content-Length body) off a kept-alive connection.
fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = s.read_exact(&mut body);
    head
}

/// Wait (at most 10 s) for the server to close `s`; how long it took.
fn closed_after(s: &mut TcpStream) -> Option<Duration> {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed())
            }
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn alt_ports_serve_exactly_like_the_main_port() {
    let o = origin::http();
    let (a, b) = (free_port(), free_port());
    let web = format!("  http_alt_ports: [{a}, {b}]\n");
    let pg = Poolgate::start(&config_with(&web, &pools(o.port())));
    for port in [pg.port, a, b] {
        let url = format!("http://127.0.0.1:{port}/alt");
        let desc = described(client().get(&url).send().await.expect("send")).await;
        assert_eq!(desc["uri"], "/alt", "port {port}");
    }
}

/// One request on a new connection, then how long the server took to close it once idle.
fn served_then_closed_after(pg: &Poolgate) -> Duration {
    let mut s = TcpStream::connect(pg.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    assert!(read_response(&mut s).starts_with("http/1.1 200"));
    closed_after(&mut s).expect("closed")
}

#[tokio::test]
async fn keep_alive_connections_close_after_http_keep_alive_timeout_not_http_timeout() {
    let o = origin::http();
    let web = "  http_timeout: 60\n  http_keep_alive_timeout: 1\n";
    let pg = Poolgate::start(&config_with(web, &pools(o.port())));
    let took = served_then_closed_after(&pg);
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[tokio::test]
async fn with_http_keep_alive_timeout_0_idle_connections_close_after_http_timeout() {
    let o = origin::http();
    let web = "  http_timeout: 1\n  http_keep_alive_timeout: 0\n";
    let pg = Poolgate::start(&config_with(web, &pools(o.port())));
    let took = served_then_closed_after(&pg);
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[tokio::test]
async fn a_new_socket_without_a_request_is_closed_after_the_preliminary_timeout() {
    let o = origin::http();
    let web = "  http_timeout: 60\n  http_socket_prelim_timeout: 1\n";
    let pg = Poolgate::start(&config_with(web, &pools(o.port())));
    // Silent, and half a head: both are hard-closed without an answer.
    let mut silent = TcpStream::connect(pg.addr()).expect("connect");
    let mut partial = TcpStream::connect(pg.addr()).expect("connect");
    partial.write_all(b"GET / HTTP/1.1\r\nHo").expect("write");
    for s in [&mut silent, &mut partial] {
        let mut got = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let started = Instant::now();
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        assert!(started.elapsed() < Duration::from_secs(8));
    }
    // A socket that sends its request in time is served, and its next request is not bound
    // by the preliminary timeout.
    let mut s = TcpStream::connect(pg.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("write");
        assert!(read_response(&mut s).starts_with("http/1.1 200"));
        std::thread::sleep(Duration::from_millis(1300));
    }
}

#[tokio::test]
async fn the_last_of_http_max_requests_per_connection_says_connection_close() {
    let o = origin::http();
    let web = "  http_max_requests_per_connection: 3\n";
    let pg = Poolgate::start(&config_with(web, &pools(o.port())));
    let mut s = TcpStream::connect(pg.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut heads = Vec::new();
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("write");
        heads.push(read_response(&mut s));
    }
    assert!(
        heads.iter().all(|h| h.starts_with("http/1.1 200")),
        "{heads:?}"
    );
    assert!(!heads[0].contains("connection: close"), "{heads:?}");
    assert!(!heads[1].contains("connection: close"), "{heads:?}");
    assert!(heads[2].contains("connection: close"), "{heads:?}");
    assert!(closed_after(&mut s).is_some());
    assert_eq!(
        o.connections(),
        1,
        "one back-end connection served all three"
    );
}

#[tokio::test]
async fn a_request_longer_than_http_request_timeout_gets_408() {
    let o = origin::http();
    let web = "  http_request_timeout: 1\n";
    let pg = Poolgate::start(&config_with(web, &pools(o.port())));
    let started = Instant::now();
    let resp = client()
        .get(pg.url("/slow/4000"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 408);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let desc = described(client().get(pg.url("/fast")).send().await.expect("send")).await;
    assert_eq!(desc["uri"], "/fast");
}

/// A TLS client that accepts any certificate and records the chain it was shown.
mod chain_client {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use std::sync::{Arc, Mutex};

    #[derive(Debug)]
    pub struct Recorder(pub Mutex<Vec<Vec<u8>>>);

    impl ServerCertVerifier for Recorder {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let mut chain = vec![end_entity.to_vec()];
            chain.extend(intermediates.iter().map(|c| c.to_vec()));
            *self.0.lock().expect("chain") = chain;
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    pub fn connector(recorder: Arc<Recorder>) -> tokio_rustls::TlsConnector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .dangerous()
            .with_custom_certificate_verifier(recorder)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

#[tokio::test]
async fn https_alt_ports_serve_the_certificate_with_the_ca_files_chain_and_idle_tls_sockets_close()
{
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let o = origin::http();
    let dir = tempfile::tempdir().expect("tempdir");
    let leaf = tls::self_signed();
    let (cert_file, key_file) = leaf.write(dir.path());
    let chain = tls::for_names(&["intermediate.test"]);
    let ca_file = dir.path().join("chain.pem");
    std::fs::write(&ca_file, &chain.cert_pem).expect("write chain");
    let alt = free_port();
    let web = format!(
        "  https: true\n  https_port: $HTTPS_PORT\n  https_alt_ports: [{alt}]\n  https_cert_file: '{}'\n  https_key_file: '{}'\n  https_ca_file: '{}'\n  https_timeout: 1\n  http_timeout: 60\n",
        cert_file.display(),
        key_file.display(),
        ca_file.display()
    );
    let pg = Poolgate::start(&config_with(&web, &pools(o.port())));
    let der = |pem: &str| {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("pem")
            .to_vec()
    };
    for port in [pg.https_port, alt] {
        let recorder = Arc::new(chain_client::Recorder(Mutex::new(Vec::new())));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut s = chain_client::connector(recorder.clone())
            .connect(name, tcp)
            .await
            .expect("handshake");
        let shown = recorder.0.lock().expect("chain").clone();
        assert_eq!(
            shown,
            vec![der(&leaf.cert_pem), der(&chain.cert_pem)],
            "port {port}"
        );
        s.write_all(b"GET /tls HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    // An idle TLS socket is closed after https_timeout (http_timeout is 60 s).
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", pg.https_port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let recorder = Arc::new(chain_client::Recorder(Mutex::new(Vec::new())));
    let mut s = chain_client::connector(recorder)
        .connect(name, tcp)
        .await
        .expect("handshake");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_http_max_concurrent_requests_wait_in_order_and_a_full_queue_answers_429() {
    let o = origin::http();
    let web = "  http_max_concurrent_requests: 1\n  http_max_queue_length: 1\n  http_queue_skip_uri_match: '^/(health|proxy-stats)'\n";
    let proxy = "  stats_uri_match: '^/proxy-stats'\n";
    let text =
        config_with(web, &pools(o.port())).replace("PixlProxy:\n", &format!("PixlProxy:\n{proxy}"));
    let pg = Poolgate::start(&text);
    let c = client();
    let first = tokio::spawn(c.get(pg.url("/slow/1500")).send());
    // The first is in progress before the second arrives.
    assert!(o.wait_until(Duration::from_secs(10), |o| o.requests() >= 1));
    let second = tokio::spawn(c.get(pg.url("/second")).send());
    let mut queued = false;
    for _ in 0..200 {
        let doc: serde_json::Value = c
            .get(pg.url("/proxy-stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        if doc["web"]["queue"]["pending"] == 1 {
            assert_eq!(
                doc["web"]["queue"]["running"], 2,
                "the slow request and this one: {doc}"
            );
            queued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(queued, "the second request never waited");
    // The queue is full: a third request is refused at once; a health check skips the queue.
    let third = c.get(pg.url("/third")).send().await.expect("third");
    assert_eq!(third.status(), 429);
    assert!(third
        .text()
        .await
        .unwrap_or_default()
        .contains("Queue is maxed out (1 pending reqs)"));
    let health = c.get(pg.url("/health")).send().await.expect("health");
    assert_eq!(health.status(), 200);
    assert_eq!(first.await.expect("join").expect("first").status(), 200);
    assert_eq!(second.await.expect("join").expect("second").status(), 200);
    let order: Vec<String> = o
        .described()
        .iter()
        .filter_map(|d| d["uri"].as_str().map(String::from))
        .collect();
    let pos = |uri: &str| order.iter().position(|u| u == uri);
    assert!(
        pos("/health") < pos("/second"),
        "the skipped request did not wait: {order:?}"
    );
    assert!(!order.contains(&"/third".to_string()));
    assert!(pg.wait_for_event_log(
        "Queue is maxed out (1 pending reqs), denying request from: 127.0.0.1"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_max_queue_active_refuses_at_once_instead_of_queueing() {
    let o = origin::http();
    let web = "  http_max_concurrent_requests: 4\n  http_max_queue_active: 1\n";
    let pg = Poolgate::start(&config_with(web, &pools(o.port())));
    let c = client();
    let first = tokio::spawn(c.get(pg.url("/slow/1500")).send());
    assert!(o.wait_until(Duration::from_secs(10), |o| o.requests() >= 1));
    let started = Instant::now();
    let second = c.get(pg.url("/second")).send().await.expect("second");
    assert_eq!(second.status(), 429);
    assert!(started.elapsed() < Duration::from_secs(1), "it waited");
    assert_eq!(first.await.expect("join").expect("first").status(), 200);
}
