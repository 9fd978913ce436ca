//! What happens when a request ends, whatever path it took: the pool's per-second figures,
//! metrics and recent errors, the console line, the pool's transaction or error line, the
//! client connection's entry in `web.sockets`, and the web server's own figures, recent
//! requests and request log.

use super::context::RequestCtx;
use crate::event_log::{self, Transaction, WebLog, WebRequest};
use crate::front_end::canonical_ip;
use crate::pool::{Pool, Target};
use crate::stats::{Answered, ErrorEntry, RecentErrors, StatsHub};
use pingora::proxy::Session;
use pingora::Error;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn finish(
    session: &Session,
    e: Option<&Error>,
    ctx: &mut RequestCtx,
    hub: &StatsHub,
    web_log: &WebLog,
) {
    // One clock read serves every figure below.
    let now = Instant::now();
    if let Some(perf) = &mut ctx.perf {
        perf.end(now);
    }
    let ctx = &*ctx;
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    record_pool(session, ctx, e, status);
    console_line(session, e, ctx.pool.as_deref(), status);
    log_transaction(session, e, ctx, status);
    let (bytes_in, bytes_out) = (session.body_bytes_read(), session.body_bytes_sent());
    let (bytes_in, bytes_out) = (bytes_in as u64, bytes_out as u64);
    let client_gone = e.filter(|e| client_closed(e));
    // For a socket error: the connection's id in `web.sockets` (else, stats off, its peer
    // address) and its requests before this one.
    let socket_before = client_gone.map(|_| match &ctx.socket {
        Some(s) => (s.label(), s.requests()),
        None => (
            session.client_addr().map_or("-".into(), |a| a.to_string()),
            0,
        ),
    });
    if let Some(socket) = &ctx.socket {
        socket.end(bytes_in, bytes_out);
    }
    let total = ctx
        .arrived
        .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
    let answered = Answered {
        status,
        tls: ctx.client.tls,
        h2: session.is_http2(),
    };
    hub.web.record_total(total, bytes_out, bytes_in, answered);
    if web_log.is_on() || hub.recent.is_on() || client_gone.is_some() {
        let req = web_request(session, ctx, status, total, (bytes_in, bytes_out));
        if let (Some(e), Some((socket, before))) = (client_gone, &socket_before) {
            event_log::socket_closed(socket, &req, *before, &e.to_string());
        }
        let extras = event_log::WebExtras {
            req_headers: Some(&session.req_header().headers),
            resp_headers: session.response_written().map(|r| &r.headers),
            bodies: ctx.bodies.as_deref(),
            perf: ctx.perf.as_ref(),
            gauges: ctx.gauges_at_start,
        };
        web_log.record_with(&req, &extras);
        hub.recent.record(&req);
    }
}

/// With `http_log_perf`: the requests waiting in the pools' queues, the back-end requests
/// running and the open client sockets, as a request arrives (its perf line shows them).
pub(super) fn gauges_for_perf(hub: &StatsHub) -> Option<(usize, usize, usize)> {
    event_log::web_options().perf_threshold?;
    let pools = hub.pools();
    let pending = pools.iter().map(|p| p.pending()).sum();
    let running = pools.iter().map(|p| p.executing()).sum();
    Some((pending, running, hub.open_connections()))
}

/// Whether the request failed because the client closed its socket (or it broke) mid-request.
fn client_closed(e: &Error) -> bool {
    use pingora::{ErrorSource, ErrorType};
    e.esource() == &ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
        )
}

/// The request as the web server saw it, for `http_log_requests` and `web.recent`.
fn web_request(
    session: &Session,
    ctx: &RequestCtx,
    status: u16,
    total: Duration,
    (bytes_in, bytes_out): (u64, u64),
) -> WebRequest {
    let req = session.req_header();
    let header = |name| req.headers.get(name).cloned();
    WebRequest {
        when: crate::timing::clock::unix_ms(),
        method: req.method.clone(),
        tls: ctx.client.tls,
        port: session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map_or(0, |a| a.port()),
        status,
        uri: req.uri.clone(),
        host: header(http::header::HOST),
        ip: ctx.client.ip,
        peer: ctx.client.peer.map(canonical_ip),
        forwarded: ctx.client.chain(&req.headers).named_texts(),
        ua: header(http::header::USER_AGENT),
        total,
        bytes_in,
        bytes_out,
    }
}

