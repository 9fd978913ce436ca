//! Reading one complete request head strictly (RFC 9112): the request line, the header block
//! (`http_max_header_count`), `Host`, the framing headers (`http_allow_te_and_cl`) and the
//! target's form. An absolute-form target (`GET http://host/path`) is rewritten to
//! origin-form with its authority as `Host` (RFC 9112 §3.2.2: the target's authority wins), so
//! routing, the back end and the logs all see the same host.

use super::host::valid_authority;
use super::line::{first_line, request_line, RequestLine};
use super::target::{rewrite, Target};
use super::{HeadFault, HeadLimits};

/// Most header fields a head may have, whatever `http_max_header_count` says (Pingora's own
/// parser stops there).
pub(crate) const HEADER_COUNT_CEILING: usize = 256;

/// A head that may go on to Pingora.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CheckedHead {
    /// The head as Pingora must read it when the target was absolute-form; `None` = as it came.
    pub(crate) rewritten: Option<Vec<u8>>,
}

/// Check the complete head `head` (up to and including its blank line).
pub(crate) fn inspect(head: &[u8], limits: &HeadLimits) -> Result<CheckedHead, HeadFault> {
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    let after_line =
        start + memchr::memchr(b'\n', &head[start..]).ok_or(HeadFault::MalformedRequestLine)? + 1;
    let line = request_line(first_line(head))?;
    if line.method == b"CONNECT" {
        return Err(HeadFault::ConnectMethod);
    }
    let target = Target::of(&line)?;

    let block = &head[after_line..];
    let count = limits.max_headers.min(HEADER_COUNT_CEILING);
    // Most heads fit the small array; only a head with more fields pays for the large one.
    let mut inline = [httparse::EMPTY_HEADER; INLINE_HEADERS];
    let mut large = Vec::new();
    let headers = match header_block(block, &mut inline[..count.min(INLINE_HEADERS)]) {
        Err(HeadFault::TooManyHeaders) if count > INLINE_HEADERS => {
            large.resize(count, httparse::EMPTY_HEADER);
            header_block(block, &mut large)?
        }
        parsed => parsed?,
    };
    let mut hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    let host = hosts.next().map(|h| trim(h.value));
    if hosts.next().is_some() {
        return Err(HeadFault::MultipleHost);
    }
    match (host, &target) {
        (_, Target::Absolute { .. }) => {}
        (None, _) if line.http11 => return Err(HeadFault::MissingHost),
        (Some(value), _) if !valid_authority(value) => return Err(HeadFault::InvalidHost),
        _ => {}
    }
    framing(headers, &line, limits)?;
    let rewritten = match target {
        Target::Absolute { authority, origin } => Some(rewrite(&line, authority, &origin, headers)),
        Target::Origin => None,
    };
    Ok(CheckedHead { rewritten })
}

/// Header fields parsed without allocating, for heads with no more fields than this.
const INLINE_HEADERS: usize = 32;

/// The fields of a header block, in `slots`.
fn header_block<'h, 'b>(
    block: &'b [u8],
    slots: &'h mut [httparse::Header<'b>],
) -> Result<&'h [httparse::Header<'b>], HeadFault> {
    match httparse::parse_headers(block, slots) {
        Ok(httparse::Status::Complete((_, headers))) => Ok(headers),
        Ok(httparse::Status::Partial) => Err(HeadFault::MalformedHeader),
        Err(httparse::Error::TooManyHeaders) => Err(HeadFault::TooManyHeaders),
        Err(_) => Err(HeadFault::MalformedHeader),
    }
}

