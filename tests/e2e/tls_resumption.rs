//! TLS session resumption on the HTTPS listener (`https_session_resumption`,
//! `https_ticket_key_file`): a returning client resumes (TLS 1.3 tickets, TLS 1.2 too), the
//! setting turns it off, and processes sharing a ticket key file (as the two processes of a
//! zero-downtime reload do) accept each other's tickets.

use crate::harness::{free_port, run_cli, Poolgate};
use crate::{config_with, origin, tls};
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// The HTTPS keys of a listener with `cert` (written into `dir`), plus `extra` keys.
fn https_web(dir: &Path, cert: &tls::TestCert, extra: &str) -> String {
    let sub = dir.join(format!("cert-{}", free_port()));
    std::fs::create_dir_all(&sub).expect("cert dir");
    let (cert_file, key_file) = cert.write(&sub);
    format!(
        "  https: true\n  https_port: $HTTPS_PORT\n  https_cert_file: '{}'\n  https_key_file: '{}'\n{extra}",
        cert_file.display(),
        key_file.display()
    )
}

fn pool(port: u16) -> String {
    format!("{{default: {{target_hostname: 127.0.0.1, target_port: {port}}}}}")
}

/// A client that trusts `cert` and keeps the sessions it is given; `tls12`: TLS 1.2 only.
fn client_config(cert: &tls::TestCert, tls12: bool) -> Arc<ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).expect("cert pem"))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match tls12 {
        true => &[&rustls::version::TLS12],
        false => &[&rustls::version::TLS13],
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::in_memory_sessions(64);
    Arc::new(config)
}

/// One HTTPS request on a new connection to `port`: whether its handshake was a resumed one.
async fn resumed(config: &Arc<ClientConfig>, port: u16) -> bool {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let kind = tls.get_ref().1.handshake_kind();
    tls.write_all(b"GET /r HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "answer: {}",
        String::from_utf8_lossy(&answer)
    );
    kind == Some(HandshakeKind::Resumed)
}

#[tokio::test]
async fn a_returning_client_resumes_its_tls_session_by_default() {
    let o = origin::http();
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = tls::self_signed();
    let pg = Poolgate::start(&config_with(
        &https_web(dir.path(), &cert, ""),
        &pool(o.port()),
    ));
    for tls12 in [false, true] {
        let client = client_config(&cert, tls12);
        assert!(!resumed(&client, pg.https_port).await, "first visit: full");
        assert!(
            resumed(&client, pg.https_port).await,
            "second visit resumed (TLS 1.2 only: {tls12})"
        );
    }
    // The tickets' secret: created at first start, readable by its owner only.
    let key_file = pg.dir().join("poolgate-tls-tickets.key");
    let meta = std::fs::metadata(&key_file).expect("ticket key file");
    assert_eq!(meta.len(), 32);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn https_session_resumption_false_makes_every_handshake_a_full_one() {
    let o = origin::http();
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = tls::self_signed();
    let extra = "  https_session_resumption: false\n";
    let pg = Poolgate::start(&config_with(
        &https_web(dir.path(), &cert, extra),
        &pool(o.port()),
    ));
    for tls12 in [false, true] {
        let client = client_config(&cert, tls12);
        for _ in 0..3 {
            assert!(!resumed(&client, pg.https_port).await, "never resumed");
        }
    }
    assert!(!pg.dir().join("poolgate-tls-tickets.key").exists());
}

#[tokio::test]
async fn processes_sharing_a_ticket_key_file_accept_each_other_s_tickets() {
    let o = origin::http();
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = tls::self_signed();
    let shared = dir.path().join("tickets.key");
    let with_file = |file: &Path| {
        let extra = format!("  https_ticket_key_file: '{}'\n", file.display());
        config_with(&https_web(dir.path(), &cert, &extra), &pool(o.port()))
    };
    let client = client_config(&cert, false);
    let first = Poolgate::start(&with_file(&shared));
    assert!(!resumed(&client, first.https_port).await);
    drop(first);
    // A new process on the same file (as after a reload) resumes the old one's sessions.
    let second = Poolgate::start(&with_file(&shared));
    assert!(
        resumed(&client, second.https_port).await,
        "a ticket of the first process"
    );
    // One with a secret of its own does not.
    let other = Poolgate::start(&with_file(&dir.path().join("other.key")));
    let fresh = client_config(&cert, false);
    assert!(!resumed(&fresh, second.https_port).await);
    assert!(
        !resumed(&fresh, other.https_port).await,
        "a ticket of another secret"
    );
    // A secret too short to derive keys from stops the start with the key's name.
    let short = dir.path().join("short.key");
    std::fs::write(&short, b"short").expect("write");
    let text = with_file(&short)
        .replace("$PORT", &free_port().to_string())
        .replace("$HTTPS_PORT", &free_port().to_string());
    let path = dir.path().join("short.yaml");
    std::fs::write(&path, text).expect("config");
    let (code, out) = run_cli(
        &["serve", "--config", &path.display().to_string()],
        &[],
        Some(dir.path()),
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("WebServer.https_ticket_key_file") && out.contains("at least 32"),
        "{out}"
    );
}
