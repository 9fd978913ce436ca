//! The cluster's Pingora background service: it connects to Redis before the proxy serves
//! (a bounded wait: an unreachable Redis delays the start by at most a second and the
//! instance starts on its fallback), then renews this instance's lease every `lease_ms / 3`
//! (every 200 ms while Redis is unreachable, which is also how the circuit closes again),
//! with the leases of the slots it holds, and sends released slots back in batches (those no
//! admission has taken out of their set within `RELEASE_TICK`).
//!
//! An instance whose heartbeat has not got through for two thirds of its lease stops trusting
//! the shared counts (the others may already have dropped its slots) and falls back.

use super::engine::{Cluster, ConnectionRecipe};
use super::slots::RELEASES_PER_ADMISSION;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::time::Duration;

/// The probe interval while Redis is unreachable.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// The longest the start waits for Redis.
const START_WAIT: Duration = Duration::from_secs(1);
/// How often the releaser looks for released slots that no admission has taken along.
const RELEASE_TICK: Duration = Duration::from_millis(10);

/// Runs the heartbeat and the releaser of one instance.
pub(crate) struct ClusterHeartbeat(pub(crate) Arc<Cluster>);

impl ClusterHeartbeat {
    fn connect(&self) -> Option<(ConnectionManager, ConnectionRecipe)> {
        let cluster = &self.0;
        if cluster.settings.redis_url.starts_with("rediss://") {
            // rustls needs its process-wide provider, the one Pingora's TLS uses.
            pingora::tls::install_default_crypto_provider();
        }
        let client = match redis::Client::open(cluster.settings.redis_url.as_str()) {
            Ok(client) => client,
            Err(e) => {
                log::error!(
                    "cluster: Redis URL {} is not usable: {e}",
                    cluster.shown_url()
                );
                return None;
            }
        };
        // Reconnects are short and bounded: the circuit breaker, not the client, decides
        // what requests do meanwhile.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cluster.settings.timeout.max(START_WAIT / 2)))
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let recipe = ConnectionRecipe {
            client: client.clone(),
            config: config.clone(),
        };
        match ConnectionManager::new_lazy_with_config(client, config) {
            Ok(connection) => Some((connection, recipe)),
            Err(e) => {
                log::error!("cluster: Redis at {}: {e}", cluster.shown_url());
                None
            }
        }
    }

    /// One heartbeat: renew the leases, count the live instances.
    async fn beat(&self, limit: Duration) -> bool {
        let cluster = &self.0;
        let Some(mut connection) = cluster.probe_connection() else {
            return false;
        };
        let mut call = cluster.scripts.heartbeat.prepare_invoke();
        call.key(cluster.key("live"));
        // After an outage Redis may have restarted without the slots this instance holds.
        let restore = !cluster.is_reachable();
        call.arg(cluster.instance())
            .arg(lease_ms(cluster))
            .arg(u8::from(restore))
            .arg(cluster.member_prefix());
        for registry in cluster.registries() {
            let held = registry.held();
            call.key(&**registry.key());
            call.arg(held.len());
            for seq in held {
                call.arg(seq);
            }
        }
        let answer = cluster
            .bounded_for(
                limit,
                "heartbeat",
                call.invoke_async::<i64>(&mut connection),
            )
            .await;
        match answer {
            Ok(live) => {
                cluster.beat(usize::try_from(live).unwrap_or(1));
                true
            }
            Err(super::ClusterFault::Refused(e)) => {
                cluster.unreachable(&format!("heartbeat: {e}"));
                false
            }
            Err(super::ClusterFault::Unreachable) => false,
        }
    }

    /// Warn about Redis settings that lose data silently: eviction (counters, queued
    /// requests) and an append-only file that is off or not flushed on every write (accepted
    /// queued requests). Redis may refuse `CONFIG` (renamed away): then nothing is said.
    async fn check_redis_settings(&self) {
        let cluster = &self.0;
        let Some(mut connection) = cluster.probe_connection() else {
            return;
        };
        let wanted = [
            ("maxmemory-policy", "noeviction"),
            ("appendonly", "yes"),
            ("appendfsync", "always"),
        ];
        for (name, want) in wanted {
            let mut cmd = redis::cmd("CONFIG");
            cmd.arg("GET").arg(name);
            let Ok(reply) = cluster
                .background(
                    "CONFIG GET",
                    cmd.query_async::<Vec<String>>(&mut connection),
                )
                .await
            else {
                return;
            };
            if let Some(value) = reply.get(1).filter(|v| v.as_str() != want) {
                log::warn!(
                    "cluster: Redis {} has {name} {value}; set it to {want}, or counters and queued requests can be lost",
                    cluster.shown_url()
                );
            }
        }
    }

    /// Leave the live set at shutdown, so the others' shares grow at once.
    async fn leave(&self) {
        let cluster = &self.0;
        let Some(mut connection) = cluster.probe_connection() else {
            return;
        };
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(cluster.key("live")).arg(cluster.instance());
        let _ = cluster
            .bounded("leaving", cmd.query_async::<i64>(&mut connection))
            .await;
    }
}

fn lease_ms(cluster: &Cluster) -> u64 {
    u64::try_from(cluster.settings.lease.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl BackgroundService for ClusterHeartbeat {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let cluster = self.0.clone();
        let Some((connection, recipe)) = self.connect() else {
            ready.notify_ready();
            return;
        };
        cluster.set_connection(connection, recipe);
        let beat_limit = (cluster.settings.lease / 3).max(cluster.settings.timeout);
        if self.beat(START_WAIT.max(cluster.settings.timeout)).await {
            log::info!(
                "cluster: instance {} on Redis {}, {} live instances",
                cluster.instance(),
                cluster.shown_url(),
                cluster.live_instances()
            );
            self.check_redis_settings().await;
        } else {
            // `unreachable` has logged why; say who is starting without it.
            log::warn!(
                "cluster: instance {} starts without Redis {}",
                cluster.instance(),
                cluster.shown_url()
            );
        }
        ready.notify_ready();
        let releaser = tokio::spawn(releaser(cluster.clone()));
        loop {
            let wait = match cluster.is_reachable() {
                true => cluster.settings.lease / 3,
                false => PROBE_INTERVAL,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            self.beat(beat_limit).await;
            let stale = cluster.since_last_beat() > cluster.settings.lease * 2 / 3;
            if stale && cluster.is_reachable() {
                cluster.unreachable(&format!(
                    "no heartbeat answered for {} ms",
                    cluster.since_last_beat().as_millis()
                ));
            }
        }
        self.leave().await;
        releaser.abort();
    }
}

/// Send released slots back that no admission took along, one script call per pool and
/// tick, spare slots unused for `SPARE_IDLE` with them. While Redis is unreachable they are
/// dropped: their leases, no longer renewed, end by themselves.
async fn releaser(cluster: Arc<Cluster>) {
    let mut tick = tokio::time::interval(RELEASE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for registry in cluster.registries() {
            registry.shed_spares(super::SPARE_IDLE);
            loop {
                let seqs = registry.take_released(RELEASES_PER_ADMISSION);
                if seqs.is_empty() {
                    break;
                }
                let Ok(mut connection) = cluster.connection() else {
                    continue;
                };
                let mut release = cluster.scripts.release.prepare_invoke();
                release
                    .key(&**registry.key())
                    .arg(cluster.member_prefix())
                    .arg(seqs);
                let _ = cluster
                    .bounded("release", release.invoke_async::<i64>(&mut connection))
                    .await;
            }
        }
    }
}
