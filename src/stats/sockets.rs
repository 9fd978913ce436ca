//! The stats API's `web.sockets`: every open client connection with its state (`idle` or
//! `processing`), address, request count and bytes, and the request in progress with its
//! client addresses (`ips`: the proxy headers', then the socket's; `front_end::ClientFacts`).
//!
//! Connections are registered by the server's connection wrapper (`server/connection_limit.rs`) for their
//! whole life and found by the client's address when a request starts; the table is split in
//! shards behind read-write locks, so a request takes one shard's read lock once.

use crate::event_log::redact;
use crate::front_end::canonical_ip;
use http::{HeaderValue, Method, Uri};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

const SHARDS: usize = 16;

/// The request a connection is serving now.
struct Current {
    method: Method,
    uri: Uri,
    host: Option<HeaderValue>,
    since: Instant,
    /// The addresses the request's proxy headers named (empty without them).
    forwarded: Vec<String>,
}

pub(crate) struct SocketEntry {
    id: u64,
    peer: SocketAddr,
    port: u16,
    tls: AtomicBool,
    requests: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    current: Mutex<Option<Current>>,
}

impl SocketEntry {
    /// A request started on this connection at `since`.
    pub(crate) fn begin(
        &self,
        method: &Method,
        uri: &Uri,
        host: Option<&HeaderValue>,
        tls: bool,
        since: Instant,
        forwarded: Vec<String>,
    ) {
        self.tls.store(tls, Ordering::Relaxed);
        if let Ok(mut current) = self.current.lock() {
            *current = Some(Current {
                method: method.clone(),
                uri: uri.clone(),
                host: host.cloned(),
                since,
                forwarded,
            });
        }
    }

    /// The connection's id in `web.sockets` (`c<N>`).
    pub(crate) fn label(&self) -> String {
        format!("c{}", self.id)
    }

    /// Requests finished on this connection.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The request finished.
    pub(crate) fn end(&self, bytes_in: u64, bytes_out: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        if let Ok(mut current) = self.current.lock() {
            *current = None;
        }
    }

    fn to_json(&self) -> Value {
        let ip = self.peer.ip().to_string();
        let mut out = Map::new();
        let current = self.current.lock().ok();
        let busy = current.as_ref().and_then(|c| c.as_ref());
        out.insert(
            "state".into(),
            if busy.is_some() { "processing" } else { "idle" }.into(),
        );
        out.insert("ip".into(), ip.clone().into());
        let proto = if self.tls.load(Ordering::Relaxed) {
            "https"
        } else {
            "http"
        };
        out.insert("proto".into(), proto.into());
        out.insert("port".into(), self.port.into());
        let elapsed = busy.map_or(0.0, |c| c.since.elapsed().as_secs_f64() * 1000.0);
        out.insert("elapsed_ms".into(), json!(elapsed));
        out.insert(
            "num_requests".into(),
            self.requests.load(Ordering::Relaxed).into(),
        );
        out.insert(
            "bytes_in".into(),
            self.bytes_in.load(Ordering::Relaxed).into(),
        );
        out.insert(
            "bytes_out".into(),
            self.bytes_out.load(Ordering::Relaxed).into(),
        );
        if let Some(c) = busy {
            let mut ips = c.forwarded.clone();
            ips.push(canonical_ip(self.peer.ip()).to_string());
            out.insert("ips".into(), json!(ips));
            out.insert("method".into(), c.method.as_str().into());
            let uri = c.uri.path_and_query().map_or("/", |pq| pq.as_str());
            out.insert("uri".into(), redact::text(uri).into());
            let host = c.host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
            out.insert("host".into(), host.into());
        }
        Value::Object(out)
    }
}

#[derive(Default)]
pub(crate) struct SocketTable {
    shards: [RwLock<HashMap<SocketAddr, Arc<SocketEntry>>>; SHARDS],
    next_id: AtomicU64,
}

/// A registered connection; dropping it removes the entry.
pub(crate) struct SocketGuard<'a> {
    table: &'a SocketTable,
    peer: SocketAddr,
}

impl Drop for SocketGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut shard) = self.table.shard(&self.peer).write() {
            shard.remove(&self.peer);
        }
    }
}

impl SocketTable {
    fn shard(&self, peer: &SocketAddr) -> &RwLock<HashMap<SocketAddr, Arc<SocketEntry>>> {
        &self.shards[(peer.port() as usize) % SHARDS]
    }

    /// Register a new connection from `peer` to local `port`.
    pub(crate) fn open(&self, peer: SocketAddr, port: u16) -> SocketGuard<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(SocketEntry {
            id,
            peer,
            port,
            tls: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            current: Mutex::new(None),
        });
        if let Ok(mut shard) = self.shard(&peer).write() {
            shard.insert(peer, entry);
        }
        SocketGuard { table: self, peer }
    }

    /// The connection a request from `peer` arrived on.
    pub(crate) fn find(&self, peer: SocketAddr) -> Option<Arc<SocketEntry>> {
        self.shard(&peer).read().ok()?.get(&peer).cloned()
    }

    /// `{"c1": {...}, ...}`.
    pub(crate) fn to_json(&self) -> Value {
        let mut entries: Vec<Arc<SocketEntry>> = self
            .shards
            .iter()
            .filter_map(|s| s.read().ok())
            .flat_map(|s| s.values().cloned().collect::<Vec<_>>())
            .collect();
        entries.sort_by_key(|e| e.id);
        Value::Object(
            entries
                .iter()
                .map(|e| (format!("c{}", e.id), e.to_json()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_show_their_state_and_leave_when_closed() {
        let table = SocketTable::default();
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let guard = table.open(peer, 3020);
        let entry = table.find(peer).unwrap();
        entry.begin(
            &Method::GET,
            &"/x?y=1".parse().unwrap(),
            None,
            false,
            Instant::now(),
            vec!["203.0.113.7".into()],
        );
        let json = table.to_json();
        assert_eq!(json["c1"]["state"], "processing");
        assert_eq!(json["c1"]["uri"], "/x?y=1");
        assert_eq!(json["c1"]["ip"], "127.0.0.1");
        assert_eq!(json["c1"]["ips"], json!(["203.0.113.7", "127.0.0.1"]));
        entry.end(10, 20);
        let json = table.to_json();
        assert_eq!(json["c1"]["state"], "idle");
        assert_eq!(
            (
                json["c1"]["num_requests"].as_u64(),
                json["c1"]["bytes_out"].as_u64()
            ),
            (Some(1), Some(20))
        );
        drop(guard);
        assert_eq!(table.to_json(), json!({}));
    }
}
