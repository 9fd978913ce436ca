//! The `ProxyHttp` implementation: one impl for all pools. Each hook is a few lines that hand
//! the work to the module named after the concept (routing, pool, headers, failure, reply).

use crate::failure;
use crate::front_end::FrontEnd;
use crate::headers::ClientFacts;
use crate::pool::Pool;
use crate::reply;
use crate::routing::{RouteRequest, RouteTable};
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use std::sync::Arc;

/// Shared, read-only state built once at start.
pub struct PoolProxy {
    front: Arc<FrontEnd>,
    routes: Arc<RouteTable>,
}

impl PoolProxy {
    pub fn new(front: Arc<FrontEnd>, routes: Arc<RouteTable>) -> Self {
        PoolProxy { front, routes }
    }
}

/// Per-request state.
#[derive(Default)]
pub struct RequestCtx {
    /// The pool chosen by routing; `None` until `request_filter` ran or when nothing matched.
    pool: Option<Arc<Pool>>,
}

impl RequestCtx {
    fn pool(&self) -> Result<&Arc<Pool>> {
        self.pool
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no pool chosen for request"))
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
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.front.apply_keep_alive(session);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let pool = self
            .routes
            .route(&RouteRequest::of(session.req_header()))
            .cloned();
        if pool.is_none() {
            reply::text(session, &self.front, 404, failure::body_for(404)).await?;
            return Ok(true);
        }
        ctx.pool = pool;
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.pool()?.peer().await
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let client = ClientFacts {
            ip: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            tls: session.digest().is_some_and(|d| d.ssl_digest.is_some()),
        };
        ctx.pool()?.request_rules.apply(upstream_request, client)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.pool()?.response_rules.apply(upstream_response)?;
        self.front.response_headers.apply(upstream_response)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
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
        let level = if e.is_some() {
            log::Level::Error
        } else {
            log::Level::Debug
        };
        if !log::log_enabled!(level) {
            return;
        }
        let pool = ctx.pool.as_ref().map_or("-", |p| p.id.as_ref());
        let target = ctx
            .pool
            .as_ref()
            .map(|p| p.target.base_url())
            .unwrap_or_default();
        let req = session.req_header();
        let uri = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        match e {
            Some(e) => log::error!(
                "[{pool}] Proxy Request Error: {} {target}{uri} -> HTTP {status}: {e}",
                req.method
            ),
            None => log::debug!(
                "[{pool}] Proxy Request Completed: {} {target}{uri} -> HTTP {status}",
                req.method
            ),
        }
    }
}
