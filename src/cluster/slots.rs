//! The concurrency slots this instance holds in a pool's shared set (`max_concurrent_requests`
//! in cluster mode): the heartbeat renews their leases, so a long request keeps its slot, and
//! a slot whose request is over (or whose admission timed out) is no longer renewed and
//! expires even if its release never reaches Redis. Released slots wait here for the next
//! admission to the pool, which takes them out of the set in its own round trip, or for the
//! heartbeat's releaser, whichever comes first: giving a slot back wakes no other thread and
//! costs no round trip of its own.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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
        })
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
