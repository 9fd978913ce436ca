//! A pool (PixlProxy "Pool Configuration"): what one group of back ends is and how requests
//! reach it. Owns routing (`routing.rs`: which pool a request goes to), the targets with their
//! balancing, health checks and DNS (`targets.rs`, `health.rs`, `dns.rs`), the Pingora peers
//! (`peer.rs`), the header rules (`headers.rs`, `scrub.rs`), the retry policy and its back-off
//! (`retry.rs`), redirect following (`redirect.rs`), the degraded hint (`degraded.rs`), what
//! each target has been through (`target_state.rs`) and what the stats read of a pool
//! (`view.rs`).
//!
//! A `Pool` is built from its `PoolSettings` at start. Uses `admission` (its limits), `stats`
//! (its per-second figures, metrics and recent errors), `event_log` (its logging policy),
//! `front_end` (the client facts and header pairs) and `timing`.

mod degraded;
mod dns;
mod headers;
mod health;
mod peer;
mod redirect;
mod retry;
mod routing;
mod scrub;
mod target;
mod target_state;
mod targets;
mod view;

pub(crate) use degraded::DegradedMonitor;
pub(crate) use dns::TargetResolver;
pub(crate) use headers::{strip_hop_by_hop, RequestRules, ResponseRules};
pub(crate) use health::{CheckKind, HealthSettings};
pub(crate) use peer::{bound_by_time_left, PeerSettings, BACKEND_IDLE_TIMEOUT};
pub(crate) use redirect::{next_method, split_authority, HopUrl};
pub(crate) use retry::{RetryDelay, RetryPolicy, SuccessCodes};
pub(crate) use routing::{RouteCriteria, RouteRequest, RouteTable, DEFAULT_POOL_ID};
pub(crate) use scrub::ScrubRule;
pub(crate) use target::{default_port, Target};
pub(crate) use target_state::OnTarget;
pub(crate) use targets::{
    BalanceSettings, Balancing, Chosen, HashOn, TargetAddress, TargetSet, TargetSettings,
};

use crate::admission::{LimitSettings, PoolAdmission};
use crate::cluster::Cluster;
use crate::event_log::LogPolicy;
use crate::front_end::ClientFacts;
use crate::stats::{PoolMetrics, PoolStats, RecentErrors, Recording, RECENT_ERRORS};
use pingora::http::RequestHeader;
use pingora::Result;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// One pool as configured: validated values, from which `Pool::new` builds the runtime pool.
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    pub(crate) id: String,
    pub(crate) criteria: RouteCriteria,
    pub(crate) x_proxy_only: bool,
    pub(crate) targets: TargetSettings,
    pub(crate) request_rules: RequestRules,
    pub(crate) response_rules: ResponseRules,
    pub(crate) use_keep_alives: bool,
    pub(crate) connect: PeerSettings,
    pub(crate) limits: LimitSettings,
    pub(crate) retry: RetryPolicy,
    /// `follow_redirects`: hops the proxy follows itself; 0 = pass redirects to the client.
    pub(crate) redirect_hops: u32,
    pub(crate) degraded: Option<DegradedMonitor>,
    /// `log_transactions`, `log_perf_ms`, `log_errors`.
    pub(crate) logging: LogPolicy,
    /// `min_stream_size`: compressed responses up to this size are encoded in one piece.
    pub(crate) min_stream_size: u64,
    /// What the per-second figures keep (what reads them: stats API, metrics, back-off, ...).
    pub(crate) recording: Recording,
    /// Whether Prometheus metrics are recorded (a `metrics_uri` exists).
    pub(crate) metrics: bool,
}

/// A pool at run time.
#[derive(Debug)]
pub(crate) struct Pool {
    /// The pool's place in the config (what the queue table is indexed by).
    pub(crate) index: usize,
    pub(crate) id: Arc<str>,
    pub(crate) criteria: RouteCriteria,
    pub(crate) x_proxy_only: bool,
    pub(crate) targets: TargetSet,
    pub(crate) request_rules: RequestRules,
    pub(crate) response_rules: ResponseRules,
    pub(crate) use_keep_alives: bool,
    pub(crate) connect: PeerSettings,
    pub(crate) admission: PoolAdmission,
    pub(crate) retry: RetryPolicy,
    pub(crate) redirect_hops: u32,
    degraded: Option<DegradedMonitor>,
    pub(crate) logging: LogPolicy,
    /// The last full second's figures (the stats API, back-off, degraded hints).
    pub(crate) stats: Arc<PoolStats>,
    /// Prometheus handles, bound to this pool.
    pub(crate) metrics: PoolMetrics,
    pub(crate) min_stream_size: u64,
    /// The limits as configured, for the stats (`admission` enforces them).
    limits: LimitSettings,
    /// The pool's last failed requests (`web.errors`), kept when its figures are.
    pub(crate) errors: RecentErrors,
}

