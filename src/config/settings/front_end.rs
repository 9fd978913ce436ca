//! The listeners and the front end: `WebServer`'s ports, HTTPS and its certificates chosen by
//! SNI, keep-alives, response headers, `https_force` / `https_header_detect`, the secure
//! headers, active content encoding, the upload limit, the request-head limits, the client
//! timeouts (`http_timeout`, `https_timeout`, `http_keep_alive_timeout`,
//! `http_socket_prelim_timeout`, `http_request_timeout`, `http_max_requests_per_connection`)
//! and the request queue (`http_max_concurrent_requests` and its keys); `http_alt_ports`,
//! `https_alt_ports`, `https_ca_file`, `https_session_resumption`, `https_ticket_key_file`;
//! `http_public_ip_offset` (who the client is).

use crate::config::file::{CompressOptions, WebServerConfig};
use crate::config::problem::Problems;
use crate::front_end::request_head::HEADER_COUNT_CEILING;
use crate::front_end::{
    ClientTimeouts, CompressionPolicy, FrontEndSettings, GlobalResponseHeaders, HeadLimits,
    HeaderPair, HttpsPolicy, KeepAliveMode, RequestQueueSettings, SecureHeaders, UploadLimit,
    CSP_DIRECTIVES,
};
use crate::server::{listen_addr, ListenerSettings, TlsListener, TICKET_SECRET_MIN};
use http::HeaderValue;
use std::time::Duration;

/// Where poolgate listens: `http_port`, `https_port` with their bind addresses and
/// certificates, `http_max_connections`, `http_h2c`.
pub(super) fn listeners(
    web: &WebServerConfig,
    log_dir: &std::path::Path,
    problems: &mut Problems,
) -> ListenerSettings {
    let https = web.https.then(|| {
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
        let bind = match web.https_bind_address.as_str() {
            "" => &web.http_bind_address,
            own => own,
        };
        if !web.https_ca_file.is_empty() && !std::path::Path::new(&web.https_ca_file).is_file() {
            let why = format!("file `{}` not found", web.https_ca_file);
            problems.push("WebServer.https_ca_file", why);
        }
        TlsListener {
            addr: listen_addr(bind, web.https_port),
            alt_addrs: alt_addrs(bind, &web.https_alt_ports),
            cert_file: web.https_cert_file.clone(),
            key_file: web.https_key_file.clone(),
            ca_file: web.https_ca_file.clone(),
            sni: sni_certs(web, problems),
            http2: web.https_http2,
            resumption: web
                .https_session_resumption
                .then(|| ticket_key_file(web, log_dir, problems)),
        }
    });
    alt_ports(web, problems);
    ListenerSettings {
        http_addr: listen_addr(&web.http_bind_address, web.http_port),
        http_alt_addrs: alt_addrs(&web.http_bind_address, &web.http_alt_ports),
        https,
        max_connections: web.http_max_connections,
        h2c: web.http_h2c,
    }
}

/// `https_ticket_key_file`, or `<log_dir>/poolgate-tls-tickets.key`, made absolute. A missing
/// file is created at start; one that is there must hold a secret long enough.
fn ticket_key_file(
    web: &WebServerConfig,
    log_dir: &std::path::Path,
    problems: &mut Problems,
) -> std::path::PathBuf {
    let file = match web.https_ticket_key_file.as_str() {
        "" => log_dir.join("poolgate-tls-tickets.key"),
        own => std::path::PathBuf::from(own),
    };
    if let Ok(meta) = std::fs::metadata(&file) {
        if meta.len() < TICKET_SECRET_MIN as u64 {
            let why = format!(
                "file `{}` holds {} bytes, a ticket key needs at least {TICKET_SECRET_MIN}",
                file.display(),
                meta.len()
            );
            problems.push("WebServer.https_ticket_key_file", why);
        }
    }
    std::path::absolute(&file).unwrap_or(file)
}

fn alt_addrs(bind: &str, ports: &[u16]) -> Vec<String> {
    ports.iter().map(|&port| listen_addr(bind, port)).collect()
}

