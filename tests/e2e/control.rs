//! The control commands: `start`/`status`/`stop`/`restart` through the pid file, `boot` and
//! `unboot` with `--root`, `showconfig` redaction, `config` with `$EDITOR`.

use crate::harness::{free_port, run_cli};
use crate::origin;
use std::path::{Path, PathBuf};

/// A config in its own directory; whatever it started is stopped (and killed if need be) on drop.
struct Service {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
}

impl Service {
    /// A service whose `default` pool forwards to `origin_port`.
    fn new(origin_port: u16) -> Service {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let o_port = origin_port;
        let text = format!(
            "log_dir: {}/logs\nshutdown_timeout_sec: 2\nWebServer: {{http_port: {port}, http_bind_address: 127.0.0.1}}\nPixlProxy:\n  pools:\n    default: {{target_hostname: 127.0.0.1, target_port: {o_port}, http_basic_auth: 'user:pa55word'}}\n",
            dir.path().display()
        );
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, text).expect("config");
        Service { dir, config, port }
    }

    fn run(&self, cmd: &str) -> (i32, String) {
        let config = self.config.display().to_string();
        run_cli(&[cmd, "--config", &config], &[], Some(self.dir.path()))
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("logs/poolgate.pid")
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn start_status_stop_through_the_pid_file() {
    let o = origin::http();
    let svc = Service::new(o.port());

    let (code, out) = svc.run("status");
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("not running"), "{out}");

    let (code, out) = svc.run("start");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("poolgate started (pid"), "{out}");
    let pid = svc.pid().expect("pid file written");
    let resp = reqwest::get(format!("http://127.0.0.1:{}/x", svc.port)).await;
    assert_eq!(resp.expect("proxy answers").status(), 200);

    let (code, out) = svc.run("status");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("running (pid {pid}")), "{out}");
    let (code, out) = svc.run("start");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already running"), "{out}");

    let (code, out) = svc.run("restart");
    assert_eq!(code, 0, "{out}");
    let new_pid = svc.pid().expect("pid after restart");
    assert_ne!(new_pid, pid, "{out}");
    assert!(!alive(pid), "the old process is gone");

    let (code, out) = svc.run("stop");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("stopped"), "{out}");
    assert!(!alive(new_pid), "stop waits for the exit");
    assert!(!svc.pid_file().exists(), "pid file removed");
    assert_eq!(svc.run("status").0, 3);
}

#[test]
fn start_reports_why_the_proxy_could_not_start() {
    let svc = Service::new(free_port());
    let taken = std::net::TcpListener::bind(("127.0.0.1", svc.port)).expect("hold the port");
    let (code, out) = svc.run("start");
    drop(taken);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Address already in use"), "{out}");
}

#[test]
fn boot_and_unboot_write_and_remove_the_unit() {
    let svc = Service::new(free_port());
    let root = svc.dir.path().join("root");
    let root_arg = root.display().to_string();
    let config = svc.config.display().to_string();
    let (code, out) = run_cli(
        &["boot", "--root", &root_arg, "--config", &config],
        &[],
        None,
    );
    assert_eq!(code, 0, "{out}");
    let unit_path = root.join("etc/systemd/system/poolgate.service");
    let unit = std::fs::read_to_string(&unit_path).expect("unit written");
    assert!(
        unit.contains(&format!(
            "ExecStart={} start --config {config}",
            crate::harness::bin()
        )),
        "{unit}"
    );
    assert!(
        unit.contains(&format!("reload --config {config}")),
        "{unit}"
    );
    let pid_file = svc.dir.path().join("logs/poolgate.pid");
    assert!(
        unit.contains(&format!("PIDFile={}", pid_file.display())),
        "{unit}"
    );
    assert!(unit.contains(&format!("check --config {config}")), "{unit}");
    assert!(
        unit.contains("TimeoutStopSec=12"),
        "shutdown_timeout_sec + 10: {unit}"
    );
    assert!(unit.contains("NoNewPrivileges=yes") && unit.contains("ProtectSystem=full"));
    let (code, out) = run_cli(&["unboot", "--root", &root_arg], &[], None);
    assert_eq!(code, 0, "{out}");
    assert!(!unit_path.exists());
}

