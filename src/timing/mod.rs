//! Time as poolgate measures it, a leaf every folder may use: wall-clock seconds and the uptime
//! (`clock.rs`), and the phase timing of one back-end request (PixlProxy's `perf_metrics`:
//! `dns`, `connect`, `send`, `wait`, `receive`, and the `total`), taken as laps of one clock,
//! with the bytes sent and received.

pub(crate) mod clock;

use std::time::{Duration, Instant};

/// A phase of a back-end request, in the order PixlProxy reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Choosing the target (a DNS lookup for a host name).
    Dns,
    /// Connecting (TCP and TLS), or taking a pooled connection.
    Connect,
    /// Writing the request header and body.
    Send,
    /// Waiting for the answer's header.
    Wait,
    /// Reading the answer's body.
    Receive,
}

impl Phase {
    /// Every phase, in report order.
    pub(crate) const ALL: [Phase; 5] = [
        Phase::Dns,
        Phase::Connect,
        Phase::Send,
        Phase::Wait,
        Phase::Receive,
    ];

    /// The name PixlProxy gives the phase.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Send => "send",
            Phase::Wait => "wait",
            Phase::Receive => "receive",
        }
    }

    /// The phase's place in `ALL`.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Kept in the request context of every admitted request: a fixed array, no allocation.
#[derive(Debug, Clone)]
pub(crate) struct PerfTimer {
    started: Instant,
    last: Instant,
    /// Time of each phase (by `Phase::index`); a phase ended twice (a retried attempt) adds up.
    laps: [Duration; Phase::ALL.len()],
    /// Bit `i` set: phase `i` was measured (or skipped as empty).
    measured: u8,
    /// When the request ended (`end`); until then `total` reads the clock.
    ended: Option<Instant>,
    /// Bytes sent to the back end (request header and body).
    pub(crate) bytes_sent: u64,
    /// Body bytes received from the back end.
    pub(crate) bytes_received: u64,
}

impl Default for PerfTimer {
    fn default() -> Self {
        PerfTimer::start()
    }
}

impl PerfTimer {
    /// A timer started now.
    pub(crate) fn start() -> Self {
        PerfTimer::start_at(Instant::now())
    }

    /// A timer started at `now` (a clock reading the caller already has).
    pub(crate) fn start_at(now: Instant) -> Self {
        PerfTimer {
            started: now,
            last: now,
            laps: [Duration::ZERO; Phase::ALL.len()],
            measured: 0,
            ended: None,
            bytes_sent: 0,
            bytes_received: 0,
        }
    }

    /// End `phase` now: the time since the previous lap is added to it. Returns the clock
    /// reading, for a caller that needs the time too.
    pub(crate) fn lap(&mut self, phase: Phase) -> Instant {
        let now = Instant::now();
        let took = now - self.last;
        self.last = now;
        self.add(phase, took);
        now
    }

    fn add(&mut self, phase: Phase, took: Duration) {
        self.laps[phase.index()] += took;
        self.measured |= 1 << phase.index();
    }

    /// Record `phase` as taking no time, without reading the clock (a phase known to be
    /// empty, such as the DNS lookup of an IP address).
    pub(crate) fn skip(&mut self, phase: Phase) {
        self.add(phase, Duration::ZERO);
    }

    /// Leave the time since the last lap out of every phase.
    pub(crate) fn restart_lap(&mut self) {
        self.last = Instant::now();
    }

    /// The phases measured so far, in report order (without `total`).
    pub(crate) fn phases(&self) -> impl Iterator<Item = (Phase, Duration)> + '_ {
        Phase::ALL
            .into_iter()
            .filter(|p| self.measured & (1 << p.index()) != 0)
            .map(|p| (p, self.laps[p.index()]))
    }

    /// Stop the total at `now`: the stats, the metrics and the log line of a request then all
    /// report the same total, and read the clock once between them.
    pub(crate) fn end(&mut self, now: Instant) {
        self.ended = Some(now);
    }

    /// Time from the start to `end` (or to now, before it).
    pub(crate) fn total(&self) -> Duration {
        match self.ended {
            Some(end) => end.saturating_duration_since(self.started),
            None => self.started.elapsed(),
        }
    }
}

/// Microseconds, saturating.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Milliseconds rounded to `decimals` places, as a JSON number (PixlProxy's figures).
pub(crate) fn ms_rounded(d: Duration, decimals: i32) -> serde_json::Value {
    let scale = 10f64.powi(decimals);
    serde_json::json!((d.as_micros() as f64 / 1000.0 * scale).round() / scale)
}

/// Bytes of a request header on the wire (HTTP/1.1), for `bytes_sent`.
pub(crate) fn request_header_size(req: &pingora::http::RequestHeader) -> u64 {
    let line = req.method.as_str().len() + req.raw_path().len() + 12;
    let fields: usize = req
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    (line + fields + 2) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_come_in_report_order_and_repeated_laps_add_up() {
        let mut t = PerfTimer::start();
        t.lap(Phase::Connect);
        t.lap(Phase::Send);
        t.lap(Phase::Connect);
        t.skip(Phase::Dns);
        let names: Vec<_> = t.phases().map(|(p, _)| p.name()).collect();
        assert_eq!(names, ["dns", "connect", "send"]);
        assert_eq!(t.phases().next().map(|(_, d)| d), Some(Duration::ZERO));
        assert!(t.total() < Duration::from_secs(1));
        let names: Vec<_> = Phase::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["dns", "connect", "send", "wait", "receive"]);
    }
}
