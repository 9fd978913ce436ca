//! The buffered exchange: how poolgate talks to the back end of a pool that retries on error
//! statuses (`retries`) or follows redirects (`follow_redirects`).
//!
//! Pingora's proxy retries only before a response arrives and replays at most 64 KiB of body,
//! and it has no hook to retry on a status code. These pools therefore use Pingora's HTTP
//! client (same connection pooling, TLS and timeouts) from `request_filter`: the request body
//! is kept in memory up to `retry_max_body_bytes` so every attempt sends it byte-exact; each
//! answer is judged against `resp_code_success_match` and the redirect rules; the answer chosen
//! for the client is streamed to it chunk by chunk. Pools with neither setting never come here
//! and keep Pingora's streaming proxy.

use crate::admission::ConcurrencySlot;
use crate::front_end::FrontEnd;
use crate::pool::headers::ClientFacts;
use crate::pool::redirect::{next_method, HopUrl};
use crate::pool::Pool;
use crate::proxy::exchange::body::RequestBody;
use crate::timing::PerfTimer;
use http::Method;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession as ClientSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};
use std::net::SocketAddr;

mod attempt;
pub mod body;
pub(crate) use attempt::read_answer_header;
mod delivery;

pub struct Exchange<'a> {
    pub pool: &'a Pool,
    pub front: &'a FrontEnd,
    pub connector: &'a Connector,
    pub client: ClientFacts,
}

/// One request on the way: where it goes, with which method, and whether it carries the body.
#[derive(Debug, Clone)]
pub(super) struct Hop {
    pub(super) url: HopUrl,
    pub(super) method: Method,
    pub(super) with_body: bool,
    /// Sent to the pool's own targets (else to the host named by a redirect).
    pub(super) on_pool: bool,
}

/// The client's request as every attempt starts from it, and its balancing key.
pub(super) struct Outgoing<'a> {
    pub(super) original: &'a RequestHeader,
    pub(super) key: &'a [u8],
}

/// A back end's answer: header read, body not yet.
pub(super) struct Answer {
    pub(super) session: ClientSession,
    pub(super) peer: Box<HttpPeer>,
    pub(super) status: u16,
    pub(super) addr: SocketAddr,
    /// The whole request went out, so the connection may go back to the pool afterwards.
    pub(super) reusable: bool,
}

pub(super) enum Failure {
    /// The back end failed; `resendable` when the request can be sent again in full, `stale`
    /// when a pooled connection turned out to be closed before anything was processed.
    Upstream {
        error: Box<Error>,
        resendable: bool,
        stale: bool,
        addr: Option<SocketAddr>,
    },
    /// The client failed (read error, gone): nothing more to do.
    Client(Box<Error>),
}

