//! The event log's startup lines, in PixlProxy's order: starting up, the process, one line per
//! pool with its settings (credentials never included).

use crate::config::RuntimeConfig;
use crate::event_log;
use crate::pool::Pool;
use serde_json::json;
use std::path::Path;

pub fn announce(rt: &RuntimeConfig, config_path: &Path) {
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
    if let Some(files) = &rt.front.static_files {
        let msg = format!("Serving static files from: {}", files.root().display());
        event_log::debug(2, "poolgate", msg, None);
    }
    for pool in rt.routes.pools() {
        let msg = format!("Setting up pool: {}", pool.id);
        event_log::debug(4, &pool.id, msg, Some(summary(pool)));
    }
}

/// What a pool sends where, for the log: targets, connection and traffic settings.
fn summary(pool: &Pool) -> serde_json::Value {
    let targets: Vec<&str> = pool.all_targets().iter().map(|t| t.base_url()).collect();
    json!({
        "targets": targets,
        "use_keep_alives": pool.use_keep_alives,
        "http_timeout_ms": pool.connect.ttfb_timeout.map_or(0, |t| t.as_millis() as u64),
        "retries": pool.retry.retries,
        "follow_redirects": pool.redirect_hops,
        "use_queue": pool.queue.is_some(),
        "durable_queue": pool.queue.as_ref().is_some_and(|q| q.is_durable()),
    })
}
