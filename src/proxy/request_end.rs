//! What happens when a request ends, whatever path it took: the pool's per-second activity,
//! stats and metrics, the request log, the pool's transaction or error line, the client
//! connection's entry in `web.sockets`, and the web server's own stats and request log.

use crate::event_log::transaction::Transaction;
use crate::front_end::client_facts;
use crate::proxy::RequestCtx;
use crate::stats::web_log::{WebLog, WebRequest};
use pingora::proxy::Session;
use pingora::Error;
use std::time::{Duration, Instant};

pub fn finish(session: &Session, e: Option<&Error>, ctx: &mut RequestCtx, web_log: &WebLog) {
    // One clock read serves every figure below.
    let now = Instant::now();
    if let Some(perf) = &mut ctx.perf {
        perf.end(now);
    }
    let ctx = &*ctx;
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    record_activity(ctx, e.is_some(), status);
    crate::proxy::request_log::log_request(session, e, ctx.pool.as_deref(), status);
    log_transaction(session, e, ctx, status);
    let (bytes_in, bytes_out) = (session.body_bytes_read(), session.body_bytes_sent());
    let (bytes_in, bytes_out) = (bytes_in as u64, bytes_out as u64);
    if let Some(socket) = &ctx.socket {
        socket.end(bytes_in, bytes_out);
    }
    let total = ctx
        .arrived
        .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
    web_log.stats.record_total(total, bytes_out, bytes_in);
    if web_log.wants() {
        web_log.record(web_request(session, status, total));
    }
}

/// The request as the web server saw it, for `http_log_requests` and `web.recent`.
fn web_request(session: &Session, status: u16, total: Duration) -> WebRequest {
    let req = session.req_header();
    let header = |name| req.headers.get(name).cloned();
    let client = client_facts(session);
    WebRequest {
        when: crate::clock::unix_ms(),
        method: req.method.clone(),
        tls: client.tls,
        port: session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map_or(0, |a| a.port()),
        status,
        uri: req.uri.clone(),
        host: header(http::header::HOST),
        ip: client.ip,
        ua: header(http::header::USER_AGENT),
        total,
        bytes_in: session.body_bytes_read() as u64,
        bytes_out: session.body_bytes_sent() as u64,
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

/// Feed the pool's per-second activity (retry back-off, degraded hints), stats and metrics.
/// Only requests admitted to their pool have a phase timer (stopped in `finish`).
fn record_activity(ctx: &RequestCtx, failed: bool, status: u16) {
    let (Some(pool), Some(perf), false) = (&ctx.pool, &ctx.perf, ctx.queued) else {
        return;
    };
    pool.stats.end_request();
    pool.stats.record(perf);
    pool.metrics.observe(if failed { 0 } else { status }, perf);
    pool.activity.record_completion(perf.total());
    let failed = failed || !pool.retry.is_success(status);
    if failed && !ctx.via_exchange && !ctx.final_error_counted {
        pool.activity.record_error();
    }
}
