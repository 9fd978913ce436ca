//! One queued send: the pool's limits (a refused send waits `throttle_requeue_delay_ms` and
//! asks again, so the rate limit is never exceeded), then attempts through the shared
//! upstream attempt (`crate::upstream`) with the body from memory or its spool file, and
//! `retries` with the pool's back-off. Each answer's body is read to the end, so the
//! connection can go back to the pool.

use super::{BlindQueue, QueuedBody, QueuedRequest, REQUEST_ID_HEADER};
use crate::admission::Permit;
use crate::pool::Pool;
use crate::timing::{PerfTimer, Phase};
use crate::upstream::{self, Body, Failure, Framing, Hop, Outgoing};
use pingora::connectors::http::Connector;
use pingora::Error;
use std::fmt;
use std::net::SocketAddr;

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

/// The error, the address and the index of the pool's target it failed on.
type Failed = (Box<Error>, Option<SocketAddr>, Option<usize>);
/// The status, the address and index of the target that answered, the headers.
type Answered = (u16, SocketAddr, Option<usize>, http::HeaderMap);

/// `queued request <id> (<method> <uri>)`, as the retry log line names it.
struct Named<'a>(&'a QueuedRequest);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let req = self.0;
        let uri = req.header.uri.to_string();
        let uri = crate::event_log::redact::text(&uri);
        write!(f, "queued request {} ({} {uri})", req.id, req.header.method)
    }
}

impl Delivery<'_> {
    pub(super) async fn run(&self, req: &QueuedRequest) -> Report {
        let mut perf = PerfTimer::start();
        let key = self.pool.selection_key(&req.header, req.client.ip);
        let attempts = self.pool.retry.retries + 1;
        let (mut tried, mut last) = (Vec::new(), String::new());
        let (mut status, mut resp_headers) = (0, None);
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.queue.count_retry();
                let left = attempts - attempt;
                self.pool.back_off(&Named(req), &last, left).await;
            }
            let permit = self.admit().await;
            let result = self.attempt(req, &tried, &key, &mut perf).await;
            drop(permit);
            match result {
                Ok((code, addr, target, headers)) => {
                    (status, resp_headers) = (code, Some(headers));
                    if self.pool.retry.is_success(code) {
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
                    self.pool.record_failed_attempt(target);
                }
                Err((e, addr, target)) => {
                    last = e.to_string();
                    tried.extend(addr);
                    self.pool.record_failed_attempt(target);
                }
            }
        }
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
    async fn admit(&self) -> Permit {
        loop {
            match self.pool.admission.admit_pool().await {
                Ok(permit) => return permit,
                Err(_) => tokio::time::sleep(self.queue.settings.requeue_delay).await,
            }
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
        let outgoing = Outgoing {
            original: &req.header,
            client: req.client,
            key,
            tag: Some((REQUEST_ID_HEADER, req.id.to_string())),
            upgrade: false,
        };
        let framing = match req.framed || req.body.len() > 0 {
            true => Framing::Length(req.body.len()),
            false => Framing::None,
        };
        let body = match &req.body {
            QueuedBody::Inline(bytes) if bytes.is_empty() => Body::Empty,
            QueuedBody::Inline(bytes) => Body::Kept(bytes.clone()),
            QueuedBody::Spooled { path, .. } => Body::File(path),
        };
        let attempt = upstream::attempt(
            self.pool,
            self.connector,
            &outgoing,
            &Hop::TO_POOL,
            framing,
            body,
            tried,
            perf,
        );
        let mut answer = attempt.await.map_err(|failure| match failure {
            Failure::Upstream {
                error,
                addr,
                target,
                ..
            } => (error, addr, target),
            Failure::Client(error) => (error, None, None),
        })?;
        let (addr, target) = (answer.addr, answer.target);
        let headers = answer
            .header()
            .map_or_else(http::HeaderMap::new, |r| r.headers.clone());
        while let Some(chunk) = answer
            .session
            .read_response_body()
            .await
            .map_err(|e| (e, Some(addr), target))?
        {
            perf.bytes_received += chunk.len() as u64;
        }
        perf.lap(Phase::Receive);
        let status = answer.status;
        answer
            .release(self.connector, self.pool.use_keep_alives)
            .await;
        Ok((status, addr, target, headers))
    }
}
