//! A blind queue shared by a cluster's instances (cluster mode, `cluster_queue`): a Redis
//! Stream per pool (`{prefix}:pool:<id>:queue`) with the consumer group `send`.
//!
//! - Intake: one script checks `max_queue_length` against the stream's length and adds the
//!   request (header and body inline) — the client's 200 comes after Redis accepted it (with
//!   AOF `appendfsync always`, after it is on Redis's disk).
//! - Sending: the sender's fetcher reads new entries (`XREADGROUP`) as workers come free;
//!   an entry is acknowledged and deleted (`XACK` + `XDEL`) only after its final answer. The
//!   entries this instance holds are claimed again every `queue_claim_idle_ms / 3` (their idle
//!   time reset), so only an instance that stopped sending loses them: `XAUTOCLAIM` hands
//!   entries idle for `queue_claim_idle_ms` to another instance. Delivery is at least once;
//!   the `X-Proxy-Request-Id` header lets back ends drop a repeat.
//! - Redis unreachable: with `on_redis_error: local` or `open` requests spill into the local
//!   store (the journal when `queue_dir` is set) and move into the stream once Redis is back;
//!   with `closed` the intake answers 503.

use super::record::{self, Record};
use super::request_id::RequestId;
use super::store::QueueStore;
use super::{QueuedBody, QueuedRequest};
use crate::cluster::{Cluster, ClusterFault};
use redis::Value;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The consumer group every instance reads through.
const GROUP: &str = "send";
/// The entry field holding the request record.
const FIELD: &[u8] = b"r";

/// What the intake's script did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Put {
    Added,
    /// The shared queue holds this many requests already (`max_queue_length`).
    Full(u64),
}

