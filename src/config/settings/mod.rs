//! Turning the typed file into the validated plain settings a server is built from
//! (`server::Settings`): regexes compiled, headers validated, paths resolved, defaults
//! applied. Every problem is collected, not just the first. Nothing here is a runtime object.
//!
//! The top level and the process here, and whether the config proxies anything at all
//! (`PixlProxy.pools`, `PixlProxy.serve_static_files`); the listeners and the front end in
//! `front_end.rs` (with `static_files.rs`, and the bind addresses in `bind.rs`); a pool in
//! `pools.rs` with its targets (`targets.rs`), limits, retries and degraded hints
//! (`traffic.rs`) and queue (`queue.rs`); the stats in `stats.rs`; cluster mode in
//! `cluster.rs`.
//!
//! Every regex and every value from a fixed set is checked whether or not the feature that
//! uses it is on (`http_regex_log` without `http_log_requests`, `load_balancing` on a pool of
//! one target), so a config that passes `check` keeps passing when a feature is turned on.
//!
//! Uses `config::file` and `config::problem`, `server`'s settings types, and the settings and
//! value types of the concept folders (`front_end`, `pool`, `admission`, `queue`, `stats`,
//! `event_log`).

mod bind;
mod cluster;
mod front_end;
mod logging;
mod pools;
mod queue;
mod static_files;
mod stats;
mod targets;
mod traffic;

use super::file::FileConfig;
use super::problem::{Problem, Problems, Severity};
use crate::server::{identity, Identity, PoolEntry, ProcessSettings, Settings};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) fn settings(cfg: &FileConfig) -> Result<Settings, Vec<Problem>> {
    let mut problems = Problems::default();
    bind::bind_addresses(&cfg.web_server, &mut problems);
    let listeners = front_end::listeners(&cfg.web_server, Path::new(&cfg.log_dir), &mut problems);
    let mut front_end = front_end::front_end(&cfg.web_server, &mut problems);
    if let Some(front_end) = &mut front_end {
        front_end.static_files = static_files::static_files(cfg, &mut problems);
    }
    let mut pools = Vec::new();
    for (id, pool) in &cfg.proxy.pools.0 {
        if let Some(entry) = pools::pool_entry(id, pool, cfg, &mut problems) {
            pools.push(entry);
        }
    }
    let stats = stats::stats(cfg, &mut problems);
    let process = process(cfg, &mut problems);
    let web = &cfg.web_server;
    let request_log = problems
        .regex("WebServer.http_regex_log", &web.http_regex_log, false)
        .filter(|_| web.http_log_requests);
    let secrets = secrets(&stats.api.tokens, &pools);
    let logging = logging::log_options(cfg, &mut problems);
    let cluster = cluster::cluster(cfg, &mut problems);
    let mut secrets = secrets;
    secrets.extend(crate::cluster::url_password(&cfg.cluster.redis_url));
    match (front_end, problems.0.is_empty()) {
        (Some(front_end), true) => Ok(Settings {
            process,
            listeners,
            front_end,
            pools,
            stats,
            request_log,
            secrets,
            logging,
            cluster,
        }),
        _ => Err(problems.0),
    }
}

/// The problem of a config that would run and proxy nothing: no pools and no static files
/// (`empty`: the file holds no document at all). `check` fails on it; `serve` runs it (every
/// request gets 404), as PixlProxy does.
pub(crate) fn nothing_to_proxy(cfg: &FileConfig, empty: bool) -> Option<Problem> {
    if !cfg.proxy.pools.0.is_empty() || cfg.proxy.serve_static_files {
        return None;
    }
    let message = match empty {
        true => "nothing to proxy: no pools (the file is empty)",
        false => "nothing to proxy: no pools, and `PixlProxy.serve_static_files` is off",
    };
    Some(Problem::new(Severity::Idle, "PixlProxy.pools", message))
}

/// The top-level keys (pixl-server's and poolgate's own).
fn process(cfg: &FileConfig, problems: &mut Problems) -> ProcessSettings {
    let identity = identity(&cfg.uid, &cfg.gid).unwrap_or_else(|e| {
        let key = match e {
            crate::server::IdentityError::User(_) => "uid",
            crate::server::IdentityError::Group(_) => "gid",
        };
        problems.push(key, e.to_string());
        Identity {
            uid: None,
            gid: None,
        }
    });
    if !(-20..=19).contains(&cfg.proxy.nice) {
        problems.push("PixlProxy.nice", "must be between -20 and 19");
    }
    if !(1..=10).contains(&cfg.debug_level) {
        problems.push("debug_level", "must be between 1 and 10");
    }
    if cfg.demo_origin_port != 0 && cfg.demo_origin_port == cfg.web_server.http_port {
        problems.push("demo_origin_port", "must differ from WebServer.http_port");
    }
    let log_dir = Path::new(&cfg.log_dir);
    let pid_file = match cfg.pid_file.as_str() {
        "" => log_dir.join("poolgate.pid"),
        path => PathBuf::from(path),
    };
    // `upgrade_sock`, or `<log_dir>/poolgate-upgrade.sock`; old and new process must agree on
    // it whatever their working directory.
    let upgrade_sock = match cfg.upgrade_sock.as_str() {
        "" => log_dir.join("poolgate-upgrade.sock"),
        own => PathBuf::from(own),
    };
    ProcessSettings {
        threads: cfg.threads,
        shutdown_timeout: Duration::from_secs(cfg.shutdown_timeout_sec),
        pid_file: absolute(pid_file),
        log_path: log_dir.join(&cfg.log_filename),
        upgrade_sock: absolute(upgrade_sock),
        debug_level: cfg.debug_level,
        identity,
        nice: cfg.proxy.nice,
        demo_origin_port: cfg.demo_origin_port,
        foreground: cfg.debug,
        stdout: logging::daemon_output(&cfg.stdout),
        stderr: logging::daemon_output(&cfg.stderr),
    }
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// What is never logged in the clear: the stats API tokens and every pool's back-end
/// credentials, as the `Authorization` header carries them.
fn secrets(tokens: &[String], pools: &[PoolEntry]) -> Vec<String> {
    let mut secrets = tokens.to_vec();
    for entry in pools {
        let rules = &entry.pool.request_rules;
        if let Some(auth) = rules.authorization.as_ref().and_then(|v| v.to_str().ok()) {
            secrets.extend(auth.strip_prefix("Basic ").map(String::from));
        }
    }
    secrets
}
