//! Active content encoding (`http_compress_text` / `http_gzip_text`, `http_regex_text`,
//! `http_gzip_opts`, `http_enable_brotli`): text responses the back end did not encode are
//! compressed for clients that accept it; encoded ones pass through untouched.
//!
//! The decision is poolgate's own (the client's `Accept-Encoding` with q-values, brotli before
//! gzip at equal preference, the `Content-Type` regex); the encoders are Pingora's. A response
//! whose `Content-Length` is at most the pool's `min_stream_size` is compressed in one piece
//! (better ratio, one write); larger or unsized ones chunk by chunk, so memory stays bounded by
//! that size either way.
//!
//! Uses nothing else of poolgate's: the policy is plain data, the encoders Pingora's (gzip) and
//! `brotli.rs`.

use bytes::{Bytes, BytesMut};
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    ETAG, TRANSFER_ENCODING, VARY,
};
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::compression::{Algorithm, Encode};
use regex::Regex;

mod brotli;

/// Bodies shorter than this gain nothing from compression.
const MIN_COMPRESS_LEN: u64 = 32;

/// The compiled settings, shared by every request.
#[derive(Debug, Clone)]
pub(crate) struct CompressionPolicy {
    /// `http_regex_text`, when active compression is on.
    pub(crate) text_types: Option<Regex>,
    /// `http_gzip_opts.level`.
    pub(crate) gzip_level: u32,
    /// `http_brotli_opts.level` when `http_enable_brotli` is on.
    pub(crate) brotli_level: Option<u32>,
}

impl Default for CompressionPolicy {
    fn default() -> Self {
        CompressionPolicy {
            text_types: None,
            gzip_level: 6,
            brotli_level: None,
        }
    }
}

/// pixl-server-web's switch: a back end answering `X-Compress: 1` gets its body compressed.
const X_COMPRESS: http::HeaderName = http::HeaderName::from_static("x-compress");

/// One response being compressed.
pub(crate) struct ResponseEncoder {
    encoder: Box<dyn Encode + Send + Sync>,
    /// The whole body is collected here first when it is small enough (at most the limit).
    whole: Option<(BytesMut, usize)>,
}

impl CompressionPolicy {
    /// Decide for one response and adjust its header; `Some` when its body must be encoded.
    /// `whole_up_to`: a body with a `Content-Length` up to this size is compressed in one piece.
    pub(crate) fn begin(
        &self,
        req: &RequestHeader,
        resp: &mut ResponseHeader,
        whole_up_to: u64,
    ) -> Option<ResponseEncoder> {
        let status = resp.status.as_u16();
        if matches!(status, 100..=199 | 204 | 206 | 304) || encoded(resp) {
            return None;
        }
        let forced = resp
            .headers
            .get(&X_COMPRESS)
            .is_some_and(|v| v.as_bytes() == b"1");
        if (!forced && !self.is_text(resp)) || no_transform(resp) {
            return None;
        }
        // The answer differs by Accept-Encoding from here on, whether or not this client gets
        // it compressed, so caches must key on it.
        add_vary(resp);
        let length = content_length(resp);
        if req.method == http::Method::HEAD || length.is_some_and(|n| n < MIN_COMPRESS_LEN) {
            return None;
        }
        let algorithm = self.preferred(req.headers.get(ACCEPT_ENCODING))?;
        let level = match algorithm {
            Algorithm::Brotli => self.brotli_level?,
            _ => self.gzip_level,
        };
        let encoder: Box<dyn Encode + Send + Sync> = match algorithm {
            Algorithm::Brotli => Box::new(brotli::BrotliEncoder::new(level)),
            _ => algorithm.compressor(level)?,
        };
        set_encoded_headers(resp, algorithm).ok()?;
        let whole = length
            .filter(|n| *n <= whole_up_to)
            .map(|n| (BytesMut::with_capacity(n as usize), n as usize));
        Some(ResponseEncoder { encoder, whole })
    }

    fn is_text(&self, resp: &ResponseHeader) -> bool {
        let Some(types) = &self.text_types else {
            return false;
        };
        resp.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| types.is_match(ct))
    }

    /// The encoding to use for a client's `Accept-Encoding`: the highest q-value among the
    /// ones poolgate offers, brotli first when equal; `None` when the client accepts none.
    pub(crate) fn preferred(&self, accept: Option<&HeaderValue>) -> Option<Algorithm> {
        let accept = accept.and_then(|v| v.to_str().ok())?;
        let offered = [
            (Algorithm::Brotli, "br", self.brotli_level.is_some()),
            (Algorithm::Gzip, "gzip", true),
        ];
        let mut best: Option<(Algorithm, f32)> = None;
        for (algorithm, name, on) in offered {
            let q = quality(accept, name);
            if on && q > 0.0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((algorithm, q));
            }
        }
        best.map(|(a, _)| a)
    }
}

