//! The blind queue (PixlProxy "Queue System"): a pool with `use_queue` answers every request at
//! once with a `request_id`, and a Pingora background service sends it to the back end later,
//! within the pool's limits and with its retries.
//!
//! - `intake`: the request path: body read (spooled to a file beyond `queue_spool_bytes`),
//!   stored, the outcome for the proxy to answer.
//! - `store`: where accepted requests are kept (memory, or the durable journal), the one
//!   interface intake and sender use.
//! - `journal`, `adopt`, `record`: the durable form (`queue_dir`): an append-only, checksummed
//!   journal per pool and process, written by its own thread, compacted, and adopted by the
//!   next process.
//! - `sender` / `send`: the background service and one queued send with its retries, made of
//!   the shared upstream attempt (`crate::upstream`).
//! - `shared`: cluster mode's queue, a Redis Stream shared by every instance, with takeover
//!   of the requests an instance that died was holding.
//! - `request_id`: the ids clients get.
//!
//! The waiting requests sit in a per-pool deque behind a mutex held only to push or pop; the
//! counters the stats read are atomics. Uses `upstream`, `pool`, `admission`, `cluster`,
//! `stats`, `event_log`, `front_end` (client facts) and `timing`.

use crate::front_end::ClientFacts;
use crate::stats::QueueGauges;
use bytes::Bytes;
use pingora::http::RequestHeader;
use request_id::RequestId;
use shared::QueueStream;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use store::QueueStore;
use tokio::sync::Notify;

mod adopt;
mod intake;
mod journal;
mod record;
mod request_id;
mod send;
mod sender;
mod shared;
mod store;

pub(crate) use intake::{enqueue, Intake};
pub(crate) use sender::QueueSender;

/// A queue's settings, resolved at start.
#[derive(Debug, Clone)]
pub(crate) struct QueueSettings {
    /// `max_queue_length`; 0 = no limit.
    pub(crate) max_length: usize,
    /// `throttle_requeue_delay_ms`.
    pub(crate) requeue_delay: Duration,
    /// Sends in flight at once: `max_concurrent_requests`, or `DEFAULT_WORKERS` without it.
    pub(crate) workers: usize,
    /// Bodies larger than this go to a spool file.
    pub(crate) spool_bytes: u64,
    /// `WebServer.http_max_upload_size`: larger bodies get 413.
    pub(crate) max_body_bytes: u64,
    /// Where spooled bodies go (`<queue_dir>/spool`, or `http_temp_dir` for memory queues).
    pub(crate) spool_dir: PathBuf,
    /// `queue_fsync`: flush journal and spool files to the disk before answering.
    pub(crate) fsync: bool,
    /// `queue_dir`: the journal's directory; `None` = in memory only.
    pub(crate) journal_dir: Option<PathBuf>,
}

/// Concurrent sends of a queue whose pool has no `max_concurrent_requests`.
pub(crate) const DEFAULT_WORKERS: usize = 64;

/// A queued request body.
#[derive(Debug)]
pub(crate) enum QueuedBody {
    Inline(Bytes),
    /// Spooled to a file, removed once the request is done.
    Spooled {
        path: PathBuf,
        len: u64,
    },
}

impl QueuedBody {
    pub(crate) fn len(&self) -> u64 {
        match self {
            QueuedBody::Inline(b) => b.len() as u64,
            QueuedBody::Spooled { len, .. } => *len,
        }
    }

    fn inline_len(&self) -> usize {
        match self {
            QueuedBody::Inline(b) => b.len(),
            QueuedBody::Spooled { .. } => 0,
        }
    }

    fn spool_file(&self) -> Option<&PathBuf> {
        match self {
            QueuedBody::Spooled { path, .. } => Some(path),
            QueuedBody::Inline(_) => None,
        }
    }
}

/// A request as the client sent it, before the pool's header rules (applied per send, for the
/// target chosen then).
#[derive(Debug)]
pub(crate) struct QueuedRequest {
    pub(crate) id: RequestId,
    /// Unix time in milliseconds when it was accepted.
    pub(crate) enqueued_ms: u64,
    pub(crate) client: ClientFacts,
    pub(crate) header: RequestHeader,
    /// The client's request had body framing (`Content-Length` or chunked).
    pub(crate) framed: bool,
    pub(crate) body: QueuedBody,
}

/// What a queue has done since start (`pending` is PixlProxy's `cur_pending_reqs`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct QueueStats {
    pub(crate) pending: usize,
    pub(crate) in_flight: usize,
    pub(crate) accepted: u64,
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    pub(crate) retries: u64,
    pub(crate) rejected: u64,
    pub(crate) dropped: u64,
    pub(crate) stored_bytes: u64,
}

