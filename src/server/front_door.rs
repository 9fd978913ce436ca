//! The front door: every client connection passes it before Pingora serves it.
//! `WebServer.http_max_connections` (one slot per connection, `connection_limit.rs`), the
//! open sockets of the stats API, and for HTTP/1 each request head read and checked by
//! poolgate (`head_reader.rs`, `front_end::request_head`) before Pingora parses it:
//! `http_max_header_size`, `http_max_request_line`, `http_max_header_count`,
//! `http_header_timeout`, `http_allow_te_and_cl`, a valid `Host`, a clean target; and the
//! connection's timeouts: `http_timeout` / `https_timeout` for a new connection,
//! `http_socket_prelim_timeout`, `http_keep_alive_timeout` between requests,
//! `http_max_requests_per_connection`, and `http_request_timeout`'s backstop.
//!
//! A refused head gets poolgate's own answer (status, short `text/plain` body, the global
//! response headers, `Connection: close`) straight on the socket, is counted and logged, and
//! the connection closes. A good head is handed to Pingora as the start of its read buffer,
//! so Pingora parses the same bytes without reading the socket again. HTTP/2 connections
//! (ALPN `h2`, or `h2c` prior knowledge) go to Pingora as they are; their header block is
//! bounded by the HTTP/2 settings and their authority checked by the proxy.

use super::connection_limit::{ConnectionLimit, OpenSlot};
use super::head_reader::{answer_and_close, read_head, HeadRead};
use crate::event_log::{WebLog, WebRequest};
use crate::front_end::request_head::{first_line, method_of};
use crate::front_end::{ClientTimeouts, FrontEnd, HeadFault};
use crate::stats::{Answered, ErrorEntry, SocketTable, StatsHub};
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long past `http_request_timeout` a request may still run before its connection is
/// dropped (the proxy's own 408 comes first).
const REQUEST_GRACE: Duration = Duration::from_secs(1);

/// The longest a shutdown waits for keep-alive connections to end by themselves.
pub(super) const KEEPALIVE_DRAIN: Duration = Duration::from_secs(2);

/// What the front door needs besides the application it guards.
pub(super) struct FrontDoorParts {
    pub(super) limit: Arc<ConnectionLimit>,
    /// Open connections, for the stats API's `web.sockets`.
    pub(super) sockets: Arc<SocketTable>,
    /// How long a shutdown lets keep-alive connections end by themselves (see `cleanup`).
    pub(super) drain: Duration,
    pub(super) front: Arc<FrontEnd>,
    /// Refusal counters, the web server's figures and recent requests.
    pub(super) hub: Arc<StatsHub>,
    pub(super) web_log: Arc<WebLog>,
    /// `http_h2c`: a cleartext connection may open with the HTTP/2 preface.
    pub(super) h2c: bool,
}

/// A server application (Pingora's HTTP proxy) behind poolgate's front door.
pub(super) struct FrontDoor<A> {
    inner: Arc<A>,
    parts: FrontDoorParts,
    /// Turns true when idle connections are to close (after the shutdown's drain).
    closing: watch::Sender<bool>,
}

impl<A> FrontDoor<A> {
    pub(super) fn new(inner: A, parts: FrontDoorParts) -> Self {
        FrontDoor {
            inner: Arc::new(inner),
            parts,
            closing: watch::Sender::new(false),
        }
    }
}

/// What a connection speaks.
enum Protocol {
    Http1,
    Other,
}

/// Where a connection came from and arrived.
#[derive(Clone, Copy)]
struct Addresses {
    peer: Option<SocketAddr>,
    port: u16,
    tls: bool,
}