/// One pool's stream.
pub(crate) struct QueueStream {
    pub(crate) cluster: Arc<Cluster>,
    key: String,
    /// Entries this instance holds (read, not yet acknowledged), by request id.
    held: Mutex<HashMap<RequestId, String>>,
    /// Accepted while Redis was unreachable, waiting to be moved into the stream.
    spilled: Mutex<VecDeque<QueuedRequest>>,
    /// Acknowledgements that did not reach Redis, sent again when it answers.
    unacked: Mutex<Vec<String>>,
    /// Where `XAUTOCLAIM` goes on from.
    claim_cursor: Mutex<String>,
    /// The stream's length when last asked (the stats' pending requests).
    length: AtomicU64,
    /// The fetcher's wake-up after a local intake.
    pub(crate) added: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl QueueStream {
    pub(crate) fn new(cluster: &Arc<Cluster>, pool: &str) -> Self {
        QueueStream {
            key: cluster.pool_key(pool, "queue"),
            cluster: cluster.clone(),
            held: Mutex::new(HashMap::new()),
            spilled: Mutex::new(VecDeque::new()),
            unacked: Mutex::new(Vec::new()),
            claim_cursor: Mutex::new("0-0".into()),
            length: AtomicU64::new(0),
            added: tokio::sync::Notify::new(),
        }
    }

    /// Add `req` unless the shared queue is full (`max_len`, 0 = no limit).
    pub(crate) async fn put(
        &self,
        req: &QueuedRequest,
        max_len: usize,
    ) -> Result<Put, ClusterFault> {
        let mut connection = self.cluster.connection()?;
        let payload = inline_record(req)
            .await
            .map_err(|e| ClusterFault::Refused(format!("reading the spooled body: {e}")))?;
        let mut call = self.cluster.scripts.queue_put.prepare_invoke();
        call.key(&self.key).arg(max_len).arg(payload);
        let reply = self
            .cluster
            .bounded("queue intake", call.invoke_async::<Value>(&mut connection))
            .await?;
        match reply {
            Value::Array(parts) if parts.first() == Some(&Value::Int(1)) => {
                self.length.fetch_add(1, Ordering::Relaxed);
                self.added.notify_one();
                Ok(Put::Added)
            }
            Value::Array(parts) => Ok(Put::Full(match parts.get(1) {
                Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
                _ => 0,
            })),
            other => Err(ClusterFault::Refused(format!("unexpected reply {other:?}"))),
        }
    }

    /// Keep `req` for the stream until Redis answers again.
    pub(crate) fn spill(&self, req: QueuedRequest) {
        lock(&self.spilled).push_back(req);
    }

    /// Requests waiting to be moved into the stream.
    pub(crate) fn spilled(&self) -> usize {
        lock(&self.spilled).len()
    }

    /// The consumer group, created with the stream if need be.
    pub(crate) async fn ensure_group(&self) -> Result<(), ClusterFault> {
        let mut connection = self.cluster.connection()?;
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(&self.key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self
            .cluster
            .background("queue group", cmd.query_async::<()>(&mut connection))
            .await
        {
            Err(ClusterFault::Refused(e)) if e.contains("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Up to `count` new entries for this instance.
    pub(crate) async fn fetch(
        &self,
        count: usize,
        spool_dir: &Path,
    ) -> Result<Vec<QueuedRequest>, ClusterFault> {
        let mut connection = self.cluster.connection()?;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(self.cluster.instance())
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">");
        let reply = self
            .cluster
            .background("queue read", cmd.query_async::<Value>(&mut connection))
            .await;
        let reply = match reply {
            Err(ClusterFault::Refused(e)) if e.contains("NOGROUP") => {
                self.ensure_group().await?;
                return Ok(Vec::new());
            }
            other => other?,
        };
        let entries = match &reply {
            Value::Array(streams) => streams
                .iter()
                .filter_map(|s| match s {
                    Value::Array(pair) => pair.get(1),
                    _ => None,
                })
                .flat_map(entries)
                .collect(),
            _ => Vec::new(),
        };
        Ok(self.take(entries, spool_dir).await)
    }

    /// Up to `count` entries that other instances left idle for `queue_claim_idle_ms`.
    pub(crate) async fn claim(
        &self,
        count: usize,
        spool_dir: &Path,
    ) -> Result<Vec<QueuedRequest>, ClusterFault> {
        let mut connection = self.cluster.connection()?;
        let cursor = lock(&self.claim_cursor).clone();
        let idle = self.cluster.settings.queue_claim_idle.as_millis() as u64;
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.key)
            .arg(GROUP)
            .arg(self.cluster.instance())
            .arg(idle)
            .arg(cursor)
            .arg("COUNT")
            .arg(count);
        let reply = match self
            .cluster
            .background("queue takeover", cmd.query_async::<Value>(&mut connection))
            .await
        {
            Err(ClusterFault::Refused(e)) if e.contains("NOGROUP") => {
                self.ensure_group().await?;
                return Ok(Vec::new());
            }
            other => other?,
        };
        let Value::Array(parts) = reply else {
            return Ok(Vec::new());
        };
        if let Some(next) = parts.first().and_then(text) {
            *lock(&self.claim_cursor) = next;
        }
        let found = parts.get(1).map(entries).unwrap_or_default();
        let taken = self.take(found, spool_dir).await;
        if !taken.is_empty() {
            self.cluster.count_taken_over(taken.len() as u64);
            log::warn!(
                "cluster: {} queued requests taken over from {} (idle for {idle} ms)",
                taken.len(),
                self.key
            );
        }
        Ok(taken)
    }

    /// Decode fetched entries and hold them; an entry that does not decode is removed.
    async fn take(
        &self,
        found: Vec<(String, Option<Vec<u8>>)>,
        spool_dir: &Path,
    ) -> Vec<QueuedRequest> {
        let mut out = Vec::with_capacity(found.len());
        let mut broken = Vec::new();
        for (entry, payload) in found {
            match payload.as_deref().and_then(|p| decode(p, spool_dir)) {
                Some(req) => {
                    lock(&self.held).insert(req.id, entry);
                    out.push(req);
                }
                None => broken.push(entry),
            }
        }
        if !broken.is_empty() {
            log::error!(
                "cluster: {} entries of {} are not queued requests; removed",
                broken.len(),
                self.key
            );
            self.acknowledge(broken).await;
        }
        out
    }

    /// Reset the idle time of every entry this instance holds, so no one takes them over.
    pub(crate) async fn renew(&self) {
        let ids: Vec<String> = lock(&self.held).values().cloned().collect();
        if ids.is_empty() {
            return;
        }
        let Ok(mut connection) = self.cluster.connection() else {
            return;
        };
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(&self.key)
            .arg(GROUP)
            .arg(self.cluster.instance())
            .arg(0)
            .arg(&ids)
            .arg("JUSTID");
        let _ = self
            .cluster
            .background("queue renewal", cmd.query_async::<Value>(&mut connection))
            .await;
    }

    /// `id` has its final answer: acknowledge and delete its entry.
    pub(crate) async fn done(&self, id: RequestId) {
        let Some(entry) = lock(&self.held).remove(&id) else {
            return;
        };
        self.acknowledge(vec![entry]).await;
    }

    async fn acknowledge(&self, entries: Vec<String>) {
        let sent = match self.cluster.connection() {
            Ok(mut connection) => {
                let mut pipe = redis::pipe();
                pipe.cmd("XACK")
                    .arg(&self.key)
                    .arg(GROUP)
                    .arg(&entries)
                    .ignore();
                pipe.cmd("XDEL").arg(&self.key).arg(&entries).ignore();
                self.cluster
                    .background(
                        "queue acknowledgement",
                        pipe.query_async::<()>(&mut connection),
                    )
                    .await
            }
            Err(fault) => Err(fault),
        };
        match sent {
            Ok(()) => {
                let n = entries.len() as u64;
                let _ = self
                    .length
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                        Some(l.saturating_sub(n))
                    });
            }
            Err(_) => lock(&self.unacked).extend(entries),
        }
    }

    /// Send the acknowledgements that failed, move spilled requests into the stream, and
    /// read the stream's length (the fetcher, while Redis answers).
    pub(crate) async fn catch_up(&self, store: Option<&QueueStore>) {
        let unacked = std::mem::take(&mut *lock(&self.unacked));
        if !unacked.is_empty() {
            self.acknowledge(unacked).await;
        }
        let mut moved = 0usize;
        loop {
            let Some(req) = lock(&self.spilled).pop_front() else {
                break;
            };
            match self.put(&req, 0).await {
                Ok(_) => {
                    moved += 1;
                    if let Some(store) = store {
                        store.done(req.id, req.body.spool_file().cloned()).await;
                    }
                }
                Err(_) => {
                    lock(&self.spilled).push_front(req);
                    break;
                }
            }
        }
        if moved > 0 {
            log::info!(
                "cluster: {moved} queued requests accepted while Redis was unreachable moved into {}",
                self.key
            );
        }
    }

    /// The stream's length, asked of Redis.
    pub(crate) async fn measure(&self) {
        let Ok(mut connection) = self.cluster.connection() else {
            return;
        };
        let mut cmd = redis::cmd("XLEN");
        cmd.arg(&self.key);
        if let Ok(n) = self
            .cluster
            .background("queue length", cmd.query_async::<u64>(&mut connection))
            .await
        {
            self.length.store(n, Ordering::Relaxed);
        }
    }

    /// Requests in the shared queue (when last asked), waiting or being sent.
    pub(crate) fn length(&self) -> u64 {
        self.length.load(Ordering::Relaxed)
    }
}

/// The record of `req` with its body inline (a spooled body is read back).
async fn inline_record(req: &QueuedRequest) -> std::io::Result<Vec<u8>> {
    match &req.body {
        QueuedBody::Inline(_) => Ok(record::put(req)),
        QueuedBody::Spooled { path, .. } => {
            let body = tokio::fs::read(path).await?;
            let copy = QueuedRequest {
                id: req.id,
                enqueued_ms: req.enqueued_ms,
                client: req.client,
                header: req.header.clone(),
                framed: req.framed,
                body: QueuedBody::Inline(body.into()),
            };
            Ok(record::put(&copy))
        }
    }
}

fn decode(payload: &[u8], spool_dir: &Path) -> Option<QueuedRequest> {
    let scan = record::scan(payload, spool_dir);
    scan.records.into_iter().find_map(|(r, _)| match r {
        Record::Put(req) => Some(*req),
        Record::Done(_) => None,
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// `[[id, [field, value, ...]], ...]` as (id, the record field's value).
fn entries(v: &Value) -> Vec<(String, Option<Vec<u8>>)> {
    let Value::Array(list) = v else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|entry| {
            let Value::Array(parts) = entry else {
                return None;
            };
            let id = parts.first().and_then(text)?;
            let payload = match parts.get(1) {
                Some(Value::Array(fields)) => fields.chunks(2).find_map(|kv| match kv {
                    [Value::BulkString(k), Value::BulkString(v)] if k == FIELD => Some(v.clone()),
                    _ => None,
                }),
                _ => None,
            };
            Some((id, payload))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_entries_are_read_with_their_record() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::BulkString(b"1-0".to_vec()),
                Value::Array(vec![
                    Value::BulkString(b"r".to_vec()),
                    Value::BulkString(b"payload".to_vec()),
                ]),
            ]),
            Value::Array(vec![Value::BulkString(b"2-0".to_vec()), Value::Nil]),
        ]);
        assert_eq!(
            entries(&reply),
            vec![
                ("1-0".to_string(), Some(b"payload".to_vec())),
                ("2-0".to_string(), None)
            ]
        );
    }
}
