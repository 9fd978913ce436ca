//! Responses poolgate writes itself (404 for unrouted requests, 429 for throttled ones, 502/504
//! for failed back ends, the blind queue's JSON answers). They carry the same global headers as
//! proxied responses.

use crate::admission::Refusal;
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
    let body = Bytes::from_static(body.as_bytes());
    send(session, front, status, TEXT, body, None).await
}

/// `301 Moved Permanently` to `location` (`https_force`).
pub async fn redirect(session: &mut Session, front: &FrontEnd, location: &str) -> Result<()> {
    let mut resp = ResponseHeader::build(301, Some(4))?;
    resp.insert_header("Location", location)?;
    resp.insert_header("Content-Length", "0")?;
    front.finish_response(&mut resp, false)?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(None, true).await
}

/// Send `status` with a JSON body (the blind queue's answers).
pub async fn json(
    session: &mut Session,
    front: &FrontEnd,
    status: u16,
    body: serde_json::Value,
) -> Result<()> {
    let body = Bytes::from(body.to_string());
    send(session, front, status, "application/json", body, None).await
}

const TEXT: &str = "text/plain; charset=utf-8";

/// `429 Too Many Requests` naming the pool and the limit, with `Retry-After` for per-client
/// limits.
pub async fn too_many(
    session: &mut Session,
    front: &FrontEnd,
    refusal: &Refusal,
    pool: &str,
) -> Result<()> {
    let body = Bytes::from(refusal.message(pool));
    let retry_after = refusal.retry_after_sec().map(|s| s.to_string());
    send(session, front, 429, TEXT, body, retry_after).await
}

/// Send `status` with a body of `content_type`.
pub async fn raw(
    session: &mut Session,
    front: &FrontEnd,
    status: u16,
    content_type: &str,
    body: Bytes,
) -> Result<()> {
    send(session, front, status, content_type, body, None).await
}

async fn send(
    session: &mut Session,
    front: &FrontEnd,
    status: u16,
    content_type: &str,
    body: Bytes,
    retry_after: Option<String>,
) -> Result<()> {
    let extra = retry_after.map(|s| ("Retry-After", s));
    send_with(session, front, status, content_type, body, extra.as_slice()).await
}

/// The stats live page: inline script and style are its own, so its policy allows them.
pub async fn page(session: &mut Session, front: &FrontEnd, body: Bytes) -> Result<()> {
    let csp = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:";
    let extra = [("Content-Security-Policy", csp.to_string())];
    send_with(
        session,
        front,
        200,
        "text/html; charset=utf-8",
        body,
        &extra,
    )
    .await
}

async fn send_with(
    session: &mut Session,
    front: &FrontEnd,
    status: u16,
    content_type: &str,
    body: Bytes,
    extra: &[(&'static str, String)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(5))?;
    resp.insert_header("Content-Type", content_type)?;
    resp.insert_header("Content-Length", body.len().to_string())?;
    for (name, value) in extra {
        resp.insert_header(*name, value.as_str())?;
    }
    let tls = crate::front_end::tls_connection(session)
        || front.https_policy.detected(session.req_header());
    front.finish_response(&mut resp, tls)?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}
