//! Cluster mode (poolgate's top-level `cluster` section): several poolgate instances share
//! their pools' limits (`max_concurrent_requests`, `max_requests_per_sec`, the per-client
//! `max_requests_per_sec_per_ip` / `max_requests_per_min_per_ip`) and their blind queues on
//! one Redis. Keys `cluster.redis_url`, `cluster.key_prefix`, `cluster.lease_ms`,
//! `cluster.timeout_ms`, `cluster.on_redis_error`, `cluster.queue_claim_idle_ms`.
//!
//! - `engine`: the one multiplexed Redis connection (it reconnects by itself), every
//!   operation bounded by `timeout_ms`, and the circuit breaker: after a failure the request
//!   path skips Redis until the heartbeat reaches it again, so a hung Redis never holds a
//!   request for more than one operation timeout. Reachability changes are logged once each.
//! - `heartbeat`: the Pingora background service that renews this instance's lease, counts the
//!   live instances (the `local` fallback's divisor), renews the leases of the concurrency
//!   slots this instance holds and sends released slots back, batched, off the request path.
//! - `slots`: the concurrency slots this instance holds, per pool, spare ones included.
//! - `scripts`: the Lua scripts: admission is one script (one round trip) using Redis `TIME`,
//!   so instance clocks do not matter.
//!
//! The pools' admission (`crate::admission`) and the blind queue (`crate::queue`) use it; it
//! uses only the leaf `timing`.

mod engine;
mod heartbeat;
mod scripts;
mod slots;

pub(crate) use engine::{Cluster, ClusterFault, ClusterFigures};
pub(crate) use heartbeat::ClusterHeartbeat;
pub(crate) use slots::{SlotRegistry, RELEASES_PER_ADMISSION, SPARE_IDLE};

use std::time::Duration;

/// What an instance does with a decision that needs Redis while Redis cannot be reached
/// (`cluster.on_redis_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedisErrorPolicy {
    /// Each instance enforces its share: the limit divided by the last known number of live
    /// instances (at least 1); queued requests spill into the local store.
    Local,
    /// Admit without the shared limits; queued requests spill into the local store.
    Open,
    /// Refuse with 503.
    Closed,
}

impl RedisErrorPolicy {
    /// The policy named `name` in the config.
    pub(crate) fn named(name: &str) -> Option<Self> {
        match name {
            "local" => Some(RedisErrorPolicy::Local),
            "open" => Some(RedisErrorPolicy::Open),
            "closed" => Some(RedisErrorPolicy::Closed),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            RedisErrorPolicy::Local => "local",
            RedisErrorPolicy::Open => "open",
            RedisErrorPolicy::Closed => "closed",
        }
    }
}

/// The `cluster` section, validated.
#[derive(Debug, Clone)]
pub(crate) struct ClusterSettings {
    /// `cluster.redis_url` (`redis://` or `rediss://`).
    pub(crate) redis_url: String,
    /// `cluster.key_prefix`: every key is `{<prefix>}:...` (one hash slot).
    pub(crate) key_prefix: String,
    /// `cluster.lease_ms`.
    pub(crate) lease: Duration,
    /// `cluster.timeout_ms`: one Redis operation at most.
    pub(crate) timeout: Duration,
    /// `cluster.on_redis_error`.
    pub(crate) on_redis_error: RedisErrorPolicy,
    /// `cluster.queue_claim_idle_ms`.
    pub(crate) queue_claim_idle: Duration,
}

/// `url` with its password (if any) replaced, for logs and the stats.
pub(crate) fn display_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
            None => format!("{scheme}://[redacted]@{host}"),
        },
        None => url.to_string(),
    }
}

/// The password of `url`, if it has one (never logged).
pub(crate) fn url_password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let (auth, _) = rest.rsplit_once('@')?;
    let secret = auth.split_once(':').map_or(auth, |(_, p)| p);
    (!secret.is_empty()).then(|| secret.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_the_displayed_url() {
        assert_eq!(
            display_url("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://:[redacted]@127.0.0.1:6379/0"
        );
        assert_eq!(
            display_url("rediss://app:s3cret@redis.internal"),
            "rediss://app:[redacted]@redis.internal"
        );
        assert_eq!(
            display_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(url_password("redis://:s3cret@h"), Some("s3cret".into()));
        assert_eq!(url_password("redis://app:pw@h"), Some("pw".into()));
        assert_eq!(url_password("redis://h:1"), None);
    }

    #[test]
    fn policies_have_their_config_names() {
        for name in ["local", "open", "closed"] {
            assert_eq!(RedisErrorPolicy::named(name).map(|p| p.name()), Some(name));
        }
        assert_eq!(RedisErrorPolicy::named("maybe"), None);
    }
}
