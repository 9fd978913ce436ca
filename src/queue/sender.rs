//! The blind queue's Pingora background service: it opens the journals (adopting what earlier
//! processes left) before the proxy starts serving, runs the senders, keeps adopting segments
//! that processes leave behind (an upgrade's old process), feeds the senders of a cluster's
//! shared queues from Redis, and drains the queues on shutdown.

use super::journal::QueueJournal;
use super::send::{Delivery, Outcome, Report};
use super::store::QueueStore;
use super::{BlindQueue, QueuedRequest};
use crate::cluster::ClusterFault;
use crate::event_log::{redact, Transaction, CONSOLE_ONLY};
use crate::pool::Pool;
use crate::stats::ErrorEntry;
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How often segments left by other processes are looked for.
const ADOPT_INTERVAL: Duration = Duration::from_secs(2);
/// How often the shared stream is looked at when nothing arrived locally.
const FETCH_POLL: Duration = Duration::from_millis(50);
/// How often the shared stream's length is asked (the stats).
const MEASURE_INTERVAL: Duration = Duration::from_secs(1);
/// Time kept back from the shutdown timeout to write what is left before Pingora stops.
const DRAIN_MARGIN: Duration = Duration::from_millis(500);

pub(crate) struct QueueSender {
    queues: Vec<(Arc<Pool>, Arc<BlindQueue>)>,
    connector: Arc<Connector>,
    /// `shutdown_timeout_sec`: how long queued requests are still sent after SIGTERM.
    drain_time: Duration,
}

impl QueueSender {
    /// The sender for every queue with its pool; `None` when there is none.
    pub(crate) fn new(
        queues: Vec<(Arc<Pool>, Arc<BlindQueue>)>,
        connector: Connector,
        drain_time: Duration,
    ) -> Option<Self> {
        (!queues.is_empty()).then(|| QueueSender {
            queues,
            connector: Arc::new(connector),
            drain_time,
        })
    }

    async fn open_journals(&self) {
        for (pool, queue) in &self.queues {
            let Some(dir) = queue.settings.journal_dir.clone() else {
                continue;
            };
            let (id, spool, fsync) = (
                pool.id.to_string(),
                queue.settings.spool_dir.clone(),
                queue.settings.fsync,
            );
            let opened =
                tokio::task::spawn_blocking(move || QueueJournal::open(&dir, &id, &spool, fsync))
                    .await;
            match opened {
                Ok(Ok((journal, recovered))) => {
                    if !recovered.is_empty() {
                        log::info!(
                            "[{}] queue: {} unfinished requests recovered from the journal",
                            pool.id,
                            recovered.len()
                        );
                    }
                    let _ = queue.store.set(QueueStore::Journal(journal));
                    recovered.into_iter().for_each(|r| queue.recovered(r));
                }
                Ok(Err(e)) => log::error!(
                    "[{}] queue journal in {}: {e}; queued requests get 503",
                    pool.id,
                    queue
                        .settings
                        .journal_dir
                        .as_deref()
                        .unwrap_or(".".as_ref())
                        .display()
                ),
                Err(e) => log::error!("[{}] queue journal: {e}", pool.id),
            }
        }
    }

