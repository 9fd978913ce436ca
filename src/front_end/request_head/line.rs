//! The request line (RFC 9112 §3): `METHOD SP request-target SP HTTP-version`, read strictly,
//! and what a log or an answer needs of it even when the head is refused.

use super::HeadFault;

/// What the request line says (for the answer and the log, even when the head is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestLine<'a> {
    pub(crate) method: &'a [u8],
    pub(crate) target: &'a [u8],
    /// `true` for HTTP/1.1, `false` for HTTP/1.0.
    pub(crate) http11: bool,
}

/// The request line of `head` (its first non-empty line, without its line ending).
pub(crate) fn first_line(head: &[u8]) -> &[u8] {
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(head.len());
    let rest = &head[start..];
    let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    let line = &rest[..end];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The method of a head, when its request line starts with one (a HEAD request's refusal has
/// no body).
pub(crate) fn method_of(head: &[u8]) -> Option<&[u8]> {
    let line = first_line(head);
    let end = line.iter().position(|&b| b == b' ')?;
    let method = &line[..end];
    (!method.is_empty() && method.iter().all(|&b| is_tchar(b))).then_some(method)
}

/// `METHOD SP request-target SP HTTP-version`.
pub(super) fn request_line(line: &[u8]) -> Result<RequestLine<'_>, HeadFault> {
    let first = line.iter().position(|&b| b == b' ');
    let last = line.iter().rposition(|&b| b == b' ');
    let (Some(first), Some(last)) = (first, last) else {
        return Err(HeadFault::MalformedRequestLine);
    };
    let method = &line[..first];
    if first == last || method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HeadFault::MalformedRequestLine);
    }
    let version = &line[last + 1..];
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(HeadFault::UnsupportedVersion)
        }
        _ => return Err(HeadFault::MalformedRequestLine),
    };
    let target = &line[first + 1..last];
    if target.is_empty() {
        return Err(HeadFault::MalformedRequestLine);
    }
    if target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(HeadFault::InvalidTarget);
    }
    Ok(RequestLine {
        method,
        target,
        http11,
    })
}

/// RFC 9110 `tchar`.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_method_is_known_even_for_a_refused_head() {
        assert_eq!(method_of(b"HEAD /a b HTTP/1.1\r\n"), Some(&b"HEAD"[..]));
        assert_eq!(method_of(b"\r\nGET / HTTP/1.1"), Some(&b"GET"[..]));
        assert_eq!(method_of(b"\x16\x03\x01 junk"), None);
        assert_eq!(
            first_line(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n"),
            b"GET / HTTP/1.1"
        );
    }
}
