//! PixlProxy's JSON stats API (`stats_uri_match`, `?pretty=1`) and poolgate's Prometheus
//! endpoint (`metrics_uri`) on the main port. Both are private: every address of the
//! client's chain (the proxy headers' and the socket's, see `front_end::ClientFacts`) must be
//! in `http_default_acl`, or the request must carry one of the stats API tokens as
//! `Authorization: Bearer <token>` (so the stats can be read from outside the ACL). Anything
//! else gets 403. `?html=1` serves the live page (`page/`): one self-contained HTML file with
//! its style and scripts inline, assembled once from `page.html`, `page.css`, `charts.js` and
//! `page.js`.

use super::acl::Acl;
use super::hub::StatsHub;
use crate::front_end::ClientFacts;
use bytes::Bytes;
use once_cell::sync::Lazy;
use pingora::http::RequestHeader;
use regex::Regex;
use serde_json::json;

/// The stats endpoints as configured: validated values.
#[derive(Debug, Default)]
pub(crate) struct StatsApi {
    /// `stats_uri_match`; `None` = no JSON stats API.
    pub(crate) uri: Option<Regex>,
    /// `metrics_uri`; `None` = no Prometheus endpoint.
    pub(crate) metrics_uri: Option<String>,
    pub(crate) acl: Acl,
    /// Accepted bearer tokens (config, `POOLGATE_STATS_API_TOKENS`, `..._FILE`).
    pub(crate) tokens: Vec<String>,
}

/// Which stats endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Endpoint {
    Stats,
    Metrics,
}

/// What a stats endpoint answers; the proxy writes it with the global headers.
#[derive(Debug)]
pub(crate) struct StatsAnswer {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Bytes,
    /// The live page, whose inline script and style need their own content policy.
    pub(crate) page: bool,
}

impl StatsAnswer {
    fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        StatsAnswer {
            status,
            content_type,
            body: body.into(),
            page: false,
        }
    }
}

impl StatsApi {
    /// Whether the JSON stats API exists, and with it the per-request view of client
    /// connections (`web.sockets`) that only it shows.
    pub(crate) fn shows_connections(&self) -> bool {
        self.uri.is_some()
    }

    /// Which endpoint a request is for, if any (checked before routing to pools).
    pub(crate) fn endpoint(&self, req: &RequestHeader) -> Option<Endpoint> {
        if self
            .metrics_uri
            .as_deref()
            .is_some_and(|m| req.uri.path() == m)
        {
            return Some(Endpoint::Metrics);
        }
        let target = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        self.uri
            .as_ref()
            .filter(|re| re.is_match(target))
            .map(|_| Endpoint::Stats)
    }

    fn allows(&self, req: &RequestHeader, client: &ClientFacts) -> bool {
        let bearer = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let token_ok = bearer.is_some_and(|b| self.tokens.iter().any(|t| same(t, b)));
        token_ok || self.acl.allows_chain(&client.chain(&req.headers))
    }

    /// The answer to a request for `endpoint` from `client`.
    pub(crate) fn answer(
        &self,
        req: &RequestHeader,
        hub: &StatsHub,
        endpoint: Endpoint,
        client: &ClientFacts,
    ) -> StatsAnswer {
        let query = req.uri.query().unwrap_or("");
        let flag = |name: &str| query.split('&').any(|kv| kv == name);
        if endpoint == Endpoint::Stats && flag("html=1") {
            // The page holds no data (it fetches the JSON with the same access rules), so it is
            // served to anyone: from outside the ACL it asks for a token.
            let mut page = StatsAnswer::new(200, HTML, LIVE_PAGE.clone());
            page.page = true;
            return page;
        }
        if !self.allows(req, client) {
            let who = client.ip.map_or("unknown".into(), |ip| ip.to_string());
            let ips = client.chain(&req.headers).texts().join(", ");
            log::warn!(
                "stats: refused {who} (ips: {ips}): not in http_default_acl and no valid token"
            );
            let body = json!({"code": 403, "description": "Forbidden: not in http_default_acl and no valid token."});
            return StatsAnswer::new(403, JSON, body.to_string());
        }
        match endpoint {
            Endpoint::Stats => {
                let doc = hub.document();
                let text = match flag("pretty=1") {
                    true => serde_json::to_string_pretty(&doc),
                    false => serde_json::to_string(&doc),
                }
                .unwrap_or_default();
                StatsAnswer::new(200, JSON, text)
            }
            Endpoint::Metrics => StatsAnswer::new(200, PROMETHEUS, super::metrics::render(hub)),
        }
    }
}

