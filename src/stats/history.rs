//! A pool's `history` in the stats API: its last five minutes at one point per second
//! (requests, failed attempts, p99 of the total time), kept by the server so a live page
//! opened late, or a script, sees them at once.
//!
//! The stats ticker adds the second that just ended, once a second; requests never touch it.
//! A lock is taken by the ticker and by stats readers only, each for a few microseconds.
//! A second the ticker missed (a stalled machine) is filled from the per-second slots while
//! they still hold it, else as an idle second, so points stay one second apart.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Points kept: five minutes.
pub(crate) const HISTORY_SECONDS: usize = 300;

/// One second of a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Point {
    pub(crate) requests: u64,
    /// Failed attempts (connect errors, resets, timeouts, statuses outside the success match).
    pub(crate) errors: u64,
    /// The 99th percentile of the total time in µs; 0 without requests.
    pub(crate) p99_us: u64,
}

#[derive(Debug, Default)]
struct Ring {
    /// The Unix second of the newest point (0 = none yet).
    end: u32,
    points: VecDeque<Point>,
}

/// The ring of one pool.
#[derive(Debug, Default)]
pub(crate) struct History(Mutex<Ring>);

impl History {
    /// The seconds to add now that `done` has ended: after the newest point, at most the
    /// last five minutes.
    pub(crate) fn due(&self, done: u32) -> std::ops::RangeInclusive<u32> {
        let end = self.0.lock().map_or(0, |r| r.end);
        let oldest = done.saturating_sub(HISTORY_SECONDS as u32 - 1);
        let from = if end == 0 { done } else { end + 1 };
        from.max(oldest)..=done
    }

    /// Add the point of second `sec`; a second at or before the newest one is ignored, and a
    /// gap before it is filled with idle seconds.
    pub(crate) fn record(&self, sec: u32, point: Point) {
        let Ok(mut ring) = self.0.lock() else { return };
        if ring.end != 0 && sec <= ring.end {
            return;
        }
        let gap = match ring.end {
            0 => 0,
            end => (sec - end - 1) as usize,
        };
        for _ in 0..gap.min(HISTORY_SECONDS) {
            ring.points.push_back(Point::default());
        }
        ring.points.push_back(point);
        while ring.points.len() > HISTORY_SECONDS {
            ring.points.pop_front();
        }
        ring.end = sec;
    }

    /// `{"start": <unix sec of the first point>, "end": <of the last>, "requests": [...],
    /// "errors": [...], "p99_ms": [...]}`, oldest first; start and end are 0 while empty.
    pub(crate) fn to_json(&self) -> Value {
        let Ok(ring) = self.0.lock() else {
            return empty();
        };
        if ring.points.is_empty() {
            return empty();
        }
        let start = ring.end + 1 - ring.points.len() as u32;
        let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
        json!({
            "start": start,
            "end": ring.end,
            "requests": ring.points.iter().map(|p| p.requests).collect::<Vec<_>>(),
            "errors": ring.points.iter().map(|p| p.errors).collect::<Vec<_>>(),
            "p99_ms": ring.points.iter().map(|p| ms(p.p99_us)).collect::<Vec<_>>(),
        })
    }
}

fn empty() -> Value {
    json!({"start": 0, "end": 0, "requests": [], "errors": [], "p99_ms": []})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(requests: u64) -> Point {
        Point {
            requests,
            errors: requests / 10,
            p99_us: requests * 1000,
        }
    }

    #[test]
    fn points_are_kept_oldest_first_for_five_minutes() {
        let h = History::default();
        assert_eq!(h.to_json()["requests"], json!([]));
        for sec in 1000..1400 {
            h.record(sec, point(u64::from(sec)));
        }
        let doc = h.to_json();
        let requests = doc["requests"].as_array().unwrap();
        assert_eq!(requests.len(), HISTORY_SECONDS);
        assert_eq!(
            (doc["start"].as_u64(), doc["end"].as_u64()),
            (Some(1100), Some(1399))
        );
        assert_eq!(requests[0], 1100);
        assert_eq!(requests[299], 1399);
        assert_eq!(doc["errors"][299], 139);
        assert_eq!(doc["p99_ms"][299], 1399.0);
    }

    #[test]
    fn a_missed_second_is_an_idle_point_and_old_seconds_are_ignored() {
        let h = History::default();
        h.record(10, point(5));
        h.record(13, point(7));
        h.record(12, point(99));
        h.record(13, point(99));
        let doc = h.to_json();
        assert_eq!(doc["requests"], json!([5, 0, 0, 7]));
        assert_eq!(doc["start"], 10);
    }

    #[test]
    fn the_due_seconds_follow_the_newest_point_within_five_minutes() {
        let h = History::default();
        assert_eq!(h.due(500), 500..=500);
        h.record(500, point(1));
        assert_eq!(h.due(501), 501..=501);
        assert_eq!(h.due(503), 501..=503);
        assert_eq!(h.due(5000), 4701..=5000);
        assert!(h.due(500).is_empty());
    }

    #[test]
    fn a_long_gap_keeps_the_ring_at_its_size() {
        let h = History::default();
        h.record(1, point(1));
        h.record(100_000, point(2));
        let doc = h.to_json();
        let requests = doc["requests"].as_array().unwrap();
        assert_eq!(requests.len(), HISTORY_SECONDS);
        assert_eq!(requests[299], 2);
        assert_eq!(doc["end"], 100_000);
    }
}
