//! The HTTPS listener's certificates: `https_cert_file`/`https_key_file` (with the chain of
//! `https_ca_file`) for every name, plus
//! `https_sni_certs` chosen by the name the client asks for (SNI), exact names before
//! `*.domain` wildcards. Loaded once at start, so a bad file stops the start with its name
//! (Pingora's own loader would panic inside the listener instead).

use super::TlsListener;
use pingora::listeners::tls::TlsSettings;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use std::collections::HashMap;
use std::sync::Arc;

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

/// The listener's TLS settings: the certificates above and, with `https_http2`, ALPN `h2`
/// before `http/1.1`.
pub(super) fn tls_settings(listener: &TlsListener) -> Result<TlsSettings, CertificateError> {
    let certs = SniCertificates::load(listener)?;
    let mut settings = TlsSettings::intermediate("", "").map_err(|e| CertificateError {
        key: "WebServer.https".into(),
        why: e.to_string(),
    })?;
    settings.set_cert_resolver(Arc::new(certs));
    if listener.http2 {
        settings.enable_h2();
    }
    Ok(settings)
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
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| "no TLS crypto provider installed".to_string())?;
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