impl Exchange<'_> {
    /// Run the exchange and answer the client. `slot` (the pool's concurrency slot) is freed as
    /// soon as the back end has sent its last byte; the attempts' phases add up in `perf`.
    /// Errors are returned for `fail_to_proxy`.
    pub async fn run(
        &self,
        session: &mut Session,
        tried: &mut Vec<SocketAddr>,
        slot: &mut Option<ConcurrencySlot>,
        perf: &mut PerfTimer,
    ) -> Result<()> {
        let limit = self.pool.retry.max_body_bytes;
        let mut body = RequestBody::read(session, limit, self.front.upload_limit)
            .await
            .map_err(|e| e.into_down())?;
        let original = session.req_header().clone();
        let key = self.pool.selection_key(&original, self.client.ip);
        let origin = self.origin_url(&original);
        let outgoing = Outgoing {
            original: &original,
            key: &key,
        };
        let mut hop = Hop {
            url: origin.clone(),
            method: original.method.clone(),
            with_body: true,
            on_pool: true,
        };
        let mut visited = vec![(hop.method.clone(), hop.url.clone())];
        let (mut failures_left, mut hops_left) = (self.pool.retry.retries, self.pool.redirect_hops);
        let mut stale_retry_used = false;
        loop {
            let answer = match self
                .attempt(session, &outgoing, &hop, &mut body, tried, perf)
                .await
            {
                Ok(answer) => answer,
                Err(Failure::Client(e)) => return Err(e),
                Err(Failure::Upstream {
                    error,
                    resendable,
                    stale,
                    addr,
                }) => {
                    if stale && resendable && !stale_retry_used {
                        stale_retry_used = true;
                        continue;
                    }
                    self.pool.activity.record_error();
                    tried.extend(addr);
                    if failures_left == 0 || !resendable {
                        return Err(error);
                    }
                    failures_left -= 1;
                    self.back_off(&hop, &error.to_string(), failures_left).await;
                    continue;
                }
            };
            if hops_left > 0 {
                if let Some(next) = self.redirect(&answer, &hop, &origin, body.is_replayable()) {
                    let seen = (next.method.clone(), next.url.clone());
                    if !visited.contains(&seen) {
                        visited.push(seen);
                        hops_left -= 1;
                        hop = next;
                        continue;
                    }
                }
            }
            if !self.pool.retry.is_success(answer.status) {
                self.pool.activity.record_error();
                if failures_left > 0 && body.is_replayable() {
                    failures_left -= 1;
                    tried.push(answer.addr);
                    let what = format!("HTTP {}", answer.status);
                    self.back_off(&hop, &what, failures_left).await;
                    continue;
                }
            }
            return self.deliver(session, answer, slot, perf).await;
        }
    }

    /// The URL the back end sees for the client's request: its Host (or the target's, with
    /// `preserve_host: false`) and path. Relative redirects resolve against it.
    fn origin_url(&self, req: &RequestHeader) -> HopUrl {
        let path = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let Some(target) = self.pool.primary_target() else {
            return HopUrl {
                tls: false,
                host: String::new(),
                port: 0,
                path: path.to_string(),
            };
        };
        let client_host = req
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()));
        let host = if self.pool.request_rules.preserve_host {
            client_host
        } else {
            target.host_header.as_ref().and_then(|h| h.to_str().ok())
        };
        host.and_then(|h| HopUrl::of_request(target.tls, h, path))
            .unwrap_or_else(|| HopUrl {
                tls: target.tls,
                host: target.hostname.to_ascii_lowercase(),
                port: target.port,
                path: path.to_string(),
            })
    }

    /// Whether `url` points at this pool's back end rather than some other host.
    fn on_pool(&self, url: &HopUrl, origin: &HopUrl) -> bool {
        url.same_origin(origin)
            || self.pool.all_targets().iter().any(|t| {
                t.tls == url.tls && t.port == url.port && t.hostname.eq_ignore_ascii_case(&url.host)
            })
    }

    fn redirect(
        &self,
        answer: &Answer,
        hop: &Hop,
        origin: &HopUrl,
        replayable: bool,
    ) -> Option<Hop> {
        let (method, keep_body) = next_method(answer.status, &hop.method)?;
        let location = answer
            .session
            .response_header()?
            .headers
            .get(http::header::LOCATION)?
            .to_str()
            .ok()?;
        let url = hop.url.join(location)?;
        let with_body = keep_body && hop.with_body;
        if with_body && !replayable {
            return None;
        }
        Some(Hop {
            on_pool: self.on_pool(&url, origin),
            url,
            method,
            with_body,
        })
    }

    async fn back_off(&self, hop: &Hop, what: &str, failures_left: u32) {
        self.pool.metrics.retried();
        let delay = self.pool.retry_delay();
        log::warn!(
            "[{}] {} {}{} failed ({what}); retrying in {} ms, {failures_left} retries left after this",
            self.pool.id,
            hop.method,
            if hop.url.tls { "https://" } else { "http://" },
            format_args!("{}{}", hop.url.authority(), hop.url.path),
            delay.as_millis()
        );
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}
