//! `WebServer.http_keep_alives` and `http_timeout`: whether a client connection stays open
//! after its request, and how long it may sit idle.

use pingora::proxy::Session;
use std::time::Duration;

/// `WebServer.http_keep_alives`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeepAliveMode {
    /// Keep connections open unless the client sends `Connection: close`.
    Default,
    /// Close connections unless the client sends `Connection: keep-alive`.
    Request,
    /// Close every connection after one request.
    Close,
}

impl KeepAliveMode {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "default" => Some(KeepAliveMode::Default),
            "request" => Some(KeepAliveMode::Request),
            "close" => Some(KeepAliveMode::Close),
            _ => None,
        }
    }

    /// Apply the policy and the idle timeout (`http_timeout`, 0 = none) to a new request's
    /// connection. Pingora has already applied the client's own `Connection` header by now.
    pub(super) fn apply(self, session: &mut Session, idle_timeout_sec: u64) {
        let client_allows = session.get_keepalive().is_some();
        let keep = match self {
            KeepAliveMode::Default => client_allows,
            KeepAliveMode::Request => client_allows && client_asked_keep_alive(session),
            KeepAliveMode::Close => false,
        };
        // Pingora treats Some(0) as "forever", matching http_timeout: 0 (no timeout).
        session.set_keepalive(keep.then_some(idle_timeout_sec));
        if idle_timeout_sec > 0 {
            session.set_read_timeout(Some(Duration::from_secs(idle_timeout_sec)));
        }
    }
}

fn client_asked_keep_alive(session: &Session) -> bool {
    session
        .get_header(http::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("keep-alive"))
        })
}
