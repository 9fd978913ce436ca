//! `poolgate check` finds what `serve` would trip on: bind addresses that are not IP
//! addresses, regexes and fixed-set values of features that are off, problems inside a pool at
//! the key itself, a config with nothing to proxy, files too large or too deeply nested; and
//! `POOLGATE_` variables that are no setting only warn.

use crate::harness::{bin, free_port, run_cli};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A config file in its own directory (kept while the value lives).
struct ConfigFile {
    _dir: tempfile::TempDir,
    path: String,
}

impl ConfigFile {
    fn new(name: &str, text: &str) -> ConfigFile {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write config");
        ConfigFile {
            path: path.display().to_string(),
            _dir: dir,
        }
    }

    /// `poolgate check --config FILE`: (exit code, stdout + stderr).
    fn check(&self, env: &[(&str, &str)]) -> (i32, String) {
        run_cli(&["check", "--config", &self.path], env, None)
    }

    /// The output line `FILE:LINE:COL: error: PATH: ...` is in `out`.
    fn error_at(&self, out: &str, line: usize, column: usize, path: &str) -> bool {
        out.contains(&format!("{}:{line}:{column}: error: {path}: ", self.path))
    }
}

/// One pool, enough for a config to have something to proxy.
const POOL: &str = "PixlProxy:\n  pools:\n    api:\n      target_hostname: 127.0.0.1\n";

