//! The PixlProxy-format event log: columns, startup lines, debug-level filtering, credentials
//! kept out, reopening after logrotate, `--echo`.

use crate::harness::{client, Poolgate};
use crate::origin;
use std::time::{Duration, Instant};

fn logged_config(port: u16, debug_level: u8) -> String {
    format!(
        "threads: 2\nshutdown_timeout_sec: 1\nlog_dir: $DIR/logs\ndebug_level: {debug_level}\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\nPixlProxy:\n  pools:\n    default: {{target_hostname: 127.0.0.1, target_port: {port}, http_basic_auth: 'user:s3cret-pass'}}\n"
    )
}

fn event_log(pg: &Poolgate, name: &str) -> String {
    std::fs::read_to_string(pg.dir().join("logs").join(name)).unwrap_or_default()
}

/// Wait (bounded) until the event log file `name` contains `needle`.
fn wait_for_event(pg: &Poolgate, name: &str, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if event_log(pg, name).contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `[hires_epoch][date][hostname][component][category][code][msg][data]`.
fn is_pixl_line(line: &str) -> bool {
    let re = regex::Regex::new(
        r"^\[\d{10}(\.\d{1,3})?\]\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]\[[^\]]+\]\[[^\]]+\]\[(debug|error|warning|transaction)\]\[[^\]]*\]\[.*\]\[.*\]$",
    )
    .expect("regex");
    re.is_match(line)
}

#[tokio::test]
async fn lines_have_pixl_columns_startup_lines_and_no_credentials() {
    let o = origin::http();
    let pg = Poolgate::start(&logged_config(o.port(), 4));
    assert!(wait_for_event(&pg, "event.log", "Setting up pool: default"));
    let resp = client().get(pg.url("/x")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let text = event_log(&pg, "event.log");
    for line in text.lines() {
        assert!(is_pixl_line(line), "not in PixlProxy's columns: {line}");
    }
    assert!(text.contains("][poolgate][debug][1][poolgate v"), "{text}");
    let pool_line = text
        .lines()
        .find(|l| l.contains("][default][debug][4][Setting up pool: default]["))
        .expect("pool line");
    assert!(pool_line.contains(&format!(r#""targets":["http://127.0.0.1:{}"]"#, o.port())));
    assert!(!text.contains("s3cret"), "credentials in the log: {text}");
    assert!(
        !text.contains("][debug][5]["),
        "debug_level 4 writes no level-5 lines"
    );
}

#[tokio::test]
async fn the_file_is_reopened_after_sigusr1_for_logrotate() {
    let pg = Poolgate::start(&logged_config(1, 5));
    assert!(wait_for_event(&pg, "event.log", "Starting Up"));
    let logs = pg.dir().join("logs");
    std::fs::rename(logs.join("event.log"), logs.join("event.log.1")).expect("rotate");
    pg.signal("USR1");
    // Lines keep coming (each request logs at level 5); they reach the new file once reopened.
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !event_log(&pg, "event.log").contains("GET") && Instant::now() < deadline {
        let _ = c.get(pg.url("/after-rotate")).send().await;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(event_log(&pg, "event.log").contains("/after-rotate"));
    assert!(event_log(&pg, "event.log.1").contains("Starting Up"));
}

#[test]
fn echo_prints_event_lines_to_standard_output() {
    let line = crate::logging::first_stdout_line(&["serve", "--echo"], "");
    assert!(is_pixl_line(line.trim_end()), "{line}");
    assert!(line.contains("Starting Up"), "{line}");
}

fn pool_config(port: u16, extra: &str) -> String {
    format!(
        "threads: 2\nshutdown_timeout_sec: 1\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\nPixlProxy:\n  pools:\n    default: {{target_hostname: 127.0.0.1, target_port: {port}, {extra}}}\n"
    )
}

/// The `data` of the first event-log line containing `needle` (waiting for it, bounded).
fn data_of(pg: &Poolgate, needle: &str) -> serde_json::Value {
    assert!(
        wait_for_event_at(pg, needle),
        "no line with {needle}:\n{}",
        std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default()
    );
    let text = std::fs::read_to_string(pg.dir().join("event.log")).expect("event log");
    let line = text.lines().find(|l| l.contains(needle)).expect("line");
    assert!(is_pixl_line(line), "{line}");
    let start = line.find("][{").expect("data column") + 2;
    serde_json::from_str(&line[start..line.len() - 1]).expect("data is JSON")
}

fn wait_for_event_at(pg: &Poolgate, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default();
        if text.contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn event_text(pg: &Poolgate) -> String {
    std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default()
}

#[tokio::test]
async fn log_transactions_writes_a_line_per_request_with_the_readme_fields() {
    let o = origin::http();
    let pg = Poolgate::start(&pool_config(o.port(), "log_transactions: 1"));
    let resp = client()
        .get(pg.url("/x?y=1"))
        .header("Authorization", "Bearer t0ken")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let data = data_of(
        &pg,
        "][default][transaction][http][Proxy Request Completed: HTTP 200 OK][",
    );
    assert_eq!(data["url"], format!("http://127.0.0.1:{}/x?y=1", o.port()));
    assert_eq!(data["method"], "GET");
    assert_eq!(data["req_headers"]["authorization"], "[redacted]");
    assert_eq!(data["http_code"], 200);
    assert_eq!(data["http_message"], "OK");
    assert_eq!(data["resp_headers"]["content-type"], "application/json");
    let perf = &data["perf_metrics"];
    assert_eq!(perf["scale"], 1000);
    for phase in ["total", "dns", "connect", "wait", "receive"] {
        assert!(perf["perf"][phase].as_f64().is_some(), "{phase} in {perf}");
    }
    assert!(perf["counters"]["bytes_sent"].as_u64().unwrap_or(0) > 20);
    assert!(perf["counters"]["bytes_received"].as_u64().unwrap_or(0) > 20);
    assert_eq!(data["request_id"], "");
    assert!(data.get("error_details").is_none());
    assert!(!event_text(&pg).contains("t0ken"));
}

#[tokio::test]
async fn failed_requests_get_an_error_line_unless_log_errors_is_off() {
    let o = origin::http();
    let pg = Poolgate::start(&pool_config(o.port(), "log_perf_ms: 0"));
    let c = client();
    assert_eq!(
        c.get(pg.url("/status/500"))
            .send()
            .await
            .expect("send")
            .status(),
        500
    );
    let data = data_of(
        &pg,
        "][default][error][500][Proxy Request Error: HTTP 500 Internal Server Error][",
    );
    assert_eq!(data["error_details"], "Error: HTTP 500");
    assert_eq!(
        c.get(pg.url("/fine")).send().await.expect("send").status(),
        200
    );
    let quiet = Poolgate::start(&pool_config(o.port(), "log_errors: false"));
    assert_eq!(
        c.get(quiet.url("/status/503"))
            .send()
            .await
            .expect("send")
            .status(),
        503
    );
    // A refused back end is an error too (502, with the cause).
    let down = Poolgate::start(&pool_config(crate::harness::free_port(), "retries: 0"));
    assert_eq!(
        c.get(down.url("/gone"))
            .send()
            .await
            .expect("send")
            .status(),
        502
    );
    let data = data_of(
        &down,
        "][default][error][502][Proxy Request Error: HTTP 502 Bad Gateway][",
    );
    assert!(data["error_details"]
        .as_str()
        .unwrap_or("")
        .starts_with("Error: "));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !event_text(&pg).contains("[transaction]"),
        "no transactions by default"
    );
    assert!(
        !event_text(&quiet).contains("][error]["),
        "{}",
        event_text(&quiet)
    );
}

#[tokio::test]
async fn log_perf_ms_logs_only_slow_requests() {
    let o = origin::http();
    let pg = Poolgate::start(&pool_config(o.port(), "log_perf_ms: 200"));
    let c = client();
    assert_eq!(
        c.get(pg.url("/fast")).send().await.expect("send").status(),
        200
    );
    assert_eq!(
        c.get(pg.url("/slow/300"))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
    let data = data_of(
        &pg,
        "[transaction][http][Proxy Request Completed: HTTP 200 OK]",
    );
    assert!(data["url"].as_str().unwrap_or("").ends_with("/slow/300"));
    assert!(
        data["perf_metrics"]["perf"]["total"]
            .as_f64()
            .unwrap_or(0.0)
            >= 200.0
    );
    assert!(!event_text(&pg).contains("/fast\""), "{}", event_text(&pg));
}

#[tokio::test]
async fn queued_sends_are_logged_with_their_request_id() {
    let o = origin::http();
    let pg = Poolgate::start(&pool_config(
        o.port(),
        "use_queue: true, log_transactions: true",
    ));
    let resp = client()
        .post(pg.url("/q"))
        .body("x")
        .send()
        .await
        .expect("send");
    let json: serde_json::Value = resp.json().await.expect("json");
    let id = json["request_id"].as_str().expect("id").to_string();
    let data = data_of(
        &pg,
        "][default][transaction][http][Proxy Request Completed: HTTP 200 OK][",
    );
    assert_eq!(data["request_id"], id.as_str());
    assert_eq!(data["method"], "POST");
    assert!(data["perf_metrics"]["perf"]["send"].as_f64().is_some());
}

#[tokio::test]
async fn retrying_pools_time_their_attempts_too() {
    let o = origin::http();
    let pg = Poolgate::start(&pool_config(o.port(), "retries: 2, log_transactions: true"));
    let resp = client().get(pg.url("/fail/1")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let data = data_of(
        &pg,
        "[transaction][http][Proxy Request Completed: HTTP 200 OK]",
    );
    let perf = &data["perf_metrics"];
    for phase in ["total", "dns", "connect", "send", "wait", "receive"] {
        assert!(perf["perf"][phase].as_f64().is_some(), "{phase} in {perf}");
    }
    assert!(
        perf["counters"]["bytes_received"].as_u64() > Some(0),
        "{perf}"
    );
}

#[tokio::test]
async fn cookies_and_configured_tokens_never_reach_the_log_in_the_clear() {
    let o = origin::http();
    let token = "tok-9f8e7d6c5b";
    let config = format!(
        "threads: 2\nshutdown_timeout_sec: 1\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\nPixlProxy:\n  stats_uri_match: '^/proxy-stats'\n  stats_api_tokens: ['{token}']\n  pools:\n    default: {{target_hostname: 127.0.0.1, target_port: {}, log_transactions: true}}\n",
        o.port()
    );
    let pg = Poolgate::start(&config);
    let resp = client()
        .get(pg.url(&format!("/set-cookie?key={token}")))
        .header("Cookie", "session=old")
        .header("X-Api-Key", token)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let data = data_of(&pg, "][default][transaction][http][");
    assert_eq!(data["resp_headers"]["set-cookie"], "[redacted]");
    assert_eq!(data["req_headers"]["cookie"], "[redacted]");
    assert_eq!(data["req_headers"]["x-api-key"], "[redacted]");
    assert_eq!(
        data["url"],
        format!("http://127.0.0.1:{}/set-cookie?key=[redacted]", o.port())
    );
    let text = event_text(&pg);
    assert!(!text.contains(token), "{text}");
    assert!(!text.contains("abc123"), "{text}");
}
