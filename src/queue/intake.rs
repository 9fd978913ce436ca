//! The request side of the blind queue: read the body (spooled to a file beyond
//! `queue_spool_bytes`), store the request, queue it, and tell the proxy what to answer:
//! PixlProxy's JSON (`{"code":0,"description":"Proxy request enqueued successfully.",
//! "request_id":"..."}`) at once. Refusals are JSON too: 429 when the queue is full, 413 for a
//! body over `http_max_upload_size`, 503 while shutting down or when the store cannot be
//! written; a per-client limit answers as the pool's throttling does.

use super::shared::{Put, QueueStream};
use super::{BlindQueue, QueueSettings, QueuedBody, QueuedRequest, RequestId};
use crate::admission::Refusal;
use crate::cluster::{ClusterFault, RedisErrorPolicy};
use crate::event_log::{self, CONSOLE_ONLY};
use crate::front_end::{declared_len, ClientFacts};
use crate::pool::Pool;
use crate::timing::clock;
use bytes::BytesMut;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use serde_json::{json, Value};
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

/// The answer of a shared queue's intake while the cluster's Redis cannot be reached and
/// `cluster.on_redis_error` is `closed`.
const UNAVAILABLE: &str = "Proxy queue is unavailable: the cluster's Redis cannot be reached.";

/// What the intake did with a request, for the proxy to answer.
#[derive(Debug)]
pub(crate) enum Intake {
    /// Stored and queued: 200 with its id.
    Queued(RequestId),
    /// Over a per-client limit: 429 as the pool's throttling answers it.
    Throttled(Refusal),
    /// Refused by the queue, with PixlProxy's JSON error.
    Refused { status: u16, why: String },
}

impl Intake {
    /// The JSON answer of a queued or refused request (`None` for `Throttled`).
    pub(crate) fn json(&self) -> Option<(u16, Value)> {
        match self {
            Intake::Queued(id) => Some((
                200,
                json!({
                    "code": 0,
                    "description": "Proxy request enqueued successfully.",
                    "request_id": id.to_string(),
                }),
            )),
            Intake::Refused { status, why } => {
                Some((*status, json!({ "code": status, "description": why })))
            }
            Intake::Throttled(_) => None,
        }
    }
}

fn refused(status: u16, why: impl Into<String>) -> Intake {
    Intake::Refused {
        status,
        why: why.into(),
    }
}

/// Take the request into `queue` (the queue of `pool`).
pub(crate) async fn enqueue(
    session: &mut Session,
    pool: &Pool,
    queue: &BlindQueue,
    client: ClientFacts,
) -> Result<Intake> {
    // Per-client limits apply here; the pool-wide ones on each send.
    match pool.admission.admit_client(client.ip).await {
        Ok(()) => {}
        Err(Refusal::Unavailable) => return Ok(refused(503, UNAVAILABLE)),
        Err(refusal) => return Ok(Intake::Throttled(refusal)),
    }
    if queue.is_closing() {
        return Ok(refused(503, "Proxy queue is shutting down."));
    }
    if let Some(stream) = queue.shared() {
        return enqueue_shared(session, pool, queue, stream, client).await;
    }
    let Some(store) = queue.store() else {
        return Ok(refused(503, "Proxy queue journal is not open."));
    };
    let place = match queue.reserve() {
        Ok(place) => place,
        Err(pending) => return Ok(full(session, pool, pending as u64)),
    };
    let req = match take_request(session, &queue.settings, client).await? {
        Ok(req) => req,
        Err(refusal) => return Ok(refusal),
    };
    if queue.is_closing() {
        // Shutdown began while the body was arriving.
        remove_spool(&req.body).await;
        return Ok(refused(503, "Proxy queue is shutting down."));
    }
    let id = req.id;
    if let Err(e) = store.put(&req).await {
        log::error!("[{}] queue journal write failed: {e}", pool.id);
        remove_spool(&req.body).await;
        return Ok(refused(503, "Proxy queue journal write failed."));
    }
    log::debug!("[{}] queued request {id} ({})", pool.id, describe(session));
    queue.push(place, req);
    Ok(Intake::Queued(id))
}

/// The request with its body read (spooled beyond `queue_spool_bytes`), or the 413 for a body
/// over `http_max_upload_size`.
async fn take_request(
    session: &mut Session,
    settings: &QueueSettings,
    client: ClientFacts,
) -> Result<std::result::Result<QueuedRequest, Intake>> {
    let id = RequestId::new();
    let Some((body, framed)) = read_body(session, settings, id).await? else {
        let why = format!(
            "Request body is larger than http_max_upload_size ({} bytes).",
            settings.max_body_bytes
        );
        session.set_keepalive(None);
        return Ok(Err(refused(413, why)));
    };
    Ok(Ok(QueuedRequest {
        id,
        enqueued_ms: clock::unix_ms(),
        client,
        header: session.req_header().clone(),
        framed,
        body,
    }))
}

/// 429 for a full queue, logged with the request.
fn full(session: &Session, pool: &Pool, pending: u64) -> Intake {
    let why = format!("Proxy queue is full: {pending} requests pending");
    log::error!(target: CONSOLE_ONLY, "[{}] {why} ({})", pool.id, describe(session));
    let req = session.req_header();
    let data = json!({
        "uri": event_log::redact::text(&req.uri.to_string()),
        "method": req.method.as_str(),
        "req_headers": event_log::headers_json(&req.headers),
    });
    event_log::error(&pool.id, 429, &why, data);
    refused(429, why)
}

