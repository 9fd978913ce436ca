//! Time as the per-second features see it: wall-clock seconds for "the previous full second"
//! windows (rate limits, back-off, degraded hints), and the process uptime.

use once_cell::sync::Lazy;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static STARTED: Lazy<Instant> = Lazy::new(Instant::now);

/// The current Unix second (fits `u32` until 2106), from the kernel's coarse clock: it is
/// read several times per request and costs a fraction of a precise read, at the price of
/// lagging the true time by up to one scheduler tick (a few ms) — a request that close to
/// a second's start may count in the second before.
pub fn now_sec() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } != 0 {
        return now_sec_exact();
    }
    u32::try_from(ts.tv_sec).unwrap_or(u32::MAX)
}

/// The current Unix second, exactly (for the once-a-second ticker, which wakes just after
/// a second starts).
pub fn now_sec_exact() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// Milliseconds left in the current wall-clock second.
pub fn ms_to_next_second() -> u64 {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    u64::from(1000 - into)
}

/// Record the start of the process (call once at start; later calls do nothing).
pub fn mark_start() {
    Lazy::force(&STARTED);
}

/// Time since `mark_start` (or since the first call of any clock function).
pub fn uptime() -> Duration {
    STARTED.elapsed()
}

/// The current Unix time in milliseconds.
pub fn unix_ms() -> u64 {
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
}
