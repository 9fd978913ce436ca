//! A pool's runtime form: where its back end is and how to connect to it.

use crate::dns::TargetResolver;
use crate::headers::{RequestRules, ResponseRules};
use crate::routing::RouteCriteria;
use pingora::upstreams::peer::HttpPeer;
use pingora::Result;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// How long an idle pooled back-end connection is kept before poolgate closes it.
const BACKEND_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The back end of a pool.
#[derive(Debug)]
pub struct Target {
    pub tls: bool,
    pub hostname: String,
    pub port: u16,
    pub resolver: TargetResolver,
    /// `validate_ssl_certs`: verify the back end's certificate and hostname.
    pub verify_tls: bool,
}

impl Target {
    /// `http://host:port`, for log lines.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.hostname, self.port)
    }
}

#[derive(Debug)]
pub struct Pool {
    pub id: Arc<str>,
    pub criteria: RouteCriteria,
    pub x_proxy_only: bool,
    pub target: Target,
    pub request_rules: RequestRules,
    pub response_rules: ResponseRules,
    pub use_keep_alives: bool,
    /// `http_timeout_ms`: connect and time to first byte (also each later read gap).
    pub ttfb_timeout: Option<Duration>,
    /// Keeps each pool's pooled connections apart even when pools share a back end.
    pub group_key: u64,
}

impl Pool {
    /// The connection-pool group of a pool id (see `group_key`).
    pub fn group_key_of(id: &str) -> u64 {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        h.finish()
    }

    /// The Pingora peer for one attempt; resolves the host name asynchronously if needed.
    pub async fn peer(&self) -> Result<Box<HttpPeer>> {
        let addr = self.target.resolver.resolve().await?;
        let sni = if self.target.tls {
            self.target.hostname.clone()
        } else {
            String::new()
        };
        let mut peer = HttpPeer::new(addr, self.target.tls, sni);
        peer.group_key = self.group_key;
        let o = &mut peer.options;
        o.connection_timeout = self.ttfb_timeout;
        o.total_connection_timeout = self.ttfb_timeout;
        o.read_timeout = self.ttfb_timeout;
        o.verify_cert = self.target.verify_tls;
        o.verify_hostname = self.target.verify_tls;
        // With `use_keep_alives: false` the request carries `Connection: close` (see headers.rs),
        // so Pingora never returns that connection to its pool.
        o.idle_timeout = Some(BACKEND_IDLE_TIMEOUT);
        Ok(Box::new(peer))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::headers::ScrubRule;
    use regex::Regex;

    /// A pool with the given criteria and no header rules, for routing tests.
    pub fn pool_with(
        id: &str,
        method: Option<&str>,
        host: Option<&str>,
        uri: Option<&str>,
        x_only: bool,
    ) -> Arc<Pool> {
        let re = |s: Option<&str>| s.map(|s| Regex::new(s).unwrap());
        let criteria = RouteCriteria {
            method: re(method),
            host: re(host),
            uri: re(uri),
        };
        let target = Target {
            tls: false,
            hostname: "127.0.0.1".into(),
            port: 80,
            resolver: TargetResolver::new("127.0.0.1", 80, 0),
            verify_tls: true,
        };
        let request_rules = RequestRules {
            scrub: ScrubRule::new("").unwrap(),
            insert: vec![],
            user_agent: None,
            authorization: None,
            append_x_forwarded_for: false,
            host_override: None,
            close_connection: false,
        };
        let response_rules = ResponseRules {
            scrub: ScrubRule::new("").unwrap(),
            insert: vec![],
        };
        Arc::new(Pool {
            id: Arc::from(id),
            criteria,
            x_proxy_only: x_only,
            target,
            request_rules,
            response_rules,
            use_keep_alives: true,
            ttfb_timeout: None,
            group_key: Pool::group_key_of(id),
        })
    }
}
