//! Admissions to one pool's shared limits sent to Redis together (cluster mode,
//! `cluster_limits`). A request that finds no admission of its pool on its way goes at once,
//! in a batch of one; the requests that arrive while one is on its way wait for the next
//! batch, which goes out as soon as the first is answered. Under load one script call (one
//! round trip, one command to encode and to parse, one script run on Redis) then decides
//! many, each exactly as if it came alone (see `cluster::scripts`, `ADMIT`). No request waits
//! longer than `cluster.timeout_ms` for its decision; one that does is decided by
//! `cluster.on_redis_error`, as when the round trip itself times out.
//!
//! Each call also refills the instance's reserve (`reserve.rs`) when it runs low, and a
//! request served from the reserve that finds it low sends a call with no admission of its
//! own (`refill`), off its path: one such call at a time.

use super::reserve::{RateTokens, ReserveSizes};
use super::LimitSettings;
use crate::cluster::{Cluster, ClusterFault, SlotRegistry, RELEASES_PER_ADMISSION};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
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
    /// The rate tokens this instance holds (its spare slots are in `registry`).
    tokens: Arc<RateTokens>,
    /// A call asking for a refill of the reserve is on its way.
    refilling: AtomicBool,
}

/// What one call asks for the reserve.
#[derive(Debug, Default)]
struct Refill {
    /// Spare slots wanted, numbered `first..first + slots` (held while asked for).
    slots: usize,
    first: u64,
    tokens: u64,
    asked: Option<Instant>,
}

impl AdmissionBatcher {
    pub(super) fn new(
        cluster: Arc<Cluster>,
        registry: Arc<SlotRegistry>,
        rate_key: String,
        settings: LimitSettings,
        tokens: Arc<RateTokens>,
    ) -> Arc<Self> {
        Arc::new(AdmissionBatcher {
            cluster,
            registry,
            rate_key,
            settings,
            queue: Mutex::new(Queue::default()),
            tokens,
            refilling: AtomicBool::new(false),
        })
    }

    /// Refill the reserve from a task of its own (a request served from it found it low),
    /// unless a call that refills it is on its way.
    pub(super) fn refill(self: &Arc<Self>) {
        if self.refilling.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let batcher = self.clone();
        runtime.spawn(async move {
            let Ok(mut connection) = batcher.cluster.connection() else {
                return;
            };
            let refill = batcher.refill_wanted();
            if refill.asked.is_none() {
                return;
            }
            let answer = batcher.invoke(&[], &refill, &mut connection).await;
            batcher.refilled(&refill, answer.as_ref().ok().map(Vec::as_slice));
        });
    }

    /// What this call asks for the reserve: nothing when it is full enough, or while another
    /// call is refilling it.
    fn refill_wanted(&self) -> Refill {
        let sizes = ReserveSizes::for_pool(&self.settings, self.cluster.live_instances());
        self.registry.set_spare_cap(sizes.slots);
        if !sizes.serves(&self.settings) {
            return Refill::default();
        }
        let slots = self.registry.spares_wanted();
        let tokens = match self.tokens.wanted(sizes.tokens) {
            true => sizes.tokens,
            false => 0,
        };
        if (slots == 0 && tokens == 0)
            || self
                .refilling
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return Refill::default();
        }
        let first = self.cluster.next_seqs(slots);
        for seq in first..first + slots as u64 {
            // Held before they are asked for, as an admission's slot is.
            self.registry.hold(seq);
        }
        Refill {
            slots,
            first,
            tokens,
            asked: Some(Instant::now()),
        }
    }

    /// The reserve's part of an answer (`granted`: slots, tokens, ms left of the second,
    /// pool more than half full), or `None` when the call failed.
    fn refilled(&self, refill: &Refill, granted: Option<&[i64]>) {
        let Some(asked) = refill.asked else {
            if let Some([_, _, _, 1]) = granted {
                self.registry.shed_spares(Duration::ZERO);
            }
            return;
        };
        let offered = refill.first..refill.first + refill.slots as u64;
        match granted {
            Some(&[slots, tokens, ms_left, full]) => {
                let slots = u64::try_from(slots).unwrap_or(0).min(refill.slots as u64);
                let split = refill.first + slots;
                // Not granted: never added to the set.
                for seq in split..offered.end {
                    self.registry.release(seq);
                }
                self.registry.add_spares(refill.first..split);
                self.tokens.add(
                    u64::try_from(tokens).unwrap_or(0).min(refill.tokens),
                    u64::try_from(ms_left).unwrap_or(0),
                    asked,
                );
                if full == 1 {
                    self.registry.shed_spares(Duration::ZERO);
                }
            }
            _ => {
                // The script may still run once Redis answers: take the slots back then.
                for seq in offered {
                    self.registry.release(seq);
                    self.registry.defer_release(seq);
                }
            }
        }
        self.refilling.store(false, Ordering::Release);
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

    /// One script call deciding `batch` (and refilling the reserve when it is low): the
    /// admissions' verdicts, 3 numbers each.
    async fn call(&self, batch: &[Waiting]) -> Result<Vec<i64>, ClusterFault> {
        let mut connection = self.cluster.connection()?;
        let refill = self.refill_wanted();
        let answer = self.invoke(batch, &refill, &mut connection).await;
        let n = batch.len() * 3;
        self.refilled(&refill, answer.as_ref().ok().and_then(|a| a.get(n..n + 4)));
        answer
    }

    async fn invoke(
        &self,
        batch: &[Waiting],
        refill: &Refill,
        connection: &mut redis::aio::ConnectionManager,
    ) -> Result<Vec<i64>, ClusterFault> {
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
        call.arg(refill.slots).arg(refill.first).arg(refill.tokens);
        self.cluster
            .bounded("admission", call.invoke_async::<Vec<i64>>(connection))
            .await
    }
}