impl<A: HttpServerApp + Send + Sync + 'static> FrontDoor<A> {
    /// Which protocol the connection speaks: HTTP/1 (poolgate reads its heads), else HTTP/2 or
    /// a custom protocol (Pingora's). `None`: the client sent nothing within `idle`.
    async fn protocol(&self, stream: &mut Stream, idle: Option<Duration>) -> Option<Protocol> {
        if stream.get_ssl_digest().is_some() {
            let other = matches!(
                stream.selected_alpn_proto(),
                Some(ALPN::H2) | Some(ALPN::Custom(_))
            );
            return Some(if other {
                Protocol::Other
            } else {
                Protocol::Http1
            });
        }
        if !self.parts.h2c {
            return Some(Protocol::Http1);
        }
        // Cleartext HTTP/2 starts with its preface (prior knowledge).
        let mut buf = [0u8; H2_PREFACE.len()];
        let peeked = match idle {
            Some(idle) => tokio::time::timeout(idle, stream.try_peek(&mut buf))
                .await
                .ok()?,
            None => stream.try_peek(&mut buf).await,
        };
        match peeked {
            Ok(true) if buf != H2_PREFACE => Some(Protocol::Http1),
            // The preface, or no bytes to look at: Pingora decides (and closes a dead
            // connection).
            _ => Some(Protocol::Other),
        }
    }

    /// Serve an HTTP/1 connection: read and check each head, then let Pingora serve the
    /// request; again for each keep-alive request.
    async fn serve_http1(
        &self,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
        at: Addresses,
        prelim: Option<Instant>,
    ) {
        let front = &self.parts.front;
        let timeouts = &front.timeouts;
        let mut closing = self.closing.subscribe();
        let mut persistent: Option<HttpPersistentSettings> = None;
        let mut idle = timeouts.first_request(at.tls);
        let mut by = prelim;
        loop {
            let limits = &front.head_limits;
            let head = match read_head(&mut stream, limits, idle, by, &mut closing).await {
                HeadRead::Ready(head) => head,
                HeadRead::Closed => return,
                HeadRead::Refused {
                    fault,
                    received,
                    since,
                } => {
                    let waited = since.elapsed();
                    // Boxed: the refusal's linger buffer would otherwise sit in every idle
                    // connection's state.
                    Box::pin(self.refuse(stream, fault, &received, waited, at)).await;
                    return;
                }
            };
            let session = session_for(stream, head, persistent.take(), shutdown, timeouts);
            let served = self.inner.process_new_http(session, shutdown);
            let reused = match timeouts.request {
                // `http_request_timeout`: the proxy answers 408 while it can; this is the
                // backstop for a request still running a moment later (its answer already
                // under way, or a client trickling its body): the connection is dropped.
                Some(limit) => match tokio::time::timeout(limit + REQUEST_GRACE, served).await {
                    Ok(reused) => reused,
                    Err(_) => {
                        log::warn!(
                            "http_request_timeout ({} s) passed: closed the connection of {}",
                            limit.as_secs(),
                            at.peer
                                .map_or("an unknown client".into(), |p| p.ip().to_string())
                        );
                        return;
                    }
                },
                None => served.await,
            };
            let Some(reused) = reused else {
                return;
            };
            let (next, settings) = reused.consume();
            stream = next;
            persistent = settings;
            idle = timeouts.between_requests(at.tls);
            by = None;
        }
    }

    /// Answer a refused head, then count and log it.
    async fn refuse(
        &self,
        mut stream: Stream,
        fault: HeadFault,
        received: &[u8],
        waited: Duration,
        at: Addresses,
    ) {
        let method = method_of(received);
        let with_body = method != Some(&b"HEAD"[..]);
        let answer = self.parts.front.head_refusal(fault, at.tls, with_body);
        answer_and_close(&mut stream, &answer).await;
        let hub = &self.parts.hub;
        let line = first_line(received);
        hub.refused.record(fault, at.peer.map(|p| p.ip()), line);
        let (bytes_in, bytes_out) = (received.len() as u64, answer.len() as u64);
        let answered = Answered {
            status: fault.status(),
            tls: at.tls,
            h2: false,
        };
        hub.web.record_total(waited, bytes_out, bytes_in, answered);
        hub.errors.record(|| ErrorEntry {
            when_ms: crate::timing::clock::unix_ms(),
            pool: None,
            status: fault.status(),
            cause: fault.reason().into(),
            method: method
                .and_then(|m| http::Method::from_bytes(m).ok())
                .unwrap_or_else(|| http::Method::from_bytes(b"-").unwrap_or_default()),
            uri: target_of(line),
            target: None,
        });
        let web_log = &self.parts.web_log;
        if web_log.is_on() || hub.recent.is_on() {
            let req = WebRequest {
                when: crate::timing::clock::unix_ms(),
                method: method
                    .and_then(|m| http::Method::from_bytes(m).ok())
                    .unwrap_or_else(|| http::Method::from_bytes(b"-").unwrap_or_default()),
                tls: at.tls,
                port: at.port,
                status: fault.status(),
                uri: target_of(line),
                host: None,
                ip: at.peer.map(|p| p.ip()),
                peer: at.peer.map(|p| p.ip()),
                forwarded: Vec::new(),
                ua: None,
                total: waited,
                bytes_in,
                bytes_out,
            };
            web_log.record(&req);
            hub.recent.record(&req);
        }
    }
}

