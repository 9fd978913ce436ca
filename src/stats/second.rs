//! Per-pool statistics for exactly the last full second (PixlProxy's JSON stats and its
//! "Average Performance Metrics" lines): requests, bytes, and per phase the minimum, maximum
//! and average time.
//!
//! Three slots of atomics, one per wall-clock second (`sec % 3`): requests record into the
//! current second's slot, readers read the previous second's, and the stats ticker clears the
//! next one ahead of time (a request that finds its slot stale clears it itself). No lock is
//! taken per request.

use crate::clock;
use crate::timing::{ms_rounded, PerfTimer};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// The phases PixlProxy reports, `total` first.
const PHASES: [&str; 6] = ["total", "dns", "connect", "send", "wait", "receive"];
/// A slot being cleared; samples that meet it are skipped.
const CLEARING: u32 = u32::MAX;

#[derive(Default)]
struct PhaseCells {
    count: AtomicU64,
    sum_us: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
}

#[derive(Default)]
struct Slot {
    sec: AtomicU32,
    requests: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    phases: [PhaseCells; 6],
}

impl Slot {
    fn clear(&self) {
        for cell in [&self.requests, &self.bytes_sent, &self.bytes_received] {
            cell.store(0, Ordering::Relaxed);
        }
        for p in &self.phases {
            p.count.store(0, Ordering::Relaxed);
            p.sum_us.store(0, Ordering::Relaxed);
            p.min_us.store(u64::MAX, Ordering::Relaxed);
            p.max_us.store(0, Ordering::Relaxed);
        }
    }
}

/// What one request adds to a second.
struct Sample<'a> {
    total: Duration,
    phases: &'a [(&'static str, Duration)],
    bytes_sent: u64,
    bytes_received: u64,
}

/// One phase over one second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhaseSummary {
    pub min: Duration,
    pub max: Duration,
    pub avg: Duration,
    pub sum: Duration,
    pub count: u64,
}

/// One pool's last full second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecondStats {
    pub requests: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub phases: Vec<(&'static str, PhaseSummary)>,
}

#[derive(Default)]
pub struct PoolStats {
    slots: [Slot; 3],
    /// Back-end requests of this pool in progress (the queue counts its own).
    executing: AtomicUsize,
    /// Nothing reads these figures (no stats API, no Prometheus endpoint, `debug_level` below
    /// 2), so requests do not record them.
    unread: bool,
}

impl std::fmt::Debug for PoolStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolStats").finish_non_exhaustive()
    }
}

impl PoolStats {
    /// Figures nobody reads: every recording call does nothing.
    pub fn unread() -> Self {
        PoolStats {
            unread: true,
            ..PoolStats::default()
        }
    }

    /// Count one finished back-end request.
    pub fn record(&self, perf: &PerfTimer) {
        if !self.unread {
            self.record_at(clock::now_sec(), perf);
        }
    }

    /// Count one request known only by its total time and bytes (the web server's view).
    pub fn record_total(&self, total: Duration, bytes_sent: u64, bytes_received: u64) {
        if self.unread {
            return;
        }
        let sample = Sample {
            total,
            phases: &[],
            bytes_sent,
            bytes_received,
        };
        self.record_sample(clock::now_sec(), &sample);
    }

    fn record_at(&self, sec: u32, perf: &PerfTimer) {
        let sample = Sample {
            total: perf.total(),
            phases: perf.phases(),
            bytes_sent: perf.bytes_sent,
            bytes_received: perf.bytes_received,
        };
        self.record_sample(sec, &sample);
    }

