//! The front end's request queue (pixl-server-web's `http_max_concurrent_requests`,
//! `http_max_queue_length`, `http_max_queue_active`, `http_queue_skip_uri_match`): at most
//! `http_max_concurrent_requests` client requests are processed at once; the others wait, and
//! are let in strictly in the order they arrived. A request that would wait while
//! `http_max_queue_length` already do, or that arrives while `http_max_queue_active` are in
//! progress, is refused at once (429). URIs matching `http_queue_skip_uri_match` (health
//! checks) never wait. The stats API's `web.queue` shows `pending` and `running`.
//!
//! Requests in progress are counted whether or not there is a limit (`running`), with one
//! atomic add and one subtract per request.

use regex::Regex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The queue as configured.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestQueueSettings {
    /// `http_max_concurrent_requests`; 0 = no limit and no queue.
    pub(crate) max_running: usize,
    /// `http_max_queue_length`; 0 = no limit.
    pub(crate) max_pending: usize,
    /// `http_max_queue_active`; 0 = off.
    pub(crate) max_active: usize,
    /// `http_queue_skip_uri_match`.
    pub(crate) skip: Option<Regex>,
}

/// The queue at run time, shared by every request.
#[derive(Debug)]
pub(crate) struct RequestQueue {
    settings: RequestQueueSettings,
    /// Free processing slots; `None` without a limit. Tokio's semaphore is fair: waiters are
    /// served in the order they started waiting.
    slots: Option<Arc<Semaphore>>,
    pending: AtomicUsize,
    running: Arc<AtomicUsize>,
}

/// Why a request was refused by the queue (the figures at that moment, for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueFull {
    pub(crate) pending: usize,
    pub(crate) running: usize,
}

impl QueueFull {
    /// pixl-server-web's error message.
    pub(crate) fn message(&self) -> String {
        format!("Queue is maxed out ({} pending reqs)", self.pending)
    }
}

/// A request's place among those in progress: dropping it (however the request ends) lets
/// the next waiting request in.
#[derive(Debug)]
pub(crate) struct RunningRequest {
    running: Arc<AtomicUsize>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Drop for RunningRequest {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts one waiting request for as long as it waits (also when it is given up, e.g. the
/// client went away).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RequestQueue {
    pub(crate) fn new(settings: RequestQueueSettings) -> Self {
        let slots =
            (settings.max_running > 0).then(|| Arc::new(Semaphore::new(settings.max_running)));
        RequestQueue {
            settings,
            slots,
            pending: AtomicUsize::new(0),
            running: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Requests waiting for a slot.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Requests in progress.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// `http_max_concurrent_requests` and `http_max_queue_length` (0 = no limit).
    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.settings.max_running, self.settings.max_pending)
    }

    /// Let a request in: at once, after its turn in the queue, or not at all.
    pub(crate) async fn enter(&self, path_and_query: &str) -> Result<RunningRequest, QueueFull> {
        let Some(slots) = &self.slots else {
            return Ok(self.count_in(None));
        };
        if self
            .settings
            .skip
            .as_ref()
            .is_some_and(|re| re.is_match(path_and_query))
        {
            return Ok(self.count_in(None));
        }
        let full = || QueueFull {
            pending: self.pending(),
            running: self.running(),
        };
        let max_active = self.settings.max_active;
        if max_active > 0 && self.running() >= max_active {
            return Err(full());
        }
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            return Ok(self.count_in(Some(slot)));
        }
        let max_pending = self.settings.max_pending;
        let admitted = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max_pending == 0 || n < max_pending).then_some(n + 1)
            });
        if admitted.is_err() {
            return Err(full());
        }
        let waiting = Waiting(&self.pending);
        // The semaphore is never closed, so this only ends with a slot.
        let slot = slots.clone().acquire_owned().await.ok();
        drop(waiting);
        Ok(self.count_in(slot))
    }

    fn count_in(&self, slot: Option<OwnedSemaphorePermit>) -> RunningRequest {
        self.running.fetch_add(1, Ordering::AcqRel);
        RunningRequest {
            running: self.running.clone(),
            _slot: slot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_running: usize, max_pending: usize, max_active: usize) -> Arc<RequestQueue> {
        Arc::new(RequestQueue::new(RequestQueueSettings {
            max_running,
            max_pending,
            max_active,
            skip: Regex::new("^/health").ok(),
        }))
    }

    #[tokio::test]
    async fn without_a_limit_requests_are_only_counted() {
        let q = queue(0, 0, 0);
        let a = q.enter("/").await;
        let b = q.enter("/").await;
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(q.running(), 2);
        drop(a);
        assert_eq!(q.running(), 1);
    }

    #[tokio::test]
    async fn requests_beyond_the_limit_wait_their_turn_in_arrival_order() {
        let q = queue(1, 0, 0);
        let first = q.enter("/").await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (queue, tx) = (q.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                let slot = queue.enter("/").await;
                let _ = tx.send(i);
                drop(slot);
            }));
            // Each waiter is queued before the next one starts.
            while q.pending() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(q.pending(), 3);
        drop(first);
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(rx.recv().await.unwrap_or(99));
        }
        assert_eq!(order, [0, 1, 2]);
        for t in tasks {
            let _ = t.await;
        }
        assert_eq!((q.pending(), q.running()), (0, 0));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_skipped_uris_never_wait() {
        let q = queue(1, 1, 0);
        let _first = q.enter("/").await;
        let waiter = {
            let queue = q.clone();
            tokio::spawn(async move { queue.enter("/").await.map(|_| ()) })
        };
        while q.pending() < 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            q.enter("/").await.err(),
            Some(QueueFull {
                pending: 1,
                running: 1
            })
        );
        assert!(q.enter("/health").await.is_ok());
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(
            q.pending(),
            0,
            "a request given up stops counting as waiting"
        );
    }

    #[tokio::test]
    async fn max_active_refuses_instead_of_queueing() {
        let q = queue(2, 0, 2);
        let _a = q.enter("/").await;
        let _b = q.enter("/").await;
        assert!(q.enter("/").await.is_err());
        assert_eq!(q.pending(), 0);
    }
}