/// Pingora's session for the next request on `stream`, whose checked `head` is already read.
/// A plain function, not inline in `serve_http1`: a session borrowed there would keep its
/// 680 bytes in every idle connection's state.
fn session_for(
    stream: Stream,
    head: BytesMut,
    persistent: Option<HttpPersistentSettings>,
    shutdown: &ShutdownWatch,
    timeouts: &ClientTimeouts,
) -> ServerSession {
    let mut session = ServerSession::new_http1(stream);
    match persistent {
        Some(settings) => settings.apply_to_session(&mut session),
        None => {
            // What Pingora does for a new connection; the proxy applies poolgate's keep-alive
            // policy to each request.
            let keep = (!*shutdown.borrow()).then_some(60);
            session.set_keepalive(keep);
            // The last of `http_max_requests_per_connection` is answered with
            // `Connection: close` (Pingora counts the reuses after the first).
            let max = timeouts.max_requests_per_connection;
            session.set_keepalive_reuses_remaining((max > 0).then(|| max - 1));
        }
    }
    session.set_pipelined_prefix(head);
    session
}

/// The target of a request line, when it reads as a URI (else `*`).
fn target_of(line: &[u8]) -> http::Uri {
    let mut parts = line.split(|&b| b == b' ');
    parts
        .nth(1)
        .and_then(|t| http::Uri::try_from(t).ok())
        .unwrap_or_else(|| http::Uri::from_static("*"))
}

impl<A: HttpServerApp + Send + Sync + 'static> FrontDoor<A> {
    /// A slot for a new connection under `http_max_connections` (see `connection_limit.rs`).
    pub(super) fn admit(&self) -> Option<OpenSlot> {
        self.parts.limit.admit()
    }

    /// Serve a client connection, every request on it, until it closes; `_slot` (from
    /// `admit`) spans its whole life, every request on it included.
    pub(super) async fn serve(
        self: &Arc<Self>,
        mut stream: Stream,
        _slot: OpenSlot,
        shutdown: &ShutdownWatch,
    ) {
        let digest = stream.get_socket_digest();
        let addr = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
            a.and_then(|a| a.as_inet()).copied()
        };
        let peer = digest.as_ref().and_then(|d| addr(d.peer_addr()));
        let port = digest
            .as_ref()
            .and_then(|d| addr(d.local_addr()))
            .map_or(0, |a| a.port());
        let _socket = peer.map(|peer| self.parts.sockets.open(peer, port));
        let at = Addresses {
            peer,
            port,
            tls: stream.get_ssl_digest().is_some(),
        };
        let timeouts = &self.parts.front.timeouts;
        let prelim = timeouts.prelim.map(|p| Instant::now() + p);
        let wait = match (timeouts.first_request(at.tls), timeouts.prelim) {
            (Some(idle), Some(prelim)) => Some(idle.min(prelim)),
            (idle, prelim) => idle.or(prelim),
        };
        let Some(protocol) = self.protocol(&mut stream, wait).await else {
            return;
        };
        match protocol {
            Protocol::Http1 => self.serve_http1(stream, shutdown, at, prelim).await,
            Protocol::Other => {
                let mut next = ServerApp::process_new(&self.inner, stream, shutdown).await;
                while let Some(stream) = next {
                    next = ServerApp::process_new(&self.inner, stream, shutdown).await;
                }
            }
        }
    }

    /// Pingora closes idle keep-alive connections as soon as a shutdown (or a reload's hand-over)
    /// begins; a client that sent its next request at that moment would see the connection
    /// drop. So for up to `drain`, every connection is left to serve its next request, which
    /// is answered with `Connection: close`; only the ones still idle after that are closed.
    pub(super) async fn cleanup(&self) {
        let deadline = std::time::Instant::now() + self.parts.drain;
        while self.parts.limit.open() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.closing.send_replace(true);
        ServerApp::cleanup(&*self.inner).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logged_target_is_the_request_lines_uri() {
        assert_eq!(target_of(b"GET /a?b HTTP/1.1"), "/a?b");
        assert_eq!(target_of(b"GET /a b HTTP/1.1"), "/a");
        assert_eq!(target_of(b"\x16\x03"), "*");
    }
}
