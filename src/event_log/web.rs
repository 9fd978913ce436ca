//! The web server's own request lines (pixl-server-web's `http_log_requests`, filtered by
//! `http_regex_log`): one `WebServer` transaction line per client request, whatever path it
//! took, with `http_log_request_details` also its headers, cookies, query, text bodies up to
//! `http_log_body_max` and its response (secrets redacted); `http_log_perf` with
//! `http_perf_threshold_ms`: a `perf` line for every request that took that long, with its
//! phases; `http_log_socket_errors`: a client that closed its socket mid-request as an error
//! line (else a level 9 debug line). `WebRequest` is the finished request as the web server
//! saw it; the stats API's `web.recent` lists the same records.

use super::{redact, EventLine};
use crate::timing::ms_rounded;
use http::{HeaderValue, Uri};
use regex::Regex;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One finished client request.
#[derive(Debug, Clone)]
pub(crate) struct WebRequest {
    /// Unix time in milliseconds.
    pub(crate) when: u64,
    pub(crate) method: http::Method,
    pub(crate) tls: bool,
    pub(crate) port: u16,
    pub(crate) status: u16,
    pub(crate) uri: Uri,
    pub(crate) host: Option<HeaderValue>,
    /// The client's address (pixl-server-web's `args.ip`, see `front_end::ClientFacts`).
    pub(crate) ip: Option<IpAddr>,
    /// The socket peer's address, the last of `ips`.
    pub(crate) peer: Option<IpAddr>,
    /// The addresses the proxy headers named, before the peer in `ips` (empty without them).
    pub(crate) forwarded: Vec<String>,
    pub(crate) ua: Option<HeaderValue>,
    pub(crate) total: Duration,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

fn text(v: &Option<HeaderValue>) -> &str {
    v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("")
}

impl WebRequest {
    pub(crate) fn status_text(&self) -> &'static str {
        http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
    }

    /// pixl-server-web's `perf` object of one request.
    pub(crate) fn perf(&self) -> Value {
        json!({
            "scale": 1000,
            "perf": {"total": ms_rounded(self.total, 3)},
            "counters": {"bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "num_requests": 1},
        })
    }

    /// Every client address (`args.ips`): the proxy headers', then the socket peer's.
    pub(crate) fn ips(&self) -> Vec<String> {
        let mut ips = self.forwarded.clone();
        ips.extend(self.peer.iter().map(IpAddr::to_string));
        ips
    }

    /// The Host header without its port.
    pub(crate) fn host(&self) -> &str {
        let host = text(&self.host);
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    }

    pub(crate) fn user_agent(&self) -> &str {
        text(&self.ua)
    }

    pub(crate) fn proto(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// Path and query, configured secrets redacted.
    pub(crate) fn path(&self) -> std::borrow::Cow<'_, str> {
        redact::text(self.uri.path_and_query().map_or("/", |pq| pq.as_str()))
    }
}

/// What the proxy knows of a request beyond its `WebRequest` (for the detail and perf lines).
#[derive(Default)]
pub(crate) struct WebExtras<'a> {
    pub(crate) req_headers: Option<&'a http::HeaderMap>,
    /// The response as sent: status and headers.
    pub(crate) resp_headers: Option<&'a http::HeaderMap>,
    pub(crate) bodies: Option<&'a BodyCapture>,
    /// The back-end phases, for a request that went to a pool.
    pub(crate) perf: Option<&'a crate::timing::PerfTimer>,
    /// Requests waiting, requests running and client sockets open.
    pub(crate) gauges: Option<(usize, usize, usize)>,
}

/// The request and response bodies kept for `http_log_request_details`: each up to
/// `http_log_body_max` bytes; a longer one is dropped (pixl-server-web logs none then).
#[derive(Debug, Default)]
pub(crate) struct BodyCapture {
    request: Option<Vec<u8>>,
    response: Option<Vec<u8>>,
    request_over: bool,
    response_over: bool,
}

impl BodyCapture {
    /// Keep a chunk of the request body, when request details are logged.
    pub(crate) fn request(slot: &mut Option<Box<BodyCapture>>, chunk: &[u8]) {
        if let Some(cap) = Self::slot(slot, chunk) {
            let max = super::web_options().body_max;
            keep(&mut cap.request, &mut cap.request_over, chunk, max);
        }
    }

