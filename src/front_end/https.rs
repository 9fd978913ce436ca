//! HTTPS on the front end beyond the listeners (pixl-server-web): `https_force` redirects plain
//! HTTP to HTTPS, `https_header_detect` treats requests from a TLS-terminating load balancer
//! (e.g. `X-Forwarded-Proto: https`) as HTTPS.

use http::HeaderName;
use pingora::http::RequestHeader;
use regex::Regex;

#[derive(Debug, Clone, Default)]
pub(crate) struct HttpsPolicy {
    /// `https_force` (with `https` on): the HTTPS port to redirect to.
    pub(crate) force_to_port: Option<u16>,
    /// `https_header_detect`: header name and the regex its value must match.
    pub(crate) detect: Vec<(HeaderName, Regex)>,
}

impl HttpsPolicy {
    /// Whether a load balancer in front says the client came over HTTPS.
    pub(super) fn detected(&self, req: &RequestHeader) -> bool {
        self.detect.iter().any(|(name, re)| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| re.is_match(v))
        })
    }

    /// Where to send a plain-HTTP request with `https_force`: the same host and path over
    /// HTTPS. `None` when it may stay (`tls`: the request counts as HTTPS, see `client.rs`).
    pub(crate) fn redirect(&self, req: &RequestHeader, tls: bool) -> Option<String> {
        let port = self.force_to_port?;
        if tls {
            return None;
        }
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.uri.host())?;
        let host = match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let port = if port == 443 {
            String::new()
        } else {
            format!(":{port}")
        };
        let path = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        Some(format!("https://{host}{port}{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str, path: &str, header: Option<(&str, &str)>) -> RequestHeader {
        let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        r.insert_header("Host", host).unwrap();
        if let Some((k, v)) = header {
            r.insert_header(k.to_string(), v).unwrap();
        }
        r
    }

    #[test]
    fn plain_http_is_redirected_unless_tls_or_detected() {
        let p = HttpsPolicy {
            force_to_port: Some(8443),
            detect: vec![(
                HeaderName::from_static("x-forwarded-proto"),
                Regex::new("^https$").unwrap(),
            )],
        };
        let r = req("example.com:8080", "/a?b=1", None);
        assert_eq!(
            p.redirect(&r, false).as_deref(),
            Some("https://example.com:8443/a?b=1")
        );
        assert_eq!(p.redirect(&r, true), None);
        let lb = req("example.com", "/", Some(("X-Forwarded-Proto", "https")));
        assert!(p.detected(&lb));
        assert!(!p.detected(&r));
        let std_port = HttpsPolicy {
            force_to_port: Some(443),
            detect: vec![],
        };
        assert_eq!(
            std_port.redirect(&r, false).as_deref(),
            Some("https://example.com/a?b=1")
        );
    }
}
