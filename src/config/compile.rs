//! Compiling a typed `FileConfig` into the runtime form the proxy reads: regexes compiled,
//! headers validated, defaults resolved. Every problem is collected, not just the first.

use super::model::{FileConfig, WebServerConfig};
use super::problem::Problem;
use crate::front_end::{listen_addr, FrontEnd, KeepAliveMode, TlsListener};
use crate::pool::headers::{GlobalResponseHeaders, HeaderPair};
use crate::pool::routing::RouteTable;
use http::HeaderValue;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Everything the running proxy needs, built once at start.
#[derive(Debug)]
pub struct RuntimeConfig {
    pub front: FrontEnd,
    pub routes: RouteTable,
    pub threads: usize,
    pub shutdown_timeout_sec: u64,
    pub pid_file: String,
    /// The event log: `log_dir` / `log_filename`.
    pub log_path: std::path::PathBuf,
    /// `upgrade_sock`, absolute.
    pub upgrade_sock: std::path::PathBuf,
    pub debug_level: u8,
    pub demo_origin_port: u16,
    /// The JSON stats API and Prometheus endpoint, with their access rules.
    pub stats_api: crate::stats::api::StatsApi,
    /// `http_log_requests` / `http_regex_log` and `http_recent_requests`.
    pub web_log: crate::stats::web_log::WebLog,
    /// `uid` / `gid`: who to run as once the listeners are bound.
    pub identity: crate::server::privileges::Identity,
    /// `PixlProxy.nice`.
    pub nice: i32,
}

/// Collects problems while compiling so `check` can print all of them at once.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::error(path, message));
    }

    /// A regex, or `None` (with a problem recorded) when it does not compile.
    pub(super) fn regex(
        &mut self,
        path: &str,
        pattern: &str,
        case_insensitive: bool,
    ) -> Option<Regex> {
        let source = if case_insensitive {
            format!("(?i){pattern}")
        } else {
            pattern.to_string()
        };
        Regex::new(&source)
            .map_err(|e| self.push(path, format!("invalid regex: {}", one_line(&e.to_string()))))
            .ok()
    }

    pub(super) fn headers(
        &mut self,
        path: &str,
        map: &BTreeMap<String, String>,
    ) -> Vec<HeaderPair> {
        map.iter()
            .filter_map(|(k, v)| {
                HeaderPair::new(k, v)
                    .map_err(|e| self.push(format!("{path}.{k}"), e))
                    .ok()
            })
            .collect()
    }
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn compile(cfg: &FileConfig) -> Result<RuntimeConfig, Vec<Problem>> {
    let mut problems = Problems::default();
    let mut front = front_end(&cfg.web_server, &mut problems);
    let static_files = super::static_files::static_files(cfg, &mut problems);
    if let Some(front) = &mut front {
        front.static_files = static_files;
    }
    let mut pools = Vec::new();
    for (id, pool) in &cfg.proxy.pools.0 {
        if let Some(p) = super::pools::compile_pool(id, pool, cfg, &mut problems) {
            pools.push(Arc::new(p));
        }
    }
    let stats_api = super::stats::stats_api(cfg, &mut problems);
    let identity = crate::server::privileges::identity(&cfg.uid, &cfg.gid).unwrap_or_else(|e| {
        let key = if e.starts_with("uid") { "uid" } else { "gid" };
        problems.push(key, e);
        crate::server::privileges::Identity {
            uid: None,
            gid: None,
        }
    });
    if !(-20..=19).contains(&cfg.proxy.nice) {
        problems.push("PixlProxy.nice", "must be between -20 and 19");
    }
    let web = &cfg.web_server;
    let log_regex = match web.http_log_requests {
        true => problems.regex("WebServer.http_regex_log", &web.http_regex_log, false),
        false => None,
    };
    // The recent requests and the web server's own per-second figures are read only by the
    // stats API: without it, neither is kept.
    let stats_api_on = cfg.proxy.stats_uri_match.is_some();
    let recent = if stats_api_on {
        web.http_recent_requests
    } else {
        0
    };
    let mut web_log = crate::stats::web_log::WebLog::new(log_regex, recent);
    if !stats_api_on {
        web_log.stats = crate::stats::second::PoolStats::unread();
    }
    if !(1..=10).contains(&cfg.debug_level) {
        problems.push("debug_level", "must be between 1 and 10");
    }
    if cfg.demo_origin_port != 0 && cfg.demo_origin_port == cfg.web_server.http_port {
        problems.push("demo_origin_port", "must differ from WebServer.http_port");
    }
    match (front, problems.0.is_empty()) {
        (Some(front), true) => Ok(RuntimeConfig {
            front,
            routes: RouteTable::new(pools),
            threads: cfg.threads,
            shutdown_timeout_sec: cfg.shutdown_timeout_sec,
            pid_file: cfg.pid_file.clone(),
            log_path: std::path::Path::new(&cfg.log_dir).join(&cfg.log_filename),
            upgrade_sock: upgrade_sock(cfg),
            debug_level: cfg.debug_level,
            demo_origin_port: cfg.demo_origin_port,
            stats_api,
            web_log,
            identity,
            nice: cfg.proxy.nice,
        }),
        _ => Err(problems.0),
    }
}

