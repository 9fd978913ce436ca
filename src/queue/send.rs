//! One queued send: the pool's limits (a refused send waits `throttle_requeue_delay_ms` and
//! asks again, so the rate limit is never exceeded), its header rules for the target chosen,
//! the body from memory or its spool file, and `retries` with the pool's back-off.

use super::{BlindQueue, QueuedBody, QueuedRequest, REQUEST_ID_HEADER};
use crate::admission::ConcurrencySlot;
use crate::pool::headers::strip_hop_by_hop;
use crate::pool::targets::Target;
use crate::pool::{Pool, BACKEND_IDLE_TIMEOUT};
use crate::proxy::exchange::read_answer_header;
use crate::timing::PerfTimer;
use bytes::BytesMut;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession as ClientSession;
use pingora::{Error, ErrorType, Result};
use std::net::SocketAddr;
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

/// The end of a queued request: outcome, timing of all attempts, the last status and answer
/// headers.
pub(super) struct Report {
    pub(super) outcome: Outcome,
    pub(super) perf: PerfTimer,
    pub(super) status: u16,
    pub(super) resp_headers: Option<http::HeaderMap>,
}

type Failed = (Box<Error>, Option<SocketAddr>);
type Answered = (u16, SocketAddr, http::HeaderMap);

impl Delivery<'_> {
    pub(super) async fn run(&self, req: &QueuedRequest) -> Report {
        let mut perf = PerfTimer::start();
        let key = self.pool.selection_key(&req.header, req.client.ip);
        let attempts = self.pool.retry.retries + 1;
        let (mut tried, mut last) = (Vec::new(), String::new());
        let (mut status, mut resp_headers) = (0, None);
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.back_off(req, &last, attempts - attempt).await;
            }
            let slot = self.admit().await;
            perf.restart_lap();
            let result = self.attempt(req, &tried, &key, &mut perf).await;
            drop(slot);
            match result {
                Ok((code, addr, headers)) => {
                    (status, resp_headers) = (code, Some(headers));
                    if self.pool.retry.is_success(code) {
                        self.pool.activity.record_completion(perf.total());
                        let outcome = Outcome::Delivered {
                            status,
                            attempts: attempt,
                        };
                        return Report {
                            outcome,
                            perf,
                            status,
                            resp_headers,
                        };
                    }
                    last = format!("HTTP {code}");
                    tried.push(addr);
                }
                Err((e, addr)) => {
                    last = e.to_string();
                    tried.extend(addr);
                }
            }
            self.pool.activity.record_error();
        }
        self.pool.activity.record_completion(perf.total());
        let outcome = Outcome::Failed {
            what: last,
            attempts,
        };
        Report {
            outcome,
            perf,
            status,
            resp_headers,
        }
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
        self.pool.metrics.retried();
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
        perf: &mut PerfTimer,
    ) -> std::result::Result<Answered, Failed> {
        let chosen = self.pool.choose(key, tried).await.map_err(|e| (e, None))?;
        perf.lap("dns");
        let addr = chosen.addr;
        let fail = |e: Box<Error>| (e, Some(addr));
        let peer = self.pool.peer(&chosen, true).map_err(fail)?;
        let header = self
            .request_header(req, self.pool.target(&chosen))
            .map_err(fail)?;
        let (mut up, _) = self
            .connector
            .get_http_session(&*peer)
            .await
            .map_err(fail)?;
        perf.lap("connect");
        up.set_read_timeout(self.pool.connect.ttfb_timeout);
        up.set_write_timeout(self.pool.connect.ttfb_timeout);
        up.write_request_header(Box::new(header))
            .await
            .map_err(fail)?;
        send_body(&mut up, &req.body).await.map_err(fail)?;
        up.finish_request_body().await.map_err(fail)?;
        perf.bytes_sent += req.body.len();
        perf.lap("send");
        read_answer_header(&mut up).await.map_err(fail)?;
        perf.lap("wait");
        let (status, headers) = up
            .response_header()
            .map_or((0, http::HeaderMap::new()), |r| {
                (r.status.as_u16(), r.headers.clone())
            });
        while let Some(chunk) = up.read_response_body().await.map_err(fail)? {
            perf.bytes_received += chunk.len() as u64;
        }
        perf.lap("receive");
        if self.pool.use_keep_alives {
            self.connector
                .release_http_session(up, &*peer, BACKEND_IDLE_TIMEOUT)
                .await;
        }
        Ok((status, addr, headers))
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
