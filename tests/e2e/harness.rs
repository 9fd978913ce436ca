//! Starting the real `poolgate` binary on ephemeral loopback ports, and cleaning it up.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a poolgate process may take to start listening on a loaded machine.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A free loopback port (the kernel picks it; the listener is closed before use).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_poolgate")
}

/// A running poolgate process; killed when dropped.
pub struct Poolgate {
    child: Option<Child>,
    pub port: u16,
    pub https_port: u16,
    dir: tempfile::TempDir,
    log_path: PathBuf,
}

impl Poolgate {
    /// Start poolgate with a config. `$PORT` and `$HTTPS_PORT` in the text are replaced by free
    /// ports; `$DIR` by the process's temporary directory. Retries on a port race.
    pub fn start(config: &str) -> Poolgate {
        Self::start_with_env(config, &[])
    }

    /// As `start`, with extra environment variables.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Poolgate {
        Self::start_with(config, env, None)
    }

    /// As `start`, with the process's open-file soft limit lowered to `soft` (at most the
    /// hard limit), as a default shell or service manager would leave it.
    pub fn start_with_open_file_limit(config: &str, soft: u64) -> Poolgate {
        Self::start_with(config, &[], Some(soft))
    }

    fn start_with(config: &str, env: &[(&str, &str)], soft_nofile: Option<u64>) -> Poolgate {
        let mut last_log = String::new();
        for _ in 0..3 {
            match Self::try_start(config, env, soft_nofile) {
                Ok(p) => return p,
                Err(log) => last_log = log,
            }
        }
        panic!("poolgate did not start:\n{last_log}");
    }

    fn try_start(
        config: &str,
        env: &[(&str, &str)],
        soft_nofile: Option<u64>,
    ) -> Result<Poolgate, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, https_port) = (free_port(), free_port());
        let text = config
            .replace("$HTTPS_PORT", &https_port.to_string())
            .replace("$PORT", &port.to_string())
            .replace("$DIR", &dir.path().display().to_string());
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, text).expect("write config");
        let log_path = dir.path().join("poolgate.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        // Relative paths in the config (the event log's default `log_dir: .`) land in `$DIR`.
        let mut command = Command::new(bin());
        command
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .args(["serve", "--config"])
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(soft) = soft_nofile {
            use nix::sys::resource::{getrlimit, setrlimit, Resource};
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec the child only calls getrlimit and setrlimit,
            // which allocate nothing and take no locks.
            unsafe {
                command.pre_exec(move || {
                    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
                    setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard)?;
                    Ok(())
                });
            }
        }
        let child = command.spawn().expect("spawn poolgate");
        let mut pg = Poolgate {
            child: Some(child),
            port,
            https_port,
            dir,
            log_path,
        };
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(pg);
            }
            if let Some(Ok(Some(_))) = pg.child.as_mut().map(|c| c.try_wait()) {
                return Err(pg.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!("timed out waiting for port {port}\n{}", pg.log()))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The process's temporary directory (`$DIR` in its config).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Everything poolgate has written to stderr so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Wait (bounded) until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Wait (bounded) until the event log (`$DIR/event.log`) contains `needle`.
    pub fn wait_for_event_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(self.dir().join("event.log")).unwrap_or_default();
            if text.contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{sig} failed");
    }

    /// Wait (bounded) for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Poolgate {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Run `poolgate check` (or any subcommand) and return (exit code, stdout + stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)], cwd: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("POOLGATE_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd.output().expect("run poolgate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A reqwest client that never pools connections to poolgate (each test controls reuse).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        // Not reqwest's 30 s TCP_USER_TIMEOUT: only the overall timeout decides.
        .tcp_user_timeout(None)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}
