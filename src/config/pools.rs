//! Compiling one pool: routing criteria, header rules and connection settings here; targets
//! in `targets.rs`; limits, retries and degraded hints in `traffic.rs`.

use super::compile::{one_line, Problems};
use super::model::{FileConfig, PoolConfig};
use crate::event_log::transaction::LogPolicy;
use crate::pool::headers::{RequestRules, ResponseRules, ScrubRule};
use crate::pool::routing::RouteCriteria;
use crate::pool::{PeerSettings, Pool};
use crate::stats::activity::PoolActivity;
use crate::stats::second::PoolStats;
use http::HeaderValue;
use std::sync::Arc;
use std::time::Duration;

/// Key path of a pool setting, for problem messages.
pub(super) struct PoolPath<'a>(pub(super) &'a str);

impl PoolPath<'_> {
    pub(super) fn key(&self, key: &str) -> String {
        format!("PixlProxy.pools.{}.{key}", self.0)
    }
}

pub(super) fn compile_pool(
    id: &str,
    p: &PoolConfig,
    cfg: &FileConfig,
    problems: &mut Problems,
) -> Option<Pool> {
    let validate_ssl_certs = cfg.proxy.validate_ssl_certs;
    let path = PoolPath(id);
    let before = problems.0.len();
    let criteria = route_criteria(p, &path, problems);
    let targets = super::targets::target_set(id, p, validate_ssl_certs, &path, problems);
    let request_rules = request_rules(p, &path, problems);
    let response_rules = ResponseRules {
        scrub: scrub(
            problems,
            &path.key("scrub_response_headers"),
            &p.scrub_response_headers,
        ),
        insert: problems.headers(
            &path.key("insert_response_headers"),
            &p.insert_response_headers,
        ),
    };
    let limits = super::traffic::limits(p);
    let retry = super::traffic::retry_policy(p, &path, problems);
    let degraded = super::traffic::degraded_monitor(p, &path, problems);
    let queue = super::queue::blind_queue(p, cfg, &path, problems);
    if problems.0.len() > before {
        return None;
    }
    Some(Pool {
        id: Arc::from(id),
        criteria,
        x_proxy_only: p.x_proxy_only,
        targets: targets?,
        request_rules,
        response_rules,
        use_keep_alives: p.use_keep_alives,
        connect: PeerSettings {
            ttfb_timeout: (p.http_timeout_ms > 0).then(|| Duration::from_millis(p.http_timeout_ms)),
            verify_tls: validate_ssl_certs,
            group_key: Pool::group_key_of(id),
            http2: p.target_http2,
        },
        limits,
        retry: retry?,
        redirect_hops: p.follow_redirects,
        degraded,
        activity: PoolActivity::default(),
        queue,
        logging: LogPolicy {
            transactions: p.log_transactions,
            perf_ms: p.log_perf_ms,
            errors: p.log_errors,
        },
        stats: match stats_are_read(cfg) {
            true => PoolStats::default(),
            false => PoolStats::unread(),
        },
        metrics: crate::stats::metrics::PoolMetrics::new(id, !cfg.proxy.metrics_uri.is_empty()),
        min_stream_size: p.min_stream_size,
    })
}

/// Whether anything reads a pool's per-second figures: the stats API, the Prometheus
/// endpoint (its in-flight gauge) or the per-second debug line (`debug_level` 2 and up).
fn stats_are_read(cfg: &FileConfig) -> bool {
    cfg.proxy.stats_uri_match.is_some() || !cfg.proxy.metrics_uri.is_empty() || cfg.debug_level >= 2
}

fn route_criteria(p: &PoolConfig, path: &PoolPath, problems: &mut Problems) -> RouteCriteria {
    let mut criterion = |key: &str, pattern: &Option<String>, case_insensitive: bool| {
        let pattern = pattern.as_deref()?;
        problems.regex(&path.key(key), pattern, case_insensitive)
    };
    RouteCriteria {
        method: criterion("method_match", &p.method_match, true),
        host: criterion("host_match", &p.host_match, true),
        uri: criterion("uri_match", &p.uri_match, false),
    }
}

fn request_rules(p: &PoolConfig, path: &PoolPath, problems: &mut Problems) -> RequestRules {
    let authorization = match p.http_basic_auth.as_str() {
        "" => None,
        creds if !creds.contains(':') => {
            problems.push(path.key("http_basic_auth"), "must be `USERNAME:PASSWORD`");
            None
        }
        creds => RequestRules::basic_auth(creds),
    };
    RequestRules {
        scrub: scrub(
            problems,
            &path.key("scrub_request_headers"),
            &p.scrub_request_headers,
        ),
        insert: problems.headers(
            &path.key("insert_request_headers"),
            &p.insert_request_headers,
        ),
        user_agent: header_value(problems, &path.key("http_user_agent"), &p.http_user_agent),
        authorization,
        append_x_forwarded_for: p.append_to_x_forwarded_for,
        preserve_host: p.preserve_host,
        close_connection: !p.use_keep_alives,
    }
}

fn scrub(problems: &mut Problems, path: &str, pattern: &str) -> ScrubRule {
    ScrubRule::new(pattern).unwrap_or_else(|e| {
        problems.push(path, format!("invalid regex: {}", one_line(&e.to_string())));
        ScrubRule::none()
    })
}

fn header_value(problems: &mut Problems, path: &str, value: &str) -> Option<HeaderValue> {
    if value.is_empty() {
        return None;
    }
    HeaderValue::from_str(value)
        .map_err(|_| problems.push(path, "not a valid header value"))
        .ok()
}
