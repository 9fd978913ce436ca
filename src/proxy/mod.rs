//! The `ProxyHttp` implementation: one impl for all pools. Each hook is a few lines that hand
//! the work to the module named after the concept (routing, limits, pool, exchange, failure,
//! reply).

pub mod context;
pub mod exchange;
pub mod failure;
pub mod reply;
pub mod request_end;
pub mod request_log;

use crate::front_end::FrontEnd;
use crate::pool::routing::{RouteRequest, RouteTable};
pub use crate::proxy::context::RequestCtx;
use crate::proxy::exchange::Exchange;
use crate::stats::api::StatsApi;
use crate::stats::hub::StatsHub;
use crate::stats::web_log::WebLog;
use crate::timing::PerfTimer;
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};
use std::sync::Arc;
use std::time::Instant;

/// Shared state built once at start.
pub struct PoolProxy {
    pub front: Arc<FrontEnd>,
    pub routes: Arc<RouteTable>,
    /// Pingora's HTTP client for the buffered exchange (its own keep-alive pool).
    pub connector: Arc<Connector>,
    /// What the stats API reports.
    pub stats: Arc<StatsHub>,
    /// The stats API and Prometheus endpoint, with their access rules.
    pub stats_api: Arc<StatsApi>,
    /// `http_log_requests` lines and the recent requests.
    pub web_log: Arc<WebLog>,
}

impl PoolProxy {
    /// Answer with `status` and its standard text (boxed, like `request_filter`'s other rare
    /// branches).
    async fn answer(&self, session: &mut Session, status: u16) -> Result<()> {
        Box::pin(reply::text(
            session,
            &self.front,
            status,
            failure::body_for(status),
        ))
        .await
    }
}

