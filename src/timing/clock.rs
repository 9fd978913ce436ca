//! Time as the per-second features see it: wall-clock seconds for "the previous full second"
//! windows (rate limits, back-off, degraded hints, the stats), and the process uptime
//! (`uptime_sec`, `degraded_min_uptime_sec`). A leaf: everything may use it.

use nix::time::{clock_gettime, ClockId};
use once_cell::sync::Lazy;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static STARTED: Lazy<Instant> = Lazy::new(Instant::now);

/// The current Unix second (fits `u32` until 2106), from the kernel's coarse clock: it is
/// read several times per request and costs a fraction of a precise read, at the price of
/// lagging the true time by up to one scheduler tick (a few ms) — a request that close to
/// a second's start may count in the second before.
pub(crate) fn now_sec() -> u32 {
    match clock_gettime(ClockId::CLOCK_REALTIME_COARSE) {
        Ok(ts) => u32::try_from(ts.tv_sec()).unwrap_or(u32::MAX),
        Err(_) => now_sec_exact(),
    }
}

/// The current Unix second, exactly (for the once-a-second ticker, which wakes just after
/// a second starts).
pub(crate) fn now_sec_exact() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// Milliseconds left in the current wall-clock second.
pub(crate) fn ms_to_next_second() -> u64 {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    u64::from(1000 - into)
}

/// Record the start of the process; `serve` calls it first thing (later calls do nothing).
pub(crate) fn mark_start() {
    Lazy::force(&STARTED);
}

/// Time since `mark_start`.
pub(crate) fn uptime() -> Duration {
    STARTED.elapsed()
}

/// The current Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_second_is_never_ahead_and_lags_at_most_one() {
        for _ in 0..1000 {
            let before = now_sec_exact();
            let coarse = now_sec();
            let after = now_sec_exact();
            assert!(
                coarse <= after && coarse + 1 >= before,
                "{before} {coarse} {after}"
            );
        }
    }

    #[test]
    fn uptime_counts_from_the_mark() {
        mark_start();
        let first = uptime();
        std::thread::sleep(Duration::from_millis(5));
        assert!(uptime() > first);
    }
}
