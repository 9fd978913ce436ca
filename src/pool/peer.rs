//! The Pingora peer of one attempt: the chosen target's address with the pool's timeouts
//! (`http_timeout_ms`), TLS checks (`validate_ssl_certs`), connection-pool group and HTTP
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
    /// `http_timeout_ms`: connect and time to first byte (also each later read gap).
    pub(crate) ttfb_timeout: Option<Duration>,
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
        ttfb_timeout: Option<Duration>,
        verify_tls: bool,
        http2: bool,
    ) -> Self {
        let mut h = DefaultHasher::new();
        pool_id.hash(&mut h);
        PeerSettings {
            ttfb_timeout,
            verify_tls,
            group_key: h.finish(),
            http2,
        }
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
        o.read_timeout = self.connect.ttfb_timeout;
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
