//! What a target has been through, for the stats' `targets` and the live page: back-end
//! requests in progress on it, connections used (new or reused from the keep-alive pool) and
//! failed attempts, and its health as `health_check` found it (up or down since when, and the
//! last check's result).
//!
//! The request figures are atomics, counted only when the pool keeps its full figures (a stats
//! API or Prometheus reads them): a request adds its connection and holds `OnTarget` while it
//! is in progress, which gives the in-progress count back however the request ends. The
//! health is written by the health check's background service and read by the stats only, so
//! it sits behind a lock no request takes.

use crate::stats::{CheckResult, Health};
use crate::timing::clock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A target's request figures.
#[derive(Debug, Default)]
pub(crate) struct TargetActivity {
    /// Whether anything reads them; else every call does nothing.
    recording: bool,
    active: AtomicUsize,
    connections: AtomicU64,
    reused: AtomicU64,
    failures: AtomicU64,
}

/// One back-end request in progress on a target; dropping it ends it.
#[derive(Debug)]
pub(crate) struct OnTarget(Arc<TargetActivity>);

impl Drop for OnTarget {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl TargetActivity {
    pub(super) fn new(recording: bool) -> Arc<Self> {
        Arc::new(TargetActivity {
            recording,
            ..TargetActivity::default()
        })
    }

    /// A request got a connection to this target (`reused` from the keep-alive pool): it is
    /// in progress until the returned hold is dropped (`None` when nothing is counted).
    pub(crate) fn connected(self: &Arc<Self>, reused: bool) -> Option<OnTarget> {
        if !self.recording {
            return None;
        }
        self.connections.fetch_add(1, Ordering::Relaxed);
        if reused {
            self.reused.fetch_add(1, Ordering::Relaxed);
        }
        self.active.fetch_add(1, Ordering::Relaxed);
        Some(OnTarget(self.clone()))
    }

    /// An attempt on this target failed.
    pub(super) fn failed(&self) {
        if self.recording {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
struct HealthState {
    healthy: bool,
    since_ms: u64,
    last: Option<CheckResult>,
}

/// A target's health as its checks found it.
#[derive(Debug)]
pub(crate) struct TargetHealth {
    /// Whether the pool has a `health_check`.
    checked: bool,
    state: Mutex<HealthState>,
}

impl TargetHealth {
    /// A target counts as up from the start until its checks say otherwise (as the balancer
    /// treats it).
    pub(super) fn new(checked: bool) -> Self {
        TargetHealth {
            checked,
            state: Mutex::new(HealthState {
                healthy: true,
                since_ms: clock::unix_ms(),
                last: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A check ended: `Ok` or why it failed.
    pub(super) fn checked(&self, outcome: Result<(), String>) {
        let passed = outcome.is_ok();
        self.state().last = Some(CheckResult {
            when_ms: clock::unix_ms(),
            passed,
            result: outcome.err().unwrap_or_else(|| "ok".into()),
        });
    }

    /// The checks changed the target's health (its thresholds were met).
    pub(super) fn changed(&self, healthy: bool) {
        let mut state = self.state();
        state.healthy = healthy;
        state.since_ms = clock::unix_ms();
    }

    /// (health, since, last check).
    pub(super) fn read(&self) -> (Health, u64, Option<CheckResult>) {
        let state = self.state();
        let health = match (self.checked, state.healthy) {
            (false, _) => Health::Unchecked,
            (true, true) => Health::Up,
            (true, false) => Health::Down,
        };
        (health, state.since_ms, state.last.clone())
    }
}

impl TargetActivity {
    /// (active, connections, reused, failures).
    pub(super) fn read(&self) -> (usize, u64, u64, u64) {
        (
            self.active.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
            self.reused.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_in_progress_while_its_hold_lives() {
        let t = TargetActivity::new(true);
        let first = t.connected(false);
        let second = t.connected(true);
        t.failed();
        assert_eq!(t.read(), (2, 2, 1, 1));
        drop(first);
        drop(second);
        assert_eq!(t.read(), (0, 2, 1, 1));
        let off = TargetActivity::new(false);
        assert!(off.connected(true).is_none());
        off.failed();
        assert_eq!(off.read(), (0, 0, 0, 0));
    }

    #[test]
    fn health_changes_keep_their_time_and_checks_their_result() {
        let h = TargetHealth::new(true);
        let (health, since, last) = h.read();
        assert_eq!((health, last), (Health::Up, None));
        h.checked(Err("connect: refused".into()));
        h.changed(false);
        let (health, later, last) = h.read();
        assert_eq!(health, Health::Down);
        assert!(later >= since);
        let last = last.unwrap();
        assert_eq!(
            (last.passed, last.result.as_str()),
            (false, "connect: refused")
        );
        h.checked(Ok(()));
        assert_eq!(h.read().2.unwrap().result, "ok");
        assert_eq!(TargetHealth::new(false).read().0, Health::Unchecked);
    }
}
