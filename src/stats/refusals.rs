//! Requests refused at the front door before any pool saw them (a malformed or over-long
//! head, an invalid `Host`, a head too slow to arrive): counted by reason since start for the
//! stats API's `web.refused` and Prometheus' `poolgate_refused_requests_total`, and logged as
//! `WebServer` error lines. A flood does not flood the log: the first refusal of each second
//! gets its own line, the others of that second one summary line from the ticker.

use crate::event_log;
use crate::front_end::HeadFault;
use crate::timing::clock;
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const KINDS: usize = HeadFault::ALL.len();

/// The counters and the log's flood gate.
#[derive(Debug, Default)]
pub(crate) struct RefusedRequests {
    /// Since start, by `HeadFault::index`.
    total: [AtomicU64; KINDS],
    /// Refused but not logged one by one since the last summary, by `HeadFault::index`.
    unlogged: [AtomicU64; KINDS],
    /// The Unix second of the last refusal that got its own line.
    last_logged: AtomicU32,
}

impl RefusedRequests {
    /// Count a refusal and log it, unless one was logged already this second.
    /// `request` is the start of its request line, as received.
    pub(crate) fn record(&self, fault: HeadFault, client: Option<IpAddr>, request: &[u8]) {
        self.total[fault.index()].fetch_add(1, Ordering::Relaxed);
        let now = clock::now_sec();
        if self.last_logged.swap(now, Ordering::AcqRel) == now {
            self.unlogged[fault.index()].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let ip = client.map(|ip| ip.to_string()).unwrap_or_default();
        let request = excerpt(request);
        let msg = format!(
            "Refused a request from {}: {} ({})",
            if ip.is_empty() {
                "an unknown address"
            } else {
                &ip
            },
            fault.reason(),
            fault.status()
        );
        let data = json!({
            "ip": ip,
            "reason": fault.label(),
            "status": fault.status(),
            "request": request,
        });
        event_log::error("WebServer", fault.status(), msg, data);
    }

    /// The summary line of the refusals that were not logged one by one (the ticker calls
    /// this once a second).
    pub(crate) fn log_summary(&self) {
        let mut by_reason = Map::new();
        let mut count = 0;
        for fault in HeadFault::ALL {
            let n = self.unlogged[fault.index()].swap(0, Ordering::AcqRel);
            if n > 0 {
                count += n;
                by_reason.insert(fault.label().into(), n.into());
            }
        }
        if count > 0 {
            let msg =
                format!("Refused {count} more requests in the last second (not logged one by one)");
            event_log::error("WebServer", "refused", msg, Value::Object(by_reason));
        }
    }

    /// Refusals since start of one kind.
    pub(crate) fn count(&self, fault: HeadFault) -> u64 {
        self.total[fault.index()].load(Ordering::Relaxed)
    }

    /// `web.refused`: `{"total": n, "<reason>": n, ...}` with every reason, zeros included.
    pub(crate) fn to_json(&self) -> Value {
        let mut out = Map::new();
        let mut total = 0;
        for fault in HeadFault::ALL {
            let n = self.count(fault);
            total += n;
            out.insert(fault.label().into(), n.into());
        }
        out.insert("total".into(), total.into());
        Value::Object(out)
    }
}

/// The first 100 bytes of a request line as a log may show them: non-printable bytes
/// escaped, configured secrets redacted.
fn excerpt(request: &[u8]) -> String {
    let cut = &request[..request.len().min(100)];
    let text = cut.escape_ascii().to_string();
    event_log::redact::text(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_reason() {
        let r = RefusedRequests::default();
        r.record(HeadFault::MissingHost, None, b"GET / HTTP/1.1");
        r.record(HeadFault::MissingHost, None, b"GET / HTTP/1.1");
        r.record(HeadFault::HeadTimeout, None, b"GET");
        assert_eq!(r.count(HeadFault::MissingHost), 2);
        let doc = r.to_json();
        assert_eq!(doc["total"], 3);
        assert_eq!(doc["header_timeout"], 1);
        assert_eq!(doc["invalid_host"], 0);
    }

    #[test]
    fn only_the_first_refusal_of_a_second_is_logged_on_its_own() {
        let r = RefusedRequests::default();
        for _ in 0..5 {
            r.record(HeadFault::InvalidHost, None, b"GET / HTTP/1.1");
        }
        // The clock may tick over between calls; at least three went to the summary.
        let unlogged = r.unlogged[HeadFault::InvalidHost.index()].load(Ordering::Relaxed);
        assert!(unlogged >= 3, "{unlogged}");
        r.log_summary();
        assert_eq!(
            r.unlogged[HeadFault::InvalidHost.index()].load(Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn the_excerpt_escapes_control_bytes_and_is_short() {
        assert_eq!(excerpt(b"GET /a\x00b HTTP/1.1"), "GET /a\\x00b HTTP/1.1");
        assert_eq!(excerpt(&[b'a'; 300]).len(), 100);
    }
}
