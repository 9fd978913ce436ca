//! HTTPS on the front end beyond the listeners (pixl-server-web): `https_force` redirects plain
//! HTTP to HTTPS, `https_header_detect` treats requests from a TLS-terminating load balancer
//! (e.g. `X-Forwarded-Proto: https`) as HTTPS; and poolgate's opt-in `secure_headers` (the
//! Unleash guide's `secureHeaders`): HSTS on HTTPS responses, `X-Content-Type-Options`,
//! `X-Frame-Options`, `Referrer-Policy` and a Content-Security-Policy whose allowed domains can
//! be extended per directive (`csp_allowed`).

use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;
use regex::Regex;

#[derive(Debug, Clone, Default)]
pub struct HttpsPolicy {
    /// `https_force` (with `https` on): the HTTPS port to redirect to.
    pub force_to_port: Option<u16>,
    /// `https_header_detect`: header name and the regex its value must match.
    pub detect: Vec<(HeaderName, Regex)>,
}

impl HttpsPolicy {
    /// Whether a load balancer in front says the client came over HTTPS.
    pub fn detected(&self, req: &RequestHeader) -> bool {
        self.detect.iter().any(|(name, re)| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| re.is_match(v))
        })
    }

    /// Where to send a plain-HTTP request with `https_force`: the same host and path over
    /// HTTPS. `None` when it may stay (TLS already, detected, or no `https_force`).
    pub fn redirect(&self, req: &RequestHeader, tls: bool) -> Option<String> {
        let port = self.force_to_port?;
        if tls || self.detected(req) {
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

/// The CSP directives `csp_allowed` can extend, with their base sources.
pub const CSP_DIRECTIVES: [(&str, &str, &str); 9] = [
    ("default", "default-src", "'self'"),
    ("script", "script-src", "'self'"),
    ("style", "style-src", "'self'"),
    ("img", "img-src", "'self' data:"),
    ("font", "font-src", "'self'"),
    ("connect", "connect-src", "'self'"),
    ("frame", "frame-src", "'self'"),
    ("media", "media-src", "'self'"),
    ("object", "object-src", "'none'"),
];

#[derive(Debug, Clone)]
pub struct SecureHeaders {
    fixed: Vec<(HeaderName, HeaderValue)>,
    hsts: HeaderValue,
}

impl SecureHeaders {
    /// The headers, with `extra` sources per directive key (`default`, `script`, ...).
    pub fn new(extra: &[(String, Vec<String>)]) -> std::result::Result<Self, String> {
        let mut csp = Vec::new();
        for (key, directive, base) in CSP_DIRECTIVES {
            let mut sources = vec![base.to_string()];
            for (k, list) in extra {
                if k == key {
                    sources.extend(list.iter().cloned());
                }
            }
            if key == "object" && sources.len() > 1 {
                sources.remove(0); // 'none' cannot be combined
            }
            csp.push(format!("{directive} {}", sources.join(" ")));
        }
        csp.push("frame-ancestors 'self'".into());
        let csp = HeaderValue::from_str(&csp.join("; "))
            .map_err(|_| "csp_allowed: not a valid header value".to_string())?;
        let fixed = vec![
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("SAMEORIGIN"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("strict-origin-when-cross-origin"),
            ),
            (HeaderName::from_static("content-security-policy"), csp),
        ];
        let hsts = HeaderValue::from_static("max-age=31536000; includeSubDomains");
        Ok(SecureHeaders { fixed, hsts })
    }

    /// Add the headers the response does not set itself (HSTS only over HTTPS).
    pub fn apply(&self, resp: &mut ResponseHeader, tls: bool) -> Result<()> {
        for (name, value) in &self.fixed {
            if !resp.headers.contains_key(name) {
                resp.insert_header(name.clone(), value.clone())?;
            }
        }
        if tls
            && !resp
                .headers
                .contains_key(http::header::STRICT_TRANSPORT_SECURITY)
        {
            resp.insert_header(http::header::STRICT_TRANSPORT_SECURITY, self.hsts.clone())?;
        }
        Ok(())
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
        assert_eq!(p.redirect(&lb, false), None);
        let std_port = HttpsPolicy {
            force_to_port: Some(443),
            detect: vec![],
        };
        assert_eq!(
            std_port.redirect(&r, false).as_deref(),
            Some("https://example.com/a?b=1")
        );
    }

    #[test]
    fn csp_directives_take_extra_sources() {
        let h = SecureHeaders::new(&[("script".into(), vec!["cdn.example.com".into()])]).unwrap();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        h.apply(&mut resp, false).unwrap();
        let csp = resp
            .headers
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self' cdn.example.com;"), "{csp}");
        assert!(resp.headers.get("strict-transport-security").is_none());
        h.apply(&mut resp, true).unwrap();
        assert!(resp.headers.get("strict-transport-security").is_some());
    }
}
