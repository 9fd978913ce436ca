//! Prometheus metrics (`metrics_uri`), in the `prometheus` crate's default registry (the same
//! crate version as the rest of the tree, so every metric lands in one registry). Each pool
//! binds its label values once at start; a request then costs a few atomic adds. Gauges are
//! set from the live figures when the endpoint is scraped.

use super::hub::StatsHub;
use crate::front_end::HeadFault;
use crate::timing::{PerfTimer, Phase};
use once_cell::sync::Lazy;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, TextEncoder,
};

struct Families {
    requests: IntCounterVec,
    throttled: IntCounterVec,
    retries: IntCounterVec,
    connections: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
    queue_pending: IntGaugeVec,
    client_connections: IntGauge,
    log_dropped: IntGauge,
    refused: IntCounterVec,
    cluster: Lazy<ClusterFamilies>,
}

/// Cluster mode's metrics, registered only in cluster mode (the first scrape that has them).
struct ClusterFamilies {
    live: IntGauge,
    reachable: IntGauge,
    rtt: Gauge,
    local_decisions: IntCounter,
    taken_over: IntCounter,
    changes: IntCounter,
}

fn plain_counter(name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|_| unreachable!("valid static metric"));
    let _ = prometheus::register(Box::new(c.clone()));
    c
}

fn cluster_families() -> ClusterFamilies {
    let rtt = Gauge::new(
        "poolgate_cluster_redis_rtt_seconds",
        "Smoothed round-trip time of the cluster's Redis operations.",
    )
    .unwrap_or_else(|_| unreachable!("valid static metric"));
    let _ = prometheus::register(Box::new(rtt.clone()));
    ClusterFamilies {
        live: gauge(
            "poolgate_cluster_live_instances",
            "Live poolgate instances of the cluster, as the last heartbeat counted them.",
        ),
        reachable: gauge(
            "poolgate_cluster_redis_reachable",
            "1 while the cluster's Redis answers, 0 while decisions follow cluster.on_redis_error.",
        ),
        rtt,
        local_decisions: plain_counter(
            "poolgate_cluster_local_decisions_total",
            "Admissions decided without Redis because it could not be reached.",
        ),
        taken_over: plain_counter(
            "poolgate_cluster_queue_taken_over_total",
            "Queued requests taken over from instances that stopped sending them.",
        ),
        changes: plain_counter(
            "poolgate_cluster_reachability_changes_total",
            "Changes of the cluster's Redis reachability.",
        ),
    }
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let family = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|_| unreachable!("valid static metric definition"));
    let _ = prometheus::register(Box::new(family.clone()));
    family
}

fn gauge_vec(name: &str, help: &str) -> IntGaugeVec {
    let family = IntGaugeVec::new(Opts::new(name, help), &["pool"])
        .unwrap_or_else(|_| unreachable!("valid static metric definition"));
    let _ = prometheus::register(Box::new(family.clone()));
    family
}

fn gauge(name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|_| unreachable!("valid static metric"));
    let _ = prometheus::register(Box::new(g.clone()));
    g
}

static FAMILIES: Lazy<Families> = Lazy::new(|| {
    let duration = HistogramVec::new(
        HistogramOpts::new(
            "poolgate_backend_duration_seconds",
            "Back-end request time by phase (total, dns, connect, send, wait, receive).",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]),
        &["pool", "phase"],
    )
    .unwrap_or_else(|_| unreachable!("valid static metric definition"));
    let _ = prometheus::register(Box::new(duration.clone()));
    Families {
        requests: counter(
            "poolgate_requests_total",
            "Back-end requests by status class (1xx-5xx, or failed: no answer).",
            &["pool", "class"],
        ),
        throttled: counter(
            "poolgate_throttled_total",
            "Requests refused with 429 by a pool's limits.",
            &["pool"],
        ),
        retries: counter(
            "poolgate_retries_total",
            "Retried back-end attempts.",
            &["pool"],
        ),
        connections: counter(
            "poolgate_backend_connections_total",
            "Back-end connections used, new or reused from the keep-alive pool.",
            &["pool", "reused"],
        ),
        duration,
        in_flight: gauge_vec("poolgate_in_flight", "Back-end requests in progress."),
        queue_pending: gauge_vec(
            "poolgate_queue_pending",
            "Queued requests waiting to be sent.",
        ),
        client_connections: gauge("poolgate_client_connections", "Open client connections."),
        log_dropped: gauge(
            "poolgate_event_log_dropped_lines",
            "Event-log lines dropped because the writer fell behind.",
        ),
        refused: counter(
            "poolgate_refused_requests_total",
            "Requests refused at the front door before any pool saw them, by reason.",
            &["reason"],
        ),
        cluster: Lazy::new(cluster_families),
    }
});

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "failed"];

