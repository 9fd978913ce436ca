//! The one per-second counter type: a pool's (or the web server's) figures for exactly the
//! last full second. PixlProxy's JSON stats and its "Average Performance Metrics" lines read
//! requests, bytes, and per phase the minimum, maximum and average time; the retry back-off
//! reads the errors of the previous second (`error_retry_delay_mult_ms`), the degraded monitor
//! its request count and average time; the live page and the stats' history read the answers
//! by status class, refusals, retries and the total time's histogram (`histogram.rs`).
//!
//! Three slots of atomics (`slot.rs`), one per wall-clock second (`sec % 3`): requests record
//! into the current second's slot, readers read the previous second's, and the stats ticker
//! clears the next one ahead of time (a request that finds its slot stale clears it itself).
//! No lock is taken per request, and nothing is recorded that no reader needs (`Recording`).

use super::history::Point;
use super::report::SecondStats;
use super::slot::{class_of, Slot};
use crate::timing::clock;
use crate::timing::PerfTimer;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A slot being cleared; samples that meet it are skipped.
const CLEARING: u32 = u32::MAX;

/// What a pool's figures keep, decided at start from what reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Recording {
    /// Nothing reads them: every recording call does nothing.
    Off,
    /// Requests, errors and total time (the retry back-off and the degraded monitor).
    Summary,
    /// Everything, with the in-flight gauge (the stats API, Prometheus, the per-second line).
    Full,
}

/// How a client request was answered, as the web server's figures count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Answered {
    /// The status written (0 = none).
    pub(crate) status: u16,
    pub(crate) tls: bool,
    pub(crate) h2: bool,
}

/// What one pool did in the previous second, as back-off and degraded hints read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SecondSummary {
    pub(crate) requests: u64,
    /// Failed attempts: connect errors, resets, timeouts, statuses outside the success match.
    pub(crate) errors: u64,
    /// Average total time of the requests completed in that second, in milliseconds.
    pub(crate) avg_ms: f64,
}

/// A pool's (or the web server's) per-second figures.
pub(crate) struct PoolStats {
    slots: [Slot; 3],
    /// Back-end requests of this pool in progress (the queue counts its own).
    executing: AtomicUsize,
    recording: Recording,
}

impl std::fmt::Debug for PoolStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolStats")
            .field("recording", &self.recording)
            .finish_non_exhaustive()
    }
}

impl PoolStats {
    pub(crate) fn new(recording: Recording) -> Self {
        PoolStats {
            slots: Default::default(),
            executing: AtomicUsize::new(0),
            recording,
        }
    }

    /// Whether everything is kept (a stats API, Prometheus or the per-second line reads it).
    pub(crate) fn records_all(&self) -> bool {
        self.recording == Recording::Full
    }

    /// Count one finished back-end request and the status it ended with (0 = no answer).
    pub(crate) fn record(&self, perf: &PerfTimer, status: u16) {
        if self.recording != Recording::Off {
            self.record_at(clock::now_sec(), perf, status);
        }
    }

