//! Request routing (PixlProxy "Request Routing", `method_match`, `host_match`, `uri_match`,
//! `x_proxy_only` and the `X-Proxy` header): which pool a request goes to.
//!
//! As in PixlProxy's engine, a request that carries a (non-empty) `X-Proxy` header is only
//! taken by the pool of that name, if its criteria match; no other pool ever takes it, so one
//! that names an unknown pool (or a pool whose criteria do not match) goes to `default`, or
//! nowhere (static files or 404). Without the header, pools are tried in config order, those
//! with `x_proxy_only` skipped, `default` last.
//!
//! Criteria are compiled once at start; `RouteTable::route` only runs precompiled regexes and
//! one hash lookup (and, from four pools on, allocates the one small set of URI matches).

use crate::pool::Pool;
use regex::{Regex, RegexSet};
use std::collections::HashMap;
use std::sync::Arc;

/// The id of the catch-all pool, which is considered after every other pool.
pub(crate) const DEFAULT_POOL_ID: &str = "default";

/// A pool's matching criteria; `None` means "match everything" for that criterion.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteCriteria {
    /// Matched case-insensitively against the request method.
    pub(crate) method: Option<Regex>,
    /// Matched case-insensitively against the Host header without its port.
    pub(crate) host: Option<Regex>,
    /// Matched case-sensitively against the path and query.
    pub(crate) uri: Option<Regex>,
}

impl RouteCriteria {
    pub(crate) fn matches(&self, req: &RouteRequest<'_>) -> bool {
        self.matches_besides_uri(req) && self.uri.as_ref().is_none_or(|re| re.is_match(req.uri))
    }

    fn matches_besides_uri(&self, req: &RouteRequest<'_>) -> bool {
        let ok = |re: &Option<Regex>, s: &str| re.as_ref().is_none_or(|re| re.is_match(s));
        ok(&self.method, req.method) && ok(&self.host, req.host)
    }
}

const X_PROXY: http::HeaderName = http::HeaderName::from_static("x-proxy");

/// The parts of a request that routing looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteRequest<'a> {
    pub(crate) method: &'a str,
    /// Host header value with any `:port` suffix removed.
    pub(crate) host: &'a str,
    /// Path and query string.
    pub(crate) uri: &'a str,
    /// Value of the `X-Proxy` header, if sent and not empty (as bytes: a value that is not
    /// UTF-8 names no pool).
    pub(crate) x_proxy: Option<&'a [u8]>,
}

impl<'a> RouteRequest<'a> {
    /// The routing view of a request header. The host comes from `Host`, or from the URI
    /// authority for HTTP/2 and absolute-form requests.
    pub(crate) fn of(req: &'a pingora::http::RequestHeader) -> Self {
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()))
            .unwrap_or("");
        RouteRequest {
            method: req.method.as_str(),
            host: strip_port(host),
            uri: req.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            x_proxy: req
                .headers
                .get(&X_PROXY)
                .map(|v| v.as_bytes())
                .filter(|v| !v.is_empty()),
        }
    }
}

/// All pools in routing order: config order, with the `default` pool moved last.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    pools: Vec<Arc<Pool>>,
    by_id: HashMap<String, usize>,
    /// The `default` pool (always the last), if there is one.
    default: Option<usize>,
    /// Every pool's `uri_match` in one automaton (a pool without one matches any URI), so a
    /// request's URI is read once however many pools there are; `None` for a few pools.
    uri_set: Option<RegexSet>,
}

/// From this many pools on, the URI is matched against all of them at once.
const URI_SET_MIN_POOLS: usize = 4;

impl RouteTable {
    pub(crate) fn new(mut pools: Vec<Arc<Pool>>) -> Self {
        // Stable sort: relative config order is kept for everything but `default`.
        pools.sort_by_key(|p| p.id.as_ref() == DEFAULT_POOL_ID);
        let by_id = pools
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.to_string(), i))
            .collect();
        let uri_set = uri_set(&pools);
        let default = pools.iter().position(|p| p.id.as_ref() == DEFAULT_POOL_ID);
        RouteTable {
            pools,
            by_id,
            default,
            uri_set,
        }
    }

    pub(crate) fn pools(&self) -> &[Arc<Pool>] {
        &self.pools
    }

    /// The pool for a request, or `None` when nothing matches and there is no default pool.
    ///
    /// A request with an `X-Proxy` header goes to the pool of that name if its criteria match,
    /// else to `default` (unless it is `x_proxy_only`) if its criteria match: no other pool
    /// takes it. Otherwise pools are tried in order, skipping `x_proxy_only` pools, which only
    /// ever take requests naming them.
    pub(crate) fn route(&self, req: &RouteRequest<'_>) -> Option<&Arc<Pool>> {
        if let Some(name) = req.x_proxy {
            return self.route_named(name, req);
        }
        let Some(set) = &self.uri_set else {
            return self
                .pools
                .iter()
                .find(|p| !p.x_proxy_only && p.criteria.matches(req));
        };
        let uri_hits = set.matches(req.uri);
        self.pools.iter().enumerate().find_map(|(i, p)| {
            let hit = uri_hits.matched(i) && !p.x_proxy_only;
            (hit && p.criteria.matches_besides_uri(req)).then_some(p)
        })
    }

    /// Where a request naming `name` in `X-Proxy` goes: that pool, or `default`.
    fn route_named(&self, name: &[u8], req: &RouteRequest<'_>) -> Option<&Arc<Pool>> {
        let named = std::str::from_utf8(name)
            .ok()
            .and_then(|id| self.by_id.get(id))
            .and_then(|&i| self.pools.get(i))
            .filter(|p| p.criteria.matches(req));
        named.or_else(|| {
            let default = self.pools.get(self.default?)?;
            (!default.x_proxy_only && default.criteria.matches(req)).then_some(default)
        })
    }
}

