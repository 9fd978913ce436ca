//! pixl-server's top-level keys and pixl-server-web's logging keys, end to end: the
//! `PIXLPROXY_` environment form and `config_overrides_file` (with `showconfig` naming each
//! value's source), `log_columns`, `log_filters`, `log_debug_errors`, `echo` / `color` /
//! `debug`, and `http_log_request_details`, `http_log_body_max`, `http_log_perf`,
//! `http_perf_threshold_ms`, `http_log_socket_errors`.

use crate::harness::{bin, client, free_port, run_cli, Poolgate};
use crate::origin;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn event_log(pg: &Poolgate) -> String {
    std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default()
}

/// The first event-log line containing `needle` (waiting for it, bounded).
fn line_with(pg: &Poolgate, needle: &str) -> String {
    assert!(
        pg.wait_for_event_log(needle),
        "no line with {needle}:\n{}",
        event_log(pg)
    );
    event_log(pg)
        .lines()
        .find(|l| l.contains(needle))
        .map(String::from)
        .unwrap_or_default()
}

/// The `data` column (the last) of a default-columns line.
fn data(line: &str) -> serde_json::Value {
    let start = line.rfind("][{").map_or(0, |i| i + 2);
    serde_json::from_str(line[start..].trim_end_matches(']')).expect("data is JSON")
}

fn config(origin_port: u16, top: &str, web: &str) -> String {
    format!(
        "threads: 2\nshutdown_timeout_sec: 1\n{top}WebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\n{web}PixlProxy:\n  pools:\n    default: {{target_hostname: 127.0.0.1, target_port: {origin_port}}}\n"
    )
}

#[tokio::test]
async fn the_overrides_file_and_pixlproxy_variables_override_the_file_and_showconfig_names_each_source(
) {
    let o = origin::http();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = dir.path().join("overrides.json");
    let port = o.port();
    std::fs::write(
        &overrides,
        format!(r#"{{"PixlProxy.pools.default.target_port": {port}, "WebServer.http_log_requests": false, "debug_level": "2"}}"#),
    )
    .expect("overrides");
    let top = format!("config_overrides_file: {}\n", overrides.display());
    // The file's pool points at a dead port; the overrides file fixes it.
    let text = config(1, &top, "  http_log_requests: false\n");
    let env = [("PIXLPROXY_WebServer__http_log_requests", "true")];
    let pg = Poolgate::start_with_env(&text, &env);
    let resp = client()
        .get(pg.url("/via-overrides"))
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.status(),
        200,
        "the overrides file's target_port is used"
    );
    // The variable wins over the overrides file: requests are logged.
    line_with(&pg, "[WebServer][transaction][HTTP 200 OK][/via-overrides]");
    assert!(line_with(&pg, "Starting Up").contains("[poolgate][debug][1]"));

    let config_path = pg.dir().join("config.yaml").display().to_string();
    let (code, out) = run_cli(&["showconfig", "--config", &config_path], &env, None);
    assert_eq!(code, 0, "{out}");
    let shown = overrides.display().to_string();
    for want in [
        format!("target_port: {port}  # overrides file {shown}"),
        "http_log_requests: true  # PIXLPROXY_WebServer__http_log_requests".to_string(),
        "debug_level: 2  # overrides file".to_string(),
        "http_bind_address: 127.0.0.1  # file".to_string(),
        "http_timeout: 120  # default".to_string(),
        "# WebServer.http_log_requests from PIXLPROXY_WebServer__http_log_requests".to_string(),
    ] {
        assert!(out.contains(&want), "missing `{want}`:\n{out}");
    }
}

#[test]
fn pixlproxy_variables_that_name_no_setting_are_warnings_and_wrong_types_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    let text = config(1, "", "").replace("$PORT", &free_port().to_string());
    std::fs::write(&path, text).expect("config");
    let path = path.display().to_string();
    let (code, out) = run_cli(
        &["check", "--config", &path],
        &[("PIXLPROXY_WebServer__http_prot", "80")],
        None,
    );
    assert_eq!(code, 0, "a warning only: {out}");
    assert!(
        out.contains("PIXLPROXY_WebServer__http_prot: matches no setting"),
        "{out}"
    );
    let (code, out) = run_cli(
        &["check", "--config", &path],
        &[("PIXLPROXY_WebServer__http_port", "eighty")],
        None,
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("PIXLPROXY_WebServer__http_port: expected a number"),
        "{out}"
    );
}

