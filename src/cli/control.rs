//! PixlProxy's `proxyctl` commands as `poolgate` subcommands: `start` (as a background service),
//! `stop` (and wait for the exit), `restart`, `status`, `reload`. They find the running process
//! through the pid file: `pid_file`, or `<log_dir>/poolgate.pid` when it is not set. They read
//! the settings and build nothing else. pixl-server's `stdout` and `stderr` say where the
//! detached process writes (default: nowhere, and `<log_dir>/poolgate.stderr.log`); its
//! `debug` makes `start` run in the foreground instead (see `cli/mod.rs`).

use crate::server::{listen_file, local_addr, ProcessSettings, Settings};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long `start` waits for the proxy to listen.
const START_WAIT: Duration = Duration::from_secs(30);

/// `status` exit code when not running (LSB).
pub(super) const EXIT_NOT_RUNNING: u8 = 3;

/// Why a control command failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ControlError {
    #[error("poolgate is not running (use `start`)")]
    NotRunning,
    #[error("the listen addresses changed ({0}): that needs `restart`, not `reload`")]
    ListenersChanged(String),
    #[error("cannot signal pid {pid}: {source}")]
    Signal { pid: i32, source: nix::Error },
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot find poolgate itself: {0}")]
    OwnBinary(std::io::Error),
    #[error("cannot start: {0}")]
    Spawn(std::io::Error),
    #[error("{0}")]
    Exited(String),
    #[error("{0}")]
    NotListening(String),
    #[error("poolgate (pid {pid}) is still running after {secs} s")]
    StillRunning { pid: i32, secs: u64 },
}

/// The running process, if the pid file names a live one.
struct Running {
    pid: i32,
    since: Option<SystemTime>,
}

fn running(pid_file: &Path) -> Option<Running> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let pid: i32 = text.trim().parse().ok().filter(|p| *p > 0)?;
    alive(pid).then(|| Running {
        pid,
        since: std::fs::metadata(pid_file).and_then(|m| m.modified()).ok(),
    })
}

/// Whether `pid` names a process this user may signal (signal 0 only checks).
fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

fn signal(pid: i32, sig: Signal) -> Result<(), ControlError> {
    kill(Pid::from_raw(pid), sig).map_err(|source| ControlError::Signal { pid, source })
}

/// An address `start` can connect to, to see the proxy listening.
fn probe_addr(http_addr: &str) -> Option<SocketAddr> {
    local_addr(http_addr).to_socket_addrs().ok()?.next()
}

/// If a process is running with other listen addresses than `s`'s: what they are.
pub(super) fn listeners_changed(s: &Settings) -> Option<String> {
    running(&s.process.pid_file)?;
    let before = std::fs::read_to_string(listen_file(&s.process)).ok()?;
    let before: Vec<String> = before.lines().map(String::from).collect();
    let now = s.listeners.addrs();
    (before != now).then(|| format!("{} -> {}", before.join(", "), now.join(", ")))
}

/// Start `poolgate serve` in the background and return once it listens (or say why it could
/// not). Its stderr goes to `stderr`, else `<log_dir>/poolgate.stderr.log`; its stdout to
/// `stdout`, else nowhere.
pub(super) fn start(s: &Settings, config: &Path) -> Result<String, ControlError> {
    if let Some(r) = running(&s.process.pid_file) {
        return Ok(format!("poolgate is already running (pid {})", r.pid));
    }
    let (child, stderr_path) = spawn_serve(config, &s.process, false)?;
    wait_serving(s, child, &stderr_path).map(|pid| {
        format!(
            "poolgate started (pid {pid}), listening on {}",
            s.listeners.http_addr
        )
    })
}

/// Zero-downtime reload: a new process (new binary, new config) takes the listening sockets
/// over from the running one through Pingora's graceful upgrade; the old one finishes its
/// in-flight requests and exits.
pub(super) fn reload(s: &Settings, config: &Path) -> Result<String, ControlError> {
    let Some(old) = running(&s.process.pid_file) else {
        return Err(ControlError::NotRunning);
    };
    if let Some(change) = listeners_changed(s) {
        return Err(ControlError::ListenersChanged(change));
    }
    let (mut child, stderr_path) = spawn_serve(config, &s.process, true)?;
    // The new process must be waiting for the sockets before the old one is told to send them
    // (it retries for 5 s, so a short head start is enough).
    std::thread::sleep(Duration::from_millis(300));
    if let Ok(Some(status)) = child.try_wait() {
        return Err(ControlError::Exited(format!(
            "the new process exited ({status}) before taking over:\n{}",
            read_tail(&stderr_path)
        )));
    }
    signal(old.pid, Signal::SIGQUIT)?;
    wait_serving(s, child, &stderr_path).map(|pid| {
        format!(
            "poolgate reloaded: pid {pid} took over from pid {}",
            old.pid
        )
    })
}

