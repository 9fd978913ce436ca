//! Degraded performance hints (PixlProxy "Degraded Performance Monitoring"): while the pool's
//! back end was slow during the previous full second, requests to it carry `X-Degraded: true`.

use crate::stats::SecondSummary;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DegradedMonitor {
    /// `degraded_min_avg_ms`: the previous second's average request time must reach this.
    pub(crate) min_avg_ms: f64,
    /// `degraded_min_req_sec`: and at least this many requests must have completed in it.
    pub(crate) min_req_sec: f64,
    /// `degraded_min_uptime_sec`: and the proxy must have been up this long.
    pub(crate) min_uptime: Duration,
}

impl DegradedMonitor {
    /// Whether all three conditions hold. A second without completed requests has no average,
    /// so it never counts as degraded.
    pub(crate) fn is_degraded(&self, previous: &SecondSummary, uptime: Duration) -> bool {
        previous.requests > 0
            && previous.avg_ms >= self.min_avg_ms
            && previous.requests as f64 >= self.min_req_sec
            && uptime >= self.min_uptime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(requests: u64, avg_ms: f64) -> SecondSummary {
        SecondSummary {
            requests,
            errors: 0,
            avg_ms,
        }
    }

    #[test]
    fn all_three_conditions_must_hold() {
        let m = DegradedMonitor {
            min_avg_ms: 100.0,
            min_req_sec: 10.0,
            min_uptime: Duration::from_secs(60),
        };
        let up = Duration::from_secs(61);
        assert!(m.is_degraded(&second(10, 100.0), up));
        assert!(!m.is_degraded(&second(10, 99.0), up), "fast enough");
        assert!(!m.is_degraded(&second(9, 150.0), up), "too little traffic");
        assert!(
            !m.is_degraded(&second(10, 150.0), Duration::from_secs(59)),
            "just started"
        );
        assert!(!m.is_degraded(&second(0, 0.0), up));
    }
}