    fn start_tasks(&self) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        for (pool, queue) in &self.queues {
            for _ in 0..queue.settings.workers {
                let (pool, queue, connector) =
                    (pool.clone(), queue.clone(), self.connector.clone());
                tasks.push(tokio::spawn(worker(pool, queue, connector)));
            }
            if queue.is_durable() && queue.store().is_some() {
                tasks.push(tokio::spawn(adopter(queue.clone())));
            }
            if queue.shared().is_some() {
                tasks.push(tokio::spawn(fetcher(pool.clone(), queue.clone())));
            }
        }
        tasks
    }

    /// Stop accepting, keep sending until the queues are empty or the time is up, then leave
    /// the rest in the journal (or count it dropped).
    async fn drain(&self, tasks: Vec<JoinHandle<()>>) {
        self.queues.iter().for_each(|(_, q)| q.close());
        let deadline = Instant::now() + self.drain_time.saturating_sub(DRAIN_MARGIN);
        let busy = |q: &BlindQueue| {
            let s = q.stats();
            s.pending + s.in_flight
        };
        let left: usize = self.queues.iter().map(|(_, q)| busy(q)).sum();
        log::info!(
            "queue: shutting down; new queued requests get 503; sending {left} queued requests for up to {} ms",
            deadline.saturating_duration_since(Instant::now()).as_millis()
        );
        while Instant::now() < deadline && self.queues.iter().any(|(_, q)| busy(q) > 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tasks.iter().for_each(JoinHandle::abort);
        for (pool, queue) in &self.queues {
            let left = busy(queue);
            if let Some(stream) = queue.shared() {
                let spilled = stream.spilled();
                if let Some(store) = queue.store().filter(|_| queue.is_durable()) {
                    store.close().await;
                }
                if left > 0 {
                    log::warn!(
                        "[{}] queue: {left} requests left in the cluster's queue; another instance takes them over after cluster.queue_claim_idle_ms",
                        pool.id
                    );
                }
                if spilled > 0 && !queue.is_durable() {
                    queue
                        .counters
                        .dropped
                        .fetch_add(spilled as u64, Ordering::Relaxed);
                    log::error!(
                        "[{}] queue: {spilled} requests accepted while Redis was unreachable dropped at shutdown (set queue_dir to keep them)",
                        pool.id
                    );
                }
                continue;
            }
            match queue.store().filter(|_| queue.is_durable()) {
                Some(store) => {
                    store.close().await;
                    if left > 0 {
                        log::warn!(
                            "[{}] queue: {left} requests left in the journal; the next start sends them",
                            pool.id
                        );
                    }
                }
                None => {
                    for req in queue.drop_waiting() {
                        if let Some(path) = req.body.spool_file() {
                            let _ = tokio::fs::remove_file(path).await;
                        }
                    }
                    if left > 0 {
                        let in_flight = queue.counters.in_flight.swap(0, Ordering::AcqRel);
                        queue
                            .counters
                            .dropped
                            .fetch_add(in_flight as u64, Ordering::Relaxed);
                        log::error!(
                            "[{}] queue: {left} queued requests dropped at shutdown (the queue is in memory; set queue_dir to keep them)",
                            pool.id
                        );
                    }
                }
            }
        }
        self.queues
            .iter()
            .for_each(|(_, q)| q.drained.store(true, Ordering::Release));
    }
}

#[async_trait]
impl BackgroundService for QueueSender {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        self.open_journals().await;
        ready.notify_ready();
        let tasks = self.start_tasks();
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        self.drain(tasks).await;
    }
}

async fn worker(pool: Arc<Pool>, queue: Arc<BlindQueue>, connector: Arc<Connector>) {
    loop {
        let req = queue.next().await;
        let delivery = Delivery {
            pool: &pool,
            queue: &queue,
            connector: &connector,
        };
        let report = delivery.run(&req).await;
        let status = match report.outcome {
            Outcome::Delivered { status, .. } => status,
            Outcome::Failed { .. } => report.status,
        };
        pool.stats.record(&report.perf, status);
        pool.metrics.observe(status, &report.perf);
        if let Outcome::Failed { what, attempts } = &report.outcome {
            pool.errors.record(|| ErrorEntry {
                when_ms: crate::timing::clock::unix_ms(),
                pool: Some(pool.id.clone()),
                status,
                cause: format!(
                    "queued request {}: {what} after {attempts} attempts",
                    req.id
                )
                .into(),
                method: req.header.method.clone(),
                uri: req.header.uri.clone(),
                target: None,
            });
        }
        log_report(&pool, &req, &report);
        if let Some(stream) = queue.shared() {
            stream.done(req.id).await;
        } else if let Some(store) = queue.store() {
            store.done(req.id, req.body.spool_file().cloned()).await;
        }
        queue.finished(matches!(report.outcome, Outcome::Delivered { .. }));
    }
}

