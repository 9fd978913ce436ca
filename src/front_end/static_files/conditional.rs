//! Validators of a file (strong `ETag`, `Last-Modified`) and the conditional requests that use
//! them: `If-None-Match` / `If-Modified-Since` (304, decided by Pingora's `not_modified_filter`
//! on the response header, see `mod.rs`) and `If-Range` (whether a `Range` applies).
//!
//! The ETag is made of the size and the modification time, so it changes whenever a deploy
//! rewrites the file, without reading it. Dates have one-second precision, as HTTP dates do.

use http::HeaderMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second an HTTP date can express (9999-12-31 23:59:59); `httpdate` panics beyond.
const LAST_HTTP_SECOND: u64 = 253_402_300_799;

/// What identifies one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Validators {
    /// The file's length in bytes.
    pub(super) len: u64,
    /// Modification time in whole seconds since the epoch (clamped to what HTTP can say).
    pub(super) mtime: u64,
    /// `"<len hex>-<mtime hex>"`, quotes included.
    pub(super) etag: String,
    /// IMF-fixdate of `mtime`.
    pub(super) last_modified: String,
}

impl Validators {
    pub(super) fn new(len: u64, modified: Option<SystemTime>) -> Self {
        // A file time before 1970 (or unknown) counts as 1970 rather than failing the request.
        let mtime = modified
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
            .min(LAST_HTTP_SECOND);
        Validators {
            len,
            mtime,
            etag: format!("\"{len:x}-{mtime:x}\""),
            last_modified: format_date(mtime),
        }
    }

    /// Whether a `Range` may be honoured given `If-Range` (absent: yes). An entity tag must
    /// match strongly, a date exactly; anything else means "send the whole file".
    pub(super) fn range_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(http::header::IF_RANGE) else {
            return true;
        };
        let Ok(value) = value.to_str() else {
            return false;
        };
        let value = value.trim();
        if value.starts_with('"') || value.starts_with("W/") {
            return value == self.etag;
        }
        parse_date(value) == Some(self.mtime)
    }
}

/// Seconds since the epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(super) fn format_date(secs: u64) -> String {
    let secs = secs.min(LAST_HTTP_SECOND);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// An HTTP date (IMF-fixdate, or the obsolete RFC 850 and asctime forms) as seconds since the
/// epoch; `None` when it is not one.
fn parse_date(value: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(value.trim()).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use pingora::protocols::http::conditional_filter::not_modified_filter;

    fn validators() -> Validators {
        // 784111777 = Sun, 06 Nov 1994 08:49:37 GMT
        Validators::new(
            0x1234,
            Some(UNIX_EPOCH + Duration::from_millis(784_111_777_500)),
        )
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn validators_come_from_size_and_whole_seconds() {
        let v = validators();
        assert_eq!(v.etag, "\"1234-2ebc98a1\"");
        assert_eq!(v.last_modified, "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(Validators::new(0, None).last_modified, format_date(0));
        let before_1970 = UNIX_EPOCH.checked_sub(Duration::from_secs(5));
        assert_eq!(Validators::new(1, before_1970).mtime, 0);
    }

    #[test]
    fn dates_format_and_parse_in_every_http_form() {
        assert_eq!(format_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(format_date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            " Sun, 06 Nov 1994 08:49:37 GMT ",
        ] {
            assert_eq!(parse_date(form), Some(784_111_777), "{form}");
        }
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date(""), None);
    }

    /// Whether Pingora's filter answers 304 for `pairs` against a file with `v`'s validators
    /// (what `send_file` asks).
    fn not_modified(v: &Validators, pairs: &[(&'static str, &'static str)]) -> bool {
        let mut req = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        for (name, value) in pairs {
            req.append_header(*name, *value).unwrap();
        }
        let mut resp = pingora::http::ResponseHeader::build(200, None).unwrap();
        resp.insert_header("ETag", &v.etag).unwrap();
        resp.insert_header("Last-Modified", &v.last_modified)
            .unwrap();
        not_modified_filter(&req, &resp)
    }

    #[test]
    fn if_none_match_uses_weak_comparison_over_a_list() {
        let v = validators();
        let matches = |list: &'static str| not_modified(&v, &[("if-none-match", list)]);
        assert!(matches("\"1234-2ebc98a1\""));
        assert!(matches("W/\"1234-2ebc98a1\""));
        assert!(matches("\"other\", W/\"1234-2ebc98a1\""));
        assert!(matches("\"a,b\" ,\"1234-2ebc98a1\""));
        assert!(matches("*"));
        assert!(!matches("\"1234-2ebc98a2\""));
        assert!(!matches("1234-2ebc98a1"), "unquoted is malformed");
        assert!(!matches("\"unterminated"));
        assert!(!matches(""));
    }

    #[test]
    fn not_modified_by_etag_or_by_date() {
        let v = validators();
        assert!(not_modified(&v, &[("if-none-match", "\"1234-2ebc98a1\"")]));
        assert!(!not_modified(&v, &[("if-none-match", "\"old\"")]));
        let same = "Sun, 06 Nov 1994 08:49:37 GMT";
        let later = "Sun, 06 Nov 1994 08:49:38 GMT";
        let earlier = "Sun, 06 Nov 1994 08:49:36 GMT";
        assert!(not_modified(&v, &[("if-modified-since", same)]));
        assert!(not_modified(&v, &[("if-modified-since", later)]));
        assert!(!not_modified(&v, &[("if-modified-since", earlier)]));
        assert!(!not_modified(&v, &[("if-modified-since", "garbage")]));
        // A non-matching If-None-Match overrides a matching date.
        let both = [("if-none-match", "\"old\""), ("if-modified-since", same)];
        assert!(!not_modified(&v, &both));
        assert!(!not_modified(&v, &[]));
    }

    #[test]
    fn if_range_needs_a_strong_tag_or_the_exact_date() {
        let v = validators();
        assert!(v.range_allowed(&HeaderMap::new()));
        assert!(v.range_allowed(&headers(&[("if-range", "\"1234-2ebc98a1\"")])));
        assert!(!v.range_allowed(&headers(&[("if-range", "W/\"1234-2ebc98a1\"")])));
        assert!(!v.range_allowed(&headers(&[("if-range", "\"old\"")])));
        let same = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert!(v.range_allowed(&headers(&[("if-range", same)])));
        let later = "Sun, 06 Nov 1994 08:49:38 GMT";
        assert!(!v.range_allowed(&headers(&[("if-range", later)])));
        assert!(!v.range_allowed(&headers(&[("if-range", "garbage")])));
    }
}
