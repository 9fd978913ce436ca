//! What the stats API and the per-second log lines read: every pool's last full second plus
//! live gauges, the process's CPU use, and the server facts. The ticker (a Pingora background
//! service) runs at each second boundary: it clears the next second's slots, samples the CPU,
//! and writes one "Average Performance Metrics" line (debug level 2) per pool that was busy.

use crate::clock;
use crate::event_log;
use crate::pool::Pool;
use crate::server::connection_limit::ConnectionLimit;
use crate::stats::second::{Gauges, PhaseSummary};
use crate::stats::sockets::SocketTable;
use crate::stats::web_log::WebLog;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct StatsHub {
    pub pools: Vec<Arc<Pool>>,
    /// Client requests as the web server saw them (`web.recent`, `web.stats`).
    pub web_log: Arc<WebLog>,
    /// Open client connections (`web.sockets`).
    pub sockets: Arc<SocketTable>,
    pub connections: Arc<ConnectionLimit>,
    /// `cpu_pct` of the last full second, as `f64` bits.
    cpu_pct: AtomicU64,
    pub hostname: String,
    pub ip: String,
}

impl StatsHub {
    pub fn new(
        pools: Vec<Arc<Pool>>,
        web_log: Arc<WebLog>,
        connections: Arc<ConnectionLimit>,
        sockets: Arc<SocketTable>,
        ip: String,
    ) -> Self {
        StatsHub {
            pools,
            web_log,
            sockets,
            connections,
            cpu_pct: AtomicU64::new(0f64.to_bits()),
            hostname: event_log::hostname(),
            ip,
        }
    }

    pub fn cpu_pct(&self) -> f64 {
        f64::from_bits(self.cpu_pct.load(Ordering::Relaxed))
    }

    fn gauges(&self, pool: &Pool) -> Gauges {
        let queue = pool.queue.as_ref().map(|q| q.stats()).unwrap_or_default();
        let executing = pool.stats.executing() + queue.in_flight;
        Gauges {
            pending: queue.pending,
            executing,
            client_conns: self.connections.open(),
            server_conns: executing,
        }
    }

    /// A pool's entry of the stats API: `counters`, `minimums`, `maximums`, `averages`,
    /// `scale`, `cpu_pct`.
    pub fn pool_json(&self, pool: &Pool) -> Map<String, Value> {
        let mut out = pool.stats.last_second().to_json(self.gauges(pool));
        out.insert("scale".into(), 1000.into());
        out.insert("cpu_pct".into(), json!(round2(self.cpu_pct())));
        out
    }

    /// `{"pools": {...}, "web": {...}}`.
    pub fn document(&self) -> Value {
        let pools: Map<String, Value> = self
            .pools
            .iter()
            .map(|p| (p.id.to_string(), Value::Object(self.pool_json(p))))
            .collect();
        let web = self.web_log.stats.last_second();
        let total = web
            .phases
            .iter()
            .find(|(n, _)| *n == "total")
            .map(|(_, s)| s);
        json!({
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
                "recent": self.web_log.recent(),
            },
        })
    }

    /// The per-second line: `scale`, then the pool's figures, then `cpu_pct`.
    fn log_second(&self, pool: &Pool) {
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
    let ms = |d: Duration| crate::timing::ms_rounded(d, 3);
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

/// User plus system CPU time of this process, from `/proc/self/stat`.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// The once-a-second ticker.
pub struct StatsTicker(pub Arc<StatsHub>);

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
            let cpu = cpu_time();
            if let (Some(before), Some(after)) = (last_cpu, cpu) {
                let pct = (after.saturating_sub(before)).as_secs_f64() * 100.0;
                hub.cpu_pct.store(pct.to_bits(), Ordering::Relaxed);
            }
            last_cpu = cpu;
            hub.pools.iter().for_each(|p| hub.log_second(p));
        }
    }
}
