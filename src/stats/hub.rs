//! What the stats API, the metrics and the per-second log lines read: every pool's last full
//! second plus live gauges, the web server's own figures and recent requests, the process's
//! CPU use, and the server facts. The ticker (a Pingora background service) runs at each second
//! boundary: it clears the next second's slots, samples the CPU, and writes one "Average
//! Performance Metrics" line (debug level 2) per pool that was busy.

use super::recent::RecentRequests;
use super::refusals::RefusedRequests;
use super::report::{Gauges, PhaseSummary};
use super::second::PoolStats;
use super::sockets::SocketTable;
use crate::cluster::{Cluster, ClusterFigures};
use crate::event_log;
use crate::front_end::RequestQueue;
use crate::timing::clock;
use crate::timing::ms_rounded;
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
}

/// The number of open client connections, as the stats read it.
pub(crate) trait ConnectionGauge: Send + Sync {
    fn open(&self) -> usize;
}

/// One pool's counters: what the hub reads of a pool.
pub(crate) struct PoolFigures {
    pub(crate) id: Arc<str>,
    pub(crate) stats: Arc<PoolStats>,
    /// The pool's blind queue, when it has one (`use_queue`).
    pub(crate) queue: Option<Arc<dyn QueueGauges>>,
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
    connections: Arc<dyn ConnectionGauge>,
    /// The front end's request queue (`web.queue`).
    request_queue: Arc<RequestQueue>,
    /// `cpu_pct` of the last full second, as `f64` bits.
    cpu_pct: AtomicU64,
    hostname: String,
    /// The listening address (`web.server.ip`).
    ip: String,
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
        StatsHub {
            pools,
            web,
            recent,
            sockets,
            refused: RefusedRequests::default(),
            connections,
            request_queue,
            cpu_pct: AtomicU64::new(0f64.to_bits()),
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

    fn cpu_pct(&self) -> f64 {
        f64::from_bits(self.cpu_pct.load(Ordering::Relaxed))
    }

    fn gauges(&self, pool: &PoolFigures) -> Gauges {
        let executing = pool.executing();
        Gauges {
            pending: pool.pending(),
            executing,
            client_conns: self.connections.open(),
            server_conns: executing,
        }
    }

    /// A pool's entry of the stats API: `counters`, `minimums`, `maximums`, `averages`,
    /// `scale`, `cpu_pct`.
    fn pool_json(&self, pool: &PoolFigures) -> Map<String, Value> {
        let mut out = pool.stats.last_second().to_json(self.gauges(pool));
        out.insert("scale".into(), 1000.into());
        out.insert("cpu_pct".into(), json!(round2(self.cpu_pct())));
        out
    }

    /// `{"pools": {...}, "web": {...}}`.
    pub(crate) fn document(&self) -> Value {
        let pools: Map<String, Value> = self
            .pools
            .iter()
            .map(|p| (p.id.to_string(), Value::Object(self.pool_json(p))))
            .collect();
        let web = self.web.last_second();
        let total = web.total();
        let mut doc = json!({
            "pools": pools,
            "web": {
                "server": {
                    "uptime_sec": clock::uptime().as_secs(),
                    "hostname": self.hostname,
                    "ip": self.ip,
                    "name": "poolgate",
                    "version": env!("CARGO_PKG_VERSION"),
                },
                "stats": {
                    "total": mma(total),
                    "bytes_in": web.bytes_received,
                    "bytes_out": web.bytes_sent,
                    "num_requests": web.requests,
                    "cur_sockets": self.connections.open(),
                },
                "sockets": self.sockets.to_json(),
                "recent": self.recent.to_json(),
                "refused": self.refused.to_json(),
                "queue": {
                    "pending": self.request_queue.pending(),
                    "running": self.request_queue.running(),
                },
            },
        });
        if let (Some(c), Some(obj)) = (self.cluster(), doc.as_object_mut()) {
            obj.insert(
                "cluster".into(),
                json!({
                    "instance": c.instance,
                    "redis": c.redis,
                    "live_instances": c.live_instances,
                    "redis_reachable": c.redis_reachable,
                    "redis_rtt_ms": (c.redis_rtt_ms * 1000.0).round() / 1000.0,
                    "local_decisions": c.local_decisions,
                    "queue_taken_over": c.queue_taken_over,
                    "reachability_changes": c.reachability_changes,
                }),
            );
        }
        doc
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

/// pixl-server-web's min/max/average object, in ms.
fn mma(s: Option<&PhaseSummary>) -> Value {
    let ms = |d: Duration| ms_rounded(d, 3);
    match s {
        Some(s) => json!({
            "st": "mma",
            "min": ms(s.min),
            "max": ms(s.max),
            "total": ms(s.sum),
            "count": s.count,
            "avg": ms(s.avg),
        }),
        None => json!({"st": "mma", "min": 0, "max": 0, "total": 0, "count": 0, "avg": 0}),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
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
