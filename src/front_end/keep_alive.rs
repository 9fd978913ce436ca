//! `WebServer.http_keep_alives`, `http_timeout`, `https_timeout`, `http_keep_alive_timeout`,
//! `http_socket_prelim_timeout`, `http_request_timeout` and `http_max_requests_per_connection`:
//! whether a client connection stays open after its request, how long it may sit idle, and
//! how long one request may take.

use pingora::proxy::Session;
use std::time::Duration;

/// The client-side timeouts and the per-connection request cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ClientTimeouts {
    /// `http_timeout`: idle read timeout of plain-HTTP sockets, seconds (0 = none).
    pub(crate) http_idle_sec: u64,
    /// `https_timeout`: the same for HTTPS sockets.
    pub(crate) https_idle_sec: u64,
    /// `http_keep_alive_timeout`: idle time between keep-alive requests, seconds (0 = the
    /// socket's idle timeout).
    pub(crate) keep_alive_sec: u64,
    /// `http_socket_prelim_timeout`: a new socket's first request must have arrived by then.
    pub(crate) prelim: Option<Duration>,
    /// `http_request_timeout`: the whole request, from its head to the end of its answer.
    pub(crate) request: Option<Duration>,
    /// `http_max_requests_per_connection` (0 = no limit).
    pub(crate) max_requests_per_connection: u32,
}

impl ClientTimeouts {
    /// The socket's idle read timeout, seconds (0 = none).
    pub(crate) fn idle_sec(&self, tls: bool) -> u64 {
        match tls {
            true => self.https_idle_sec,
            false => self.http_idle_sec,
        }
    }

    /// How long a new socket may wait for its first byte.
    pub(crate) fn first_request(&self, tls: bool) -> Option<Duration> {
        seconds(self.idle_sec(tls))
    }

    /// How long a kept-alive connection may wait for its next request.
    pub(crate) fn between_requests(&self, tls: bool) -> Option<Duration> {
        match self.keep_alive_sec {
            0 => self.first_request(tls),
            n => seconds(n),
        }
    }

    /// The read timeout while a request is served: the idle timeout, within the request
    /// timeout.
    fn reading(&self, tls: bool) -> Option<Duration> {
        match (seconds(self.idle_sec(tls)), self.request) {
            (Some(idle), Some(all)) => Some(idle.min(all)),
            (idle, all) => idle.or(all),
        }
    }
}

fn seconds(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

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

    /// Apply the policy and the read timeout to a new request's connection. Pingora has
    /// already applied the client's own `Connection` header by now. (The front door waits for
    /// the next request itself; the value given to Pingora only says "keep".)
    pub(super) fn apply(self, session: &mut Session, timeouts: &ClientTimeouts, tls: bool) {
        let client_allows = session.get_keepalive().is_some();
        let keep = match self {
            KeepAliveMode::Default => client_allows,
            KeepAliveMode::Request => client_allows && client_asked_keep_alive(session),
            KeepAliveMode::Close => false,
        };
        // Pingora treats Some(0) as "forever", matching http_timeout: 0 (no timeout).
        session.set_keepalive(keep.then_some(timeouts.idle_sec(tls)));
        if let Some(reading) = timeouts.reading(tls) {
            session.set_read_timeout(Some(reading));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_wait_has_its_own_timeout() {
        let t = ClientTimeouts {
            http_idle_sec: 120,
            https_idle_sec: 60,
            keep_alive_sec: 5,
            request: Some(Duration::from_secs(30)),
            ..ClientTimeouts::default()
        };
        assert_eq!(t.first_request(false), Some(Duration::from_secs(120)));
        assert_eq!(t.first_request(true), Some(Duration::from_secs(60)));
        assert_eq!(t.between_requests(true), Some(Duration::from_secs(5)));
        assert_eq!(t.reading(false), Some(Duration::from_secs(30)));
        let t = ClientTimeouts {
            http_idle_sec: 7,
            ..ClientTimeouts::default()
        };
        assert_eq!(t.between_requests(false), Some(Duration::from_secs(7)));
        assert_eq!(t.reading(false), Some(Duration::from_secs(7)));
        assert_eq!(ClientTimeouts::default().reading(false), None);
    }
}