    fn record_sample(&self, sec: u32, sample: &Sample) {
        let Some(slot) = self.slot_for(sec) else {
            return;
        };
        slot.requests.fetch_add(1, Ordering::Relaxed);
        slot.bytes_sent
            .fetch_add(sample.bytes_sent, Ordering::Relaxed);
        slot.bytes_received
            .fetch_add(sample.bytes_received, Ordering::Relaxed);
        let total = [("total", sample.total)];
        for (name, took) in total.iter().chain(sample.phases) {
            if let Some(i) = PHASES.iter().position(|p| p == name) {
                let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                let cell = &slot.phases[i];
                cell.count.fetch_add(1, Ordering::Relaxed);
                cell.sum_us.fetch_add(us, Ordering::Relaxed);
                // Minimum and maximum rarely move once a second has a few samples: a plain
                // read first spares most requests two locked read-modify-writes.
                if us < cell.min_us.load(Ordering::Relaxed) {
                    cell.min_us.fetch_min(us, Ordering::Relaxed);
                }
                if us > cell.max_us.load(Ordering::Relaxed) {
                    cell.max_us.fetch_max(us, Ordering::Relaxed);
                }
            }
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
    pub fn prepare(&self, sec: u32) {
        let _ = self.slot_for(sec);
    }

    /// The last full second. Requests are filed by the coarse clock, which may lag a few
    /// milliseconds; the second read is the exact one, so a reader never looks two seconds back.
    pub fn last_second(&self) -> SecondStats {
        self.second(clock::now_sec_exact().wrapping_sub(1))
    }

    fn second(&self, sec: u32) -> SecondStats {
        let slot = &self.slots[(sec % 3) as usize];
        if slot.sec.load(Ordering::Acquire) != sec {
            return SecondStats::default();
        }
        let us = |cell: &AtomicU64| Duration::from_micros(cell.load(Ordering::Relaxed));
        let phases = PHASES
            .iter()
            .zip(&slot.phases)
            .filter_map(|(name, cell)| {
                let count = cell.count.load(Ordering::Relaxed);
                (count > 0).then(|| {
                    let sum = cell.sum_us.load(Ordering::Relaxed);
                    let summary = PhaseSummary {
                        min: us(&cell.min_us),
                        max: us(&cell.max_us),
                        avg: Duration::from_micros(sum / count),
                        sum: Duration::from_micros(sum),
                        count,
                    };
                    (*name, summary)
                })
            })
            .collect();
        SecondStats {
            requests: slot.requests.load(Ordering::Relaxed),
            bytes_sent: slot.bytes_sent.load(Ordering::Relaxed),
            bytes_received: slot.bytes_received.load(Ordering::Relaxed),
            phases,
        }
    }

    pub fn start_request(&self) {
        if !self.unread {
            self.executing.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn end_request(&self) {
        if !self.unread {
            self.executing.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn executing(&self) -> usize {
        self.executing.load(Ordering::Relaxed)
    }
}

/// Live gauges that go next to a second's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub pending: usize,
    pub executing: usize,
    pub client_conns: usize,
    pub server_conns: usize,
}

impl SecondStats {
    /// `counters`, `minimums`, `maximums`, `averages` as PixlProxy writes them.
    pub fn to_json(&self, gauges: Gauges) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert(
            "counters".into(),
            json!({
                "requests": self.requests,
                "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received,
                "cur_pending_reqs": gauges.pending,
                "cur_executing_reqs": gauges.executing,
                "cur_client_conns": gauges.client_conns,
                "cur_server_conns": gauges.server_conns,
            }),
        );
        let table = |pick: fn(&PhaseSummary) -> Value| -> Value {
            Value::Object(
                self.phases
                    .iter()
                    .map(|(name, s)| ((*name).to_string(), pick(s)))
                    .collect(),
            )
        };
        out.insert("minimums".into(), table(|s| ms_rounded(s.min, 3)));
        out.insert("maximums".into(), table(|s| ms_rounded(s.max, 3)));
        out.insert("averages".into(), table(|s| ms_rounded(s.avg, 2)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer() -> PerfTimer {
        let mut t = PerfTimer::start();
        t.lap("connect");
        t.bytes_sent = 10;
        t.bytes_received = 20;
        t
    }

    #[test]
    fn a_second_is_read_once_it_is_over_and_slots_are_reused() {
        let stats = PoolStats::default();
        stats.record_at(100, &timer());
        stats.record_at(100, &timer());
        stats.record_at(101, &timer());
        let s = stats.second(100);
        assert_eq!((s.requests, s.bytes_sent, s.bytes_received), (2, 20, 40));
        let names: Vec<_> = s.phases.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["total", "connect"]);
        assert!(s.phases[0].1.min <= s.phases[0].1.avg && s.phases[0].1.avg <= s.phases[0].1.max);
        assert_eq!(stats.second(101).requests, 1);
        // Second 103 reuses second 100's slot: cleared, not added to.
        stats.record_at(103, &timer());
        assert_eq!(stats.second(103).requests, 1);
        assert_eq!(stats.second(100), SecondStats::default());
    }

    #[test]
    fn unread_figures_are_not_recorded() {
        let stats = PoolStats::unread();
        stats.start_request();
        stats.record(&timer());
        stats.record_total(Duration::from_millis(5), 1, 2);
        assert_eq!(stats.executing(), 0);
        assert_eq!(stats.second(clock::now_sec()).requests, 0);
        let read = PoolStats::default();
        read.start_request();
        let sec = clock::now_sec();
        read.record(&timer());
        assert_eq!(read.executing(), 1);
        // (Unless the second turned over in between.)
        if clock::now_sec() == sec {
            assert_eq!(read.second(sec).requests, 1);
        }
    }

    #[test]
    fn json_rounds_like_pixl_proxy() {
        let s = SecondStats {
            requests: 1,
            bytes_sent: 135,
            bytes_received: 228,
            phases: vec![(
                "total",
                PhaseSummary {
                    min: Duration::from_micros(1_020_389),
                    max: Duration::from_micros(1_020_389),
                    avg: Duration::from_micros(1_020_389),
                    sum: Duration::from_micros(1_020_389),
                    count: 1,
                },
            )],
        };
        let json = Value::Object(s.to_json(Gauges::default())).to_string();
        assert!(json.contains(r#""minimums":{"total":1020.389}"#), "{json}");
        assert!(json.contains(r#""averages":{"total":1020.39}"#), "{json}");
        assert!(json.starts_with(r#"{"counters":{"requests":1,"bytes_sent":135,"bytes_received":228,"cur_pending_reqs":0"#), "{json}");
    }
}
