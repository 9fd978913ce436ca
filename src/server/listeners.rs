//! Listen addresses: how a bind address and port are written, how a local client reaches
//! them, checking that they can be bound before anything starts, and waiting for them.

use super::StartError;
use std::time::{Duration, Instant};

/// `ip:port` for a bind address (empty = all IPv4 addresses) and port.
pub(crate) fn listen_addr(bind: &str, port: u16) -> String {
    let bind = if bind.is_empty() { "0.0.0.0" } else { bind };
    if bind.contains(':') && !bind.starts_with('[') {
        format!("[{bind}]:{port}")
    } else {
        format!("{bind}:{port}")
    }
}

/// A listen address as a local client reaches it (`0.0.0.0` / `[::]` -> loopback).
pub(crate) fn local_addr(listen: &str) -> String {
    listen
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:")
}

/// Wait (at most `limit`) until something accepts connections on the listen address `addr`.
pub(super) async fn wait_until_accepting(addr: &str, limit: Duration) {
    let addr = local_addr(addr);
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Check that every listen address can be bound, so a taken port is reported clearly before
/// anything starts (Pingora itself would fail later, inside a service thread).
pub(super) fn probe(addrs: &[String]) -> Result<(), StartError> {
    for addr in addrs {
        std::net::TcpListener::bind(addr).map_err(|source| StartError::Listen {
            addr: addr.clone(),
            source,
        })?;
    }
    Ok(())
}