fn https_policy(
    web: &WebServerConfig,
    problems: &mut Problems,
) -> crate::front_end::https::HttpsPolicy {
    let mut detect = Vec::new();
    for (name, pattern) in &web.https_header_detect {
        let path = format!("WebServer.https_header_detect.{name}");
        let Ok(header) = http::HeaderName::from_bytes(name.as_bytes()) else {
            problems.push(path, "not a valid header name");
            continue;
        };
        if let Some(re) = problems.regex(&path, pattern, true) {
            detect.push((header, re));
        }
    }
    crate::front_end::https::HttpsPolicy {
        force_to_port: (web.https_force && web.https).then_some(web.https_port),
        detect,
    }
}

fn secure_headers(
    web: &WebServerConfig,
    problems: &mut Problems,
) -> Option<crate::front_end::https::SecureHeaders> {
    let known: Vec<&str> = crate::front_end::https::CSP_DIRECTIVES
        .iter()
        .map(|d| d.0)
        .collect();
    for key in web.csp_allowed.keys() {
        if !known.contains(&key.as_str()) {
            let why = format!("unknown directive; one of {}", known.join(", "));
            problems.push(format!("WebServer.csp_allowed.{key}"), why);
        }
    }
    if !web.secure_headers {
        return None;
    }
    let extra: Vec<(String, Vec<String>)> = web
        .csp_allowed
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    crate::front_end::https::SecureHeaders::new(&extra)
        .map_err(|e| problems.push("WebServer.csp_allowed", e))
        .ok()
}

/// `upgrade_sock`, or `<log_dir>/poolgate-upgrade.sock`, made absolute (old and new process
/// must agree on it whatever their working directory).
fn upgrade_sock(cfg: &FileConfig) -> std::path::PathBuf {
    let path = match cfg.upgrade_sock.as_str() {
        "" => std::path::Path::new(&cfg.log_dir).join("poolgate-upgrade.sock"),
        own => std::path::PathBuf::from(own),
    };
    std::path::absolute(&path).unwrap_or(path)
}

fn front_end(web: &WebServerConfig, problems: &mut Problems) -> Option<FrontEnd> {
    let keep_alive = KeepAliveMode::parse(&web.http_keep_alives);
    if keep_alive.is_none() {
        problems.push(
            "WebServer.http_keep_alives",
            "must be one of `default`, `request`, `close`",
        );
    }
    let https = if web.https {
        for (key, value) in [
            ("https_cert_file", &web.https_cert_file),
            ("https_key_file", &web.https_key_file),
        ] {
            if value.is_empty() {
                problems.push(format!("WebServer.{key}"), "required when `https` is true");
            } else if !std::path::Path::new(value).is_file() {
                problems.push(
                    format!("WebServer.{key}"),
                    format!("file `{value}` not found"),
                );
            }
        }
        if web.https_port == web.http_port {
            problems.push("WebServer.https_port", "must differ from http_port");
        }
        let bind = if web.https_bind_address.is_empty() {
            &web.http_bind_address
        } else {
            &web.https_bind_address
        };
        Some(TlsListener {
            addr: listen_addr(bind, web.https_port),
            cert_file: web.https_cert_file.clone(),
            key_file: web.https_key_file.clone(),
            sni: super::protocols::sni_certs(web, problems),
            http2: web.https_http2,
        })
    } else {
        None
    };
    let server = match web.http_server_signature.as_str() {
        "" => None,
        sig => HeaderValue::from_str(sig)
            .map_err(|_| {
                problems.push(
                    "WebServer.http_server_signature",
                    "not a valid header value",
                )
            })
            .ok(),
    };
    let always = problems.headers(
        "WebServer.http_response_headers",
        &web.http_response_headers,
    );
    let https_policy = https_policy(web, problems);
    let secure_headers = secure_headers(web, problems);
    Some(FrontEnd {
        https_policy,
        secure_headers,
        http_addr: listen_addr(&web.http_bind_address, web.http_port),
        https,
        keep_alive: keep_alive?,
        idle_timeout_sec: web.http_timeout,
        response_headers: GlobalResponseHeaders { always, server },
        max_connections: web.http_max_connections,
        compression: super::protocols::compression(web, problems),
        h2c: web.http_h2c,
        upload_limit: crate::proxy::exchange::body::UploadLimit(web.http_max_upload_size),
        static_files: None,
    })
}
