//! The stats API's `web.errors`: the last 50 failed requests, newest first, with their pool,
//! status, cause and time, for the live page's "Recent errors" (PixlProxy has no such list).
//!
//! Each pool keeps its own ring (its failed and refused requests, the blind queue's failed
//! sends) and the hub one more for requests refused before any pool (the front door's
//! malformed heads, the front end's full request queue); the API merges them. Like
//! `web.recent`, each slot has its own lock taken with `try_lock`, so a failing request never
//! waits (under contention it is not listed), and only failures pay for an entry. URIs and
//! causes are redacted when read.

use crate::event_log::redact;
use http::{Method, Uri};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Entries listed: the last 50 failures.
pub(crate) const RECENT_ERRORS: usize = 50;

/// One failed request.
#[derive(Debug, Clone)]
pub(crate) struct ErrorEntry {
    pub(crate) when_ms: u64,
    /// The pool's id; `None` before any pool (shown as `-`).
    pub(crate) pool: Option<Arc<str>>,
    /// The status the client got (0 = none: the connection was closed).
    pub(crate) status: u16,
    pub(crate) cause: Cow<'static, str>,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    /// The target's base URL, when one was chosen.
    pub(crate) target: Option<String>,
}

#[derive(Debug)]
pub(crate) struct RecentErrors {
    slots: Vec<Mutex<Option<ErrorEntry>>>,
    next: AtomicU64,
}

impl RecentErrors {
    /// Room for `n` entries; 0 = none kept (no stats API to show them).
    pub(crate) fn new(n: usize) -> Self {
        RecentErrors {
            slots: (0..n).map(|_| Mutex::new(None)).collect(),
            next: AtomicU64::new(0),
        }
    }

    /// Keep the entry `make` builds, unless nothing is kept.
    pub(crate) fn record(&self, make: impl FnOnce() -> ErrorEntry) {
        if self.slots.is_empty() {
            return;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[(id % self.slots.len() as u64) as usize];
        if let Ok(mut slot) = slot.try_lock() {
            *slot = Some(make());
        }
    }

    fn entries(&self) -> impl Iterator<Item = ErrorEntry> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.lock().ok().and_then(|s| s.clone()))
    }
}

/// The last `RECENT_ERRORS` entries of all rings, newest first: `when` (Unix seconds),
/// `pool`, `status`, `cause`, `method`, `uri`, `target`.
pub(crate) fn merged_json<'a>(rings: impl Iterator<Item = &'a RecentErrors>) -> Vec<Value> {
    let mut all: Vec<ErrorEntry> = rings.flat_map(RecentErrors::entries).collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.when_ms));
    all.truncate(RECENT_ERRORS);
    all.iter()
        .map(|e| {
            let uri = e.uri.path_and_query().map_or("/", |pq| pq.as_str());
            json!({
                "when": e.when_ms / 1000,
                "pool": e.pool.as_deref().unwrap_or("-"),
                "status": e.status,
                "cause": redact::text(&e.cause),
                "method": e.method.as_str(),
                "uri": redact::text(uri),
                "target": e.target.as_deref().unwrap_or(""),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pool: &str, when_ms: u64) -> ErrorEntry {
        ErrorEntry {
            when_ms,
            pool: Some(Arc::from(pool)),
            status: 502,
            cause: "connect refused".into(),
            method: Method::GET,
            uri: "/a?b=1".parse().unwrap(),
            target: None,
        }
    }

    #[test]
    fn the_newest_fifty_of_every_ring_are_listed_newest_first() {
        let (a, b) = (RecentErrors::new(50), RecentErrors::new(50));
        for i in 0..40 {
            a.record(|| entry("a", 1000 + i * 2));
            b.record(|| entry("b", 1001 + i * 2));
        }
        let list = merged_json([&a, &b].into_iter());
        assert_eq!(list.len(), RECENT_ERRORS);
        assert_eq!(list[0]["pool"], "b");
        assert_eq!(list[0]["when"], 1);
        assert_eq!(list[1]["pool"], "a");
        assert_eq!(list[0]["uri"], "/a?b=1");
        assert_eq!(list[0]["target"], "");
    }

    #[test]
    fn a_ring_keeps_its_last_entries_and_an_empty_one_builds_none() {
        let ring = RecentErrors::new(3);
        (0..5).for_each(|i| ring.record(|| entry("a", i * 1000)));
        let list = merged_json(std::iter::once(&ring));
        let whens: Vec<_> = list.iter().map(|e| e["when"].clone()).collect();
        assert_eq!(list.len(), 3);
        assert_eq!(whens, [4, 3, 2]);
        let off = RecentErrors::new(0);
        off.record(|| unreachable!("nothing is built when nothing is kept"));
        assert!(merged_json(std::iter::once(&off)).is_empty());
    }
}