#[async_trait]
impl ProxyHttp for PoolProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let now = Instant::now();
        ctx.arrived = Some(now);
        if self.stats_api.shows_connections() {
            let peer = session.client_addr().and_then(|a| a.as_inet()).copied();
            ctx.socket = peer.and_then(|p| self.stats.sockets.find(p));
        }
        if let Some(socket) = &ctx.socket {
            let req = session.req_header();
            let tls = crate::front_end::tls_connection(session);
            let host = req.headers.get(http::header::HOST);
            socket.begin(&req.method, &req.uri, host, tls, now);
        }
        self.front.apply_keep_alive(session);
        Ok(())
    }

    /// The rare branches (redirects, the stats API, static files, the queue, refusals, the
    /// buffered exchange) are boxed: their state would otherwise size this hook's future, which
    /// is built and copied for every request.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let mut client = crate::front_end::client_facts(session);
        if let Some(location) = self
            .front
            .https_policy
            .redirect(session.req_header(), client.tls)
        {
            Box::pin(reply::redirect(session, &self.front, &location)).await?;
            return Ok(true);
        }
        if let Some(endpoint) = self.stats_api.endpoint(session.req_header()) {
            let (front, hub) = (&self.front, &self.stats);
            let api = &self.stats_api;
            Box::pin(api.serve(session, front, hub, endpoint, client.ip)).await?;
            return Ok(true);
        }
        let route = RouteRequest::of(session.req_header());
        let Some(pool) = self.routes.route(&route).cloned() else {
            if let Some(files) = &self.front.static_files {
                client.tls |= self.front.https_policy.detected(session.req_header());
                Box::pin(files.serve(session, &self.front, client.tls)).await;
                return Ok(true);
            }
            self.answer(session, 404).await?;
            return Ok(true);
        };
        ctx.pool = Some(pool.clone());
        if self
            .front
            .upload_limit
            .refuses_declared(session.req_header())
            && pool.queue.is_none()
        {
            // The body is not read: the connection cannot be reused.
            session.set_keepalive(None);
            self.answer(session, 413).await?;
            return Ok(true);
        }
        // A load balancer in front may have terminated TLS (`https_header_detect`).
        client.tls |= self.front.https_policy.detected(session.req_header());
        ctx.client = client;
        if let Some(queue) = &pool.queue {
            ctx.queued = true;
            Box::pin(crate::queue::intake::enqueue(
                session,
                &pool,
                queue,
                &self.front,
                client,
            ))
            .await?;
            return Ok(true);
        }
        match pool.limits.admit(client.ip) {
            Ok(slot) => ctx.slot = slot,
            Err(refusal) => {
                pool.metrics.throttled();
                log::warn!("[{}] {}", pool.id, refusal.message(&pool.id).trim_end());
                Box::pin(reply::too_many(session, &self.front, &refusal, &pool.id)).await?;
                return Ok(true);
            }
        }
        // Timed from the request's arrival: routing and admission take microseconds, and
        // reusing that reading saves a clock read per request.
        let now = ctx.arrived.unwrap_or_else(Instant::now);
        ctx.perf = Some(PerfTimer::start_at(now));
        pool.stats.start_request();
        ctx.retries_left = pool.retry.retries;
        if pool.uses_exchange() && !session.is_upgrade_req() {
            ctx.via_exchange = true;
            let exchange = Exchange {
                pool: &pool,
                front: &self.front,
                connector: &self.connector,
                client,
            };
            let mut perf = ctx.perf.take().unwrap_or_default();
            let run = exchange.run(session, &mut ctx.tried, &mut ctx.slot, &mut perf);
            let result = Box::pin(run).await;
            ctx.perf = Some(perf);
            result?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let pool = ctx.pool()?.clone();
        let retry = !ctx.tried.is_empty();
        if retry {
            let delay = pool.retry_delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        let key = pool.selection_key(session.req_header(), ctx.client.ip);
        // The clock is read around the choice only when it can take time (a DNS lookup).
        let timed = pool.looks_up_per_request();
        if retry || timed {
            ctx.restart_lap();
        }
        let chosen = pool.choose(&key, &ctx.tried).await?;
        match timed {
            true => ctx.lap("dns"),
            false => ctx.skip_phase("dns"),
        }
        ctx.chosen = Some(chosen);
        // An upgraded connection (WebSocket) sends data after its bodiless request.
        let sends_body = !session.is_body_empty() || session.is_upgrade_req();
        pool.peer(&chosen, sends_body)
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.lap("connect");
        if let Some(pool) = &ctx.pool {
            pool.metrics.connected(reused);
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.body_received += body.as_ref().map_or(0, |b| b.len() as u64);
        self.front.upload_limit.check(ctx.body_received)?;
        if let Some(perf) = &mut ctx.perf {
            perf.bytes_sent += body.as_ref().map_or(0, |b| b.len() as u64);
            if end_of_stream {
                perf.lap("send");
            }
        }
        Ok(())
    }

    /// Nothing was sent when a connect fails, so it is retried (with back-off, on another
    /// target when there is one) while the pool's `retries` last, whatever the body.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(pool) = &ctx.pool {
            pool.activity.record_error();
            ctx.tried.extend(ctx.chosen.map(|c| c.addr));
            if ctx.retries_left > 0 {
                ctx.retries_left -= 1;
                pool.metrics.retried();
                e.set_retry(true);
                log::warn!("[{}] connect failed ({e}); retrying", pool.id);
            } else {
                ctx.final_error_counted = true;
            }
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let pool = ctx.pool()?;
        let target = ctx.chosen.as_ref().and_then(|c| pool.target(c));
        pool.rewrite_request(upstream_request, ctx.client, target)?;
        if let Some(perf) = &mut ctx.perf {
            perf.bytes_sent += crate::timing::request_header_size(upstream_request);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.lap("wait");
        let status = upstream_response.status.as_u16();
        let bodiless =
            session.req_header().method == http::Method::HEAD || status == 204 || status == 304;
        if bodiless {
            ctx.slot = None;
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(perf) = &mut ctx.perf {
            perf.bytes_received += body.as_ref().map_or(0, |b| b.len() as u64);
            if end_of_stream {
                perf.lap("receive");
            }
        }
        // The back end is done: free the slot before the client sees the end of the body.
        if end_of_stream {
            ctx.slot = None;
        }
        Ok(None)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let pool = ctx.pool()?;
        pool.response_rules.apply(upstream_response)?;
        self.front
            .finish_response(upstream_response, ctx.client.tls)?;
        let whole_up_to = pool.min_stream_size;
        ctx.encoder =
            self.front
                .compression
                .begin(session.req_header(), upstream_response, whole_up_to);
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(encoder) = &mut ctx.encoder {
            encoder.encode_in_place(body, end_of_stream)?;
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        ctx.slot = None;
        let status = failure::status_for(e);
        // The connection is not reused after a failure (the request body may be half read), so
        // the reply must say `Connection: close` or keep-alive clients would reuse a dead socket.
        session.set_keepalive(None);
        if status > 0 && session.response_written().is_none() {
            // The client may have gone away meanwhile; there is nobody left to tell.
            let _ = reply::text(session, &self.front, status, failure::body_for(status)).await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// poolgate logs each failure itself, with the pool and URL, in `logging`.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        crate::proxy::request_end::finish(session, e, ctx, &self.web_log);
    }
}
