//! Pool throttling (PixlProxy "Throttling"): `max_concurrent_requests`, `max_requests_per_sec`,
//! and poolgate's per-client `max_requests_per_sec_per_ip` / `max_requests_per_min_per_ip`.
//!
//! Every limit is exact under concurrency: each admission is one compare-and-swap on an atomic
//! (per-client windows live in a sharded map, see `client_limit`). A concurrency slot is a guard
//! held in the request context, so it is released on every path: success, error, client abort,
//! timeout.

pub mod per_client;

use crate::admission::per_client::ClientRateLimit;
use crate::clock;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// At most `max` requests in flight.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    max: usize,
    current: AtomicUsize,
}

impl ConcurrencyLimit {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(ConcurrencyLimit {
            max,
            current: AtomicUsize::new(0),
        })
    }

    /// A slot, or `None` when all `max` are taken.
    pub fn try_acquire(self: &Arc<Self>) -> Option<ConcurrencySlot> {
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConcurrencySlot(self.clone()))
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }
}

/// One admitted request; dropping it frees the slot.
#[derive(Debug)]
pub struct ConcurrencySlot(Arc<ConcurrencyLimit>);

impl Drop for ConcurrencySlot {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// At most `max` admissions per wall-clock second. The second and the count share one atomic.
#[derive(Debug)]
pub struct RateLimit {
    max: u32,
    window: AtomicU64,
}

impl RateLimit {
    pub fn new(max: u32) -> Self {
        RateLimit {
            max,
            window: AtomicU64::new(0),
        }
    }

    /// Count one request in second `sec`, unless that second is already full.
    pub fn try_admit(&self, sec: u32) -> bool {
        self.window
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                let (s, n) = ((v >> 32) as u32, v as u32);
                if s != sec {
                    Some((u64::from(sec) << 32) | 1)
                } else if n < self.max {
                    Some(v + 1)
                } else {
                    None
                }
            })
            .is_ok()
    }
}

/// Why a request was turned away with 429.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Concurrency {
        limit: usize,
    },
    Rate {
        limit: u32,
    },
    Client {
        key: &'static str,
        limit: u32,
        retry_after_sec: u64,
    },
}

impl Refusal {
    /// The 429 body: which pool and which limit.
    pub fn message(&self, pool: &str) -> String {
        let (key, limit) = match self {
            Refusal::Concurrency { limit } => ("max_concurrent_requests", *limit as u64),
            Refusal::Rate { limit } => ("max_requests_per_sec", u64::from(*limit)),
            Refusal::Client { key, limit, .. } => (*key, u64::from(*limit)),
        };
        format!("429 Too Many Requests: pool {pool} is over its {key} limit ({limit}).\n")
    }

    /// `Retry-After` seconds, for the per-client limits.
    pub fn retry_after_sec(&self) -> Option<u64> {
        match self {
            Refusal::Client {
                retry_after_sec, ..
            } => Some(*retry_after_sec),
            _ => None,
        }
    }
}

/// All limits of one pool.
#[derive(Debug, Default)]
pub struct PoolLimits {
    pub concurrency: Option<Arc<ConcurrencyLimit>>,
    pub rate: Option<RateLimit>,
    pub per_client: Vec<ClientRateLimit>,
}

impl PoolLimits {
    pub fn is_empty(&self) -> bool {
        self.concurrency.is_none() && self.rate.is_none() && self.per_client.is_empty()
    }

    /// Admit one request from `client`: the concurrency slot to hold while it runs (if the
    /// pool limits concurrency), or why it is refused. The pool-wide rate is counted last, so
    /// a request refused for another reason does not use up the pool's second.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<Option<ConcurrencySlot>, Refusal> {
        if self.is_empty() {
            return Ok(None);
        }
        self.admit_at(client, clock::now_sec())
    }

    /// The per-client limits alone (the blind queue's intake: the pool-wide ones apply to
    /// its sends).
    pub fn admit_client(&self, client: Option<IpAddr>) -> Result<(), Refusal> {
        let Some(ip) = client else { return Ok(()) };
        let sec = clock::now_sec();
        self.per_client
            .iter()
            .try_for_each(|limit| limit.try_admit(ip, sec))
    }

    /// The pool-wide limits alone (the blind queue's sends).
    pub fn admit_pool(&self) -> Result<Option<ConcurrencySlot>, Refusal> {
        if self.concurrency.is_none() && self.rate.is_none() {
            return Ok(None);
        }
        self.admit_at(None, clock::now_sec())
    }

    fn admit_at(
        &self,
        client: Option<IpAddr>,
        sec: u32,
    ) -> Result<Option<ConcurrencySlot>, Refusal> {
        let slot = match &self.concurrency {
            Some(limit) => Some(
                limit
                    .try_acquire()
                    .ok_or(Refusal::Concurrency { limit: limit.max })?,
            ),
            None => None,
        };
        if let Some(ip) = client {
            for limit in &self.per_client {
                limit.try_admit(ip, sec)?;
            }
        }
        if let Some(rate) = &self.rate {
            if !rate.try_admit(sec) {
                return Err(Refusal::Rate { limit: rate.max });
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
    fn refusal_names_pool_and_limit() {
        let m = Refusal::Rate { limit: 5 }.message("api");
        assert!(
            m.contains("pool api") && m.contains("max_requests_per_sec limit (5)"),
            "{m}"
        );
    }

    #[test]
    fn rate_refusal_frees_the_concurrency_slot() {
        let limits = PoolLimits {
            concurrency: Some(ConcurrencyLimit::new(1)),
            rate: Some(RateLimit::new(1)),
            per_client: vec![],
        };
        assert!(limits.rate.as_ref().unwrap().try_admit(42));
        assert_eq!(
            limits.admit_at(None, 42).unwrap_err(),
            Refusal::Rate { limit: 1 }
        );
        assert_eq!(limits.concurrency.as_ref().unwrap().in_flight(), 0);
    }
}
