//! From a request path to a path relative to the htdocs root.
//!
//! Everything that could climb out of the root or be read differently by the file system than
//! by this check is refused here, before the file system is touched: `..` segments (however
//! they were encoded), NUL bytes, backslashes and encoded slashes. `lookup.rs` then checks
//! where the path really leads (symlinks) after joining it to the root.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// A request path that is safe to join to the htdocs root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RequestPath {
    /// Decoded segments joined with `/`, without empty and `.` segments; empty for the root.
    pub(crate) relative: PathBuf,
    /// The path ends with `/`: a directory was asked for (its index is served).
    pub(crate) trailing_slash: bool,
}

/// Why a path was refused (all answered with 400; the reason is for the debug log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not an absolute path (`*`, or empty).
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// `%2F` or `%5C`: a separator the client hid from path normalisation.
    EncodedSeparator,
    /// A `..` segment.
    DotDot,
    /// A NUL byte (would truncate the path in C APIs).
    Nul,
    /// A backslash (a separator on other systems; never a legitimate web path).
    Backslash,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::NotAbsolute => "not an absolute path",
            Refusal::BadEscape => "malformed percent escape",
            Refusal::EncodedSeparator => "encoded path separator",
            Refusal::DotDot => "`..` segment",
            Refusal::Nul => "NUL byte",
            Refusal::Backslash => "backslash",
        })
    }
}

/// Decode the path part of a request URI (without the query) into a relative path.
pub(super) fn decode(raw: &str) -> Result<RequestPath, Refusal> {
    if !raw.starts_with('/') {
        return Err(Refusal::NotAbsolute);
    }
    let decoded = percent_decode(raw.as_bytes())?;
    if decoded.contains(&0) {
        return Err(Refusal::Nul);
    }
    if decoded.contains(&b'\\') {
        return Err(Refusal::Backslash);
    }
    let mut relative = PathBuf::new();
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => continue,
            b".." => return Err(Refusal::DotDot),
            // Linux file names are bytes: a name that is not UTF-8 is still a name.
            name => relative.push(OsStr::from_bytes(name)),
        }
    }
    Ok(RequestPath {
        relative,
        trailing_slash: decoded.ends_with(b"/"),
    })
}

/// `%XX` to bytes. An encoded `/` or `\` is refused rather than decoded: it would let a client
/// smuggle a separator (and with it `..`) past anything that looked at the raw path.
fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hi = bytes.next().and_then(|&h| hex(h));
        let lo = bytes.next().and_then(|&l| hex(l));
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err(Refusal::BadEscape);
        };
        match hi << 4 | lo {
            b'/' | b'\\' => return Err(Refusal::EncodedSeparator),
            byte => out.push(byte),
        }
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Where a directory asked for without its trailing slash is redirected: the same raw path
/// plus `/`, and the query. Leading slashes are collapsed so `//host/dir` cannot become a
/// protocol-relative redirect to another site.
pub(super) fn with_slash(raw_path: &str, query: Option<&str>) -> String {
    let path = format!("/{}/", raw_path.trim_start_matches('/'));
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (String, bool) {
        let p = decode(raw).unwrap();
        (p.relative.to_string_lossy().into_owned(), p.trailing_slash)
    }

    #[test]
    fn plain_paths_decode_to_relative_ones() {
        assert_eq!(ok("/"), (String::new(), true));
        assert_eq!(ok("/index.html"), ("index.html".into(), false));
        assert_eq!(ok("/a/b/"), ("a/b".into(), true));
        assert_eq!(ok("//a/./b"), ("a/b".into(), false));
        assert_eq!(ok("/with%20space.txt"), ("with space.txt".into(), false));
        assert_eq!(ok("/caf%C3%A9"), ("café".into(), false));
        assert_eq!(ok("/...x/..y"), ("...x/..y".into(), false));
    }

    #[test]
    fn names_that_are_not_utf8_are_kept_as_bytes() {
        let p = decode("/%FF").unwrap();
        assert_eq!(p.relative.as_os_str().as_bytes(), b"\xff");
    }

    #[test]
    fn traversal_in_any_encoding_is_refused() {
        for raw in [
            "/..",
            "/../secret",
            "/a/../../secret",
            "/%2e%2e/secret",
            "/%2E%2E",
            "/.%2e/x",
        ] {
            assert_eq!(decode(raw), Err(Refusal::DotDot), "{raw}");
        }
        for raw in [
            "/a/..%2fsecret",
            "/%2e%2e%2fsecret",
            "/..%5csecret",
            "/a%2Fb",
        ] {
            assert_eq!(decode(raw), Err(Refusal::EncodedSeparator), "{raw}");
        }
        assert_eq!(decode("/..\\secret"), Err(Refusal::Backslash));
        assert_eq!(decode("/a%00.html"), Err(Refusal::Nul));
    }

    #[test]
    fn malformed_input_is_refused() {
        assert_eq!(decode("*"), Err(Refusal::NotAbsolute));
        assert_eq!(decode(""), Err(Refusal::NotAbsolute));
        assert_eq!(decode("/%"), Err(Refusal::BadEscape));
        assert_eq!(decode("/%4"), Err(Refusal::BadEscape));
        assert_eq!(decode("/%zz"), Err(Refusal::BadEscape));
    }

    #[test]
    fn directory_redirects_keep_the_query_and_stay_on_this_site() {
        assert_eq!(with_slash("/docs", None), "/docs/");
        assert_eq!(with_slash("/docs", Some("a=1")), "/docs/?a=1");
        assert_eq!(with_slash("//evil.example/x", None), "/evil.example/x/");
    }
}