    /// Keep a chunk of the response body (as the back end sent it).
    pub(crate) fn response(slot: &mut Option<Box<BodyCapture>>, chunk: &[u8]) {
        if let Some(cap) = Self::slot(slot, chunk) {
            let max = super::web_options().body_max;
            keep(&mut cap.response, &mut cap.response_over, chunk, max);
        }
    }

    fn slot<'a>(
        slot: &'a mut Option<Box<BodyCapture>>,
        chunk: &[u8],
    ) -> Option<&'a mut BodyCapture> {
        if chunk.is_empty() || !super::web_options().details {
            return None;
        }
        Some(slot.get_or_insert_with(Default::default))
    }
}

fn keep(body: &mut Option<Vec<u8>>, over: &mut bool, chunk: &[u8], max: usize) {
    if *over {
        return;
    }
    let kept = body.as_ref().map_or(0, Vec::len);
    if kept + chunk.len() > max {
        *over = true;
        *body = None;
        return;
    }
    body.get_or_insert_with(Vec::new).extend_from_slice(chunk);
}

/// `http_log_requests` with `http_regex_log`.
#[derive(Debug)]
pub(crate) struct WebLog {
    /// Only requests whose path and query match are logged; `None` = off.
    filter: Option<Regex>,
    /// Requests seen, for pixl-server-web's `r<n>` ids.
    seen: AtomicU64,
}

impl WebLog {
    pub(crate) fn new(filter: Option<Regex>) -> Self {
        WebLog {
            filter,
            seen: AtomicU64::new(0),
        }
    }

    /// Whether any request is logged (so callers skip building a `WebRequest` otherwise).
    pub(crate) fn is_on(&self) -> bool {
        self.filter.is_some() || super::web_options().perf_threshold.is_some()
    }

    /// Count the request and write its line if the filter matches.
    pub(crate) fn record(&self, req: &WebRequest) {
        self.record_with(req, &WebExtras::default());
    }

    /// As `record`, with what the proxy knows besides: the detail and perf lines.
    pub(crate) fn record_with(&self, req: &WebRequest, extras: &WebExtras<'_>) {
        if !self.is_on() {
            return;
        }
        let id = self.seen.fetch_add(1, Ordering::Relaxed);
        let options = super::web_options();
        if let Some(filter) = &self.filter {
            let path = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
            if filter.is_match(path) {
                let mut line = line(id, req);
                if options.details {
                    line.data = Some(details(id, req, extras).to_string());
                }
                super::emit(line);
            }
        }
        if options.perf_threshold.is_some_and(|t| req.total >= t) {
            // Stamped with the request's start, as pixl-server-web does.
            let end = std::time::UNIX_EPOCH + Duration::from_millis(req.when);
            let start = end.checked_sub(req.total).unwrap_or(end);
            super::emit_at(perf_line(id, req, extras), Some(start));
        }
    }
}

/// A client socket closed before its request was answered (`http_log_socket_errors`): an
/// error line, or a level 9 debug line with the key off.
pub(crate) fn socket_closed(socket: &str, req: &WebRequest, requests_before: u64, why: &str) {
    let data = json!({
        "id": socket,
        "proto": req.proto(),
        "port": req.port,
        "time_start": req.when.saturating_sub(req.total.as_millis() as u64),
        "num_requests": requests_before + 1,
        "bytes_in": req.bytes_in,
        "bytes_out": req.bytes_out,
        "total_elapsed": req.total.as_millis() as u64,
        "url": format!("{}://{}{}", req.proto(), text(&req.host), req.path()),
        "ips": req.ips(),
        "error": why,
    });
    let msg = format!("Socket closed unexpectedly: {socket}");
    match super::web_options().socket_errors {
        true => super::emit(EventLine {
            component: "WebServer".into(),
            category: "error",
            code: "socket".into(),
            msg,
            data: Some(data.to_string()),
        }),
        false => super::debug(9, "WebServer", msg, Some(data)),
    }
}

