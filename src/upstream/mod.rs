//! One attempt to a back end, as poolgate makes it with Pingora's HTTP client: the buffered
//! exchange (pools with `retries` or `follow_redirects`) and the blind queue's sender both send
//! every attempt through here, so both choose the target, build the peer, strip hop-by-hop
//! headers, apply the pool's header rules for the target chosen, re-frame the body, connect,
//! set the timeouts, write, and read the answer's header the same way. What they do around
//! it (retry loops, redirects, delivery to the client or draining) is their own. The pool's
//! `http_timeout_ms` bounds the wait for the whole response header (after the request went
//! out), `http_body_timeout_ms` each read of the body after it. Also owns the streaming path's
//! back-end deadlines (`response_watch.rs`: the first byte apart from the body's gaps, which
//! Pingora's proxy cannot keep apart, and both without a Pingora timer per read).
//!
//! Uses `pool` (targets, peers, rules), `front_end` (client facts, the upload limit) and
//! `timing`.

mod response_watch;

pub(crate) use response_watch::{ResponseWatch, WatchLimits};

use crate::front_end::{ClientFacts, UploadLimit};
use crate::pool::{
    strip_hop_by_hop, HopUrl, OnTarget, Pool, Target, TargetResolver, BACKEND_IDLE_TIMEOUT,
};
use crate::timing::{PerfTimer, Phase};
use bytes::{Bytes, BytesMut};
use http::Method;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession as ClientSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, OrErr, Result};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Informational (1xx) responses skipped before giving up on a back end.
const MAX_INFORMATIONAL: usize = 8;
/// Spooled bodies are sent in pieces of this size.
const FILE_CHUNK: usize = 64 * 1024;

/// The request of every attempt, as the client sent it (before the pool's rules, which are
/// applied per attempt for the target chosen then).
pub(crate) struct Outgoing<'a> {
    pub(crate) original: &'a RequestHeader,
    pub(crate) client: ClientFacts,
    /// The balancing key (`Pool::selection_key`).
    pub(crate) key: &'a [u8],
    /// A header set after the pool's rules (the queue's request id).
    pub(crate) tag: Option<(&'static str, String)>,
    /// An `Upgrade` request (WebSocket): its `Upgrade` header and `Connection: upgrade` go to
    /// the back end, while every other hop-by-hop header is stripped.
    pub(crate) upgrade: bool,
}

/// Where one attempt goes and what it asks for.
pub(crate) struct Hop<'a> {
    /// Method and path when they are not the original's (a followed redirect).
    pub(crate) rewrite: Option<(&'a Method, &'a str)>,
    /// A host a redirect named, instead of the pool's targets.
    pub(crate) elsewhere: Option<&'a HopUrl>,
}

impl Hop<'_> {
    /// The original request to one of the pool's targets.
    pub(crate) const TO_POOL: Hop<'static> = Hop {
        rewrite: None,
        elsewhere: None,
    };
}

/// How the body of an attempt is framed to the back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body framing at all (the client sent none).
    None,
    Length(u64),
    Chunked,
}

/// The body of one attempt.
pub(crate) enum Body<'a> {
    Empty,
    /// Kept in memory: every attempt can send it again.
    Kept(Bytes),
    /// A queue's spool file.
    File(&'a Path),
    /// The part kept, then the rest read from the client while it is sent: once only.
    Streamed {
        head: Bytes,
        client: &'a mut Session,
        limit: UploadLimit,
    },
}

impl Body<'_> {
    /// Whether another attempt could send this body again.
    fn replayable(&self) -> bool {
        !matches!(self, Body::Streamed { .. })
    }
}

/// A back end's answer: header read, body not yet.
pub(crate) struct Answer {
    pub(crate) session: ClientSession,
    peer: Box<HttpPeer>,
    pub(crate) status: u16,
    pub(crate) addr: SocketAddr,
    /// The index of the pool's target that answered (`None`: a host a redirect named).
    pub(crate) target: Option<usize>,
    /// The request counts as in progress on that target until the answer is dropped.
    _on_target: Option<OnTarget>,
    /// The whole request went out, so the connection may go back to the pool afterwards.
    reusable: bool,
}

impl Answer {
    pub(crate) fn header(&self) -> Option<&ResponseHeader> {
        self.session.response_header()
    }

    /// Give the connection back to the pool's keep-alive pool (when the request went out
    /// whole and `keep_alive`), else close it.
    pub(crate) async fn release(self, connector: &Connector, keep_alive: bool) {
        if self.reusable && keep_alive {
            connector
                .release_http_session(self.session, &*self.peer, BACKEND_IDLE_TIMEOUT)
                .await;
        }
    }
}

