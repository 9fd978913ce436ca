//! One log line per request: an error line for failures, a debug line otherwise.
//! (The PixlProxy-format event log replaces this in a later change.)

use crate::pool::Pool;
use pingora::proxy::Session;
use pingora::Error;

pub fn log_request(session: &Session, e: Option<&Error>, pool: Option<&Pool>, status: u16) {
    let level = if e.is_some() {
        log::Level::Error
    } else {
        log::Level::Debug
    };
    if !log::log_enabled!(level) {
        return;
    }
    let id = pool.map_or("-", |p| p.id.as_ref());
    let target = pool
        .and_then(Pool::primary_target)
        .map(|t| t.base_url())
        .unwrap_or_default();
    let req = session.req_header();
    let uri = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    // With `log_errors` the event log gets the pool's error line with its data instead.
    let log_target = match pool.is_some_and(|p| p.logging.errors) {
        true => crate::event_log::CONSOLE_ONLY,
        false => "poolgate::proxy::request_log",
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
