//! Per-request state: what the hooks of one request share, from its arrival to the log line,
//! and the bookkeeping every hook does the same way (phase timing, the pool's permit, failure
//! accounting).

use crate::admission::Permit;
use crate::front_end::{ClientFacts, ResponseEncoder, RunningRequest};
use crate::pool::{Chosen, OnTarget, Pool};
use crate::stats::SocketEntry;
use crate::timing::{PerfTimer, Phase};
use crate::upstream::ResponseWatch;
use pingora::{ErrorType, OkOrErr, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Per-request state.
#[derive(Default)]
pub(crate) struct RequestCtx {
    /// The pool chosen by routing; `None` until `request_filter` ran or when nothing matched.
    pub(super) pool: Option<Arc<Pool>>,
    /// The pool's hold for this request: given back once the back end has answered in full,
    /// on failure, and in any case when the context is dropped.
    pub(super) permit: Option<Permit>,
    /// Who the client is and whether the request counts as HTTPS, decided on arrival.
    pub(super) client: ClientFacts,
    /// Back-end addresses that failed, so a retry of the exchange picks another target.
    pub(super) tried: Vec<SocketAddr>,
    /// The target of the current streaming attempt.
    pub(super) chosen: Option<Chosen>,
    /// The current streaming attempt counted as in progress on its target (the stats'
    /// `targets`), until the back end is done with it.
    pub(super) on_target: Option<OnTarget>,
    /// The final failure was already counted in the pool's per-second errors.
    final_error_counted: bool,
    /// The request went through the buffered exchange (which counts its own errors).
    pub(super) via_exchange: bool,
    /// The request was queued (`use_queue`): its send is counted by the queue's sender.
    pub(super) queued: bool,
    /// Phase times and byte counts of the back-end request; set when the request is admitted
    /// to its pool, timed from its arrival.
    pub(super) perf: Option<PerfTimer>,
    /// When the request's header had been read.
    pub(super) arrived: Option<Instant>,
    /// The client connection's entry in `web.sockets`.
    pub(super) socket: Option<Arc<SocketEntry>>,
    /// Request body bytes read from the client so far (`http_max_upload_size`).
    pub(super) body_received: u64,
    /// Compresses the response body when the client gets it encoded; boxed, as most
    /// responses go uncompressed and the context is copied with Pingora's request future.
    pub(super) encoder: Option<Box<ResponseEncoder>>,
    /// Bodies kept for `http_log_request_details` (only while it is on).
    pub(super) bodies: Option<Box<crate::event_log::BodyCapture>>,
    /// Requests pending, running and sockets open on arrival (`http_log_perf` only).
    pub(super) gauges_at_start: Option<(usize, usize, usize)>,
    /// The request's place in the front end's request queue (`http_max_concurrent_requests`),
    /// given back when the context is dropped.
    pub(super) running: Option<RunningRequest>,
    /// The current streaming attempt's first-byte deadline (`http_timeout_ms`).
    pub(super) watch: Option<ResponseWatch>,
}

impl RequestCtx {
    pub(super) fn pool(&self) -> Result<&Arc<Pool>> {
        self.pool
            .as_ref()
            .or_err_with(ErrorType::InternalError, || "no pool chosen for request")
    }

    /// The request was admitted to its pool with `permit`: its phase timer starts (from the
    /// arrival: routing and admission take microseconds, and reusing that reading saves a
    /// clock read) and it counts as in flight.
    pub(super) fn admitted(&mut self, permit: Permit) {
        self.permit = Some(permit);
        let Some(pool) = &self.pool else { return };
        self.perf = Some(PerfTimer::start_at(
            self.arrived.unwrap_or_else(Instant::now),
        ));
        pool.stats.start_request();
    }

    /// Give the pool's permit back (the back end is done with this request), and the
    /// request's place among its target's requests in progress.
    pub(super) fn release_permit(&mut self) {
        self.permit = None;
        self.on_target = None;
    }
}

/// The phase timing of the back-end request, for admitted requests.
impl RequestCtx {
    /// End `phase` now; the clock reading, when the request is timed.
    pub(super) fn lap(&mut self, phase: Phase) -> Option<Instant> {
        self.perf.as_mut().map(|perf| perf.lap(phase))
    }

    /// Record `phase` as empty without reading the clock.
    pub(super) fn skip_phase(&mut self, phase: Phase) {
        if let Some(perf) = &mut self.perf {
            perf.skip(phase);
        }
    }

    /// Leave the time since the last lap out of every phase.
    pub(super) fn restart_lap(&mut self) {
        if let Some(perf) = &mut self.perf {
            perf.restart_lap();
        }
    }

    /// Count bytes sent to the back end.
    pub(super) fn sent(&mut self, bytes: u64) {
        if let Some(perf) = &mut self.perf {
            perf.bytes_sent += bytes;
        }
    }

    /// Count bytes received from the back end.
    pub(super) fn received(&mut self, bytes: u64) {
        if let Some(perf) = &mut self.perf {
            perf.bytes_received += bytes;
        }
    }
}

/// Failure accounting of the streaming path. It never retries: pools with `retries` go through
/// the buffered exchange, upgrade requests through the tunnel.
impl RequestCtx {
    /// A connect failed: counted in the pool's errors once, here.
    pub(super) fn connect_failed(&mut self) {
        if let Some(pool) = &self.pool {
            pool.record_failed_attempt(self.chosen.map(|c| c.target));
            self.final_error_counted = true;
        }
    }

    /// Whether the end of the request still has to count its failure in the pool's errors:
    /// not when the buffered exchange or a failed connect already did.
    pub(super) fn failure_uncounted(&self) -> bool {
        !self.via_exchange && !self.final_error_counted
    }
}
