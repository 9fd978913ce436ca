//! A pool's limits counted by every instance of a cluster on Redis (cluster mode,
//! `cluster_limits`): one admission script per request (one round trip) takes the client's
//! counters, the pool's second and a concurrency slot together or none of them (admissions
//! that arrive while one is on its way go together in the next, `batch.rs`); the slot is a
//! lease this instance renews while the request runs and gives back off the request path
//! (the pool's next admission takes it out of the set in its own round trip).
//! Clients refused by a per-client limit are refused locally for the rest of their window.
//! A request no client limit applies to is first served from the instance's reserve
//! (`reserve.rs`: spare slots and rate tokens granted ahead) when the pool's limits are large
//! enough to have one: then it costs no round trip at all.
//!
//! When Redis cannot be reached the decision follows `cluster.on_redis_error`: `local`
//! enforces this instance's share (the limit divided by the last known number of live
//! instances) with the process's own counters, `open` admits, `closed` refuses with 503.

use super::batch::{AdmissionBatcher, AdmissionRequest};
use super::local::{ConcurrencySlot, LocalLimits};
use super::over_limit::OverLimitClients;
use super::reserve::{RateTokens, ReserveSizes};
use super::{LimitSettings, Refusal};
use crate::cluster::{Cluster, ClusterFault, RedisErrorPolicy, SlotRegistry};
use crate::timing::clock;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Error replies are logged at most once per this many ms.
const ERROR_LOG_INTERVAL_MS: u64 = 10_000;

#[derive(Debug)]
pub(crate) struct SharedLimits {
    cluster: Arc<Cluster>,
    settings: LimitSettings,
    registry: Arc<SlotRegistry>,
    /// Sends this pool's admissions to Redis, together while one is on its way.
    batcher: Arc<AdmissionBatcher>,
    /// The rate tokens this instance holds ahead of its requests.
    tokens: Arc<RateTokens>,
    /// `{prefix}:pool:<id>:ip:`: the base of the clients' counters.
    client_key: String,
    /// The fallback's counters (`on_redis_error: local`).
    fallback: LocalLimits,
    over: OverLimitClients,
    last_error_log: AtomicU64,
}

/// A shared concurrency slot; dropping it gives the slot back.
#[derive(Debug)]
pub(crate) struct SharedSlot {
    registry: Arc<SlotRegistry>,
    seq: u64,
}

impl Drop for SharedSlot {
    fn drop(&mut self) {
        // Kept as a spare when the pool has a reserve, else given back to Redis.
        self.registry.give_back(self.seq);
    }
}

/// What an admitted request holds (for its `Drop`: the slot goes back with it).
#[derive(Debug, Default)]
#[allow(dead_code, reason = "the slots are held for their Drop")]
pub(crate) enum Hold {
    #[default]
    Nothing,
    Local(ConcurrencySlot),
    Shared(SharedSlot),
}

impl SharedLimits {
    pub(crate) fn new(cluster: &Arc<Cluster>, pool: &str, settings: &LimitSettings) -> Self {
        let registry = SlotRegistry::new(cluster.pool_key(pool, "conc"));
        cluster.register(registry.clone());
        let tokens = Arc::new(RateTokens::default());
        SharedLimits {
            cluster: cluster.clone(),
            settings: *settings,
            batcher: AdmissionBatcher::new(
                cluster.clone(),
                registry.clone(),
                cluster.pool_key(pool, "rps"),
                *settings,
                tokens.clone(),
            ),
            tokens,
            registry,
            client_key: cluster.pool_key(pool, "ip:"),
            fallback: LocalLimits::new(settings),
            over: OverLimitClients::new(),
            last_error_log: AtomicU64::new(0),
        }
    }

    fn limits_clients(&self) -> bool {
        self.settings.per_client_per_sec > 0 || self.settings.per_client_per_min > 0
    }

    fn limits_pool(&self) -> bool {
        self.settings.max_concurrent > 0 || self.settings.max_per_sec > 0
    }

