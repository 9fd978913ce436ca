//! The Pingora peer of one attempt: the chosen target's address with the pool's timeouts
//! (`http_timeout_ms`, `http_body_timeout_ms`), TLS checks (`validate_ssl_certs`), connection-pool group and HTTP
//! version (`target_http2`).

use super::{Chosen, Pool};
use pingora::upstreams::peer::HttpPeer;
use pingora::{ErrorType, OkOrErr, Result};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

/// How long an idle pooled back-end connection is kept: until the back end closes it (Pingora
/// watches every idle connection and drops it at once) or the keep-alive pool
/// (`upstream_keepalive_pool_size`, 128) needs its place, as PixlProxy's Node.js agent does.
/// A timeout here would cost every request a timer.
pub(crate) const BACKEND_IDLE_TIMEOUT: Option<Duration> = None;

/// Requests one HTTP/2 back-end connection carries at once (`target_http2`).
const H2_STREAMS_PER_CONNECTION: usize = 100;

/// How poolgate connects to a pool's back ends.
#[derive(Debug, Clone)]
pub(crate) struct PeerSettings {
    /// `http_timeout_ms`: connect, request writes, and time to the response header.
    pub(crate) ttfb_timeout: Option<Duration>,
    /// `http_body_timeout_ms`: the longest gap between reads of the response once its header
    /// arrived (and the longest wait for the header when `http_timeout_ms` is none or longer).
    pub(crate) body_timeout: Option<Duration>,
    /// `validate_ssl_certs`: verify the back end's certificate and hostname.
    pub(crate) verify_tls: bool,
    /// Keeps each pool's pooled connections apart even when pools share a back end.
    pub(crate) group_key: u64,
    /// `target_http2`: HTTP/2 to the back end (ALPN over TLS, prior knowledge in clear).
    pub(crate) http2: bool,
}

impl PeerSettings {
    pub(crate) fn new(
        pool_id: &str,
        (ttfb_timeout, body_timeout): (Option<Duration>, Option<Duration>),
        verify_tls: bool,
        http2: bool,
    ) -> Self {
        let mut h = DefaultHasher::new();
        pool_id.hash(&mut h);
        PeerSettings {
            ttfb_timeout,
            body_timeout,
            verify_tls,
            group_key: h.finish(),
            http2,
        }
    }

    /// Each read's timeout while the response header is awaited: the shorter of the two.
    pub(crate) fn header_read_timeout(&self) -> Option<Duration> {
        shorter(self.ttfb_timeout, self.body_timeout)
    }

    /// Whether the streaming path keeps this pool's back-end deadlines itself
    /// (`upstream::ResponseWatch`: the first byte apart from the body's gaps, and no Pingora
    /// timer per read) instead of giving Pingora a read timeout: HTTP/1 back ends with either
    /// limit. HTTP/2 back ends carry many requests on one connection, which the watch cannot
    /// cut for one: there each read waits the shorter of the two timeouts instead.
    pub(crate) fn watches_responses(&self) -> bool {
        !self.http2 && (self.ttfb_timeout.is_some() || self.body_timeout.is_some())
    }

    /// The setting the wait for the header (`header_read_timeout`) comes from.
    pub(crate) fn header_limit_key(&self) -> &'static str {
        match (self.ttfb_timeout, self.body_timeout) {
            (Some(ttfb), Some(body)) if body < ttfb => "http_body_timeout_ms",
            (None, Some(_)) => "http_body_timeout_ms",
            _ => "http_timeout_ms",
        }
    }

    /// Pingora's per-read timeout on the streaming path: none where poolgate watches.
    fn streaming_read_timeout(&self) -> Option<Duration> {
        match self.http2 {
            true => self.header_read_timeout(),
            false => None,
        }
    }
}

