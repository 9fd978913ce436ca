//! The TLS benchmark's client (`benches/tls.sh`): new TLS connections per second against one
//! HTTPS address, each carrying one `GET /` with `Connection: close`, `C` connections at a
//! time on a single-threaded runtime for `S` seconds.
//!
//! `full`: every handshake is a full one (the client keeps no session), the cost of a new
//! visitor. `resume`: each connection resumes a session of an earlier one (TLS 1.3 tickets or
//! TLS 1.2 session ids, whichever the server gives), as a returning browser does. The client
//! checks no certificate and no signature (loopback benchmark: its own cost should be small).
//!
//!   bench_tls_client <host:port> <connections> <secs> full|resume [count]
//!
//! With `count` it stops after that many connections (`benches/tls.sh`'s callgrind part counts
//! the instructions per handshake between two such runs).
//! Prints one line: `<connections per second> <resumed share> <errors>`.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Accepts any certificate and signature: the benchmark measures the server.
#[derive(Debug)]
struct AnyCertificate(Vec<SignatureScheme>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
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
        self.0.clone()
    }
}

#[derive(Default)]
struct Counts {
    started: AtomicU64,
    done: AtomicU64,
    resumed: AtomicU64,
    errors: AtomicU64,
}

/// One connection: handshake, one request, the whole answer.
async fn one(
    connector: &TlsConnector,
    addr: &str,
    name: &ServerName<'static>,
) -> Result<bool, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut tls = connector
        .connect(name.clone(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let resumed = matches!(
        tls.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::with_capacity(512);
    // A server may close without close_notify after a `Connection: close` answer.
    let _ = tls.read_to_end(&mut answer).await;
    match answer.starts_with(b"HTTP/1.1 200") {
        true => Ok(resumed),
        false => Err(format!(
            "answer: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(40)])
        )),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(connections), Some(secs), Some(mode)) = (
        args.get(1).cloned(),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
        args.get(3).and_then(|n| n.parse::<u64>().ok()),
        args.get(4).cloned(),
    ) else {
        eprintln!("usage: bench_tls_client <host:port> <connections> <secs> full|resume");
        std::process::exit(2);
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let mut config =
        match ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(builder) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(schemes)))
                .with_no_client_auth(),
            Err(e) => {
                eprintln!("TLS client: {e}");
                std::process::exit(1);
            }
        };
    config.resumption = match mode.as_str() {
        "full" => Resumption::disabled(),
        "resume" => Resumption::in_memory_sessions(4096),
        other => {
            eprintln!("mode `{other}`: full or resume");
            std::process::exit(2);
        }
    };
    let connector = TlsConnector::from(Arc::new(config));
    let Ok(name) = ServerName::try_from("localhost") else {
        std::process::exit(1);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let count = args
        .get(5)
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    runtime.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let (connector, addr, name, counts) = (
                    connector.clone(),
                    addr.clone(),
                    name.clone(),
                    counts.clone(),
                );
                tokio::spawn(async move {
                    let mut first_error = true;
                    while Instant::now() < end
                        && counts.done.load(Ordering::Relaxed)
                            + counts.errors.load(Ordering::Relaxed)
                            < count
                    {
                        // Counted before it starts, so no more than `count` are made.
                        if counts.started.fetch_add(1, Ordering::Relaxed) >= count {
                            break;
                        }
                        match one(&connector, &addr, &name).await {
                            Ok(resumed) => {
                                counts.done.fetch_add(1, Ordering::Relaxed);
                                counts
                                    .resumed
                                    .fetch_add(u64::from(resumed), Ordering::Relaxed);
                            }
                            Err(e) => {
                                if first_error {
                                    eprintln!("bench_tls_client: {e}");
                                    first_error = false;
                                }
                                counts.errors.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let done = counts.done.load(Ordering::Relaxed);
    let resumed = counts.resumed.load(Ordering::Relaxed);
    println!(
        "{:.0} {:.2} {}",
        done as f64 / elapsed,
        if done == 0 {
            0.0
        } else {
            resumed as f64 / done as f64
        },
        counts.errors.load(Ordering::Relaxed)
    );
}
