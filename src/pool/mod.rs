//! A pool's runtime form: its routing criteria, targets, header rules, limits, retry and
//! redirect policy, degraded monitor and per-second activity, all built once at start.

pub mod degraded;
pub mod dns;
pub mod headers;
pub mod health;
pub mod redirect;
pub mod retry;
pub mod routing;
pub mod scrub;
pub mod targets;

use crate::admission::PoolLimits;
use crate::clock;
use crate::event_log::transaction::LogPolicy;
use crate::pool::degraded::DegradedMonitor;
use crate::pool::headers::{ClientFacts, RequestRules, ResponseRules};
use crate::pool::retry::RetryPolicy;
use crate::pool::routing::RouteCriteria;
use crate::pool::targets::{BalancedTargets, Chosen, HashOn, Target};
use crate::queue::BlindQueue;
use crate::stats::activity::PoolActivity;
use crate::stats::metrics::PoolMetrics;
use crate::stats::second::PoolStats;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How long an idle pooled back-end connection is kept: until the back end closes it (Pingora
/// watches every idle connection and drops it at once) or the keep-alive pool
/// (`upstream_keepalive_pool_size`, 128) needs its place, as PixlProxy's Node.js agent does.
/// A timeout here would cost every request a timer.
pub const BACKEND_IDLE_TIMEOUT: Option<Duration> = None;

/// Requests one HTTP/2 back-end connection carries at once (`target_http2`).
const H2_STREAMS_PER_CONNECTION: usize = 100;

/// A pool's back ends.
#[derive(Debug)]
pub enum TargetSet {
    /// PixlProxy's `target_hostname`/`target_port`, resolved per request (`cache_dns_sec`).
    Single(Target),
    /// poolgate's `targets` (or a single target with `health_check`).
    Balanced {
        targets: Arc<Vec<Target>>,
        balancer: BalancedTargets,
    },
}

/// How poolgate connects to the pool's back ends.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// `http_timeout_ms`: connect and time to first byte (also each later read gap).
    pub ttfb_timeout: Option<Duration>,
    /// `validate_ssl_certs`: verify the back end's certificate and hostname.
    pub verify_tls: bool,
    /// Keeps each pool's pooled connections apart even when pools share a back end.
    pub group_key: u64,
    /// `target_http2`: HTTP/2 to the back end (ALPN over TLS, prior knowledge in clear).
    pub http2: bool,
}

#[derive(Debug)]
pub struct Pool {
    pub id: Arc<str>,
    pub criteria: RouteCriteria,
    pub x_proxy_only: bool,
    pub targets: TargetSet,
    pub request_rules: RequestRules,
    pub response_rules: ResponseRules,
    pub use_keep_alives: bool,
    pub connect: PeerSettings,
    pub limits: PoolLimits,
    pub retry: RetryPolicy,
    /// `follow_redirects`: hops the proxy follows itself; 0 = pass redirects to the client.
    pub redirect_hops: u32,
    pub degraded: Option<DegradedMonitor>,
    pub activity: PoolActivity,
    /// `use_queue`: requests are answered at once and sent by the queue's background service.
    pub queue: Option<Arc<BlindQueue>>,
    /// `log_transactions`, `log_perf_ms`, `log_errors`.
    pub logging: LogPolicy,
    /// The last full second's figures, for the stats API and the per-second log line.
    pub stats: PoolStats,
    /// Prometheus handles, bound to this pool.
    pub metrics: PoolMetrics,
    /// `min_stream_size`: compressed responses up to this size are encoded in one piece.
    pub min_stream_size: u64,
}

impl Pool {
    /// The connection-pool group of a pool id (see `PeerSettings::group_key`).
    pub fn group_key_of(id: &str) -> u64 {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        h.finish()
    }

    /// Whether requests go through the buffered exchange (retries on error statuses, followed
    /// redirects) instead of Pingora's streaming proxy.
    pub fn uses_exchange(&self) -> bool {
        self.retry.retries > 0 || self.redirect_hops > 0
    }

    pub fn target(&self, chosen: &Chosen) -> Option<&Target> {
        match &self.targets {
            TargetSet::Single(t) => Some(t),
            TargetSet::Balanced { targets, .. } => targets.get(chosen.target),
        }
    }

    /// Every configured target, in config order.
    pub fn all_targets(&self) -> &[Target] {
        match &self.targets {
            TargetSet::Single(t) => std::slice::from_ref(t),
            TargetSet::Balanced { targets, .. } => targets,
        }
    }

    /// The first configured target (the only one for PixlProxy-style pools).
    pub fn primary_target(&self) -> Option<&Target> {
        self.all_targets().first()
    }

