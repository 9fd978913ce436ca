//! The proxy: the one `ProxyHttp` implementation every pool goes through. Each hook reads as
//! a line of a table of contents and hands the work to the module of its concept:
//!
//! ```text
//! early_request_filter   arrival: client facts (front_end), keep-alive policy, web.sockets
//! request_filter         what the request is (decision.rs), then one case per module:
//!                          bad HTTP/2 authority · redirect · stats · static file · 404 ·
//!                          413 · queue · 429 ·
//!                          buffered exchange or tunnel (exchange/) · streaming (below)
//! upstream_peer          target choice and peer (pool)
//! connected_to_upstream  connect phase, metrics, the back-end deadlines (upstream)
//! request_body_filter    upload limit (front_end), send phase
//! fail_to_connect        failure accounting (context.rs)
//! error_while_proxy      a passed first-byte deadline is a timeout, never retried
//! upstream_request_filter  the pool's header rules (pool)
//! upstream_response_*    wait and receive phases, the permit given back
//! response_filter        response rules (pool), global headers and compression (front_end)
//! fail_to_proxy          the error's status and answer (failure.rs, reply.rs)
//! logging                the end of the request (request_end.rs)
//! ```
//!
//! Owns the request context (`context.rs`), the end of a request (`request_end.rs`) and the
//! answers poolgate writes itself (`reply.rs`, `failure.rs`). Uses every concept folder below
//! it: `front_end`, `pool`, `admission`, `upstream`, `queue`, `stats`, `event_log`.

mod context;
mod decision;
mod exchange;
mod failure;
mod reply;
mod request_end;

pub(crate) use context::RequestCtx;

use crate::event_log::WebLog;
use crate::front_end::FrontEnd;
use crate::pool::RouteTable;
use crate::queue::QueueTable;
use crate::stats::{StatsApi, StatsHub};
use crate::timing::{request_header_size, Phase};
use crate::upstream::{ResponseWatch, WatchLimits};
use async_trait::async_trait;
use decision::RequestKind;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use std::sync::Arc;
use std::time::Instant;

