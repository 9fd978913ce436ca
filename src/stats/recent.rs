//! The stats API's `web.recent`: the last `http_recent_requests` client requests.
//!
//! A ring of slots, each behind its own lock taken with `try_lock` (a request never waits;
//! under contention it is simply not listed). Entries hold ref-counted copies of the request's
//! URI and headers, so keeping them costs no allocation.

use crate::event_log::WebRequest;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug)]
pub(crate) struct RecentRequests {
    slots: Vec<Mutex<Option<WebRequest>>>,
    next: AtomicU64,
}

impl RecentRequests {
    /// Room for `n` requests; 0 = none kept.
    pub(crate) fn new(n: usize) -> Self {
        RecentRequests {
            slots: (0..n).map(|_| Mutex::new(None)).collect(),
            next: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        !self.slots.is_empty()
    }

    pub(crate) fn record(&self, req: &WebRequest) {
        if self.slots.is_empty() {
            return;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[(id % self.slots.len() as u64) as usize];
        if let Ok(mut slot) = slot.try_lock() {
            *slot = Some(req.clone());
        }
    }

    /// The recent requests, newest first.
    pub(crate) fn to_json(&self) -> Vec<Value> {
        let mut found: Vec<WebRequest> = self
            .slots
            .iter()
            .filter_map(|s| s.lock().ok().and_then(|s| s.clone()))
            .collect();
        found.sort_by_key(|r| std::cmp::Reverse(r.when));
        found
            .iter()
            .map(|r| {
                json!({
                    "when": r.when / 1000,
                    "proto": r.proto(),
                    "port": r.port,
                    "code": r.status,
                    "status": r.status_text(),
                    "uri": r.path(),
                    "host": r.host(),
                    "ips": r.ips(),
                    "ua": r.user_agent(),
                    "perf": r.perf(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_log::sample_web_request as request;

    #[test]
    fn recent_keeps_the_last_n_newest_first() {
        let recent = RecentRequests::new(3);
        (1..=5).for_each(|n| recent.record(&request(n)));
        let json = recent.to_json();
        let uris: Vec<_> = json.iter().map(|r| r["uri"].clone()).collect();
        assert_eq!(uris, ["/r5", "/r4", "/r3"]);
        assert_eq!(json[0]["host"], "localhost");
        assert_eq!(json[0]["perf"]["perf"]["total"], 1.5);
    }
}