/// Why an attempt failed.
pub(crate) enum Failure {
    /// The back end failed; `resendable` when the request can be sent again in full, `stale`
    /// when a pooled connection turned out to be closed before anything was processed.
    Upstream {
        error: Box<Error>,
        resendable: bool,
        stale: bool,
        addr: Option<SocketAddr>,
        /// The index of the pool's target it failed on, when one was chosen.
        target: Option<usize>,
    },
    /// The client failed (read error, gone, body over the upload limit): nothing more to do.
    Client(Box<Error>),
}

/// Where an attempt went: the address, and the pool's target of that index, if any.
#[derive(Debug, Clone, Copy)]
struct Destination {
    addr: SocketAddr,
    target: Option<usize>,
}

impl Failure {
    fn upstream(error: Box<Error>, resendable: bool, to: Option<Destination>) -> Self {
        Failure::Upstream {
            error: error.into_up(),
            resendable,
            stale: false,
            addr: to.map(|d| d.addr),
            target: to.and_then(|d| d.target),
        }
    }
}

/// One attempt of `request` on `hop` with `body`, avoiding the targets in `tried`; its
/// phases are lapped on `perf`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn attempt(
    pool: &Pool,
    connector: &Connector,
    request: &Outgoing<'_>,
    hop: &Hop<'_>,
    framing: Framing,
    body: Body<'_>,
    tried: &[SocketAddr],
    perf: &mut PerfTimer,
) -> std::result::Result<Answer, Failure> {
    perf.restart_lap();
    let (peer, target, to) = peer_for(pool, request.key, hop, tried)
        .await
        .map_err(|e| Failure::upstream(e, true, None))?;
    perf.lap(Phase::Dns);
    let req = request_for(pool, request, hop, target, framing).map_err(Failure::Client)?;
    let (mut up, reused) = connector
        .get_http_session(&*peer)
        .await
        .map_err(|e| Failure::upstream(e, true, Some(to)))?;
    perf.lap(Phase::Connect);
    let on_target = target.and_then(|t| t.activity.connected(reused));
    let addr = to.addr;
    up.set_read_timeout(pool.connect.header_read_timeout());
    up.set_write_timeout(pool.connect.ttfb_timeout);
    let ttfb = pool.connect.ttfb_timeout;
    let stale = |error: Box<Error>| Failure::Upstream {
        error: error.into_up(),
        resendable: true,
        stale: reused,
        addr: Some(addr),
        target: to.target,
    };
    up.write_request_header(Box::new(req))
        .await
        .map_err(stale)?;
    let replayable = body.replayable();
    let mut reusable = true;
    match send_body(&mut up, body, to).await {
        Ok(sent) => {
            perf.bytes_sent += sent;
            perf.lap(Phase::Send);
            read_answer_header(&mut up, ttfb)
                .await
                .map_err(|e| Failure::Upstream {
                    error: e.into_up(),
                    resendable: replayable,
                    stale: reused && replayable,
                    addr: Some(addr),
                    target: to.target,
                })?;
        }
        Err(failure) => {
            // A back end may answer early (413, 500...) and stop reading: its answer wins.
            if matches!(failure, Failure::Client(_))
                || read_answer_header(&mut up, ttfb).await.is_err()
            {
                return Err(failure);
            }
            reusable = false;
        }
    }
    perf.lap(Phase::Wait);
    // From here on, only the gaps in the body are bounded (a tunnel's silence too).
    up.set_read_timeout(pool.connect.body_timeout);
    let status = up.response_header().map_or(0, |r| r.status.as_u16());
    Ok(Answer {
        session: up,
        peer,
        status,
        addr,
        target: to.target,
        _on_target: on_target,
        reusable,
    })
}

/// Where an attempt goes: a pool target (avoiding ones that failed) or a redirect's host.
async fn peer_for<'p>(
    pool: &'p Pool,
    key: &[u8],
    hop: &Hop<'_>,
    tried: &[SocketAddr],
) -> Result<(Box<HttpPeer>, Option<&'p Target>, Destination)> {
    let Some(url) = hop.elsewhere else {
        let chosen = pool.choose(key, tried).await?;
        let peer = pool.peer(&chosen, true)?;
        let to = Destination {
            addr: chosen.addr,
            target: Some(chosen.target),
        };
        return Ok((peer, pool.target(&chosen), to));
    };
    let addr = TargetResolver::new(&url.host, url.port, 0)
        .resolve()
        .await?;
    let group = pool.redirect_group(&url.host, url.port);
    let to = Destination { addr, target: None };
    Ok((pool.peer_at(addr, url.tls, &url.host, group), None, to))
}