#[test]
fn showconfig_prints_the_effective_config_with_secrets_redacted() {
    let svc = Service::new(free_port());
    let text = std::fs::read_to_string(&svc.config).expect("config")
        + "  stats_api_tokens: [t0ken-secret]\n";
    std::fs::write(
        &svc.config,
        text.replace("PixlProxy:\n", "PixlProxy:\n  stats_uri_match: '^/s'\n"),
    )
    .expect("config");
    let (code, out) = svc.run("showconfig");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&svc.config.display().to_string()), "{out}");
    assert!(
        out.contains("http_timeout_ms: 30000"),
        "defaults shown: {out}"
    );
    assert!(
        !out.contains("pa55word") && !out.contains("t0ken-secret"),
        "{out}"
    );
    assert!(out.contains("[redacted]"), "{out}");
}

#[test]
fn config_opens_the_editor_then_checks() {
    let svc = Service::new(free_port());
    let config = svc.config.display().to_string();
    let (code, out) = run_cli(
        &["config", "--config", &config],
        &[("EDITOR", "true")],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("config OK"), "{out}");
    // An editor that breaks the file: the check fails with exit 2.
    let breaker = svc.dir.path().join("break.sh");
    std::fs::write(
        &breaker,
        "#!/bin/sh\necho 'WebServer: {http_keep_alives: sometimes}' > \"$1\"\n",
    )
    .expect("script");
    let _ = std::process::Command::new("chmod")
        .args(["+x", &breaker.display().to_string()])
        .status();
    let editor = breaker.display().to_string();
    let (code, out) = run_cli(
        &["config", "--config", &config],
        &[("EDITOR", &editor)],
        None,
    );
    assert_eq!(code, 2, "{out}");
}

#[tokio::test]
async fn environment_variables_override_the_file_and_secrets_come_from_files() {
    let o = origin::http();
    let svc = Service::new(free_port()); // the file points the pool at a dead port
    let secret = svc.dir.path().join("auth");
    std::fs::write(&secret, "envuser:envpass\n").expect("secret file");
    let secret = secret.display().to_string();
    let port = o.port().to_string();
    let env = [
        ("POOLGATE_POOL_DEFAULT_TARGET_PORT", port.as_str()),
        (
            "POOLGATE_POOL_DEFAULT_HTTP_BASIC_AUTH_FILE",
            secret.as_str(),
        ),
        ("POOLGATE_DEBUG_LEVEL", "3"),
    ];
    let config = svc.config.display().to_string();
    let (code, out) = run_cli(&["showconfig", "--config", &config], &env, None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "# PixlProxy.pools.default.target_port from POOLGATE_POOL_DEFAULT_TARGET_PORT"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "http_basic_auth from the file named by POOLGATE_POOL_DEFAULT_HTTP_BASIC_AUTH_FILE"
        ),
        "{out}"
    );
    assert!(
        out.contains("debug_level: 3") && !out.contains("envpass"),
        "{out}"
    );

    let mut pg = crate::harness::Poolgate::start_with_env(
        &std::fs::read_to_string(&svc.config)
            .expect("config")
            .replace(&format!("http_port: {}", svc.port), "http_port: $PORT"),
        &env,
    );
    let resp = crate::harness::client()
        .get(pg.url("/x"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200, "the environment's target port wins");
    let seen: serde_json::Value = resp.json().await.expect("json");
    // "envuser:envpass" in base64.
    assert_eq!(
        seen["headers"]["authorization"],
        "Basic ZW52dXNlcjplbnZwYXNz"
    );
    pg.signal("TERM");
    let _ = pg.wait_exit(std::time::Duration::from_secs(20));

    let bad = [("POOLGATE_WEBSERVER_HTTP_PORT", "eighty")];
    let (code, out) = run_cli(&["check", "--config", &config], &bad, None);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("POOLGATE_WEBSERVER_HTTP_PORT: expected a number, got `eighty`"),
        "{out}"
    );
    let typo = [("POOLGATE_WEBSERVER_HTTP_PROT", "80")];
    let (code, out) = run_cli(&["check", "--config", &config], &typo, None);
    assert_eq!(code, 0, "a variable that is no setting only warns: {out}");
    assert!(
        out.contains("warning: POOLGATE_WEBSERVER_HTTP_PROT: matches no setting"),
        "{out}"
    );
}

