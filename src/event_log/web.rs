//! The web server's own request lines (pixl-server-web's `http_log_requests`, filtered by
//! `http_regex_log`): one `WebServer` transaction line per client request, whatever path it
//! took. `WebRequest` is the finished request as the web server saw it; the stats API's
//! `web.recent` lists the same records.

use super::{redact, EventLine};
use crate::timing::ms_rounded;
use http::{HeaderValue, Uri};
use regex::Regex;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One finished client request.
#[derive(Debug, Clone)]
pub(crate) struct WebRequest {
    /// Unix time in milliseconds.
    pub(crate) when: u64,
    pub(crate) method: http::Method,
    pub(crate) tls: bool,
    pub(crate) port: u16,
    pub(crate) status: u16,
    pub(crate) uri: Uri,
    pub(crate) host: Option<HeaderValue>,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) ua: Option<HeaderValue>,
    pub(crate) total: Duration,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

fn text(v: &Option<HeaderValue>) -> &str {
    v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("")
}

impl WebRequest {
    pub(crate) fn status_text(&self) -> &'static str {
        http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    }

    /// pixl-server-web's `perf` object of one request.
    pub(crate) fn perf(&self) -> Value {
        json!({
            "scale": 1000,
            "perf": {"total": ms_rounded(self.total, 3)},
            "counters": {"bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "num_requests": 1},
        })
    }

    pub(crate) fn ips(&self) -> Vec<String> {
        self.ip.iter().map(IpAddr::to_string).collect()
    }

    /// The Host header without its port.
    pub(crate) fn host(&self) -> &str {
        let host = text(&self.host);
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    }

    pub(crate) fn user_agent(&self) -> &str {
        text(&self.ua)
    }

    pub(crate) fn proto(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// Path and query, configured secrets redacted.
    pub(crate) fn path(&self) -> std::borrow::Cow<'_, str> {
        redact::text(self.uri.path_and_query().map_or("/", |pq| pq.as_str()))
    }
}

/// `http_log_requests` with `http_regex_log`.
#[derive(Debug)]
pub(crate) struct WebLog {
    /// Only requests whose path and query match are logged; `None` = off.
    filter: Option<Regex>,
    /// Requests seen, for pixl-server-web's `r<n>` ids.
    seen: AtomicU64,
}

impl WebLog {
    pub(crate) fn new(filter: Option<Regex>) -> Self {
        WebLog {
            filter,
            seen: AtomicU64::new(0),
        }
    }

    /// Whether any request is logged (so callers skip building a `WebRequest` otherwise).
    pub(crate) fn is_on(&self) -> bool {
        self.filter.is_some()
    }

    /// Count the request and write its line if the filter matches.
    pub(crate) fn record(&self, req: &WebRequest) {
        let Some(filter) = &self.filter else { return };
        let id = self.seen.fetch_add(1, Ordering::Relaxed);
        let path = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        if filter.is_match(path) {
            super::emit(line(id, req));
        }
    }
}

fn line(id: u64, req: &WebRequest) -> EventLine {
    let data = json!({
        "id": format!("r{}", id + 1),
        "method": req.method.as_str(),
        "proto": req.proto(),
        "ip": req.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "ips": req.ips(),
        "port": req.port,
        "ua": req.user_agent(),
        "host": req.host(),
        "perf": req.perf(),
    });
    EventLine {
        component: "WebServer".into(),
        category: "transaction",
        code: format!("HTTP {} {}", req.status, req.status_text()).into(),
        msg: req.path().into_owned(),
        data: Some(data.to_string()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn request(n: u64) -> WebRequest {
        WebRequest {
            when: n * 1000,
            method: http::Method::GET,
            tls: false,
            port: 3020,
            status: 200,
            uri: format!("/r{n}").parse().unwrap(),
            host: Some(HeaderValue::from_static("localhost:3020")),
            ip: Some("127.0.0.1".parse().unwrap()),
            ua: None,
            total: Duration::from_micros(1500),
            bytes_in: 10,
            bytes_out: 20,
        }
    }

    #[test]
    fn lines_follow_pixl_server_web() {
        let line = line(3, &request(1));
        assert_eq!(
            (&*line.component, line.category),
            ("WebServer", "transaction")
        );
        assert_eq!((&*line.code, line.msg.as_str()), ("HTTP 200 OK", "/r1"));
        let data = line.data.unwrap();
        assert!(data.starts_with(r#"{"id":"r4","method":"GET","proto":"http","ip":"127.0.0.1","ips":["127.0.0.1"],"port":3020"#), "{data}");
    }
}
