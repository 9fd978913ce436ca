//! The command line: `check`, `serve` with bad configs, config path resolution, the sample.

use crate::harness::{client, free_port, run_cli, Poolgate};
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

#[test]
fn check_accepts_a_pixlproxy_config_json_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = r#"{
"log_dir": "logs", "log_filename": "proxy-events.log", "pid_file": "logs/pid.txt", "debug_level": 9,
"WebServer": {"http_port": 3020, "http_htdocs_dir": "htdocs", "http_server_signature": "PixlProxy 1.0",
  "http_gzip_text": false, "http_timeout": 30, "http_keep_alives": "default", "http_regex_json": "DISABLED",
  "http_log_requests": false, "http_regex_log": ".+", "http_recent_requests": 0, "http_max_connections": 255,
  "https": false, "http_response_headers": {"Via": "PixlProxy 1.0"}},
"PixlProxy": {"serve_static_files": false, "stats_uri_match": "^/proxy-stats", "validate_ssl_certs": true,
  "pools": {"MyPool1": {"method_match": "^(GET|HEAD|POST)$", "host_match": "^(127\\.0\\.0\\.1|localhost)$",
    "uri_match": "^/proxy", "target_protocol": "http", "target_hostname": "test.myserver.com", "target_port": 80,
    "use_keep_alives": true, "cache_dns_sec": 60, "max_concurrent_requests": 10, "max_requests_per_sec": 1000,
    "follow_redirects": true, "http_timeout_ms": 30000, "append_to_x_forwarded_for": true, "retries": 5,
    "log_perf_ms": 100, "log_transactions": false, "http_user_agent": "PixlProxy 1.0",
    "insert_request_headers": {"Via": "PixlProxy 1.0"}}}}
}"#;
    let path = write(dir.path(), "config.json", json);
    let (code, out) = run_cli(&["check", "--config", &path], &[], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning: WebServer.http_regex_json"), "{out}");
    assert!(out.contains("config OK"), "{out}");
    for used in [
        "retries",
        "follow_redirects",
        "max_concurrent_requests",
        "http_max_connections",
        "log_perf_ms",
        "log_transactions",
        "serve_static_files",
        "http_htdocs_dir",
        "http_gzip_text",
    ] {
        assert!(
            !out.contains(&format!(".{used}:")),
            "{used} is used now: {out}"
        );
    }
}

#[test]
fn check_reports_every_problem_with_file_line_and_key_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = "WebServer:\n  http_keep_alives: sometimes\nPixlProxy:\n  pools:\n    MyPool1:\n      target_hostname: h\n      uri_match: '(unclosed'\n    MyPool2:\n      uri_match: '^/b'\n";
    let path = write(dir.path(), "bad.yaml", yaml);
    let (code, out) = run_cli(&["check", "--config", &path], &[], None);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{path}:2:3: error: WebServer.http_keep_alives")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{path}:7:7: error: PixlProxy.pools.MyPool1.uri_match: invalid regex"
        )),
        "{out}"
    );
    assert!(
        out.contains("PixlProxy.pools.MyPool2.target_hostname: required"),
        "{out}"
    );
}

#[test]
fn check_rejects_bad_yaml_and_wrong_types_with_a_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "syntax.yaml", "WebServer:\n  http_port: [80,\n");
    let (code, out) = run_cli(&["check", "--config", &path], &[], None);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("{path}:")), "{out}");
    let path = write(
        dir.path(),
        "types.yaml",
        "WebServer:\n  http_port: eighty\n",
    );
    let (code, out) = run_cli(&["check", "--config", &path], &[], None);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{path}:2:")) && out.contains("WebServer.http_port: invalid type"),
        "{out}"
    );
}

#[test]
fn check_flags_unknown_keys_as_probable_typos() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "typo.yaml",
        "PixlProxy:\n  pools:\n    A:\n      target_hostnme: h\n",
    );
    let (code, out) = run_cli(&["check", "--config", &path], &[], None);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("PixlProxy.pools.A.target_hostnme: unknown key (probable typo; did you mean `target_hostname`?)"), "{out}");
}

#[test]
fn check_of_a_missing_file_fails_with_its_name() {
    let (code, out) = run_cli(
        &["check", "--config", "/nonexistent/poolgate.yaml"],
        &[],
        None,
    );
    assert_eq!(code, 2);
    assert!(
        out.contains("/nonexistent/poolgate.yaml: error: cannot read file"),
        "{out}"
    );
}

#[test]
fn serve_with_a_bad_config_exits_2_before_listening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let text = format!("WebServer: {{http_port: {port}, http_bind_address: 127.0.0.1}}\nPixlProxy: {{pools: {{A: {{target_hostname: h, method_match: '('}}}}}}\n");
    let path = write(dir.path(), "bad.yaml", &text);
    let (code, out) = run_cli(&["serve", "--config", &path], &[], None);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("PixlProxy.pools.A.method_match: invalid regex"),
        "{out}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing may be listening"
    );
}

#[test]
fn config_path_comes_from_the_environment_then_the_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "env.yaml",
        "PixlProxy: {pools: {A: {target_hostnme: h}}}\n",
    );
    let (code, out) = run_cli(&["check"], &[("POOLGATE_CONFIG", &path)], None);
    assert_eq!(code, 2);
    assert!(out.contains("env.yaml"), "{out}");
    std::fs::create_dir(dir.path().join("conf")).expect("mkdir");
    write(
        &dir.path().join("conf"),
        "config.yaml",
        "PixlProxy: {pools: {A: {target_hostname: h}}}\n",
    );
    let (code, out) = run_cli(&["check"], &[], Some(dir.path()));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("conf/config.yaml: config OK"), "{out}");
}

#[test]
fn every_shipped_config_passes_check() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut checked = 0;
    for entry in std::fs::read_dir(&conf).expect("conf dir") {
        let path = entry.expect("entry").path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            let (code, out) = run_cli(
                &["check", "--config", &path.display().to_string()],
                &[],
                None,
            );
            assert_eq!(code, 0, "{}: {out}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[tokio::test]
async fn the_sample_config_answers_through_its_demo_origin() {
    let sample =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/config.yaml"))
            .expect("sample");
    // Same sample, on free ports instead of the documented fixed ones.
    let demo = free_port();
    let text = sample
        .replace("http_port: 3020", "http_port: $PORT")
        .replace(
            "demo_origin_port: 3021",
            &format!("demo_origin_port: {demo}"),
        )
        .replace("target_port: 3021", &format!("target_port: {demo}"));
    assert_ne!(text, sample, "the sample's ports moved; update this test");
    let pg = Poolgate::start(&text);
    let resp = client()
        .get(pg.url("/hello?x=1"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200, "{}", pg.log());
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["origin"], "poolgate demo origin");
    assert_eq!(body["uri"], "/hello?x=1");
}