/// The request as the back end sees it: the client's, on `hop`, after the pool's rules for
/// `target`, framed for the body, with the tag.
fn request_for(
    pool: &Pool,
    request: &Outgoing<'_>,
    hop: &Hop<'_>,
    target: Option<&Target>,
    framing: Framing,
) -> Result<RequestHeader> {
    let mut req = request.original.clone();
    if let Some((method, path)) = hop.rewrite {
        req.set_method(method.clone());
        let uri = path
            .parse::<http::Uri>()
            .explain_err(ErrorType::InvalidHTTPHeader, |e| {
                format!("redirect path: {e}")
            })?;
        req.set_uri(uri);
    }
    let upgrade = match request.upgrade {
        true => req.headers.get(http::header::UPGRADE).cloned(),
        false => None,
    };
    strip_hop_by_hop(&mut req);
    req.remove_header(&http::header::EXPECT);
    pool.rewrite_request(&mut req, request.client, target)?;
    if let Some(protocol) = upgrade {
        // After the pool's rules: `use_keep_alives: false` must not close a tunnel.
        req.insert_header(http::header::CONNECTION, "upgrade")?;
        req.insert_header(http::header::UPGRADE, protocol)?;
    }
    if let Some(url) = hop.elsewhere {
        req.insert_header(http::header::HOST, url.authority())?;
    }
    req.remove_header(&http::header::CONTENT_LENGTH);
    req.remove_header(&http::header::TRANSFER_ENCODING);
    match framing {
        Framing::None => {}
        Framing::Length(n) => req.insert_header(http::header::CONTENT_LENGTH, n)?,
        Framing::Chunked => req.insert_header(http::header::TRANSFER_ENCODING, "chunked")?,
    }
    if let Some((name, value)) = &request.tag {
        req.insert_header(*name, value.as_str())?;
    }
    Ok(req)
}

/// Send the body and finish the request; the bytes sent.
async fn send_body(
    up: &mut ClientSession,
    body: Body<'_>,
    to: Destination,
) -> std::result::Result<u64, Failure> {
    let replayable = body.replayable();
    let failed =
        |error: Box<Error>, resendable: bool| Failure::upstream(error, resendable, Some(to));
    let sent = match body {
        Body::Empty => 0,
        Body::Kept(bytes) => {
            let len = bytes.len() as u64;
            if len > 0 {
                up.write_request_body(bytes, false)
                    .await
                    .map_err(|e| failed(e, true))?;
            }
            len
        }
        Body::File(path) => send_file(up, path).await.map_err(|e| failed(e, true))?,
        Body::Streamed {
            head,
            client,
            limit,
        } => {
            let mut received = head.len() as u64;
            if !head.is_empty() {
                up.write_request_body(head, false)
                    .await
                    .map_err(|e| failed(e, false))?;
            }
            while let Some(chunk) = client
                .read_request_body()
                .await
                .map_err(|e| Failure::Client(e.into_down()))?
            {
                received += chunk.len() as u64;
                limit
                    .check(received)
                    .map_err(|e| Failure::Client(e.into_down()))?;
                up.write_request_body(chunk, false)
                    .await
                    .map_err(|e| failed(e, false))?;
            }
            received
        }
    };
    up.finish_request_body()
        .await
        .map_err(|e| failed(e, replayable))?;
    Ok(sent)
}

async fn send_file(up: &mut ClientSession, path: &Path) -> Result<u64> {
    let why = |e: std::io::Error| format!("queue spool file {}: {e}", path.display());
    let mut file = tokio::fs::File::open(path)
        .await
        .explain_err(ErrorType::InternalError, why)?;
    let mut sent = 0u64;
    loop {
        let mut buf = BytesMut::with_capacity(FILE_CHUNK);
        let read = file.read_buf(&mut buf).await;
        if read.explain_err(ErrorType::InternalError, why)? == 0 {
            return Ok(sent);
        }
        sent += buf.len() as u64;
        up.write_request_body(buf.freeze(), false).await?;
    }
}

/// Read the response header, skipping informational (1xx) ones, within `limit`
/// (`http_timeout_ms`) however the back end paces it.
async fn read_answer_header(up: &mut ClientSession, limit: Option<Duration>) -> Result<()> {
    let Some(limit) = limit else {
        return read_final_header(up).await;
    };
    match tokio::time::timeout(limit, read_final_header(up)).await {
        Ok(read) => read,
        Err(_) => Err(Error::explain(
            ErrorType::ReadTimedout,
            format!(
                "no response header within http_timeout_ms ({} ms)",
                limit.as_millis()
            ),
        )),
    }
}

async fn read_final_header(up: &mut ClientSession) -> Result<()> {
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