    /// Count one failed attempt (several per request when it is retried).
    pub(crate) fn record_error(&self) {
        if self.recording == Recording::Off {
            return;
        }
        if let Some(slot) = self.slot_for(clock::now_sec()) {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one request refused by the pool's limits or its full queue (the live page).
    pub(crate) fn record_throttled(&self) {
        self.count_full(|slot| &slot.throttled);
    }

    /// Count one retried attempt (the live page).
    pub(crate) fn record_retry(&self) {
        self.count_full(|slot| &slot.retries);
    }

    fn count_full(&self, cell: impl Fn(&Slot) -> &AtomicU64) {
        if self.recording != Recording::Full {
            return;
        }
        if let Some(slot) = self.slot_for(clock::now_sec()) {
            cell(slot).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one request known only by its total time, bytes and answer (the web server's
    /// view).
    pub(crate) fn record_total(
        &self,
        total: Duration,
        bytes_sent: u64,
        bytes_received: u64,
        answered: Answered,
    ) {
        if self.recording == Recording::Off {
            return;
        }
        let Some(slot) = self.slot_for(clock::now_sec()) else {
            return;
        };
        slot.requests.fetch_add(1, Ordering::Relaxed);
        slot.bytes_sent.fetch_add(bytes_sent, Ordering::Relaxed);
        slot.bytes_received
            .fetch_add(bytes_received, Ordering::Relaxed);
        slot.columns[0].add(total);
        if self.recording == Recording::Full {
            slot.classes[class_of(answered.status)].fetch_add(1, Ordering::Relaxed);
            if answered.tls {
                slot.tls.fetch_add(1, Ordering::Relaxed);
            }
            if answered.h2 {
                slot.h2.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn record_at(&self, sec: u32, perf: &PerfTimer, status: u16) {
        let Some(slot) = self.slot_for(sec) else {
            return;
        };
        slot.requests.fetch_add(1, Ordering::Relaxed);
        let total_us = slot.columns[0].add(perf.total());
        if self.recording == Recording::Full {
            slot.bytes_sent
                .fetch_add(perf.bytes_sent, Ordering::Relaxed);
            slot.bytes_received
                .fetch_add(perf.bytes_received, Ordering::Relaxed);
            for (phase, took) in perf.phases() {
                slot.columns[1 + phase.index()].add(took);
            }
            slot.classes[class_of(status)].fetch_add(1, Ordering::Relaxed);
            slot.latency.add(total_us);
        }
    }

    /// The slot of second `sec`, cleared first if it still holds an older second.
    fn slot_for(&self, sec: u32) -> Option<&Slot> {
        let slot = &self.slots[(sec % 3) as usize];
        let held = slot.sec.load(Ordering::Acquire);
        if held == sec {
            return Some(slot);
        }
        if held == CLEARING || held > sec {
            return None;
        }
        if slot
            .sec
            .compare_exchange(held, CLEARING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            slot.clear();
            slot.sec.store(sec, Ordering::Release);
            return Some(slot);
        }
        (slot.sec.load(Ordering::Acquire) == sec).then_some(slot)
    }

    /// Clear the slot of second `sec` ahead of time (the stats ticker, once a second).
    pub(crate) fn prepare(&self, sec: u32) {
        if self.recording != Recording::Off {
            let _ = self.slot_for(sec);
        }
    }

    /// The previous second by the coarse clock (what the request path reads: cheap, and
    /// the same clock the figures were filed by).
    pub(crate) fn previous_second(&self) -> SecondSummary {
        self.summary(clock::now_sec().saturating_sub(1))
    }

    fn summary(&self, sec: u32) -> SecondSummary {
        let slot = &self.slots[(sec % 3) as usize];
        if slot.sec.load(Ordering::Acquire) != sec {
            return SecondSummary {
                requests: 0,
                errors: 0,
                avg_ms: 0.0,
            };
        }
        let (count, sum_us) = slot.columns[0].count_and_sum();
        SecondSummary {
            requests: slot.requests.load(Ordering::Relaxed),
            errors: slot.errors.load(Ordering::Relaxed),
            avg_ms: match count {
                0 => 0.0,
                n => sum_us as f64 / n as f64 / 1000.0,
            },
        }
    }

    /// The last full second. Requests are filed by the coarse clock, which may lag a few
    /// milliseconds; the second read is the exact one, so a reader never looks two seconds back.
    pub(crate) fn last_second(&self) -> SecondStats {
        self.second(clock::now_sec_exact().wrapping_sub(1))
    }

    fn second(&self, sec: u32) -> SecondStats {
        let slot = &self.slots[(sec % 3) as usize];
        if slot.sec.load(Ordering::Acquire) != sec {
            return SecondStats::default();
        }
        slot.read()
    }

    /// Second `sec` as a point of the history (idle when the slots no longer hold it).
    pub(crate) fn point(&self, sec: u32) -> Point {
        let s = self.second(sec);
        Point {
            requests: s.requests,
            errors: s.errors,
            p99_us: s.percentile_us(0.99).unwrap_or(0),
        }
    }

    /// A back-end request of this pool started (the in-flight gauge).
    pub(crate) fn start_request(&self) {
        if self.recording == Recording::Full {
            self.executing.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A back-end request of this pool ended.
    pub(crate) fn end_request(&self) {
        if self.recording == Recording::Full {
            self.executing.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Back-end requests of this pool in progress.
    pub(crate) fn executing(&self) -> usize {
        self.executing.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::Phase;

    fn timer() -> PerfTimer {
        let mut t = PerfTimer::start();
        t.lap(Phase::Connect);
        t.bytes_sent = 10;
        t.bytes_received = 20;
        t
    }

    #[test]
    fn a_second_is_read_once_it_is_over_and_slots_are_reused() {
        let stats = PoolStats::new(Recording::Full);
        stats.record_at(100, &timer(), 200);
        stats.record_at(100, &timer(), 200);
        stats.record_at(101, &timer(), 200);
        let s = stats.second(100);
        assert_eq!((s.requests, s.bytes_sent, s.bytes_received), (2, 20, 40));
        let names: Vec<_> = s.phases.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["total", "connect"]);
        assert!(s.phases[0].1.min <= s.phases[0].1.avg && s.phases[0].1.avg <= s.phases[0].1.max);
        assert_eq!(stats.second(101).requests, 1);
        // Second 103 reuses second 100's slot: cleared, not added to.
        stats.record_at(103, &timer(), 200);
        assert_eq!(stats.second(103).requests, 1);
        assert_eq!(stats.second(100), SecondStats::default());
    }

    #[test]
    fn figures_nobody_reads_are_not_recorded() {
        let stats = PoolStats::new(Recording::Off);
        stats.start_request();
        stats.record(&timer(), 200);
        stats.record_error();
        stats.record_throttled();
        stats.record_total(Duration::from_millis(5), 1, 2, Answered::default());
        assert_eq!(stats.executing(), 0);
        assert_eq!(stats.second(clock::now_sec()).requests, 0);
        let read = PoolStats::new(Recording::Full);
        read.start_request();
        let sec = clock::now_sec();
        read.record(&timer(), 200);
        assert_eq!(read.executing(), 1);
        // (Unless the second turned over in between.)
        if clock::now_sec() == sec {
            assert_eq!(read.second(sec).requests, 1);
        }
    }

    #[test]
    fn a_summary_keeps_requests_errors_and_the_average_only() {
        let stats = PoolStats::new(Recording::Summary);
        stats.start_request();
        let mut t = PerfTimer::start_at(std::time::Instant::now());
        t.end(std::time::Instant::now() + Duration::from_millis(40));
        stats.record_at(7, &t, 200);
        let mut t = PerfTimer::start_at(std::time::Instant::now());
        t.end(std::time::Instant::now() + Duration::from_millis(20));
        stats.record_at(7, &t, 200);
        if let Some(slot) = stats.slot_for(7) {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
        let s = stats.summary(7);
        assert_eq!((s.requests, s.errors), (2, 1));
        assert!((s.avg_ms - 30.0).abs() < 1.0, "{}", s.avg_ms);
        assert_eq!(stats.executing(), 0, "the gauge is for Full only");
        let full = stats.second(7);
        assert_eq!(full.phases.len(), 1, "total only");
        assert_eq!(
            stats.summary(8).requests,
            0,
            "an idle second counts nothing"
        );
    }

    #[test]
    fn answers_refusals_and_retries_are_counted_for_the_live_page() {
        let stats = PoolStats::new(Recording::Full);
        stats.record_at(20, &timer(), 200);
        stats.record_at(20, &timer(), 503);
        stats.record_at(20, &timer(), 0);
        if let Some(slot) = stats.slot_for(20) {
            slot.throttled.fetch_add(2, Ordering::Relaxed);
        }
        let s = stats.second(20);
        assert_eq!(s.classes, [0, 1, 0, 0, 1, 1]);
        assert_eq!(s.throttled, 2);
        assert!(s.percentile_us(0.99).is_some());
        assert_eq!(stats.point(20).requests, 3);
        assert_eq!(
            stats.point(21),
            Point::default(),
            "a second not kept is idle"
        );
        let summary = PoolStats::new(Recording::Summary);
        summary.record_at(20, &timer(), 503);
        let s = summary.second(20);
        assert_eq!(
            (s.requests, s.classes),
            (1, [0; 6]),
            "classes are for Full only"
        );
        let web = PoolStats::new(Recording::Full);
        let answered = Answered {
            status: 404,
            tls: true,
            h2: false,
        };
        let sec = clock::now_sec();
        web.record_total(Duration::from_millis(1), 1, 1, answered);
        // (Unless the second turned over in between.)
        if clock::now_sec() == sec {
            let s = web.second(sec);
            assert_eq!((s.tls, s.h2, s.classes[3]), (1, 0, 1));
        }
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let stats = std::sync::Arc::new(PoolStats::new(Recording::Summary));
        stats.prepare(9);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        if let Some(slot) = stats.slot_for(9) {
                            slot.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(stats.summary(9).errors, 40_000);
    }
}
