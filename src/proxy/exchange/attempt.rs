//! One attempt of the buffered exchange: choosing the peer, building the request for the hop,
//! sending header and body, and reading the answer's header.

use super::{Answer, Exchange, Failure, Hop, Outgoing};
use crate::pool::headers::strip_hop_by_hop;
use crate::pool::targets::Target;
use crate::proxy::exchange::body::RequestBody;
use crate::timing::PerfTimer;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession as ClientSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;

/// Informational (1xx) responses skipped before giving up on a back end.
const MAX_INFORMATIONAL: usize = 8;

impl Exchange<'_> {
    /// Where a hop goes: a pool target (avoiding ones that failed) or a redirect's host.
    async fn peer_for(
        &self,
        hop: &Hop,
        tried: &[SocketAddr],
        key: &[u8],
    ) -> Result<(Box<HttpPeer>, Option<&Target>, SocketAddr)> {
        if hop.on_pool {
            let chosen = self.pool.choose(key, tried).await?;
            let peer = self.pool.peer(&chosen, true)?;
            return Ok((peer, self.pool.target(&chosen), chosen.addr));
        }
        let resolver = crate::pool::dns::TargetResolver::new(&hop.url.host, hop.url.port, 0);
        let addr = resolver.resolve().await?;
        let mut h = DefaultHasher::new();
        (self.pool.connect.group_key, &hop.url.host, hop.url.port).hash(&mut h);
        let peer = self
            .pool
            .peer_at(addr, hop.url.tls, &hop.url.host, h.finish());
        Ok((peer, None, addr))
    }

    fn request_for(
        &self,
        original: &RequestHeader,
        hop: &Hop,
        target: Option<&Target>,
        body: &RequestBody,
    ) -> Result<RequestHeader> {
        let mut req = original.clone();
        req.set_method(hop.method.clone());
        let uri = hop.url.path.parse::<http::Uri>().map_err(|e| {
            Error::explain(ErrorType::InvalidHTTPHeader, format!("redirect path: {e}"))
        })?;
        req.set_uri(uri);
        strip_hop_by_hop(&mut req);
        req.remove_header(&http::header::EXPECT);
        self.pool.rewrite_request(&mut req, self.client, target)?;
        if !hop.on_pool {
            req.insert_header(http::header::HOST, hop.url.authority())?;
        }
        req.remove_header(&http::header::CONTENT_LENGTH);
        req.remove_header(&http::header::TRANSFER_ENCODING);
        if hop.with_body && body.framed {
            match (body.complete, body.declared_len) {
                (true, _) => req.insert_header(http::header::CONTENT_LENGTH, body.head.len())?,
                (false, Some(n)) => req.insert_header(http::header::CONTENT_LENGTH, n)?,
                (false, None) => req.insert_header(http::header::TRANSFER_ENCODING, "chunked")?,
            }
        }
        Ok(req)
    }

    pub(super) async fn attempt(
        &self,
        session: &mut Session,
        request: &Outgoing<'_>,
        hop: &Hop,
        body: &mut RequestBody,
        tried: &[SocketAddr],
        perf: &mut PerfTimer,
    ) -> std::result::Result<Answer, Failure> {
        let (original, key) = (request.original, request.key);
        perf.restart_lap();
        let upstream =
            |error: Box<Error>, resendable: bool, addr: Option<SocketAddr>| Failure::Upstream {
                error: error.into_up(),
                resendable,
                stale: false,
                addr,
            };
        let (peer, target, addr) = self
            .peer_for(hop, tried, key)
            .await
            .map_err(|e| upstream(e, true, None))?;
        perf.lap("dns");
        let req = self
            .request_for(original, hop, target, body)
            .map_err(Failure::Client)?;
        let (mut up, reused) = self
            .connector
            .get_http_session(&*peer)
            .await
            .map_err(|e| upstream(e, true, Some(addr)))?;
        perf.lap("connect");
        up.set_read_timeout(self.pool.connect.ttfb_timeout);
        up.set_write_timeout(self.pool.connect.ttfb_timeout);
        let stale = |error: Box<Error>| Failure::Upstream {
            error: error.into_up(),
            resendable: true,
            stale: reused,
            addr: Some(addr),
        };
        up.write_request_header(Box::new(req))
            .await
            .map_err(stale)?;
        let mut reusable = true;
        if let Err(failure) = self.send_body(session, &mut up, hop, body, addr).await {
            // A back end may answer early (413, 500...) and stop reading: its answer wins.
            if matches!(failure, Failure::Client(_)) || read_answer_header(&mut up).await.is_err() {
                return Err(failure);
            }
            reusable = false;
        } else {
            perf.bytes_sent += body.head.len() as u64;
            perf.lap("send");
            read_answer_header(&mut up)
                .await
                .map_err(|e| Failure::Upstream {
                    error: e.into_up(),
                    resendable: body.is_replayable(),
                    stale: reused && body.is_replayable(),
                    addr: Some(addr),
                })?;
        }
        perf.lap("wait");
        let status = up.response_header().map_or(0, |r| r.status.as_u16());
        Ok(Answer {
            session: up,
            peer,
            status,
            addr,
            reusable,
        })
    }

    /// Send the body of one attempt: the kept copy, then (first attempt of an over-limit body
    /// only) the rest straight from the client.
    async fn send_body(
        &self,
        session: &mut Session,
        up: &mut ClientSession,
        hop: &Hop,
        body: &mut RequestBody,
        addr: SocketAddr,
    ) -> std::result::Result<(), Failure> {
        let failed = |error: Box<Error>, resendable: bool| Failure::Upstream {
            error: error.into_up(),
            resendable,
            stale: false,
            addr: Some(addr),
        };
        if hop.with_body && !body.head.is_empty() {
            up.write_request_body(body.head.clone(), false)
                .await
                .map_err(|e| failed(e, body.complete))?;
        }
        if hop.with_body && !body.complete {
            // From here on the body is gone: no attempt can send it again.
            let mut received = body.head.len() as u64;
            body.head = bytes::Bytes::new();
            body.framed = false;
            while let Some(chunk) = session
                .read_request_body()
                .await
                .map_err(|e| Failure::Client(e.into_down()))?
            {
                received += chunk.len() as u64;
                self.front
                    .upload_limit
                    .check(received)
                    .map_err(|e| Failure::Client(e.into_down()))?;
                up.write_request_body(chunk, false)
                    .await
                    .map_err(|e| failed(e, false))?;
            }
        }
        up.finish_request_body()
            .await
            .map_err(|e| failed(e, body.complete))
    }
}

/// Read the response header, skipping informational (1xx) ones.
pub(crate) async fn read_answer_header(up: &mut ClientSession) -> Result<()> {
    for _ in 0..MAX_INFORMATIONAL {
        up.read_response_header().await?;
        let status = up.response_header().map_or(0, |r| r.status.as_u16());
        if status >= 200 || status == 101 {
            return Ok(());
        }
    }
    Err(Error::explain(
        ErrorType::InvalidHTTPHeader,
        "too many informational responses",
    ))
}