/// One console line per request: an error line for failures, a debug line otherwise.
fn console_line(session: &Session, e: Option<&Error>, pool: Option<&Pool>, status: u16) {
    let level = match e {
        Some(_) => log::Level::Error,
        None => log::Level::Debug,
    };
    if !log::log_enabled!(level) {
        return;
    }
    let id = pool.map_or("-", |p| p.id.as_ref());
    let target = pool
        .and_then(Pool::primary_target)
        .map_or("", |t| t.base_url());
    let req = session.req_header();
    let uri = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = event_log::redact::text(uri);
    // With `log_errors` the event log gets the pool's error line with its data instead.
    let log_target = match pool.is_some_and(|p| p.logging.errors) {
        true => event_log::CONSOLE_ONLY,
        false => "poolgate::request_log",
    };
    match e {
        Some(e) => log::error!(
            target: log_target,
            "[{id}] Proxy Request Error: {} {target}{uri} -> HTTP {status}: {e}",
            req.method
        ),
        None => log::debug!(
            "[{id}] Proxy Request Completed: {} {target}{uri} -> HTTP {status}",
            req.method
        ),
    }
}

/// The pool's transaction or error line for this request, if its policy asks for one.
fn log_transaction(session: &Session, e: Option<&Error>, ctx: &RequestCtx, status: u16) {
    let (Some(pool), Some(perf)) = (&ctx.pool, &ctx.perf) else {
        return;
    };
    let failed = e.is_some() || !pool.retry.is_success(status);
    if !pool.logging.wants(failed, perf.total()) {
        return;
    }
    let req = session.req_header();
    let target = ctx.chosen.as_ref().and_then(|c| pool.target(c));
    let base = target
        .or_else(|| pool.primary_target())
        .map_or("", |t| t.base_url());
    let path = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut url = String::with_capacity(base.len() + path.len());
    url.push_str(base);
    url.push_str(path);
    let error = match e {
        Some(e) => Some(e.to_string()),
        None => failed.then(|| format!("HTTP {status}")),
    };
    Transaction {
        pool: &pool.id,
        url,
        method: req.method.as_str(),
        req_headers: &req.headers,
        status,
        resp_headers: session.response_written().map(|r| &r.headers),
        perf,
        error,
        failed,
        request_id: String::new(),
    }
    .log(&pool.logging);
}

/// Feed the pool's per-second figures (back-off, degraded hints, the stats), metrics and
/// recent errors. Only requests admitted to their pool have a phase timer (stopped in
/// `finish`); queued ones are counted by the queue's sender.
fn record_pool(session: &Session, ctx: &RequestCtx, e: Option<&Error>, status: u16) {
    let (Some(pool), Some(perf), false) = (&ctx.pool, &ctx.perf, ctx.queued) else {
        return;
    };
    let answer = if e.is_some() { 0 } else { status };
    pool.stats.end_request();
    pool.stats.record(perf, answer);
    pool.metrics.observe(answer, perf);
    let failed = e.is_some() || !pool.retry.is_success(status);
    if !failed {
        return;
    }
    let target = ctx.chosen.as_ref().and_then(|c| pool.target(c));
    if ctx.failure_uncounted() {
        pool.record_failed_attempt(ctx.chosen.map(|c| c.target));
    }
    note_error(
        &pool.errors,
        Some(&pool.id),
        session,
        status,
        target,
        || match e {
            Some(e) => e.to_string().into(),
            None => format!("HTTP {status} from the back end").into(),
        },
    );
}

/// Keep a failed or refused request in `errors` (the stats' `web.errors`) under `pool`, with
/// the cause `cause` gives; nothing is built when no stats API shows them.
pub(super) fn note_error(
    errors: &RecentErrors,
    pool: Option<&Arc<str>>,
    session: &Session,
    status: u16,
    target: Option<&Target>,
    cause: impl FnOnce() -> Cow<'static, str>,
) {
    errors.record(|| {
        let req = session.req_header();
        ErrorEntry {
            when_ms: crate::timing::clock::unix_ms(),
            pool: pool.cloned(),
            status,
            cause: cause(),
            method: req.method.clone(),
            uri: req.uri.clone(),
            target: target.map(|t| t.base_url().to_string()),
        }
    });
}
