//! The PixlProxy-format event log: columns, startup lines, debug-level filtering, credentials
//! kept out, reopening after logrotate, `--echo`.

use crate::harness::{bin, client, Poolgate};
use crate::origin;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::harness::free_port();
    let config = dir.path().join("c.yaml");
    let text = format!(
        "log_dir: {}\nWebServer: {{http_port: {port}, http_bind_address: 127.0.0.1}}\n",
        dir.path().display()
    );
    std::fs::write(&config, text).expect("config");
    let mut child = Command::new(bin())
        .args(["serve", "--echo", "--config"])
        .arg(&config)
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
    let _ = child.kill();
    let _ = child.wait();
    let line = first.join().expect("reader");
    assert!(is_pixl_line(line.trim_end()), "{line}");
    assert!(line.contains("Starting Up"), "{line}");
}
