//! What the stats API, the metrics and the per-second log lines read: every pool's last full
//! second plus live gauges, its view (limits, targets, recent errors) and its five-minute
//! history, the web server's own figures, recent requests and errors, the process's CPU and
//! memory use, and the server facts. The ticker (a Pingora background service) runs at each
//! second boundary: it clears the next second's slots, adds the second that ended to every
//! pool's history, samples the CPU and RSS, and writes one "Average Performance Metrics" line
//! (debug level 2) per pool that was busy. The JSON itself is written by `document.rs`.

use super::errors::{RecentErrors, RECENT_ERRORS};
use super::history::History;
use super::pool_view::PoolView;
use super::recent::RecentRequests;
use super::refusals::RefusedRequests;
use super::report::Gauges;
use super::second::PoolStats;
use super::sockets::SocketTable;
use crate::cluster::{Cluster, ClusterFigures};
use crate::event_log;
use crate::front_end::RequestQueue;
use crate::timing::clock;
use async_trait::async_trait;
use nix::sys::resource::{getrusage, UsageWho};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A blind queue's live gauges, as the stats read them.
pub(crate) trait QueueGauges: Send + Sync {
    /// Requests waiting to be sent (PixlProxy's `cur_pending_reqs`).
    fn pending(&self) -> usize;
    /// Queued requests being sent now.
    fn in_flight(&self) -> usize;
    /// `max_queue_length` (0 = no limit).
    fn max_length(&self) -> usize;
}

/// The number of open client connections, as the stats read it.
pub(crate) trait ConnectionGauge: Send + Sync {
    fn open(&self) -> usize;
    /// `http_max_connections` (0 = no limit).
    fn limit(&self) -> usize;
}

/// One pool's counters: what the hub reads of a pool.
pub(crate) struct PoolFigures {
    pub(crate) id: Arc<str>,
    pub(crate) stats: Arc<PoolStats>,
    /// The pool's blind queue, when it has one (`use_queue`).
    pub(crate) queue: Option<Arc<dyn QueueGauges>>,
    /// Its limits, targets and recent errors.
    pub(crate) view: Arc<dyn PoolView>,
    /// The last five minutes, one point a second (kept by the ticker).
    pub(crate) history: History,
}

impl PoolFigures {
    /// Back-end requests in progress: the streaming and buffered ones, and queued sends.
    pub(crate) fn executing(&self) -> usize {
        self.stats.executing() + self.queue.as_ref().map_or(0, |q| q.in_flight())
    }

    pub(crate) fn pending(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.pending())
    }
}

pub(crate) struct StatsHub {
    pools: Vec<PoolFigures>,
    /// Every client request's time and bytes, per second (`web.stats`).
    pub(crate) web: PoolStats,
    /// The last client requests (`web.recent`).
    pub(crate) recent: RecentRequests,
    /// Open client connections (`web.sockets`).
    pub(crate) sockets: Arc<SocketTable>,
    /// Requests refused at the front door (`web.refused`).
    pub(crate) refused: RefusedRequests,
    /// Requests refused before any pool saw them (part of `web.errors`).
    pub(crate) errors: RecentErrors,
    pub(super) connections: Arc<dyn ConnectionGauge>,
    /// The front end's request queue (`web.queue`).
    pub(super) request_queue: Arc<RequestQueue>,
    /// `cpu_pct` of the last full second, as `f64` bits.
    cpu_pct: AtomicU64,
    /// The process's resident memory at the last tick.
    pub(super) rss_bytes: AtomicU64,
    pub(super) hostname: String,
    /// The listening address (`web.server.ip`).
    pub(super) ip: String,
    /// Cluster mode's membership (the `cluster` object).
    cluster: Option<Arc<Cluster>>,
}

