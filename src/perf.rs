//! PixlProxy's `perf_metrics` for one back-end request: phase times in milliseconds
//! (`scale: 1000`) taken as laps of one clock, and the bytes sent and received.

use serde_json::{json, Map, Value};
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
        let now = Instant::now();
        PerfTimer {
            started: now,
            last: now,
            laps: [("", Duration::ZERO); MAX_PHASES],
            phases: 0,
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

    /// Skip the time since the last lap (it belongs to no phase).
    pub fn restart_lap(&mut self) {
        self.last = Instant::now();
    }

    /// The phases measured so far, in order (without `total`).
    pub fn phases(&self) -> &[(&'static str, Duration)] {
        &self.laps[..self.phases]
    }

    pub fn total(&self) -> Duration {
        self.started.elapsed()
    }

    /// `{"scale":1000,"perf":{"total":..,<phases>..},"counters":{"bytes_sent":..,"bytes_received":..}}`.
    pub fn to_json(&self) -> Value {
        let mut perf = Map::new();
        perf.insert("total".into(), ms(self.total()));
        for (name, took) in &self.laps[..self.phases] {
            perf.insert((*name).into(), ms(*took));
        }
        json!({
            "scale": 1000,
            "perf": perf,
            "counters": {"bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received},
        })
    }
}

/// Milliseconds with three decimals, as a JSON number.
fn ms(d: Duration) -> Value {
    ms_rounded(d, 3)
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
        let json = t.to_json();
        let keys: Vec<_> = json["perf"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["total", "connect", "send"]);
        assert_eq!(json["scale"], 1000);
        assert_eq!(json["counters"]["bytes_sent"], 135);
        assert_eq!(ms(Duration::from_micros(1_015_569)), json!(1015.569));
    }
}