/// Cluster mode: keep this instance's workers supplied from the shared stream (new entries,
/// then entries other instances left idle), renew what it holds, and move what spilled while
/// Redis was unreachable into the stream.
async fn fetcher(pool: Arc<Pool>, queue: Arc<BlindQueue>) {
    let Some(stream) = queue.shared() else {
        return;
    };
    let cluster = stream.cluster.clone();
    let claim_idle = cluster.settings.queue_claim_idle;
    let spool = queue.settings.spool_dir.clone();
    let mut group_ready = false;
    let mut next_claim = Instant::now();
    let mut next_renewal = Instant::now() + claim_idle / 3;
    let mut next_measure = Instant::now();
    while !queue.is_closing() {
        if !cluster.is_reachable() {
            group_ready = false;
            tokio::time::sleep(FETCH_POLL * 2).await;
            continue;
        }
        if !group_ready {
            match stream.ensure_group().await {
                Ok(()) => group_ready = true,
                Err(e) => {
                    // Unreachable is the cluster's to log (once per change).
                    if let ClusterFault::Refused(e) = e {
                        log::error!("[{}] queue: the cluster's consumer group: {e}", pool.id);
                    }
                    tokio::time::sleep(FETCH_POLL * 4).await;
                    continue;
                }
            }
        }
        stream.catch_up(queue.store()).await;
        let now = Instant::now();
        if now >= next_renewal {
            stream.renew().await;
            next_renewal = now + claim_idle / 3;
        }
        if now >= next_measure {
            stream.measure().await;
            next_measure = now + MEASURE_INTERVAL;
        }
        let free = |q: &BlindQueue| {
            let s = q.counters.waiting.load(Ordering::Acquire)
                + q.counters.in_flight.load(Ordering::Acquire);
            q.settings.workers.saturating_sub(s)
        };
        let mut got = 0;
        if free(&queue) > 0 && now >= next_claim {
            if let Ok(taken) = stream.claim(free(&queue), &spool).await {
                got += taken.len();
                taken.into_iter().for_each(|r| queue.push_fetched(r));
            }
            next_claim = now + (claim_idle / 4).max(FETCH_POLL);
        }
        if free(&queue) > 0 {
            if let Ok(fetched) = stream.fetch(free(&queue), &spool).await {
                got += fetched.len();
                fetched.into_iter().for_each(|r| queue.push_fetched(r));
            }
        }
        if got == 0 {
            // Nothing new (or no worker free): wait for a local intake or the next poll.
            let _ = tokio::time::timeout(FETCH_POLL, stream.added.notified()).await;
        }
    }
}

async fn adopter(queue: Arc<BlindQueue>) {
    loop {
        tokio::time::sleep(ADOPT_INTERVAL).await;
        let Some(store) = queue.store() else {
            return;
        };
        for req in store.adopt().await {
            queue.recovered(req);
        }
    }
}

/// The console line, and the pool's transaction or error line with the `request_id`.
fn log_report(pool: &Pool, req: &QueuedRequest, report: &Report) {
    let (id, method) = (&req.id, &req.header.method);
    let uri = req.header.uri.to_string();
    let uri = redact::text(&uri);
    let target = pool
        .primary_target()
        .map(|t| t.base_url())
        .unwrap_or_default();
    let ms = report.perf.total().as_millis();
    let error = match &report.outcome {
        Outcome::Delivered { status, attempts } => {
            log::debug!(
                target: CONSOLE_ONLY,
                "[{}] Proxy Request Completed: HTTP {status}: queued request {id}: {method} {target}{uri} ({attempts} attempts, {ms} ms)",
                pool.id
            );
            None
        }
        Outcome::Failed { what, attempts } => {
            log::error!(
                target: CONSOLE_ONLY,
                "[{}] Proxy Request Error: queued request {id}: {method} {target}{uri} failed after {attempts} attempts ({ms} ms): {what}",
                pool.id
            );
            Some(what.clone())
        }
    };
    Transaction {
        pool: &pool.id,
        url: format!("{target}{uri}"),
        method: method.as_str(),
        req_headers: &req.header.headers,
        status: report.status,
        resp_headers: report.resp_headers.as_ref(),
        perf: &report.perf,
        failed: error.is_some(),
        error,
        request_id: id.to_string(),
    }
    .log(&pool.logging);
}
