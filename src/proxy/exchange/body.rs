//! Reading a client's request body for the buffered exchange: kept whole in memory up to a
//! limit, so retries and redirects can send it again byte-exact; beyond the limit only the
//! part already read is kept and the rest is streamed once.

use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

/// `WebServer.http_max_upload_size`: the largest request body any pool accepts; 0 = no limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct UploadLimit(pub u64);

impl UploadLimit {
    /// Whether the request's `Content-Length` already says it is too large (answered before
    /// anything reaches the back end).
    pub fn refuses_declared(&self, req: &RequestHeader) -> bool {
        self.0 > 0 && declared_len(req).is_some_and(|n| n > self.0)
    }

    /// The error that ends a request whose body grew past the limit while it streamed (a
    /// chunked upload); answered with 413 when no answer has started yet.
    pub fn check(&self, received: u64) -> Result<()> {
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

fn declared_len(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

#[derive(Debug)]
pub struct RequestBody {
    /// The whole body when `complete`, else the part read before the limit was passed.
    pub head: Bytes,
    /// The body ended within the limit: it can be sent any number of times.
    pub complete: bool,
    /// Whether the client's request had body framing (`Content-Length` or chunked).
    pub framed: bool,
    /// The client's `Content-Length`, if any.
    pub declared_len: Option<u64>,
}

impl RequestBody {
    /// Read up to `limit` bytes of the body. A declared `Content-Length` above the limit is
    /// not read at all (it will be streamed on the first attempt).
    pub async fn read(session: &mut Session, limit: u64, upload: UploadLimit) -> Result<Self> {
        let req = session.req_header();
        let declared_len = declared_len(req);
        let framed =
            declared_len.is_some() || req.headers.contains_key(http::header::TRANSFER_ENCODING);
        let mut body = RequestBody {
            head: Bytes::new(),
            complete: true,
            framed,
            declared_len,
        };
        if session.as_mut().is_body_empty() {
            return Ok(body);
        }
        if declared_len.is_some_and(|n| n > limit) {
            body.complete = false;
            return Ok(body);
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = session.read_request_body().await? {
            buf.extend_from_slice(&chunk);
            upload.check(buf.len() as u64)?;
            if buf.len() as u64 > limit {
                body.complete = false;
                break;
            }
        }
        body.head = buf.freeze();
        Ok(body)
    }

    /// Whether every attempt can send the whole body again.
    pub fn is_replayable(&self) -> bool {
        self.complete
    }
}