/// `Content-Length` and `Transfer-Encoding` (RFC 9112 §6).
fn framing(
    headers: &[httparse::Header<'_>],
    line: &RequestLine<'_>,
    limits: &HeadLimits,
) -> Result<(), HeadFault> {
    let mut lengths = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"));
    let length = lengths.next();
    if lengths.next().is_some() {
        return Err(HeadFault::DuplicateContentLength);
    }
    if let Some(h) = length {
        let value = trim(h.value);
        let number = !value.is_empty() && value.len() <= 19 && value.iter().all(u8::is_ascii_digit);
        if !number {
            return Err(HeadFault::InvalidContentLength);
        }
    }
    let mut codings = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(trim)
        .filter(|c| !c.is_empty())
        .peekable();
    if codings.peek().is_none() {
        return Ok(());
    }
    if !line.http11 {
        return Err(HeadFault::InvalidTransferEncoding);
    }
    let codings: Vec<&[u8]> = codings.collect();
    let chunked = |c: &&[u8]| c.eq_ignore_ascii_case(b"chunked");
    if !codings.last().is_some_and(chunked) {
        return Err(HeadFault::InvalidTransferEncoding);
    }
    if codings.len() > 1 {
        return Err(HeadFault::UnsupportedTransferEncoding);
    }
    if length.is_some() && !limits.allow_te_and_cl {
        return Err(HeadFault::LengthWithTransferEncoding);
    }
    Ok(())
}

fn trim(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &str) -> Result<CheckedHead, HeadFault> {
        inspect(head.as_bytes(), &HeadLimits::default())
    }

    fn fault(head: &str) -> HeadFault {
        match check(head) {
            Err(f) => f,
            Ok(h) => panic!("accepted {head:?}: {h:?}"),
        }
    }

    #[test]
    fn an_ordinary_head_passes_unchanged() {
        let ok = check("GET /a?b=c HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\n\r\n");
        assert_eq!(ok, Ok(CheckedHead { rewritten: None }));
        assert!(check("\r\nGET / HTTP/1.1\nHost: a\n\n").is_ok());
        assert!(
            check("GET / HTTP/1.0\r\n\r\n").is_ok(),
            "HTTP/1.0 needs no Host"
        );
        assert!(check("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(check("GET /%7B%7D?x={}|^ HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
    }

    #[test]
    fn host_must_be_present_single_and_well_formed() {
        assert_eq!(fault("GET / HTTP/1.1\r\n\r\n"), HeadFault::MissingHost);
        assert_eq!(
            fault("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            HeadFault::MultipleHost
        );
        for bad in ["a b", "a/b", "u@a", "a:", "a, b", ""] {
            let head = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(fault(&head), HeadFault::InvalidHost, "{bad:?}");
        }
        assert_eq!(
            fault("GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n"),
            HeadFault::InvalidHost
        );
        // A control character makes the header line itself unreadable.
        assert_eq!(
            fault("GET / HTTP/1.1\r\nHost: a\u{1}b\r\n\r\n"),
            HeadFault::MalformedHeader
        );
    }

    #[test]
    fn targets_with_spaces_or_control_characters_are_refused() {
        assert_eq!(
            fault("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
            HeadFault::InvalidTarget
        );
        assert_eq!(
            fault("GET /a\u{0}b HTTP/1.1\r\nHost: a\r\n\r\n"),
            HeadFault::InvalidTarget
        );
        assert_eq!(
            fault("GET /a\u{7f} HTTP/1.1\r\nHost: a\r\n\r\n"),
            HeadFault::InvalidTarget
        );
        assert_eq!(
            fault("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"),
            HeadFault::InvalidTarget
        );
        assert_eq!(
            fault("GET a HTTP/1.1\r\nHost: a\r\n\r\n"),
            HeadFault::InvalidTarget
        );
        assert_eq!(
            fault("GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
            HeadFault::UnsupportedTarget
        );
    }

    #[test]
    fn request_lines_are_read_strictly() {
        for bad in [
            "GET /",
            "GET  HTTP/1.1",
            "G(T / HTTP/1.1",
            "GET / HTTP/1.1x",
            "GET / http/1.1",
        ] {
            let head = format!("{bad}\r\nHost: a\r\n\r\n");
            assert_eq!(fault(&head), HeadFault::MalformedRequestLine, "{bad:?}");
        }
        assert_eq!(
            fault("GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            HeadFault::UnsupportedVersion
        );
        assert_eq!(
            fault("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
            HeadFault::ConnectMethod
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in ["X Y: 1", "X: a\u{1}b", " folded: x", "NoColon"] {
            let head = format!("GET / HTTP/1.1\r\nHost: a\r\n{bad}\r\n\r\n");
            assert_eq!(fault(&head), HeadFault::MalformedHeader, "{bad:?}");
        }
    }

    #[test]
    fn too_many_headers_is_431() {
        let limits = HeadLimits {
            max_headers: 3,
            ..HeadLimits::default()
        };
        let ok = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(inspect(ok.as_bytes(), &limits).is_ok());
        let many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(
            inspect(many.as_bytes(), &limits),
            Err(HeadFault::TooManyHeaders)
        );
    }

    #[test]
    fn heads_with_more_fields_than_the_small_array_are_read_up_to_the_limit() {
        let head = |n: usize| {
            let fields: String = (0..n).map(|i| format!("X-{i}: v\r\n")).collect();
            format!("GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n")
        };
        assert!(check(&head(INLINE_HEADERS + 10)).is_ok());
        assert!(check(&head(99)).is_ok(), "100 fields with Host");
        assert_eq!(fault(&head(100)), HeadFault::TooManyHeaders);
    }

    #[test]
    fn content_length_must_be_one_number() {
        let h = |cl: &str| format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\n");
        assert!(check(&h("12")).is_ok());
        for bad in [
            "",
            "-1",
            "+1",
            "1 2",
            "0x10",
            "5, 5",
            "99999999999999999999",
        ] {
            assert_eq!(fault(&h(bad)), HeadFault::InvalidContentLength, "{bad:?}");
        }
        assert_eq!(
            fault("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
            HeadFault::DuplicateContentLength
        );
    }

    #[test]
    fn transfer_encoding_must_end_with_chunked_alone() {
        let h = |te: &str| format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
        assert!(check(&h("chunked")).is_ok());
        assert!(check(&h("Chunked")).is_ok());
        assert_eq!(fault(&h("gzip")), HeadFault::InvalidTransferEncoding);
        assert_eq!(
            fault(&h("chunked, gzip")),
            HeadFault::InvalidTransferEncoding
        );
        assert_eq!(
            fault(&h("gzip, chunked")),
            HeadFault::UnsupportedTransferEncoding
        );
        assert_eq!(
            fault(&h("chunked, chunked")),
            HeadFault::UnsupportedTransferEncoding
        );
        assert_eq!(
            fault("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadFault::InvalidTransferEncoding
        );
    }

    #[test]
    fn length_with_transfer_encoding_is_refused_unless_allowed() {
        let head =
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(fault(head), HeadFault::LengthWithTransferEncoding);
        let allow = HeadLimits {
            allow_te_and_cl: true,
            ..HeadLimits::default()
        };
        assert!(inspect(head.as_bytes(), &allow).is_ok());
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_the_targets_host() {
        let ok = check("GET http://b.example:81/p?q=1 HTTP/1.1\r\nHost: a.example\r\nX: y\r\n\r\n");
        let head = ok.ok().and_then(|h| h.rewritten).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&head),
            "GET /p?q=1 HTTP/1.1\r\nHost: b.example:81\r\nX: y\r\n\r\n"
        );
        let ok = check("OPTIONS HTTPS://b HTTP/1.1\r\n\r\n");
        let head = ok.ok().and_then(|h| h.rewritten).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&head),
            "OPTIONS * HTTP/1.1\r\nHost: b\r\n\r\n"
        );
        let ok = check("GET http://b?x HTTP/1.1\r\nHost: b\r\n\r\n");
        let head = ok.ok().and_then(|h| h.rewritten).unwrap_or_default();
        assert!(head.starts_with(b"GET /?x HTTP/1.1\r\nHost: b\r\n"));
    }

    #[test]
    fn absolute_form_with_a_bad_authority_or_scheme_is_refused() {
        assert_eq!(
            fault("GET http://u@b/ HTTP/1.1\r\nHost: b\r\n\r\n"),
            HeadFault::InvalidHost
        );
        assert_eq!(
            fault("GET http:/// HTTP/1.1\r\nHost: b\r\n\r\n"),
            HeadFault::InvalidHost
        );
        assert_eq!(
            fault("GET ftp://b/ HTTP/1.1\r\nHost: b\r\n\r\n"),
            HeadFault::UnsupportedTarget
        );
    }
}