#[tokio::test]
async fn log_columns_and_log_filters_choose_the_columns_and_the_lines() {
    let o = origin::http();
    let top = "log_columns: [hires_epoch, pid, component, category, msg]\nlog_filters: {category: {'*': true, debug: false}}\n";
    let pg = Poolgate::start(&config(o.port(), top, "  http_log_requests: true\n"));
    let resp = client().get(pg.url("/columns")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let line = line_with(&pg, "[WebServer][transaction][/columns]");
    let re = regex::Regex::new(
        r"^\[\d{10}(\.\d{1,3})?\]\[(\d+)\]\[WebServer\]\[transaction\]\[/columns\]$",
    )
    .expect("regex");
    let pid = re
        .captures(&line)
        .and_then(|c| c.get(2))
        .map(|m| m.as_str().to_string());
    assert_eq!(pid, Some(pg.pid().to_string()), "{line}");
    let text = event_log(&pg);
    assert!(
        !text.contains("[debug]"),
        "debug lines are filtered out:\n{text}"
    );
}

#[tokio::test]
async fn log_debug_errors_also_writes_level_one_lines_as_fatal_errors() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), "log_debug_errors: true\n", ""));
    let fatal = line_with(&pg, "[poolgate][error][fatal][poolgate v");
    assert!(fatal.contains("Starting Up"), "{fatal}");
    assert!(event_log(&pg).contains("[poolgate][debug][1][poolgate v"));
}

#[tokio::test]
async fn request_details_log_headers_query_and_bodies_with_secrets_redacted() {
    let o = origin::http();
    let web =
        "  http_log_requests: true\n  http_log_request_details: true\n  http_log_body_max: 64\n";
    let pg = Poolgate::start(&config(o.port(), "", web));
    let c = client();
    let resp = c
        .post(pg.url("/echo/body?name=joe&x=a%20b"))
        .header("authorization", "Bearer sekrit-token")
        .header("cookie", "session=sekrit-cookie")
        .header("x-custom", "visible")
        .body("hello details")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "hello details");
    let line = line_with(
        &pg,
        "[WebServer][transaction][HTTP 200 OK][/echo/body?name=joe",
    );
    assert!(!line.contains("sekrit"), "{line}");
    let d = data(&line);
    assert_eq!(d["headers"]["authorization"], "[redacted]", "{d}");
    assert_eq!(d["headers"]["x-custom"], "visible", "{d}");
    assert_eq!(d["cookies"]["session"], "[redacted]", "{d}");
    assert_eq!(
        d["query"],
        serde_json::json!({"name": "joe", "x": "a b"}),
        "{d}"
    );
    assert_eq!(d["params"]["raw"], "hello details", "{d}");
    assert_eq!(d["response"]["code"], 200, "{d}");
    assert_eq!(d["response"]["status"], "OK", "{d}");
    assert_eq!(d["response"]["raw"], "hello details", "{d}");

    let big = "x".repeat(65);
    let resp = c
        .post(pg.url("/echo/body?big=1"))
        .body(big.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.text().await.expect("body"), big);
    let d = data(&line_with(&pg, "[/echo/body?big=1]"));
    assert!(
        d["params"].get("raw").is_none(),
        "over http_log_body_max: {d}"
    );
    assert!(
        d["response"].get("raw").is_none(),
        "over http_log_body_max: {d}"
    );
    assert_eq!(d["response"]["code"], 200, "{d}");
}

#[tokio::test]
async fn http_log_perf_writes_a_perf_line_with_phases_for_slow_requests_only() {
    let o = origin::http();
    let web = "  http_log_perf: true\n  http_perf_threshold_ms: 150\n";
    let pg = Poolgate::start(&config(o.port(), "", web));
    let c = client();
    let fast = c.get(pg.url("/status/200")).send().await.expect("send");
    assert_eq!(fast.status(), 200);
    let slow = c.get(pg.url("/slow/300")).send().await.expect("send");
    assert_eq!(slow.status(), 200);
    let answered = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let line = line_with(&pg, "[WebServer][perf][200 OK][/slow/300]");
    // Stamped with the request's start: at least the 300 ms it took before its answer.
    let stamped: f64 = line[1..line.find(']').unwrap_or(1)]
        .parse()
        .unwrap_or(f64::MAX);
    assert!(
        stamped <= answered - 0.29,
        "{stamped} vs answered at {answered}: {line}"
    );
    let d = data(&line);
    let total = d["perf"]["perf"]["total"].as_f64().unwrap_or(0.0);
    assert!(total >= 300.0, "{d}");
    assert!(
        d["perf"]["perf"]["wait"].as_f64().is_some(),
        "the back end's phases: {d}"
    );
    assert_eq!(d["perf"]["scale"], 1000, "{d}");
    assert!(d["sockets"].as_u64().is_some_and(|n| n >= 1), "{d}");
    assert!(
        !event_log(&pg).contains("[perf][200 OK][/status/200]"),
        "fast requests are not perf lines"
    );
}

