//! The connection to the cluster's Redis and what is known about it: whether it can be
//! reached (the circuit breaker), how long a round trip takes, how many instances are live.
//!
//! Every operation is bounded by `cluster.timeout_ms`. A timeout or a connection error opens
//! the circuit: until the heartbeat reaches Redis again, callers get `ClusterFault::Unreachable`
//! at once and apply `cluster.on_redis_error`, so a hung Redis costs a request at most one
//! operation timeout and a flood of requests costs it nothing. A Redis error reply (a script
//! error, a missing group) does not open the circuit: the server answered.
//!
//! Each thread that asks gets a connection of its own, whose task runs on that thread's
//! runtime: a request's round trip then wakes no other thread (through the heartbeat's
//! connection, whose task lives on the background runtime, every admission cost two context
//! switches). Until a thread's connection has answered a `PING` the thread uses the
//! heartbeat's.

use super::scripts::Scripts;
use super::slots::SlotRegistry;
use super::{display_url, ClusterSettings};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;
use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How a thread's own connection is made: the heartbeat's client and settings.
#[derive(Clone)]
pub(super) struct ConnectionRecipe {
    pub(super) client: redis::Client,
    pub(super) config: ConnectionManagerConfig,
}

/// One thread's connection to one cluster's Redis.
struct ThreadConnection {
    cluster: u64,
    connection: ConnectionManager,
    /// The reachability generation (plus one) in which it last answered a `PING`; 0: never.
    verified: Arc<AtomicU64>,
    /// A `PING` is on its way.
    checking: Arc<AtomicBool>,
}

thread_local! {
    static THREAD_CONNECTIONS: RefCell<Vec<ThreadConnection>> = const { RefCell::new(Vec::new()) };
}

/// Tells clusters apart in the threads' connection lists (tests build several).
static NEXT_CLUSTER_ID: AtomicU64 = AtomicU64::new(0);

/// Why a cluster operation gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ClusterFault {
    /// Redis cannot be reached now (the circuit is open, or this operation found out).
    #[error("the cluster's Redis cannot be reached")]
    Unreachable,
    /// Redis answered with an error.
    #[error("Redis answered: {0}")]
    Refused(String),
}

/// What the stats API and the metrics show of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClusterFigures {
    pub(crate) instance: String,
    pub(crate) redis: String,
    pub(crate) live_instances: usize,
    pub(crate) redis_reachable: bool,
    /// Smoothed round-trip time of admissions and heartbeats.
    pub(crate) redis_rtt_ms: f64,
    /// Admissions decided without Redis because it could not be reached.
    pub(crate) local_decisions: u64,
    /// Queued requests taken over from instances that stopped sending them.
    pub(crate) queue_taken_over: u64,
    /// Changes of Redis reachability since start.
    pub(crate) reachability_changes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    /// Smoothed round trip in microseconds (1/8 of each new sample).
    rtt_us: AtomicU64,
    local_decisions: AtomicU64,
    taken_over: AtomicU64,
    changes: AtomicU64,
}

/// This instance's membership of the cluster.
pub(crate) struct Cluster {
    pub(crate) settings: ClusterSettings,
    /// `<host>:<pid>:<start ms>`: a restarted process never inherits what its predecessor held.
    instance: String,
    /// `<instance>:`.
    member_prefix: String,
    /// The Redis URL without its password.
    shown_url: String,
    /// Set by the heartbeat service in its runtime, which lives as long as the process (the
    /// connection's own task runs there; callers on any runtime send through it).
    connection: OnceLock<ConnectionManager>,
    /// Set with `connection`: how each thread makes its own.
    recipe: OnceLock<ConnectionRecipe>,
    id: u64,
    /// Counts the times Redis became reachable again: a thread's connection is checked anew
    /// after each (a restarted Redis leaves it a dead socket to find out about).
    generation: AtomicU64,
    pub(crate) scripts: Scripts,
    reachable: AtomicBool,
    /// When the heartbeat last succeeded, in ms since `started`.
    last_beat_ms: AtomicU64,
    started: Instant,
    live: AtomicUsize,
    counters: Counters,
    next_seq: AtomicU64,
    registries: Mutex<Vec<Arc<SlotRegistry>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("instance", &self.instance)
            .field("redis", &self.shown_url)
            .finish()
    }
}

