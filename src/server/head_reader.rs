//! Reading one HTTP/1 request head off a client socket, within its bounds: the idle wait for
//! its first byte (`WebServer.http_timeout` or `https_timeout` on a new connection,
//! `http_keep_alive_timeout` between keep-alive requests, and `http_socket_prelim_timeout`
//! for a new connection's whole first head), then
//! `http_header_timeout` from that byte to the head's end, whatever the pace of the bytes in
//! between (a client dripping one byte a second is cut off when the deadline passes), and the
//! size limits checked as bytes arrive. The complete head is checked strictly before Pingora
//! is given it.

use crate::front_end::request_head::{inspect, CheckedHead, HeadScan, Progress};
use crate::front_end::{HeadFault, HeadLimits};
use bytes::BytesMut;
use pingora::protocols::Stream;
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// Bytes read at once at first: a whole ordinary head.
const FIRST_READ: usize = 4096;

thread_local! {
    /// The buffer the next head's first read goes into, lent to each waiting connection only
    /// for the moment it polls its socket: thousands of idle keep-alive clients then hold no
    /// read buffer at all, and a head that arrives takes this one (the next is made then).
    static SPARE_HEAD_BUFFER: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// Read what the socket has into `buf`. While `buf` is empty, it is filled from the lent
/// spare buffer (see `SPARE_HEAD_BUFFER`), so a connection waiting for its next request keeps
/// no buffer between polls; a read that finds nothing hands the spare back untouched.
async fn read_into(stream: &mut Stream, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() > 0 {
        return stream.read_buf(buf).await;
    }
    std::future::poll_fn(|cx| {
        let mut spare = SPARE_HEAD_BUFFER
            .take()
            .unwrap_or_else(|| BytesMut::with_capacity(FIRST_READ));
        let polled = std::pin::pin!(stream.read_buf(&mut spare)).poll(cx);
        match polled {
            Poll::Pending => {
                SPARE_HEAD_BUFFER.set(Some(spare));
                Poll::Pending
            }
            Poll::Ready(read) => {
                *buf = spare;
                Poll::Ready(read)
            }
        }
    })
    .await
}

/// What came of waiting for a head.
pub(super) enum HeadRead {
    /// A complete, checked head (and whatever followed it), for Pingora to parse.
    Ready(BytesMut),
    /// The client closed, stayed idle past its timeout, or the server is closing: nothing to
    /// answer.
    Closed,
    /// A head poolgate refuses; `received` is what arrived of it, `since` its first byte.
    Refused {
        fault: HeadFault,
        received: BytesMut,
        since: Instant,
    },
}

/// Read the next request head from `stream`. `idle`: how long to wait for its first byte
/// (`None` = no limit); `by`: when the whole head must have arrived or the connection is
/// closed without an answer (`http_socket_prelim_timeout`); `closing` turns true when the
/// server stops serving idle connections.
pub(super) async fn read_head(
    stream: &mut Stream,
    limits: &HeadLimits,
    idle: Option<Duration>,
    by: Option<Instant>,
    closing: &mut watch::Receiver<bool>,
) -> HeadRead {
    let mut buf = BytesMut::new();
    let mut scan = HeadScan::default();
    // The first byte's arrival and the head's deadline.
    let mut since: Option<(Instant, Option<Instant>)> = None;
    loop {
        if buf.capacity() > 0 && buf.capacity() - buf.len() < 1024 {
            buf.reserve(buf.len().max(FIRST_READ));
        }
        let until = match since {
            Some((_, Some(deadline))) => Some(deadline),
            _ => idle.map(|i| Instant::now() + i),
        };
        // The preliminary deadline closes silently, whatever else is waited for.
        let (until, silent) = match (until, by) {
            (Some(u), Some(b)) if b <= u => (Some(b), true),
            (None, Some(b)) => (Some(b), true),
            (u, _) => (u, false),
        };
        let read = async {
            match until {
                Some(at) => tokio::time::timeout_at(at, read_into(stream, &mut buf)).await,
                None => Ok(read_into(stream, &mut buf).await),
            }
        };
        let outcome = tokio::select! {
            biased;
            r = read => r,
            _ = closing.wait_for(|c| *c) => return HeadRead::Closed,
        };
        match (outcome, since) {
            (Err(_), _) if silent => return HeadRead::Closed,
            (Err(_), Some((first, _))) => {
                return HeadRead::Refused {
                    fault: HeadFault::HeadTimeout,
                    received: buf,
                    since: first,
                }
            }
            (Err(_), None) | (Ok(Ok(0)), _) | (Ok(Err(_)), _) => return HeadRead::Closed,
            (Ok(Ok(_)), _) => {}
        }
        let (first, _) = *since.get_or_insert_with(|| {
            let now = Instant::now();
            (now, limits.deadline.map(|d| now + d))
        });
        let refused = |fault, received| HeadRead::Refused {
            fault,
            received,
            since: first,
        };
        match scan.advance(&buf, limits) {
            Progress::More => {}
            Progress::Fault(fault) => return refused(fault, buf),
            Progress::Complete { len } => {
                return match inspect(&buf[..len], limits) {
                    Ok(CheckedHead { rewritten: None }) => HeadRead::Ready(buf),
                    Ok(CheckedHead {
                        rewritten: Some(head),
                    }) => {
                        let mut out = BytesMut::with_capacity(head.len() + buf.len() - len);
                        out.extend_from_slice(&head);
                        out.extend_from_slice(&buf[len..]);
                        HeadRead::Ready(out)
                    }
                    Err(fault) => refused(fault, buf),
                };
            }
        }
    }
}

/// How long a refused client has to take its answer, and to finish sending what it was
/// sending, before the connection is dropped.
const LINGER: Duration = Duration::from_secs(2);
/// The most bytes read and thrown away while lingering.
const LINGER_BYTES: usize = 1024 * 1024;

/// Write `answer`, end the writing side and, for a short bounded time, read and drop what the
/// client still sends: closing a socket with unread bytes resets it, and the client would
/// then lose the answer it has not read yet.
pub(super) async fn answer_and_close(stream: &mut Stream, answer: &[u8]) {
    let deadline = Instant::now() + LINGER;
    let written = tokio::time::timeout_at(deadline, async {
        stream.write_all(answer).await?;
        stream.flush().await?;
        AsyncWriteExt::shutdown(stream).await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut dropped = 0;
    while dropped < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => dropped += n,
            _ => return,
        }
    }
}