#[derive(Default)]
struct QueueCounters {
    waiting: AtomicUsize,
    in_flight: AtomicUsize,
    accepted: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
}

/// One pool's queue: the waiting requests and what is known about them.
pub(crate) struct BlindQueue {
    pub(crate) settings: QueueSettings,
    waiting: Mutex<VecDeque<QueuedRequest>>,
    ready: Notify,
    closing: AtomicBool,
    /// The shutdown drain is over (sent, stored or dropped).
    drained: AtomicBool,
    /// Set at construction for memory queues, once the journal is open for durable ones.
    store: OnceLock<QueueStore>,
    /// Cluster mode: the shared stream (the local store then only keeps what spilled while
    /// Redis was unreachable).
    shared: Option<QueueStream>,
    counters: QueueCounters,
}

/// A place in the queue, taken before the body is read; given back when dropped unused.
pub(crate) struct Reservation<'a>(Option<&'a BlindQueue>);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(q) = self.0 {
            q.counters.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl BlindQueue {
    /// The queue of `settings`; shared through `shared`'s cluster by the pool of that id.
    pub(crate) fn new(
        settings: QueueSettings,
        shared: Option<(&Arc<crate::cluster::Cluster>, &str)>,
    ) -> Arc<Self> {
        let store = OnceLock::new();
        if settings.journal_dir.is_none() {
            let _ = store.set(QueueStore::Memory);
        }
        Arc::new(BlindQueue {
            settings,
            waiting: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            closing: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            store,
            shared: shared.map(|(cluster, pool)| QueueStream::new(cluster, pool)),
            counters: QueueCounters::default(),
        })
    }

    /// The shared stream, in cluster mode.
    pub(crate) fn shared(&self) -> Option<&QueueStream> {
        self.shared.as_ref()
    }

    /// A request taken into the shared stream (or spilled for it).
    fn count_accepted(&self) {
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A request found in a journal: queued here, or in cluster mode kept for the stream.
    fn recovered(&self, req: QueuedRequest) {
        match &self.shared {
            Some(stream) => stream.spill(req),
            None => self.push_recovered(req),
        }
    }

    /// A request read from the shared stream, queued for this instance's workers.
    fn push_fetched(&self, req: QueuedRequest) {
        self.push_recovered(req);
    }

    /// Count one request refused because the queue is full.
    fn count_rejected(&self) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
    }

    fn deque(&self) -> MutexGuard<'_, VecDeque<QueuedRequest>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place in the queue, or the number waiting when it is full.
    pub(crate) fn reserve(&self) -> Result<Reservation<'_>, usize> {
        let max = self.settings.max_length;
        self.counters
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .map(|_| Reservation(Some(self)))
            .inspect_err(|_| {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            })
    }

    /// Queue an accepted request in the place reserved for it.
    pub(crate) fn push(&self, mut place: Reservation<'_>, req: QueuedRequest) {
        place.0 = None;
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        self.deque().push_back(req);
        self.ready.notify_one();
    }

    /// Queue a request recovered from a journal (never refused: it was accepted before).
    fn push_recovered(&self, req: QueuedRequest) {
        self.counters.waiting.fetch_add(1, Ordering::AcqRel);
        self.deque().push_back(req);
        self.ready.notify_one();
    }

    /// The next request to send; it counts as in flight until `finished`.
    async fn next(&self) -> QueuedRequest {
        loop {
            let (next, more) = {
                let mut waiting = self.deque();
                let next = waiting.pop_front();
                (next, !waiting.is_empty())
            };
            if let Some(req) = next {
                self.counters.in_flight.fetch_add(1, Ordering::AcqRel);
                self.counters.waiting.fetch_sub(1, Ordering::AcqRel);
                if more {
                    // Pass the wake-up on: one notification may stand for several pushes.
                    self.ready.notify_one();
                }
                return req;
            }
            self.ready.notified().await;
        }
    }

    fn finished(&self, delivered: bool) {
        self.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
        let counter = if delivered {
            &self.counters.sent
        } else {
            &self.counters.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn count_retry(&self) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Take every waiting request out (shutdown of a memory queue); they count as dropped.
    fn drop_waiting(&self) -> Vec<QueuedRequest> {
        let dropped: Vec<_> = self.deque().drain(..).collect();
        self.counters
            .waiting
            .fetch_sub(dropped.len(), Ordering::AcqRel);
        self.counters
            .dropped
            .fetch_add(dropped.len() as u64, Ordering::Relaxed);
        dropped
    }

    /// Stop accepting requests (shutdown): new ones get 503.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Whether the shutdown drain has finished.
    pub(crate) fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Acquire)
    }

