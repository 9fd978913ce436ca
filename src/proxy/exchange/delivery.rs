//! Handing the chosen answer to the client: the pool's and the global response rules, framing,
//! and the body streamed chunk by chunk; the back-end connection goes back to its pool.

use super::Exchange;
use crate::admission::Permit;
use crate::event_log::BodyCapture;
use crate::timing::{PerfTimer, Phase};
use crate::upstream::Answer;
use http::Method;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{ErrorType, OkOrErr, Result};

impl Exchange<'_> {
    /// The answer's header as the client gets it: the pool's response rules and the headers
    /// every response gets.
    pub(super) fn client_header(&self, answer: &Answer) -> Result<Box<ResponseHeader>> {
        let header = answer.header().cloned();
        let mut resp =
            Box::new(header.or_err_with(ErrorType::InternalError, || "answer without a header")?);
        self.pool.response_rules.apply(&mut resp)?;
        self.front.finish_response(&mut resp, self.client.tls)?;
        Ok(resp)
    }

    pub(super) async fn deliver(
        &self,
        session: &mut Session,
        mut answer: Answer,
        permit: &mut Option<Permit>,
        perf: &mut PerfTimer,
        bodies: &mut Option<Box<BodyCapture>>,
    ) -> Result<()> {
        let mut resp = self.client_header(&answer)?;
        let req = session.req_header();
        let whole_up_to = self.pool.min_stream_size;
        let mut encoder = self.front.compression.begin(req, &mut resp, whole_up_to);
        if !resp.headers.contains_key(http::header::CONTENT_LENGTH)
            && !resp.headers.contains_key(http::header::TRANSFER_ENCODING)
            && has_body(resp.status.as_u16(), &session.req_header().method)
        {
            // A close-delimited answer is re-framed so the client connection can be kept.
            resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        session
            .write_response_header(resp, false)
            .await
            .map_err(|e| e.into_down())?;
        let up = &mut answer.session;
        while let Some(chunk) = up.read_response_body().await.map_err(|e| e.into_up())? {
            perf.bytes_received += chunk.len() as u64;
            BodyCapture::response(bodies, &chunk);
            if up.response_done() {
                // The back end is done: free the slot before the client sees the end.
                permit.take();
            }
            let chunk = match &mut encoder {
                Some(encoder) => encoder.encode(Some(&chunk), false)?,
                None => Some(chunk),
            };
            if chunk.is_some() {
                session
                    .write_response_body(chunk, false)
                    .await
                    .map_err(|e| e.into_down())?;
            }
        }
        perf.lap(Phase::Receive);
        permit.take();
        let last = match &mut encoder {
            Some(encoder) => encoder.encode(None, true)?,
            None => None,
        };
        session
            .write_response_body(last, true)
            .await
            .map_err(|e| e.into_down())?;
        answer
            .release(self.connector, self.pool.use_keep_alives)
            .await;
        Ok(())
    }
}

fn has_body(status: u16, method: &Method) -> bool {
    *method != Method::HEAD && !(100..200).contains(&status) && status != 204 && status != 304
}
