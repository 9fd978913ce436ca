//! PixlProxy "Request Routing": method/host/URI criteria, X-Proxy, x_proxy_only, default pool.

use crate::harness::{client, Poolgate};
use crate::{config, described, origin, seen};

/// Pools that all point at one origin and tag requests with `X-Pool: <id>`.
fn tagged(origin_port: u16, pools: &[(&str, &str)]) -> String {
    let body: Vec<String> = pools
        .iter()
        .map(|(id, extra)| {
            format!("\"{id}\": {{target_hostname: 127.0.0.1, target_port: {origin_port}, insert_request_headers: {{X-Pool: \"{id}\"}} {extra}}}")
        })
        .collect();
    config(&format!("{{{}}}", body.join(", ")))
}

async fn pool_of(pg: &Poolgate, req: reqwest::RequestBuilder) -> String {
    let _ = pg;
    let desc = described(req.send().await.expect("send")).await;
    seen(&desc, "x-pool").unwrap_or("none").to_string()
}

#[tokio::test]
async fn method_match_is_case_insensitive_and_others_fall_to_default() {
    let o = origin::http();
    let pg = Poolgate::start(&tagged(
        o.port(),
        &[
            ("default", ""),
            ("writes", ", method_match: '^(post|put)$'"),
        ],
    ));
    let c = client();
    assert_eq!(pool_of(&pg, c.post(pg.url("/x")).body("b")).await, "writes");
    assert_eq!(pool_of(&pg, c.put(pg.url("/x")).body("b")).await, "writes");
    assert_eq!(pool_of(&pg, c.get(pg.url("/x"))).await, "default");
}

#[tokio::test]
async fn host_match_is_case_insensitive_against_the_host_header() {
    let o = origin::http();
    let pg = Poolgate::start(&tagged(
        o.port(),
        &[
            ("default", ""),
            ("site", ", host_match: '^www\\.example\\.com$'"),
        ],
    ));
    let c = client();
    let as_host = |h: &str| c.get(pg.url("/")).header("Host", h);
    assert_eq!(pool_of(&pg, as_host("WWW.Example.COM")).await, "site");
    assert_eq!(pool_of(&pg, as_host("www.example.com:8080")).await, "site");
    assert_eq!(pool_of(&pg, as_host("other.example.com")).await, "default");
}

#[tokio::test]
async fn uri_match_is_case_sensitive_on_path_and_query() {
    let o = origin::http();
    let pg = Poolgate::start(&tagged(
        o.port(),
        &[("default", ""), ("api", ", uri_match: '^/api/.*[?&]v=2'")],
    ));
    let c = client();
    assert_eq!(pool_of(&pg, c.get(pg.url("/api/users?v=2"))).await, "api");
    assert_eq!(
        pool_of(&pg, c.get(pg.url("/API/users?v=2"))).await,
        "default"
    );
    assert_eq!(
        pool_of(&pg, c.get(pg.url("/api/users?v=1"))).await,
        "default"
    );
}

#[tokio::test]
async fn all_given_criteria_must_match() {
    let o = origin::http();
    let pool = ", method_match: '^GET$', host_match: '^localhost$', uri_match: '^/proxy'";
    let pg = Poolgate::start(&tagged(o.port(), &[("default", ""), ("strict", pool)]));
    let c = client();
    assert_eq!(
        pool_of(&pg, c.get(pg.url("/proxy/1")).header("Host", "localhost")).await,
        "strict"
    );
    assert_eq!(
        pool_of(&pg, c.post(pg.url("/proxy/1")).header("Host", "localhost")).await,
        "default"
    );
    assert_eq!(
        pool_of(&pg, c.get(pg.url("/proxy/1")).header("Host", "remote")).await,
        "default"
    );
    assert_eq!(
        pool_of(&pg, c.get(pg.url("/other")).header("Host", "localhost")).await,
        "default"
    );
}

#[tokio::test]
async fn x_proxy_selects_a_pool_by_exact_id_and_criteria_still_apply() {
    let o = origin::http();
    let pools = [
        ("default", ""),
        ("First", ""),
        ("Second", ", method_match: '^GET$'"),
    ];
    let pg = Poolgate::start(&tagged(o.port(), &pools));
    let c = client();
    let named = |id: &str| c.get(pg.url("/")).header("X-Proxy", id);
    assert_eq!(pool_of(&pg, named("Second")).await, "Second");
    // Without a header the first matching pool in config order wins.
    assert_eq!(pool_of(&pg, c.get(pg.url("/"))).await, "First");
    // Ids are case-sensitive; a request naming no pool is left to `default` (PixlProxy).
    assert_eq!(pool_of(&pg, named("second")).await, "default");
    // The named pool's criteria still apply, and no other pool takes the request.
    assert_eq!(
        pool_of(&pg, c.post(pg.url("/")).header("X-Proxy", "Second")).await,
        "default"
    );
}

#[tokio::test]
async fn a_request_naming_an_unknown_pool_skips_a_catch_all_pool_and_goes_to_default() {
    let o = origin::http();
    let pools = [
        ("catchall", ""),
        ("api", ", uri_match: '^/api'"),
        ("default", ""),
    ];
    let pg = Poolgate::start(&tagged(o.port(), &pools));
    let c = client();
    let named = |path: &str, id: &str| c.get(pg.url(path)).header("X-Proxy", id);
    assert_eq!(pool_of(&pg, named("/", "nosuchpool")).await, "default");
    assert_eq!(pool_of(&pg, named("/api/1", "nosuchpool")).await, "default");
    // Naming a pool whose criteria do not match does not let the others take it either.
    assert_eq!(pool_of(&pg, named("/other", "api")).await, "default");
    assert_eq!(pool_of(&pg, named("/api/1", "api")).await, "api");
    assert_eq!(pool_of(&pg, c.get(pg.url("/api/1"))).await, "catchall");
}

#[tokio::test]
async fn a_request_naming_an_unknown_pool_without_default_is_404() {
    let o = origin::http();
    let pg = Poolgate::start(&tagged(o.port(), &[("catchall", "")]));
    let c = client();
    let resp = c
        .get(pg.url("/"))
        .header("X-Proxy", "nosuchpool")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);
    assert_eq!(o.requests(), 0, "the catch-all pool must not take it");
    assert_eq!(pool_of(&pg, c.get(pg.url("/"))).await, "catchall");
}

#[tokio::test]
async fn x_proxy_only_pools_take_only_requests_that_name_them() {
    let o = origin::http();
    let pg = Poolgate::start(&tagged(
        o.port(),
        &[("hidden", ", x_proxy_only: true"), ("default", "")],
    ));
    let c = client();
    assert_eq!(pool_of(&pg, c.get(pg.url("/"))).await, "default");
    assert_eq!(
        pool_of(&pg, c.get(pg.url("/")).header("X-Proxy", "hidden")).await,
        "hidden"
    );
}

#[tokio::test]
async fn default_pool_is_considered_last_even_when_listed_first() {
    let o = origin::http();
    let pg = Poolgate::start(&tagged(o.port(), &[("default", ""), ("catchall", "")]));
    assert_eq!(
        pool_of(&pg, client().get(pg.url("/anything"))).await,
        "catchall"
    );
}

#[tokio::test]
async fn no_matching_pool_and_no_default_is_404_with_a_text_body() {
    let o = origin::http();
    let pg = Poolgate::start(&tagged(o.port(), &[("api", ", uri_match: '^/api'")]));
    let resp = client()
        .get(pg.url("/elsewhere"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.expect("body").contains("no pool matches"));
    assert_eq!(o.requests(), 0, "nothing may reach the origin");
}