impl ResponseEncoder {
    /// Encode the next piece of the body; `None` when there is nothing to send yet.
    pub(crate) fn encode(
        &mut self,
        chunk: Option<&Bytes>,
        end: bool,
    ) -> pingora::Result<Option<Bytes>> {
        let input: &[u8] = chunk.map_or(&[], |c| c.as_ref());
        if let Some((whole, limit)) = &mut self.whole {
            // `Content-Length` was small, but the back end may still send more than it said.
            if whole.len() + input.len() <= *limit {
                whole.extend_from_slice(input);
                if !end {
                    return Ok(None);
                }
                let all = std::mem::take(whole);
                return self.encoder.encode(&all, true).map(Some);
            }
            let held = std::mem::take(whole);
            self.whole = None;
            let mut out = BytesMut::from(self.encoder.encode(&held, false)?.as_ref());
            out.extend_from_slice(&self.encoder.encode(input, end)?);
            return Ok(Some(out.freeze()));
        }
        let out = self.encoder.encode(input, end)?;
        Ok((!out.is_empty() || end).then_some(out))
    }

    /// Replace a body chunk in place (the proxy's body filter).
    pub(crate) fn encode_in_place(
        &mut self,
        body: &mut Option<Bytes>,
        end: bool,
    ) -> pingora::Result<()> {
        *body = self.encode(body.as_ref(), end)?;
        Ok(())
    }
}

/// The q-value a client gives `coding` (or `*`); 0 when it does not accept it.
fn quality(accept: &str, coding: &str) -> f32 {
    let mut wildcard = None;
    for entry in accept.split(',') {
        let mut parts = entry.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return q;
        }
        if name == "*" {
            wildcard = Some(q);
        }
    }
    wildcard.unwrap_or(0.0)
}

