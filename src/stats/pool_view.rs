//! What the stats read of a pool beyond its per-second counters, through the small trait
//! `PoolView` (the pool implements it; nothing here depends on the pool): its limits
//! (`max_concurrent_requests`, `max_requests_per_sec`), its degraded state, its recent
//! errors and its targets, each with its health (`health_check`: up or down since when, the
//! last check's result), back-end requests in progress, connections new and reused, and
//! failed attempts. Shown as a pool's `limits`, `degraded` and `targets` in the stats API.

use super::errors::RecentErrors;
use serde_json::{json, Value};

/// A pool as the stats read it.
pub(crate) trait PoolView: Send + Sync {
    fn limits(&self) -> PoolLimits;
    /// Whether requests now carry `X-Degraded: true`.
    fn degraded(&self) -> bool;
    fn recent_errors(&self) -> &RecentErrors;
    fn targets(&self) -> Vec<TargetFigures>;
}

/// A pool's limits (0 = none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PoolLimits {
    pub(crate) max_concurrent: usize,
    pub(crate) max_per_sec: u32,
}

/// A target's health as its checks found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Up,
    Down,
    /// The pool has no `health_check`.
    Unchecked,
}

impl Health {
    fn name(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unchecked => "unchecked",
        }
    }
}

/// The last health check of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckResult {
    pub(crate) when_ms: u64,
    pub(crate) passed: bool,
    /// `ok`, or why it failed.
    pub(crate) result: String,
}

/// One target, as the stats show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetFigures {
    /// `http://host:port`.
    pub(crate) url: String,
    pub(crate) health: Health,
    /// Since when (Unix ms) the health is what it is: the last change, or the start.
    pub(crate) since_ms: u64,
    pub(crate) last_check: Option<CheckResult>,
    /// Back-end requests in progress on this target.
    pub(crate) active: usize,
    /// Connections used since start, and how many of them came from the keep-alive pool.
    pub(crate) connections: u64,
    pub(crate) reused: u64,
    /// Failed attempts since start.
    pub(crate) failures: u64,
}

impl TargetFigures {
    /// `url`, `health`, `since`, `last_check` (`when`, `passed`, `result`; zeros before the
    /// first), `active`, `connections`, `reused`, `failures`. Times in Unix seconds.
    pub(crate) fn to_json(&self) -> Value {
        let check = self.last_check.as_ref();
        json!({
            "url": self.url,
            "health": self.health.name(),
            "since": self.since_ms / 1000,
            "last_check": {
                "when": check.map_or(0, |c| c.when_ms / 1000),
                "passed": check.is_some_and(|c| c.passed),
                "result": check.map_or("", |c| c.result.as_str()),
            },
            "active": self.active,
            "connections": self.connections,
            "reused": self.reused,
            "failures": self.failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_has_the_same_shape_before_and_after_its_first_check() {
        let mut t = TargetFigures {
            url: "http://127.0.0.1:9".into(),
            health: Health::Up,
            since_ms: 5_000,
            last_check: None,
            active: 0,
            connections: 3,
            reused: 2,
            failures: 1,
        };
        let before = t.to_json();
        assert_eq!(before["last_check"]["when"], 0);
        assert_eq!(before["health"], "up");
        t.health = Health::Down;
        t.last_check = Some(CheckResult {
            when_ms: 7_000,
            passed: false,
            result: "connect: refused".into(),
        });
        let after = t.to_json();
        assert_eq!(after["health"], "down");
        assert_eq!(after["last_check"]["result"], "connect: refused");
        assert_eq!(after["last_check"]["when"], 7);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&before), keys(&after));
    }
}
