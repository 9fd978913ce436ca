//! The client-facing side: listeners, keep-alive policy and the headers every response gets.

pub mod compression;
pub mod https;
pub mod static_files;

use crate::front_end::compression::CompressionPolicy;
use crate::front_end::https::{HttpsPolicy, SecureHeaders};
use crate::pool::headers::GlobalResponseHeaders;
use crate::proxy::exchange::body::UploadLimit;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::sync::Arc;

/// `WebServer.http_keep_alives`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveMode {
    /// Keep connections open unless the client sends `Connection: close`.
    Default,
    /// Close connections unless the client sends `Connection: keep-alive`.
    Request,
    /// Close every connection after one request.
    Close,
}

impl KeepAliveMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "default" => Some(KeepAliveMode::Default),
            "request" => Some(KeepAliveMode::Request),
            "close" => Some(KeepAliveMode::Close),
            _ => None,
        }
    }
}

/// A TLS listener's certificate and key files.
#[derive(Debug, Clone)]
pub struct TlsListener {
    pub addr: String,
    pub cert_file: String,
    pub key_file: String,
    /// `https_sni_certs`: (server name or `*.domain`, cert file, key file).
    pub sni: Vec<(String, String, String)>,
    /// `https_http2`: offer HTTP/2 by ALPN.
    pub http2: bool,
}

#[derive(Debug, Clone)]
pub struct FrontEnd {
    /// `ip:port` of the plain HTTP listener.
    pub http_addr: String,
    pub https: Option<TlsListener>,
    pub keep_alive: KeepAliveMode,
    /// `http_timeout` in seconds: idle read timeout and keep-alive idle timeout (0 = none).
    pub idle_timeout_sec: u64,
    pub response_headers: GlobalResponseHeaders,
    /// `http_max_connections`: open client connections allowed at once; 0 = no limit.
    pub max_connections: usize,
    /// `https_force` and `https_header_detect`.
    pub https_policy: HttpsPolicy,
    /// `secure_headers` (with `csp_allowed`).
    pub secure_headers: Option<SecureHeaders>,
    /// Active content encoding.
    pub compression: CompressionPolicy,
    /// `http_h2c`: cleartext HTTP/2 on the HTTP listener.
    pub h2c: bool,
    /// `http_max_upload_size`.
    pub upload_limit: UploadLimit,
    /// `serve_static_files`: where requests no pool takes are answered from; `None` = 404.
    pub static_files: Option<Arc<crate::front_end::static_files::StaticFiles>>,
}

impl FrontEnd {
    /// The headers every response gets: `http_response_headers`, the signature, and the secure
    /// headers when they are on (`tls`: the client came over HTTPS).
    pub fn finish_response(&self, resp: &mut ResponseHeader, tls: bool) -> pingora::Result<()> {
        self.response_headers.apply(resp)?;
        match &self.secure_headers {
            Some(secure) => secure.apply(resp, tls),
            None => Ok(()),
        }
    }

    /// Apply the keep-alive policy and idle timeout to a new request's client connection.
    /// Pingora has already applied the client's own `Connection` header by now.
    pub fn apply_keep_alive(&self, session: &mut Session) {
        let client_allows = session.get_keepalive().is_some();
        let keep = match self.keep_alive {
            KeepAliveMode::Default => client_allows,
            KeepAliveMode::Request => client_allows && client_asked_keep_alive(session),
            KeepAliveMode::Close => false,
        };
        // Pingora treats Some(0) as "forever", matching http_timeout: 0 (no timeout).
        session.set_keepalive(keep.then_some(self.idle_timeout_sec));
        if self.idle_timeout_sec > 0 {
            session.set_read_timeout(Some(std::time::Duration::from_secs(self.idle_timeout_sec)));
        }
    }
}

fn client_asked_keep_alive(session: &Session) -> bool {
    session
        .get_header(http::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("keep-alive"))
        })
}

/// The client's address and whether its connection is TLS.
pub fn client_facts(session: &Session) -> crate::pool::headers::ClientFacts {
    crate::pool::headers::ClientFacts {
        ip: session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip()),
        tls: tls_connection(session),
    }
}

/// Whether the client's connection itself is TLS.
pub fn tls_connection(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// A listen address as a local client reaches it (`0.0.0.0` / `[::]` -> loopback).
pub fn local_addr(listen: &str) -> String {
    listen
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:")
}

/// Wait (at most `limit`) until something accepts connections on the listen address `addr`.
pub async fn wait_until_accepting(addr: &str, limit: std::time::Duration) {
    let addr = local_addr(addr);
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// `ip:port` for a bind address (empty = all IPv4 addresses) and port.
pub fn listen_addr(bind: &str, port: u16) -> String {
    let bind = if bind.is_empty() { "0.0.0.0" } else { bind };
    if bind.contains(':') && !bind.starts_with('[') {
        format!("[{bind}]:{port}")
    } else {
        format!("{bind}:{port}")
    }
}
