//! Admission (PixlProxy "Throttling"): whether a request may go to its pool's back end now.
//! Owns the pool limits `max_concurrent_requests` and `max_requests_per_sec`, and poolgate's
//! per-client `max_requests_per_sec_per_ip` / `max_requests_per_min_per_ip`.
//!
//! `PoolAdmission` is the one interface the request path and the blind queue's sender ask; its
//! methods are async so that the limits shared by a cluster's instances stand behind the same
//! calls. This process's own limits (`local.rs`): each admission is one compare-and-swap on an
//! atomic, per-client windows live in a sharded map (`per_client.rs`). A cluster's shared
//! limits (`shared.rs`, cluster mode with `cluster_limits`): one Redis script per admission,
//! the fallback of `cluster.on_redis_error`, clients over a limit remembered locally
//! (`over_limit.rs`), and for large limits a reserve of spare slots and rate tokens granted
//! ahead, so most requests need no round trip (`reserve.rs`). A `Permit` is held in the
//! request context, so it is released on every path: success, error, client abort, timeout.
//!
//! Uses `cluster` (the Redis engine) and the leaf `timing` (its clock).

mod batch;
mod local;
mod over_limit;
mod per_client;
mod reserve;
mod shared;

use crate::cluster::Cluster;
use local::LocalLimits;
use shared::{Hold, SharedLimits};
use std::net::IpAddr;
use std::sync::Arc;

/// A pool's limits as configured (0 = no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LimitSettings {
    /// `max_concurrent_requests`.
    pub(crate) max_concurrent: usize,
    /// `max_requests_per_sec`.
    pub(crate) max_per_sec: u32,
    /// `max_requests_per_sec_per_ip`.
    pub(crate) per_client_per_sec: u32,
    /// `max_requests_per_min_per_ip`.
    pub(crate) per_client_per_min: u32,
}

/// Why a request was turned away with 429.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
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
    /// The cluster's Redis cannot be reached and `cluster.on_redis_error` is `closed`: 503.
    Unavailable,
}

impl Refusal {
    /// The answer's body: which pool and which limit.
    pub(crate) fn message(&self, pool: &str) -> String {
        let (key, limit) = match self {
            Refusal::Concurrency { limit } => ("max_concurrent_requests", *limit as u64),
            Refusal::Rate { limit } => ("max_requests_per_sec", u64::from(*limit)),
            Refusal::Client { key, limit, .. } => (*key, u64::from(*limit)),
            Refusal::Unavailable => {
                return format!(
                    "503 Service Unavailable: pool {pool} cannot reach the cluster's Redis (cluster.on_redis_error: closed).\n"
                )
            }
        };
        format!("429 Too Many Requests: pool {pool} is over its {key} limit ({limit}).\n")
    }

    /// The answer's status: 429, or 503 when the shared limits cannot be asked.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Refusal::Unavailable => 503,
            _ => 429,
        }
    }

    /// `Retry-After` seconds, for the per-client limits.
    pub(crate) fn retry_after_sec(&self) -> Option<u64> {
        match self {
            Refusal::Client {
                retry_after_sec, ..
            } => Some(*retry_after_sec),
            _ => None,
        }
    }
}

/// One admitted request's hold on its pool; dropping it gives the hold back.
#[derive(Debug, Default)]
pub(crate) struct Permit {
    /// Held for its `Drop`: the concurrency slot (local or shared) goes back with the permit.
    _hold: Hold,
}

impl Permit {
    fn local(slot: Option<local::ConcurrencySlot>) -> Self {
        Permit {
            _hold: slot.map_or(Hold::Nothing, Hold::Local),
        }
    }

    fn held(hold: Hold) -> Self {
        Permit { _hold: hold }
    }
}

/// A pool's admission.
#[derive(Debug)]
pub(crate) enum PoolAdmission {
    /// Limits counted by this process alone.
    Local(LocalLimits),
    /// Limits counted by every instance of the cluster on Redis.
    Shared(Box<SharedLimits>),
}

impl PoolAdmission {
    /// The admission of a pool: shared with the cluster's instances when `cluster` is given.
    pub(crate) fn new(
        settings: &LimitSettings,
        pool: &str,
        cluster: Option<&Arc<Cluster>>,
    ) -> Self {
        match cluster {
            Some(cluster) => {
                PoolAdmission::Shared(Box::new(SharedLimits::new(cluster, pool, settings)))
            }
            None => PoolAdmission::Local(LocalLimits::new(settings)),
        }
    }

    /// Admit one request from `client` against every limit of the pool: the permit to hold
    /// while it runs, or why it is refused.
    pub(crate) async fn admit(&self, client: Option<IpAddr>) -> Result<Permit, Refusal> {
        match self {
            PoolAdmission::Local(limits) => limits.admit(client).map(Permit::local),
            PoolAdmission::Shared(limits) => limits.admit(client, true).await.map(Permit::held),
        }
    }

    /// The per-client limits alone (the blind queue's intake: the pool-wide ones apply to its
    /// sends).
    pub(crate) async fn admit_client(&self, client: Option<IpAddr>) -> Result<(), Refusal> {
        match self {
            PoolAdmission::Local(limits) => limits.admit_client(client),
            PoolAdmission::Shared(limits) => limits.admit(client, false).await.map(drop),
        }
    }

    /// The pool-wide limits alone (the blind queue's sends).
    pub(crate) async fn admit_pool(&self) -> Result<Permit, Refusal> {
        match self {
            PoolAdmission::Local(limits) => limits.admit(None).map(Permit::local),
            PoolAdmission::Shared(limits) => limits.admit(None, true).await.map(Permit::held),
        }
    }
}
