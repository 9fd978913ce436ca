//! Zero-downtime reload (`poolgate reload`, Pingora's graceful upgrade): 64 keep-alive clients
//! send continuously while five reloads run back to back, each with a changed config; no request
//! fails, no connection is refused, and every reload's config takes effect.

use crate::harness::{free_port, run_cli};
use crate::origin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const RELOADS: u32 = 5;

fn config_text(dir: &std::path::Path, port: u16, origin_port: u16, generation: u32) -> String {
    format!(
        "log_dir: {}/logs\nshutdown_timeout_sec: 10\nWebServer: {{http_port: {port}, http_bind_address: 127.0.0.1}}\nPixlProxy:\n  pools:\n    default: {{target_hostname: 127.0.0.1, target_port: {origin_port}, insert_request_headers: {{X-Generation: '{generation}'}}}}\n",
        dir.display()
    )
}

fn pid_of(dir: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(dir.join("logs/poolgate.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Kills every process this test started, whatever happens.
struct Cleanup(Mutex<Vec<i32>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in self.0.lock().map(|p| p.clone()).unwrap_or_default() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_reloads_under_load_fail_no_request_and_apply_each_config() {
    let o = origin::http();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, config_text(dir.path(), port, o.port(), 1)).expect("config");
    let config_arg = config.display().to_string();
    let cleanup = Cleanup(Mutex::new(Vec::new()));
    let cli = |cmd: &'static str| {
        let config_arg = config_arg.clone();
        tokio::task::spawn_blocking(move || run_cli(&[cmd, "--config", &config_arg], &[], None))
    };
    let (code, out) = cli("start").await.expect("start");
    assert_eq!(code, 0, "{out}");
    cleanup.0.lock().expect("pids").extend(pid_of(dir.path()));

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let latest = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let url = format!("http://127.0.0.1:{port}/x");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, ok, failed, latest, errors, url) = (
                stop.clone(),
                ok.clone(),
                failed.clone(),
                latest.clone(),
                errors.clone(),
                url.clone(),
            );
            tokio::spawn(async move {
                let c = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .tcp_user_timeout(None)
                    .build()
                    .expect("client");
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match c.get(&url).send().await {
                        Ok(r) if r.status() == 200 => {
                            let seen: serde_json::Value = r.json().await.unwrap_or_default();
                            let generation = seen["headers"]["x-generation"]
                                .as_str()
                                .and_then(|g| g.parse().ok())
                                .unwrap_or(0);
                            latest.fetch_max(generation, Ordering::Relaxed);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors
                                .lock()
                                .expect("errors")
                                .push(format!("HTTP {}", r.status()));
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.lock().expect("errors").push(format!("{e:?}"));
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for generation in 2..=RELOADS + 1 {
        std::fs::write(&config, config_text(dir.path(), port, o.port(), generation))
            .expect("config");
        let (code, out) = cli("reload").await.expect("reload");
        assert_eq!(code, 0, "reload {generation}: {out}");
        cleanup.0.lock().expect("pids").extend(pid_of(dir.path()));
        // The new config is what requests now see.
        let deadline = Instant::now() + Duration::from_secs(10);
        while latest.load(Ordering::Relaxed) < u64::from(generation) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            latest.load(Ordering::Relaxed),
            u64::from(generation),
            "reload {generation} applied"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let errors = errors.lock().expect("errors").clone();
    assert_eq!(
        failed,
        0,
        "{ok} ok, {failed} failed: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(ok > 1000, "only {ok} requests");
    println!("reload under load: {ok} requests, {failed} failed, {RELOADS} reloads");

    let (code, out) = cli("stop").await.expect("stop");
    assert_eq!(code, 0, "{out}");
    // Every old process finishes and exits by itself.
    let pids = cleanup.0.lock().expect("pids").clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "old processes still running"
    );
}

#[test]
fn a_listener_change_needs_a_restart_and_reload_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, other) = (free_port(), free_port());
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, config_text(dir.path(), port, 1, 1)).expect("config");
    let config_arg = config.display().to_string();
    let (code, out) = run_cli(&["start", "--config", &config_arg], &[], None);
    assert_eq!(code, 0, "{out}");
    let cleanup = Cleanup(Mutex::new(pid_of(dir.path()).into_iter().collect()));
    std::fs::write(&config, config_text(dir.path(), other, 1, 1)).expect("config");
    let (code, out) = run_cli(&["check", "--config", &config_arg], &[], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("apply with `restart`, not `reload`"), "{out}");
    let (code, out) = run_cli(&["reload", "--config", &config_arg], &[], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("needs `restart`"), "{out}");
    let (code, out) = run_cli(&["restart", "--config", &config_arg], &[], None);
    assert_eq!(code, 0, "{out}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", other)).is_ok());
    cleanup.0.lock().expect("pids").extend(pid_of(dir.path()));
    let (code, out) = run_cli(&["stop", "--config", &config_arg], &[], None);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alt_port_is_taken_over_by_a_reload_like_the_main_port() {
    let o = origin::http();
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, alt) = (free_port(), free_port());
    let config = dir.path().join("config.yaml");
    let text = |generation| {
        config_text(dir.path(), port, o.port(), generation).replace(
            "http_bind_address: 127.0.0.1}",
            &format!("http_bind_address: 127.0.0.1, http_alt_ports: [{alt}]}}"),
        )
    };
    std::fs::write(&config, text(1)).expect("config");
    let config_arg = config.display().to_string();
    let (code, out) = run_cli(&["start", "--config", &config_arg], &[], None);
    assert_eq!(code, 0, "{out}");
    let cleanup = Cleanup(Mutex::new(pid_of(dir.path()).into_iter().collect()));
    let generation = |port: u16| async move {
        let url = format!("http://127.0.0.1:{port}/gen");
        let resp = reqwest::get(&url).await.expect("request");
        let desc: serde_json::Value = resp.json().await.expect("json");
        desc["headers"]["x-generation"].as_str().map(String::from)
    };
    assert_eq!(generation(alt).await.as_deref(), Some("1"));
    std::fs::write(&config, text(2)).expect("config");
    let (code, out) = run_cli(&["reload", "--config", &config_arg], &[], None);
    assert_eq!(code, 0, "{out}");
    cleanup.0.lock().expect("pids").extend(pid_of(dir.path()));
    // The old process finishes what it had accepted; new connections soon reach the new one.
    for p in [port, alt] {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = generation(p).await;
        while seen.as_deref() != Some("2") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            seen = generation(p).await;
        }
        assert_eq!(seen.as_deref(), Some("2"), "port {p}");
    }
    let (code, out) = run_cli(&["stop", "--config", &config_arg], &[], None);
    assert_eq!(code, 0, "{out}");
}
