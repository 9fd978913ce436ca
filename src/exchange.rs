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

use crate::front_end::FrontEnd;
use crate::headers::{strip_hop_by_hop, ClientFacts};
use crate::pool::{Pool, BACKEND_IDLE_TIMEOUT};
use crate::redirect::{next_method, HopUrl};
use crate::request_body::RequestBody;
use crate::targets::Target;
use http::Method;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession as ClientSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;

/// Informational (1xx) responses skipped before giving up on a back end.
const MAX_INFORMATIONAL: usize = 8;

pub struct Exchange<'a> {
    pub pool: &'a Pool,
    pub front: &'a FrontEnd,
    pub connector: &'a Connector,
    pub client: ClientFacts,
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

/// A back end's answer: header read, body not yet.
struct Answer {
    session: ClientSession,
    peer: Box<HttpPeer>,
    status: u16,
    addr: SocketAddr,
    /// The whole request went out, so the connection may go back to the pool afterwards.
    reusable: bool,
}

enum Failure {
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
    /// Run the exchange and answer the client. Errors are returned for `fail_to_proxy`.
    pub async fn run(&self, session: &mut Session, tried: &mut Vec<SocketAddr>) -> Result<()> {
        let mut body = RequestBody::read(session, self.pool.retry.max_body_bytes)
            .await
            .map_err(|e| e.into_down())?;
        let original = session.req_header().clone();
        let key = self.pool.selection_key(&original, self.client.ip);
        let origin = self.origin_url(&original);
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
                .attempt(session, &original, &hop, &mut body, tried, &key)
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
            return self.deliver(session, answer).await;
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
        let errors = self.pool.activity.previous_second().errors;
        let delay = self.pool.retry.delay.for_errors(errors);
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

    /// Where a hop goes: a pool target (avoiding ones that failed) or a redirect's host.
    async fn peer_for(
        &self,
        hop: &Hop,
        tried: &[SocketAddr],
        key: &[u8],
    ) -> Result<(Box<HttpPeer>, Option<&Target>, SocketAddr)> {
        if hop.on_pool {
            let chosen = self.pool.choose(key, tried).await?;
            let peer = self.pool.peer(&chosen)?;
            return Ok((peer, self.pool.target(&chosen), chosen.addr));
        }
        let resolver = crate::dns::TargetResolver::new(&hop.url.host, hop.url.port, 0);
        let addr = resolver.resolve().await?;
        let mut h = DefaultHasher::new();
        (self.pool.connect.group_key, &hop.url.host, hop.url.port).hash(&mut h);
        let peer = self
            .pool
            .peer_at(addr, hop.url.tls, &hop.url.host, h.finish());
        Ok((peer, None, addr))
    }

    fn request_for(
        &self,
        original: &RequestHeader,
        hop: &Hop,
        target: Option<&Target>,
        body: &RequestBody,
    ) -> Result<RequestHeader> {
        let mut req = original.clone();
        req.set_method(hop.method.clone());
        let uri = hop.url.path.parse::<http::Uri>().map_err(|e| {
            Error::explain(ErrorType::InvalidHTTPHeader, format!("redirect path: {e}"))
        })?;
        req.set_uri(uri);
        strip_hop_by_hop(&mut req);
        req.remove_header(&http::header::EXPECT);
        self.pool.rewrite_request(&mut req, self.client, target)?;
        if !hop.on_pool {
            req.insert_header(http::header::HOST, hop.url.authority())?;
        }
        req.remove_header(&http::header::CONTENT_LENGTH);
        req.remove_header(&http::header::TRANSFER_ENCODING);
        if hop.with_body && body.framed {
            match (body.complete, body.declared_len) {
                (true, _) => req.insert_header(http::header::CONTENT_LENGTH, body.head.len())?,
                (false, Some(n)) => req.insert_header(http::header::CONTENT_LENGTH, n)?,
                (false, None) => req.insert_header(http::header::TRANSFER_ENCODING, "chunked")?,
            }
        }
        Ok(req)
    }

    async fn attempt(
        &self,
        session: &mut Session,
        original: &RequestHeader,
        hop: &Hop,
        body: &mut RequestBody,
        tried: &[SocketAddr],
        key: &[u8],
    ) -> std::result::Result<Answer, Failure> {
        let upstream =
            |error: Box<Error>, resendable: bool, addr: Option<SocketAddr>| Failure::Upstream {
                error: error.into_up(),
                resendable,
                stale: false,
                addr,
            };
        let (peer, target, addr) = self
            .peer_for(hop, tried, key)
            .await
            .map_err(|e| upstream(e, true, None))?;
        let req = self
            .request_for(original, hop, target, body)
            .map_err(Failure::Client)?;
        let (mut up, reused) = self
            .connector
            .get_http_session(&*peer)
            .await
            .map_err(|e| upstream(e, true, Some(addr)))?;
        up.set_read_timeout(self.pool.connect.ttfb_timeout);
        up.set_write_timeout(self.pool.connect.ttfb_timeout);
        let stale = |error: Box<Error>| Failure::Upstream {
            error: error.into_up(),
            resendable: true,
            stale: reused,
            addr: Some(addr),
        };
        up.write_request_header(Box::new(req))
            .await
            .map_err(stale)?;
        let mut reusable = true;
        if let Err(failure) = self.send_body(session, &mut up, hop, body, addr).await {
            // A back end may answer early (413, 500...) and stop reading: its answer wins.
            if matches!(failure, Failure::Client(_)) || read_answer_header(&mut up).await.is_err() {
                return Err(failure);
            }
            reusable = false;
        } else {
            read_answer_header(&mut up)
                .await
                .map_err(|e| Failure::Upstream {
                    error: e.into_up(),
                    resendable: body.is_replayable(),
                    stale: reused && body.is_replayable(),
                    addr: Some(addr),
                })?;
        }
        let status = up.response_header().map_or(0, |r| r.status.as_u16());
        Ok(Answer {
            session: up,
            peer,
            status,
            addr,
            reusable,
        })
    }

    /// Send the body of one attempt: the kept copy, then (first attempt of an over-limit body
    /// only) the rest straight from the client.
    async fn send_body(
        &self,
        session: &mut Session,
        up: &mut ClientSession,
        hop: &Hop,
        body: &mut RequestBody,
        addr: SocketAddr,
    ) -> std::result::Result<(), Failure> {
        let failed = |error: Box<Error>, resendable: bool| Failure::Upstream {
            error: error.into_up(),
            resendable,
            stale: false,
            addr: Some(addr),
        };
        if hop.with_body && !body.head.is_empty() {
            up.write_request_body(body.head.clone(), false)
                .await
                .map_err(|e| failed(e, body.complete))?;
        }
        if hop.with_body && !body.complete {
            // From here on the body is gone: no attempt can send it again.
            body.head = bytes::Bytes::new();
            body.framed = false;
            while let Some(chunk) = session
                .read_request_body()
                .await
                .map_err(|e| Failure::Client(e.into_down()))?
            {
                up.write_request_body(chunk, false)
                    .await
                    .map_err(|e| failed(e, false))?;
            }
        }
        up.finish_request_body()
            .await
            .map_err(|e| failed(e, body.complete))
    }

    /// Stream the chosen answer to the client, with the pool's and the global response rules.
    async fn deliver(&self, session: &mut Session, answer: Answer) -> Result<()> {
        let Answer {
            session: mut up,
            peer,
            reusable,
            ..
        } = answer;
        let mut resp =
            Box::new(up.response_header().cloned().ok_or_else(|| {
                Error::explain(ErrorType::InternalError, "answer without a header")
            })?);
        self.pool.response_rules.apply(&mut resp)?;
        self.front.response_headers.apply(&mut resp)?;
        if !resp.headers.contains_key(http::header::CONTENT_LENGTH)
            && !resp.headers.contains_key(http::header::TRANSFER_ENCODING)
            && has_body(resp.status.as_u16(), &session.req_header().method)
        {
            // A close-delimited answer is re-framed so the client connection can be kept.
            resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        session
            .write_response_header(resp, false)
            .await
            .map_err(|e| e.into_down())?;
        while let Some(chunk) = up.read_response_body().await.map_err(|e| e.into_up())? {
            session
                .write_response_body(Some(chunk), false)
                .await
                .map_err(|e| e.into_down())?;
        }
        session
            .write_response_body(None, true)
            .await
            .map_err(|e| e.into_down())?;
        if reusable && self.pool.use_keep_alives {
            self.connector
                .release_http_session(up, &*peer, Some(BACKEND_IDLE_TIMEOUT))
                .await;
        }
        Ok(())
    }
}

/// Read the response header, skipping informational (1xx) ones.
async fn read_answer_header(up: &mut ClientSession) -> Result<()> {
    for _ in 0..MAX_INFORMATIONAL {
        up.read_response_header().await?;
        let status = up.response_header().map_or(0, |r| r.status.as_u16());
        if status >= 200 || status == 101 {
            return Ok(());
        }
    }
    Err(Error::explain(
        ErrorType::InvalidHTTPHeader,
        "too many informational responses",
    ))
}

fn has_body(status: u16, method: &Method) -> bool {
    *method != Method::HEAD && !(100..200).contains(&status) && status != 204 && status != 304
}