const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The live page (`?html=1`): one self-contained file that polls the JSON once a second and
/// shows the overview, the pools with their targets and history, and the recent errors and
/// requests. Its parts are kept apart in the source and put together once.
static LIVE_PAGE: Lazy<Bytes> = Lazy::new(|| {
    let page = include_str!("page/page.html")
        .replace("/*page.css*/", include_str!("page/page.css"))
        .replace("/*charts.js*/", include_str!("page/charts.js"))
        .replace("/*page.js*/", include_str!("page/page.js"));
    Bytes::from(page)
});

/// Token comparison that takes the same time wherever the first difference is.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> StatsApi {
        StatsApi {
            uri: Some(Regex::new("^/proxy-stats").unwrap()),
            metrics_uri: Some("/metrics".into()),
            acl: Acl::parse(&["10.0.0.0/8".to_string()]).unwrap(),
            tokens: vec!["s3cret".into()],
        }
    }

    fn req(path: &str, auth: Option<&str>) -> RequestHeader {
        let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        if let Some(a) = auth {
            r.insert_header("Authorization", a).unwrap();
        }
        r
    }

    #[test]
    fn the_live_page_is_one_file_that_names_no_other_origin() {
        let page = std::str::from_utf8(&LIVE_PAGE).unwrap();
        assert!(page.starts_with("<!doctype html>") && page.trim_end().ends_with("</html>"));
        for marker in ["/*page.css*/", "/*charts.js*/", "/*page.js*/"] {
            assert!(!page.contains(marker), "{marker} left in the page");
        }
        assert!(page.contains("function chartSvg") && page.contains("function poll"));
        assert!(page.contains(".verdict"));
        for external in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!page.contains(external), "the page holds {external}");
        }
    }

    #[test]
    fn endpoints_are_found_by_uri() {
        let a = api();
        assert_eq!(
            a.endpoint(&req("/proxy-stats?pretty=1", None)),
            Some(Endpoint::Stats)
        );
        assert_eq!(a.endpoint(&req("/metrics", None)), Some(Endpoint::Metrics));
        assert_eq!(a.endpoint(&req("/other", None)), None);
    }

    #[test]
    fn acl_or_token_opens_the_api() {
        let a = api();
        let inside = &ClientFacts::direct(Some("10.1.1.1".parse().unwrap()), false);
        let outside = &ClientFacts::direct(Some("8.8.8.8".parse().unwrap()), false);
        assert!(a.allows(&req("/proxy-stats", None), inside));
        assert!(!a.allows(&req("/proxy-stats", None), outside));
        assert!(a.allows(&req("/proxy-stats", Some("Bearer s3cret")), outside));
        assert!(!a.allows(&req("/proxy-stats", Some("Bearer s3cre")), outside));
        assert!(!a.allows(&req("/proxy-stats", Some("Basic s3cret")), outside));
    }

    #[test]
    fn every_address_of_the_chain_must_be_in_the_acl() {
        let a = api();
        let peer = &ClientFacts {
            forwarded: true,
            ..ClientFacts::direct(Some("10.9.9.9".parse().unwrap()), false)
        };
        let mut r = req("/proxy-stats", None);
        r.insert_header("X-Forwarded-For", "10.1.1.1, 10.2.2.2")
            .unwrap();
        assert!(a.allows(&r, peer));
        r.insert_header("X-Forwarded-For", "10.1.1.1, 8.8.8.8")
            .unwrap();
        assert!(!a.allows(&r, peer));
        r.insert_header("Authorization", "Bearer s3cret").unwrap();
        assert!(a.allows(&r, peer));
        let mut r = req("/proxy-stats", None);
        r.insert_header("X-Real-IP", "8.8.8.8").unwrap();
        assert!(!a.allows(&r, peer));
    }
}
