//! Admission (PixlProxy "Throttling"): whether a request may go to its pool's back end now.
//! Owns the pool limits `max_concurrent_requests` and `max_requests_per_sec`, and poolgate's
//! per-client `max_requests_per_sec_per_ip` / `max_requests_per_min_per_ip`.
//!
//! `PoolAdmission` is the one interface the request path and the blind queue's sender ask; its
//! methods are async so that an implementation shared by several instances (counted in an
//! external engine) can stand behind the same calls. Today's implementation is this process's
//! own (`local.rs`): each admission is one compare-and-swap on an atomic, per-client windows
//! live in a sharded map (`per_client.rs`). A `Permit` is held in the request context, so it is
//! released on every path: success, error, client abort, timeout.
//!
//! Uses only the leaf `timing` (its clock).

mod local;
mod per_client;

use local::{ConcurrencySlot, LocalLimits};
use std::net::IpAddr;

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
}

impl Refusal {
    /// The 429 body: which pool and which limit.
    pub(crate) fn message(&self, pool: &str) -> String {
        let (key, limit) = match self {
            Refusal::Concurrency { limit } => ("max_concurrent_requests", *limit as u64),
            Refusal::Rate { limit } => ("max_requests_per_sec", u64::from(*limit)),
            Refusal::Client { key, limit, .. } => (*key, u64::from(*limit)),
        };
        format!("429 Too Many Requests: pool {pool} is over its {key} limit ({limit}).\n")
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
    /// Held for its `Drop`: the concurrency slot goes back with the permit.
    _slot: Option<ConcurrencySlot>,
}

impl Permit {
    fn local(slot: Option<ConcurrencySlot>) -> Self {
        Permit { _slot: slot }
    }
}

/// A pool's admission.
#[derive(Debug)]
pub(crate) enum PoolAdmission {
    /// Limits counted by this process alone.
    Local(LocalLimits),
}

impl PoolAdmission {
    pub(crate) fn new(settings: &LimitSettings) -> Self {
        PoolAdmission::Local(LocalLimits::new(settings))
    }

    /// Admit one request from `client` against every limit of the pool: the permit to hold
    /// while it runs, or why it is refused.
    pub(crate) async fn admit(&self, client: Option<IpAddr>) -> Result<Permit, Refusal> {
        match self {
            PoolAdmission::Local(limits) => limits.admit(client).map(Permit::local),
        }
    }

    /// The per-client limits alone (the blind queue's intake: the pool-wide ones apply to its
    /// sends).
    pub(crate) async fn admit_client(&self, client: Option<IpAddr>) -> Result<(), Refusal> {
        match self {
            PoolAdmission::Local(limits) => limits.admit_client(client),
        }
    }

    /// The pool-wide limits alone (the blind queue's sends).
    pub(crate) async fn admit_pool(&self) -> Result<Permit, Refusal> {
        match self {
            PoolAdmission::Local(limits) => limits.admit(None).map(Permit::local),
        }
    }
}
