//! Time as the per-second features see it: wall-clock seconds for "the previous full second"
//! windows (rate limits, back-off, degraded hints), and the process uptime.

use once_cell::sync::Lazy;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static STARTED: Lazy<Instant> = Lazy::new(Instant::now);

/// The current Unix second (fits `u32` until 2106).
pub fn now_sec() -> u32 {
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