/// Cluster mode: the request goes into the shared stream (the 200 after Redis took it), or
/// while Redis cannot be reached, per `cluster.on_redis_error`, into the local store until it
/// can be moved there (`local`, `open`) or nowhere (`closed`: 503).
async fn enqueue_shared(
    session: &mut Session,
    pool: &Pool,
    queue: &BlindQueue,
    stream: &QueueStream,
    client: ClientFacts,
) -> Result<Intake> {
    let req = match take_request(session, &queue.settings, client).await? {
        Ok(req) => req,
        Err(refusal) => return Ok(refusal),
    };
    let id = req.id;
    match stream.put(&req, queue.settings.max_length).await {
        Ok(Put::Added) => {
            remove_spool(&req.body).await;
            queue.count_accepted();
            log::debug!(
                "[{}] queued request {id} in the cluster's queue ({})",
                pool.id,
                describe(session)
            );
            return Ok(Intake::Queued(id));
        }
        Ok(Put::Full(pending)) => {
            remove_spool(&req.body).await;
            queue.count_rejected();
            return Ok(full(session, pool, pending));
        }
        Err(ClusterFault::Refused(e)) => {
            log::error!("[{}] cluster queue intake failed: {e}", pool.id);
        }
        Err(ClusterFault::Unreachable) => {}
    }
    if stream.cluster.settings.on_redis_error == RedisErrorPolicy::Closed {
        remove_spool(&req.body).await;
        return Ok(refused(503, UNAVAILABLE));
    }
    let Some(store) = queue.store() else {
        remove_spool(&req.body).await;
        return Ok(refused(503, "Proxy queue journal is not open."));
    };
    if let Err(e) = store.put(&req).await {
        log::error!("[{}] queue journal write failed: {e}", pool.id);
        remove_spool(&req.body).await;
        return Ok(refused(503, "Proxy queue journal write failed."));
    }
    queue.count_accepted();
    log::debug!(
        "[{}] queued request {id} kept here until the cluster's Redis answers",
        pool.id
    );
    stream.spill(req);
    Ok(Intake::Queued(id))
}

fn describe(session: &Session) -> String {
    let req = session.req_header();
    let uri = req.uri.to_string();
    format!("{} {}", req.method, event_log::redact::text(&uri))
}

async fn remove_spool(body: &QueuedBody) {
    if let Some(path) = body.spool_file() {
        let _ = tokio::fs::remove_file(path).await;
    }
}

/// A spool file being written; removed unless the request was queued.
struct SpoolFile {
    path: PathBuf,
    file: tokio::fs::File,
    keep: bool,
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl SpoolFile {
    async fn create(dir: &std::path::Path, id: RequestId) -> Result<SpoolFile> {
        let path = dir.join(format!("{id}.body"));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| spool_error(&path, e))?;
        Ok(SpoolFile {
            path,
            file,
            keep: false,
        })
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        let path = &self.path;
        self.file
            .write_all(data)
            .await
            .map_err(|e| spool_error(path, e))
    }
}

async fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

fn spool_error(path: &std::path::Path, e: std::io::Error) -> Box<Error> {
    let why = format!("queue spool file {}: {e}", path.display());
    log::error!("{why}");
    Error::explain(ErrorType::InternalError, why)
}

/// The whole body, in memory or spooled, and whether the request had body framing; `None`
/// when it is over `max_body_bytes`.
async fn read_body(
    session: &mut Session,
    settings: &QueueSettings,
    id: RequestId,
) -> Result<Option<(QueuedBody, bool)>> {
    let req = session.req_header();
    let declared = declared_len(req);
    let framed = declared.is_some() || req.headers.contains_key(http::header::TRANSFER_ENCODING);
    if declared.is_some_and(|n| n > settings.max_body_bytes) {
        return Ok(None);
    }
    let (mut buf, mut len, mut spool) = (BytesMut::new(), 0u64, None::<SpoolFile>);
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|e| e.into_down())?
    {
        len += chunk.len() as u64;
        if len > settings.max_body_bytes {
            return Ok(None);
        }
        if spool.is_none() && len > settings.spool_bytes {
            let mut file = SpoolFile::create(&settings.spool_dir, id).await?;
            file.write(&buf).await?;
            buf.clear();
            spool = Some(file);
        }
        match &mut spool {
            Some(file) => file.write(&chunk).await?,
            None => buf.extend_from_slice(&chunk),
        }
    }
    let Some(mut file) = spool else {
        return Ok(Some((QueuedBody::Inline(buf.freeze()), framed)));
    };
    let flushed = match settings.fsync {
        // The file and its directory entry, so the journal never names a lost file.
        true => match file.file.sync_data().await {
            Ok(()) => sync_dir(&settings.spool_dir).await,
            Err(e) => Err(e),
        },
        false => file.file.flush().await,
    };
    flushed.map_err(|e| spool_error(&file.path, e))?;
    file.keep = true;
    let body = QueuedBody::Spooled {
        path: file.path.clone(),
        len,
    };
    Ok(Some((body, framed)))
}
