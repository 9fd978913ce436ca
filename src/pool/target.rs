//! One configured back end: its scheme, name and port, the Host that `preserve_host: false`
//! sends, and its resolver (`cache_dns_sec`).

use super::dns::TargetResolver;
use http::HeaderValue;

/// The port of a scheme when none is given: 443 for HTTPS, 80 for HTTP.
pub(crate) fn default_port(tls: bool) -> u16 {
    if tls {
        443
    } else {
        80
    }
}

/// One configured back end at run time.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) tls: bool,
    pub(crate) hostname: String,
    pub(crate) port: u16,
    /// What `preserve_host: false` sends as Host: the name, plus the port when not default.
    pub(crate) host_header: Option<HeaderValue>,
    pub(crate) resolver: TargetResolver,
    /// `http://host:port`, written once (every log line names it).
    base_url: String,
}

impl Target {
    pub(super) fn new(tls: bool, hostname: &str, port: u16, cache_dns_sec: u64) -> Self {
        let host = if port == default_port(tls) {
            hostname.to_string()
        } else {
            format!("{hostname}:{port}")
        };
        Target {
            tls,
            hostname: hostname.to_string(),
            port,
            host_header: HeaderValue::from_str(&host).ok(),
            resolver: TargetResolver::new(hostname, port, cache_dns_sec),
            base_url: format!("{}://{hostname}:{port}", if tls { "https" } else { "http" }),
        }
    }

    /// `http://host:port`, for log lines.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// The index of the configured target a discovered backend belongs to (in `Backend::ext`).
#[derive(Debug, Clone, Copy)]
pub(super) struct TargetIndex(pub(super) usize);
