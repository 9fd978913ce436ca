//! poolgate's opt-in `secure_headers` (the Unleash guide's `secureHeaders`): HSTS on HTTPS
//! responses, `X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy` and a
//! Content-Security-Policy whose allowed domains can be extended per directive (`csp_allowed`).

use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::Result;

/// The CSP directives `csp_allowed` can extend, with their base sources.
pub(crate) const CSP_DIRECTIVES: [(&str, &str, &str); 9] = [
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

/// A `csp_allowed` source that cannot go into a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("csp_allowed: not a valid header value")]
pub(crate) struct InvalidCsp;

#[derive(Debug, Clone)]
pub(crate) struct SecureHeaders {
    fixed: Vec<(HeaderName, HeaderValue)>,
    hsts: HeaderValue,
}

impl SecureHeaders {
    /// The headers, with `extra` sources per directive key (`default`, `script`, ...).
    pub(crate) fn new(extra: &[(String, Vec<String>)]) -> std::result::Result<Self, InvalidCsp> {
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
        let csp = HeaderValue::from_str(&csp.join("; ")).map_err(|_| InvalidCsp)?;
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
    pub(crate) fn apply(&self, resp: &mut ResponseHeader, tls: bool) -> Result<()> {
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
