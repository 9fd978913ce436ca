//! PixlProxy's `proxyctl` commands as `poolgate` subcommands: `start` (as a background service),
//! `stop` (and wait for the exit), `restart`, `status`. They find the running process through the
//! pid file: `pid_file`, or `<log_dir>/poolgate.pid` when it is not set.

use crate::config::RuntimeConfig;
use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long `start` waits for the proxy to listen.
const START_WAIT: Duration = Duration::from_secs(30);

/// `status` exit code when not running (LSB).
pub const EXIT_NOT_RUNNING: u8 = 3;

/// The running process, if the pid file names a live one.
pub struct Running {
    pub pid: i32,
    pub since: Option<SystemTime>,
}

pub fn running(pid_file: &Path) -> Option<Running> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let pid: i32 = text.trim().parse().ok().filter(|p| *p > 0)?;
    alive(pid).then(|| Running {
        pid,
        since: std::fs::metadata(pid_file).and_then(|m| m.modified()).ok(),
    })
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn signal(pid: i32, sig: libc::c_int) -> bool {
    // SAFETY: sends a signal to the process named by the pid file.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// An address `start` can connect to, to see the proxy listening.
fn probe_addr(http_addr: &str) -> Option<SocketAddr> {
    crate::front_end::local_addr(http_addr)
        .to_socket_addrs()
        .ok()?
        .next()
}

/// The addresses a config listens on (a reload cannot change them).
pub fn listen_addrs(rt: &RuntimeConfig) -> Vec<String> {
    let mut addrs = vec![rt.front.http_addr.clone()];
    addrs.extend(rt.front.https.as_ref().map(|t| t.addr.clone()));
    addrs
}

/// Where `serve` notes its listen addresses, next to the pid file.
pub fn listen_file(rt: &RuntimeConfig) -> PathBuf {
    let mut path = rt.pid_file_path().into_os_string();
    path.push(".listen");
    PathBuf::from(path)
}

/// If a process is running with other listen addresses than `rt`'s: what they are.
pub fn listeners_changed(rt: &RuntimeConfig) -> Option<String> {
    running(&rt.pid_file_path())?;
    let before = std::fs::read_to_string(listen_file(rt)).ok()?;
    let before: Vec<String> = before.lines().map(String::from).collect();
    let now = listen_addrs(rt);
    (before != now).then(|| format!("{} -> {}", before.join(", "), now.join(", ")))
}

/// Start `poolgate serve` in the background and return once it listens (or say why it could
/// not). Its stderr goes to `<log_dir>/poolgate.stderr.log`.
pub fn start(rt: &RuntimeConfig, config: &Path, log_dir: &Path) -> Result<String, String> {
    if let Some(r) = running(&rt.pid_file_path()) {
        return Ok(format!("poolgate is already running (pid {})", r.pid));
    }
    let (child, stderr_path) = spawn_serve(config, log_dir, false)?;
    wait_serving(rt, child, &stderr_path).map(|pid| {
        format!(
            "poolgate started (pid {pid}), listening on {}",
            rt.front.http_addr
        )
    })
}

/// Zero-downtime reload: a new process (new binary, new config) takes the listening sockets
/// over from the running one through Pingora's graceful upgrade; the old one finishes its
/// in-flight requests and exits.
pub fn reload(rt: &RuntimeConfig, config: &Path, log_dir: &Path) -> Result<String, String> {
    let Some(old) = running(&rt.pid_file_path()) else {
        return Err("poolgate is not running (use `start`)".into());
    };
    if let Some(change) = listeners_changed(rt) {
        return Err(format!(
            "the listen addresses changed ({change}): that needs `restart`, not `reload`"
        ));
    }
    let (mut child, stderr_path) = spawn_serve(config, log_dir, true)?;
    // The new process must be waiting for the sockets before the old one is told to send them
    // (it retries for 5 s, so a short head start is enough).
    std::thread::sleep(Duration::from_millis(300));
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!(
            "the new process exited ({status}) before taking over:\n{}",
            read_tail(&stderr_path)
        ));
    }
    if !signal(old.pid, libc::SIGQUIT) {
        return Err(format!("cannot signal pid {}", old.pid));
    }
    wait_serving(rt, child, &stderr_path).map(|pid| {
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
    log_dir: &Path,
    upgrade: bool,
) -> Result<(std::process::Child, PathBuf), String> {
    std::fs::create_dir_all(log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    let stderr_path = log_dir.join("poolgate.stderr.log");
    // Appended to: during a reload the old process may still be writing to it.
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&stderr_path)
        .map_err(|e| format!("{}: {e}", stderr_path.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find poolgate itself: {e}"))?;
    let config = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--config"]).arg(&config);
    if upgrade {
        cmd.arg("--upgrade");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: `setsid` is async-signal-safe; it detaches the child from our terminal and
        // session so it outlives this command.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    Ok((child, stderr_path))
}

/// Wait until `child` has written its pid file and accepts connections; its pid.
fn wait_serving(
    rt: &RuntimeConfig,
    mut child: std::process::Child,
    stderr_path: &Path,
) -> Result<u32, String> {
    let addr = probe_addr(&rt.front.http_addr);
    let deadline = Instant::now() + START_WAIT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "poolgate exited ({status}) while starting:\n{}",
                read_tail(stderr_path)
            ));
        }
        // The child writes its pid file once it could bind every listener.
        let own = running(&rt.pid_file_path()).is_some_and(|r| r.pid as u32 == child.id());
        let listening = || {
            addr.is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok())
        };
        if own && listening() {
            return Ok(child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "poolgate (pid {}) is not listening on {} after {} s; see {}",
        child.id(),
        rt.front.http_addr,
        START_WAIT.as_secs(),
        stderr_path.display()
    ))
}

/// SIGTERM, then wait for the process to exit (in-flight requests finish first).
pub fn stop(rt: &RuntimeConfig) -> Result<String, String> {
    let Some(r) = running(&rt.pid_file_path()) else {
        return Ok("poolgate is not running".into());
    };
    if !signal(r.pid, libc::SIGTERM) {
        return Err(format!("cannot signal pid {}", r.pid));
    }
    let limit = Duration::from_secs(rt.shutdown_timeout_sec + 15);
    let deadline = Instant::now() + limit;
    while alive(r.pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(r.pid) {
        return Err(format!(
            "poolgate (pid {}) is still running after {} s",
            r.pid,
            limit.as_secs()
        ));
    }
    Ok(format!("poolgate stopped (pid {})", r.pid))
}

/// `running (pid N, up S s)` or `not running`.
pub fn status(rt: &RuntimeConfig) -> (bool, String) {
    match running(&rt.pid_file_path()) {
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

impl RuntimeConfig {
    /// `pid_file`, or `<log_dir>/poolgate.pid`, made absolute.
    pub fn pid_file_path(&self) -> PathBuf {
        let path = match self.pid_file.as_str() {
            "" => self
                .log_path
                .parent()
                .unwrap_or(Path::new("."))
                .join("poolgate.pid"),
            path => PathBuf::from(path),
        };
        std::path::absolute(&path).unwrap_or(path)
    }
}
