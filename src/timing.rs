//! PixlProxy's `perf_metrics` for one back-end request: phase times in milliseconds
//! (`scale: 1000`) taken as laps of one clock, and the bytes sent and received.

use crate::event_log::JsonObject;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Phases a request can have (`dns`, `connect`, `send`, `wait`, `receive`, one spare).
const MAX_PHASES: usize = 6;

/// Kept in the request context of every pool that may log: a fixed array, no allocation.
#[derive(Debug, Clone)]
pub struct PerfTimer {
    started: Instant,
    last: Instant,
    laps: [(&'static str, Duration); MAX_PHASES],
    phases: usize,
    /// When the request ended (`end`); until then `total` reads the clock.
    ended: Option<Instant>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Default for PerfTimer {
    fn default() -> Self {
        PerfTimer::start()
    }
}

impl PerfTimer {
    pub fn start() -> Self {
        PerfTimer::start_at(Instant::now())
    }

    pub fn start_at(now: Instant) -> Self {
        PerfTimer {
            started: now,
            last: now,
            laps: [("", Duration::ZERO); MAX_PHASES],
            phases: 0,
            ended: None,
            bytes_sent: 0,
            bytes_received: 0,
        }
    }

    /// End phase `name` now (`dns`, `connect`, `send`, `wait`, `receive`). A phase ended twice
    /// (a retried attempt) adds up.
    pub fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        let took = now - self.last;
        self.last = now;
        self.add(name, took);
    }

    fn add(&mut self, name: &'static str, took: Duration) {
        match self.laps[..self.phases]
            .iter_mut()
            .find(|(n, _)| *n == name)
        {
            Some((_, t)) => *t += took,
            None if self.phases < MAX_PHASES => {
                self.laps[self.phases] = (name, took);
                self.phases += 1;
            }
            None => {}
        }
    }

    /// Record phase `name` as taking no time, without reading the clock (a phase known to
    /// be empty, such as the DNS lookup of an IP address).
    pub fn skip(&mut self, name: &'static str) {
        self.add(name, Duration::ZERO);
    }

    /// Skip the time since the last lap (it belongs to no phase).
    pub fn restart_lap(&mut self) {
        self.last = Instant::now();
    }

    /// The phases measured so far, in order (without `total`).
    pub fn phases(&self) -> &[(&'static str, Duration)] {
        &self.laps[..self.phases]
    }

    /// Stop the total at `now`: the stats, the metrics and the log line of a request then
    /// all report the same total, and read the clock once between them.
    pub fn end(&mut self, now: Instant) {
        self.ended = Some(now);
    }

    pub fn total(&self) -> Duration {
        match self.ended {
            Some(end) => end.saturating_duration_since(self.started),
            None => self.started.elapsed(),
        }
    }

    /// `"scale":1000,"perf":{"total":..,<phases>..},"counters":{"bytes_sent":..,"bytes_received":..}`
    /// as members of the object `out` has open.
    pub fn write_json(&self, out: &mut JsonObject) {
        out.count("scale", 1000);
        out.open("perf");
        out.millis("total", micros(self.total()));
        for (name, took) in &self.laps[..self.phases] {
            out.millis(name, micros(*took));
        }
        out.close();
        out.open("counters");
        out.count("bytes_sent", self.bytes_sent);
        out.count("bytes_received", self.bytes_received);
        out.close();
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Milliseconds rounded to `decimals` places, as a JSON number (PixlProxy's figures).
pub fn ms_rounded(d: Duration, decimals: i32) -> Value {
    let scale = 10f64.powi(decimals);
    json!((d.as_micros() as f64 / 1000.0 * scale).round() / scale)
}

/// Bytes of a request header on the wire (HTTP/1.1), for `bytes_sent`.
pub fn request_header_size(req: &pingora::http::RequestHeader) -> u64 {
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
    fn phases_appear_after_total_in_order_and_repeated_laps_add_up() {
        let mut t = PerfTimer::start();
        t.lap("connect");
        t.lap("send");
        t.lap("connect");
        t.bytes_sent = 135;
        let mut out = JsonObject::with_capacity(64);
        t.write_json(&mut out);
        let json: Value = serde_json::from_str(&out.finish()).unwrap();
        let keys: Vec<_> = json["perf"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["total", "connect", "send"]);
        assert_eq!(json["scale"], 1000);
        assert_eq!(json["counters"]["bytes_sent"], 135);
        assert_eq!(
            json["perf"]["total"].as_f64().map(|t| t < 1000.0),
            Some(true)
        );
    }
}