    /// The bytes a hashing balancer keys on; empty for the other algorithms.
    pub fn selection_key(&self, req: &RequestHeader, client_ip: Option<IpAddr>) -> Vec<u8> {
        let TargetSet::Balanced { balancer, .. } = &self.targets else {
            return Vec::new();
        };
        match &balancer.hash_on {
            None => Vec::new(),
            Some(HashOn::ClientIp) => client_ip.map_or_else(Vec::new, |ip| match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            }),
            Some(HashOn::Uri) => req
                .uri
                .path_and_query()
                .map_or(b"/".to_vec(), |pq| pq.as_str().as_bytes().to_vec()),
            Some(HashOn::Header(name)) => req
                .headers
                .get(name)
                .map_or_else(Vec::new, |v| v.as_bytes().to_vec()),
        }
    }

    /// Pick the back end for one attempt, avoiding addresses that already failed when another
    /// healthy one exists.
    pub async fn choose(&self, key: &[u8], avoid: &[SocketAddr]) -> Result<Chosen> {
        match &self.targets {
            TargetSet::Single(t) => Ok(Chosen {
                addr: t.resolver.resolve().await?,
                target: 0,
            }),
            TargetSet::Balanced { balancer, .. } => balancer.select(key, avoid),
        }
    }

    /// Whether choosing a target may wait for a DNS lookup (a single target named by host
    /// name); IP literals and balanced sets, resolved in the background, never do.
    pub fn looks_up_per_request(&self) -> bool {
        match &self.targets {
            TargetSet::Single(t) => !t.resolver.is_literal(),
            TargetSet::Balanced { .. } => false,
        }
    }

    /// The Pingora peer for a chosen target. A request without a body (`sends_body` false)
    /// gets no write timeout: its header goes into the socket buffer at once, and waiting for
    /// the answer is bounded by the read timeout; this spares such requests a timer. A body
    /// keeps it, since Pingora stops reading the answer while a body write is stuck.
    pub fn peer(&self, chosen: &Chosen, sends_body: bool) -> Result<Box<HttpPeer>> {
        let target = self.target(chosen).ok_or_else(|| {
            Error::explain(ErrorType::InternalError, "chosen target does not exist")
        })?;
        let mut peer = self.peer_at(
            chosen.addr,
            target.tls,
            &target.hostname,
            self.connect.group_key,
        );
        if !sends_body {
            peer.options.write_timeout = None;
        }
        Ok(peer)
    }

    /// A peer with the pool's timeouts and TLS checks at any address (redirect hops to other
    /// hosts use their own `group_key`).
    pub fn peer_at(
        &self,
        addr: SocketAddr,
        tls: bool,
        host: &str,
        group_key: u64,
    ) -> Box<HttpPeer> {
        let sni = if tls { host.to_string() } else { String::new() };
        let mut peer = HttpPeer::new(addr, tls, sni);
        peer.group_key = group_key;
        let o = &mut peer.options;
        o.connection_timeout = self.connect.ttfb_timeout;
        o.total_connection_timeout = self.connect.ttfb_timeout;
        o.read_timeout = self.connect.ttfb_timeout;
        o.write_timeout = self.connect.ttfb_timeout;
        o.verify_cert = self.connect.verify_tls;
        o.verify_hostname = self.connect.verify_tls;
        // With `use_keep_alives: false` the request carries `Connection: close` (see headers.rs),
        // so Pingora never returns that connection to its pool.
        o.idle_timeout = BACKEND_IDLE_TIMEOUT;
        if self.connect.http2 {
            // Over TLS the back end may still pick HTTP/1.1; in clear there is no negotiation.
            let min = if tls { 1 } else { 2 };
            o.set_http_version(2, min);
            o.max_h2_streams = H2_STREAMS_PER_CONNECTION;
        }
        Box::new(peer)
    }

    /// How long to wait before a retry, from the pool's errors in the previous full second.
    pub fn retry_delay(&self) -> Duration {
        let errors = self.activity.previous_second().errors;
        self.retry.delay.for_errors(errors)
    }

    /// Apply the pool's request rules for `target`, plus the degraded hint when it is due.
    pub fn rewrite_request(
        &self,
        req: &mut RequestHeader,
        client: ClientFacts,
        target: Option<&Target>,
    ) -> Result<()> {
        let host = target.and_then(|t| t.host_header.as_ref());
        self.request_rules.apply(req, client, host)?;
        if self.is_degraded() {
            req.insert_header("X-Degraded", "true")?;
        }
        Ok(())
    }

    fn is_degraded(&self) -> bool {
        self.degraded
            .as_ref()
            .is_some_and(|m| m.is_degraded(&self.activity.previous_second(), clock::uptime()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pool::headers::ScrubRule;
    use crate::pool::retry::RetryDelay;
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
        let request_rules = RequestRules {
            scrub: ScrubRule::new("").unwrap(),
            insert: vec![],
            user_agent: None,
            authorization: None,
            append_x_forwarded_for: false,
            preserve_host: true,
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
            targets: TargetSet::Single(Target::new(false, "127.0.0.1", 80, 0)),
            request_rules,
            response_rules,
            use_keep_alives: true,
            connect: PeerSettings {
                ttfb_timeout: None,
                verify_tls: true,
                group_key: Pool::group_key_of(id),
                http2: false,
            },
            limits: PoolLimits::default(),
            retry: RetryPolicy {
                retries: 0,
                success: crate::pool::retry::SuccessCodes::from_regex(
                    &Regex::new(crate::config::model::DEFAULT_SUCCESS_MATCH).unwrap(),
                ),
                delay: RetryDelay::default(),
                max_body_bytes: 0,
            },
            redirect_hops: 0,
            degraded: None,
            activity: PoolActivity::default(),
            queue: None,
            logging: LogPolicy::default(),
            stats: PoolStats::default(),
            metrics: PoolMetrics::new(id, true),
            min_stream_size: 0,
        })
    }
}
