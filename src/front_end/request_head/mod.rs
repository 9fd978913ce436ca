//! The request head of an HTTP/1 connection, checked before Pingora parses it (`WebServer`
//! keys `http_max_header_size`, `http_max_request_line`, `http_max_header_count`,
//! `http_header_timeout`, `http_allow_te_and_cl`): the search for its end within the limits
//! (`scan.rs`), the strict reading of a complete head (`inspect.rs`, its request line in
//! `line.rs`, with `host.rs` for what a
//! `Host` may be and `target.rs` for the target's forms), and why a head is refused (`fault.rs`).
//!
//! Pure logic over bytes: the server's front door reads the socket, applies the deadline and
//! writes the answers; HTTP/2 requests are checked by the proxy with `valid_authority`.

mod fault;
mod host;
mod inspect;
mod line;
mod scan;
mod target;

pub(crate) use fault::HeadFault;
use host::valid_authority;
pub(crate) use inspect::{inspect, CheckedHead, HEADER_COUNT_CEILING};
pub(crate) use line::{first_line, method_of};
pub(crate) use scan::{HeadScan, Progress};

use pingora::http::RequestHeader;
use std::time::Duration;

/// What is wrong with an HTTP/2 request's authority (`:authority`, or `Host` when it has
/// one), if anything: HTTP/2 heads never pass the HTTP/1 check.
pub(crate) fn http2_authority_fault(req: &RequestHeader) -> Option<HeadFault> {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Some(HeadFault::MultipleHost);
    }
    let authority = req.uri.authority().map(|a| a.as_str().as_bytes());
    match host.map(|h| h.as_bytes()).or(authority) {
        None => Some(HeadFault::MissingHost),
        Some(value) if !valid_authority(value) => Some(HeadFault::InvalidHost),
        Some(_) => None,
    }
}

/// The bounds of one request head, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadLimits {
    /// `http_max_header_size`: bytes of the whole head, request line included.
    pub(crate) max_size: usize,
    /// `http_max_request_line`: bytes of the request line.
    pub(crate) max_line: usize,
    /// `http_max_header_count`: header fields.
    pub(crate) max_headers: usize,
    /// `http_header_timeout`: from the head's first byte to its end; `None` = no deadline.
    pub(crate) deadline: Option<Duration>,
    /// `http_allow_te_and_cl`: let a request with both `Content-Length` and
    /// `Transfer-Encoding` through (chunked wins, the connection closes after it).
    pub(crate) allow_te_and_cl: bool,
}

impl Default for HeadLimits {
    /// The documented defaults.
    fn default() -> Self {
        HeadLimits {
            max_size: 32 * 1024,
            max_line: 8 * 1024,
            max_headers: 100,
            deadline: Some(Duration::from_secs(30)),
            allow_te_and_cl: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, hosts: &[&str]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap_or_else(|e| panic!("{e}"));
        req.set_uri(uri.parse().unwrap_or_else(|e| panic!("{e}")));
        for host in hosts {
            req.append_header("Host", *host)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        req
    }

    #[test]
    fn an_http2_request_needs_one_well_formed_authority() {
        assert_eq!(
            http2_authority_fault(&request("https://a.example/x", &[])),
            None
        );
        assert_eq!(
            http2_authority_fault(&request("/x", &["a.example:8443"])),
            None
        );
        assert_eq!(
            http2_authority_fault(&request("/x", &[])),
            Some(HeadFault::MissingHost)
        );
        assert_eq!(
            http2_authority_fault(&request("/x", &["a b"])),
            Some(HeadFault::InvalidHost)
        );
        assert_eq!(
            http2_authority_fault(&request("/x", &["a", "b"])),
            Some(HeadFault::MultipleHost)
        );
    }
}
