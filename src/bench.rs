//! What the criterion micro-benchmarks (`benches/micro.rs`) drive: poolgate's own per-request
//! work (routing, header rules, the per-second figures, the log lines), built from YAML config
//! text by the same code `serve` uses, without listening or starting the event log.
//!
//! Each method is a thin call into the module that owns the work, so the benchmarks time
//! exactly what a request does.

use crate::event_log::{hostname, EventLine, Transaction};
use crate::front_end::{ClientFacts, FrontEnd};
use crate::pool::{Pool, RouteRequest, RouteTable};
use crate::stats::{Answered, PoolStats, Recording};
use crate::timing::{PerfTimer, Phase};
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The pools, the route table and the front end of one config, as the server builds them.
pub struct Fixture {
    routes: RouteTable,
    front: FrontEnd,
    /// The web server's per-second figures, kept as the server keeps them (only with a stats
    /// API to show them).
    web: PoolStats,
}

impl Fixture {
    /// Build from config text; the error lists every problem found.
    pub fn from_yaml(yaml: &str) -> Result<Fixture, String> {
        let loaded = crate::config::load_str(yaml);
        let Some(settings) = loaded.settings else {
            let problems: Vec<String> = loaded
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect();
            return Err(problems.join("; "));
        };
        let pools = settings
            .pools
            .into_iter()
            .enumerate()
            .map(|(i, entry)| Arc::new(Pool::new(i, entry.pool, None)))
            .collect();
        let web = match settings.stats.api.uri.is_some() {
            true => Recording::Full,
            false => Recording::Off,
        };
        Ok(Fixture {
            routes: RouteTable::new(pools),
            front: FrontEnd::new(settings.front_end),
            web: PoolStats::new(web),
        })
    }

    /// The id of the pool `req` is routed to (`RouteTable::route`).
    pub fn route(&self, req: &RequestHeader) -> Option<&str> {
        self.routes.route(&RouteRequest::of(req)).map(|p| &*p.id)
    }

    /// The first pool in routing order.
    pub fn first_pool(&self) -> Option<BenchPool<'_>> {
        self.routes.pools().first().map(|p| BenchPool(p))
    }

    /// The headers every response gets (`FrontEnd::finish_response`).
    pub fn finish_response(&self, resp: &mut ResponseHeader, tls: bool) -> pingora::Result<()> {
        self.front.finish_response(resp, tls)
    }

    /// The web server's per-second record of one request (`PoolStats::record_total`), a
    /// 200 over plain HTTP/1.1.
    pub fn record_web_request(&self, total: Duration, bytes_out: u64, bytes_in: u64) {
        let answered = Answered {
            status: 200,
            tls: false,
            h2: false,
        };
        self.web.record_total(total, bytes_out, bytes_in, answered);
    }
}

/// One pool of a `Fixture`.
pub struct BenchPool<'a>(&'a Pool);

impl BenchPool<'_> {
    /// The pool's request rules for its first target (`Pool::rewrite_request`).
    pub fn rewrite_request(
        &self,
        req: &mut RequestHeader,
        ip: Option<IpAddr>,
    ) -> pingora::Result<()> {
        let client = ClientFacts::direct(ip, false);
        self.0.rewrite_request(req, client, self.0.primary_target())
    }

    /// The pool's response rules (`ResponseRules::apply`).
    pub fn apply_response_rules(&self, resp: &mut ResponseHeader) -> pingora::Result<()> {
        self.0.response_rules.apply(resp)
    }

    /// The pool's per-second record of a finished request answered 200 (`PoolStats::record`).
    pub fn record_stats(&self, perf: &Timer) {
        self.0.stats.record(&perf.0, 200);
    }

    /// The pool's Prometheus record of a finished request (`PoolMetrics::observe`).
    pub fn observe_metrics(&self, status: u16, perf: &Timer) {
        self.0.metrics.observe(status, &perf.0);
    }

    /// What the end of a streamed request records for its pool, as `request_end` does: the
    /// in-flight gauge (its start too, to keep it level), the figures, the metrics, and the
    /// success check.
    pub fn record_request_end(&self, status: u16, perf: &Timer) {
        let pool = self.0;
        pool.stats.start_request();
        pool.stats.end_request();
        pool.stats.record(&perf.0, status);
        pool.metrics.observe(status, &perf.0);
        if !pool.retry.is_success(status) {
            pool.record_failed_attempt(None);
        }
    }

    fn transaction<'a>(
        &'a self,
        req: &'a RequestHeader,
        resp: &'a ResponseHeader,
        perf: &'a Timer,
    ) -> Transaction<'a> {
        let base = self.0.primary_target().map_or("", |t| t.base_url());
        let path = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        Transaction {
            pool: &self.0.id,
            url: format!("{base}{path}"),
            method: req.method.as_str(),
            req_headers: &req.headers,
            status: resp.status.as_u16(),
            resp_headers: Some(&resp.headers),
            perf: &perf.0,
            error: None,
            failed: false,
            request_id: String::new(),
        }
    }

    /// Build the pool's transaction line as `request_end` does and hand it to the event log
    /// (dropped here, where no event log runs). Whether it is written is the pool's policy.
    pub fn log_transaction(&self, req: &RequestHeader, resp: &ResponseHeader, perf: &Timer) {
        self.transaction(req, resp, perf).log(&self.0.logging);
    }

    /// The pool's transaction line for one request.
    pub fn transaction_line(
        &self,
        req: &RequestHeader,
        resp: &ResponseHeader,
        perf: &Timer,
    ) -> LogLine {
        LogLine(self.transaction(req, resp, perf).line())
    }
}

/// A finished back-end request's phase timer: every phase lapped.
pub struct Timer(PerfTimer);

impl Timer {
    /// A timer with every phase lapped and the given byte counts.
    pub fn finished(bytes_sent: u64, bytes_received: u64) -> Timer {
        let mut perf = PerfTimer::start();
        for phase in Phase::ALL {
            perf.lap(phase);
        }
        perf.bytes_sent = bytes_sent;
        perf.bytes_received = bytes_received;
        Timer(perf)
    }
}

/// An event-log line before it is stamped and written.
pub struct LogLine(EventLine);

impl LogLine {
    /// A debug line of `level`.
    pub fn debug(level: u8, component: &str, msg: &str) -> LogLine {
        LogLine(EventLine {
            component: component.into(),
            category: "debug",
            code: level.to_string().into(),
            msg: msg.into(),
            data: None,
        })
    }

    /// The whole line as the log's writer renders it, stamped `at` on `host`.
    pub fn render(&self, at: SystemTime, host: &str) -> String {
        self.0.render(at, host)
    }
}

/// This machine's host name, as the event log writes it.
pub fn host_name() -> String {
    hostname()
}

/// Whether an event log runs in this process (the benchmarks must not write one).
pub fn event_log_runs() -> bool {
    crate::event_log::wants_debug(10)
}
