//! PixlProxy's per-request event-log lines: a `transaction` line for every back-end request of
//! a pool with `log_transactions`, or for those at or over `log_perf_ms`; an `error` line for
//! every failed one (`log_errors`, on by default). The data carries `url`, `method`,
//! `req_headers`, `http_code`, `http_message`, `resp_headers`, `perf_metrics`, `error_details`
//! (errors only) and `request_id` (queued requests; empty otherwise).

use crate::event_log::{self, EventLine};
use crate::perf::PerfTimer;
use serde_json::{json, Map, Value};
use std::time::Duration;

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
    pub pool: &'a str,
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

    fn line(&self) -> EventLine {
        let message = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let mut data = Map::new();
        data.insert("url".into(), self.url.clone().into());
        data.insert("method".into(), self.method.into());
        data.insert(
            "req_headers".into(),
            event_log::headers_json(self.req_headers),
        );
        data.insert("http_code".into(), self.status.into());
        data.insert("http_message".into(), message.into());
        let resp = self.resp_headers.map_or(json!({}), event_log::headers_json);
        data.insert("resp_headers".into(), resp);
        data.insert("perf_metrics".into(), self.perf.to_json());
        if let Some(error) = &self.error {
            data.insert("error_details".into(), format!("Error: {error}").into());
        }
        data.insert("request_id".into(), self.request_id.clone().into());
        let (category, code, what) = match self.failed {
            true => ("error", self.status.to_string(), "Proxy Request Error"),
            false => ("transaction", "http".to_string(), "Proxy Request Completed"),
        };
        EventLine {
            component: self.pool.into(),
            category,
            code,
            msg: format!("{what}: HTTP {} {message}", self.status),
            data: Some(Value::Object(data)),
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
            pool: "MyPool1",
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
        assert_eq!((line.category, line.code.as_str()), ("error", "500"));
        assert_eq!(
            line.msg,
            "Proxy Request Error: HTTP 500 Internal Server Error"
        );
        let data = line.data.unwrap();
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