impl Pool {
    /// The pool of `settings`, the `index`-th in the config; its limits are shared with the
    /// instances of `cluster` when one is given.
    pub(crate) fn new(index: usize, s: PoolSettings, cluster: Option<&Arc<Cluster>>) -> Pool {
        let full = s.recording == Recording::Full;
        Pool {
            index,
            targets: TargetSet::new(&s.id, &s.targets, full),
            limits: s.limits,
            errors: RecentErrors::new(if full { RECENT_ERRORS } else { 0 }),
            admission: PoolAdmission::new(&s.limits, &s.id, cluster),
            stats: Arc::new(PoolStats::new(s.recording)),
            metrics: PoolMetrics::new(&s.id, s.metrics),
            id: Arc::from(s.id),
            criteria: s.criteria,
            x_proxy_only: s.x_proxy_only,
            request_rules: s.request_rules,
            response_rules: s.response_rules,
            use_keep_alives: s.use_keep_alives,
            connect: s.connect,
            retry: s.retry,
            redirect_hops: s.redirect_hops,
            degraded: s.degraded,
            logging: s.logging,
            min_stream_size: s.min_stream_size,
        }
    }

    /// Whether requests go through the buffered exchange (retries on error statuses, followed
    /// redirects) instead of Pingora's streaming proxy.
    pub(crate) fn uses_exchange(&self) -> bool {
        self.retry.retries > 0 || self.redirect_hops > 0
    }

    pub(crate) fn target(&self, chosen: &Chosen) -> Option<&Target> {
        self.targets.get(chosen.target)
    }

    /// Every configured target, in config order.
    pub(crate) fn all_targets(&self) -> &[Target] {
        self.targets.all()
    }

    /// The first configured target (the only one for PixlProxy-style pools).
    pub(crate) fn primary_target(&self) -> Option<&Target> {
        self.all_targets().first()
    }

    /// The bytes a hashing balancer keys on; empty for the other algorithms.
    pub(crate) fn selection_key(&self, req: &RequestHeader, client_ip: Option<IpAddr>) -> Vec<u8> {
        match self.targets.hash_on() {
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
    pub(crate) async fn choose(&self, key: &[u8], avoid: &[SocketAddr]) -> Result<Chosen> {
        self.targets.choose(key, avoid).await
    }

    /// Whether choosing a target may wait for a DNS lookup (a single target named by host
    /// name); IP literals and balanced sets, resolved in the background, never do.
    pub(crate) fn looks_up_per_request(&self) -> bool {
        self.targets.looks_up_per_request()
    }

    /// Apply the pool's request rules for `target`, plus the degraded hint when it is due.
    pub(crate) fn rewrite_request(
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
        self.degraded.as_ref().is_some_and(|m| {
            m.is_degraded(
                &self.stats.previous_second(),
                crate::timing::clock::uptime(),
            )
        })
    }

    /// One attempt to the back end failed (connect error, reset, timeout, error status), on
    /// the target of that index when one was chosen.
    pub(crate) fn record_failed_attempt(&self, target: Option<usize>) {
        self.stats.record_error();
        if let Some(target) = target.and_then(|i| self.targets.get(i)) {
            target.activity.failed();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use regex::Regex;

    /// A pool with the given criteria and no header rules, for routing tests.
    pub(crate) fn pool_with(
        id: &str,
        method: Option<&str>,
        host: Option<&str>,
        uri: Option<&str>,
        x_only: bool,
    ) -> Arc<Pool> {
        let re = |s: Option<&str>| s.map(|s| Regex::new(s).unwrap());
        let settings = PoolSettings {
            id: id.to_string(),
            criteria: RouteCriteria {
                method: re(method),
                host: re(host),
                uri: re(uri),
            },
            x_proxy_only: x_only,
            targets: TargetSettings::single(TargetAddress {
                tls: false,
                host: "127.0.0.1".into(),
                port: 80,
            }),
            request_rules: RequestRules {
                scrub: ScrubRule::none(),
                insert: vec![],
                user_agent: None,
                authorization: None,
                append_x_forwarded_for: false,
                preserve_host: true,
                close_connection: false,
            },
            response_rules: ResponseRules {
                scrub: ScrubRule::none(),
                insert: vec![],
            },
            use_keep_alives: true,
            connect: PeerSettings::new(id, (None, None), true, false),
            limits: LimitSettings::default(),
            retry: RetryPolicy {
                retries: 0,
                success: SuccessCodes::from_regex(
                    &Regex::new(crate::config::DEFAULT_SUCCESS_MATCH).unwrap(),
                ),
                delay: RetryDelay::default(),
                max_body_bytes: 0,
            },
            redirect_hops: 0,
            degraded: None,
            logging: LogPolicy::default(),
            min_stream_size: 0,
            recording: Recording::Full,
            metrics: true,
        };
        Arc::new(Pool::new(0, settings, None))
    }
}