fn proc_field(pid: u32, prefix: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn uid_gid_and_nice_are_applied_after_binding() {
    let o = origin::http();
    // SAFETY: reads this process's effective user id.
    let root = unsafe { libc::geteuid() } == 0;
    let (uid, gid) = if root { ("nobody", "65534") } else { ("", "") };
    let config = format!(
        "threads: 2\nshutdown_timeout_sec: 1\nuid: '{uid}'\ngid: '{gid}'\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\nPixlProxy:\n  nice: 5\n  pools:\n    default: {{target_hostname: 127.0.0.1, target_port: {}}}\n",
        o.port()
    );
    let pg = crate::harness::Poolgate::start(&config);
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pg.pid())).expect("stat");
    let nice = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().nth(16).unwrap_or("").to_string());
    assert_eq!(nice.as_deref(), Some("5"), "{stat}");
    if root {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !proc_field(pg.pid(), "Uid:").contains("65534")
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            proc_field(pg.pid(), "Uid:").contains("\t65534\t65534"),
            "{}",
            proc_field(pg.pid(), "Uid:")
        );
        assert!(proc_field(pg.pid(), "Gid:").contains("\t65534\t65534"));
    }
    let resp = crate::harness::client()
        .get(pg.url("/x"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200, "still serving after the switch");

    let svc = Service::new(free_port());
    let text = std::fs::read_to_string(&svc.config).expect("config");
    std::fs::write(&svc.config, format!("uid: no-such-user-here\n{text}")).expect("config");
    let (code, out) = svc.run("check");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("uid: no user `no-such-user-here`"), "{out}");
}

#[tokio::test]
async fn start_sends_the_detached_process_output_to_stdout_and_stderr_files() {
    let o = origin::http();
    let svc = Service::new(o.port());
    let out_file = svc.dir.path().join("out/poolgate.out");
    let err_file = svc.dir.path().join("err/poolgate.err");
    let text = std::fs::read_to_string(&svc.config).expect("config");
    let extra = format!(
        "stdout: {}\nstderr: {}\necho: true\n",
        out_file.display(),
        err_file.display()
    );
    std::fs::write(&svc.config, extra + &text).expect("config");
    let (code, out) = svc.run("start");
    assert_eq!(code, 0, "{out}");
    let resp = reqwest::get(format!("http://127.0.0.1:{}/x", svc.port)).await;
    assert_eq!(resp.expect("proxy answers").status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut err = String::new();
    while !err.contains("serving with config") && std::time::Instant::now() < deadline {
        err = std::fs::read_to_string(&err_file).unwrap_or_default();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(err.contains("serving with config"), "stderr file: {err}");
    assert!(out_file.exists(), "the stdout file is created");
    let echoed = std::fs::read_to_string(&out_file).unwrap_or_default();
    assert!(
        !echoed.contains("Starting Up"),
        "a detached process does not echo: {echoed}"
    );
    assert!(
        !svc.dir.path().join("logs/poolgate.stderr.log").exists(),
        "stderr went to the configured file"
    );
    let (code, out) = svc.run("stop");
    assert_eq!(code, 0, "{out}");
}