/// The base fields, then pixl-server-web's request details.
fn details(id: u64, req: &WebRequest, extras: &WebExtras<'_>) -> Value {
    let mut data = base(id, req);
    let empty = http::HeaderMap::new();
    let headers = extras.req_headers.unwrap_or(&empty);
    data.insert("headers".into(), super::headers_json(headers));
    data.insert("cookies".into(), cookies(headers));
    data.insert("query".into(), query(req.uri.query().unwrap_or("")));
    let mut params = serde_json::Map::new();
    let bodies = extras.bodies;
    if let Some(raw) = bodies
        .and_then(|b| b.request.as_deref())
        .and_then(text_body)
    {
        params.insert("raw".into(), raw.into());
    }
    data.insert("params".into(), Value::Object(params));
    let mut response = serde_json::Map::new();
    response.insert("code".into(), req.status.into());
    response.insert("status".into(), req.status_text().into());
    let resp_headers = extras.resp_headers.unwrap_or(&empty);
    response.insert("headers".into(), super::headers_json(resp_headers));
    // Only a body the back end sent unencoded is text that can be logged.
    let encoded = resp_headers.contains_key(http::header::CONTENT_ENCODING);
    if let Some(raw) = bodies
        .and_then(|b| b.response.as_deref())
        .filter(|_| !encoded)
        .and_then(text_body)
    {
        response.insert("raw".into(), raw.into());
    }
    data.insert("response".into(), Value::Object(response));
    Value::Object(data)
}

/// A body as logged: UTF-8 text with the configured secrets redacted, or nothing (binary).
fn text_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    Some(redact::text(text).into_owned())
}

/// The request's cookies by name; their values are secret.
fn cookies(headers: &http::HeaderMap) -> Value {
    let mut out = serde_json::Map::new();
    for value in headers.get_all(http::header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let name = pair.split('=').next().unwrap_or("").trim();
            if !name.is_empty() {
                out.insert(name.to_string(), redact::REDACTED.into());
            }
        }
    }
    Value::Object(out)
}

/// The query string as name -> value (a repeated name: a list, as Node's `querystring`),
/// percent-decoded, secrets redacted.
fn query(q: &str) -> Value {
    let mut out = serde_json::Map::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name);
        let value = Value::from(redact::text(&decode(value)).into_owned());
        match out.get_mut(&name) {
            Some(Value::Array(list)) => list.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                out.insert(name, value);
            }
        }
    }
    Value::Object(out)
}

/// `%XX` and `+` decoded (invalid escapes kept as written).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// pixl-server-web's perf line: `[WebServer][perf][200 OK][/uri][{...}]`, the phases measured
/// (the back end's, for a proxied request) after `total`, and the gauges.
fn perf_line(id: u64, req: &WebRequest, extras: &WebExtras<'_>) -> EventLine {
    let mut phases = serde_json::Map::new();
    phases.insert("total".into(), json!(ms_rounded(req.total, 3)));
    if let Some(perf) = extras.perf {
        for (phase, took) in perf.phases() {
            phases.insert(phase.name().into(), json!(ms_rounded(took, 3)));
        }
    }
    let (pending, running, sockets) = extras.gauges.unwrap_or_default();
    let data = json!({
        "id": format!("r{}", id + 1),
        "proto": req.proto(),
        "ips": req.ips(),
        "host": text(&req.host),
        "ua": req.user_agent(),
        "perf": {
            "scale": 1000,
            "perf": phases,
            "counters": {"bytes_in": req.bytes_in, "bytes_out": req.bytes_out, "num_requests": 1},
        },
        "pending": pending,
        "running": running,
        "sockets": sockets,
    });
    EventLine {
        component: "WebServer".into(),
        category: "perf",
        code: format!("{} {}", req.status, req.status_text()).into(),
        msg: req.path().into_owned(),
        data: Some(data.to_string()),
    }
}

/// The fields of every transaction line.
fn base(id: u64, req: &WebRequest) -> serde_json::Map<String, Value> {
    let Value::Object(data) = json!({
        "id": format!("r{}", id + 1),
        "method": req.method.as_str(),
        "proto": req.proto(),
        "ip": req.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "ips": req.ips(),
        "port": req.port,
        "ua": req.user_agent(),
        "host": req.host(),
        "perf": req.perf(),
    }) else {
        return serde_json::Map::new();
    };
    data
}

