//! Retry policy (PixlProxy `retries`, `resp_code_success_match`, `error_retry_delay_*_ms`):
//! what counts as a failed attempt, how many more attempts follow, and how long to wait
//! before the next one (`Pool::back_off`, the one back-off every retrying path takes).

use super::Pool;
use regex::Regex;
use std::fmt::Display;
use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    /// Extra attempts after a failed one: a failing back end sees `retries + 1` attempts.
    pub(crate) retries: u32,
    /// `resp_code_success_match`, decided for every status code at start.
    pub(crate) success: SuccessCodes,
    pub(crate) delay: RetryDelay,
    /// Request bodies up to this size are kept in memory so they can be sent again.
    pub(crate) max_body_bytes: u64,
}

impl RetryPolicy {
    pub(crate) fn is_success(&self, status: u16) -> bool {
        self.success.contains(status)
    }
}

/// The status codes (100-999) a success pattern accepts, matched against each code's three
/// digits once at start, so judging a request is a bit test instead of a regex search.
#[derive(Clone, PartialEq)]
pub(crate) struct SuccessCodes([u64; 16]);

impl SuccessCodes {
    pub(crate) fn from_regex(pattern: &Regex) -> Self {
        let mut bits = [0u64; 16];
        for code in 100u16..=999 {
            if pattern.is_match(&code.to_string()) {
                bits[usize::from(code / 64)] |= 1 << (code % 64);
            }
        }
        SuccessCodes(bits)
    }

    pub(crate) fn contains(&self, status: u16) -> bool {
        (100..=999).contains(&status)
            && self.0[usize::from(status / 64)] & (1 << (status % 64)) != 0
    }
}

impl std::fmt::Debug for SuccessCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let codes = (100u16..=999).filter(|c| self.contains(*c)).count();
        write!(f, "SuccessCodes({codes} codes)")
    }
}

/// `base + mult × (errors in the pool during the previous full second)`, clamped to `max`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RetryDelay {
    pub(crate) base_ms: u64,
    pub(crate) mult_ms: u64,
    /// 0 = no upper bound.
    pub(crate) max_ms: u64,
}

impl RetryDelay {
    pub(crate) fn for_errors(&self, errors_previous_second: u64) -> Duration {
        let ms = self
            .base_ms
            .saturating_add(self.mult_ms.saturating_mul(errors_previous_second));
        let ms = if self.max_ms > 0 {
            ms.min(self.max_ms)
        } else {
            ms
        };
        Duration::from_millis(ms)
    }
}

impl Pool {
    /// Wait before another attempt after `what` failed (`why`): the retry delay for the pool's
    /// errors in the previous full second. The retry is counted in the metrics and logged as
    /// `[pool] <what> failed (<why>); retrying in <ms> ms, <left> retries left after this`.
    pub(crate) async fn back_off(
        &self,
        what: &(dyn Display + Sync),
        why: &(dyn Display + Sync),
        left: u32,
    ) {
        self.metrics.retried();
        self.stats.record_retry();
        let delay = self
            .retry
            .delay
            .for_errors(self.stats.previous_second().errors);
        log::warn!(
            "[{}] {what} failed ({why}); retrying in {} ms, {left} retries left after this",
            self.id,
            delay.as_millis()
        );
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
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
            success: SuccessCodes::from_regex(
                &Regex::new(crate::config::DEFAULT_SUCCESS_MATCH).unwrap(),
            ),
            delay: RetryDelay::default(),
            max_body_bytes: 0,
        };
        assert!(p.is_success(200) && p.is_success(302) && p.is_success(399));
        assert!(!p.is_success(199) && !p.is_success(404) && !p.is_success(500));
        assert!(!p.is_success(0) && !p.is_success(1000) && !p.is_success(u16::MAX));
        let odd = SuccessCodes::from_regex(&Regex::new("^(404|9\\d\\d)$").unwrap());
        assert!(odd.contains(404) && odd.contains(999) && odd.contains(900));
        assert!(!odd.contains(200) && !odd.contains(405));
    }
}
