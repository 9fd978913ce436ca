//! One configured back end: its scheme, name and port, the Host that `preserve_host: false`
//! sends, its resolver (`cache_dns_sec`), and what it has been through (`target_state.rs`).

use super::dns::TargetResolver;
use super::target_state::{TargetActivity, TargetHealth};
use crate::stats::TargetFigures;
use http::HeaderValue;
use std::sync::Arc;

/// The port of a scheme when none is given: 443 for HTTPS, 80 for HTTP.
pub(crate) fn default_port(tls: bool) -> u16 {
    if tls {
        443
    } else {
        80
    }
}

/// One configured back end at run time.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) tls: bool,
    pub(crate) hostname: String,
    pub(crate) port: u16,
    /// What `preserve_host: false` sends as Host: the name, plus the port when not default.
    pub(crate) host_header: Option<HeaderValue>,
    pub(crate) resolver: TargetResolver,
    /// `http://host:port`, written once (every log line names it).
    base_url: String,
    /// Requests in progress, connections and failures (the stats' `targets`).
    pub(crate) activity: Arc<TargetActivity>,
    /// What the health checks found.
    pub(super) health: TargetHealth,
}

/// How a target is watched: whether its request figures are counted, and health-checked.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Watch {
    pub(super) recording: bool,
    pub(super) checked: bool,
}

impl Target {
    pub(super) fn new(
        tls: bool,
        hostname: &str,
        port: u16,
        cache_dns_sec: u64,
        watch: Watch,
    ) -> Self {
        let host = if port == default_port(tls) {
            hostname.to_string()
        } else {
            format!("{hostname}:{port}")
        };
        Target {
            tls,
            hostname: hostname.to_string(),
            port,
            host_header: HeaderValue::from_str(&host).ok(),
            resolver: TargetResolver::new(hostname, port, cache_dns_sec),
            base_url: format!("{}://{hostname}:{port}", if tls { "https" } else { "http" }),
            activity: TargetActivity::new(watch.recording),
            health: TargetHealth::new(watch.checked),
        }
    }

    /// The target as the stats show it.
    pub(super) fn figures(&self) -> TargetFigures {
        let (health, since_ms, last_check) = self.health.read();
        let (active, connections, reused, failures) = self.activity.read();
        TargetFigures {
            url: self.base_url.clone(),
            health,
            since_ms,
            last_check,
            active,
            connections,
            reused,
            failures,
        }
    }

    /// `http://host:port`, for log lines.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// The index of the configured target a discovered backend belongs to (in `Backend::ext`).
#[derive(Debug, Clone, Copy)]
pub(super) struct TargetIndex(pub(super) usize);
