//! Responses poolgate writes itself (404 for unrouted requests, 413 and 429 for refused ones,
//! 502/504 for failed back ends, the blind queue's JSON answers, the stats endpoints, the
//! `https_force` redirect). They carry the same global headers as proxied responses; `tls` is
//! the request's HTTPS decision (`front_end::ClientFacts`), for HSTS.

use super::failure;
use crate::admission::Refusal;
use crate::front_end::{FrontEnd, HeadFault};
use crate::stats::StatsAnswer;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

const TEXT: &str = "text/plain; charset=utf-8";
/// The stats live page: inline script and style are its own, so its policy allows them.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:";

/// Send `status` with its standard short `text/plain` body (`failure::body_for`). Whether the
/// client connection is kept is up to the caller (Pingora drains an unread request body
/// before reusing it).
pub(super) async fn status(
    session: &mut Session,
    front: &FrontEnd,
    tls: bool,
    status: u16,
) -> Result<()> {
    let body = Bytes::from_static(failure::body_for(status).as_bytes());
    send(session, front, tls, status, TEXT, body, &[]).await
}

/// `status` with a `text/plain` body of poolgate's own.
pub(super) async fn text(
    session: &mut Session,
    front: &FrontEnd,
    tls: bool,
    status: u16,
    body: String,
) -> Result<()> {
    send(session, front, tls, status, TEXT, Bytes::from(body), &[]).await
}

/// A refused request head's status with its reason (`front_end::HeadFault`).
pub(super) async fn head_fault(
    session: &mut Session,
    front: &FrontEnd,
    tls: bool,
    fault: HeadFault,
) -> Result<()> {
    let body = Bytes::from(fault.body());
    send(session, front, tls, fault.status(), TEXT, body, &[]).await
}

/// `301 Moved Permanently` to `location` (`https_force`).
pub(super) async fn redirect(
    session: &mut Session,
    front: &FrontEnd,
    location: &str,
) -> Result<()> {
    let mut resp = ResponseHeader::build(301, Some(4))?;
    resp.insert_header("Location", location)?;
    resp.insert_header("Content-Length", "0")?;
    front.finish_response(&mut resp, false)?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(None, true).await
}

/// Send `status` with a JSON body (the blind queue's answers).
pub(super) async fn json(
    session: &mut Session,
    front: &FrontEnd,
    tls: bool,
    status: u16,
    body: serde_json::Value,
) -> Result<()> {
    let body = Bytes::from(body.to_string());
    send(session, front, tls, status, "application/json", body, &[]).await
}

/// `429 Too Many Requests` naming the pool and the limit, with `Retry-After` for per-client
/// limits (503 when a cluster's shared limits cannot be asked and the policy is `closed`).
pub(super) async fn too_many(
    session: &mut Session,
    front: &FrontEnd,
    tls: bool,
    refusal: &Refusal,
    pool: &str,
) -> Result<()> {
    let body = Bytes::from(refusal.message(pool));
    let retry_after = refusal
        .retry_after_sec()
        .map(|s| ("Retry-After", s.to_string()));
    let status = refusal.status();
    send(
        session,
        front,
        tls,
        status,
        TEXT,
        body,
        retry_after.as_slice(),
    )
    .await
}

/// A stats endpoint's answer.
pub(super) async fn stats(
    session: &mut Session,
    front: &FrontEnd,
    tls: bool,
    answer: StatsAnswer,
) -> Result<()> {
    let page = [("Content-Security-Policy", PAGE_POLICY.to_string())];
    let extra: &[_] = if answer.page { &page } else { &[] };
    let (status, kind) = (answer.status, answer.content_type);
    send(session, front, tls, status, kind, answer.body, extra).await
}

async fn send(
    session: &mut Session,
    front: &FrontEnd,
    tls: bool,
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
    front.finish_response(&mut resp, tls)?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}