/// The set of every pool's URI pattern, when there are enough pools and some have one. A set
/// too large to build leaves routing to the pools one by one.
fn uri_set(pools: &[Arc<Pool>]) -> Option<RegexSet> {
    let some_uri = pools.iter().any(|p| p.criteria.uri.is_some());
    if pools.len() < URI_SET_MIN_POOLS || !some_uri {
        return None;
    }
    let patterns = pools
        .iter()
        .map(|p| p.criteria.uri.as_ref().map_or("", |re| re.as_str()));
    RegexSet::new(patterns).ok()
}

/// The host part of a Host header value: `example.com:8080` -> `example.com`, `[::1]:80` -> `[::1]`.
pub(super) fn strip_port(host: &str) -> &str {
    // One pass from the end over the digits, then a look at what precedes them.
    let bytes = host.as_bytes();
    let digits = bytes
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits == bytes.len() || bytes[bytes.len() - digits - 1] != b':' {
        return host;
    }
    let name = &host[..bytes.len() - digits - 1];
    // `::1` is an address, not `:` + port 1; a bracketed address is followed by its port.
    if name.starts_with('[') || !name.contains(':') {
        name
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::tests::pool_with;

    fn req<'a>(
        method: &'a str,
        host: &'a str,
        uri: &'a str,
        x: Option<&'a str>,
    ) -> RouteRequest<'a> {
        RouteRequest {
            method,
            host,
            uri,
            x_proxy: x.map(str::as_bytes),
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            pool_with("default", None, None, None, false),
            pool_with("api", Some("(?i)^(GET|POST)$"), None, Some("^/api"), false),
            pool_with("admin", None, Some("(?i)^admin\\.example$"), None, false),
            pool_with("hidden", None, None, None, true),
        ])
    }

    fn routed(t: &RouteTable, r: RouteRequest<'_>) -> Option<String> {
        t.route(&r).map(|p| p.id.to_string())
    }

    #[test]
    fn default_is_last_and_others_keep_config_order() {
        let t = table();
        let ids: Vec<_> = t.pools().iter().map(|p| p.id.to_string()).collect();
        assert_eq!(ids, ["api", "admin", "hidden", "default"]);
    }

    #[test]
    fn all_given_criteria_must_match() {
        let t = table();
        assert_eq!(
            routed(&t, req("get", "x", "/api/1", None)).as_deref(),
            Some("api")
        );
        assert_eq!(
            routed(&t, req("PUT", "x", "/api/1", None)).as_deref(),
            Some("default")
        );
        assert_eq!(
            routed(&t, req("GET", "ADMIN.example", "/", None)).as_deref(),
            Some("admin")
        );
    }

    #[test]
    fn x_proxy_selects_by_exact_id_and_criteria_still_apply() {
        let t = table();
        assert_eq!(
            routed(&t, req("GET", "x", "/", Some("hidden"))).as_deref(),
            Some("hidden")
        );
        assert_eq!(
            routed(&t, req("GET", "x", "/", Some("Hidden"))).as_deref(),
            Some("default")
        );
        assert_eq!(
            routed(&t, req("PUT", "x", "/api", Some("api"))).as_deref(),
            Some("default")
        );
    }

    #[test]
    fn a_named_request_is_taken_by_that_pool_or_default_and_no_other() {
        let t = table();
        // `api` matches the request, but it names another pool.
        assert_eq!(
            routed(&t, req("GET", "x", "/api/1", Some("admin"))).as_deref(),
            Some("default")
        );
        assert_eq!(
            routed(&t, req("GET", "x", "/api/1", Some("nosuchpool"))).as_deref(),
            Some("default")
        );
        assert_eq!(
            routed(&t, req("GET", "x", "/api/1", Some("default"))).as_deref(),
            Some("default")
        );
        // A catch-all pool without criteria does not take a request naming another pool.
        let t = RouteTable::new(vec![
            pool_with("all", None, None, None, false),
            pool_with("api", None, None, Some("^/api"), false),
        ]);
        assert_eq!(routed(&t, req("GET", "x", "/", Some("nosuchpool"))), None);
        assert_eq!(routed(&t, req("GET", "x", "/", Some("api"))), None);
        assert_eq!(
            routed(&t, req("GET", "x", "/api", Some("api"))).as_deref(),
            Some("api")
        );
        assert_eq!(
            routed(&t, req("GET", "x", "/", Some("all"))).as_deref(),
            Some("all")
        );
    }

    #[test]
    fn a_named_request_never_reaches_an_x_proxy_only_default_or_non_matching_default() {
        let t = RouteTable::new(vec![
            pool_with("api", None, None, Some("^/api"), false),
            pool_with("default", None, None, None, true),
        ]);
        assert_eq!(routed(&t, req("GET", "x", "/", Some("nope"))), None);
        assert_eq!(
            routed(&t, req("GET", "x", "/", Some("default"))).as_deref(),
            Some("default")
        );
        let t = RouteTable::new(vec![
            pool_with("api", None, None, Some("^/api"), false),
            pool_with("default", Some("(?i)^GET$"), None, None, false),
        ]);
        assert_eq!(routed(&t, req("PUT", "x", "/", Some("nope"))), None);
        assert_eq!(
            routed(&t, req("GET", "x", "/", Some("nope"))).as_deref(),
            Some("default")
        );
    }

    #[test]
    fn an_empty_or_non_utf8_x_proxy_value() {
        let t = table();
        let header = |v: &[u8]| {
            let mut h = pingora::http::RequestHeader::build("GET", b"/api/1", None).unwrap();
            h.insert_header("Host", "x").unwrap();
            h.insert_header("X-Proxy", http::HeaderValue::from_bytes(v).unwrap())
                .unwrap();
            h
        };
        // Empty: as if absent (PixlProxy tests the header's truth).
        let empty = header(b"");
        assert_eq!(RouteRequest::of(&empty).x_proxy, None);
        assert_eq!(
            t.route(&RouteRequest::of(&empty)).map(|p| p.id.to_string()),
            Some("api".into())
        );
        // Not UTF-8: names no pool.
        let odd = header(b"api\xff");
        assert_eq!(
            t.route(&RouteRequest::of(&odd)).map(|p| p.id.to_string()),
            Some("default".into())
        );
    }

    #[test]
    fn the_uri_set_routes_as_trying_pools_one_by_one_would() {
        let t = RouteTable::new(vec![
            pool_with("a", None, None, Some("^/svc1/(api|v2)/"), false),
            pool_with("b", Some("(?i)^POST$"), None, Some("^/svc"), false),
            pool_with("c", None, Some("^h$"), None, false),
            pool_with("d", None, None, Some("\\.png$"), true),
            pool_with("e", None, None, Some("^/"), false),
        ]);
        assert!(t.uri_set.is_some());
        for (method, host, uri) in [
            ("GET", "x", "/svc1/api/1"),
            ("POST", "x", "/svc2/"),
            ("POST", "x", "/svc1/v2/"),
            ("GET", "h", "/svc2/"),
            ("GET", "x", "/a.png"),
            ("GET", "x", "/"),
            ("GET", "x", "relative"),
        ] {
            let r = req(method, host, uri, None);
            let one_by_one = t
                .pools()
                .iter()
                .find(|p| !p.x_proxy_only && p.criteria.matches(&r))
                .map(|p| p.id.to_string());
            assert_eq!(routed(&t, r), one_by_one, "{method} {host} {uri}");
        }
        assert_eq!(routed(&t, req("GET", "x", "relative", None)), None);
        assert_eq!(
            routed(&t, req("GET", "h", "/a.png", None)).as_deref(),
            Some("c")
        );
    }

    #[test]
    fn no_match_without_default_is_none() {
        let t = RouteTable::new(vec![pool_with("api", None, None, Some("^/api"), false)]);
        assert!(t.route(&req("GET", "x", "/other", None)).is_none());
    }

    #[test]
    fn strip_port_handles_names_and_ipv6() {
        assert_eq!(strip_port("localhost:3020"), "localhost");
        assert_eq!(strip_port("localhost"), "localhost");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("127.0.0.1:18082"), "127.0.0.1");
        assert_eq!(strip_port("host:"), "host:");
        assert_eq!(strip_port("8080"), "8080");
        assert_eq!(strip_port(":80"), "");
        assert_eq!(strip_port("a:b:80"), "a:b:80");
        assert_eq!(strip_port(""), "");
    }
}
