//! The request target's forms (RFC 9112 §3.2): origin form (`/path?query`, or `*` for
//! OPTIONS) as it comes, and absolute form (`http://authority/path`) rewritten to origin form
//! with its authority as `Host` (§3.2.2: the target's authority wins over any `Host`).

use super::host::valid_authority;
use super::line::RequestLine;
use super::HeadFault;

/// The forms of request target poolgate serves.
pub(super) enum Target<'a> {
    /// `/path?query`, or `*` for OPTIONS.
    Origin,
    /// `http://authority/path?query`: sent on as `origin` with `Host: authority`.
    Absolute {
        authority: &'a [u8],
        origin: Vec<u8>,
    },
}

impl<'a> Target<'a> {
    pub(super) fn of(line: &RequestLine<'a>) -> Result<Self, HeadFault> {
        let target = line.target;
        if target.starts_with(b"/") {
            return Ok(Target::Origin);
        }
        if target == b"*" {
            return match line.method == b"OPTIONS" {
                true => Ok(Target::Origin),
                false => Err(HeadFault::UnsupportedTarget),
            };
        }
        let Some(colon) = memchr::memmem::find(target, b"://") else {
            return Err(HeadFault::InvalidTarget);
        };
        let scheme = &target[..colon];
        if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
            return Err(HeadFault::UnsupportedTarget);
        }
        let rest = &target[colon + 3..];
        let end = rest
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        if !valid_authority(authority) {
            return Err(HeadFault::InvalidHost);
        }
        let path = &rest[end..];
        let origin = match path.first() {
            Some(b'/') => path.to_vec(),
            None if line.method == b"OPTIONS" => b"*".to_vec(),
            _ => [b"/", path].concat(),
        };
        Ok(Target::Absolute { authority, origin })
    }
}

/// The head again with an origin-form target and `Host: authority` in place of any Host.
pub(super) fn rewrite(
    line: &RequestLine<'_>,
    authority: &[u8],
    origin: &[u8],
    headers: &[httparse::Header<'_>],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(line.method);
    out.push(b' ');
    out.extend_from_slice(origin);
    out.extend_from_slice(match line.http11 {
        true => b" HTTP/1.1\r\nHost: ",
        false => b" HTTP/1.0\r\nHost: ",
    });
    out.extend_from_slice(authority);
    out.extend_from_slice(b"\r\n");
    for h in headers
        .iter()
        .filter(|h| !h.name.eq_ignore_ascii_case("host"))
    {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}
