//! Several targets per pool, health checks, and degraded hints.

use crate::harness::{client, free_port, Poolgate};
use crate::origin;
use crate::{config, described, seen};
use std::time::{Duration, Instant};

fn targets(ports: &[u16], extra: &str) -> String {
    let list: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    config(&format!(
        "{{default: {{targets: [{}], {extra}}}}}",
        list.join(", ")
    ))
}

#[tokio::test]
async fn round_robin_spreads_requests_evenly() {
    let origins: Vec<_> = (0..3).map(|_| origin::http()).collect();
    let ports: Vec<u16> = origins.iter().map(|o| o.port()).collect();
    let pg = Poolgate::start(&targets(&ports, "load_balancing: round_robin"));
    let c = client();
    for _ in 0..30 {
        assert_eq!(
            c.get(pg.url("/x")).send().await.expect("send").status(),
            200
        );
    }
    let counts: Vec<usize> = origins.iter().map(|o| o.requests()).collect();
    assert_eq!(counts, vec![10, 10, 10]);
}

#[tokio::test]
async fn header_hash_keeps_a_key_on_one_target() {
    let origins: Vec<_> = (0..3).map(|_| origin::http()).collect();
    let ports: Vec<u16> = origins.iter().map(|o| o.port()).collect();
    let pg = Poolgate::start(&targets(
        &ports,
        "load_balancing: header_hash, load_balancing_header: X-User",
    ));
    let c = client();
    for _ in 0..12 {
        let resp = c
            .get(pg.url("/x"))
            .header("X-User", "alice")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
    }
    let counts: Vec<usize> = origins.iter().map(|o| o.requests()).collect();
    assert!(counts.contains(&12), "{counts:?}");
}

#[tokio::test]
async fn a_retry_goes_to_another_target() {
    let live = origin::http();
    let dead = free_port();
    let pg = Poolgate::start(&targets(&[dead, live.port()], "retries: 1"));
    let c = client();
    for _ in 0..4 {
        assert_eq!(
            c.get(pg.url("/x")).send().await.expect("send").status(),
            200
        );
    }
    assert_eq!(live.requests(), 4);
}

fn health(kind: &str) -> String {
    format!(
        "health_check: {{type: {kind}, path: /, interval_ms: 100, timeout_ms: 500, healthy_threshold: 1, unhealthy_threshold: 1}}"
    )
}

#[tokio::test]
async fn health_checks_take_a_dead_target_out_and_bring_it_back() {
    let a = origin::http();
    let b = origin::http();
    let b_port = b.port();
    let pg = Poolgate::start(&targets(&[a.port(), b_port], &health("http")));
    drop(b);
    assert!(
        pg.wait_for_log(&format!("127.0.0.1:{b_port}) is unhealthy")),
        "{}",
        pg.log()
    );
    let c = client();
    // Health checks reach the origins too (`GET /`): count only the clients' `/x`.
    let client_requests =
        |o: &origin::Origin| o.described().iter().filter(|d| d["uri"] == "/x").count();
    let before = client_requests(&a);
    for _ in 0..6 {
        assert_eq!(
            c.get(pg.url("/x")).send().await.expect("send").status(),
            200
        );
    }
    assert_eq!(
        client_requests(&a) - before,
        6,
        "every request went to the healthy target"
    );

    let b = origin::http_on(b_port);
    assert!(pg.wait_for_log("is healthy again"), "{}", pg.log());
    for _ in 0..6 {
        assert_eq!(
            c.get(pg.url("/x")).send().await.expect("send").status(),
            200
        );
    }
    assert!(
        client_requests(&b) > 0,
        "the returned target gets traffic again"
    );
}

#[tokio::test]
async fn all_targets_down_is_a_502() {
    let pg = Poolgate::start(&targets(&[free_port(), free_port()], &health("tcp")));
    assert!(pg.wait_for_log("is unhealthy"));
    let resp = client().get(pg.url("/x")).send().await.expect("send");
    assert_eq!(resp.status(), 502);
    assert!(pg.wait_for_log("no healthy target in pool default"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_hint_follows_the_previous_seconds_average() {
    let o = origin::http();
    let cfg = config(&format!(
        "{{default: {{target_hostname: 127.0.0.1, target_port: {}, degraded_perf_monitor: true, degraded_min_avg_ms: 150, degraded_min_req_sec: 1, degraded_min_uptime_sec: 0}}}}",
        o.port()
    ));
    let pg = Poolgate::start(&cfg);
    let c = client();
    let desc = described(c.get(pg.url("/x")).send().await.expect("send")).await;
    assert_eq!(seen(&desc, "x-degraded"), None, "no slow traffic yet");

    // Keep slow requests going, so every second has an average of about 300 ms.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (c, url, stop) = (c.clone(), pg.url("/slow/300"), stop.clone());
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                    let _ = c.get(&url).send().await;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut degraded = false;
    while !degraded && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let desc = described(c.get(pg.url("/x")).send().await.expect("send")).await;
        degraded = seen(&desc, "x-degraded") == Some("true");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for l in load {
        let _ = l.await;
    }
    assert!(degraded, "X-Degraded: true while the back end is slow");

    // Fast traffic only: the hint goes away.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut cleared = false;
    while !cleared && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let desc = described(c.get(pg.url("/x")).send().await.expect("send")).await;
        cleared = seen(&desc, "x-degraded").is_none();
    }
    assert!(cleared, "no X-Degraded once the back end is fast again");
}

#[tokio::test]
async fn targets_may_be_host_names() {
    let o = origin::http();
    let cfg = config(&format!(
        "{{default: {{targets: [\"localhost:{}\"], cache_dns_sec: 30}}}}",
        o.port()
    ));
    let pg = Poolgate::start(&cfg);
    let resp = client().get(pg.url("/x")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(o.requests(), 1);
}