fn read_tail(path: &Path) -> String {
    let mut text = String::new();
    let _ = std::fs::File::open(path).map(|mut f| f.read_to_string(&mut text));
    text.trim_end().to_string()
}

/// Start `poolgate serve` (taking the sockets over with `upgrade`) detached from this terminal.
fn spawn_serve(
    config: &Path,
    process: &ProcessSettings,
    upgrade: bool,
) -> Result<(std::process::Child, PathBuf), ControlError> {
    let stderr_path = process
        .stderr
        .clone()
        .unwrap_or_else(|| process.log_dir().join("poolgate.stderr.log"));
    let stderr = append_to(&stderr_path)?;
    let stdout = match &process.stdout {
        Some(path) => Stdio::from(append_to(path)?),
        None => Stdio::null(),
    };
    let exe = std::env::current_exe().map_err(ControlError::OwnBinary)?;
    let config = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--daemon", "--config"]).arg(&config);
    if upgrade {
        cmd.arg("--upgrade");
    }
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec and only calls `setsid`,
        // which is async-signal-safe; it detaches the child from our terminal and session so
        // it outlives this command.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                let _ = nix::unistd::setsid();
                Ok(())
            });
        }
    }
    let child = cmd.spawn().map_err(ControlError::Spawn)?;
    Ok((child, stderr_path))
}

/// A file opened for appending (created, with its directory, if missing): during a reload the
/// old process may still be writing to it.
fn append_to(path: &Path) -> Result<std::fs::File, ControlError> {
    let fail = |source| ControlError::File {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(fail)
}

/// Wait until `child` has written its pid file and accepts connections; its pid.
fn wait_serving(
    s: &Settings,
    mut child: std::process::Child,
    stderr_path: &Path,
) -> Result<u32, ControlError> {
    let addr = probe_addr(&s.listeners.http_addr);
    let deadline = Instant::now() + START_WAIT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ControlError::Exited(format!(
                "poolgate exited ({status}) while starting:\n{}",
                read_tail(stderr_path)
            )));
        }
        // The child writes its pid file once it could bind every listener.
        let own = running(&s.process.pid_file).is_some_and(|r| r.pid as u32 == child.id());
        let listening = || {
            addr.is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok())
        };
        if own && listening() {
            return Ok(child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(ControlError::NotListening(format!(
        "poolgate (pid {}) is not listening on {} after {} s; see {}",
        child.id(),
        s.listeners.http_addr,
        START_WAIT.as_secs(),
        stderr_path.display()
    )))
}

/// SIGTERM, then wait for the process to exit (in-flight requests finish first).
pub(super) fn stop(s: &Settings) -> Result<String, ControlError> {
    let Some(r) = running(&s.process.pid_file) else {
        return Ok("poolgate is not running".into());
    };
    signal(r.pid, Signal::SIGTERM)?;
    let limit = s.process.shutdown_timeout + Duration::from_secs(15);
    let deadline = Instant::now() + limit;
    while alive(r.pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(r.pid) {
        return Err(ControlError::StillRunning {
            pid: r.pid,
            secs: limit.as_secs(),
        });
    }
    Ok(format!("poolgate stopped (pid {})", r.pid))
}

/// `running (pid N, up S s)` or `not running`.
pub(super) fn status(s: &Settings) -> (bool, String) {
    match running(&s.process.pid_file) {
        Some(r) => {
            let up = r
                .since
                .and_then(|t| t.elapsed().ok())
                .map_or(String::new(), |d| format!(", up {} s", d.as_secs()));
            (true, format!("poolgate is running (pid {}{up})", r.pid))
        }
        None => (false, "poolgate is not running".into()),
    }
}
