//! Compiling a typed `FileConfig` into the runtime form the proxy reads: regexes compiled,
//! headers validated, defaults resolved. Every problem is collected, not just the first.

use super::model::{FileConfig, PoolConfig, WebServerConfig};
use super::problem::Problem;
use crate::dns::TargetResolver;
use crate::front_end::{listen_addr, FrontEnd, KeepAliveMode, TlsListener};
use crate::headers::{GlobalResponseHeaders, HeaderPair, RequestRules, ResponseRules, ScrubRule};
use crate::pool::{Pool, Target};
use crate::routing::{RouteCriteria, RouteTable};
use http::HeaderValue;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Everything the running proxy needs, built once at start.
#[derive(Debug)]
pub struct RuntimeConfig {
    pub front: FrontEnd,
    pub routes: RouteTable,
    pub threads: usize,
    pub shutdown_timeout_sec: u64,
    pub pid_file: String,
    pub debug_level: u8,
    pub demo_origin_port: u16,
}

/// Collects problems while compiling so `check` can print all of them at once.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::error(path, message));
    }

    /// A regex, or `None` (with a problem recorded) when it does not compile.
    fn regex(&mut self, path: &str, pattern: &str, case_insensitive: bool) -> Option<Regex> {
        let source = if case_insensitive {
            format!("(?i){pattern}")
        } else {
            pattern.to_string()
        };
        Regex::new(&source)
            .map_err(|e| self.push(path, format!("invalid regex: {}", one_line(&e.to_string()))))
            .ok()
    }

    fn headers(&mut self, path: &str, map: &BTreeMap<String, String>) -> Vec<HeaderPair> {
        map.iter()
            .filter_map(|(k, v)| {
                HeaderPair::new(k, v)
                    .map_err(|e| self.push(format!("{path}.{k}"), e))
                    .ok()
            })
            .collect()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn compile(cfg: &FileConfig) -> Result<RuntimeConfig, Vec<Problem>> {
    let mut problems = Problems::default();
    let front = front_end(&cfg.web_server, &mut problems);
    let mut pools = Vec::new();
    for (id, pool) in &cfg.proxy.pools.0 {
        if let Some(p) = compile_pool(id, pool, cfg.proxy.validate_ssl_certs, &mut problems) {
            pools.push(Arc::new(p));
        }
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
            debug_level: cfg.debug_level,
            demo_origin_port: cfg.demo_origin_port,
        }),
        _ => Err(problems.0),
    }
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
    Some(FrontEnd {
        http_addr: listen_addr(&web.http_bind_address, web.http_port),
        https,
        keep_alive: keep_alive?,
        idle_timeout_sec: web.http_timeout,
        response_headers: GlobalResponseHeaders { always, server },
    })
}

/// Key path of a pool setting, for problem messages.
struct PoolPath<'a>(&'a str);

impl PoolPath<'_> {
    fn key(&self, key: &str) -> String {
        format!("PixlProxy.pools.{}.{key}", self.0)
    }
}

fn compile_pool(
    id: &str,
    p: &PoolConfig,
    validate_ssl_certs: bool,
    problems: &mut Problems,
) -> Option<Pool> {
    let path = PoolPath(id);
    let before = problems.0.len();
    let criteria = route_criteria(p, &path, problems);
    let target = target(p, validate_ssl_certs, &path, problems);
    let request_rules = request_rules(p, &target, &path, problems);
    let response_rules = ResponseRules {
        scrub: scrub(
            problems,
            &path.key("scrub_response_headers"),
            &p.scrub_response_headers,
        ),
        insert: problems.headers(
            &path.key("insert_response_headers"),
            &p.insert_response_headers,
        ),
    };
    if problems.0.len() > before {
        return None;
    }
    Some(Pool {
        id: Arc::from(id),
        criteria,
        x_proxy_only: p.x_proxy_only,
        target,
        request_rules,
        response_rules,
        use_keep_alives: p.use_keep_alives,
        ttfb_timeout: (p.http_timeout_ms > 0).then(|| Duration::from_millis(p.http_timeout_ms)),
        group_key: Pool::group_key_of(id),
    })
}

fn route_criteria(p: &PoolConfig, path: &PoolPath, problems: &mut Problems) -> RouteCriteria {
    let mut criterion = |key: &str, pattern: &Option<String>, case_insensitive: bool| {
        let pattern = pattern.as_deref()?;
        problems.regex(&path.key(key), pattern, case_insensitive)
    };
    RouteCriteria {
        method: criterion("method_match", &p.method_match, true),
        host: criterion("host_match", &p.host_match, true),
        uri: criterion("uri_match", &p.uri_match, false),
    }
}

fn target(
    p: &PoolConfig,
    validate_ssl_certs: bool,
    path: &PoolPath,
    problems: &mut Problems,
) -> Target {
    let tls = match p.target_protocol.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => {
            problems.push(path.key("target_protocol"), "must be `http` or `https`");
            false
        }
    };
    let hostname = p.target_hostname.trim();
    if hostname.is_empty() {
        let message = "required: the back end's host name or IP address";
        problems.push(path.key("target_hostname"), message);
    }
    let port = match p.target_port {
        0 => default_port(tls),
        n => n,
    };
    Target {
        tls,
        hostname: hostname.to_string(),
        port,
        resolver: TargetResolver::new(hostname, port, p.cache_dns_sec),
        verify_tls: validate_ssl_certs,
    }
}

fn default_port(tls: bool) -> u16 {
    if tls {
        443
    } else {
        80
    }
}

fn request_rules(
    p: &PoolConfig,
    target: &Target,
    path: &PoolPath,
    problems: &mut Problems,
) -> RequestRules {
    let authorization = match p.http_basic_auth.as_str() {
        "" => None,
        creds if !creds.contains(':') => {
            problems.push(path.key("http_basic_auth"), "must be `USERNAME:PASSWORD`");
            None
        }
        creds => RequestRules::basic_auth(creds),
    };
    // `preserve_host: false` sends the target host, with the port unless it is the default.
    let host_override = (!p.preserve_host).then(|| {
        let host = if target.port == default_port(target.tls) {
            target.hostname.clone()
        } else {
            format!("{}:{}", target.hostname, target.port)
        };
        HeaderValue::from_str(&host).ok()
    });
    RequestRules {
        scrub: scrub(
            problems,
            &path.key("scrub_request_headers"),
            &p.scrub_request_headers,
        ),
        insert: problems.headers(
            &path.key("insert_request_headers"),
            &p.insert_request_headers,
        ),
        user_agent: header_value(problems, &path.key("http_user_agent"), &p.http_user_agent),
        authorization,
        append_x_forwarded_for: p.append_to_x_forwarded_for,
        host_override: host_override.flatten(),
        close_connection: !p.use_keep_alives,
    }
}

fn scrub(problems: &mut Problems, path: &str, pattern: &str) -> ScrubRule {
    ScrubRule::new(pattern).unwrap_or_else(|e| {
        problems.push(path, format!("invalid regex: {}", one_line(&e.to_string())));
        ScrubRule::none()
    })
}

fn header_value(problems: &mut Problems, path: &str, value: &str) -> Option<HeaderValue> {
    if value.is_empty() {
        return None;
    }
    HeaderValue::from_str(value)
        .map_err(|_| problems.push(path, "not a valid header value"))
        .ok()
}
