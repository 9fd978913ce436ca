//! Per-second pool stats: the JSON stats API (ACL, tokens, `?pretty=1`), the Prometheus
//! endpoint, and the "Average Performance Metrics" event-log lines.

use crate::harness::{client, Poolgate};
use crate::origin;
use std::time::{Duration, Instant};

fn stats_config(port: u16, web_extra: &str, proxy_extra: &str) -> String {
    format!(
        "threads: 2\nshutdown_timeout_sec: 1\ndebug_level: 2\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\n{web_extra}PixlProxy:\n  stats_uri_match: '^/proxy-stats'\n  metrics_uri: /metrics\n{proxy_extra}  pools:\n    default: {{target_hostname: 127.0.0.1, target_port: {port}}}\n"
    )
}

async fn get(pg: &Poolgate, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = client().get(pg.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

#[tokio::test]
async fn the_stats_api_reports_the_last_full_second() {
    let o = origin::http();
    let pg = Poolgate::start(&stats_config(o.port(), "", ""));
    let c = client();
    let unix_sec = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
    };
    // 50 requests inside one wall-clock second (a burst that straddles a boundary is redone).
    let mut burst_second = None;
    for _ in 0..3 {
        let into = u64::from(unix_sec().subsec_millis());
        std::thread::sleep(Duration::from_millis(1000 - into + 20));
        let start = unix_sec().as_secs();
        for _ in 0..50 {
            let resp = c.get(pg.url("/x")).send().await.expect("send");
            assert_eq!(resp.status(), 200);
        }
        if unix_sec().as_secs() == start {
            burst_second = Some(start);
            break;
        }
    }
    let burst = burst_second.expect("50 requests fit in one second");
    // Read the stats during the next second.
    let mut seen = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && unix_sec().as_secs() <= burst + 1 {
        let (status, body) = get(&pg, "/proxy-stats", None).await;
        assert_eq!(status, 200, "{body}");
        if unix_sec().as_secs() == burst + 1 {
            seen = serde_json::from_str(&body).expect("json");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pool = &seen["pools"]["default"];
    assert_eq!(pool["counters"]["requests"], 50, "{seen}");
    // The web server also counts the stats requests made during the burst's second.
    let web_requests = seen["web"]["stats"]["num_requests"].as_u64().unwrap_or(0);
    assert!(web_requests >= 50, "{seen}");
    assert_eq!(seen["web"]["stats"]["total"]["st"], "mma", "{seen}");
    let sockets = seen["web"]["sockets"].as_object().expect("sockets");
    assert!(
        sockets
            .values()
            .any(|s| s["state"] == "processing" && s["uri"] == "/proxy-stats"),
        "the stats request itself is in progress: {seen}"
    );
    for table in ["minimums", "maximums", "averages"] {
        assert!(pool[table]["total"].as_f64().is_some(), "{table}: {seen}");
    }
    assert_eq!(pool["scale"], 1000);
    assert!(pool["cpu_pct"].as_f64().is_some());
    // poolgate's own figures of that second: the answers by class and the percentiles,
    // between the fastest and the slowest request.
    assert_eq!(pool["responses"]["2xx"], 50, "{seen}");
    assert_eq!(pool["responses"]["5xx"], 0, "{seen}");
    let ms = |v: &serde_json::Value| v.as_f64().unwrap_or(-1.0);
    let (p50, p99) = (
        ms(&pool["percentiles"]["p50"]),
        ms(&pool["percentiles"]["p99"]),
    );
    let (min, max) = (
        ms(&pool["minimums"]["total"]),
        ms(&pool["maximums"]["total"]),
    );
    assert!(min <= p50 && p50 <= p99 && p99 <= max, "{seen}");
    assert!(
        pool["dominant_phase"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "{seen}"
    );
    assert_eq!(seen["web"]["server"]["name"], "poolgate");
    let (_, pretty) = get(&pg, "/proxy-stats?pretty=1", None).await;
    assert!(pretty.contains("\n  \"pools\": {"), "{pretty}");
    // And once a second, the same figures in the event log.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = "][default][debug][2][Average Performance Metrics][{\"scale\":1000,\"counters\":{\"requests\":";
    let log = || std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default();
    while !log().contains(line) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(log().contains(line), "{}", log());
}

#[tokio::test]
async fn a_client_address_outside_the_acl_gets_403() {
    let pg = Poolgate::start(&stats_config(1, "  http_default_acl: ['127.0.0.1']\n", ""));
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().expect("ip"))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    };
    let inside = from("127.0.0.1").get(pg.url("/proxy-stats")).send().await;
    assert_eq!(inside.expect("send").status(), 200);
    let outside = from("127.0.0.2").get(pg.url("/proxy-stats")).send().await;
    let outside = outside.expect("send");
    assert_eq!(outside.status(), 403);
    let body: serde_json::Value = outside.json().await.expect("json");
    assert_eq!(body["code"], 403);
    assert!(pg.wait_for_log("stats: refused 127.0.0.2"));
}

#[tokio::test]
async fn outside_the_acl_only_a_token_opens_the_stats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tokens");
    std::fs::write(&file, "filetok\n").expect("token file");
    let config = stats_config(
        1,
        "  http_default_acl: ['10.0.0.0/8']\n",
        "  stats_api_tokens: [cfgtok]\n",
    );
    let file = file.display().to_string();
    let env = [
        ("POOLGATE_STATS_API_TOKENS", "envtok, other"),
        ("POOLGATE_STATS_API_TOKENS_FILE", file.as_str()),
    ];
    let pg = Poolgate::start_with_env(&config, &env);
    let (status, body) = get(&pg, "/proxy-stats", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(get(&pg, "/metrics", None).await.0, 403);
    assert_eq!(get(&pg, "/proxy-stats", Some("wrong")).await.0, 403);
    for token in ["cfgtok", "envtok", "other", "filetok"] {
        assert_eq!(
            get(&pg, "/proxy-stats", Some(token)).await.0,
            200,
            "{token}"
        );
    }
    assert_eq!(get(&pg, "/metrics", Some("filetok")).await.0, 200);
    assert!(!pg.log().contains("filetok") && !pg.log().contains("cfgtok"));
}

#[tokio::test]
async fn prometheus_counts_requests_by_status_class_and_throttling() {
    let o = origin::http();
    let config = stats_config(o.port(), "", "").replace(
        &format!("target_port: {}}}", o.port()),
        &format!(
            "target_port: {}, max_requests_per_min_per_ip: 3}}",
            o.port()
        ),
    );
    let pg = Poolgate::start(&config);
    let c = client();
    let mut statuses = Vec::new();
    for path in ["/a", "/status/404", "/status/500", "/b", "/c"] {
        statuses.push(
            c.get(pg.url(path))
                .send()
                .await
                .expect("send")
                .status()
                .as_u16(),
        );
    }
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    // 2 of 5, unless the five straddle a minute boundary.
    assert!(throttled >= 1, "{statuses:?}");
    let (status, text) = get(&pg, "/metrics", None).await;
    assert_eq!(status, 200);
    let value = |line_start: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let ok = value(r#"poolgate_requests_total{class="2xx",pool="default"}"#);
    let not_found = value(r#"poolgate_requests_total{class="4xx",pool="default"}"#);
    let failed = value(r#"poolgate_requests_total{class="5xx",pool="default"}"#);
    assert_eq!(ok + not_found + failed, 5 - throttled as u64, "{text}");
    assert_eq!(
        value(r#"poolgate_throttled_total{pool="default"}"#),
        throttled as u64
    );
    assert!(
        text.contains("poolgate_backend_duration_seconds_bucket{phase=\"total\",pool=\"default\"")
    );
    assert!(text.contains("poolgate_client_connections "));
}

#[tokio::test]
async fn the_web_server_logs_requests_and_lists_the_recent_ones() {
    let o = origin::http();
    let web =
        "  http_log_requests: true\n  http_regex_log: '^/logged'\n  http_recent_requests: 2\n";
    let pg = Poolgate::start(&stats_config(o.port(), web, ""));
    let c = client();
    for path in ["/logged/a", "/other", "/logged/b?q=1"] {
        let resp = c.get(pg.url(path)).header("User-Agent", "T/1").send().await;
        assert_eq!(resp.expect("send").status(), 200);
    }
    let log = || std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default();
    let want = "][WebServer][transaction][HTTP 200 OK][/logged/b?q=1][{\"id\":\"r3\",\"method\":\"GET\",\"proto\":\"http\",\"ip\":\"127.0.0.1\"";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log().contains(want) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = log();
    assert!(text.contains(want), "{text}");
    assert!(text.contains("][WebServer][transaction][HTTP 200 OK][/logged/a]["));
    assert!(!text.contains("[/other]"), "http_regex_log filters: {text}");
    let (_, body) = get(&pg, "/proxy-stats", None).await;
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    let recent = doc["web"]["recent"].as_array().expect("recent").clone();
    let uris: Vec<_> = recent
        .iter()
        .map(|r| r["uri"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(uris.len(), 2, "{recent:?}");
    assert!(
        uris.contains(&"/logged/b?q=1") && uris.contains(&"/other"),
        "{uris:?}"
    );
    assert_eq!(recent[0]["ua"], "T/1");
    assert_eq!(recent[0]["code"], 200);
}

#[tokio::test]
async fn uptime_counts_from_the_start_not_from_the_first_stats_request() {
    let o = origin::http();
    let pg = Poolgate::start(&stats_config(o.port(), "", ""));
    // Nothing asks poolgate anything for two seconds after it listens.
    std::thread::sleep(Duration::from_millis(2100));
    let (status, body) = get(&pg, "/proxy-stats", None).await;
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    let uptime = doc["web"]["server"]["uptime_sec"].as_u64();
    assert!(uptime.is_some_and(|s| s >= 2), "{body}");
}

/// The keys of an object, in order.
fn keys(v: &serde_json::Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_stats_keep_five_minutes_of_history_targets_and_recent_errors_in_the_same_shape() {
    let o = origin::http();
    let dead = crate::harness::free_port();
    let pools = format!(
        "  pools:\n    limited: {{target_hostname: 127.0.0.1, target_port: {0}, uri_match: '^/limited', max_requests_per_sec: 1}}\n    broken: {{target_hostname: 127.0.0.1, target_port: {dead}, uri_match: '^/broken'}}\n    default: {{target_hostname: 127.0.0.1, target_port: {0}}}\n",
        o.port()
    );
    let config = format!(
        "threads: 2\nshutdown_timeout_sec: 1\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\n  http_max_connections: 64\nPixlProxy:\n  stats_uri_match: '^/proxy-stats'\n{pools}"
    );
    let pg = Poolgate::start(&config);
    let read = || async {
        let (status, body) = get(&pg, "/proxy-stats", None).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).expect("json")
    };
    let idle = read().await;
    let c = client();
    for _ in 0..20 {
        assert_eq!(
            c.get(pg.url("/x")).send().await.expect("send").status(),
            200
        );
    }
    let mut refused = 0;
    for _ in 0..5 {
        let status = c
            .get(pg.url("/limited/y"))
            .send()
            .await
            .expect("send")
            .status();
        refused += usize::from(status == 429);
    }
    assert!(
        refused >= 3,
        "at most two seconds began during five requests"
    );
    for _ in 0..2 {
        let status = c
            .get(pg.url("/broken/z"))
            .send()
            .await
            .expect("send")
            .status();
        assert_eq!(status, 502);
    }
    // Until the ticker has put the 20 requests into the default pool's history.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = read().await;
    let history_sum = |doc: &serde_json::Value| -> u64 {
        let requests = doc["pools"]["default"]["history"]["requests"].as_array();
        requests.map_or(0, |r| r.iter().filter_map(|n| n.as_u64()).sum())
    };
    while history_sum(&seen) < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = read().await;
    }
    assert_eq!(history_sum(&seen), 20, "{seen:#}");
    let history = &seen["pools"]["default"]["history"];
    let points = history["requests"].as_array().map_or(0, |a| a.len()) as u64;
    let span = history["end"].as_u64().unwrap_or(0) + 1 - history["start"].as_u64().unwrap_or(0);
    assert_eq!(points, span, "one point a second: {history}");
    assert_eq!(
        history["p99_ms"].as_array().map(|a| a.len()),
        Some(points as usize)
    );
    assert!(points <= 300);
    // The dead target's failures and the recent errors, newest first, with pool and cause.
    let target = &seen["pools"]["broken"]["targets"][0];
    assert_eq!(target["url"], format!("http://127.0.0.1:{dead}"), "{seen}");
    assert_eq!(target["health"], "unchecked", "no health_check: {seen}");
    assert!(target["failures"].as_u64() >= Some(2), "{seen}");
    let errors = seen["web"]["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let broken: Vec<_> = errors.iter().filter(|e| e["pool"] == "broken").collect();
    assert_eq!(broken.len(), 2, "{errors:#?}");
    assert_eq!(broken[0]["status"], 502);
    assert_eq!(broken[0]["uri"], "/broken/z");
    assert_eq!(broken[0]["target"], format!("http://127.0.0.1:{dead}"));
    let throttled: Vec<_> = errors.iter().filter(|e| e["pool"] == "limited").collect();
    assert_eq!(throttled.len(), refused, "{errors:#?}");
    assert_eq!(throttled[0]["status"], 429);
    let cause = throttled[0]["cause"].as_str().unwrap_or("");
    assert!(cause.contains("max_requests_per_sec"), "{cause}");
    let whens: Vec<u64> = errors.iter().filter_map(|e| e["when"].as_u64()).collect();
    assert!(
        whens.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {whens:?}"
    );
    assert_eq!(
        seen["pools"]["limited"]["limits"]["max_requests_per_sec"],
        1
    );
    assert_eq!(seen["web"]["stats"]["max_sockets"], 64);
    assert!(
        seen["web"]["server"]["rss_bytes"].as_u64() > Some(1_000_000),
        "{seen}"
    );
    // The same keys whether anything happened or not.
    for pool in ["default", "limited", "broken"] {
        let (before, after) = (&idle["pools"][pool], &seen["pools"][pool]);
        assert_eq!(keys(before), keys(after), "{pool}");
        for part in ["responses", "percentiles", "limits", "history"] {
            assert_eq!(keys(&before[part]), keys(&after[part]), "{pool}.{part}");
        }
        assert_eq!(
            keys(&before["targets"][0]),
            keys(&after["targets"][0]),
            "{pool}"
        );
    }
    for part in ["server", "stats", "queue"] {
        assert_eq!(
            keys(&idle["web"][part]),
            keys(&seen["web"][part]),
            "web.{part}"
        );
    }
    assert_eq!(keys(&idle["web"]), keys(&seen["web"]));
}
