//! The concurrency slots this instance holds in a pool's shared set (`max_concurrent_requests`
//! in cluster mode): the heartbeat renews their leases, so a long request keeps its slot, and
//! a slot whose request is over (or whose admission timed out) is no longer renewed and
//! expires even if its release never reaches Redis. Released slots wait here for the next
//! admission to the pool, which takes them out of the set in its own round trip, or for the
//! heartbeat's releaser, whichever comes first: giving a slot back wakes no other thread and
//! costs no round trip of its own.
//!
//! Spare slots: a pool whose limit is large beside the number of live instances lets each
//! instance hold a few slots in the set that no request uses yet (granted with an admission,
//! see `cluster::scripts`, `ADMIT`); a request takes one without a round trip and, when it is
//! over, leaves it spare again. They count against the limit like any held slot, so the
//! back end never sees more than the limit; they go back to Redis after `SPARE_IDLE` unused
//! or as soon as an admission finds the pool more than half full.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Spare slots unused this long go back to Redis (the releaser's tick).
pub(crate) const SPARE_IDLE: Duration = Duration::from_millis(200);

/// Shards of the held set: admissions on different threads rarely meet on one lock.
const SHARDS: usize = 16;

/// One pool's held slots, by sequence number (the member in Redis is `<instance>:<seq>`).
#[derive(Debug)]
pub(crate) struct SlotRegistry {
    /// The pool's concurrency set in Redis.
    key: Arc<str>,
    shards: Vec<Mutex<HashSet<u64>>>,
    /// How many are held (for the fallback's share, which they count against).
    count: AtomicUsize,
    /// Slots given back and not yet taken out of the set in Redis.
    released: Mutex<Vec<u64>>,
    spares: Mutex<Spares>,
}

/// Held slots no request uses now.
#[derive(Debug)]
struct Spares {
    seqs: Vec<u64>,
    /// How many to keep at most (0: none; set by the pool's admission).
    cap: usize,
    /// When one was last taken or kept.
    last_used: Instant,
}

/// The most released members one admission takes out of the set.
pub(crate) const RELEASES_PER_ADMISSION: usize = 64;

impl SlotRegistry {
    pub(crate) fn new(key: String) -> Arc<Self> {
        Arc::new(SlotRegistry {
            key: Arc::from(key),
            shards: (0..SHARDS).map(|_| Mutex::new(HashSet::new())).collect(),
            count: AtomicUsize::new(0),
            released: Mutex::new(Vec::new()),
            spares: Mutex::new(Spares {
                seqs: Vec::new(),
                cap: 0,
                last_used: Instant::now(),
            }),
        })
    }

