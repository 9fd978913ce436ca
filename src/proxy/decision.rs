//! What a request is, decided once in `request_filter` (`PoolProxy::classify`), and the case
//! handlers that hand it to its module: the `https_force` redirect, the stats endpoints,
//! static files, a 404 or 413, the blind queue, a 429, the buffered exchange, or Pingora's
//! streaming proxy.

use super::context::RequestCtx;
use super::exchange::{Exchange, ExchangeState};
use super::request_end::note_error;
use super::{reply, PoolProxy};
use crate::admission::Refusal;
use crate::front_end::request_head::http2_authority_fault;
use crate::front_end::{HeadFault, QueueFull, StaticFiles};
use crate::pool::RouteRequest;
use crate::queue::{self, BlindQueue, Intake};
use crate::stats::Endpoint;
use crate::timing::PerfTimer;
use pingora::proxy::Session;
use pingora::Result;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};

/// What a request is.
pub(super) enum RequestKind<'a> {
    /// An HTTP/2 request whose authority is missing or malformed (HTTP/1 heads are checked
    /// before Pingora reads them, by the server's front door).
    BadHead(HeadFault),
    /// The front end's request queue is full (`http_max_queue_length`,
    /// `http_max_queue_active`): 429.
    QueueFull(QueueFull),
    /// A plain-HTTP request under `https_force`: 301 to this location.
    Redirect(String),
    /// The stats API or the Prometheus metrics.
    Stats(Endpoint),
    /// No pool takes it: answered from `http_htdocs_dir`.
    StaticFile(&'a StaticFiles),
    /// No pool takes it and there are no static files.
    NotFound,
    /// Its `Content-Length` is over `http_max_upload_size`.
    TooLarge,
    /// Its pool answers at once and sends it later (`use_queue`).
    Queued(&'a BlindQueue),
    /// Its pool's limits refuse it.
    Refused(Refusal),
    /// Its pool retries on statuses or follows redirects: the buffered exchange.
    Exchange,
    /// An upgrade request (WebSocket), carried as a tunnel once the back end switches.
    Tunnel,
    /// Pingora's streaming proxy.
    Stream,
}

impl PoolProxy {
    /// Decide what the request is. Routing puts the pool in the context; admission gives it
    /// the pool's permit and starts its phase timer.
    pub(super) async fn classify<'a>(
        &'a self,
        session: &Session,
        ctx: &mut RequestCtx,
    ) -> RequestKind<'a> {
        let req = session.req_header();
        if session.is_http2() {
            if let Some(fault) = http2_authority_fault(req) {
                return RequestKind::BadHead(fault);
            }
        }
        let path = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        match self.front.request_queue.enter(path).await {
            Ok(running) => ctx.running = Some(running),
            Err(full) => return RequestKind::QueueFull(full),
        }
        let req = session.req_header();
        if let Some(location) = self.front.https_policy.redirect(req, ctx.client.tls) {
            return RequestKind::Redirect(location);
        }
        if let Some(endpoint) = self.stats_api.endpoint(req) {
            return RequestKind::Stats(endpoint);
        }
        let Some(pool) = self.routes.route(&RouteRequest::of(req)) else {
            return match &self.front.static_files {
                Some(files) => RequestKind::StaticFile(files),
                None => RequestKind::NotFound,
            };
        };
        ctx.pool = Some(pool.clone());
        if let Some(queue) = self.queues.of(pool.index) {
            ctx.queued = true;
            return RequestKind::Queued(queue);
        }
        if self.front.upload_limit.refuses_declared(req) {
            return RequestKind::TooLarge;
        }
        match pool.admission.admit(ctx.client.ip).await {
            Ok(permit) => ctx.admitted(permit),
            Err(refusal) => return RequestKind::Refused(refusal),
        }
        if session.is_upgrade_req() {
            return RequestKind::Tunnel;
        }
        match pool.uses_exchange() {
            true => RequestKind::Exchange,
            false => RequestKind::Stream,
        }
    }

    /// The stats endpoint's answer.
    pub(super) async fn stats(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        endpoint: Endpoint,
    ) -> Result<()> {
        let req = session.req_header();
        let answer = self
            .stats_api
            .answer(req, &self.stats, endpoint, &ctx.client);
        reply::stats(session, &self.front, ctx.client.tls, answer).await
    }

    /// The blind queue's intake, answered as it decided.
    pub(super) async fn enqueue(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        queue: &BlindQueue,
    ) -> Result<()> {
        let pool = ctx.pool()?;
        let tls = ctx.client.tls;
        let intake = queue::enqueue(session, pool, queue, ctx.client).await?;
        if let Intake::Refused { status, why } = &intake {
            if *status == 429 {
                pool.stats.record_throttled();
            }
            let cause = || Cow::Owned(why.clone());
            note_error(&pool.errors, Some(&pool.id), session, *status, None, cause);
        }
        match (&intake, intake.json()) {
            (Intake::Throttled(refusal), _) => self.refuse(session, ctx, refusal).await,
            (_, Some((status, body))) => reply::json(session, &self.front, tls, status, body).await,
            (_, None) => Ok(()),
        }
    }

    /// 429 from the pool's limits (503 from an unreachable cluster with `closed`): counted,
    /// logged, answered with the limit.
    pub(super) async fn refuse(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        refusal: &Refusal,
    ) -> Result<()> {
        let pool = ctx.pool()?;
        pool.metrics.throttled();
        pool.stats.record_throttled();
        let (status, cause) = (refusal.status(), || {
            Cow::Owned(refusal.message(&pool.id).trim_end().to_string())
        });
        note_error(&pool.errors, Some(&pool.id), session, status, None, cause);
        // Refusals for an unreachable Redis are logged once per outage, by the cluster.
        if *refusal != Refusal::Unavailable {
            log::warn!("[{}] {}", pool.id, refusal.message(&pool.id).trim_end());
        }
        reply::too_many(session, &self.front, ctx.client.tls, refusal, &pool.id).await
    }

    /// An HTTP/2 request refused for its authority: counted and logged like the HTTP/1 heads
    /// the front door refuses, answered on its stream.
    pub(super) async fn refuse_head(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        fault: HeadFault,
    ) -> Result<()> {
        let req = session.req_header();
        let line = format!("{} {} HTTP/2", req.method, req.uri);
        self.stats
            .refused
            .record(fault, ctx.client.ip, line.as_bytes());
        let hub = &self.stats;
        let cause = || Cow::Borrowed(fault.reason());
        note_error(&hub.errors, None, session, fault.status(), None, cause);
        reply::head_fault(session, &self.front, ctx.client.tls, fault).await
    }

    /// 429 from the front end's request queue, logged as pixl-server-web logs it (at most
    /// one line a second in a flood), and a request dump with `http_req_max_dump_enabled`.
    pub(super) async fn refuse_queue_full(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        full: QueueFull,
    ) -> Result<()> {
        crate::event_log::maxed_out("the request queue's limit");
        static LAST_LOGGED: AtomicU32 = AtomicU32::new(0);
        let now = crate::timing::clock::now_sec();
        if LAST_LOGGED.swap(now, Ordering::AcqRel) != now {
            let ip = ctx.client.ip.map(|ip| ip.to_string()).unwrap_or_default();
            let req = session.req_header();
            let msg = format!("{}, denying request from: {ip}", full.message());
            let data = serde_json::json!({
                "ips": ctx.client.chain(&req.headers).texts(),
                "uri": crate::event_log::redact::text(&req.uri.to_string()),
                "headers": crate::event_log::headers_json(&req.headers),
                "pending": full.pending,
                "active": full.running,
                "sockets": self.stats.open_connections(),
            });
            crate::event_log::error("WebServer", 429, msg, data);
        }
        let cause = || Cow::Owned(full.message());
        note_error(&self.stats.errors, None, session, 429, None, cause);
        let body = format!("429 Too Many Requests: {}.\n", full.message());
        reply::text(session, &self.front, ctx.client.tls, 429, body).await
    }

    /// The buffered exchange (or, for an upgrade request, the tunnel), with the context's
    /// attempts, permit and phase timer.
    pub(super) async fn exchange(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        tunnel: bool,
    ) -> Result<()> {
        ctx.via_exchange = true;
        let pool = ctx.pool()?.clone();
        let exchange = Exchange {
            pool: &pool,
            front: &self.front,
            connector: &self.connector,
            client: ctx.client,
        };
        let state = ExchangeState {
            tried: &mut ctx.tried,
            permit: &mut ctx.permit,
            perf: ctx.perf.get_or_insert_with(PerfTimer::start),
            bodies: &mut ctx.bodies,
        };
        match tunnel {
            true => exchange.tunnel(session, state).await,
            false => exchange.run(session, state).await,
        }
    }
}
