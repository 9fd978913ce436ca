//! Retries (`retries`, `resp_code_success_match`, back-off) and redirects (`follow_redirects`).

use crate::harness::{client, free_port, Poolgate};
use crate::origin::{self, checksum, pattern_byte};
use crate::{config, described};
use std::time::{Duration, Instant};

fn pool(origin_port: u16, extra: &str) -> String {
    config(&format!(
        "{{default: {{target_hostname: 127.0.0.1, target_port: {origin_port}, {extra}}}}}"
    ))
}

#[tokio::test]
async fn a_failing_back_end_sees_retries_plus_one_attempts_and_the_client_its_answer() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), "retries: 2"));
    let resp = client()
        .get(pg.url("/status/500"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 500);
    assert_eq!(
        resp.text().await.expect("body"),
        "status 500",
        "the back end's own body"
    );
    assert_eq!(o.requests(), 3);
    assert!(pg.wait_for_log("HTTP 500"));
}

#[tokio::test]
async fn success_match_decides_what_is_retried() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(
        o.port(),
        r#"retries: 2, resp_code_success_match: "^(2\\d\\d|404)$""#,
    ));
    let c = client();
    assert_eq!(
        c.get(pg.url("/status/404"))
            .send()
            .await
            .expect("send")
            .status(),
        404
    );
    assert_eq!(o.requests(), 1, "404 is a success here");
    assert_eq!(
        c.get(pg.url("/status/302"))
            .send()
            .await
            .expect("send")
            .status(),
        302
    );
    assert_eq!(o.requests(), 4, "302 is an error here: 1 + 2 retries");
}

#[tokio::test]
async fn refused_and_reset_connections_are_retried() {
    let dead = free_port();
    let pg = Poolgate::start(&pool(dead, "retries: 2"));
    let resp = client().get(pg.url("/x")).send().await.expect("send");
    assert_eq!(resp.status(), 502);
    assert_eq!(pg.log().matches("retrying in").count(), 2, "{}", pg.log());

    let r = origin::resetting();
    let pg = Poolgate::start(&pool(r.port(), "retries: 3"));
    let resp = client().get(pg.url("/x")).send().await.expect("send");
    assert_eq!(resp.status(), 502);
    assert_eq!(r.connections(), 4);
}

#[tokio::test]
async fn post_bodies_are_replayed_byte_exact() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), "retries: 3"));
    let body: Vec<u8> = (0..300_000u64).map(pattern_byte).collect();
    let desc = described(
        client()
            .post(pg.url("/flaky/2"))
            .body(body.clone())
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(o.requests(), 3);
    assert_eq!(desc["method"], "POST");
    assert_eq!(desc["body_len"], body.len() as u64);
    assert_eq!(desc["body_sum"], checksum(&body));
}

#[tokio::test]
async fn bodies_over_the_buffer_limit_are_sent_once_and_not_retried() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), "retries: 3, retry_max_body_bytes: 1000"));
    let body: Vec<u8> = (0..5000u64).map(pattern_byte).collect();
    let resp = client()
        .post(pg.url("/flaky/1"))
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 500);
    assert_eq!(o.requests(), 1);
}

#[tokio::test]
async fn retries_wait_at_least_the_base_delay() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(
        o.port(),
        "retries: 2, error_retry_delay_base_ms: 300, error_retry_delay_max_ms: 5000",
    ));
    let started = Instant::now();
    let resp = client()
        .get(pg.url("/status/503"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 503);
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(o.requests(), 3);
}

#[tokio::test]
async fn redirect_chains_are_followed_up_to_the_limit() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), "follow_redirects: 3"));
    let c = client();
    let resp = c.get(pg.url("/redirect/3")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "arrived");
    let resp = c.get(pg.url("/redirect/5")).send().await.expect("send");
    assert_eq!(
        resp.status(),
        302,
        "more than 3 hops: the last redirect goes to the client"
    );
    assert_eq!(resp.headers()["location"], "/redirect/1");
}

#[tokio::test]
async fn follow_redirects_true_is_accepted_and_loops_are_cut() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), "follow_redirects: true"));
    let resp = client()
        .get(pg.url("/goto/302"))
        .header("X-Location", "/goto/302")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "/goto/302");
    assert_eq!(
        o.requests(),
        1,
        "a Location already visited is a loop: not requested again"
    );
}

#[tokio::test]
async fn a_303_goes_to_the_client_as_it_is_and_307_keeps_method_and_body() {
    let o = origin::http();
    let pg = Poolgate::start(&pool(o.port(), "follow_redirects: 2"));
    let c = client();
    for method in [reqwest::Method::POST, reqwest::Method::GET] {
        let resp = c
            .request(method.clone(), pg.url("/goto/303"))
            .header("X-Location", "/described")
            .body("form=1")
            .send()
            .await
            .expect("send");
        assert_eq!(
            resp.status(),
            303,
            "{method}: 303 is not a followed redirect"
        );
        assert_eq!(resp.headers()["location"], "/described");
        assert_eq!(resp.text().await.expect("body"), "go to /described");
    }
    assert_eq!(o.requests(), 2, "the Location of a 303 is never requested");
    let desc = described(
        c.post(pg.url("/goto/307"))
            .header("X-Location", "described?kept=1")
            .body("form=1")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(desc["method"], "POST");
    assert_eq!(
        desc["uri"], "/goto/described?kept=1",
        "relative to the request URL"
    );
    assert_eq!(desc["body_sum"], checksum(b"form=1"));
}

#[tokio::test]
async fn absolute_redirects_to_another_host_are_followed() {
    let a = origin::http();
    let b = origin::http();
    let pg = Poolgate::start(&pool(a.port(), "follow_redirects: 1"));
    let desc = described(
        client()
            .get(pg.url("/goto/301"))
            .header(
                "X-Location",
                format!("http://127.0.0.1:{}/elsewhere", b.port()),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}\n{}", pg.log())),
    )
    .await;
    assert_eq!(desc["uri"], "/elsewhere");
    assert_eq!(desc["headers"]["host"], format!("127.0.0.1:{}", b.port()));
    assert_eq!(b.requests(), 1);
}
