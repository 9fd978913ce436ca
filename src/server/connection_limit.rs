//! `WebServer.http_max_connections`: a hard cap on open client connections. The connection
//! beyond the cap is closed at once (before any byte is read) and counted.
//!
//! Pingora has no connection limit, so the proxy application is wrapped: the wrapper holds one
//! slot for the whole life of a connection, across all its keep-alive requests.

use crate::stats::{ConnectionGauge, SocketTable};
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub(super) struct ConnectionLimit {
    max: usize,
    open: AtomicUsize,
    refused: AtomicU64,
    /// The Unix second of the last "refused" log line, so a flood logs once a second.
    last_logged: AtomicU64,
}

impl ConnectionLimit {
    /// `max` 0 = no limit (connections are still counted, for the stats).
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(ConnectionLimit {
            max,
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            last_logged: AtomicU64::new(0),
        })
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn try_open(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (self.max == 0 || n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn note_refused(&self) {
        let total = self.refused.fetch_add(1, Ordering::AcqRel) + 1;
        let now = u64::from(crate::timing::clock::now_sec());
        if self.last_logged.swap(now, Ordering::AcqRel) != now {
            log::warn!(
                "http_max_connections ({}) reached: closed a new client connection ({total} since start)",
                self.max
            );
        }
    }
}

impl ConnectionGauge for ConnectionLimit {
    fn open(&self) -> usize {
        ConnectionLimit::open(self)
    }
}

/// One open connection; dropping it (however the connection ends) frees the slot.
struct OpenSlot(Arc<ConnectionLimit>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A server application with a connection cap in front of it.
pub(super) struct LimitedApp<A> {
    inner: Arc<A>,
    limit: Arc<ConnectionLimit>,
    /// Open connections, for the stats API's `web.sockets`.
    sockets: Arc<SocketTable>,
    /// How long a shutdown lets keep-alive connections end by themselves (see `cleanup`).
    drain: Duration,
}

impl<A> LimitedApp<A> {
    pub(super) fn new(
        inner: A,
        limit: Arc<ConnectionLimit>,
        sockets: Arc<SocketTable>,
        drain: Duration,
    ) -> Self {
        LimitedApp {
            inner: Arc::new(inner),
            limit,
            sockets,
            drain,
        }
    }
}

/// The longest a shutdown waits for keep-alive connections to end by themselves.
pub(super) const KEEPALIVE_DRAIN: Duration = Duration::from_secs(2);

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for LimitedApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if !self.limit.try_open() {
            self.limit.note_refused();
            drop(stream);
            return None;
        }
        let _slot = OpenSlot(self.limit.clone());
        let digest = stream.get_socket_digest();
        let addr = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
            a.and_then(|a| a.as_inet()).copied()
        };
        let peer = digest.as_ref().and_then(|d| addr(d.peer_addr()));
        let port = digest
            .as_ref()
            .and_then(|d| addr(d.local_addr()))
            .map_or(0, |a| a.port());
        let _socket = peer.map(|peer| self.sockets.open(peer, port));
        // Serve every request of the connection here, so the slot spans its whole life.
        let mut next = self.inner.process_new(stream, shutdown).await;
        while let Some(stream) = next {
            next = self.inner.process_new(stream, shutdown).await;
        }
        None
    }

    /// Pingora closes idle keep-alive connections as soon as a shutdown (or a reload's hand-over)
    /// begins; a client that sent its next request at that moment would see the connection
    /// drop. So for up to `drain`, every connection is left to serve its next request, which
    /// is answered with `Connection: close`; only the ones still idle after that are closed.
    async fn cleanup(&self) {
        let deadline = std::time::Instant::now() + self.drain;
        while self.limit.open() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner.cleanup().await;
    }
}