impl StatsHub {
    pub(crate) fn new(
        pools: Vec<PoolFigures>,
        web: PoolStats,
        recent: RecentRequests,
        sockets: Arc<SocketTable>,
        connections: Arc<dyn ConnectionGauge>,
        ip: String,
        request_queue: Arc<RequestQueue>,
    ) -> Self {
        // Errors are kept only where the stats API shows them, as recent requests are.
        let errors = match web.records_all() {
            true => RECENT_ERRORS,
            false => 0,
        };
        StatsHub {
            pools,
            web,
            recent,
            sockets,
            refused: RefusedRequests::default(),
            errors: RecentErrors::new(errors),
            connections,
            request_queue,
            cpu_pct: AtomicU64::new(0f64.to_bits()),
            rss_bytes: AtomicU64::new(rss_bytes().unwrap_or(0)),
            hostname: event_log::hostname(),
            ip,
            cluster: None,
        }
    }

    /// Show cluster mode's figures too.
    pub(crate) fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Cluster mode's figures, in cluster mode.
    pub(crate) fn cluster(&self) -> Option<ClusterFigures> {
        self.cluster.as_ref().map(|c| c.figures())
    }

    pub(crate) fn pools(&self) -> &[PoolFigures] {
        &self.pools
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.connections.open()
    }

    pub(super) fn cpu_pct(&self) -> f64 {
        f64::from_bits(self.cpu_pct.load(Ordering::Relaxed))
    }

    pub(super) fn gauges(&self, pool: &PoolFigures) -> Gauges {
        let executing = pool.executing();
        Gauges {
            pending: pool.pending(),
            executing,
            client_conns: self.connections.open(),
            server_conns: executing,
        }
    }

    /// The per-second line: `scale`, then the pool's figures, then `cpu_pct`.
    fn log_second(&self, pool: &PoolFigures) {
        if !event_log::wants_debug(2) {
            return;
        }
        let second = pool.stats.last_second();
        if second.requests == 0 {
            return;
        }
        let mut data = Map::new();
        data.insert("scale".into(), 1000.into());
        data.extend(second.to_json(self.gauges(pool)));
        data.insert("cpu_pct".into(), json!(round2(self.cpu_pct())));
        let msg = "Average Performance Metrics";
        event_log::debug(2, &pool.id, msg, Some(Value::Object(data)));
    }
}

pub(super) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The process's resident set size, from `VmRSS` in `/proc/self/status` (Linux; read by the
/// ticker, never by a request).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// User plus system CPU time of this process.
fn cpu_time() -> Option<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let as_duration = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    Some(as_duration(usage.user_time()) + as_duration(usage.system_time()))
}

/// The once-a-second ticker.
pub(crate) struct StatsTicker(pub(crate) Arc<StatsHub>);

#[async_trait]
impl BackgroundService for StatsTicker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let hub = &self.0;
        let mut last_cpu = cpu_time();
        loop {
            // Past the coarse clock's lag (a scheduler tick, at most 10 ms), so no request is
            // still being filed under the second this tick reads.
            let wait = Duration::from_millis(clock::ms_to_next_second() + 20);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            let now = clock::now_sec_exact();
            hub.pools.iter().for_each(|p| p.stats.prepare(now + 1));
            hub.web.prepare(now + 1);
            for pool in hub.pools.iter().filter(|p| p.stats.records_all()) {
                for sec in pool.history.due(now.saturating_sub(1)) {
                    pool.history.record(sec, pool.stats.point(sec));
                }
            }
            if let Some(rss) = rss_bytes() {
                hub.rss_bytes.store(rss, Ordering::Relaxed);
            }
            let cpu = cpu_time();
            if let (Some(before), Some(after)) = (last_cpu, cpu) {
                let pct = (after.saturating_sub(before)).as_secs_f64() * 100.0;
                hub.cpu_pct.store(pct.to_bits(), Ordering::Relaxed);
            }
            last_cpu = cpu;
            hub.pools.iter().for_each(|p| hub.log_second(p));
            hub.refused.log_summary();
        }
    }
}
