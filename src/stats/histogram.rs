//! The latency histogram behind a pool's `percentiles` (p50, p95, p99 of the total time) and
//! its history's p99: a fixed set of buckets of atomics in each one-second slot, so a request
//! adds one count with one atomic increment and no lock, and a reader walks the counts.
//!
//! Buckets are log-linear: below 64 µs one bucket, then four equal buckets per doubling up to
//! about 67 s (64 µs · 2^20), then one bucket for everything slower. A bucket is at most a
//! quarter of its lower bound wide, so a percentile read from the counts (interpolated inside
//! its bucket, then kept between the second's minimum and maximum) is within 25 % of the true
//! value, usually much closer.

use std::sync::atomic::{AtomicU64, Ordering};

/// The lower bound of the first doubling (2^6 µs).
const FIRST_SHIFT: u32 = 6;
/// Doublings covered with four buckets each.
const OCTAVES: u32 = 20;
/// Buckets per doubling (a power of two).
const SUBS_SHIFT: u32 = 2;
const SUBS: usize = 1 << SUBS_SHIFT;
/// Below 64 µs, the doublings, and everything slower.
pub(super) const BUCKETS: usize = 1 + OCTAVES as usize * SUBS + 1;

/// The bucket of a time in µs.
pub(super) fn bucket_of(us: u64) -> usize {
    if us < 1 << FIRST_SHIFT {
        return 0;
    }
    let log2 = 63 - us.leading_zeros();
    let octave = log2 - FIRST_SHIFT;
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    let sub = ((us >> (log2 - SUBS_SHIFT)) as usize) & (SUBS - 1);
    1 + octave as usize * SUBS + sub
}

/// The bucket's times in µs, `[lower, upper)`; the last one is given twice its lower bound.
pub(super) fn bounds_of(bucket: usize) -> (u64, u64) {
    if bucket == 0 {
        return (0, 1 << FIRST_SHIFT);
    }
    if bucket >= BUCKETS - 1 {
        let lower = 1u64 << (FIRST_SHIFT + OCTAVES);
        return (lower, lower * 2);
    }
    let octave = ((bucket - 1) / SUBS) as u32;
    let sub = ((bucket - 1) % SUBS) as u64;
    let base = 1u64 << (FIRST_SHIFT + octave);
    let width = base >> SUBS_SHIFT;
    (base + sub * width, base + (sub + 1) * width)
}

/// One second's counts, recorded with atomics.
pub(super) struct LatencyCells([AtomicU64; BUCKETS]);

impl Default for LatencyCells {
    fn default() -> Self {
        LatencyCells(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl LatencyCells {
    pub(super) fn add(&self, us: u64) {
        self.0[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn clear(&self) {
        self.0.iter().for_each(|c| c.store(0, Ordering::Relaxed));
    }

    pub(super) fn counts(&self) -> LatencyCounts {
        LatencyCounts(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}

/// One second's counts, as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LatencyCounts([u64; BUCKETS]);

impl Default for LatencyCounts {
    fn default() -> Self {
        LatencyCounts([0; BUCKETS])
    }
}

impl LatencyCounts {
    /// The time in µs below which a share `q` (0..=1) of the requests finished, interpolated
    /// inside its bucket; `None` without requests.
    pub(crate) fn percentile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.0.iter().sum();
        if total == 0 {
            return None;
        }
        // The rank of the request at that share: at least the first, at most the last.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut before = 0u64;
        for (bucket, &count) in self.0.iter().enumerate() {
            if count == 0 {
                continue;
            }
            if before + count >= rank {
                let (lower, upper) = bounds_of(bucket);
                let into = (rank - before) as f64 / count as f64;
                return Some(lower + ((upper - lower) as f64 * into) as u64);
            }
            before += count;
        }
        None
    }

    /// As `percentile`, kept between the second's fastest and slowest request.
    pub(crate) fn percentile_within(&self, q: f64, min_us: u64, max_us: u64) -> Option<u64> {
        self.percentile(q)
            .map(|p| p.clamp(min_us.min(max_us), max_us))
    }

    #[cfg(test)]
    pub(crate) fn of(times_us: &[u64]) -> Self {
        let cells = LatencyCells::default();
        times_us.iter().for_each(|&t| cells.add(t));
        cells.counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_time_falls_in_a_bucket_whose_bounds_hold_it() {
        let mut t = 0u64;
        while t < 1 << 30 {
            let b = bucket_of(t);
            let (lower, upper) = bounds_of(b);
            assert!(b < BUCKETS, "{t}");
            assert!(
                lower <= t && (t < upper || b == BUCKETS - 1),
                "{t} in {b}: {lower}..{upper}"
            );
            t = t * 9 / 8 + 1;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(63), 0);
        assert_eq!(bucket_of(64), 1);
        assert_eq!(bounds_of(1), (64, 80));
        assert_eq!(bounds_of(4), (112, 128));
        assert_eq!(bounds_of(5), (128, 160));
    }

    #[test]
    fn buckets_are_at_most_a_quarter_of_their_lower_bound_wide() {
        for b in 1..BUCKETS - 1 {
            let (lower, upper) = bounds_of(b);
            assert!((upper - lower) * 4 <= lower, "{b}: {lower}..{upper}");
            assert_eq!(bounds_of(b + 1).0, upper, "contiguous at {b}");
        }
    }

    #[test]
    fn percentiles_come_within_a_quarter_of_the_true_value() {
        // 1 000 requests, 1 ms to 1 000 ms.
        let times: Vec<u64> = (1..=1000).map(|ms| ms * 1000).collect();
        let counts = LatencyCounts::of(&times);
        for (q, truth) in [(0.5, 500_000.0), (0.95, 950_000.0), (0.99, 990_000.0)] {
            let p = counts.percentile(q).unwrap() as f64;
            assert!((p - truth).abs() / truth < 0.25, "p{q}: {p} vs {truth}");
        }
    }

    #[test]
    fn a_single_request_is_its_own_percentile_within_the_seconds_bounds() {
        let counts = LatencyCounts::of(&[12_345]);
        assert_eq!(counts.percentile_within(0.99, 12_345, 12_345), Some(12_345));
        assert_eq!(counts.percentile_within(0.5, 12_345, 12_345), Some(12_345));
        let p = counts.percentile(0.99).unwrap();
        let (lower, upper) = bounds_of(bucket_of(12_345));
        assert!(lower <= p && p <= upper);
    }

    #[test]
    fn the_slowest_share_decides_the_high_percentiles() {
        // 98 fast requests and 2 slow ones: p50 is fast, p99 is slow.
        let mut times = vec![1_000u64; 98];
        times.extend([500_000, 500_000]);
        let counts = LatencyCounts::of(&times);
        assert!(counts.percentile_within(0.5, 1_000, 500_000).unwrap() < 1_300);
        assert!(counts.percentile_within(0.99, 1_000, 500_000).unwrap() > 400_000);
        assert!(counts.percentile(0.95).unwrap() < 1_300);
    }

    #[test]
    fn no_requests_have_no_percentile() {
        assert_eq!(LatencyCounts::default().percentile(0.99), None);
        let cells = LatencyCells::default();
        cells.add(5);
        cells.clear();
        assert_eq!(cells.counts(), LatencyCounts::default());
    }
}
