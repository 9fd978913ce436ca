//! A pool's traffic control: throttling limits, retry policy, degraded monitor.

use crate::admission::LimitSettings;
use crate::config::file::PoolConfig;
use crate::config::problem::{PoolPath, Problems};
use crate::pool::{DegradedMonitor, RetryDelay, RetryPolicy, SuccessCodes};
use std::time::Duration;

pub(super) fn limits(p: &PoolConfig) -> LimitSettings {
    LimitSettings {
        max_concurrent: p.max_concurrent_requests,
        max_per_sec: p.max_requests_per_sec,
        per_client_per_sec: p.max_requests_per_sec_per_ip,
        per_client_per_min: p.max_requests_per_min_per_ip,
    }
}

pub(super) fn retry_policy(
    p: &PoolConfig,
    path: &PoolPath<'_>,
    problems: &mut Problems,
) -> Option<RetryPolicy> {
    let key = path.key("resp_code_success_match");
    let success = problems.regex(&key, &p.resp_code_success_match, false)?;
    Some(RetryPolicy {
        retries: p.retries,
        success: SuccessCodes::from_regex(&success),
        delay: RetryDelay {
            base_ms: p.error_retry_delay_base_ms,
            mult_ms: p.error_retry_delay_mult_ms,
            max_ms: p.error_retry_delay_max_ms,
        },
        max_body_bytes: p.retry_max_body_bytes,
    })
}

pub(super) fn degraded_monitor(
    p: &PoolConfig,
    path: &PoolPath<'_>,
    problems: &mut Problems,
) -> Option<DegradedMonitor> {
    if !p.degraded_perf_monitor {
        return None;
    }
    for (key, value) in [
        ("degraded_min_avg_ms", p.degraded_min_avg_ms),
        ("degraded_min_req_sec", p.degraded_min_req_sec),
    ] {
        if !value.is_finite() || value < 0.0 {
            problems.push(path.key(key), "must be a number of 0 or more");
        }
    }
    Some(DegradedMonitor {
        min_avg_ms: p.degraded_min_avg_ms,
        min_req_sec: p.degraded_min_req_sec,
        min_uptime: Duration::from_secs(p.degraded_min_uptime_sec),
    })
}
