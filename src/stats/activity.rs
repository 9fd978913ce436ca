//! Per-second pool activity: completed requests, their total time and failed attempts, kept
//! for the current and the previous wall-clock second with lock-free counters.
//!
//! Retry back-off reads "errors in the pool during the previous full second" and the degraded
//! monitor reads the previous second's request count and average time. Each counter packs the
//! second and the count into one `AtomicU64`, so recording is a single compare-and-swap.

use crate::clock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn pack(sec: u32, n: u32) -> u64 {
    (u64::from(sec) << 32) | u64::from(n)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// A count for the current second plus the final count of the second before it.
#[derive(Debug, Default)]
pub struct SecondCounter {
    current: AtomicU64,
    previous: AtomicU64,
}

impl SecondCounter {
    /// Add `n` to second `sec` (saturating).
    pub fn add(&self, sec: u32, n: u32) {
        let mut seen = self.current.load(Ordering::Acquire);
        loop {
            let (s, c) = unpack(seen);
            // A clock stepping back a second keeps counting into the newer window.
            let next = if s >= sec {
                pack(s, c.saturating_add(n))
            } else {
                pack(sec, n)
            };
            match self.current.compare_exchange_weak(
                seen,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if s < sec {
                        self.previous.store(seen, Ordering::Release);
                    }
                    return;
                }
                Err(actual) => seen = actual,
            }
        }
    }

    /// The count of second `sec`, if it is the current or the previous window; else 0.
    pub fn in_second(&self, sec: u32) -> u32 {
        [&self.current, &self.previous]
            .iter()
            .map(|slot| unpack(slot.load(Ordering::Acquire)))
            .find(|(s, _)| *s == sec)
            .map_or(0, |(_, c)| c)
    }
}

/// What one pool did in one second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondSummary {
    pub requests: u32,
    pub errors: u32,
    /// Average time of the requests completed in that second, in milliseconds.
    pub avg_ms: f64,
}

#[derive(Debug, Default)]
pub struct PoolActivity {
    completed: SecondCounter,
    elapsed_ms: SecondCounter,
    errors: SecondCounter,
}

impl PoolActivity {
    /// A request to the back end finished (successfully or not) after `elapsed`.
    pub fn record_completion(&self, elapsed: Duration) {
        let sec = clock::now_sec();
        self.completed.add(sec, 1);
        let ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
        self.elapsed_ms.add(sec, ms);
    }

    /// One attempt failed: connect error, reset, timeout or a status outside the success match.
    pub fn record_error(&self) {
        self.errors.add(clock::now_sec(), 1);
    }

    /// The last full second.
    pub fn previous_second(&self) -> SecondSummary {
        self.summary(clock::now_sec().saturating_sub(1))
    }

    pub fn summary(&self, sec: u32) -> SecondSummary {
        let requests = self.completed.in_second(sec);
        let total = self.elapsed_ms.in_second(sec);
        SecondSummary {
            requests,
            errors: self.errors.in_second(sec),
            avg_ms: if requests == 0 {
                0.0
            } else {
                f64::from(total) / f64::from(requests)
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_roll_over_to_the_previous_window() {
        let c = SecondCounter::default();
        c.add(100, 2);
        c.add(100, 3);
        assert_eq!(c.in_second(100), 5);
        c.add(101, 1);
        assert_eq!(c.in_second(100), 5);
        assert_eq!(c.in_second(101), 1);
        c.add(103, 1);
        assert_eq!(c.in_second(102), 0, "an idle second counts nothing");
        assert_eq!(
            c.in_second(101),
            1,
            "the window before the current one is kept"
        );
        assert_eq!(c.in_second(100), 0, "only two windows are kept");
    }

    #[test]
    fn concurrent_adds_are_all_counted() {
        let c = std::sync::Arc::new(SecondCounter::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| c.add(7, 1)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(c.in_second(7), 40_000);
    }

    #[test]
    fn summary_averages_elapsed_time() {
        let a = PoolActivity::default();
        let sec = clock::now_sec();
        a.completed.add(sec, 4);
        a.elapsed_ms.add(sec, 100);
        a.errors.add(sec, 1);
        let s = a.summary(sec);
        assert_eq!((s.requests, s.errors), (4, 1));
        assert!((s.avg_ms - 25.0).abs() < f64::EPSILON);
    }
}
