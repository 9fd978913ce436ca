//! What a server is built from: the validated plain settings `config` produces. Nothing here
//! is a runtime object; `server::run` builds those from it, each by its owner.

use super::privileges::Identity;
use crate::front_end::FrontEndSettings;
use crate::pool::PoolSettings;
use crate::queue::QueueSettings;
use crate::stats::StatsSettings;
use regex::Regex;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a running poolgate is built from.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) process: ProcessSettings,
    pub(crate) listeners: ListenerSettings,
    pub(crate) front_end: FrontEndSettings,
    /// In config order.
    pub(crate) pools: Vec<PoolEntry>,
    pub(crate) stats: StatsSettings,
    /// `http_log_requests` with its `http_regex_log`; `None` = off.
    pub(crate) request_log: Option<Regex>,
    /// Values never logged in the clear (stats API tokens, back-end credentials).
    pub(crate) secrets: Vec<String>,
    /// pixl-server's event-log keys (`log_columns`, `log_filters`, `log_crashes`, ...).
    pub(crate) logging: crate::event_log::LogOptions,
    /// The `cluster` section; `None` = cluster mode off.
    pub(crate) cluster: Option<crate::cluster::ClusterSettings>,
}

/// A pool and, with `use_queue`, its blind queue.
#[derive(Debug)]
pub(crate) struct PoolEntry {
    pub(crate) pool: PoolSettings,
    pub(crate) queue: Option<QueueSettings>,
    /// Cluster mode: `cluster_limits` (the pool's limits are shared).
    pub(crate) cluster_limits: bool,
    /// Cluster mode: `cluster_queue` (the pool's queue is shared).
    pub(crate) cluster_queue: bool,
}

/// The process: pixl-server's top-level keys and poolgate's own.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSettings {
    /// Worker threads of the proxy service; 0 = one per CPU.
    pub(crate) threads: usize,
    /// `shutdown_timeout_sec`.
    pub(crate) shutdown_timeout: Duration,
    /// `pid_file`, or `<log_dir>/poolgate.pid`, absolute.
    pub(crate) pid_file: PathBuf,
    /// The event log: `log_dir` / `log_filename`.
    pub(crate) log_path: PathBuf,
    /// `upgrade_sock`, absolute.
    pub(crate) upgrade_sock: PathBuf,
    pub(crate) debug_level: u8,
    /// `uid` / `gid`: who to run as once the listeners are bound.
    pub(crate) identity: Identity,
    /// `PixlProxy.nice`.
    pub(crate) nice: i32,
    /// `demo_origin_port`; 0 = off.
    pub(crate) demo_origin_port: u16,
    /// pixl-server's `debug`: `start` runs in the foreground instead of detaching.
    pub(crate) foreground: bool,
    /// pixl-server's `stdout` / `stderr`: where `start`'s detached process writes them.
    pub(crate) stdout: Option<PathBuf>,
    pub(crate) stderr: Option<PathBuf>,
}

impl ProcessSettings {
    /// The directory of the event log (and of `start`'s stderr file).
    pub(crate) fn log_dir(&self) -> PathBuf {
        self.log_path
            .parent()
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
    }
}

/// Where poolgate listens.
#[derive(Debug, Clone)]
pub(crate) struct ListenerSettings {
    /// `ip:port` of the plain HTTP listener.
    pub(crate) http_addr: String,
    /// `http_alt_ports`: more plain HTTP listeners, served alike.
    pub(crate) http_alt_addrs: Vec<String>,
    pub(crate) https: Option<TlsListener>,
    /// `http_max_connections`: open client connections allowed at once; 0 = no limit.
    pub(crate) max_connections: usize,
    /// `http_h2c`: cleartext HTTP/2 on the HTTP listener.
    pub(crate) h2c: bool,
}

impl ListenerSettings {
    /// Every listen address (a reload cannot change them).
    pub(crate) fn addrs(&self) -> Vec<String> {
        let mut addrs = vec![self.http_addr.clone()];
        addrs.extend(self.http_alt_addrs.iter().cloned());
        if let Some(tls) = &self.https {
            addrs.push(tls.addr.clone());
            addrs.extend(tls.alt_addrs.iter().cloned());
        }
        addrs
    }
}

/// The HTTPS listener and its certificates.
#[derive(Debug, Clone)]
pub(crate) struct TlsListener {
    pub(crate) addr: String,
    /// `https_alt_ports`: more HTTPS listeners with the same certificates.
    pub(crate) alt_addrs: Vec<String>,
    pub(crate) cert_file: String,
    pub(crate) key_file: String,
    /// `https_ca_file`: the chain sent after `cert_file`'s certificates; empty = none.
    pub(crate) ca_file: String,
    /// `https_sni_certs`: (server name or `*.domain`, cert file, key file).
    pub(crate) sni: Vec<(String, String, String)>,
    /// `https_http2`: offer HTTP/2 by ALPN.
    pub(crate) http2: bool,
    /// `https_session_resumption`: the file of `https_ticket_key_file` (its default made
    /// absolute); `None`: resumption off.
    pub(crate) resumption: Option<std::path::PathBuf>,
}

/// The shortest `https_ticket_key_file` secret the session tickets' keys may be derived from
/// (and the length of one poolgate creates).
pub(crate) const TICKET_SECRET_MIN: usize = 32;
