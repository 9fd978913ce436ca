//! Per-client request limits (`max_requests_per_sec_per_ip`, `max_requests_per_min_per_ip`):
//! fixed windows per client IP in a sharded map, so clients on different shards never contend
//! and memory stays bounded however many addresses appear.

use super::Refusal;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

const SHARDS: usize = 64;
/// Client addresses remembered per shard (64 × 1024 = 65 536 in all). A full shard first
/// forgets expired windows, then an arbitrary client (who then starts a fresh window).
const CLIENTS_PER_SHARD: usize = 1024;

/// One window per client: (window index, requests in it).
type Shard = Mutex<HashMap<IpAddr, (u32, u32)>>;

#[derive(Debug)]
pub(super) struct ClientRateLimit {
    /// The config key, for the 429 message.
    key: &'static str,
    /// As configured.
    configured: u32,
    /// Enforced: `configured`, or a cluster instance's share of it while Redis is away.
    limit: AtomicU32,
    window_sec: u32,
    hasher: RandomState,
    shards: Vec<Shard>,
}

impl ClientRateLimit {
    pub(super) fn per_second(limit: u32) -> Self {
        Self::new("max_requests_per_sec_per_ip", limit, 1)
    }

    pub(super) fn per_minute(limit: u32) -> Self {
        Self::new("max_requests_per_min_per_ip", limit, 60)
    }

    fn new(key: &'static str, limit: u32, window_sec: u32) -> Self {
        ClientRateLimit {
            key,
            configured: limit,
            limit: AtomicU32::new(limit),
            window_sec,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    pub(super) fn configured(&self) -> u32 {
        self.configured
    }

    pub(super) fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    pub(super) fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Count one request of `ip` at second `sec`, or refuse it with the seconds until the
    /// client's window ends.
    pub(super) fn try_admit(&self, ip: IpAddr, sec: u32) -> Result<(), Refusal> {
        let window = sec / self.window_sec;
        let shard = &self.shards[(self.hasher.hash_one(ip) as usize) % SHARDS];
        // A poisoned shard only means another thread panicked mid-update; the counts are
        // still usable.
        let mut clients = shard.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= CLIENTS_PER_SHARD && !clients.contains_key(&ip) {
            clients.retain(|_, (w, _)| *w == window);
            if clients.len() >= CLIENTS_PER_SHARD {
                let victim = clients.keys().next().copied();
                victim.map(|v| clients.remove(&v));
            }
        }
        let entry = clients.entry(ip).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        let limit = self.limit();
        if entry.1 >= limit {
            let window_end = (u64::from(window) + 1) * u64::from(self.window_sec);
            return Err(Refusal::Client {
                key: self.key,
                limit,
                retry_after_sec: window_end.saturating_sub(u64::from(sec)).max(1),
            });
        }
        entry.1 += 1;
        Ok(())
    }

    /// Clients currently remembered.
    #[cfg(test)]
    fn tracked_clients(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn each_client_gets_its_own_window() {
        let l = ClientRateLimit::per_second(2);
        assert!(l.try_admit(ip(1), 50).is_ok());
        assert!(l.try_admit(ip(1), 50).is_ok());
        let refused = l.try_admit(ip(1), 50).unwrap_err();
        assert_eq!(refused.retry_after_sec(), Some(1));
        assert!(
            l.try_admit(ip(2), 50).is_ok(),
            "another client is not affected"
        );
        assert!(l.try_admit(ip(1), 51).is_ok(), "a new second starts over");
    }

    #[test]
    fn per_minute_retry_after_counts_to_the_window_end() {
        let l = ClientRateLimit::per_minute(1);
        assert!(l.try_admit(ip(1), 120).is_ok());
        let refused = l.try_admit(ip(1), 130).unwrap_err();
        assert_eq!(refused.retry_after_sec(), Some(50));
    }

    #[test]
    fn memory_is_bounded_under_many_clients() {
        let l = ClientRateLimit::per_second(5);
        for n in 0..200_000 {
            assert!(l.try_admit(ip(n), 7).is_ok());
        }
        assert!(l.tracked_clients() <= SHARDS * CLIENTS_PER_SHARD);
    }
}
