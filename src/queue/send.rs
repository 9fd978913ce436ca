//! One queued send: the pool's limits (a refused send waits `throttle_requeue_delay_ms` and
//! asks again, so the rate limit is never exceeded), its header rules for the target chosen,
//! the body from memory or its spool file, and `retries` with the pool's back-off.

use super::{BlindQueue, QueuedBody, QueuedRequest, REQUEST_ID_HEADER};
use crate::exchange::read_answer_header;
use crate::headers::strip_hop_by_hop;
use crate::limits::ConcurrencySlot;
use crate::pool::{Pool, BACKEND_IDLE_TIMEOUT};
use crate::targets::Target;
use bytes::BytesMut;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession as ClientSession;
use pingora::{Error, ErrorType, Result};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const SPOOL_CHUNK: usize = 64 * 1024;

pub(super) struct Delivery<'a> {
    pub(super) pool: &'a Pool,
    pub(super) queue: &'a BlindQueue,
    pub(super) connector: &'a Connector,
}

/// How a queued request ended.
pub(super) enum Outcome {
    Delivered { status: u16, attempts: u32 },
    Failed { what: String, attempts: u32 },
}

type Failed = (Box<Error>, Option<SocketAddr>);

impl Delivery<'_> {
    pub(super) async fn run(&self, req: &QueuedRequest) -> (Outcome, Duration) {
        let started = Instant::now();
        let key = self.pool.selection_key(&req.header, req.client.ip);
        let attempts = self.pool.retry.retries + 1;
        let (mut tried, mut last) = (Vec::new(), String::new());
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.back_off(req, &last, attempts - attempt).await;
            }
            let slot = self.admit().await;
            let result = self.attempt(req, &tried, &key).await;
            drop(slot);
            match result {
                Ok((status, _)) if self.pool.retry.is_success(status) => {
                    self.pool.activity.record_completion(started.elapsed());
                    return (
                        Outcome::Delivered {
                            status,
                            attempts: attempt,
                        },
                        started.elapsed(),
                    );
                }
                Ok((status, addr)) => {
                    last = format!("HTTP {status}");
                    tried.push(addr);
                }
                Err((e, addr)) => {
                    last = e.to_string();
                    tried.extend(addr);
                }
            }
            self.pool.activity.record_error();
        }
        self.pool.activity.record_completion(started.elapsed());
        let what = last;
        (Outcome::Failed { what, attempts }, started.elapsed())
    }

    /// Wait until the pool's concurrency and rate limits admit one more send.
    async fn admit(&self) -> Option<ConcurrencySlot> {
        loop {
            match self.pool.limits.admit_pool() {
                Ok(slot) => return slot,
                Err(_) => tokio::time::sleep(self.queue.settings.requeue_delay).await,
            }
        }
    }

    async fn back_off(&self, req: &QueuedRequest, what: &str, left: u32) {
        self.queue.count_retry();
        let delay = self.pool.retry_delay();
        log::warn!(
            "[{}] queued request {} ({} {}) failed ({what}); retrying in {} ms, {left} retries left after this",
            self.pool.id,
            req.id,
            req.header.method,
            req.header.uri,
            delay.as_millis()
        );
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt: the status the back end answered (body read to the end) and its address.
    async fn attempt(
        &self,
        req: &QueuedRequest,
        tried: &[SocketAddr],
        key: &[u8],
    ) -> std::result::Result<(u16, SocketAddr), Failed> {
        let chosen = self.pool.choose(key, tried).await.map_err(|e| (e, None))?;
        let addr = chosen.addr;
        let fail = |e: Box<Error>| (e, Some(addr));
        let peer = self.pool.peer(&chosen).map_err(fail)?;
        let header = self
            .request_header(req, self.pool.target(&chosen))
            .map_err(fail)?;
        let (mut up, _) = self
            .connector
            .get_http_session(&*peer)
            .await
            .map_err(fail)?;
        up.set_read_timeout(self.pool.connect.ttfb_timeout);
        up.set_write_timeout(self.pool.connect.ttfb_timeout);
        up.write_request_header(Box::new(header))
            .await
            .map_err(fail)?;
        send_body(&mut up, &req.body).await.map_err(fail)?;
        up.finish_request_body().await.map_err(fail)?;
        read_answer_header(&mut up).await.map_err(fail)?;
        let status = up.response_header().map_or(0, |r| r.status.as_u16());
        while up.read_response_body().await.map_err(fail)?.is_some() {}
        if self.pool.use_keep_alives {
            self.connector
                .release_http_session(up, &*peer, Some(BACKEND_IDLE_TIMEOUT))
                .await;
        }
        Ok((status, addr))
    }

    /// The request as the back end sees it: the client's, after the pool's header rules for
    /// `target`, framed for the stored body, with the request id.
    fn request_header(
        &self,
        req: &QueuedRequest,
        target: Option<&Target>,
    ) -> Result<RequestHeader> {
        let mut header = req.header.clone();
        strip_hop_by_hop(&mut header);
        header.remove_header(&http::header::EXPECT);
        self.pool.rewrite_request(&mut header, req.client, target)?;
        header.remove_header(&http::header::CONTENT_LENGTH);
        header.remove_header(&http::header::TRANSFER_ENCODING);
        if req.framed || !req.body.is_empty() {
            header.insert_header(http::header::CONTENT_LENGTH, req.body.len())?;
        }
        header.insert_header(REQUEST_ID_HEADER, req.id.to_string())?;
        Ok(header)
    }
}

async fn send_body(up: &mut ClientSession, body: &QueuedBody) -> Result<()> {
    match body {
        QueuedBody::Inline(bytes) if bytes.is_empty() => Ok(()),
        QueuedBody::Inline(bytes) => up.write_request_body(bytes.clone(), false).await,
        QueuedBody::Spooled { path, .. } => {
            let io = |e: std::io::Error| {
                let why = format!("queue spool file {}: {e}", path.display());
                Error::explain(ErrorType::InternalError, why)
            };
            let mut file = tokio::fs::File::open(path).await.map_err(io)?;
            loop {
                let mut buf = BytesMut::with_capacity(SPOOL_CHUNK);
                if file.read_buf(&mut buf).await.map_err(io)? == 0 {
                    return Ok(());
                }
                up.write_request_body(buf.freeze(), false).await?;
            }
        }
    }
}
