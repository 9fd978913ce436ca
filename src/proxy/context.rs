//! Per-request state: what the hooks of one request share, from routing to the log line.

use crate::admission::ConcurrencySlot;
use crate::front_end::compression::ResponseEncoder;
use crate::pool::headers::ClientFacts;
use crate::pool::targets::Chosen;
use crate::pool::Pool;
use crate::stats::sockets::SocketEntry;
use crate::timing::PerfTimer;
use pingora::{Error, ErrorType, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Per-request state.
#[derive(Default)]
pub struct RequestCtx {
    /// The pool chosen by routing; `None` until `request_filter` ran or when nothing matched.
    pub(crate) pool: Option<Arc<Pool>>,
    /// The pool's concurrency slot: freed once the back end has answered in full, on failure,
    /// and in any case when the context is dropped.
    pub(crate) slot: Option<ConcurrencySlot>,
    /// The client's address and protocol, read once in `request_filter`.
    pub(crate) client: ClientFacts,
    /// Back-end addresses that failed, so a retry picks another target.
    pub(crate) tried: Vec<SocketAddr>,
    /// The target of the current streaming attempt.
    pub(crate) chosen: Option<Chosen>,
    /// Retries left on the streaming path (connect failures only).
    pub(crate) retries_left: u32,
    /// The final failure was already counted in the pool's per-second errors.
    pub(crate) final_error_counted: bool,
    /// The request went through the buffered exchange (which counts its own errors).
    pub(crate) via_exchange: bool,
    /// The request was queued (`use_queue`): its send is counted by the queue's sender.
    pub(crate) queued: bool,
    /// Phase times and byte counts of the back-end request; set when the request is admitted
    /// to its pool, timed from its arrival.
    pub(crate) perf: Option<PerfTimer>,
    /// When the request's header had been read.
    pub(crate) arrived: Option<Instant>,
    /// The client connection's entry in `web.sockets`.
    pub(crate) socket: Option<Arc<SocketEntry>>,
    /// Request body bytes read from the client so far (`http_max_upload_size`).
    pub(crate) body_received: u64,
    /// Compresses the response body when the client gets it encoded.
    pub(crate) encoder: Option<ResponseEncoder>,
}

impl RequestCtx {
    pub(crate) fn pool(&self) -> Result<&Arc<Pool>> {
        self.pool
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no pool chosen for request"))
    }
}

/// The phase timing of the back-end request, for pools that keep one.
impl RequestCtx {
    /// End phase `name` now.
    pub(crate) fn lap(&mut self, name: &'static str) {
        if let Some(perf) = &mut self.perf {
            perf.lap(name);
        }
    }

    /// Record phase `name` as empty without reading the clock.
    pub(crate) fn skip_phase(&mut self, name: &'static str) {
        if let Some(perf) = &mut self.perf {
            perf.skip(name);
        }
    }

    /// Leave the time since the last lap out of every phase.
    pub(crate) fn restart_lap(&mut self) {
        if let Some(perf) = &mut self.perf {
            perf.restart_lap();
        }
    }
}