impl Cluster {
    pub(crate) fn new(settings: ClusterSettings) -> Arc<Self> {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "host".into());
        let start_ms = crate::timing::clock::unix_ms();
        let instance = format!("{host}:{}:{start_ms}", std::process::id());
        Arc::new(Cluster {
            member_prefix: format!("{instance}:"),
            instance,
            shown_url: display_url(&settings.redis_url),
            settings,
            connection: OnceLock::new(),
            recipe: OnceLock::new(),
            id: NEXT_CLUSTER_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            scripts: Scripts::new(),
            // Taken as reachable until the first heartbeat (before the proxy serves) finds
            // otherwise, so that finding is logged and counted as a change.
            reachable: AtomicBool::new(true),
            last_beat_ms: AtomicU64::new(0),
            started: Instant::now(),
            live: AtomicUsize::new(1),
            counters: Counters::default(),
            next_seq: AtomicU64::new(0),
            registries: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    pub(crate) fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// `{<prefix>}:<rest>`: every key in one hash slot, so scripts work on Redis Cluster too.
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{{{}}}:{rest}", self.settings.key_prefix)
    }

    /// A pool's key: `{<prefix>}:pool:<id>:<rest>`.
    pub(crate) fn pool_key(&self, pool: &str, rest: &str) -> String {
        self.key(&format!("pool:{pool}:{rest}"))
    }

    /// A pool's held-slot registry, renewed by the heartbeat (called while building, before
    /// the services start).
    pub(crate) fn register(&self, registry: Arc<SlotRegistry>) {
        self.registries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(registry);
    }

    pub(crate) fn registries(&self) -> Vec<Arc<SlotRegistry>> {
        self.registries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A number no other admission of this process uses.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seqs(1)
    }

    /// The first of `n` consecutive numbers no other admission of this process uses.
    pub(crate) fn next_seqs(&self, n: usize) -> u64 {
        self.next_seq.fetch_add(n as u64, Ordering::Relaxed)
    }

    /// `<instance>:`, the start of every member of this instance in a pool's concurrency set
    /// (the scripts add the slot's number).
    pub(crate) fn member_prefix(&self) -> &str {
        &self.member_prefix
    }

    pub(super) fn set_connection(&self, connection: ConnectionManager, recipe: ConnectionRecipe) {
        let _ = self.recipe.set(recipe);
        let _ = self.connection.set(connection);
    }

    /// The connection, or `Unreachable` while the circuit is open.
    pub(crate) fn connection(&self) -> Result<ConnectionManager, ClusterFault> {
        if !self.is_reachable() {
            return Err(ClusterFault::Unreachable);
        }
        if let Some(own) = self.thread_connection() {
            return Ok(own);
        }
        self.connection
            .get()
            .cloned()
            .ok_or(ClusterFault::Unreachable)
    }

    /// This thread's own connection once it has answered a `PING` since Redis was last
    /// reachable again; made (and checked by a task on this thread's runtime) on first use.
    fn thread_connection(&self) -> Option<ConnectionManager> {
        let recipe = self.recipe.get()?;
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let generation = self.generation.load(Ordering::Acquire) + 1;
        THREAD_CONNECTIONS.with_borrow_mut(|connections| {
            let at = connections.iter().position(|c| c.cluster == self.id);
            let own = match at {
                Some(i) => &connections[i],
                None => {
                    let connection = ConnectionManager::new_lazy_with_config(
                        recipe.client.clone(),
                        recipe.config.clone(),
                    )
                    .ok()?;
                    connections.push(ThreadConnection {
                        cluster: self.id,
                        connection,
                        verified: Arc::new(AtomicU64::new(0)),
                        checking: Arc::new(AtomicBool::new(false)),
                    });
                    connections.last()?
                }
            };
            if own.verified.load(Ordering::Acquire) == generation {
                return Some(own.connection.clone());
            }
            if own.checking.swap(true, Ordering::AcqRel) {
                return None;
            }
            let (mut connection, verified, checking) = (
                own.connection.clone(),
                own.verified.clone(),
                own.checking.clone(),
            );
            let limit = self.settings.timeout.max(Duration::from_secs(1));
            runtime.spawn(async move {
                let ping = redis::cmd("PING");
                let answered =
                    tokio::time::timeout(limit, ping.query_async::<String>(&mut connection)).await;
                if matches!(answered, Ok(Ok(_))) {
                    verified.store(generation, Ordering::Release);
                }
                checking.store(false, Ordering::Release);
            });
            None
        })
    }

    /// The connection whatever the circuit says (the heartbeat's probe).
    pub(super) fn probe_connection(&self) -> Option<ConnectionManager> {
        self.connection.get().cloned()
    }

    pub(crate) fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    /// Run one Redis operation within `cluster.timeout_ms`.
    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        op: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, ClusterFault> {
        self.bounded_for(self.settings.timeout, what, op).await
    }

    /// Run one background operation (the queue's reads and acknowledgements): no request
    /// waits on it, so it may take up to a third of the lease before Redis counts as gone.
    pub(crate) async fn background<T>(
        &self,
        what: &str,
        op: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, ClusterFault> {
        let limit = (self.settings.lease / 3).max(self.settings.timeout);
        self.bounded_for(limit, what, op).await
    }

    pub(super) async fn bounded_for<T>(
        &self,
        limit: Duration,
        what: &str,
        op: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, ClusterFault> {
        let start = Instant::now();
        match tokio::time::timeout(limit, op).await {
            Ok(Ok(value)) => {
                self.sample_rtt(start.elapsed());
                Ok(value)
            }
            Ok(Err(e)) if is_unreachable(&e) => {
                self.unreachable(&format!("{what}: {e}"));
                Err(ClusterFault::Unreachable)
            }
            Ok(Err(e)) => Err(ClusterFault::Refused(e.to_string())),
            Err(_) => {
                self.unreachable(&format!(
                    "{what}: no answer within {} ms",
                    limit.as_millis()
                ));
                Err(ClusterFault::Unreachable)
            }
        }
    }

    fn sample_rtt(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let old = self.counters.rtt_us.load(Ordering::Relaxed);
        let new = match old {
            0 => sample,
            _ => old - old / 8 + sample / 8,
        };
        self.counters.rtt_us.store(new, Ordering::Relaxed);
    }

    /// Open the circuit (logged once per change).
    pub(crate) fn unreachable(&self, why: &str) {
        if self.reachable.swap(false, Ordering::AcqRel) {
            self.counters.changes.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "cluster: Redis unreachable ({why}); until it answers again decisions follow cluster.on_redis_error: {}",
                self.settings.on_redis_error.name()
            );
        }
    }

    /// The heartbeat got through: close the circuit (logged once per change).
    pub(super) fn beat(&self, live: usize) {
        self.live.store(live.max(1), Ordering::Release);
        let now = self.started.elapsed().as_millis() as u64;
        self.last_beat_ms.store(now, Ordering::Release);
        if !self.reachable.load(Ordering::Acquire) {
            // Before the circuit closes, so no request uses an unchecked connection.
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        let was = self.reachable.swap(true, Ordering::AcqRel);
        // The first answer at start is no change; one after an outage is.
        if !was && self.counters.changes.load(Ordering::Relaxed) > 0 {
            self.counters.changes.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "cluster: Redis reachable again; shared limits and queue in use ({live} live instances)"
            );
        }
    }

    /// Time since the heartbeat last got through.
    pub(super) fn since_last_beat(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_beat_ms.load(Ordering::Acquire)))
    }

    /// The last known number of live instances (at least 1).
    pub(crate) fn live_instances(&self) -> usize {
        self.live.load(Ordering::Acquire).max(1)
    }

    /// One admission was decided without Redis.
    pub(crate) fn count_local_decision(&self) {
        self.counters
            .local_decisions
            .fetch_add(1, Ordering::Relaxed);
    }

    /// `n` queued requests were taken over from stopped instances.
    pub(crate) fn count_taken_over(&self, n: u64) {
        self.counters.taken_over.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn figures(&self) -> ClusterFigures {
        let c = &self.counters;
        ClusterFigures {
            instance: self.instance.clone(),
            redis: self.shown_url.clone(),
            live_instances: self.live_instances(),
            redis_reachable: self.is_reachable(),
            redis_rtt_ms: c.rtt_us.load(Ordering::Relaxed) as f64 / 1000.0,
            local_decisions: c.local_decisions.load(Ordering::Relaxed),
            queue_taken_over: c.taken_over.load(Ordering::Relaxed),
            reachability_changes: c.changes.load(Ordering::Relaxed),
        }
    }
}

/// Errors that say Redis is not there (as against an error reply from a Redis that is).
fn is_unreachable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}