fn encoded(resp: &ResponseHeader) -> bool {
    resp.headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

fn no_transform(resp: &ResponseHeader) -> bool {
    resp.headers
        .get_all(CACHE_CONTROL)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
}

fn content_length(resp: &ResponseHeader) -> Option<u64> {
    resp.headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn add_vary(resp: &mut ResponseHeader) {
    let present = resp
        .headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("accept-encoding"));
    if !present {
        let _ = resp.append_header(VARY, "Accept-Encoding");
    }
}

fn set_encoded_headers(resp: &mut ResponseHeader, algorithm: Algorithm) -> pingora::Result<()> {
    resp.insert_header(CONTENT_ENCODING, algorithm.as_str())?;
    resp.remove_header(&CONTENT_LENGTH);
    // Byte ranges of the encoded body would not match the ones the back end advertised.
    resp.remove_header(&ACCEPT_RANGES);
    // HTTP/1 needs the framing; Pingora drops it for HTTP/2 clients.
    resp.insert_header(TRANSFER_ENCODING, "chunked")?;
    // The encoded bytes differ from the identity ones: a strong validator becomes weak.
    if let Some(etag) = resp.headers.get(ETAG).map(|v| v.as_bytes().to_vec()) {
        if etag.starts_with(b"\"") {
            resp.insert_header(ETAG, [b"W/".as_slice(), &etag].concat())?;
        } else if !etag.starts_with(b"W/") {
            resp.remove_header(&ETAG);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(brotli: bool) -> CompressionPolicy {
        CompressionPolicy {
            text_types: Some(Regex::new("(text|javascript|json|css|html)").unwrap()),
            gzip_level: 6,
            brotli_level: brotli.then_some(4),
        }
    }

    fn pick(p: &CompressionPolicy, ae: &str) -> Option<Algorithm> {
        p.preferred(Some(&HeaderValue::from_str(ae).unwrap()))
    }

    #[test]
    fn client_preference_and_q_values_decide() {
        let (gz, br) = (policy(false), policy(true));
        assert_eq!(pick(&gz, "gzip, deflate, br"), Some(Algorithm::Gzip));
        assert_eq!(pick(&br, "gzip, deflate, br"), Some(Algorithm::Brotli));
        assert_eq!(pick(&br, "gzip;q=1, br;q=0.5"), Some(Algorithm::Gzip));
        assert_eq!(pick(&br, "br;q=0, gzip;q=0.2"), Some(Algorithm::Gzip));
        assert_eq!(pick(&gz, "deflate"), None);
        assert_eq!(pick(&gz, "gzip;q=0"), None);
        assert_eq!(pick(&gz, "*"), Some(Algorithm::Gzip));
        assert_eq!(pick(&gz, "*;q=0.5, gzip;q=0"), None);
        assert_eq!(pick(&gz, "identity"), None);
        assert_eq!(gz.preferred(None), None);
    }

    fn response(ct: &str, len: Option<usize>) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.insert_header("content-type", ct).unwrap();
        if let Some(n) = len {
            r.insert_header("content-length", n.to_string()).unwrap();
        }
        r.insert_header("etag", "\"abc\"").unwrap();
        r
    }

    fn request(ae: &str) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("accept-encoding", ae).unwrap();
        r
    }

    #[test]
    fn text_is_compressed_with_headers_adjusted() {
        let mut resp = response("text/html; charset=utf-8", Some(1000));
        let enc = policy(false).begin(&request("gzip"), &mut resp, 131072);
        assert!(enc.is_some());
        assert_eq!(resp.headers["content-encoding"], "gzip");
        assert_eq!(resp.headers["vary"], "Accept-Encoding");
        assert_eq!(resp.headers["etag"], "W/\"abc\"");
        assert!(resp.headers.get("content-length").is_none());
    }

    #[test]
    fn images_encoded_bodies_and_refusing_clients_are_left_alone() {
        let p = policy(true);
        let mut img = response("image/png", Some(1000));
        assert!(p.begin(&request("gzip"), &mut img, 0).is_none());
        assert!(img.headers.get("vary").is_none());
        let mut pre = response("text/plain", Some(1000));
        pre.insert_header("content-encoding", "gzip").unwrap();
        assert!(p.begin(&request("gzip"), &mut pre, 0).is_none());
        let mut plain = response("text/plain", Some(1000));
        assert!(p.begin(&request("identity"), &mut plain, 0).is_none());
        assert_eq!(
            plain.headers["vary"], "Accept-Encoding",
            "varies all the same"
        );
        assert_eq!(plain.headers["content-length"], "1000");
    }

    #[test]
    fn off_unless_forced_by_x_compress() {
        let off = CompressionPolicy::default();
        let mut resp = response("text/plain", Some(1000));
        assert!(off.begin(&request("gzip"), &mut resp, 0).is_none());
        resp.insert_header("x-compress", "1").unwrap();
        assert!(off.begin(&request("gzip"), &mut resp, 0).is_some());
    }

    fn gunzip_len(data: &[u8]) -> usize {
        // The gzip trailer ends with the input size modulo 2^32.
        let n = data.len();
        u32::from_le_bytes([data[n - 4], data[n - 3], data[n - 2], data[n - 1]]) as usize
    }

    #[test]
    fn small_bodies_in_one_piece_large_ones_streamed() {
        let chunk = Bytes::from(vec![b'a'; 4000]);
        for (whole_up_to, first_is_held) in [(131072, true), (0, false)] {
            let mut resp = response("text/plain", Some(8000));
            let mut enc = policy(false)
                .begin(&request("gzip"), &mut resp, whole_up_to)
                .unwrap();
            let first = enc.encode(Some(&chunk), false).unwrap();
            assert_eq!(first.is_none(), first_is_held);
            let last = enc.encode(Some(&chunk), true).unwrap().unwrap();
            let mut all = first.map(|b| b.to_vec()).unwrap_or_default();
            all.extend_from_slice(&last);
            assert_eq!(&all[..2], &[0x1f, 0x8b]);
            assert_eq!(gunzip_len(&all), 8000);
        }
    }

    #[test]
    fn a_back_end_sending_more_than_its_length_is_still_encoded_whole() {
        let mut resp = response("text/plain", Some(100));
        let mut enc = policy(false)
            .begin(&request("gzip"), &mut resp, 1000)
            .unwrap();
        let big = Bytes::from(vec![b'b'; 500]);
        let out = enc.encode(Some(&big), true).unwrap().unwrap();
        assert_eq!(gunzip_len(&out), 500);
    }
}