fn line(id: u64, req: &WebRequest) -> EventLine {
    let data = Value::Object(base(id, req));
    EventLine {
        component: "WebServer".into(),
        category: "transaction",
        code: format!("HTTP {} {}", req.status, req.status_text()).into(),
        msg: req.path().into_owned(),
        data: Some(data.to_string()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn request(n: u64) -> WebRequest {
        WebRequest {
            when: n * 1000,
            method: http::Method::GET,
            tls: false,
            port: 3020,
            status: 200,
            uri: format!("/r{n}").parse().unwrap(),
            host: Some(HeaderValue::from_static("localhost:3020")),
            ip: Some("127.0.0.1".parse().unwrap()),
            peer: Some("127.0.0.1".parse().unwrap()),
            forwarded: Vec::new(),
            ua: None,
            total: Duration::from_micros(1500),
            bytes_in: 10,
            bytes_out: 20,
        }
    }

    #[test]
    fn lines_follow_pixl_server_web() {
        let line = line(3, &request(1));
        assert_eq!(
            (&*line.component, line.category),
            ("WebServer", "transaction")
        );
        assert_eq!((&*line.code, line.msg.as_str()), ("HTTP 200 OK", "/r1"));
        let data = line.data.unwrap();
        assert!(data.starts_with(r#"{"id":"r4","method":"GET","proto":"http","ip":"127.0.0.1","ips":["127.0.0.1"],"port":3020"#), "{data}");
    }

    #[test]
    fn ips_list_the_proxy_headers_addresses_then_the_peer() {
        let mut req = request(1);
        req.ip = Some("203.0.113.7".parse().unwrap());
        req.forwarded = vec!["unknown".into(), "203.0.113.7".into()];
        let data = line(0, &req).data.unwrap();
        let want = r#""ip":"203.0.113.7","ips":["unknown","203.0.113.7","127.0.0.1"]"#;
        assert!(data.contains(want), "{data}");
    }

    #[test]
    fn details_carry_headers_cookies_query_bodies_and_the_response_redacted() {
        let mut headers = http::HeaderMap::new();
        headers.insert("cookie", "session=abc; theme=dark".parse().unwrap());
        headers.insert("x-a", "1".parse().unwrap());
        let mut resp = http::HeaderMap::new();
        resp.insert("content-type", "text/plain".parse().unwrap());
        let mut req = request(1);
        req.uri = "/r?a=1&b=x%20y&a=2".parse().unwrap();
        let mut cap = BodyCapture::default();
        keep(&mut cap.request, &mut cap.request_over, b"hello", 10);
        keep(&mut cap.response, &mut cap.response_over, b"0123456789", 10);
        keep(&mut cap.response, &mut cap.response_over, b"!", 10);
        let extras = WebExtras {
            req_headers: Some(&headers),
            resp_headers: Some(&resp),
            bodies: Some(&cap),
            ..WebExtras::default()
        };
        let data = details(0, &req, &extras);
        assert_eq!(data["headers"]["cookie"], "[redacted]");
        assert_eq!(data["headers"]["x-a"], "1");
        assert_eq!(
            data["cookies"],
            json!({"session": "[redacted]", "theme": "[redacted]"})
        );
        assert_eq!(data["query"], json!({"a": ["1", "2"], "b": "x y"}));
        assert_eq!(data["params"]["raw"], "hello");
        assert_eq!(data["response"]["code"], 200);
        assert_eq!(data["response"]["headers"]["content-type"], "text/plain");
        assert!(
            data["response"].get("raw").is_none(),
            "over the maximum: {data}"
        );
    }

    #[test]
    fn perf_lines_list_total_then_the_phases() {
        let mut t = crate::timing::PerfTimer::start();
        t.lap(crate::timing::Phase::Connect);
        let extras = WebExtras {
            perf: Some(&t),
            gauges: Some((1, 2, 3)),
            ..WebExtras::default()
        };
        let line = perf_line(0, &request(1), &extras);
        assert_eq!((line.category, &*line.code), ("perf", "200 OK"));
        let data: Value = serde_json::from_str(&line.data.unwrap()).unwrap();
        let keys: Vec<_> = data["perf"]["perf"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["total", "connect"]);
        assert_eq!(
            (
                data["pending"].clone(),
                data["running"].clone(),
                data["sockets"].clone()
            ),
            (json!(1), json!(2), json!(3))
        );
    }

    #[test]
    fn query_decoding_keeps_bad_escapes() {
        assert_eq!(decode("a%2Fb+c%zz%4"), "a/b c%zz%4");
    }
}