#[test]
fn check_refuses_bind_addresses_that_are_not_ip_addresses_and_serve_does_too() {
    let port = free_port();
    let text = format!("WebServer:\n  http_port: {port}\n  http_bind_address: localhost\n  https_bind_address: 'example.com'\n{POOL}");
    let config = ConfigFile::new("bind.yaml", &text);
    let (code, out) = config.check(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        config.error_at(&out, 3, 3, "WebServer.http_bind_address"),
        "{out}"
    );
    assert!(out.contains("`localhost` is not an IP address"), "{out}");
    assert!(
        config.error_at(&out, 4, 3, "WebServer.https_bind_address"),
        "https is off, the address is checked all the same: {out}"
    );
    let (code, out) = run_cli(&["serve", "--config", &config.path], &[], None);
    assert_eq!(code, 2, "a config error, not a failed start: {out}");
    let fine = ConfigFile::new(
        "fine.yaml",
        &format!("WebServer:\n  http_bind_address: '::1'\n  https_bind_address: '[::1]'\n{POOL}"),
    );
    let (code, out) = fine.check(&[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_compiles_every_regex_and_enumerated_value_with_its_feature_off() {
    let text = "WebServer:\n  http_compress_text: false\n  http_regex_text: '(text'\n  http_log_requests: false\n  http_regex_log: '[a-'\nPixlProxy:\n  pools:\n    api:\n      target_hostname: 127.0.0.1\n      load_balancing: fastest\n      health_check:\n        type: none\n        status_match: '^2(\\d\\d$'\n";
    let config = ConfigFile::new("off.yaml", text);
    let (code, out) = config.check(&[]);
    assert_eq!(code, 2, "{out}");
    for (line, column, path) in [
        (3, 3, "WebServer.http_regex_text"),
        (5, 3, "WebServer.http_regex_log"),
        (10, 7, "PixlProxy.pools.api.load_balancing"),
        (13, 9, "PixlProxy.pools.api.health_check.status_match"),
    ] {
        assert!(config.error_at(&out, line, column, path), "{path}: {out}");
    }
}

#[test]
fn check_places_a_problem_inside_a_pool_at_the_key_itself() {
    let serde_type = ConfigFile::new(
        "type.yaml",
        &format!("{POOL}      follow_redirects: \"yes\"\n"),
    );
    let (code, out) = serde_type.check(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        serde_type.error_at(&out, 5, 7, "PixlProxy.pools.api.follow_redirects"),
        "{out}"
    );
    let negative = ConfigFile::new(
        "negative.yaml",
        &format!("{POOL}      retries: 1\n      max_concurrent_requests: -1\n"),
    );
    let (code, out) = negative.check(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        negative.error_at(&out, 6, 7, "PixlProxy.pools.api.max_concurrent_requests"),
        "{out}"
    );
    let flow = "PixlProxy: {pools: {web: {target_hostname: h}, api: {target_hostname: h, use_queue: true, follow_redirects: true}}}\n";
    let settings = ConfigFile::new("flow.yaml", flow);
    let (code, out) = settings.check(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        settings.error_at(&out, 1, 91, "PixlProxy.pools.api.follow_redirects"),
        "{out}"
    );
    let missing = ConfigFile::new(
        "missing.yaml",
        "PixlProxy:\n  pools:\n    api:\n      uri_match: ^/api\n    web:\n      target_hostname: h\n",
    );
    let (code, out) = missing.check(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        missing.error_at(&out, 3, 5, "PixlProxy.pools.api.target_hostname"),
        "a key left out is placed at its pool, not at another pool's key: {out}"
    );
}

#[test]
fn check_says_there_is_nothing_to_proxy_without_pools_or_static_files() {
    let empty = ConfigFile::new("empty.yaml", "");
    let (code, out) = empty.check(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!(
            "{}:1:1: error: PixlProxy.pools: nothing to proxy: no pools (the file is empty)",
            empty.path
        )),
        "{out}"
    );
    let no_pools = ConfigFile::new(
        "no-pools.yaml",
        "WebServer:\n  http_port: 3020\nPixlProxy:\n  pools: {}\n",
    );
    let (code, out) = no_pools.check(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(no_pools.error_at(&out, 4, 3, "PixlProxy.pools"), "{out}");
    assert!(out.contains("nothing to proxy: no pools"), "{out}");
    let htdocs = tempfile::tempdir().expect("htdocs");
    let static_only = ConfigFile::new(
        "static.yaml",
        &format!(
            "WebServer:\n  http_htdocs_dir: {}\nPixlProxy:\n  serve_static_files: true\n",
            htdocs.path().display()
        ),
    );
    let (code, out) = static_only.check(&[]);
    assert_eq!(code, 0, "static files are something to serve: {out}");
}

/// `poolgate check` on `config`, which must finish within `limit` (else it is killed).
fn check_within(config: &ConfigFile, limit: Duration) -> (i32, String) {
    let mut child = Command::new(bin())
        .args(["check", "--config", &config.path])
        .env_remove("POOLGATE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run poolgate");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("check took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_fails_fast_on_a_file_nested_too_deeply_or_too_large() {
    let limit = Duration::from_secs(60);
    let brackets = format!(
        "{POOL}deep: {}1{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let deep = ConfigFile::new("brackets.yaml", &brackets);
    let (code, out) = check_within(&deep, limit);
    assert_eq!(code, 2, "{out}");
    let expected = format!("{}:5:70: error: nested more than 64 levels deep", deep.path);
    assert!(out.contains(&expected), "{out}");
    let indented: String = (0..100)
        .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
        .collect();
    let deep = ConfigFile::new("indented.yaml", &format!("{POOL}{indented}"));
    let (code, out) = check_within(&deep, limit);
    assert_eq!(code, 2, "{out}");
    let expected = format!(
        "{}:69:129: error: nested more than 64 levels deep",
        deep.path
    );
    assert!(out.contains(&expected), "{out}");
    let line = format!("# {}\n", "x".repeat(1021));
    let huge = ConfigFile::new("huge.yaml", &format!("{POOL}{}", line.repeat(17 * 1024)));
    let (code, out) = check_within(&huge, limit);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{}:16388:963: ", huge.path))
            && out.contains("error: the file is larger than 16 MiB"),
        "{out}"
    );
}

#[test]
fn check_only_warns_about_poolgate_variables_that_are_no_setting() {
    let config = ConfigFile::new("env.yaml", POOL);
    let env = [
        ("POOLGATE_BIN", "/usr/local/bin/poolgate"),
        ("POOLGATE_WEBSERVER_HTTP_PROT", "8080"),
    ];
    let (code, out) = config.check(&env);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: POOLGATE_BIN: matches no setting; ignored"),
        "{out}"
    );
    assert!(
        out.contains("warning: POOLGATE_WEBSERVER_HTTP_PROT: matches no setting; ignored (did you mean `POOLGATE_WEBSERVER_HTTP_PORT`?)"),
        "{out}"
    );
    assert!(out.contains("config OK"), "{out}");
}