    /// Admit one request: the client's limits (when `client` is known) and, with `pool_wide`,
    /// the pool's.
    pub(crate) async fn admit(
        &self,
        client: Option<IpAddr>,
        pool_wide: bool,
    ) -> Result<Hold, Refusal> {
        let client = client.filter(|_| self.limits_clients());
        let pool_wide = pool_wide && self.limits_pool();
        if client.is_none() && !pool_wide {
            return Ok(Hold::Nothing);
        }
        let now_ms = clock::unix_ms();
        if let Some(refusal) = client.and_then(|ip| self.over.refused(ip, now_ms)) {
            return Err(refusal);
        }
        if !self.cluster.is_reachable() {
            return self.fallback(client, pool_wide);
        }
        if client.is_none() {
            if let Some(hold) = self.admit_from_reserve() {
                return Ok(hold);
            }
        }
        let takes_slot = pool_wide && self.settings.max_concurrent > 0;
        let seq = self.cluster.next_seq();
        if takes_slot {
            // Held before it is asked for, so a heartbeat in between renews it too.
            self.registry.hold(seq);
        }
        let request = AdmissionRequest {
            slot: takes_slot.then_some(seq),
            client_key: match client {
                Some(ip) => format!("{}{ip}", self.client_key),
                None => String::new(),
            },
            pool_wide,
        };
        let answer = self.batcher.decide(request).await;
        match answer {
            Ok(reply) if reply[0] == 1 => Ok(match takes_slot {
                true => Hold::Shared(SharedSlot {
                    registry: self.registry.clone(),
                    seq,
                }),
                false => Hold::Nothing,
            }),
            Ok(reply) => {
                if takes_slot {
                    self.registry.release(seq);
                }
                let refusal = self.refusal(&reply);
                if let (Some(ip), Some(secs)) = (client, refusal.retry_after_sec()) {
                    self.over
                        .remember(ip, refusal.clone(), now_ms + secs * 1000, now_ms);
                }
                Err(refusal)
            }
            Err(fault) => {
                if takes_slot {
                    // The script may still run once Redis answers: take the slot back then.
                    self.registry.release(seq);
                    self.registry.defer_release(seq);
                }
                if let ClusterFault::Refused(e) = fault {
                    self.log_error(&e, now_ms);
                }
                self.fallback(client, pool_wide)
            }
        }
    }

    /// A pool-wide admission from the reserve: a rate token (when the pool has a rate limit)
    /// and a spare slot (when it has a concurrency limit), or `None` when either is missing
    /// (Redis decides). A reserve found low is refilled off this request's path.
    fn admit_from_reserve(&self) -> Option<Hold> {
        let s = &self.settings;
        let sizes = ReserveSizes::for_pool(s, self.cluster.live_instances());
        if !sizes.serves(s) {
            return None;
        }
        // Each take says, under its own lock, whether its part of the reserve runs low.
        let mut low = false;
        if s.max_per_sec > 0 {
            low |= self.tokens.take(sizes.tokens)?;
        }
        let hold = match s.max_concurrent > 0 {
            true => match self.registry.take_spare() {
                Some((seq, slots_low)) => {
                    low |= slots_low;
                    Hold::Shared(SharedSlot {
                        registry: self.registry.clone(),
                        seq,
                    })
                }
                None => {
                    if s.max_per_sec > 0 {
                        self.tokens.put_back();
                    }
                    return None;
                }
            },
            false => Hold::Nothing,
        };
        if low {
            self.batcher.refill();
        }
        Some(hold)
    }

    /// The refusal a script's `{0, kind, retry_after}` stands for.
    fn refusal(&self, reply: &[i64]) -> Refusal {
        let kind = reply.get(1).copied().unwrap_or(1);
        let retry_after_sec = reply
            .get(2)
            .map_or(1, |s| u64::try_from(*s).unwrap_or(1).max(1));
        let s = &self.settings;
        match kind {
            2 => Refusal::Rate {
                limit: s.max_per_sec,
            },
            3 => Refusal::Client {
                key: "max_requests_per_sec_per_ip",
                limit: s.per_client_per_sec,
                retry_after_sec,
            },
            4 => Refusal::Client {
                key: "max_requests_per_min_per_ip",
                limit: s.per_client_per_min,
                retry_after_sec,
            },
            _ => Refusal::Concurrency {
                limit: s.max_concurrent,
            },
        }
    }

    fn fallback(&self, client: Option<IpAddr>, pool_wide: bool) -> Result<Hold, Refusal> {
        self.cluster.count_local_decision();
        match self.cluster.settings.on_redis_error {
            RedisErrorPolicy::Open => Ok(Hold::Nothing),
            RedisErrorPolicy::Closed => Err(Refusal::Unavailable),
            RedisErrorPolicy::Local => {
                self.fallback.set_share(
                    &self.settings,
                    self.cluster.live_instances(),
                    // Spare slots hold no request.
                    self.registry
                        .held_count()
                        .saturating_sub(self.registry.spare_count()),
                );
                match pool_wide {
                    true => self
                        .fallback
                        .admit(client)
                        .map(|slot| slot.map_or(Hold::Nothing, Hold::Local)),
                    false => self.fallback.admit_client(client).map(|()| Hold::Nothing),
                }
            }
        }
    }

    fn log_error(&self, e: &str, now_ms: u64) {
        let last = self.last_error_log.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= ERROR_LOG_INTERVAL_MS
            && self
                .last_error_log
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            log::error!(
                "cluster: admission script failed: {e}; deciding by cluster.on_redis_error"
            );
        }
    }
}
