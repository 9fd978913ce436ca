//! The event log's startup lines, in PixlProxy's order: starting up, the process, one line per
//! pool with its settings (credentials never included).

use super::{PoolEntry, Settings};
use crate::event_log;
use serde_json::json;
use std::path::Path;

pub(super) fn announce(settings: &Settings, config_path: &Path) {
    let version = env!("CARGO_PKG_VERSION");
    event_log::debug(
        1,
        "poolgate",
        format!("poolgate v{version} Starting Up"),
        None,
    );
    let process = format!(
        "Config: {}, PID: {}",
        config_path.display(),
        std::process::id()
    );
    event_log::debug(2, "poolgate", process, None);
    if let Some(files) = &settings.front_end.static_files {
        let msg = format!("Serving static files from: {}", files.root().display());
        event_log::debug(2, "poolgate", msg, None);
    }
    // In routing order: the `default` pool last.
    let (default, others): (Vec<_>, Vec<_>) = settings
        .pools
        .iter()
        .partition(|p| p.pool.id == crate::pool::DEFAULT_POOL_ID);
    for entry in others.into_iter().chain(default) {
        let id = entry.pool.id.as_str();
        let msg = format!("Setting up pool: {id}");
        event_log::debug(4, id, msg, Some(summary(entry)));
    }
}

/// What a pool sends where, for the log: targets, connection and traffic settings
/// (credentials never included).
fn summary(entry: &PoolEntry) -> serde_json::Value {
    let pool = &entry.pool;
    let targets: Vec<String> = pool
        .targets
        .targets
        .iter()
        .map(|t| {
            let scheme = if t.tls { "https" } else { "http" };
            format!("{scheme}://{}:{}", t.host, t.port)
        })
        .collect();
    json!({
        "targets": targets,
        "use_keep_alives": pool.use_keep_alives,
        "http_timeout_ms": pool.connect.ttfb_timeout.map_or(0, |t| t.as_millis() as u64),
        "retries": pool.retry.retries,
        "follow_redirects": pool.redirect_hops,
        "use_queue": entry.queue.is_some(),
        "durable_queue": entry.queue.as_ref().is_some_and(|q| q.journal_dir.is_some()),
    })
}
