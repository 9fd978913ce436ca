//! A client connection's socket as Pingora sees it: the accepted TCP stream, with a write
//! buffer that exists only while an answer is being written.
//!
//! Pingora's own streams keep a 1 460-byte write buffer (one TCP segment) for the life of the
//! connection, so the head and a small body of an answer leave in one `write`. An edge proxy
//! holds tens of thousands of idle keep-alive clients, and a buffer each is most of what an
//! idle client costs; so here the buffer is lent from a per-thread spare on the first write
//! and handed back when it is flushed: the same coalescing while busy, nothing held while idle.
//! What is still gathered when the socket is dropped (an answer cut short by a failing back
//! end, which Pingora leaves unflushed) is written if the socket takes it at once.

use async_trait::async_trait;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes gathered before they are written: one TCP segment, as Pingora's default.
const WRITE_BUFFER: usize = 1460;

thread_local! {
    /// The write buffer the next busy connection of this thread takes.
    static SPARE_WRITE_BUFFER: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
}

/// An accepted client socket (see the module doc).
#[derive(Debug)]
pub(super) struct ClientSocket {
    inner: TcpStream,
    /// What is gathered and not yet written; no allocation while empty.
    out: Vec<u8>,
    /// How much of `out` has been written already.
    written: usize,
}

impl ClientSocket {
    pub(super) fn new(inner: TcpStream) -> Self {
        ClientSocket {
            inner,
            out: Vec::new(),
            written: 0,
        }
    }

    /// The client's address, when the socket has one.
    pub(super) fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner
            .get_socket_digest()
            .and_then(|d| d.peer_addr().cloned())
    }

    /// Write out what is gathered, then hand the buffer back to the thread's spare.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        if self.out.capacity() > 0 {
            let mut spare = std::mem::take(&mut self.out);
            spare.clear();
            SPARE_WRITE_BUFFER.set(Some(spare));
        }
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl Drop for ClientSocket {
    fn drop(&mut self) {
        if self.written < self.out.len() {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let _ = self.poll_write_out(&mut cx);
        }
    }
}

impl AsyncRead for ClientSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.out.len() + buf.len() > WRITE_BUFFER {
            ready!(this.poll_write_out(cx))?;
        }
        if buf.len() >= WRITE_BUFFER {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        if this.out.capacity() == 0 {
            this.out = SPARE_WRITE_BUFFER
                .take()
                .unwrap_or_else(|| Vec::with_capacity(WRITE_BUFFER));
        }
        this.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for ClientSocket {
    async fn shutdown(&mut self) {
        if let Err(e) = tokio::io::AsyncWriteExt::shutdown(self).await {
            log::debug!("closing a client socket: {e}");
        }
    }
}

impl UniqueID for ClientSocket {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for ClientSocket {}

impl GetTimingDigest for ClientSocket {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for ClientSocket {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for ClientSocket {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for ClientSocket {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