/// The shorter of two timeouts, `None` being no limit.
fn shorter(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Pool {
    /// The Pingora peer for a chosen target. A request without a body (`sends_body` false)
    /// gets no write timeout: its header goes into the socket buffer at once, and waiting for
    /// the answer is bounded by the read timeout; this spares such requests a timer. A body
    /// keeps it, since Pingora stops reading the answer while a body write is stuck.
    pub(crate) fn peer(&self, chosen: &Chosen, sends_body: bool) -> Result<Box<HttpPeer>> {
        let target = self
            .target(chosen)
            .or_err_with(ErrorType::InternalError, || "chosen target does not exist")?;
        let mut peer = self.peer_at(
            chosen.addr,
            target.tls,
            &target.hostname,
            self.connect.group_key,
        );
        if !sends_body {
            peer.options.write_timeout = None;
        }
        Ok(peer)
    }

    /// A peer with the pool's timeouts and TLS checks at any address (redirect hops to other
    /// hosts use their own `group_key`, see `redirect_group`).
    pub(crate) fn peer_at(
        &self,
        addr: SocketAddr,
        tls: bool,
        host: &str,
        group_key: u64,
    ) -> Box<HttpPeer> {
        let sni = if tls { host.to_string() } else { String::new() };
        let mut peer = HttpPeer::new(addr, tls, sni);
        peer.group_key = group_key;
        let o = &mut peer.options;
        o.connection_timeout = self.connect.ttfb_timeout;
        o.total_connection_timeout = self.connect.ttfb_timeout;
        // HTTP/2 only: over HTTP/1 both deadlines are poolgate's (see
        // `PeerSettings::watches_responses`). poolgate's own client sets its timeouts itself.
        o.read_timeout = self.connect.streaming_read_timeout();
        o.write_timeout = self.connect.ttfb_timeout;
        o.verify_cert = self.connect.verify_tls;
        o.verify_hostname = self.connect.verify_tls;
        // With `use_keep_alives: false` the request carries `Connection: close` (see
        // headers.rs), so Pingora never returns that connection to its pool.
        o.idle_timeout = BACKEND_IDLE_TIMEOUT;
        if self.connect.http2 {
            // Over TLS the back end may still pick HTTP/1.1; in clear there is no negotiation.
            let min = if tls { 1 } else { 2 };
            o.set_http_version(2, min);
            o.max_h2_streams = H2_STREAMS_PER_CONNECTION;
        }
        Box::new(peer)
    }

    /// The connection-pool group of a host a redirect named: apart from the pool's own.
    pub(crate) fn redirect_group(&self, host: &str, port: u16) -> u64 {
        let mut h = DefaultHasher::new();
        (self.connect.group_key, host, port).hash(&mut h);
        h.finish()
    }
}

/// Bound the back-end timeouts of `peer` by what is left of `http_request_timeout`, so a slow
/// back end fails in time for the client to get its 408.
pub(crate) fn bound_by_time_left(peer: &mut HttpPeer, left: Duration) {
    let left = left.max(Duration::from_millis(1));
    let o = &mut peer.options;
    for t in [
        &mut o.connection_timeout,
        &mut o.total_connection_timeout,
        &mut o.read_timeout,
        &mut o.write_timeout,
    ] {
        *t = Some(t.map_or(left, |t| t.min(left)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ttfb: Option<u64>, body: Option<u64>, http2: bool) -> PeerSettings {
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        PeerSettings::new("p", (ms(ttfb), ms(body)), true, http2)
    }

    #[test]
    fn the_streaming_path_to_http1_watches_both_deadlines_itself() {
        let s = settings(Some(1000), Some(300_000), false);
        assert_eq!(s.streaming_read_timeout(), None);
        assert!(s.watches_responses());
        assert_eq!(s.header_read_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(s.header_limit_key(), "http_timeout_ms");
        let no_body_limit = settings(Some(1000), None, false);
        assert!(no_body_limit.watches_responses());
        assert!(!settings(None, None, false).watches_responses());
    }

    #[test]
    fn a_first_byte_limit_over_the_body_limit_waits_the_body_limit() {
        let s = settings(Some(600_000), Some(300_000), false);
        assert_eq!(s.header_read_timeout(), Some(Duration::from_secs(300)));
        assert_eq!(s.header_limit_key(), "http_body_timeout_ms");
        let none = settings(None, Some(300_000), false);
        assert_eq!(none.header_read_timeout(), Some(Duration::from_secs(300)));
        assert_eq!(none.header_limit_key(), "http_body_timeout_ms");
        assert_eq!(settings(None, None, false).header_read_timeout(), None);
    }

    #[test]
    fn http2_back_ends_read_with_the_shorter_timeout() {
        let s = settings(Some(1000), Some(300_000), true);
        assert!(!s.watches_responses());
        assert_eq!(s.streaming_read_timeout(), Some(Duration::from_secs(1)));
    }
}
