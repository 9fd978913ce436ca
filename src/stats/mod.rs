//! What poolgate reports about itself: each pool's and the web server's figures for the last
//! full second (`second.rs`, the one per-second counter type, its slots in `slot.rs` with the
//! latency histogram of `histogram.rs`; `report.rs`, how a second is read), what the stats
//! read and the once-a-second ticker (`hub.rs`), each pool's five-minute history
//! (`history.rs`), PixlProxy's JSON stats API (`document.rs`) with its live page and access
//! rules (`api.rs`, `page/`, `acl.rs`), Prometheus metrics (`metrics.rs`), the open client
//! connections (`sockets.rs`), the recent requests (`recent.rs`) and errors (`errors.rs`), and
//! the requests refused at the front door (`refusals.rs`).
//!
//! The hub reads per-pool counters, never whole pools; a pool's limits and targets, a queue's
//! and the server's live gauges come through the small traits `PoolView`, `QueueGauges` and
//! `ConnectionGauge`, so nothing here depends on the pool, the queue or the server. Uses
//! `event_log`, `timing` and the front end's `HeadFault` and request queue.

mod acl;
mod api;
mod document;
mod errors;
mod histogram;
mod history;
mod hub;
mod metrics;
mod pool_view;
mod recent;
mod refusals;
mod report;
mod second;
mod slot;
mod sockets;

pub(crate) use acl::Acl;
pub(crate) use api::{Endpoint, StatsAnswer, StatsApi};
pub(crate) use errors::{ErrorEntry, RecentErrors, RECENT_ERRORS};
pub(crate) use history::History;
pub(crate) use hub::{ConnectionGauge, PoolFigures, QueueGauges, StatsHub, StatsTicker};
pub(crate) use metrics::PoolMetrics;
pub(crate) use pool_view::{CheckResult, Health, PoolLimits, PoolView, TargetFigures};
pub(crate) use recent::RecentRequests;
pub(crate) use second::{Answered, PoolStats, Recording, SecondSummary};
pub(crate) use sockets::{SocketEntry, SocketTable};

/// The stats as configured.
#[derive(Debug)]
pub(crate) struct StatsSettings {
    /// `stats_uri_match`, `metrics_uri`, `http_default_acl` and the tokens.
    pub(crate) api: StatsApi,
    /// `http_recent_requests` (0 without a stats API: nobody could read them).
    pub(crate) recent_requests: usize,
}
