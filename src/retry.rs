//! Retry policy (PixlProxy `retries`, `resp_code_success_match`, `error_retry_delay_*_ms`):
//! what counts as a failed attempt, how many more attempts follow, and how long to wait.

use regex::Regex;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Extra attempts after a failed one: a failing back end sees `retries + 1` attempts.
    pub retries: u32,
    /// Matched against the status code as three digits.
    pub success: Regex,
    pub delay: RetryDelay,
    /// Request bodies up to this size are kept in memory so they can be sent again.
    pub max_body_bytes: u64,
}

impl RetryPolicy {
    pub fn is_success(&self, status: u16) -> bool {
        http::StatusCode::from_u16(status).is_ok_and(|s| self.success.is_match(s.as_str()))
    }
}

/// `base + mult × (errors in the pool during the previous full second)`, clamped to `max`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RetryDelay {
    pub base_ms: u64,
    pub mult_ms: u64,
    /// 0 = no upper bound.
    pub max_ms: u64,
}

impl RetryDelay {
    pub fn for_errors(&self, errors_previous_second: u32) -> Duration {
        let ms = self.base_ms.saturating_add(
            self.mult_ms
                .saturating_mul(u64::from(errors_previous_second)),
        );
        let ms = if self.max_ms > 0 {
            ms.min(self.max_ms)
        } else {
            ms
        };
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_with_last_seconds_errors_and_is_clamped() {
        let d = RetryDelay {
            base_ms: 100,
            mult_ms: 20,
            max_ms: 5000,
        };
        assert_eq!(d.for_errors(0), Duration::from_millis(100));
        assert_eq!(d.for_errors(10), Duration::from_millis(300));
        assert_eq!(d.for_errors(1000), Duration::from_millis(5000));
        assert_eq!(RetryDelay::default().for_errors(50), Duration::ZERO);
        let unbounded = RetryDelay { max_ms: 0, ..d };
        assert_eq!(unbounded.for_errors(1000), Duration::from_millis(20_100));
    }

    #[test]
    fn default_success_range_is_200_to_399() {
        let p = RetryPolicy {
            retries: 1,
            success: Regex::new(crate::config::model::DEFAULT_SUCCESS_MATCH).unwrap(),
            delay: RetryDelay::default(),
            max_body_bytes: 0,
        };
        assert!(p.is_success(200) && p.is_success(302) && p.is_success(399));
        assert!(!p.is_success(199) && !p.is_success(404) && !p.is_success(500));
    }
}
