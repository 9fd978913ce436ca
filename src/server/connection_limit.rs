//! `WebServer.http_max_connections`: a hard cap on open client connections. The connection
//! beyond the cap is closed as it is accepted (before a TLS handshake or any byte read) and
//! counted.
//!
//! Pingora has no connection limit, so the listener (`client_listener.rs`) takes one slot per
//! accepted connection and the front door (`front_door.rs`) holds it for the whole life of the
//! connection, across all its keep-alive requests.

use crate::stats::ConnectionGauge;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub(super) struct ConnectionLimit {
    max: usize,
    open: AtomicUsize,
    refused: AtomicU64,
    /// The Unix second of the last "refused" log line, so a flood logs once a second.
    last_logged: AtomicU64,
}

impl ConnectionLimit {
    /// `max` 0 = no limit (connections are still counted, for the stats).
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(ConnectionLimit {
            max,
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            last_logged: AtomicU64::new(0),
        })
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// A slot for a new connection, or `None` (counted and logged) when the cap is reached.
    pub(super) fn admit(self: &Arc<Self>) -> Option<OpenSlot> {
        let opened = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (self.max == 0 || n < self.max).then_some(n + 1)
            })
            .is_ok();
        if opened {
            return Some(OpenSlot(self.clone()));
        }
        self.note_refused();
        None
    }

    fn note_refused(&self) {
        crate::event_log::maxed_out("http_max_connections");
        let total = self.refused.fetch_add(1, Ordering::AcqRel) + 1;
        let now = u64::from(crate::timing::clock::now_sec());
        if self.last_logged.swap(now, Ordering::AcqRel) != now {
            log::warn!(
                "http_max_connections ({}) reached: closed a new client connection ({total} since start)",
                self.max
            );
        }
    }
}

impl ConnectionGauge for ConnectionLimit {
    fn open(&self) -> usize {
        ConnectionLimit::open(self)
    }

    fn limit(&self) -> usize {
        self.max
    }
}

/// One open connection; dropping it (however the connection ends) frees the slot.
pub(super) struct OpenSlot(Arc<ConnectionLimit>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}
