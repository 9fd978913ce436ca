//! Graceful shutdown that ends as soon as the work is done. On SIGTERM Pingora stops accepting,
//! closes idle connections and then sleeps its whole grace period (`shutdown_timeout_sec`)
//! whatever is left. This background service watches instead: once no client connection is
//! open and every blind queue has drained, it flushes the event log, removes the pid file and
//! exits 0. If the work is not done by the timeout, Pingora's own deadline ends the process
//! (the pid file is removed first either way).

use super::connection_limit::ConnectionLimit;
use crate::event_log;
use crate::queue::BlindQueue;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) struct ShutdownMonitor {
    pub(super) connections: Arc<ConnectionLimit>,
    pub(super) queues: Vec<Arc<BlindQueue>>,
    pub(super) pid_file: Option<PathBuf>,
    /// `shutdown_timeout_sec`.
    pub(super) timeout: Duration,
}

impl ShutdownMonitor {
    fn work_left(&self) -> bool {
        self.connections.open() > 0 || self.queues.iter().any(|q| !q.is_drained())
    }

    /// Remove the pid file, unless a newer process (a reload) has written its own pid there.
    fn remove_pid_file(&self) {
        let Some(path) = &self.pid_file else { return };
        let ours =
            std::fs::read_to_string(path).is_ok_and(|t| t.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[async_trait]
impl BackgroundService for ShutdownMonitor {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let deadline = Instant::now() + self.timeout;
        while self.work_left() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.remove_pid_file();
        if self.work_left() {
            log::warn!("shutdown_timeout_sec reached with requests still in flight; stopping them");
            return;
        }
        log::info!("every request finished; exiting");
        event_log::flush(Duration::from_secs(1));
        std::process::exit(0);
    }
}
