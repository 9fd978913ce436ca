//! An upgraded connection (WebSocket): the `Upgrade` request goes to the pool's back end
//! through the shared upstream attempt (connect failures retried with the pool's back-off),
//! the back end's `101` goes to the client with the pool's and the global response headers,
//! and then bytes flow both ways until either side closes.
//!
//! poolgate carries these itself rather than through Pingora's streaming proxy: Pingora 0.9.1
//! tears an upgraded connection down right after the `101` when the back end answers before
//! its proxy loop has taken the upgrade request's (empty) body (cloudflare/pingora#946), which
//! on a loaded machine happens to a fair share of WebSockets. An answer other than `101` is
//! delivered as the buffered exchange delivers any answer.

use super::{Exchange, ExchangeState};
use crate::timing::Phase;
use crate::upstream::{self, Answer, Body, Failure, Framing, Hop, Outgoing};
use pingora::protocols::http::client::HttpSession as ClientSession;
use pingora::proxy::Session;
use pingora::Result;
use std::fmt;

/// `GET http://target:port/path`, as the retry log line names it.
struct Upgrade<'a>(&'a pingora::http::RequestHeader, &'a str);

impl fmt::Display for Upgrade<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.0.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let path = crate::event_log::redact::text(path);
        write!(f, "{} {}{path}", self.0.method, self.1)
    }
}

impl Exchange<'_> {
    /// Carry an upgrade request and, once the back end switched protocols, the connection.
    pub(crate) async fn tunnel(
        &self,
        session: &mut Session,
        state: ExchangeState<'_>,
    ) -> Result<()> {
        // A tunnel's bytes are not bodies and are not kept; a back end that answers without
        // switching sends an ordinary response, which is.
        let ExchangeState {
            tried,
            permit,
            perf,
            bodies,
        } = state;
        let original = session.req_header().clone();
        let key = self.pool.selection_key(&original, self.client.ip);
        let outgoing = Outgoing {
            original: &original,
            client: self.client,
            key: &key,
            tag: None,
            upgrade: true,
        };
        let mut failures_left = self.pool.retry.retries;
        let answer = loop {
            let attempt = upstream::attempt(
                self.pool,
                self.connector,
                &outgoing,
                &Hop::TO_POOL,
                Framing::None,
                Body::Empty,
                tried,
                perf,
            );
            match attempt.await {
                Ok(answer) => break answer,
                Err(Failure::Client(e)) => return Err(e),
                Err(Failure::Upstream {
                    error,
                    addr,
                    target,
                    ..
                }) => {
                    self.pool.record_failed_attempt(target);
                    tried.extend(addr);
                    if failures_left == 0 {
                        return Err(error);
                    }
                    failures_left -= 1;
                    let base = self.pool.primary_target().map_or("", |t| t.base_url());
                    let what = Upgrade(&original, base);
                    self.pool.back_off(&what, &error, failures_left).await;
                }
            }
        };
        let switched = answer.status == 101
            && matches!(&answer.session, ClientSession::H1(h1) if h1.was_upgraded());
        if !switched {
            return self.deliver(session, answer, permit, perf, bodies).await;
        }
        self.carry(session, answer, perf).await?;
        permit.take();
        Ok(())
    }

    /// Send the `101` on and copy bytes both ways until either side is done; the first
    /// error ends it.
    async fn carry(
        &self,
        session: &mut Session,
        mut answer: Answer,
        perf: &mut crate::timing::PerfTimer,
    ) -> Result<()> {
        let resp = self.client_header(&answer)?;
        session
            .write_response_header(resp, false)
            .await
            .map_err(|e| e.into_down())?;
        let up = &mut answer.session;
        if let ClientSession::H1(h1) = up {
            // From here on the request side passes bytes through as they are.
            h1.maybe_upgrade_body_writer();
        }
        loop {
            // Both reads are cancel-safe: the one that loses the race has taken no bytes.
            tokio::select! {
                from_client = session.read_request_body() => {
                    match from_client.map_err(|e| e.into_down())? {
                        Some(bytes) => {
                            perf.bytes_sent += bytes.len() as u64;
                            up.write_request_body(bytes, false).await.map_err(|e| e.into_up())?;
                        }
                        None => break,
                    }
                }
                from_back_end = up.read_response_body() => {
                    match from_back_end.map_err(|e| e.into_up())? {
                        Some(bytes) => {
                            perf.bytes_received += bytes.len() as u64;
                            session
                                .write_response_body(Some(bytes), false)
                                .await
                                .map_err(|e| e.into_down())?;
                        }
                        None => break,
                    }
                }
            }
        }
        perf.lap(Phase::Receive);
        // Either side closing ends the tunnel (the other is closed by dropping it).
        let _ = session.write_response_body(None, true).await;
        up.shutdown().await;
        Ok(())
    }
}
