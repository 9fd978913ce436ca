//! The HTTPS listener's certificates: `https_cert_file`/`https_key_file` (with the chain of
//! `https_ca_file`) for every name, plus
//! `https_sni_certs` chosen by the name the client asks for (SNI), exact names before
//! `*.domain` wildcards. Loaded once at start, so a bad file stops the start with its name
//! (Pingora's own loader would panic inside the listener instead). The TLS configuration is
//! built here, not by Pingora's `TlsSettings`, for session resumption
//! (`https_session_resumption`): tickets whose keys the processes of a reload share
//! (`tickets.rs`) and a cache of sessions for clients without tickets.

use super::tickets::TicketKeys;
use super::TlsListener;
use pingora::listeners::tls::Acceptor;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache};
use rustls::ServerConfig;
use std::collections::HashMap;
use std::sync::Arc;

/// Sessions kept for resumption by clients that take no tickets (TLS 1.2 session ids).
const SESSION_CACHE_SIZE: usize = 1024;

/// A certificate or key that cannot be used, with the config key that names it.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {why}")]
pub(crate) struct CertificateError {
    /// `WebServer.https_cert_file / https_key_file` or `WebServer.https_sni_certs.<name>`.
    key: String,
    why: String,
}

/// Picks a certificate per handshake; a lookup in a map, no I/O.
#[derive(Debug)]
struct SniCertificates {
    default: Arc<CertifiedKey>,
    /// Lower-case host name, or `*.domain` -> certificate.
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl SniCertificates {
    /// Load every certificate of the listener.
    fn load(listener: &TlsListener) -> Result<Self, CertificateError> {
        let chain = (!listener.ca_file.is_empty()).then_some(listener.ca_file.as_str());
        let default = load_pair(&listener.cert_file, &listener.key_file, chain).map_err(|why| {
            CertificateError {
                key: match why.starts_with("chain") {
                    true => "WebServer.https_ca_file".into(),
                    false => "WebServer.https_cert_file / https_key_file".into(),
                },
                why,
            }
        })?;
        let mut by_name = HashMap::new();
        for (name, cert_file, key_file) in &listener.sni {
            let key = load_pair(cert_file, key_file, None).map_err(|why| CertificateError {
                key: format!("WebServer.https_sni_certs.{name}"),
                why,
            })?;
            by_name.insert(name.to_ascii_lowercase(), key);
        }
        Ok(SniCertificates {
            default: Arc::new(default),
            by_name: by_name.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
        })
    }

    /// The certificate for a requested server name.
    fn select(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(key) = self.by_name.get(&name) {
            return key.clone();
        }
        let wildcard = name.split_once('.').map(|(_, rest)| format!("*.{rest}"));
        wildcard
            .and_then(|w| self.by_name.get(&w))
            .unwrap_or(&self.default)
            .clone()
    }
}

impl ResolvesServerCert for SniCertificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.select(hello.server_name()))
    }
}

/// The listener's TLS acceptor: TLS 1.2 and 1.3, the certificates above, with `https_http2`
/// ALPN `h2` before `http/1.1`, and resumption unless `https_session_resumption` is off.
pub(super) fn acceptor(listener: &TlsListener) -> Result<Acceptor, CertificateError> {
    let certs = SniCertificates::load(listener)?;
    let provider = Arc::new(server_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| CertificateError {
            key: "WebServer.https".into(),
            why: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(certs));
    config.ignore_client_order = true;
    if listener.http2 {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    match &listener.resumption {
        Some(key_file) => {
            let keys = TicketKeys::from_file(key_file).map_err(|why| CertificateError {
                key: "WebServer.https_ticket_key_file".into(),
                why,
            })?;
            config.ticketer = Arc::new(keys);
            config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        }
        None => {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
    }
    Ok(Acceptor::from_server_config(Arc::new(config)))
}

/// The cryptography of the HTTPS listener's handshakes: aws-lc-rs (fewer instructions per
/// handshake than ring, most of all for RSA signatures; see README "Why aws-lc-rs"), its
/// AES-128 suites first: their SHA-256 key schedule costs less than SHA-384's, and the
/// server's order decides (`ignore_client_order`).
fn server_provider() -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let rank = |suite: &rustls::SupportedCipherSuite| match suite.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
        _ => 4,
    };
    // A stable sort: the provider's order among equals.
    provider.cipher_suites.sort_by_key(rank);
    provider
}

/// A certificate chain and its key; `chain_file` (`https_ca_file`) adds the intermediate
/// certificates sent after the certificate's own file.
fn load_pair(
    cert_file: &str,
    key_file: &str,
    chain_file: Option<&str>,
) -> Result<CertifiedKey, String> {
    pingora::tls::install_default_crypto_provider();
    let (mut certs, key) = pingora::tls::load_certs_and_key_files(cert_file, key_file)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!("no certificate in `{cert_file}` or no private key in `{key_file}`")
        })?;
    if let Some(chain_file) = chain_file {
        // Pingora reads certificates only together with a key: the listener's own key file
        // is given and its key ignored.
        let (chain, _) = pingora::tls::load_certs_and_key_files(chain_file, key_file)
            .map_err(|e| format!("chain `{chain_file}`: {e}"))?
            .ok_or_else(|| format!("chain: no certificate in `{chain_file}`"))?;
        certs.extend(chain);
    }
    let provider = server_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("private key in `{key_file}`: {e}"))?;
    Ok(CertifiedKey::new(certs, signing_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_cert(dir: &std::path::Path, name: &str) -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let c = dir.join(format!("{name}.crt"));
        let k = dir.join(format!("{name}.key"));
        std::fs::write(&c, cert.cert.pem()).unwrap();
        std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
        (c.display().to_string(), k.display().to_string())
    }

    #[test]
    fn exact_names_then_wildcards_then_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let (dc, dk) = write_cert(dir.path(), "default.test");
        let (ac, ak) = write_cert(dir.path(), "a.test");
        let (wc, wk) = write_cert(dir.path(), "w.b.test");
        let listener = TlsListener {
            addr: "127.0.0.1:0".into(),
            alt_addrs: Vec::new(),
            ca_file: String::new(),
            http2: true,
            resumption: None,
            cert_file: dc,
            key_file: dk,
            sni: vec![("A.test".into(), ac, ak), ("*.b.test".into(), wc, wk)],
        };
        let certs = SniCertificates::load(&listener).unwrap();
        let first = |k: Arc<CertifiedKey>| k.cert[0].clone();
        let (default, a, w) = (
            first(certs.select(None)),
            first(certs.select(Some("a.test"))),
            first(certs.select(Some("x.b.test"))),
        );
        assert_ne!(default, a);
        assert_ne!(default, w);
        assert_eq!(first(certs.select(Some("other.test"))), default);
        assert_eq!(first(certs.select(Some("b.test"))), default);
        assert_eq!(first(certs.select(Some("A.TEST"))), a);
    }

    #[test]
    fn a_bad_file_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let (dc, dk) = write_cert(dir.path(), "default.test");
        let listener = TlsListener {
            addr: "127.0.0.1:0".into(),
            alt_addrs: Vec::new(),
            ca_file: String::new(),
            http2: true,
            resumption: None,
            cert_file: dc,
            key_file: dk.clone(),
            sni: vec![("a.test".into(), dk.clone(), dk)],
        };
        let err = SniCertificates::load(&listener).unwrap_err();
        let err = err.to_string();
        assert!(
            err.starts_with("WebServer.https_sni_certs.a.test:"),
            "{err}"
        );
    }
}
