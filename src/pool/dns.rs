//! Resolving a pool's `target_hostname` without blocking request threads, cached for
//! `cache_dns_sec` (PixlProxy's default 0 resolves for every request).
//!
//! Pingora's `HttpPeer::new("host:port")` resolves with blocking getaddrinfo and panics on
//! failure, so poolgate resolves here (getaddrinfo on tokio's blocking pool) and hands Pingora a
//! ready `SocketAddr`. IP literals never touch DNS.

use pingora::{Error, ErrorType, OrErr, Result};
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct TargetResolver {
    host: String,
    port: u16,
    ttl: Duration,
    /// Set when the host is an IP literal: no lookup ever.
    fixed: Option<SocketAddr>,
    cached: RwLock<Option<(SocketAddr, Instant)>>,
}

impl TargetResolver {
    pub(crate) fn new(host: &str, port: u16, cache_dns_sec: u64) -> Self {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let fixed = literal
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        TargetResolver {
            host: host.to_string(),
            port,
            ttl: Duration::from_secs(cache_dns_sec),
            fixed,
            cached: RwLock::new(None),
        }
    }

    /// Whether the host is an IP literal (never looked up).
    pub(crate) fn is_literal(&self) -> bool {
        self.fixed.is_some()
    }

    /// The address to connect to. Lookup failures are upstream connect errors (502).
    pub(crate) async fn resolve(&self) -> Result<SocketAddr> {
        if let Some(addr) = self.fixed {
            return Ok(addr);
        }
        if let Some(addr) = self.fresh() {
            return Ok(addr);
        }
        let addr = self.lookup().await?;
        if !self.ttl.is_zero() {
            if let Ok(mut slot) = self.cached.write() {
                *slot = Some((addr, Instant::now() + self.ttl));
            }
        }
        Ok(addr)
    }

    fn fresh(&self) -> Option<SocketAddr> {
        let slot = self.cached.read().ok()?;
        slot.filter(|(_, until)| Instant::now() < *until)
            .map(|(addr, _)| addr)
    }

    async fn lookup(&self) -> Result<SocketAddr> {
        let found = tokio::net::lookup_host((self.host.as_str(), self.port)).await;
        let addrs: Vec<SocketAddr> = found
            .explain_err(ErrorType::ConnectNoRoute, |e| {
                format!("DNS lookup of {} failed: {e}", self.host)
            })
            .map_err(|e| e.into_up())?
            .collect();
        // Prefer IPv4: back ends commonly listen on 0.0.0.0 only, while `localhost` often
        // resolves to ::1 first.
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| {
                let context = format!("DNS lookup of {} found no address", self.host);
                Error::explain(ErrorType::ConnectNoRoute, context).into_up()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_literals_need_no_lookup() {
        let r = TargetResolver::new("127.0.0.1", 8080, 0);
        assert_eq!(
            r.resolve().await.unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        let r = TargetResolver::new("[::1]", 80, 0);
        assert_eq!(r.resolve().await.unwrap(), "[::1]:80".parse().unwrap());
    }

    #[tokio::test]
    async fn localhost_resolves_and_is_cached() {
        let r = TargetResolver::new("localhost", 81, 60);
        let addr = r.resolve().await.unwrap();
        assert_eq!(addr.port(), 81);
        assert_eq!(r.fresh(), Some(addr));
    }

    #[tokio::test]
    async fn unknown_host_is_an_error_not_a_panic() {
        let r = TargetResolver::new("no-such-host.invalid", 80, 0);
        assert!(r.resolve().await.is_err());
    }
}
