//! Header values validated at start: the pairs that `insert_request_headers`,
//! `insert_response_headers` and `http_response_headers` add, and the headers every response
//! gets (`WebServer.http_response_headers`, `http_server_signature`).

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::Result;

/// A header name or value that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvalidHeader {
    #[error("invalid header name `{0}`")]
    Name(String),
    #[error("invalid value for header `{0}`")]
    Value(String),
}

/// A header name/value pair, validated at start.
#[derive(Debug, Clone)]
pub(crate) struct HeaderPair {
    pub(crate) name: Bytes,
    pub(crate) value: HeaderValue,
}

impl HeaderPair {
    pub(crate) fn new(name: &str, value: &str) -> std::result::Result<Self, InvalidHeader> {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidHeader::Name(name.into()))?;
        let value = HeaderValue::from_str(value).map_err(|_| InvalidHeader::Value(name.into()))?;
        Ok(HeaderPair {
            name: Bytes::copy_from_slice(name.as_bytes()),
            value,
        })
    }
}

/// Headers every response gets, from the proxy or from a back end (`WebServer` settings).
#[derive(Debug, Clone)]
pub(crate) struct GlobalResponseHeaders {
    pub(crate) always: Vec<HeaderPair>,
    /// `http_server_signature`, sent as `Server` when the response has none.
    pub(crate) server: Option<HeaderValue>,
}

impl GlobalResponseHeaders {
    pub(crate) fn apply(&self, resp: &mut ResponseHeader) -> Result<()> {
        for h in &self.always {
            resp.insert_header(h.name.clone(), h.value.clone())?;
        }
        if let Some(server) = &self.server {
            if !resp.headers.contains_key(http::header::SERVER) {
                resp.insert_header("Server", server.clone())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_header_names_are_rejected() {
        assert_eq!(
            HeaderPair::new("Bad Name", "x").unwrap_err(),
            InvalidHeader::Name("Bad Name".into())
        );
        assert!(HeaderPair::new("X-Ok", "line\nbreak").is_err());
    }
}
