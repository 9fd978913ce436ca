//! The `cluster` section (`cluster.redis_url`, `cluster.key_prefix`, `cluster.lease_ms`,
//! `cluster.timeout_ms`, `cluster.on_redis_error`, `cluster.queue_claim_idle_ms`) and the
//! pools' `cluster_limits` / `cluster_queue`. Every key is checked whether or not cluster
//! mode is on, so turning it on never reveals an old mistake.

use crate::cluster::{ClusterSettings, RedisErrorPolicy};
use crate::config::file::FileConfig;
use crate::config::problem::Problems;
use std::time::Duration;

pub(super) fn cluster(cfg: &FileConfig, problems: &mut Problems) -> Option<ClusterSettings> {
    let c = &cfg.cluster;
    let policy = RedisErrorPolicy::named(&c.on_redis_error);
    if policy.is_none() {
        problems.push(
            "cluster.on_redis_error",
            format!(
                "must be `local`, `open` or `closed`, not `{}`",
                c.on_redis_error
            ),
        );
    }
    if c.key_prefix.is_empty()
        || c.key_prefix.contains(['{', '}'])
        || c.key_prefix.contains(char::is_whitespace)
    {
        problems.push(
            "cluster.key_prefix",
            "must be a non-empty name without braces or spaces",
        );
    }
    if c.lease_ms < 300 {
        problems.push("cluster.lease_ms", "must be at least 300 ms");
    }
    if c.timeout_ms == 0 || c.timeout_ms * 3 > c.lease_ms.max(1) {
        problems.push(
            "cluster.timeout_ms",
            "must be at least 1 ms and at most a third of cluster.lease_ms",
        );
    }
    if c.queue_claim_idle_ms < 100 {
        problems.push("cluster.queue_claim_idle_ms", "must be at least 100 ms");
    }
    if !c.redis_url.is_empty() {
        if let Err(why) = check_url(&c.redis_url) {
            problems.push("cluster.redis_url", why);
        }
    }
    if c.redis_url.is_empty() {
        return None;
    }
    Some(ClusterSettings {
        redis_url: c.redis_url.clone(),
        key_prefix: c.key_prefix.clone(),
        lease: Duration::from_millis(c.lease_ms),
        timeout: Duration::from_millis(c.timeout_ms),
        on_redis_error: policy?,
        queue_claim_idle: Duration::from_millis(c.queue_claim_idle_ms),
    })
}

/// `redis://` or `rediss://` with a host, as the Redis client reads it.
fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    if !matches!(scheme, Some("redis" | "rediss")) {
        return Err(format!(
            "must start with redis:// or rediss://, not `{}`",
            crate::cluster::display_url(url)
        ));
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| format!("not a usable Redis URL: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::FileConfig;

    fn check(yaml: &str) -> (Option<ClusterSettings>, Vec<String>) {
        let cfg: FileConfig = serde_yaml::from_str(yaml).unwrap();
        let mut problems = Problems::default();
        let settings = cluster(&cfg, &mut problems);
        (
            settings,
            problems.0.iter().map(|p| p.path.clone()).collect(),
        )
    }

    #[test]
    fn without_a_redis_url_cluster_mode_is_off() {
        let (settings, problems) = check("PixlProxy: {}");
        assert!(settings.is_none() && problems.is_empty());
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let (settings, problems) = check("cluster: {redis_url: 'redis://127.0.0.1:6379'}");
        assert!(problems.is_empty(), "{problems:?}");
        let s = settings.unwrap();
        assert_eq!(s.key_prefix, "poolgate");
        assert_eq!(s.lease, Duration::from_millis(3000));
        assert_eq!(s.timeout, Duration::from_millis(50));
        assert_eq!(s.on_redis_error, RedisErrorPolicy::Local);
        assert_eq!(s.queue_claim_idle, Duration::from_millis(10_000));
    }

    #[test]
    fn bad_values_name_their_keys() {
        let (_, problems) = check(
            "cluster: {redis_url: 'http://h', on_redis_error: maybe, key_prefix: 'a{b}', lease_ms: 100, timeout_ms: 0, queue_claim_idle_ms: 5}",
        );
        for key in [
            "cluster.redis_url",
            "cluster.on_redis_error",
            "cluster.key_prefix",
            "cluster.lease_ms",
            "cluster.timeout_ms",
            "cluster.queue_claim_idle_ms",
        ] {
            assert!(problems.iter().any(|p| p == key), "{key} in {problems:?}");
        }
    }
}
