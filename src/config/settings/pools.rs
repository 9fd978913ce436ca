//! One pool: routing criteria, header rules and connection settings here; targets in
//! `targets.rs`; limits, retries and degraded hints in `traffic.rs`; its queue in `queue.rs`.

use crate::config::file::{FileConfig, PoolConfig};
use crate::config::problem::{one_line, PoolPath, Problems};
use crate::event_log::LogPolicy;
use crate::pool::{
    PeerSettings, PoolSettings, RequestRules, ResponseRules, RouteCriteria, ScrubRule,
};
use crate::server::PoolEntry;
use crate::stats::Recording;
use http::HeaderValue;
use std::time::Duration;

pub(super) fn pool_entry(
    id: &str,
    p: &PoolConfig,
    cfg: &FileConfig,
    problems: &mut Problems,
) -> Option<PoolEntry> {
    let validate_ssl_certs = cfg.proxy.validate_ssl_certs;
    let path = PoolPath(id);
    let before = problems.0.len();
    let criteria = route_criteria(p, &path, problems);
    let targets = super::targets::target_settings(p, validate_ssl_certs, &path, problems);
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
    let retry = super::traffic::retry_policy(p, &path, problems);
    let degraded = super::traffic::degraded_monitor(p, &path, problems);
    let queue = super::queue::queue_settings(p, cfg, &path, problems);
    if problems.0.len() > before {
        return None;
    }
    let retry = retry?;
    let recording = recording(
        cfg,
        degraded.is_some(),
        retry.retries > 0 && retry.delay.mult_ms > 0,
    );
    let pool = PoolSettings {
        id: id.to_string(),
        criteria,
        x_proxy_only: p.x_proxy_only,
        targets: targets?,
        request_rules,
        response_rules,
        use_keep_alives: p.use_keep_alives,
        connect: PeerSettings::new(
            id,
            (
                (p.http_timeout_ms > 0).then(|| Duration::from_millis(p.http_timeout_ms)),
                (p.http_body_timeout_ms > 0).then(|| Duration::from_millis(p.http_body_timeout_ms)),
            ),
            validate_ssl_certs,
            p.target_http2,
        ),
        limits: super::traffic::limits(p),
        retry,
        redirect_hops: p.follow_redirects,
        degraded,
        logging: LogPolicy {
            transactions: p.log_transactions,
            perf_ms: p.log_perf_ms,
            errors: p.log_errors,
        },
        min_stream_size: p.min_stream_size,
        recording,
        metrics: !cfg.proxy.metrics_uri.is_empty(),
    };
    Some(PoolEntry {
        pool,
        queue,
        cluster_limits: p.cluster_limits,
        cluster_queue: p.cluster_queue,
    })
}

/// What a pool's per-second figures must keep: everything for the stats API, the Prometheus
/// endpoint (its in-flight gauge) and the per-second debug line (`debug_level` 2 and up); the
/// previous second's requests, errors and average for the degraded monitor and a back-off
/// that grows with errors (`error_retry_delay_mult_ms`); else nothing.
fn recording(cfg: &FileConfig, degraded: bool, errors_scale_delay: bool) -> Recording {
    let shown = cfg.proxy.stats_uri_match.is_some()
        || !cfg.proxy.metrics_uri.is_empty()
        || cfg.debug_level >= 2;
    match (shown, degraded || errors_scale_delay) {
        (true, _) => Recording::Full,
        (false, true) => Recording::Summary,
        (false, false) => Recording::Off,
    }
}

fn route_criteria(p: &PoolConfig, path: &PoolPath<'_>, problems: &mut Problems) -> RouteCriteria {
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

fn request_rules(p: &PoolConfig, path: &PoolPath<'_>, problems: &mut Problems) -> RequestRules {
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
