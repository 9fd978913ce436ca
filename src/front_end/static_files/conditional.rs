//! Validators of a file (strong `ETag`, `Last-Modified`) and the conditional requests that use
//! them: `If-None-Match` / `If-Modified-Since` (304) and `If-Range` (whether a `Range` applies).
//!
//! The ETag is made of the size and the modification time, so it changes whenever a deploy
//! rewrites the file, without reading it. Dates have one-second precision, as HTTP dates do.

use http::HeaderMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second an HTTP date can express (9999-12-31 23:59:59); `httpdate` panics beyond.
const LAST_HTTP_SECOND: u64 = 253_402_300_799;

/// What identifies one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// The file's length in bytes.
    pub len: u64,
    /// Modification time in whole seconds since the epoch (clamped to what HTTP can say).
    pub mtime: u64,
    /// `"<len hex>-<mtime hex>"`, quotes included.
    pub etag: String,
    /// IMF-fixdate of `mtime`.
    pub last_modified: String,
}

impl Validators {
    pub fn new(len: u64, modified: Option<SystemTime>) -> Self {
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

    /// Whether a GET or HEAD should get 304. `If-None-Match` wins when present (RFC 9110
    /// 13.2.2): `If-Modified-Since` is only looked at without it.
    pub fn not_modified(&self, headers: &HeaderMap) -> bool {
        if let Some(list) = headers.get(http::header::IF_NONE_MATCH) {
            return list
                .to_str()
                .is_ok_and(|list| list_matches(list, &self.etag));
        }
        headers
            .get(http::header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_date)
            .is_some_and(|since| self.mtime <= since)
    }

    /// Whether a `Range` may be honoured given `If-Range` (absent: yes). An entity tag must
    /// match strongly, a date exactly; anything else means "send the whole file".
    pub fn range_allowed(&self, headers: &HeaderMap) -> bool {
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

/// Weak comparison of `etag` with an `If-None-Match` list: `*`, or any listed tag with the
/// same opaque value, `W/` or not. A malformed list matches nothing (the full answer is safe).
pub fn list_matches(list: &str, etag: &str) -> bool {
    let ours = opaque(etag);
    let mut rest = list.trim();
    if rest == "*" {
        return true;
    }
    while !rest.is_empty() {
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(after_quote) = tag.strip_prefix('"') else {
            return false;
        };
        let Some(end) = after_quote.find('"') else {
            return false;
        };
        if Some(&after_quote[..end]) == ours {
            return true;
        }
        rest = after_quote[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    false
}

/// The part of a tag between its quotes.
fn opaque(tag: &str) -> Option<&str> {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')?.strip_suffix('"')
}

/// Seconds since the epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn format_date(secs: u64) -> String {
    let secs = secs.min(LAST_HTTP_SECOND);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// An HTTP date (IMF-fixdate, or the obsolete RFC 850 and asctime forms) as seconds since the
/// epoch; `None` when it is not one.
pub fn parse_date(value: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(value.trim()).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

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

    #[test]
    fn if_none_match_uses_weak_comparison_over_a_list() {
        let etag = "\"1234-2ebc98a1\"";
        assert!(list_matches("\"1234-2ebc98a1\"", etag));
        assert!(list_matches("W/\"1234-2ebc98a1\"", etag));
        assert!(list_matches("\"other\", W/\"1234-2ebc98a1\"", etag));
        assert!(list_matches("\"a,b\" ,\"1234-2ebc98a1\"", etag));
        assert!(list_matches(" * ", etag));
        assert!(!list_matches("\"1234-2ebc98a2\"", etag));
        assert!(
            !list_matches("1234-2ebc98a1", etag),
            "unquoted is malformed"
        );
        assert!(!list_matches("\"unterminated", etag));
        assert!(!list_matches("", etag));
    }

    #[test]
    fn not_modified_by_etag_or_by_date() {
        let v = validators();
        assert!(v.not_modified(&headers(&[("if-none-match", "\"1234-2ebc98a1\"")])));
        assert!(!v.not_modified(&headers(&[("if-none-match", "\"old\"")])));
        let same = "Sun, 06 Nov 1994 08:49:37 GMT";
        let later = "Sun, 06 Nov 1994 08:49:38 GMT";
        let earlier = "Sun, 06 Nov 1994 08:49:36 GMT";
        assert!(v.not_modified(&headers(&[("if-modified-since", same)])));
        assert!(v.not_modified(&headers(&[("if-modified-since", later)])));
        assert!(!v.not_modified(&headers(&[("if-modified-since", earlier)])));
        assert!(!v.not_modified(&headers(&[("if-modified-since", "garbage")])));
        // A non-matching If-None-Match overrides a matching date.
        let both = [("if-none-match", "\"old\""), ("if-modified-since", same)];
        assert!(!v.not_modified(&headers(&both)));
        assert!(!v.not_modified(&HeaderMap::new()));
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
