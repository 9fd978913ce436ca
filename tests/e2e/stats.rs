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
    for _ in 0..5 {
        assert_eq!(
            c.get(pg.url("/x")).send().await.expect("send").status(),
            200
        );
    }
    // The requests show once their second is over (within the next two seconds).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = serde_json::Value::Null;
    while Instant::now() < deadline {
        let (status, body) = get(&pg, "/proxy-stats", None).await;
        assert_eq!(status, 200, "{body}");
        seen = serde_json::from_str(&body).expect("json");
        if seen["pools"]["default"]["counters"]["requests"].as_u64() > Some(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pool = &seen["pools"]["default"];
    assert!(pool["counters"]["requests"].as_u64() > Some(0), "{seen}");
    assert!(
        pool["counters"]["bytes_received"].as_u64() > Some(0),
        "{seen}"
    );
    for table in ["minimums", "maximums", "averages"] {
        assert!(pool[table]["total"].as_f64().is_some(), "{table}: {seen}");
    }
    assert_eq!(pool["scale"], 1000);
    assert!(pool["cpu_pct"].as_f64().is_some());
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