/// Send a request head promising a 100-byte body, 10 bytes of it, then close the socket.
fn abandon_upload(pg: &Poolgate) {
    let mut s = TcpStream::connect(pg.addr()).expect("connect");
    let head =
        "POST /echo/body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789";
    s.write_all(head.as_bytes()).expect("write");
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
}

#[tokio::test]
async fn a_client_closing_mid_request_is_a_socket_error_or_with_the_key_off_a_level_9_line() {
    let o = origin::http();
    let pg = Poolgate::start(&config(o.port(), "", ""));
    abandon_upload(&pg);
    let line = line_with(
        &pg,
        "[WebServer][error][socket][Socket closed unexpectedly: ",
    );
    let d = data(&line);
    assert_eq!(d["proto"], "http", "{d}");
    assert_eq!(d["port"], pg.port, "{d}");
    assert!(
        d["url"].as_str().is_some_and(|u| u.ends_with("/echo/body")),
        "{d}"
    );

    let quiet = Poolgate::start(&config(
        o.port(),
        "debug_level: 9\n",
        "  http_log_socket_errors: false\n",
    ));
    abandon_upload(&quiet);
    line_with(&quiet, "[WebServer][debug][9][Socket closed unexpectedly: ");
    assert!(!event_log(&quiet).contains("[error][socket]"));
}

