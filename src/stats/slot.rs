//! One second of a pool's (or the web server's) figures: the atomics requests add to, and how
//! a finished second is read (`SecondStats`). `second.rs` decides which slot holds which
//! second; this file only knows what a slot holds.

use super::histogram::LatencyCells;
use super::report::{PhaseSummary, SecondStats, CLASSES, COLUMNS};
use crate::timing::micros;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub(super) struct PhaseCells {
    count: AtomicU64,
    sum_us: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
}

impl PhaseCells {
    /// Count one sample; its time in µs.
    pub(super) fn add(&self, took: Duration) -> u64 {
        let us = micros(took);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        // Minimum and maximum rarely move once a second has a few samples: a plain read
        // first spares most requests two locked read-modify-writes.
        if us < self.min_us.load(Ordering::Relaxed) {
            self.min_us.fetch_min(us, Ordering::Relaxed);
        }
        if us > self.max_us.load(Ordering::Relaxed) {
            self.max_us.fetch_max(us, Ordering::Relaxed);
        }
        us
    }

    fn clear(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.sum_us.store(0, Ordering::Relaxed);
        self.min_us.store(u64::MAX, Ordering::Relaxed);
        self.max_us.store(0, Ordering::Relaxed);
    }

    /// (count, sum in µs).
    pub(super) fn count_and_sum(&self) -> (u64, u64) {
        (
            self.count.load(Ordering::Relaxed),
            self.sum_us.load(Ordering::Relaxed),
        )
    }

    fn summary(&self) -> Option<PhaseSummary> {
        let (count, sum) = self.count_and_sum();
        let us = |cell: &AtomicU64| Duration::from_micros(cell.load(Ordering::Relaxed));
        (count > 0).then(|| PhaseSummary {
            min: us(&self.min_us),
            max: us(&self.max_us),
            avg: Duration::from_micros(sum / count),
            sum: Duration::from_micros(sum),
            count,
        })
    }
}

/// The status class a count goes to: `1xx`...`5xx`, or no answer.
pub(super) fn class_of(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => CLASSES.len() - 1,
    }
}

#[derive(Default)]
pub(super) struct Slot {
    pub(super) sec: AtomicU32,
    pub(super) requests: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) bytes_sent: AtomicU64,
    pub(super) bytes_received: AtomicU64,
    /// `total` first, then `Phase::ALL`.
    pub(super) columns: [PhaseCells; COLUMNS.len()],
    /// Answers by status class (`CLASSES`).
    pub(super) classes: [AtomicU64; CLASSES.len()],
    /// Requests refused by the pool's limits or its full queue.
    pub(super) throttled: AtomicU64,
    pub(super) retries: AtomicU64,
    /// Client requests over TLS, and over HTTP/2 (the web server's slots).
    pub(super) tls: AtomicU64,
    pub(super) h2: AtomicU64,
    /// The total time's histogram.
    pub(super) latency: LatencyCells,
}

impl Slot {
    pub(super) fn clear(&self) {
        let counters = [
            &self.requests,
            &self.errors,
            &self.bytes_sent,
            &self.bytes_received,
            &self.throttled,
            &self.retries,
            &self.tls,
            &self.h2,
        ];
        for cell in counters.into_iter().chain(&self.classes) {
            cell.store(0, Ordering::Relaxed);
        }
        self.columns.iter().for_each(PhaseCells::clear);
        self.latency.clear();
    }

    /// Everything the slot holds, as read once its second is over.
    pub(super) fn read(&self) -> SecondStats {
        let load = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        let phases = COLUMNS
            .iter()
            .zip(&self.columns)
            .filter_map(|(name, cell)| cell.summary().map(|s| (*name, s)))
            .collect();
        SecondStats {
            requests: load(&self.requests),
            bytes_sent: load(&self.bytes_sent),
            bytes_received: load(&self.bytes_received),
            phases,
            errors: load(&self.errors),
            classes: std::array::from_fn(|i| load(&self.classes[i])),
            throttled: load(&self.throttled),
            retries: load(&self.retries),
            tls: load(&self.tls),
            h2: load(&self.h2),
            latency: self.latency.counts(),
        }
    }
}
