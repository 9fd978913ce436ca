//! Header values validated at start: the pairs that `insert_request_headers`,
//! `insert_response_headers`, `http_response_headers` and `http_code_response_headers` add,
//! and the headers every response gets (`WebServer.http_response_headers`,
//! `http_code_response_headers` by status code, `http_server_signature`), with
//! `http_clean_headers`' cleaning of their values.
//!
//! `http_clean_headers` strips from every response header value each byte outside printable
//! ASCII (0x20-0x7E), as pixl-server-web's `/([\x7F-\xFF\x00-\x1F\u00FF-\uFFFF])/g` does to
//! Node's latin-1 strings. What can reach it from a back end is obs-text (bytes 0x80-0xFF)
//! and tabs: Pingora's parser turns the CR LF of an obsolete folded line into spaces, and
//! refuses other control bytes and DEL before any hook sees the header (the back end's answer
//! fails with 502, cleaning or not). Configured values may carry UTF-8 text, which is stripped
//! the same way.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::Result;

/// A header name or value that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InvalidHeader {
    #[error("invalid header name `{0}`")]
    Name(String),
    #[error("invalid value for header `{0}`")]
    Value(String),
}

/// A header name/value pair, validated at start.
#[derive(Debug, Clone)]
pub(crate) struct HeaderPair {
    pub(crate) name: Bytes,
    pub(crate) value: HeaderValue,
}

impl HeaderPair {
    pub(crate) fn new(name: &str, value: &str) -> std::result::Result<Self, InvalidHeader> {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidHeader::Name(name.into()))?;
        let value = HeaderValue::from_str(value).map_err(|_| InvalidHeader::Value(name.into()))?;
        Ok(HeaderPair {
            name: Bytes::copy_from_slice(name.as_bytes()),
            value,
        })
    }
}

/// Headers every response gets, from the proxy or from a back end (`WebServer` settings).
#[derive(Debug, Clone, Default)]
pub(crate) struct GlobalResponseHeaders {
    pub(crate) always: Vec<HeaderPair>,
    /// `http_server_signature`, sent as `Server` when the response has none.
    pub(crate) server: Option<HeaderValue>,
    /// `http_code_response_headers`: set on responses with that status, after `always`.
    pub(crate) by_status: Vec<(u16, Vec<HeaderPair>)>,
    /// `http_clean_headers`: strip what is not printable ASCII from every value.
    pub(crate) clean: bool,
}

impl GlobalResponseHeaders {
    pub(crate) fn apply(&self, resp: &mut ResponseHeader) -> Result<()> {
        for h in &self.always {
            resp.insert_header(h.name.clone(), h.value.clone())?;
        }
        if !self.by_status.is_empty() {
            let status = resp.status.as_u16();
            let pairs = self.by_status.iter().find(|(code, _)| *code == status);
            for h in pairs.map_or(&[][..], |(_, pairs)| pairs) {
                resp.insert_header(h.name.clone(), h.value.clone())?;
            }
        }
        if let Some(server) = &self.server {
            if !resp.headers.contains_key(http::header::SERVER) {
                resp.insert_header("Server", server.clone())?;
            }
        }
        if self.clean {
            clean_values(resp)?;
        }
        Ok(())
    }
}

/// A byte `http_clean_headers` keeps.
fn printable(b: &u8) -> bool {
    (0x20..=0x7e).contains(b)
}

/// Strip every byte outside printable ASCII from each header value. A header that needs it
/// is set again with its cleaned values (after the others, under the name as it was sent).
fn clean_values(resp: &mut ResponseHeader) -> Result<()> {
    let clean = |v: &HeaderValue| v.as_bytes().iter().all(printable);
    let mut dirty: Vec<HeaderName> = Vec::new();
    for (name, value) in resp.headers.iter() {
        if !clean(value) && !dirty.contains(name) {
            dirty.push(name.clone());
        }
    }
    for name in dirty {
        let sent_as = resp
            .case_header_iter()
            .find(|(case, _)| case.as_slice().eq_ignore_ascii_case(name.as_ref()))
            .map(|(case, _)| case.clone());
        let values: Vec<Vec<u8>> = resp
            .headers
            .get_all(&name)
            .iter()
            .map(|v| v.as_bytes().iter().copied().filter(printable).collect())
            .collect();
        resp.remove_header(&name);
        for value in values {
            match &sent_as {
                Some(case) => resp.append_header(case.clone(), value.as_slice())?,
                None => resp.append_header(name.clone(), value.as_slice())?,
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_header_names_are_rejected() {
        assert_eq!(
            HeaderPair::new("Bad Name", "x").unwrap_err(),
            InvalidHeader::Name("Bad Name".into())
        );
        assert!(HeaderPair::new("X-Ok", "line\nbreak").is_err());
    }

    fn response(status: u16, headers: &[(&str, &[u8])]) -> ResponseHeader {
        let mut resp = ResponseHeader::build(status, None).unwrap();
        for (name, value) in headers {
            let value = HeaderValue::from_bytes(value).unwrap();
            resp.append_header(name.to_string(), value).unwrap();
        }
        resp
    }

    fn pair(name: &str, value: &str) -> HeaderPair {
        HeaderPair::new(name, value).unwrap()
    }

    #[test]
    fn status_headers_go_on_responses_with_that_status_only_and_win() {
        let global = GlobalResponseHeaders {
            always: vec![pair("X-All", "1")],
            by_status: vec![
                (429, vec![pair("Retry-After", "10"), pair("X-All", "2")]),
                (404, vec![pair("X-Message", "gone")]),
            ],
            ..Default::default()
        };
        let mut throttled = response(429, &[("Retry-After", b"3")]);
        global.apply(&mut throttled).unwrap();
        assert_eq!(throttled.headers["retry-after"], "10");
        assert_eq!(throttled.headers["x-all"], "2");
        assert!(!throttled.headers.contains_key("x-message"));
        let mut ok = response(200, &[]);
        global.apply(&mut ok).unwrap();
        assert_eq!(ok.headers["x-all"], "1");
        assert!(!ok.headers.contains_key("retry-after"));
    }

    #[test]
    fn cleaning_keeps_printable_ascii_only_in_every_value() {
        let global = GlobalResponseHeaders {
            always: vec![pair("X-Configured", "caf\u{e9}")],
            clean: true,
            ..Default::default()
        };
        let mut resp = response(
            200,
            &[
                ("X-Odd", b"caf\xe9\tau lait"),
                ("X-Plain", b"as is ~!"),
                ("X-Twice", b"\x80a"),
                ("X-Twice", b"b\xff"),
            ],
        );
        global.apply(&mut resp).unwrap();
        assert_eq!(resp.headers["x-odd"], "cafau lait");
        assert_eq!(resp.headers["x-plain"], "as is ~!");
        assert_eq!(resp.headers["x-configured"], "caf");
        let twice: Vec<_> = resp.headers.get_all("x-twice").iter().collect();
        assert_eq!(twice, ["a", "b"]);
        let mut untouched = response(200, &[("X-Odd", b"caf\xe9")]);
        GlobalResponseHeaders::default()
            .apply(&mut untouched)
            .unwrap();
        assert_eq!(untouched.headers["x-odd"].as_bytes(), b"caf\xe9");
    }
}