/// One pool's bound metric handles; `None` when there is no `metrics_uri` to read them
/// from, so requests do not pay for figures nobody can see.
pub(crate) struct PoolMetrics(Option<Handles>);

struct Handles {
    requests: Vec<IntCounter>,
    throttled: IntCounter,
    retries: IntCounter,
    new_connections: IntCounter,
    reused_connections: IntCounter,
    total: prometheus::Histogram,
    /// By `Phase::index`.
    phases: Vec<prometheus::Histogram>,
}

impl std::fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolMetrics")
    }
}

impl PoolMetrics {
    /// The pool's metrics, recorded only when `recording` (a Prometheus endpoint exists).
    pub(crate) fn new(pool: &str, recording: bool) -> Self {
        if !recording {
            return PoolMetrics(None);
        }
        let f = &*FAMILIES;
        PoolMetrics(Some(Handles {
            requests: CLASSES
                .iter()
                .map(|c| f.requests.with_label_values(&[pool, c]))
                .collect(),
            throttled: f.throttled.with_label_values(&[pool]),
            retries: f.retries.with_label_values(&[pool]),
            new_connections: f.connections.with_label_values(&[pool, "false"]),
            reused_connections: f.connections.with_label_values(&[pool, "true"]),
            total: f.duration.with_label_values(&[pool, "total"]),
            phases: Phase::ALL
                .iter()
                .map(|p| f.duration.with_label_values(&[pool, p.name()]))
                .collect(),
        }))
    }

    /// A finished back-end request: its status (0 = no answer) and phase times.
    pub(crate) fn observe(&self, status: u16, perf: &PerfTimer) {
        let Some(m) = &self.0 else { return };
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => 5,
        };
        m.requests[class].inc();
        m.total.observe(perf.total().as_secs_f64());
        for (phase, took) in perf.phases() {
            m.phases[phase.index()].observe(took.as_secs_f64());
        }
    }

    pub(crate) fn throttled(&self) {
        if let Some(m) = &self.0 {
            m.throttled.inc();
        }
    }

    pub(crate) fn retried(&self) {
        if let Some(m) = &self.0 {
            m.retries.inc();
        }
    }

    pub(crate) fn connected(&self, reused: bool) {
        match (&self.0, reused) {
            (Some(m), true) => m.reused_connections.inc(),
            (Some(m), false) => m.new_connections.inc(),
            (None, _) => {}
        }
    }
}

/// The text exposition of every metric in the registry, gauges brought up to date first.
pub(super) fn render(hub: &StatsHub) -> String {
    let f = &*FAMILIES;
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    for pool in hub.pools() {
        f.in_flight
            .with_label_values(&[&pool.id])
            .set(gauge(pool.executing()));
        f.queue_pending
            .with_label_values(&[&pool.id])
            .set(gauge(pool.pending()));
    }
    f.client_connections.set(gauge(hub.open_connections()));
    f.log_dropped
        .set(i64::try_from(crate::event_log::dropped()).unwrap_or(i64::MAX));
    // Counted with atomics on the request path; brought into the registry when scraped.
    for fault in HeadFault::ALL {
        let counter = f.refused.with_label_values(&[fault.label()]);
        let seen = hub.refused.count(fault);
        counter.inc_by(seen.saturating_sub(counter.get()));
    }
    if let Some(c) = hub.cluster() {
        let m = &*f.cluster;
        m.live.set(gauge(c.live_instances));
        m.reachable.set(i64::from(c.redis_reachable));
        m.rtt.set(c.redis_rtt_ms / 1000.0);
        let catch_up = |counter: &IntCounter, seen: u64| {
            counter.inc_by(seen.saturating_sub(counter.get()));
        };
        catch_up(&m.local_decisions, c.local_decisions);
        catch_up(&m.taken_over, c.queue_taken_over);
        catch_up(&m.changes, c.reachability_changes);
    }
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
