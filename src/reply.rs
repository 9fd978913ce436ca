//! Responses poolgate writes itself (404 for unrouted requests, 502/504 for failed back ends).
//! They carry the same global headers as proxied responses.

use crate::front_end::FrontEnd;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// Send `status` with a short `text/plain` body. Whether the client connection is kept is up to
/// the caller (Pingora drains an unread request body before reusing it).
pub async fn text(
    session: &mut Session,
    front: &FrontEnd,
    status: u16,
    body: &'static str,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    resp.insert_header("Content-Length", body.len().to_string())?;
    front.response_headers.apply(&mut resp)?;
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from_static(body.as_bytes())), true)
        .await
}
