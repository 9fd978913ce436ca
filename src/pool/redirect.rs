//! Redirect following (PixlProxy `follow_redirects`): which responses are followed, where the
//! next request goes, and with which method and body.
//!
//! 301, 302, 307 and 308 with a `Location` are followed (PixlProxy's list; a 303 and every
//! other status go to the client as they are). 301 and 302 turn a POST into a GET without a
//! body, as browsers and the Fetch standard do, and keep every other method; 307 and 308 keep
//! method and body.

use super::target::default_port;
use http::Method;

/// An absolute URL of one hop, split the way the proxy needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HopUrl {
    pub(crate) tls: bool,
    /// Lower-case host name or IP (IPv6 without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path and query, starting with `/`.
    pub(crate) path: String,
}

impl HopUrl {
    /// The URL of a request that was sent with `host_header` over `tls`.
    pub(crate) fn of_request(tls: bool, host_header: &str, path: &str) -> Option<HopUrl> {
        let (host, port) = split_authority(host_header, tls)?;
        Some(HopUrl {
            tls,
            host,
            port,
            path: path.to_string(),
        })
    }

    /// `host` or `host:port` (port only when not the scheme's default), for a Host header.
    pub(crate) fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port(self.tls) {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    pub(crate) fn same_origin(&self, other: &HopUrl) -> bool {
        self.tls == other.tls && self.host == other.host && self.port == other.port
    }

    /// Resolve a `Location` value against this URL (RFC 3986 reference resolution).
    pub(crate) fn join(&self, location: &str) -> Option<HopUrl> {
        let location = location.trim();
        let location = location.split('#').next().unwrap_or("");
        if let Some((scheme, rest)) = location.split_once("://") {
            let tls = match scheme.to_ascii_lowercase().as_str() {
                "http" => false,
                "https" => true,
                _ => return None,
            };
            return absolute(tls, rest);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return absolute(self.tls, rest);
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else if location.starts_with('?') {
            let base = self.path.split('?').next().unwrap_or("/");
            format!("{base}{location}")
        } else if location.is_empty() {
            self.path.clone()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Some(HopUrl {
            path: remove_dot_segments(&path),
            ..self.clone()
        })
    }
}

/// `host[:port]` -> lower-case host and port.
pub(crate) fn split_authority(authority: &str, tls: bool) -> Option<(String, u16)> {
    let authority = authority.rsplit('@').next()?;
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port(tls),
    };
    Some((host.to_ascii_lowercase(), port))
}

fn absolute(tls: bool, rest: &str) -> Option<HopUrl> {
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let (host, port) = split_authority(authority, tls)?;
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Some(HopUrl {
        tls,
        host,
        port,
        path: remove_dot_segments(&path),
    })
}

/// Remove `.` and `..` segments from the path part, keeping the query as is.
fn remove_dot_segments(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        // A trailing `.` or `..` leaves a directory, so the path keeps its trailing slash.
        if i == last && (*seg == "." || *seg == "..") {
            out.push("");
        }
    }
    let mut result = format!("/{}", out.join("/"));
    if let Some(q) = query {
        result.push('?');
        result.push_str(q);
    }
    result
}

/// The method of the request that follows a redirect with `status`, and whether it carries
/// the original body; `None` when `status` is not a followed redirect.
pub(crate) fn next_method(status: u16, method: &Method) -> Option<(Method, bool)> {
    match status {
        301 | 302 if method == Method::POST => Some((Method::GET, false)),
        301 | 302 | 307 | 308 => Some((method.clone(), true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HopUrl {
        HopUrl::of_request(false, "Example.com:8080", "/a/b/c?x=1").unwrap()
    }

    #[test]
    fn request_url_from_host_header() {
        let u = base();
        assert_eq!((u.host.as_str(), u.port), ("example.com", 8080));
        assert_eq!(u.authority(), "example.com:8080");
        let v6 = HopUrl::of_request(true, "[::1]", "/").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 443));
        assert_eq!(v6.authority(), "[::1]");
    }

    #[test]
    fn locations_resolve_like_a_browser() {
        let b = base();
        let path = |loc: &str| b.join(loc).unwrap().path;
        assert_eq!(path("/x"), "/x");
        assert_eq!(path("d"), "/a/b/d");
        assert_eq!(path("../d?q"), "/a/d?q");
        assert_eq!(path("./"), "/a/b/");
        assert_eq!(path("?y=2"), "/a/b/c?y=2");
        assert_eq!(path("/x#frag"), "/x");
        let other = b.join("https://Other.test/p").unwrap();
        assert_eq!(
            (
                other.tls,
                other.host.as_str(),
                other.port,
                other.path.as_str()
            ),
            (true, "other.test", 443, "/p")
        );
        let schemeless = b.join("//h:81").unwrap();
        assert_eq!(
            (schemeless.tls, schemeless.port, schemeless.path.as_str()),
            (false, 81, "/")
        );
        assert!(b.join("ftp://h/").is_none());
        assert!(b.join("http://:80/").is_none());
    }

    #[test]
    fn methods_after_redirects() {
        let post = Method::POST;
        assert_eq!(next_method(303, &post), None, "303 is not followed");
        assert_eq!(next_method(303, &Method::GET), None);
        assert_eq!(next_method(302, &post), Some((Method::GET, false)));
        assert_eq!(next_method(307, &post), Some((Method::POST, true)));
        assert_eq!(next_method(308, &Method::PUT), Some((Method::PUT, true)));
        assert_eq!(
            next_method(301, &Method::DELETE),
            Some((Method::DELETE, true))
        );
        assert_eq!(next_method(302, &Method::HEAD), Some((Method::HEAD, true)));
        assert_eq!(next_method(304, &Method::GET), None);
        assert_eq!(next_method(300, &Method::GET), None);
    }
}
