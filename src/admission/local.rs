//! This process's own limits: a concurrency count and a per-second rate per pool in atomics,
//! and per-client windows in a sharded map. Exact under concurrency: each admission is one
//! compare-and-swap.

use super::per_client::ClientRateLimit;
use super::{LimitSettings, Refusal};
use crate::timing::clock;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// At most `max` requests in flight.
#[derive(Debug)]
pub(super) struct ConcurrencyLimit {
    /// Changes only for a cluster's local fallback (its share of the shared limit).
    max: AtomicUsize,
    current: AtomicUsize,
}

impl ConcurrencyLimit {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(ConcurrencyLimit {
            max: AtomicUsize::new(max),
            current: AtomicUsize::new(0),
        })
    }

    /// A slot, or `None` when all `max` are taken.
    fn try_acquire(self: &Arc<Self>) -> Option<ConcurrencySlot> {
        let max = self.max.load(Ordering::Relaxed);
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConcurrencySlot(self.clone()))
    }

    /// Requests holding a slot now.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }
}

/// One admitted request; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct ConcurrencySlot(Arc<ConcurrencyLimit>);

impl Drop for ConcurrencySlot {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// At most `max` admissions per wall-clock second. The second and the count share one atomic.
#[derive(Debug)]
struct RateLimit {
    max: AtomicU32,
    window: AtomicU64,
}

impl RateLimit {
    fn new(max: u32) -> Self {
        RateLimit {
            max: AtomicU32::new(max),
            window: AtomicU64::new(0),
        }
    }

    /// Count one request in second `sec`, unless that second is already full.
    fn try_admit(&self, sec: u32) -> bool {
        let max = self.max.load(Ordering::Relaxed);
        self.window
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                let (s, n) = ((v >> 32) as u32, v as u32);
                if s != sec {
                    Some((u64::from(sec) << 32) | 1)
                } else if n < max {
                    Some(v + 1)
                } else {
                    None
                }
            })
            .is_ok()
    }
}

/// All limits of one pool, counted here.
#[derive(Debug, Default)]
pub(crate) struct LocalLimits {
    concurrency: Option<Arc<ConcurrencyLimit>>,
    rate: Option<RateLimit>,
    per_client: Vec<ClientRateLimit>,
}

impl LocalLimits {
    pub(crate) fn new(s: &LimitSettings) -> Self {
        let mut per_client = Vec::new();
        if s.per_client_per_sec > 0 {
            per_client.push(ClientRateLimit::per_second(s.per_client_per_sec));
        }
        if s.per_client_per_min > 0 {
            per_client.push(ClientRateLimit::per_minute(s.per_client_per_min));
        }
        LocalLimits {
            concurrency: (s.max_concurrent > 0).then(|| ConcurrencyLimit::new(s.max_concurrent)),
            rate: (s.max_per_sec > 0).then(|| RateLimit::new(s.max_per_sec)),
            per_client,
        }
    }

    /// Enforce `1 / instances` of every limit in `s` (at least 1 each): a cluster
    /// instance's share while the shared counts cannot be reached.
    pub(super) fn set_share(&self, s: &LimitSettings, instances: usize, shared_in_flight: usize) {
        let n = instances.max(1);
        let share = |limit: u32| (limit / u32::try_from(n).unwrap_or(u32::MAX)).max(1);
        if let Some(c) = &self.concurrency {
            // The requests this instance still runs on shared slots count against its share.
            let own = (s.max_concurrent / n)
                .max(1)
                .saturating_sub(shared_in_flight);
            c.max.store(own, Ordering::Relaxed);
        }
        if let Some(r) = &self.rate {
            r.max.store(share(s.max_per_sec), Ordering::Relaxed);
        }
        for limit in &self.per_client {
            limit.set_limit(share(limit.configured()));
        }
    }

    fn is_empty(&self) -> bool {
        self.concurrency.is_none() && self.rate.is_none() && self.per_client.is_empty()
    }

    /// Admit one request from `client` (`None`: the pool-wide limits only): the concurrency
    /// slot to hold while it runs (if the pool limits concurrency), or why it is refused.
    pub(crate) fn admit(&self, client: Option<IpAddr>) -> Result<Option<ConcurrencySlot>, Refusal> {
        if self.is_empty() {
            return Ok(None);
        }
        self.admit_at(client, clock::now_sec())
    }