/// `http_alt_ports` and `https_alt_ports`: each port once, none of them a main port or 0.
fn alt_ports(web: &WebServerConfig, problems: &mut Problems) {
    let mut seen = vec![web.http_port];
    if web.https {
        seen.push(web.https_port);
    }
    let lists = [
        ("http_alt_ports", &web.http_alt_ports),
        ("https_alt_ports", &web.https_alt_ports),
    ];
    for (key, ports) in lists {
        for (i, &port) in ports.iter().enumerate() {
            let path = format!("WebServer.{key}[{i}]");
            if port == 0 {
                problems.push(path, "must be a port from 1 to 65535");
            } else if seen.contains(&port) {
                problems.push(path, format!("port {port} is already listened on"));
            } else {
                seen.push(port);
            }
        }
    }
}

/// The client-facing policies every request reads (static files are added by the caller).
pub(super) fn front_end(
    web: &WebServerConfig,
    problems: &mut Problems,
) -> Option<FrontEndSettings> {
    let keep_alive = KeepAliveMode::parse(&web.http_keep_alives);
    if keep_alive.is_none() {
        problems.push(
            "WebServer.http_keep_alives",
            "must be one of `default`, `request`, `close`",
        );
    }
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
    Some(FrontEndSettings {
        keep_alive: keep_alive?,
        idle_timeout_sec: web.http_timeout,
        response_headers: GlobalResponseHeaders {
            always,
            server,
            by_status: code_headers(web, problems),
            clean: web.http_clean_headers,
        },
        https_policy: https_policy(web, problems),
        secure_headers: secure_headers(web, problems),
        compression: compression(web, problems),
        upload_limit: UploadLimit(web.http_max_upload_size),
        static_files: None,
        head_limits: head_limits(web, problems),
        timeouts: ClientTimeouts {
            http_idle_sec: web.http_timeout,
            https_idle_sec: web.https_timeout,
            keep_alive_sec: web.http_keep_alive_timeout,
            prelim: seconds(web.http_socket_prelim_timeout),
            request: seconds(web.http_request_timeout),
            max_requests_per_connection: web.http_max_requests_per_connection,
        },
        request_queue: request_queue(web, problems),
        public_ip_offset: public_ip_offset(web, problems),
    })
}

/// `http_code_response_headers`: status codes (100-599) to valid header pairs.
fn code_headers(web: &WebServerConfig, problems: &mut Problems) -> Vec<(u16, Vec<HeaderPair>)> {
    let path = "WebServer.http_code_response_headers";
    let Some(codes) = &web.http_code_response_headers else {
        return Vec::new();
    };
    let mut by_status = Vec::new();
    for (code, headers) in codes {
        let pairs = problems.headers(&format!("{path}.{code}"), headers);
        match code.parse::<u16>() {
            Ok(status) if (100..=599).contains(&status) => by_status.push((status, pairs)),
            _ => problems.push(
                format!("{path}.{code}"),
                "not an HTTP status code (100 to 599)",
            ),
        }
    }
    by_status
}

/// Largest `http_public_ip_offset` either way: no chain of proxies is longer.
const MAX_PUBLIC_IP_OFFSET: i64 = 255;

/// `http_public_ip_offset`: -255 to 255.
fn public_ip_offset(web: &WebServerConfig, problems: &mut Problems) -> i32 {
    let offset = web.http_public_ip_offset;
    if !(-MAX_PUBLIC_IP_OFFSET..=MAX_PUBLIC_IP_OFFSET).contains(&offset) {
        let why = format!(
            "must be -{MAX_PUBLIC_IP_OFFSET} to {MAX_PUBLIC_IP_OFFSET} \
             (0 = the first public address, -1 = the socket's)"
        );
        problems.push("WebServer.http_public_ip_offset", why);
        return 0;
    }
    i32::try_from(offset).unwrap_or(0)
}

