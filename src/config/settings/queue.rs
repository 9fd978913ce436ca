//! A pool's blind-queue settings (`use_queue` and friends) against the global ones
//! (`PixlProxy.queue_dir`, `WebServer.http_temp_dir`, `WebServer.http_max_upload_size`).

use crate::config::file::{FileConfig, PoolConfig};
use crate::config::problem::{PoolPath, Problems};
use crate::queue::{QueueSettings, DEFAULT_WORKERS};
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn queue_settings(
    p: &PoolConfig,
    cfg: &FileConfig,
    path: &PoolPath<'_>,
    problems: &mut Problems,
) -> Option<QueueSettings> {
    if !p.use_queue {
        return None;
    }
    if p.follow_redirects > 0 {
        problems.push(
            path.key("follow_redirects"),
            "queued requests do not follow redirects; turn it off for a pool with use_queue",
        );
    }
    let dir = match p.queue_dir.as_str() {
        "" => cfg.proxy.queue_dir.as_str(),
        own => own,
    };
    let journal_dir = (!dir.is_empty()).then(|| PathBuf::from(dir));
    let spool_dir = match (&journal_dir, cfg.web_server.http_temp_dir.as_str()) {
        (Some(dir), _) => dir.join("spool"),
        (None, "") => std::env::temp_dir(),
        (None, temp) => PathBuf::from(temp),
    };
    Some(QueueSettings {
        max_length: p.max_queue_length,
        requeue_delay: Duration::from_millis(p.throttle_requeue_delay_ms.max(1)),
        workers: match p.max_concurrent_requests {
            0 => DEFAULT_WORKERS,
            n => n,
        },
        spool_bytes: p.queue_spool_bytes,
        max_body_bytes: cfg.web_server.http_max_upload_size,
        spool_dir,
        fsync: p.queue_fsync,
        journal_dir,
    })
}
