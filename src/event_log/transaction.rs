//! PixlProxy's per-request event-log lines: a `transaction` line for every back-end request of
//! a pool with `log_transactions`, or for those at or over `log_perf_ms`; an `error` line for
//! every failed one (`log_errors`, on by default). The data carries `url`, `method`,
//! `req_headers`, `http_code`, `http_message`, `resp_headers`, `perf_metrics`, `error_details`
//! (errors only) and `request_id` (queued requests; empty otherwise).

use super::{redact, EventLine, JsonObject};
use crate::timing::{micros, PerfTimer};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

/// Room for a typical line's data (a dozen headers each way), so it is written without
/// growing.
const DATA_CAPACITY: usize = 1024;

/// A pool's `log_transactions`, `log_perf_ms` and `log_errors`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LogPolicy {
    pub(crate) transactions: bool,
    /// 0 = off.
    pub(crate) perf_ms: u64,
    pub(crate) errors: bool,
}

impl Default for LogPolicy {
    fn default() -> Self {
        LogPolicy {
            transactions: false,
            perf_ms: 0,
            errors: true,
        }
    }
}

impl LogPolicy {
    /// Whether a finished request is logged.
    pub(crate) fn wants(&self, failed: bool, total: Duration) -> bool {
        if failed {
            return self.errors;
        }
        self.transactions || (self.perf_ms > 0 && total.as_millis() >= u128::from(self.perf_ms))
    }
}

/// One finished back-end request.
pub(crate) struct Transaction<'a> {
    pub(crate) pool: &'a Arc<str>,
    pub(crate) url: String,
    pub(crate) method: &'a str,
    pub(crate) req_headers: &'a http::HeaderMap,
    /// 0 when the back end never answered.
    pub(crate) status: u16,
    pub(crate) resp_headers: Option<&'a http::HeaderMap>,
    pub(crate) perf: &'a PerfTimer,
    /// Why it failed, when it failed.
    pub(crate) error: Option<String>,
    pub(crate) failed: bool,
    pub(crate) request_id: String,
}

impl Transaction<'_> {
    /// Write the line if `policy` asks for it.
    pub(crate) fn log(&self, policy: &LogPolicy) {
        if policy.wants(self.failed, self.perf.total()) {
            super::emit(self.line());
        }
    }

    /// The event-log line for this request (what `log` writes).
    pub(crate) fn line(&self) -> EventLine {
        let message = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let mut data = JsonObject::with_capacity(DATA_CAPACITY);
        data.string("url", &redact::text(&self.url));
        data.string("method", self.method);
        data.headers("req_headers", self.req_headers);
        data.count("http_code", u64::from(self.status));
        data.string("http_message", message);
        match self.resp_headers {
            Some(headers) => data.headers("resp_headers", headers),
            None => {
                data.open("resp_headers");
                data.close();
            }
        }
        data.open("perf_metrics");
        perf_json(self.perf, &mut data);
        data.close();
        if let Some(error) = &self.error {
            data.string("error_details", &format!("Error: {error}"));
        }
        data.string("request_id", &self.request_id);
        let (category, code, what) = match self.failed {
            true => (
                "error",
                self.status.to_string().into(),
                "Proxy Request Error",
            ),
            false => ("transaction", "http".into(), "Proxy Request Completed"),
        };
        let mut msg = String::with_capacity(what.len() + 12 + message.len());
        msg.push_str(what);
        let _ = write!(msg, ": HTTP {} ", self.status);
        msg.push_str(message);
        EventLine {
            component: self.pool.clone(),
            category,
            code,
            msg,
            data: Some(data.finish()),
        }
    }
}

/// `"scale":1000,"perf":{"total":..,<phases>..},"counters":{"bytes_sent":..,"bytes_received":..}`
/// as members of the object `out` has open (PixlProxy's `perf_metrics`).
fn perf_json(perf: &PerfTimer, out: &mut JsonObject) {
    out.count("scale", 1000);
    out.open("perf");
    out.millis("total", micros(perf.total()));
    for (phase, took) in perf.phases() {
        out.millis(phase.name(), micros(took));
    }
    out.close();
    out.open("counters");
    out.count("bytes_sent", perf.bytes_sent);
    out.count("bytes_received", perf.bytes_received);
    out.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_follows_pixl_proxy() {
        let p = LogPolicy {
            transactions: false,
            perf_ms: 100,
            errors: true,
        };
        assert!(p.wants(true, Duration::ZERO));
        assert!(!p.wants(false, Duration::from_millis(99)));
        assert!(p.wants(false, Duration::from_millis(100)));
        assert!(!LogPolicy::default().wants(false, Duration::from_secs(9)));
    }

    #[test]
    fn perf_metrics_list_total_then_the_phases_in_order() {
        let mut t = PerfTimer::start();
        t.lap(crate::timing::Phase::Connect);
        t.lap(crate::timing::Phase::Send);
        t.lap(crate::timing::Phase::Connect);
        t.bytes_sent = 135;
        let mut out = JsonObject::with_capacity(64);
        perf_json(&t, &mut out);
        let json: serde_json::Value = serde_json::from_str(&out.finish()).unwrap();
        let keys: Vec<_> = json["perf"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["total", "connect", "send"]);
        assert_eq!(json["scale"], 1000);
        assert_eq!(json["counters"]["bytes_sent"], 135);
        assert_eq!(
            json["perf"]["total"].as_f64().map(|t| t < 1000.0),
            Some(true)
        );
    }

    #[test]
    fn lines_carry_the_readme_fields_in_order() {
        let mut req = http::HeaderMap::new();
        req.insert("host", "h".parse().unwrap());
        let perf = PerfTimer::start();
        let t = Transaction {
            pool: &Arc::from("MyPool1"),
            url: "http://b:1/x".into(),
            method: "GET",
            req_headers: &req,
            status: 500,
            resp_headers: None,
            perf: &perf,
            error: Some("HTTP 500".into()),
            failed: true,
            request_id: String::new(),
        };
        let line = t.line();
        assert_eq!((line.category, &*line.code), ("error", "500"));
        assert_eq!(
            line.msg,
            "Proxy Request Error: HTTP 500 Internal Server Error"
        );
        let data: serde_json::Value = serde_json::from_str(&line.data.unwrap()).unwrap();
        assert_eq!(data["resp_headers"], serde_json::json!({}));
        assert_eq!(data["req_headers"]["host"], "h");
        assert_eq!(data["perf_metrics"]["scale"], 1000);
        let keys: Vec<_> = data.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "url",
                "method",
                "req_headers",
                "http_code",
                "http_message",
                "resp_headers",
                "perf_metrics",
                "error_details",
                "request_id"
            ]
        );
    }
}