fn seconds(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

/// `http_max_concurrent_requests`, `http_max_queue_length`, `http_max_queue_active`,
/// `http_queue_skip_uri_match` (the regex is checked even without a limit).
fn request_queue(web: &WebServerConfig, problems: &mut Problems) -> RequestQueueSettings {
    let skip = web
        .http_queue_skip_uri_match
        .as_deref()
        .and_then(|re| problems.regex("WebServer.http_queue_skip_uri_match", re, false));
    RequestQueueSettings {
        max_running: web.http_max_concurrent_requests,
        max_pending: web.http_max_queue_length,
        max_active: web.http_max_queue_active,
        skip,
    }
}

/// Largest `http_max_header_size` (Pingora's own parser refuses heads beyond 1 MiB).
const MAX_HEAD_SIZE: usize = 1024 * 1024 - 1;

/// `http_max_header_size`, `http_max_request_line`, `http_max_header_count`,
/// `http_header_timeout`, `http_allow_te_and_cl`.
fn head_limits(web: &WebServerConfig, problems: &mut Problems) -> HeadLimits {
    let limits = HeadLimits {
        max_size: web.http_max_header_size,
        max_line: web.http_max_request_line,
        max_headers: web.http_max_header_count,
        deadline: (web.http_header_timeout > 0)
            .then(|| Duration::from_secs(web.http_header_timeout)),
        allow_te_and_cl: web.http_allow_te_and_cl,
    };
    if !(1024..=MAX_HEAD_SIZE).contains(&limits.max_size) {
        let why = format!("must be 1024 to {MAX_HEAD_SIZE} bytes");
        problems.push("WebServer.http_max_header_size", why);
    }
    if limits.max_line < 64 || limits.max_line > limits.max_size {
        let why = "must be at least 64 bytes and at most http_max_header_size";
        problems.push("WebServer.http_max_request_line", why);
    }
    if !(1..=HEADER_COUNT_CEILING).contains(&limits.max_headers) {
        let why = format!("must be 1 to {HEADER_COUNT_CEILING}");
        problems.push("WebServer.http_max_header_count", why);
    }
    limits
}

fn https_policy(web: &WebServerConfig, problems: &mut Problems) -> HttpsPolicy {
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
    HttpsPolicy {
        force_to_port: (web.https_force && web.https).then_some(web.https_port),
        detect,
    }
}

fn secure_headers(web: &WebServerConfig, problems: &mut Problems) -> Option<SecureHeaders> {
    let known: Vec<&str> = CSP_DIRECTIVES.iter().map(|d| d.0).collect();
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
    SecureHeaders::new(&extra)
        .map_err(|e| problems.push("WebServer.csp_allowed", e.to_string()))
        .ok()
}

/// `http_compress_text` / `http_gzip_text`, `http_regex_text`, the levels and brotli.
fn compression(web: &WebServerConfig, problems: &mut Problems) -> CompressionPolicy {
    let on = web.http_compress_text || web.http_gzip_text;
    // Compiled even with compression off, so turning it on cannot break the config.
    let text_types = problems
        .regex("WebServer.http_regex_text", &web.http_regex_text, true)
        .filter(|_| on);
    let gzip_level = level(problems, "http_gzip_opts", &web.http_gzip_opts, 6, 9);
    let brotli_level = level(problems, "http_brotli_opts", &web.http_brotli_opts, 4, 11);
    CompressionPolicy {
        text_types,
        gzip_level,
        brotli_level: web.http_enable_brotli.then_some(brotli_level),
    }
}

fn level(
    problems: &mut Problems,
    key: &str,
    opts: &CompressOptions,
    default: u32,
    max: u32,
) -> u32 {
    match opts.level {
        None => default,
        Some(n) if (1..=max).contains(&n) => n,
        Some(_) => {
            problems.push(
                format!("WebServer.{key}.level"),
                format!("must be 1 to {max}"),
            );
            default
        }
    }
}

/// `https_sni_certs` as (name, cert file, key file), each file checked to exist.
fn sni_certs(web: &WebServerConfig, problems: &mut Problems) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (name, files) in &web.https_sni_certs {
        let path = format!("WebServer.https_sni_certs.{name}");
        let valid_name = name
            .strip_prefix("*.")
            .unwrap_or(name)
            .split('.')
            .all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid_name {
            problems.push(path.clone(), "not a host name or `*.domain`");
        }
        for (key, file) in [
            ("cert_file", &files.cert_file),
            ("key_file", &files.key_file),
        ] {
            if !std::path::Path::new(file).is_file() {
                problems.push(format!("{path}.{key}"), format!("file `{file}` not found"));
            }
        }
        out.push((
            name.clone(),
            files.cert_file.clone(),
            files.key_file.clone(),
        ));
    }
    out
}
