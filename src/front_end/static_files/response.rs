//! Writing static-file responses: every header goes out through `write_head` and every body
//! chunk through `write_chunk`, so a later body transformation (compression) has exactly one
//! place to hook in each.
//!
//! A client that goes away mid-answer just ends the request: the write error is not an error
//! of poolgate, so it is logged at debug level and the connection is not reused.

use crate::front_end::FrontEnd;
use crate::front_end::ResponseEncoder;
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Read and send files in pieces of this size: memory per request stays small whatever the
/// file's size.
pub(super) const CHUNK: usize = 64 * 1024;

/// The response ended early (the client went away, or the file could not be read); already
/// logged, and the connection is not reused.
#[derive(Debug)]
pub(super) struct Ended;

/// Files up to this size are compressed in one piece (PixlProxy's default `min_stream_size`).
const COMPRESS_WHOLE_UP_TO: u64 = 128 * 1024;

/// How a response is sent: the front end's global headers, whether the client is on HTTPS
/// (for HSTS among the secure headers), and the content encoding once it is decided.
pub(super) struct Responder<'a> {
    front: &'a FrontEnd,
    tls: bool,
    encoder: Option<ResponseEncoder>,
}

impl<'a> Responder<'a> {
    pub(super) fn new(front: &'a FrontEnd, tls: bool) -> Self {
        Responder {
            front,
            tls,
            encoder: None,
        }
    }

    /// The one place response headers are written: the global headers are added here, and
    /// the content encoding is decided (`http_compress_text`).
    pub(super) async fn write_head(
        &mut self,
        session: &mut Session,
        mut resp: ResponseHeader,
        end: bool,
    ) -> Result<(), Ended> {
        if let Err(e) = self.front.finish_response(&mut resp, self.tls) {
            // Only a header that cannot be encoded, which the config check already excludes.
            log::warn!("static file response headers: {e}");
        }
        if !end {
            let policy = &self.front.compression;
            self.encoder = policy.begin(session.req_header(), &mut resp, COMPRESS_WHOLE_UP_TO);
        }
        let written = session.write_response_header(Box::new(resp), end).await;
        gone_if(session, written)
    }

    /// The one place body bytes are written (`None` with `end`: close an empty body).
    pub(super) async fn write_chunk(
        &mut self,
        session: &mut Session,
        chunk: Option<Bytes>,
        end: bool,
    ) -> Result<(), Ended> {
        let chunk = match &mut self.encoder {
            Some(encoder) => match encoder.encode(chunk.as_ref(), end) {
                Ok(encoded) => encoded,
                Err(e) => {
                    return Err(read_failed(
                        session,
                        Path::new("(compressing)"),
                        &e.to_string(),
                    ))
                }
            },
            None => chunk,
        };
        if chunk.is_none() && !end {
            return Ok(());
        }
        let written = session.write_response_body(chunk, end).await;
        gone_if(session, written)
    }

    /// A short `text/plain` answer (errors, redirects) with extra headers.
    pub(super) async fn text(
        &mut self,
        session: &mut Session,
        status: u16,
        body: &'static str,
        extra: &[(&'static str, String)],
    ) -> Result<(), Ended> {
        let Some(mut resp) = header(status) else {
            return Err(Ended);
        };
        let mut set = |name: &'static str, value: &str| set_header(&mut resp, name, value);
        set("Content-Type", "text/plain; charset=utf-8");
        set("Content-Length", &body.len().to_string());
        for (name, value) in extra {
            set(name, value);
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        self.write_head(session, resp, false).await?;
        let body = (!head_only).then(|| Bytes::from_static(body.as_bytes()));
        self.write_chunk(session, body, true).await
    }

    /// Send `len` bytes of `file` from `start`, in `CHUNK`s. A read error (or a file that
    /// shrank) ends the response early with a warning naming the file; the client sees a
    /// short body and the connection is closed, since its framing is now wrong.
    pub(super) async fn stream(
        &mut self,
        session: &mut Session,
        file: &mut tokio::fs::File,
        path: &Path,
        start: u64,
        len: u64,
    ) -> Result<(), Ended> {
        if len == 0 {
            return self.write_chunk(session, None, true).await;
        }
        if start > 0 {
            if let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await {
                return Err(read_failed(session, path, &e.to_string()));
            }
        }
        // Never past `len`, even if the file grew since its length was sent.
        let mut reader = file.take(len);
        let mut left = len;
        while left > 0 {
            let want = left.min(CHUNK as u64) as usize;
            let mut buf = BytesMut::with_capacity(want);
            while buf.len() < want {
                match reader.read_buf(&mut buf).await {
                    Ok(0) => return Err(read_failed(session, path, "the file got shorter")),
                    Ok(_) => {}
                    Err(e) => return Err(read_failed(session, path, &e.to_string())),
                }
            }
            left -= buf.len() as u64;
            self.write_chunk(session, Some(buf.freeze()), left == 0)
                .await?;
        }
        Ok(())
    }
}

/// A response header with `status`, or `None` (logged) if Pingora refuses to build it.
pub(super) fn header(status: u16) -> Option<ResponseHeader> {
    ResponseHeader::build(status, Some(10))
        .map_err(|e| log::warn!("static file response {status}: {e}"))
        .ok()
}

/// Set a header whose value poolgate made itself; one that cannot be encoded is left out.
pub(super) fn set_header(resp: &mut ResponseHeader, name: &'static str, value: &str) {
    if let Err(e) = resp.insert_header(name, value) {
        log::warn!("static file response header {name}: {e}");
    }
}

fn gone_if(session: &mut Session, written: pingora::Result<()>) -> Result<(), Ended> {
    written.map_err(|e| {
        log::debug!("static file: client went away: {e}");
        session.set_keepalive(None);
        Ended
    })
}

fn read_failed(session: &mut Session, path: &Path, why: &str) -> Ended {
    log::warn!(
        "static file {}: read failed mid-response: {why}",
        path.display()
    );
    session.set_keepalive(None);
    Ended
}