    /// The per-client limits alone.
    pub(crate) fn admit_client(&self, client: Option<IpAddr>) -> Result<(), Refusal> {
        let Some(ip) = client else { return Ok(()) };
        let sec = clock::now_sec();
        self.per_client
            .iter()
            .try_for_each(|limit| limit.try_admit(ip, sec))
    }

    /// The pool-wide rate is counted last, so a request refused for another reason does not
    /// use up the pool's second.
    fn admit_at(
        &self,
        client: Option<IpAddr>,
        sec: u32,
    ) -> Result<Option<ConcurrencySlot>, Refusal> {
        let slot = match &self.concurrency {
            Some(limit) => Some(limit.try_acquire().ok_or(Refusal::Concurrency {
                limit: limit.max.load(Ordering::Relaxed),
            })?),
            None => None,
        };
        if let Some(ip) = client {
            for limit in &self.per_client {
                limit.try_admit(ip, sec)?;
            }
        }
        if let Some(rate) = &self.rate {
            if !rate.try_admit(sec) {
                return Err(Refusal::Rate {
                    limit: rate.max.load(Ordering::Relaxed),
                });
            }
        }
        Ok(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_slots_are_exact_and_released_on_drop() {
        let limit = ConcurrencyLimit::new(2);
        let a = limit.try_acquire();
        let b = limit.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert_eq!(limit.in_flight(), 1);
        assert!(limit.try_acquire().is_some());
    }

    #[test]
    fn concurrency_is_exact_across_threads() {
        let limit = ConcurrencyLimit::new(10);
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (limit, barrier) = (limit.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let held: Vec<_> = (0..5).filter_map(|_| limit.try_acquire()).collect();
                    barrier.wait();
                    held.len()
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 10);
        assert_eq!(limit.in_flight(), 0);
    }

    #[test]
    fn rate_admits_max_per_second_then_resets() {
        let rate = RateLimit::new(3);
        assert_eq!((0..5).filter(|_| rate.try_admit(10)).count(), 3);
        assert!(rate.try_admit(11));
    }

    #[test]
    fn a_share_divides_every_limit_and_keeps_at_least_one() {
        let s = LimitSettings {
            max_concurrent: 4,
            max_per_sec: 30,
            per_client_per_sec: 2,
            per_client_per_min: 0,
        };
        let limits = LocalLimits::new(&s);
        limits.set_share(&s, 3, 0);
        let held: Vec<_> = (0..4).filter_map(|_| limits.admit(None).ok()).collect();
        assert_eq!(held.len(), 1, "4 / 3 instances = 1 slot here");
        drop(held);
        limits.set_share(&s, 1, 0);
        let held: Vec<_> = (0..5).filter_map(|_| limits.admit(None).ok()).collect();
        assert_eq!(held.len(), 4, "the whole limit alone");
        drop(held);
        limits.set_share(&s, 1, 3);
        let held: Vec<_> = (0..5).filter_map(|_| limits.admit(None).ok()).collect();
        assert_eq!(held.len(), 1, "3 of the 4 still run on shared slots");
        limits.set_share(&s, 10, 0);
        assert_eq!(limits.rate.as_ref().unwrap().max.load(Ordering::Relaxed), 3);
        assert_eq!(limits.per_client[0].limit(), 1);
    }

    #[test]
    fn refusal_names_pool_and_limit() {
        let m = Refusal::Rate { limit: 5 }.message("api");
        assert!(
            m.contains("pool api") && m.contains("max_requests_per_sec limit (5)"),
            "{m}"
        );
    }

    #[test]
    fn rate_refusal_frees_the_concurrency_slot() {
        let limits = LocalLimits::new(&LimitSettings {
            max_concurrent: 1,
            max_per_sec: 1,
            ..LimitSettings::default()
        });
        assert!(limits.rate.as_ref().unwrap().try_admit(42));
        assert_eq!(
            limits.admit_at(None, 42).unwrap_err(),
            Refusal::Rate { limit: 1 }
        );
        assert_eq!(limits.concurrency.as_ref().unwrap().in_flight(), 0);
    }
}
