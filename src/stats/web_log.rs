//! The web server's own view of client requests (pixl-server-web): a `WebServer` transaction
//! line per request with `http_log_requests` (filtered by `http_regex_log`), and the last
//! `http_recent_requests` requests for the stats API's `web.recent`.
//!
//! The recent list is a ring of slots, each behind its own lock taken with `try_lock` (a
//! request never waits; under contention it is simply not listed). Entries hold ref-counted
//! copies of the request's URI and headers, so keeping them costs no allocation.

use crate::event_log::{self, EventLine};
use crate::stats::second::PoolStats;
use http::{HeaderValue, Uri};
use regex::Regex;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// One finished client request.
#[derive(Debug, Clone)]
pub struct WebRequest {
    pub when: u64,
    pub method: http::Method,
    pub tls: bool,
    pub port: u16,
    pub status: u16,
    pub uri: Uri,
    pub host: Option<HeaderValue>,
    pub ip: Option<IpAddr>,
    pub ua: Option<HeaderValue>,
    pub total: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug)]
pub struct WebLog {
    /// Every client request's time and bytes, per second (the stats API's `web.stats`).
    pub stats: PoolStats,
    /// `http_regex_log` when `http_log_requests` is on.
    log: Option<Regex>,
    recent: Vec<Mutex<Option<WebRequest>>>,
    next: AtomicU64,
}

fn text(v: &Option<HeaderValue>) -> &str {
    v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("")
}

impl WebRequest {
    fn status_text(&self) -> &'static str {
        http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    }

    fn perf(&self) -> Value {
        json!({
            "scale": 1000,
            "perf": {"total": crate::timing::ms_rounded(self.total, 3)},
            "counters": {"bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "num_requests": 1},
        })
    }

    fn ips(&self) -> Vec<String> {
        self.ip.iter().map(IpAddr::to_string).collect()
    }

    fn host(&self) -> &str {
        let host = text(&self.host);
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    }
}

impl WebLog {
    pub fn new(log: Option<Regex>, recent: usize) -> Self {
        WebLog {
            stats: PoolStats::default(),
            log,
            recent: (0..recent).map(|_| Mutex::new(None)).collect(),
            next: AtomicU64::new(0),
        }
    }

    /// Whether `record` wants the request at all (so callers skip building it otherwise).
    pub fn wants(&self) -> bool {
        self.log.is_some() || !self.recent.is_empty()
    }

    pub fn record(&self, req: WebRequest) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let path = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        if self.log.as_ref().is_some_and(|re| re.is_match(path)) {
            event_log::emit(self.line(id, &req, path));
        }
        if !self.recent.is_empty() {
            let slot = &self.recent[(id % self.recent.len() as u64) as usize];
            if let Ok(mut slot) = slot.try_lock() {
                *slot = Some(req);
            }
        }
    }

    fn line(&self, id: u64, req: &WebRequest, path: &str) -> EventLine {
        let data = json!({
            "id": format!("r{}", id + 1),
            "method": req.method.as_str(),
            "proto": if req.tls { "https" } else { "http" },
            "ip": req.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "ips": req.ips(),
            "port": req.port,
            "ua": text(&req.ua),
            "host": req.host(),
            "perf": req.perf(),
        });
        EventLine {
            component: "WebServer".into(),
            category: "transaction",
            code: format!("HTTP {} {}", req.status, req.status_text()).into(),
            msg: path.into(),
            data: Some(data.to_string()),
        }
    }

    /// The recent requests, newest first (the stats API's `web.recent`).
    pub fn recent(&self) -> Vec<Value> {
        let mut found: Vec<WebRequest> = self
            .recent
            .iter()
            .filter_map(|s| s.lock().ok().and_then(|s| s.clone()))
            .collect();
        found.sort_by_key(|r| std::cmp::Reverse(r.when));
        found
            .iter()
            .map(|r| {
                json!({
                    "when": r.when / 1000,
                    "proto": if r.tls { "https" } else { "http" },
                    "port": r.port,
                    "code": r.status,
                    "status": r.status_text(),
                    "uri": r.uri.path_and_query().map_or("/", |pq| pq.as_str()),
                    "host": r.host(),
                    "ips": r.ips(),
                    "ua": text(&r.ua),
                    "perf": r.perf(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(n: u64) -> WebRequest {
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
    fn recent_keeps_the_last_n_newest_first() {
        let log = WebLog::new(None, 3);
        (1..=5).for_each(|n| log.record(request(n)));
        let uris: Vec<_> = log.recent().iter().map(|r| r["uri"].clone()).collect();
        assert_eq!(uris, ["/r5", "/r4", "/r3"]);
        assert_eq!(log.recent()[0]["host"], "localhost");
        assert_eq!(log.recent()[0]["perf"]["perf"]["total"], 1.5);
    }

    #[test]
    fn lines_follow_pixl_server_web() {
        let log = WebLog::new(Some(Regex::new(".+").unwrap()), 0);
        let line = log.line(3, &request(1), "/r1");
        assert_eq!(
            (&*line.component, line.category),
            ("WebServer", "transaction")
        );
        assert_eq!((&*line.code, line.msg.as_str()), ("HTTP 200 OK", "/r1"));
        let data = line.data.unwrap();
        assert!(data.starts_with(r#"{"id":"r4","method":"GET","proto":"http","ip":"127.0.0.1","ips":["127.0.0.1"],"port":3020"#), "{data}");
    }
}