/// Shared state built once at start.
pub(crate) struct PoolProxy {
    pub(crate) front: Arc<FrontEnd>,
    pub(crate) routes: Arc<RouteTable>,
    /// The blind queue of each pool that has one.
    pub(crate) queues: Arc<QueueTable>,
    /// Pingora's HTTP client for the buffered exchange (its own keep-alive pool).
    pub(crate) connector: Arc<Connector>,
    /// What the stats API reports.
    pub(crate) stats: Arc<StatsHub>,
    /// The stats API and Prometheus endpoint, with their access rules.
    pub(crate) stats_api: Arc<StatsApi>,
    /// `http_log_requests` lines.
    pub(crate) web_log: Arc<WebLog>,
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
        ctx.client = self.front.client_facts(session);
        if self.stats_api.shows_connections() {
            let peer = session.client_addr().and_then(|a| a.as_inet()).copied();
            ctx.socket = peer.and_then(|p| self.stats.sockets.find(p));
        }
        if let Some(socket) = &ctx.socket {
            let req = session.req_header();
            let host = req.headers.get(http::header::HOST);
            let forwarded = ctx.client.chain(&req.headers).named_texts();
            socket.begin(&req.method, &req.uri, host, ctx.client.tls, now, forwarded);
        }
        let connection_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        self.front.apply_keep_alive(session, connection_tls);
        ctx.gauges_at_start = request_end::gauges_for_perf(&self.stats);
        Ok(())
    }

    /// The rare cases (everything but streaming) are boxed: their state would otherwise size
    /// this hook's future, which is built and copied for every request.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let tls = ctx.client.tls;
        match self.classify(session, ctx).await {
            RequestKind::Stream => return Ok(false),
            RequestKind::BadHead(fault) => Box::pin(self.refuse_head(session, ctx, fault)).await?,
            RequestKind::QueueFull(full) => {
                Box::pin(self.refuse_queue_full(session, ctx, full)).await?
            }
            RequestKind::Redirect(location) => {
                Box::pin(reply::redirect(session, &self.front, &location)).await?
            }
            RequestKind::Stats(endpoint) => Box::pin(self.stats(session, ctx, endpoint)).await?,
            RequestKind::StaticFile(files) => {
                Box::pin(files.serve(session, &self.front, tls)).await
            }
            RequestKind::NotFound => {
                Box::pin(reply::status(session, &self.front, tls, 404)).await?
            }
            RequestKind::TooLarge => {
                // The body is not read: the connection cannot be reused.
                session.set_keepalive(None);
                Box::pin(reply::status(session, &self.front, tls, 413)).await?
            }
            RequestKind::Queued(queue) => Box::pin(self.enqueue(session, ctx, queue)).await?,
            RequestKind::Refused(refusal) => Box::pin(self.refuse(session, ctx, &refusal)).await?,
            RequestKind::Exchange => Box::pin(self.exchange(session, ctx, false)).await?,
            RequestKind::Tunnel => Box::pin(self.exchange(session, ctx, true)).await?,
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let pool = ctx.pool()?.clone();
        let key = pool.selection_key(session.req_header(), ctx.client.ip);
        // The clock is read around the choice only when it can take time (a DNS lookup).
        let timed = pool.looks_up_per_request();
        if timed {
            ctx.restart_lap();
        }
        let chosen = pool.choose(&key, &ctx.tried).await?;
        match timed {
            true => {
                ctx.lap(Phase::Dns);
            }
            false => ctx.skip_phase(Phase::Dns),
        }
        ctx.chosen = Some(chosen);
        let mut peer = pool.peer(&chosen, !session.is_body_empty())?;
        if let Some(left) = self.front.request_time_left(ctx.arrived) {
            crate::pool::bound_by_time_left(&mut peer, left);
        }
        Ok(peer)
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let connected = ctx.lap(Phase::Connect);
        if let Some(pool) = &ctx.pool {
            pool.metrics.connected(reused);
            let target = ctx.chosen.as_ref().and_then(|c| pool.target(c));
            ctx.on_target = target.and_then(|t| t.activity.connected(reused));
            // Over HTTP/1 Pingora reads with no timeout: the time to the header and the body's
            // gaps are watched here, from the connect lap's clock reading.
            let addr = peer._address.as_inet().copied();
            ctx.watch = WatchLimits::for_streaming(&pool.connect).map(|limits| match connected {
                Some(now) => ResponseWatch::arm_from(fd, addr, limits, now),
                None => ResponseWatch::arm(fd, addr, limits),
            });
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
        let len = body.as_ref().map_or(0, |b| b.len() as u64);
        if let Some(chunk) = body {
            crate::event_log::BodyCapture::request(&mut ctx.bodies, chunk);
        }
        ctx.body_received += len;
        self.front.upload_limit.check(ctx.body_received)?;
        ctx.sent(len);
        // Only a chunk that went out moves the deadline (a bodiless request's single call,
        // with no chunk, would read the clock and lock a shard for nothing).
        if let (Some(watch), true) = (&ctx.watch, len > 0) {
            watch.push_on();
        }
        if end_of_stream {
            ctx.lap(Phase::Send);
        }
        Ok(())
    }

    /// Pingora's own policy, except that a passed first-byte deadline is the error (a timeout,
    /// not the closed connection it caused) and is never retried.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let timed_out = ctx.watch.take().filter(|w| w.timed_out());
        let mut e = match &timed_out {
            Some(watch) => {
                let why = match watch.what_passed() {
                    (key, limit, true) => format!(
                        "reading body, timeout: nothing from the back end within {key} ({} ms)",
                        limit.as_millis()
                    ),
                    (key, limit, false) => {
                        format!("no response header within {key} ({} ms)", limit.as_millis())
                    }
                };
                Error::because(ErrorType::ReadTimedout, why, e).into_up()
            }
            None => e,
        };
        e = e.more_context(format!("Peer: {peer}"));
        let req = session.req_header();
        let unsafe_to_retry =
            !req.method.is_idempotent() || session.as_ref().retry_buffer_truncated();
        if timed_out.is_some() || unsafe_to_retry {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    /// A failed connect is the request's failure: streaming pools have no `retries`.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        ctx.connect_failed();
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
        ctx.sent(request_header_size(upstream_request));
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let now = ctx.lap(Phase::Wait);
        let status = upstream_response.status.as_u16();
        let bodiless =
            session.req_header().method == http::Method::HEAD || status == 204 || status == 304;
        if let Some(watch) = &mut ctx.watch {
            match bodiless {
                true => watch.stop(),
                false => watch.header_arrived(now.unwrap_or_else(Instant::now)),
            }
        }
        if bodiless {
            ctx.release_permit();
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
        let len = body.as_ref().map_or(0, |b| b.len() as u64);
        ctx.received(len);
        if let Some(chunk) = body {
            crate::event_log::BodyCapture::response(&mut ctx.bodies, chunk);
        }
        if let Some(watch) = &ctx.watch {
            match end_of_stream {
                // A body that ends with its connection (no length, no chunks) would look whole
                // when the watch cut it: that end is the timeout's.
                true if watch.timed_out() => {
                    return Error::e_explain(ErrorType::ReadTimedout, "the body's gap timed out")
                }
                true => {}
                false if len > 0 => watch.push_on(),
                false => {}
            }
        }
        // The back end is done: free the permit before the client sees the end of the body.
        if end_of_stream {
            ctx.lap(Phase::Receive);
            ctx.release_permit();
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
        ctx.encoder = self
            .front
            .compression
            .begin(session.req_header(), upstream_response, whole_up_to)
            .map(Box::new);
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
        ctx.release_permit();
        let status = match self.front.request_timed_out(ctx.arrived) {
            // `http_request_timeout` passed: the request is aborted with 408, whatever failed.
            true if session.response_written().is_none() => 408,
            _ => failure::status_for(e),
        };
        // The connection is not reused after a failure (the request body may be half read), so
        // the reply must say `Connection: close` or keep-alive clients would reuse a dead socket.
        session.set_keepalive(None);
        if status > 0 && session.response_written().is_none() {
            // The client may have gone away meanwhile; there is nobody left to tell.
            let _ = reply::status(session, &self.front, ctx.client.tls, status).await;
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
        request_end::finish(session, e, ctx, &self.stats, &self.web_log);
    }
}
