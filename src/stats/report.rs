//! One pool's last full second as the stats read it (`PoolStats::last_second`): requests,
//! bytes and the per-phase minimum, maximum and average, with the live gauges, in PixlProxy's
//! JSON (`counters`, `minimums`, `maximums`, `averages`); and poolgate's own figures of that
//! second beside them (`responses` by status class, `throttled`, `retries`, `errors`,
//! `percentiles` of the total time, the `dominant_phase`).

use super::histogram::LatencyCounts;
use crate::timing::{ms_rounded, Phase};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The names of the phase columns: `total`, then the phases in report order.
pub(super) const COLUMNS: [&str; 1 + Phase::ALL.len()] =
    ["total", "dns", "connect", "send", "wait", "receive"];
/// The status classes answers are counted by; `failed` = no answer from the back end.
pub(crate) const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "failed"];
/// The percentiles of the total time that are reported.
const PERCENTILES: [(&str, f64); 3] = [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)];

/// One phase over one second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PhaseSummary {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
    pub(crate) avg: Duration,
    pub(crate) sum: Duration,
    pub(crate) count: u64,
}

/// One pool's last full second, as the stats read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SecondStats {
    pub(crate) requests: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    /// `total` first, then the phases measured, by column name.
    pub(crate) phases: Vec<(&'static str, PhaseSummary)>,
    /// Failed attempts.
    pub(crate) errors: u64,
    /// Answers by status class (`CLASSES`).
    pub(crate) classes: [u64; CLASSES.len()],
    /// Requests refused by the pool's limits (429, or 503 from an unreachable cluster) or
    /// its full queue.
    pub(crate) throttled: u64,
    pub(crate) retries: u64,
    /// Client requests over TLS, and over HTTP/2 (the web server's figures).
    pub(crate) tls: u64,
    pub(crate) h2: u64,
    /// The total time's histogram.
    pub(crate) latency: LatencyCounts,
}

/// Live gauges that go next to a second's figures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gauges {
    pub(crate) pending: usize,
    pub(crate) executing: usize,
    pub(crate) client_conns: usize,
    pub(crate) server_conns: usize,
}

impl SecondStats {
    /// `counters`, `minimums`, `maximums`, `averages` as PixlProxy writes them.
    pub(crate) fn to_json(&self, gauges: Gauges) -> Map<String, Value> {
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

    /// poolgate's figures of the second beside PixlProxy's: `responses`, `throttled`,
    /// `retries`, `errors`, `percentiles` (ms), `dominant_phase`.
    pub(crate) fn outcome_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("responses".into(), self.responses_json());
        out.insert("throttled".into(), self.throttled.into());
        out.insert("retries".into(), self.retries.into());
        out.insert("errors".into(), self.errors.into());
        let percentiles: Map<String, Value> = PERCENTILES
            .iter()
            .map(|(name, q)| {
                let us = self.percentile_us(*q).unwrap_or(0);
                (
                    (*name).to_string(),
                    ms_rounded(Duration::from_micros(us), 3),
                )
            })
            .collect();
        out.insert("percentiles".into(), Value::Object(percentiles));
        out.insert(
            "dominant_phase".into(),
            self.dominant_phase().unwrap_or("").into(),
        );
        out
    }

    /// `{"1xx": n, ..., "5xx": n, "failed": n}`.
    pub(crate) fn responses_json(&self) -> Value {
        Value::Object(
            CLASSES
                .iter()
                .zip(self.classes)
                .map(|(name, n)| ((*name).to_string(), n.into()))
                .collect(),
        )
    }

    /// A percentile of the total time in µs (within the second's fastest and slowest).
    pub(crate) fn percentile_us(&self, q: f64) -> Option<u64> {
        let total = self.total()?;
        let (min, max) = (total.min.as_micros(), total.max.as_micros());
        let (min, max) = (min as u64, max as u64);
        self.latency.percentile_within(q, min, max)
    }

    /// The phase (dns, connect, send, wait, receive) with the largest average time.
    pub(crate) fn dominant_phase(&self) -> Option<&'static str> {
        self.phases
            .iter()
            .filter(|(name, _)| *name != COLUMNS[0])
            .max_by_key(|(_, s)| s.avg)
            .filter(|(_, s)| !s.avg.is_zero())
            .map(|(name, _)| *name)
    }

    /// The `total` column, if any request was counted.
    pub(crate) fn total(&self) -> Option<&PhaseSummary> {
        self.phases
            .iter()
            .find(|(n, _)| *n == COLUMNS[0])
            .map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ..SecondStats::default()
        };
        let json = Value::Object(s.to_json(Gauges::default())).to_string();
        assert!(json.contains(r#""minimums":{"total":1020.389}"#), "{json}");
        assert!(json.contains(r#""averages":{"total":1020.39}"#), "{json}");
        assert!(json.starts_with(r#"{"counters":{"requests":1,"bytes_sent":135,"bytes_received":228,"cur_pending_reqs":0"#), "{json}");
    }

    fn phase(avg_us: u64) -> PhaseSummary {
        let d = Duration::from_micros(avg_us);
        PhaseSummary {
            min: d,
            max: d,
            avg: d,
            sum: d,
            count: 1,
        }
    }

    #[test]
    fn the_dominant_phase_has_the_largest_average_and_percentiles_stay_in_bounds() {
        let s = SecondStats {
            requests: 1,
            phases: vec![
                ("total", phase(9_000)),
                ("connect", phase(1_000)),
                ("wait", phase(7_000)),
                ("receive", phase(1_000)),
            ],
            latency: LatencyCounts::of(&[9_000]),
            classes: [0, 1, 0, 0, 0, 0],
            ..SecondStats::default()
        };
        assert_eq!(s.dominant_phase(), Some("wait"));
        let json = Value::Object(s.outcome_json());
        assert_eq!(json["dominant_phase"], "wait");
        assert_eq!(json["percentiles"]["p99"], 9.0);
        assert_eq!(json["responses"]["2xx"], 1);
        let idle = Value::Object(SecondStats::default().outcome_json());
        assert_eq!(idle["dominant_phase"], "");
        assert_eq!(idle["percentiles"]["p50"], 0.0);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(&json),
            keys(&idle),
            "the same shape with or without requests"
        );
    }
}