    /// Where accepted requests are kept; `None` while a durable queue's journal is not open.
    pub(crate) fn store(&self) -> Option<&QueueStore> {
        self.store.get()
    }

    pub(crate) fn is_durable(&self) -> bool {
        self.settings.journal_dir.is_some()
    }

    pub(crate) fn stats(&self) -> QueueStats {
        let c = &self.counters;
        QueueStats {
            pending: self.pending(),
            in_flight: c.in_flight.load(Ordering::Acquire),
            accepted: c.accepted.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            stored_bytes: self.store().map_or(0, QueueStore::size),
        }
    }
}

impl std::fmt::Debug for BlindQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlindQueue")
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

impl QueueGauges for BlindQueue {
    /// Waiting here; in cluster mode, in the shared queue (when last asked) plus what waits
    /// to be moved into it.
    fn pending(&self) -> usize {
        let here = self.counters.waiting.load(Ordering::Acquire);
        match &self.shared {
            Some(stream) => {
                let shared = usize::try_from(stream.length()).unwrap_or(usize::MAX);
                let in_flight = self.counters.in_flight.load(Ordering::Acquire);
                shared.saturating_sub(in_flight).max(here) + stream.spilled()
            }
            None => here,
        }
    }

    fn in_flight(&self) -> usize {
        self.counters.in_flight.load(Ordering::Acquire)
    }

    fn max_length(&self) -> usize {
        self.settings.max_length
    }
}

/// Every pool's queue, by the pool's place in the config (`Pool::index`); `None` for pools
/// without `use_queue`. The route table maps requests to pools; this maps pools to queues.
#[derive(Default)]
pub(crate) struct QueueTable(Vec<Option<Arc<BlindQueue>>>);

impl QueueTable {
    pub(crate) fn new(queues: Vec<Option<Arc<BlindQueue>>>) -> Self {
        QueueTable(queues)
    }

    /// The queue of the pool at `index`.
    pub(crate) fn of(&self, index: usize) -> Option<&Arc<BlindQueue>> {
        self.0.get(index).and_then(Option::as_ref)
    }

    /// Every queue with its pool's index.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Arc<BlindQueue>)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, q)| Some((i, q.as_ref()?)))
    }
}

/// The header that tells the back end which queued request it is receiving (the client got
/// the same id), so it can recognise a request sent again after a crash.
const REQUEST_ID_HEADER: &str = "X-Proxy-Request-Id";

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_length: usize) -> Arc<BlindQueue> {
        BlindQueue::new(
            QueueSettings {
                max_length,
                requeue_delay: Duration::from_millis(1),
                workers: 1,
                spool_bytes: 10,
                max_body_bytes: 100,
                spool_dir: PathBuf::from("/tmp"),
                fsync: false,
                journal_dir: None,
            },
            None,
        )
    }

    fn request() -> QueuedRequest {
        QueuedRequest {
            id: RequestId::new(),
            enqueued_ms: 0,
            client: ClientFacts::default(),
            header: RequestHeader::build("GET", b"/", None).unwrap(),
            framed: false,
            body: QueuedBody::Inline(Bytes::new()),
        }
    }

    #[test]
    fn places_are_limited_and_given_back_when_unused() {
        let q = queue(2);
        let a = q.reserve().unwrap();
        let _b = q.reserve().unwrap();
        assert_eq!(q.reserve().err(), Some(2), "full: two waiting");
        drop(a);
        let c = q.reserve().unwrap();
        q.push(c, request());
        let s = q.stats();
        assert_eq!((s.pending, s.accepted, s.rejected), (2, 1, 1));
    }

    #[test]
    fn counters_follow_a_request_through_the_queue() {
        let q = queue(0);
        let first = request();
        let id = first.id;
        q.push(q.reserve().unwrap(), first);
        q.push(q.reserve().unwrap(), request());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let next = rt.block_on(q.next());
        assert_eq!(next.id, id, "first in, first out");
        assert_eq!((q.stats().pending, q.stats().in_flight), (1, 1));
        q.finished(true);
        q.count_retry();
        assert_eq!(q.drop_waiting().len(), 1);
        let s = q.stats();
        assert_eq!(
            (s.pending, s.in_flight, s.sent, s.retries, s.dropped),
            (0, 0, 1, 1, 1)
        );
    }
}
