//! A pool's back ends: PixlProxy's single `target_hostname`/`target_port`, or poolgate's
//! `targets` list with `load_balancing` (and `load_balancing_header`) and `health_check`.
//! `load_balancing` and `health_check.status_match` are checked on every pool, balanced or not.

use crate::config::file::{HealthCheckConfig, PoolConfig};
use crate::config::problem::{PoolPath, Problems};
use crate::pool::{
    default_port, split_authority, BalanceSettings, Balancing, CheckKind, HashOn, HealthSettings,
    TargetAddress, TargetSettings,
};
use std::time::Duration;

pub(super) fn target_settings(
    p: &PoolConfig,
    validate_ssl_certs: bool,
    path: &PoolPath<'_>,
    problems: &mut Problems,
) -> Option<TargetSettings> {
    let tls = match p.target_protocol.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => {
            problems.push(path.key("target_protocol"), "must be `http` or `https`");
            false
        }
    };
    let hostname = p.target_hostname.trim();
    let health = health_check(&p.health_check, validate_ssl_certs, path, problems);
    // Checked on a pool of one target too, where it is not used yet.
    let balancing = balancing(p, path, problems);
    let balanced = !p.targets.is_empty() || health.is_some();
    let targets = if p.targets.is_empty() {
        if hostname.is_empty() {
            let message = "required: the back end's host name or IP address (or `targets`)";
            problems.push(path.key("target_hostname"), message);
            return None;
        }
        let port = match p.target_port {
            0 => default_port(tls),
            n => n,
        };
        vec![TargetAddress {
            tls,
            host: hostname.to_string(),
            port,
        }]
    } else {
        if !hostname.is_empty() {
            let message = "give either target_hostname or targets, not both";
            problems.push(path.key("targets"), message);
        }
        listed_targets(p, tls, path, problems)?
    };
    let balanced = match balanced {
        true => Some(BalanceSettings {
            balancing: balancing?,
            health,
        }),
        false => None,
    };
    Some(TargetSettings {
        targets,
        cache_dns_sec: p.cache_dns_sec,
        balanced,
    })
}

fn listed_targets(
    p: &PoolConfig,
    tls: bool,
    path: &PoolPath<'_>,
    problems: &mut Problems,
) -> Option<Vec<TargetAddress>> {
    let mut targets = Vec::new();
    for (i, entry) in p.targets.iter().enumerate() {
        match split_authority(entry.trim(), tls) {
            Some((host, port)) if !entry.contains('/') => {
                targets.push(TargetAddress { tls, host, port });
            }
            _ => problems.push(
                format!("{}[{i}]", path.key("targets")),
                format!("`{entry}` is not `host:port`"),
            ),
        }
    }
    (targets.len() == p.targets.len()).then_some(targets)
}

fn balancing(p: &PoolConfig, path: &PoolPath<'_>, problems: &mut Problems) -> Option<Balancing> {
    let mut by_header = || {
        let name = p.load_balancing_header.trim();
        match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) => Some(Balancing::Hash(HashOn::Header(name))),
            Err(_) => {
                let message = "required by `header_hash`: the request header to hash";
                problems.push(path.key("load_balancing_header"), message);
                None
            }
        }
    };
    match p.load_balancing.as_str() {
        "round_robin" => Some(Balancing::RoundRobin),
        "random" => Some(Balancing::Random),
        "ip_hash" => Some(Balancing::Hash(HashOn::ClientIp)),
        "uri_hash" => Some(Balancing::Hash(HashOn::Uri)),
        "header_hash" => by_header(),
        _ => {
            let message = "must be `round_robin`, `random`, `ip_hash`, `uri_hash` or `header_hash`";
            problems.push(path.key("load_balancing"), message);
            None
        }
    }
}

/// The health check, or `None` for `type: none`.
fn health_check(
    h: &HealthCheckConfig,
    verify_tls: bool,
    path: &PoolPath<'_>,
    problems: &mut Problems,
) -> Option<HealthSettings> {
    let key = |k: &str| path.key(&format!("health_check.{k}"));
    // Compiled whatever the type, so a bad pattern is found before `type: http` needs it.
    let status = problems.regex(&key("status_match"), &h.status_match, false);
    let kind = match h.kind.as_str() {
        "none" => return None,
        "tcp" => CheckKind::Tcp,
        "http" => {
            if !h.path.starts_with('/') {
                problems.push(key("path"), "must start with `/`");
            }
            CheckKind::Http {
                path: h.path.clone(),
                status: status?,
            }
        }
        _ => {
            problems.push(key("type"), "must be `none`, `tcp` or `http`");
            return None;
        }
    };
    for (k, v) in [("interval_ms", h.interval_ms), ("timeout_ms", h.timeout_ms)] {
        if v == 0 {
            problems.push(key(k), "must be more than 0");
        }
    }
    Some(HealthSettings {
        kind,
        interval: Duration::from_millis(h.interval_ms.max(1)),
        timeout: Duration::from_millis(h.timeout_ms.max(1)),
        healthy_threshold: h.healthy_threshold,
        unhealthy_threshold: h.unhealthy_threshold,
        verify_tls,
    })
}
