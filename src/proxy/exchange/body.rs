//! Reading a client's request body for the buffered exchange: kept whole in memory up to
//! `retry_max_body_bytes`, so retries and redirects can send it again byte-exact; beyond the
//! limit only the part already read is kept and the rest is streamed once.

use crate::front_end::{declared_len, UploadLimit};
use crate::upstream::{Body, Framing};
use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use pingora::Result;

#[derive(Debug)]
pub(super) struct RequestBody {
    /// The whole body when `complete`, else the part read before the limit was passed.
    head: Bytes,
    /// The body ended within the limit: it can be sent any number of times.
    complete: bool,
    /// Whether the client's request had body framing (`Content-Length` or chunked).
    framed: bool,
    /// The client's `Content-Length`, if any.
    declared_len: Option<u64>,
}

impl RequestBody {
    /// Read up to `limit` bytes of the body. A declared `Content-Length` above the limit is
    /// not read at all (it will be streamed on the first attempt).
    pub(super) async fn read(
        session: &mut Session,
        limit: u64,
        upload: UploadLimit,
    ) -> Result<Self> {
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

    /// The bytes read so far: the whole body when it can be resent.
    pub(super) fn kept(&self) -> &[u8] {
        &self.head
    }

    /// Whether every attempt can send the whole body again.
    pub(super) fn is_replayable(&self) -> bool {
        self.complete
    }

    /// How an attempt that carries the body frames it.
    pub(super) fn framing(&self) -> Framing {
        match (self.framed, self.complete, self.declared_len) {
            (false, _, _) => Framing::None,
            (true, true, _) => Framing::Length(self.head.len() as u64),
            (true, false, Some(n)) => Framing::Length(n),
            (true, false, None) => Framing::Chunked,
        }
    }

    /// The body of one attempt: the kept copy, or (first attempt of an over-limit body only)
    /// the part kept and then the rest straight from the client. From then on the body is
    /// gone: no attempt can send it again.
    pub(super) fn for_attempt<'a>(
        &mut self,
        client: &'a mut Session,
        upload: UploadLimit,
    ) -> Body<'a> {
        if self.complete {
            return Body::Kept(self.head.clone());
        }
        self.framed = false;
        Body::Streamed {
            head: std::mem::take(&mut self.head),
            client,
            limit: upload,
        }
    }
}
