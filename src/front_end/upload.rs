//! `WebServer.http_max_upload_size`: the largest request body any pool accepts.

use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

/// The limit in bytes; 0 = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UploadLimit(pub(crate) u64);

impl UploadLimit {
    /// Whether the request's `Content-Length` already says it is too large (answered before
    /// anything reaches the back end).
    pub(crate) fn refuses_declared(&self, req: &RequestHeader) -> bool {
        self.0 > 0 && declared_len(req).is_some_and(|n| n > self.0)
    }

    /// The error that ends a request whose body grew past the limit while it streamed (a
    /// chunked upload); answered with 413 when no answer has started yet.
    pub(crate) fn check(&self, received: u64) -> Result<()> {
        if self.0 > 0 && received > self.0 {
            return Error::e_explain(
                ErrorType::HTTPStatus(413),
                format!(
                    "request body larger than http_max_upload_size ({} bytes)",
                    self.0
                ),
            );
        }
        Ok(())
    }
}

/// The request's `Content-Length`, if it has a valid one.
pub(crate) fn declared_len(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}