/// Run `poolgate <args>` with `config` and return its first standard-output line (bounded),
/// then kill it.
pub fn first_stdout_line(args: &[&str], config: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let path = dir.path().join("c.yaml");
    let text = format!(
        "log_dir: {}\n{config}WebServer: {{http_port: {port}, http_bind_address: 127.0.0.1}}\n",
        dir.path().display()
    );
    std::fs::write(&path, text).expect("config");
    let mut child = Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let first = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        line
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !first.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // `start` with `debug: true` is the serving process itself.
    let pid_file = dir.path().join("poolgate.pid");
    let mut serving = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while args == ["start"] && serving.trim().is_empty() && Instant::now() < deadline {
        serving = std::fs::read_to_string(&pid_file).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = first.join().expect("reader");
    if args == ["start"] {
        assert_eq!(
            serving.trim(),
            child.id().to_string(),
            "start ran in the foreground"
        );
    }
    line
}

#[test]
fn echo_in_the_config_prints_event_lines_uncolored_off_a_terminal() {
    let line = first_stdout_line(&["serve"], "echo: true\ncolor: true\n");
    assert!(line.contains("Starting Up"), "{line}");
    assert!(!line.contains('\u{1b}'), "no colors into a pipe: {line:?}");
}

#[test]
fn debug_in_the_config_makes_start_run_in_the_foreground() {
    let line = first_stdout_line(&["start"], "debug: true\necho: true\n");
    assert!(line.contains("Starting Up"), "{line}");
}

/// The request dumps in `dir`.
fn dumps(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.display().to_string().ends_with(".json"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_maxed_out_front_end_writes_one_request_dump_per_debounce_period() {
    let o = origin::http();
    let web = "  http_max_connections: 1\n  http_req_max_dump_enabled: true\n  http_req_max_dump_dir: $DIR/dumps\n  http_req_max_dump_debounce: 2\n";
    let text = config(o.port(), "", web).replace(
        "PixlProxy:\n",
        "PixlProxy:\n  stats_uri_match: '^/proxy-stats'\n",
    );
    let pg = Poolgate::start(&text);
    let dir = pg.dir().join("dumps");
    // The harness's probe connection may still hold the one slot for a moment (and its
    // refusals may already dump).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = None;
    while held.is_none() && Instant::now() < deadline {
        let mut s = TcpStream::connect(pg.addr()).expect("connect");
        s.write_all(b"GET /held HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("write");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut first = [0u8; 12];
        if std::io::Read::read_exact(&mut s, &mut first).is_ok()
            && first.starts_with(b"HTTP/1.1 200")
        {
            held = Some(s);
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _held = held.expect("one connection kept open");
    // Past any earlier dump's debounce period.
    std::thread::sleep(Duration::from_millis(2100));
    let before = dumps(&dir).len();
    let refused = || {
        let mut s = TcpStream::connect(pg.addr()).expect("connect");
        let _ = s.write_all(b"GET /refused HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let mut out = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = std::io::Read::read_to_end(&mut s, &mut out);
    };
    refused();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dumps(&dir).len() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut found = dumps(&dir);
    assert_eq!(found.len(), before + 1, "{found:?}\n{}", pg.log());
    found.sort();
    // Base-36 times of equal length sort in time order: the newest is last.
    let newest = found.last().cloned().unwrap_or_default();
    let name = newest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        name.starts_with("req-dump-") && name.contains(&format!("-{}-", pg.pid())),
        "{name}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&newest).expect("dump")).expect("JSON");
    assert_eq!(doc["reason"], "http_max_connections", "{doc}");
    let sockets = doc["web"]["sockets"].as_object().map_or(0, |s| s.len());
    assert!(sockets >= 1, "the open connections are in the dump: {doc}");
    assert!(doc["pools"]["default"].is_object(), "{doc}");
    refused();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(dumps(&dir).len(), before + 1, "debounced");
}

#[test]
fn color_in_the_config_colors_the_echoed_columns_on_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let path = dir.path().join("c.yaml");
    let text = format!(
        "log_dir: {}\necho: true\ncolor: true\nWebServer: {{http_port: {port}, http_bind_address: 127.0.0.1}}\n",
        dir.path().display()
    );
    std::fs::write(&path, text).expect("config");
    // `script` runs poolgate on a pseudo-terminal and copies what it prints.
    let command = format!("{} serve --config {}", bin(), path.display());
    let Ok(mut script) = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        eprintln!("no `script` command: skipped");
        return;
    };
    let stdout = script.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("Starting Up") {
                break;
            }
        }
        seen
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid_file = dir.path().join("poolgate.pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pid = String::new();
    while pid.trim().is_empty() && Instant::now() < deadline {
        pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(20));
    }
    if !pid.trim().is_empty() {
        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
    }
    let _ = script.kill();
    let _ = script.wait();
    let seen = reader.join().expect("reader");
    assert!(seen.contains("Starting Up"), "{seen:?}");
    assert!(seen.contains("\u{1b}["), "colored on a terminal: {seen:?}");
}

#[tokio::test]
async fn request_details_include_the_bodies_of_pools_that_retry_or_follow_redirects() {
    let o = origin::http();
    let web = "  http_log_requests: true\n  http_log_request_details: true\n";
    let text = config(o.port(), "", web).replace(
        &format!("target_port: {}}}", o.port()),
        &format!(
            "target_port: {}, retries: 1, follow_redirects: true}}",
            o.port()
        ),
    );
    assert!(text.contains("retries: 1"), "{text}");
    let pg = Poolgate::start(&text);
    let resp = client()
        .post(pg.url("/echo/body?exchange=1"))
        .body("through the exchange")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.text().await.expect("body"), "through the exchange");
    let d = data(&line_with(&pg, "[/echo/body?exchange=1]"));
    assert_eq!(d["params"]["raw"], "through the exchange", "{d}");
    assert_eq!(d["response"]["raw"], "through the exchange", "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_request_queue_writes_a_request_dump_too() {
    let o = origin::http();
    let web = "  http_max_concurrent_requests: 4\n  http_max_queue_active: 1\n  http_req_max_dump_enabled: true\n  http_req_max_dump_dir: $DIR/dumps\n";
    let text = config(o.port(), "", web).replace(
        "PixlProxy:\n",
        "PixlProxy:\n  stats_uri_match: '^/proxy-stats'\n",
    );
    let pg = Poolgate::start(&text);
    let c = client();
    let slow = tokio::spawn(c.get(pg.url("/slow/1500")).send());
    assert!(o.wait_until(Duration::from_secs(10), |o| o.requests() >= 1));
    let refused = c.get(pg.url("/refused")).send().await.expect("refused");
    assert_eq!(refused.status(), 429);
    let dir = pg.dir().join("dumps");
    let deadline = Instant::now() + Duration::from_secs(10);
    while dumps(&dir).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let found = dumps(&dir);
    assert_eq!(found.len(), 1, "{found:?}\n{}", pg.log());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&found[0]).expect("dump")).expect("JSON");
    assert_eq!(doc["reason"], "the request queue's limit", "{doc}");
    assert_eq!(doc["web"]["queue"]["running"], 1, "{doc}");
    assert_eq!(slow.await.expect("join").expect("slow").status(), 200);
}
