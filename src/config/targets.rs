//! Compiling a pool's back ends: PixlProxy's single `target_hostname`/`target_port`, or
//! poolgate's `targets` list with `load_balancing` and `health_check`.

use super::compile::Problems;
use super::model::{HealthCheckConfig, PoolConfig};
use super::pools::PoolPath;
use crate::pool::health::{CheckKind, TargetHealthCheck};
use crate::pool::redirect::split_authority;
use crate::pool::targets::{
    default_port, BalancedTargets, BalancerSpec, Balancing, HashOn, HealthSettings, Target,
};
use crate::pool::TargetSet;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn target_set(
    id: &str,
    p: &PoolConfig,
    validate_ssl_certs: bool,
    path: &PoolPath,
    problems: &mut Problems,
) -> Option<TargetSet> {
    let tls = match p.target_protocol.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => {
            problems.push(path.key("target_protocol"), "must be `http` or `https`");
            false
        }
    };
    let hostname = p.target_hostname.trim();
    let health = health_check(id, &p.health_check, path, problems);
    let balanced = !p.targets.is_empty() || health.is_some();
    let cache_dns_sec = if balanced { 0 } else { p.cache_dns_sec };
    let targets: Vec<Target> = if p.targets.is_empty() {
        if hostname.is_empty() {
            let message = "required: the back end's host name or IP address (or `targets`)";
            problems.push(path.key("target_hostname"), message);
            return None;
        }
        let port = match p.target_port {
            0 => default_port(tls),
            n => n,
        };
        vec![Target::new(tls, hostname, port, cache_dns_sec)]
    } else {
        if !hostname.is_empty() {
            let message = "give either target_hostname or targets, not both";
            problems.push(path.key("targets"), message);
        }
        listed_targets(p, tls, path, problems)?
    };
    if !balanced {
        return targets.into_iter().next().map(TargetSet::Single);
    }
    let balancing = balancing(p, path, problems)?;
    let targets = Arc::new(targets);
    let health = health.map(|(mut check, interval)| {
        check.targets = targets.clone();
        check.verify_tls = validate_ssl_certs;
        HealthSettings { check, interval }
    });
    let balancer = BalancedTargets::new(BalancerSpec {
        pool_id: id.to_string(),
        targets: targets.clone(),
        balancing,
        cache_dns_sec: p.cache_dns_sec,
        health,
    });
    Some(TargetSet::Balanced { targets, balancer })
}

fn listed_targets(
    p: &PoolConfig,
    tls: bool,
    path: &PoolPath,
    problems: &mut Problems,
) -> Option<Vec<Target>> {
    let mut targets = Vec::new();
    for (i, entry) in p.targets.iter().enumerate() {
        match split_authority(entry.trim(), tls) {
            Some((host, port)) if !entry.contains('/') => {
                targets.push(Target::new(tls, &host, port, 0));
            }
            _ => problems.push(
                format!("{}[{i}]", path.key("targets")),
                format!("`{entry}` is not `host:port`"),
            ),
        }
    }
    (targets.len() == p.targets.len()).then_some(targets)
}

fn balancing(p: &PoolConfig, path: &PoolPath, problems: &mut Problems) -> Option<Balancing> {
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

/// The health check (without its targets yet) and its interval, or `None` for `type: none`.
fn health_check(
    id: &str,
    h: &HealthCheckConfig,
    path: &PoolPath,
    problems: &mut Problems,
) -> Option<(TargetHealthCheck, Duration)> {
    let key = |k: &str| path.key(&format!("health_check.{k}"));
    let kind = match h.kind.as_str() {
        "none" => return None,
        "tcp" => CheckKind::Tcp,
        "http" => {
            if !h.path.starts_with('/') {
                problems.push(key("path"), "must start with `/`");
            }
            let status = problems.regex(&key("status_match"), &h.status_match, false)?;
            CheckKind::Http {
                path: h.path.clone(),
                status,
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
    let check = TargetHealthCheck::new(
        id,
        kind,
        Duration::from_millis(h.timeout_ms.max(1)),
        (h.healthy_threshold, h.unhealthy_threshold),
        Arc::new(Vec::new()),
    );
    Some((check, Duration::from_millis(h.interval_ms.max(1))))
}
