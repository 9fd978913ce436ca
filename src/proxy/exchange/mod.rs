//! The buffered exchange: how poolgate talks to the back end of a pool that retries on error
//! statuses (`retries`) or follows redirects (`follow_redirects`).
//!
//! Pingora's proxy retries only before a response arrives and replays at most 64 KiB of body,
//! and it has no hook to retry on a status code. These pools therefore use Pingora's HTTP
//! client from `request_filter`, one attempt at a time through `crate::upstream`: the request
//! body is kept in memory up to `retry_max_body_bytes` (`body.rs`) so every attempt sends it
//! byte-exact; each answer is judged against `resp_code_success_match` and the redirect rules;
//! the answer chosen for the client is streamed to it chunk by chunk (`delivery.rs`). Pools
//! with neither setting never come here and keep Pingora's streaming proxy. Upgrade requests
//! (WebSocket) of every pool come here too, and are carried by `tunnel.rs`.
//!
//! Uses `upstream` (the attempts), `pool`, `admission` (the permit it frees), `front_end` and
//! `timing`.

mod body;
mod delivery;
mod tunnel;

use crate::admission::Permit;
use crate::event_log::BodyCapture;
use crate::front_end::{ClientFacts, FrontEnd};
use crate::pool::{next_method, HopUrl, Pool};
use crate::timing::PerfTimer;
use crate::upstream::{self, Answer, Body, Failure, Framing, Outgoing};
use body::RequestBody;
use http::Method;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::Result;
use std::fmt;
use std::net::SocketAddr;

pub(crate) struct Exchange<'a> {
    pub(crate) pool: &'a Pool,
    pub(crate) front: &'a FrontEnd,
    pub(crate) connector: &'a Connector,
    pub(crate) client: ClientFacts,
}

/// One request on the way: where it goes, with which method, and whether it carries the body.
#[derive(Debug, Clone)]
struct Hop {
    url: HopUrl,
    method: Method,
    with_body: bool,
    /// Sent to the pool's own targets (else to the host named by a redirect).
    on_pool: bool,
}

impl fmt::Display for Hop {
    /// `GET http://host:port/path`, as the retry log line names it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.url.tls { "https://" } else { "http://" };
        let path = crate::event_log::redact::text(&self.url.path);
        write!(f, "{} {scheme}{}{path}", self.method, self.url.authority())
    }
}

/// The state an exchange carries between its hooks: the attempts' targets, the pool's permit
/// and the phase timer.
pub(crate) struct ExchangeState<'c> {
    /// Back-end addresses that failed, so a retry picks another target.
    pub(crate) tried: &'c mut Vec<SocketAddr>,
    /// Freed as soon as the back end has sent its last byte.
    pub(crate) permit: &'c mut Option<Permit>,
    /// The attempts' phases add up here.
    pub(crate) perf: &'c mut PerfTimer,
    /// The bodies kept for `http_log_request_details`.
    pub(crate) bodies: &'c mut Option<Box<BodyCapture>>,
}

impl Exchange<'_> {
    /// Run the exchange and answer the client. Errors are returned for `fail_to_proxy`.
    pub(crate) async fn run(&self, session: &mut Session, state: ExchangeState<'_>) -> Result<()> {
        let ExchangeState {
            tried,
            permit,
            perf,
            bodies,
        } = state;
        let upload = self.front.upload_limit;
        let mut body = RequestBody::read(session, self.pool.retry.max_body_bytes, upload)
            .await
            .map_err(|e| e.into_down())?;
        // The part read before the first attempt (the whole body when it can be resent).
        BodyCapture::request(bodies, body.kept());
        let original = session.req_header().clone();
        let key = self.pool.selection_key(&original, self.client.ip);
        let origin = self.origin_url(&original);
        let outgoing = Outgoing {
            original: &original,
            client: self.client,
            key: &key,
            tag: None,
            upgrade: false,
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
            let upstream_hop = upstream::Hop {
                rewrite: Some((&hop.method, &hop.url.path)),
                elsewhere: (!hop.on_pool).then_some(&hop.url),
            };
            let (framing, attempt_body) = match hop.with_body {
                true => (body.framing(), body.for_attempt(session, upload)),
                false => (Framing::None, Body::Empty),
            };
            let attempt = upstream::attempt(
                self.pool,
                self.connector,
                &outgoing,
                &upstream_hop,
                framing,
                attempt_body,
                tried,
                perf,
            );
            let answer = match attempt.await {
                Ok(answer) => answer,
                Err(Failure::Client(e)) => return Err(e),
                Err(Failure::Upstream {
                    error,
                    resendable,
                    stale,
                    addr,
                    target,
                }) => {
                    if stale && resendable && !stale_retry_used {
                        stale_retry_used = true;
                        continue;
                    }
                    self.pool.record_failed_attempt(target);
                    tried.extend(addr);
                    if failures_left == 0 || !resendable {
                        return Err(error);
                    }
                    failures_left -= 1;
                    self.pool.back_off(&hop, &error, failures_left).await;
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
                self.pool.record_failed_attempt(answer.target);
                if failures_left > 0 && body.is_replayable() {
                    failures_left -= 1;
                    tried.push(answer.addr);
                    let why = format!("HTTP {}", answer.status);
                    self.pool.back_off(&hop, &why, failures_left).await;
                    continue;
                }
            }
            return self.deliver(session, answer, permit, perf, bodies).await;
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
            .header()?
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
}
