//! Who the client is: its address, and whether its request counts as HTTPS — over a TLS
//! connection, or (pixl-server-web's `https_header_detect`) behind a load balancer that says
//! so. This is the one place that decides it; `X-Forwarded-Proto`, `https_force`, HSTS, the web
//! log's `proto` and `web.sockets` all read the answer.

use super::HttpsPolicy;
use pingora::proxy::Session;
use std::net::IpAddr;

/// What poolgate knows about the client of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClientFacts {
    pub(crate) ip: Option<IpAddr>,
    /// The request counts as HTTPS.
    pub(crate) tls: bool,
}

impl ClientFacts {
    pub(crate) fn of(session: &Session, policy: &HttpsPolicy) -> Self {
        let connection_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        ClientFacts {
            ip: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            tls: connection_tls || policy.detected(session.req_header()),
        }
    }
}