    fn spares(&self) -> MutexGuard<'_, Spares> {
        self.spares.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shard(&self, seq: u64) -> MutexGuard<'_, HashSet<u64>> {
        // A poisoned shard only means another thread panicked mid-insert; the set is usable.
        self.shards[(seq as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The pool's concurrency set in Redis.
    pub(crate) fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// `seq` is (or may be, while its admission is on its way) held by this instance.
    pub(crate) fn hold(&self, seq: u64) {
        if self.shard(seq).insert(seq) {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `seq` is no longer held.
    pub(crate) fn release(&self, seq: u64) {
        if self.shard(seq).remove(&seq) {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// How many slots this instance holds now.
    pub(crate) fn held_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Slot `seq` is to be taken out of the set in Redis (by the next admission or the
    /// releaser). Bounded: past 65 536 waiting (Redis long unreachable) a slot is dropped,
    /// and its lease, no longer renewed, ends by itself.
    pub(crate) fn defer_release(&self, seq: u64) {
        let mut released = self.released.lock().unwrap_or_else(|p| p.into_inner());
        if released.len() < 65_536 {
            released.push(seq);
        }
    }

    /// Up to `max` released slots, taken to be sent.
    pub(crate) fn take_released(&self, max: usize) -> Vec<u64> {
        let mut released = self.released.lock().unwrap_or_else(|p| p.into_inner());
        if released.len() <= max {
            return std::mem::take(&mut *released);
        }
        let rest = released.len() - max;
        released.split_off(rest)
    }

    /// Keep at most `cap` spare slots from now on (the extra ones go back).
    pub(crate) fn set_spare_cap(&self, cap: usize) {
        let extra = {
            let mut spares = self.spares();
            spares.cap = cap;
            let keep = spares.seqs.len().min(cap);
            spares.seqs.split_off(keep)
        };
        self.give_back_all(extra);
    }

    /// A spare slot for a request, if one is held, and whether the spares are now low
    /// enough to ask for more (see `spares_wanted`), read under the same lock.
    pub(crate) fn take_spare(&self) -> Option<(u64, bool)> {
        let mut spares = self.spares();
        let seq = spares.seqs.pop()?;
        spares.last_used = Instant::now();
        Some((seq, spares.seqs.len() * 2 < spares.cap))
    }

    /// How many spare slots are held now.
    pub(crate) fn spare_count(&self) -> usize {
        self.spares().seqs.len()
    }

    /// How many more spare slots to ask for: none while more than half of them are there.
    pub(crate) fn spares_wanted(&self) -> usize {
        let spares = self.spares();
        match spares.seqs.len() * 2 < spares.cap {
            true => spares.cap - spares.seqs.len(),
            false => 0,
        }
    }

    /// Slot `seq`'s request is over: it stays held as a spare if one is wanted, else it goes
    /// back to Redis.
    pub(crate) fn give_back(&self, seq: u64) {
        {
            let mut spares = self.spares();
            if spares.seqs.len() < spares.cap {
                spares.seqs.push(seq);
                spares.last_used = Instant::now();
                return;
            }
        }
        self.release(seq);
        self.defer_release(seq);
    }

    /// Slots granted as spares (held already); those beyond the cap go back.
    pub(crate) fn add_spares(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut extra = Vec::new();
        {
            let mut spares = self.spares();
            for seq in seqs {
                match spares.seqs.len() < spares.cap {
                    true => spares.seqs.push(seq),
                    false => extra.push(seq),
                }
            }
            spares.last_used = Instant::now();
        }
        self.give_back_all(extra);
    }

    /// Every spare slot goes back to Redis (the pool is getting full, or they sat unused
    /// for `idle`; `Duration::ZERO`: whatever their age).
    pub(crate) fn shed_spares(&self, idle: Duration) {
        let shed = {
            let mut spares = self.spares();
            if spares.seqs.is_empty() || spares.last_used.elapsed() < idle {
                return;
            }
            std::mem::take(&mut spares.seqs)
        };
        self.give_back_all(shed);
    }

    fn give_back_all(&self, seqs: Vec<u64>) {
        for seq in seqs {
            self.release(seq);
            self.defer_release(seq);
        }
    }

    /// Every slot held now.
    pub(crate) fn held(&self) -> Vec<u64> {
        let mut all = Vec::new();
        for shard in &self.shards {
            let held = shard.lock().unwrap_or_else(|p| p.into_inner());
            all.extend(held.iter().copied());
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_slots_are_listed_until_released() {
        let r = SlotRegistry::new("k".into());
        for seq in 0..40 {
            r.hold(seq);
        }
        r.release(7);
        let mut held = r.held();
        held.sort_unstable();
        assert_eq!(held.len(), 39);
        assert_eq!(r.held_count(), 39);
        r.release(7);
        assert_eq!(r.held_count(), 39, "released once");
        assert!(!held.contains(&7));
        assert_eq!(&**r.key(), "k");
    }

    #[test]
    fn spare_slots_are_kept_up_to_the_cap_and_shed_when_asked() {
        let r = SlotRegistry::new("k".into());
        for seq in 0..6 {
            r.hold(seq);
        }
        assert_eq!(r.spares_wanted(), 0, "no cap, no spares");
        r.give_back(0);
        assert_eq!(r.spare_count(), 0);
        assert_eq!(r.take_released(10), vec![0]);
        r.set_spare_cap(4);
        assert_eq!(r.spares_wanted(), 4);
        r.add_spares([1, 2, 3, 4, 5]);
        assert_eq!(r.spare_count(), 4);
        assert_eq!(r.take_released(10), vec![5], "beyond the cap: given back");
        assert_eq!(r.spares_wanted(), 0);
        let (seq, low) = r.take_spare().expect("a spare");
        assert!(!low, "3 of 4 left");
        assert_eq!(r.held_count(), 4, "a spare in use is still held");
        r.give_back(seq);
        assert_eq!(r.spare_count(), 4, "kept as a spare again");
        r.shed_spares(Duration::from_secs(60));
        assert_eq!(r.spare_count(), 4, "used recently: kept");
        r.set_spare_cap(2);
        assert_eq!(r.spare_count(), 2);
        r.shed_spares(Duration::ZERO);
        assert_eq!(r.spare_count(), 0);
        assert_eq!(r.held_count(), 0);
        assert_eq!(r.take_released(10).len(), 4);
    }

    #[test]
    fn released_members_are_taken_in_batches() {
        let r = SlotRegistry::new("k".into());
        for i in 0..5 {
            r.defer_release(i);
        }
        assert_eq!(r.take_released(3).len(), 3);
        assert_eq!(r.take_released(3).len(), 2);
        assert!(r.take_released(3).is_empty());
    }
}
