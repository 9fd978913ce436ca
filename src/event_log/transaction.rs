//! PixlProxy's per-request event-log lines: a `transaction` line for every back-end request of
//! a pool with `log_transactions`, or for those at or over `log_perf_ms`; an `error` line for
//! every failed one (`log_errors`, on by default). The data carries `url`, `method`,
//! `req_headers`, `http_code`, `http_message`, `resp_headers`, `perf_metrics`, `error_details`
//! (errors only) and `request_id` (queued requests; empty otherwise).

use crate::event_log::{self, EventLine, JsonObject};
use crate::timing::PerfTimer;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

/// Room for a typical line's data (a dozen headers each way), so it is written without
/// growing.
const DATA_CAPACITY: usize = 1024;

/// A pool's `log_transactions`, `log_perf_ms` and `log_errors`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogPolicy {
    pub transactions: bool,
    /// 0 = off.
    pub perf_ms: u64,
    pub errors: bool,
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
    /// Whether any request of the pool may be logged (timing is kept only then).
    pub fn any(&self) -> bool {
        self.transactions || self.perf_ms > 0 || self.errors
    }

    /// Whether a finished request is logged.
    pub fn wants(&self, failed: bool, total: Duration) -> bool {
        if failed {
            return self.errors;
        }
        self.transactions || (self.perf_ms > 0 && total.as_millis() >= u128::from(self.perf_ms))
    }
}

/// One finished back-end request.
pub struct Transaction<'a> {
    pub pool: &'a Arc<str>,
    pub url: String,
    pub method: &'a str,
    pub req_headers: &'a http::HeaderMap,
    /// 0 when the back end never answered.
    pub status: u16,
    pub resp_headers: Option<&'a http::HeaderMap>,
    pub perf: &'a PerfTimer,
    /// Why it failed, when it failed.
    pub error: Option<String>,
    pub failed: bool,
    pub request_id: String,
}

impl Transaction<'_> {
    /// Write the line if `policy` asks for it.
    pub fn log(&self, policy: &LogPolicy) {
        if policy.wants(self.failed, self.perf.total()) {
            event_log::emit(self.line());
        }
    }

    /// The event-log line for this request (what `log` writes).
    pub fn line(&self) -> EventLine {
        let message = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let mut data = JsonObject::with_capacity(DATA_CAPACITY);
        data.string("url", &self.url);
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
        self.perf.write_json(&mut data);
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
