//! The stats API's JSON document: PixlProxy's `pools` (each pool's last full second) and
//! pixl-server-web's `web`, with poolgate's additions beside the original keys (the same keys
//! on every call, whatever happened): per pool `responses`, `throttled`, `retries`, `errors`,
//! `percentiles`, `dominant_phase`, `limits`, `degraded`, `targets` and `history`; in `web`
//! the process's `cpu_pct` and `rss_bytes`, the connection cap, the TLS and HTTP/2 requests,
//! the answers by class, the request queue's limits and the recent `errors`; and cluster
//! mode's `cluster` object.

use super::errors::merged_json;
use super::hub::{round2, PoolFigures, StatsHub};
use super::report::PhaseSummary;
use crate::timing::clock;
use crate::timing::ms_rounded;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl StatsHub {
    /// A pool's entry of the stats API: `counters`, `minimums`, `maximums`, `averages`,
    /// `scale`, `cpu_pct`, then poolgate's figures.
    fn pool_json(&self, pool: &PoolFigures) -> Map<String, Value> {
        let second = pool.stats.last_second();
        let mut out = second.to_json(self.gauges(pool));
        out.insert("scale".into(), 1000.into());
        out.insert("cpu_pct".into(), json!(round2(self.cpu_pct())));
        out.extend(second.outcome_json());
        let limits = pool.view.limits();
        let max_queue = pool.queue.as_ref().map_or(0, |q| q.max_length());
        out.insert(
            "limits".into(),
            json!({
                "max_concurrent_requests": limits.max_concurrent,
                "max_requests_per_sec": limits.max_per_sec,
                "max_queue_length": max_queue,
                "use_queue": pool.queue.is_some(),
            }),
        );
        out.insert("degraded".into(), pool.view.degraded().into());
        let targets: Vec<Value> = pool.view.targets().iter().map(|t| t.to_json()).collect();
        out.insert("targets".into(), targets.into());
        out.insert("history".into(), pool.history.to_json());
        out
    }

    /// `{"pools": {...}, "web": {...}}`, plus `cluster` in cluster mode.
    pub(crate) fn document(&self) -> Value {
        let pools: Map<String, Value> = self
            .pools()
            .iter()
            .map(|p| (p.id.to_string(), Value::Object(self.pool_json(p))))
            .collect();
        let web = self.web.last_second();
        let total = web.total();
        let (max_running, max_pending) = self.request_queue.limits();
        let errors = self
            .pools()
            .iter()
            .map(|p| p.view.recent_errors())
            .chain(std::iter::once(&self.errors));
        let mut doc = json!({
            "pools": pools,
            "web": {
                "server": {
                    "uptime_sec": clock::uptime().as_secs(),
                    "hostname": self.hostname,
                    "ip": self.ip,
                    "name": "poolgate",
                    "version": env!("CARGO_PKG_VERSION"),
                    "cpu_pct": round2(self.cpu_pct()),
                    "rss_bytes": self.rss_bytes.load(Ordering::Relaxed),
                },
                "stats": {
                    "total": mma(total),
                    "bytes_in": web.bytes_received,
                    "bytes_out": web.bytes_sent,
                    "num_requests": web.requests,
                    "cur_sockets": self.connections.open(),
                    "max_sockets": self.connections.limit(),
                    "tls_requests": web.tls,
                    "h2_requests": web.h2,
                    "responses": web.responses_json(),
                },
                "sockets": self.sockets.to_json(),
                "recent": self.recent.to_json(),
                "refused": self.refused.to_json(),
                "queue": {
                    "pending": self.request_queue.pending(),
                    "running": self.request_queue.running(),
                    "max_running": max_running,
                    "max_pending": max_pending,
                },
                "errors": merged_json(errors),
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
