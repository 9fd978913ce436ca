//! Clients a shared per-client limit has refused, remembered until their window ends: a flood
//! from one address is refused here, without a Redis round trip per request.

use super::Refusal;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;

const SHARDS: usize = 64;
/// Addresses remembered per shard; a full shard forgets the expired ones first, then all.
const CLIENTS_PER_SHARD: usize = 1024;

/// (until, in ms of `timing::clock::unix_ms`; the refusal to repeat).
type Shard = Mutex<HashMap<IpAddr, (u64, Refusal)>>;

#[derive(Debug)]
pub(super) struct OverLimitClients {
    hasher: RandomState,
    shards: Vec<Shard>,
}

impl OverLimitClients {
    pub(super) fn new() -> Self {
        OverLimitClients {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, ip: IpAddr) -> &Shard {
        &self.shards[(self.hasher.hash_one(ip) as usize) % SHARDS]
    }

    /// The refusal `ip` still gets at `now_ms`, with `Retry-After` counted down.
    pub(super) fn refused(&self, ip: IpAddr, now_ms: u64) -> Option<Refusal> {
        let mut clients = self.shard(ip).lock().unwrap_or_else(|p| p.into_inner());
        let (until, refusal) = clients.get(&ip)?;
        if *until <= now_ms {
            clients.remove(&ip);
            return None;
        }
        let left = (*until - now_ms).div_ceil(1000).max(1);
        Some(match refusal.clone() {
            Refusal::Client { key, limit, .. } => Refusal::Client {
                key,
                limit,
                retry_after_sec: left,
            },
            other => other,
        })
    }

    /// Refuse `ip` here until `until_ms`.
    pub(super) fn remember(&self, ip: IpAddr, refusal: Refusal, until_ms: u64, now_ms: u64) {
        let mut clients = self.shard(ip).lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= CLIENTS_PER_SHARD {
            clients.retain(|_, (until, _)| *until > now_ms);
            if clients.len() >= CLIENTS_PER_SHARD {
                clients.clear();
            }
        }
        clients.insert(ip, (until_ms, refusal));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_client_is_refused_here_until_its_window_ends() {
        let over = OverLimitClients::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let refusal = Refusal::Client {
            key: "max_requests_per_min_per_ip",
            limit: 5,
            retry_after_sec: 30,
        };
        over.remember(ip, refusal, 30_000, 0);
        let again = over.refused(ip, 10_500).unwrap();
        assert_eq!(again.retry_after_sec(), Some(20));
        assert!(over.refused("10.0.0.2".parse().unwrap(), 10_500).is_none());
        assert!(over.refused(ip, 30_000).is_none(), "the window is over");
        assert!(over.refused(ip, 30_001).is_none(), "and forgotten");
    }
}
