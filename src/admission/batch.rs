//! Admissions to one pool's shared limits sent to Redis together (cluster mode,
//! `cluster_limits`). A request that finds no admission of its pool on its way goes at once,
//! in a batch of one; the requests that arrive while one is on its way wait for the next
//! batch, which goes out as soon as the first is answered. Under load one script call (one
//! round trip, one command to encode and to parse, one script run on Redis) then decides
//! many, each exactly as if it came alone (see `cluster::scripts`, `ADMIT`). No request waits
//! longer than `cluster.timeout_ms` for its decision; one that does is decided by
//! `cluster.on_redis_error`, as when the round trip itself times out.

use super::LimitSettings;
use crate::cluster::{Cluster, ClusterFault, SlotRegistry, RELEASES_PER_ADMISSION};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// The most admissions one script call decides.
const MAX_BATCH: usize = 64;

/// One admission to decide.
#[derive(Debug)]
pub(super) struct AdmissionRequest {
    /// The concurrency slot's sequence number (its member is `<instance>:<seq>`); `None` when
    /// the request takes no slot.
    pub(super) slot: Option<u64>,
    /// The base of the client's counters; empty when no client limit applies.
    pub(super) client_key: String,
    /// Whether the pool-wide limits apply (not for the queue's intake).
    pub(super) pool_wide: bool,
}

/// The script's answer for one admission: `[1, 0, 0]` admitted, else `[0, kind, retry_after]`.
pub(super) type Verdict = Result<[i64; 3], ClusterFault>;

type Waiting = (AdmissionRequest, oneshot::Sender<Verdict>);

#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// A batch is on its way (its sender sends the next one when it is answered).
    in_flight: bool,
}

/// One pool's admissions on their way to Redis.
#[derive(Debug)]
pub(super) struct AdmissionBatcher {
    cluster: Arc<Cluster>,
    registry: Arc<SlotRegistry>,
    /// `{prefix}:pool:<id>:rps`: the base of the pool's per-second counters.
    rate_key: String,
    settings: LimitSettings,
    queue: Mutex<Queue>,
}

impl AdmissionBatcher {
    pub(super) fn new(
        cluster: Arc<Cluster>,
        registry: Arc<SlotRegistry>,
        rate_key: String,
        settings: LimitSettings,
    ) -> Arc<Self> {
        Arc::new(AdmissionBatcher {
            cluster,
            registry,
            rate_key,
            settings,
            queue: Mutex::new(Queue::default()),
        })
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Held only to push or take: a panic cannot leave the queue half changed.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decide one admission (with whichever others are waiting).
    pub(super) async fn decide(self: &Arc<Self>, request: AdmissionRequest) -> Verdict {
        let deadline = tokio::time::Instant::now() + self.cluster.settings.timeout;
        let (answer, verdict) = oneshot::channel();
        let leads = {
            let mut queue = self.queue();
            queue.waiting.push((request, answer));
            !std::mem::replace(&mut queue.in_flight, true)
        };
        if leads {
            if let Some(batch) = self.next_batch() {
                self.send(batch).await;
            }
            self.hand_on();
        }
        match tokio::time::timeout_at(deadline, verdict).await {
            Ok(Ok(verdict)) => verdict,
            // Not decided in time (or its batch was dropped): the policy decides.
            _ => Err(ClusterFault::Unreachable),
        }
    }

    /// The waiting admissions, oldest first, at most `MAX_BATCH`; `None` (and nothing in
    /// flight any more) when none wait.
    fn next_batch(&self) -> Option<Vec<Waiting>> {
        let mut queue = self.queue();
        if queue.waiting.is_empty() {
            queue.in_flight = false;
            return None;
        }
        if queue.waiting.len() <= MAX_BATCH {
            return Some(std::mem::take(&mut queue.waiting));
        }
        Some(queue.waiting.drain(..MAX_BATCH).collect())
    }

    /// After a batch: the admissions that arrived meanwhile go out from a task of their own,
    /// so the request that sent the first batch is not kept waiting for theirs.
    fn hand_on(self: &Arc<Self>) {
        let more = {
            let mut queue = self.queue();
            if queue.waiting.is_empty() {
                queue.in_flight = false;
            }
            queue.in_flight
        };
        if !more {
            return;
        }
        let batcher = self.clone();
        let sender = async move {
            while let Some(batch) = batcher.next_batch() {
                batcher.send(batch).await;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(sender);
            }
            // Not on a runtime (never on the request path): the waiting ones are decided by
            // the policy at once (their answers are dropped), and the next admission starts
            // afresh.
            Err(_) => {
                let mut queue = self.queue();
                queue.waiting.clear();
                queue.in_flight = false;
            }
        }
    }

    /// One script call for `batch`; every admission in it gets its verdict.
    async fn send(&self, batch: Vec<Waiting>) {
        let answer = self.call(&batch).await;
        for (i, (_, reply)) in batch.into_iter().enumerate() {
            let verdict = match &answer {
                Ok(numbers) => numbers
                    .get(i * 3..i * 3 + 3)
                    .and_then(|n| <[i64; 3]>::try_from(n).ok())
                    .ok_or_else(|| ClusterFault::Refused("short admission reply".into())),
                Err(fault) => Err(fault.clone()),
            };
            let _ = reply.send(verdict);
        }
    }

    async fn call(&self, batch: &[Waiting]) -> Result<Vec<i64>, ClusterFault> {
        let mut connection = self.cluster.connection()?;
        let s = &self.settings;
        let mut call = self.cluster.scripts.admit.prepare_invoke();
        call.key(&**self.registry.key()).key(&self.rate_key);
        // Client keys only when some request has one (most pools limit no client).
        if batch.iter().any(|(r, _)| !r.client_key.is_empty()) {
            for (request, _) in batch {
                call.key(&request.client_key);
            }
        }
        call.arg(self.cluster.member_prefix())
            .arg(u64::try_from(self.cluster.settings.lease.as_millis()).unwrap_or(u64::MAX))
            .arg(s.max_concurrent)
            .arg(s.max_per_sec)
            .arg(s.per_client_per_sec)
            .arg(s.per_client_per_min)
            .arg(batch.len());
        let released = self.registry.take_released(RELEASES_PER_ADMISSION);
        call.arg(released.len());
        for seq in &released {
            call.arg(*seq);
        }
        // One argument per request: its slot's number, `p` (pool-wide limits, no slot) or
        // `c` (the client's limits only).
        for (request, _) in batch {
            match (request.slot, request.pool_wide) {
                (Some(seq), _) => call.arg(seq),
                (None, true) => call.arg("p"),
                (None, false) => call.arg("c"),
            };
        }
        self.cluster
            .bounded("admission", call.invoke_async::<Vec<i64>>(&mut connection))
            .await
    }
}
