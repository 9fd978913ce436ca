//! One pool's last full second as the stats read it (`PoolStats::last_second`): requests,
//! bytes and the per-phase minimum, maximum and average, with the live gauges, in PixlProxy's
//! JSON (`counters`, `minimums`, `maximums`, `averages`).

use crate::timing::{ms_rounded, Phase};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The names of the phase columns: `total`, then the phases in report order.
pub(super) const COLUMNS: [&str; 1 + Phase::ALL.len()] =
    ["total", "dns", "connect", "send", "wait", "receive"];
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
        };
        let json = Value::Object(s.to_json(Gauges::default())).to_string();
        assert!(json.contains(r#""minimums":{"total":1020.389}"#), "{json}");
        assert!(json.contains(r#""averages":{"total":1020.39}"#), "{json}");
        assert!(json.starts_with(r#"{"counters":{"requests":1,"bytes_sent":135,"bytes_received":228,"cur_pending_reqs":0"#), "{json}");
    }
}
