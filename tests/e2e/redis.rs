//! A real `redis-server` for the cluster-mode tests: on a free loopback port with its own
//! directory (AOF on, `appendfsync always`, no RDB snapshots), stopped and continued with
//! SIGSTOP / SIGCONT, killed with SIGKILL and restarted on the same port and directory; and a
//! tiny RESP client over TCP to look at its keys.

use crate::harness::free_port;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `redis-server` may take to answer its first PING on a loaded machine (it loads its
/// AOF before it does, after a restart).
const START_DEADLINE: Duration = Duration::from_secs(30);

/// One reply, as RESP2 sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(String),
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply as text: integers in decimal, nil as the empty string, errors with a leading
    /// `-`, and arrays as their elements' text, one a line (nested arrays flattened).
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Bulk(s) => s.clone(),
            Reply::Error(e) => format!("-{e}"),
            Reply::Integer(n) => n.to_string(),
            Reply::Nil => String::new(),
            Reply::Array(items) => items.iter().map(Reply::text).collect::<Vec<_>>().join("\n"),
        }
    }

    pub fn integer(&self) -> Option<i64> {
        match self {
            Reply::Integer(n) => Some(*n),
            Reply::Simple(s) | Reply::Bulk(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(items) => items,
            _ => &[],
        }
    }
}

/// A running `redis-server`; killed, and its directory removed, when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    /// Holds `data/` (the AOF) and `redis.log`.
    dir: tempfile::TempDir,
}

/// The `redis-server` on PATH, or a panic that says how to get one.
fn redis_server_bin() -> &'static str {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the cluster-mode tests need `redis-server` on PATH and it is not installed \
         (Debian/Ubuntu: `apt-get install redis-server`; `bash deploy/test-deps.sh` installs it)"
    );
    "redis-server"
}

impl RedisServer {
    /// Start a Redis on a free loopback port and wait until it answers PING.
    pub fn start() -> RedisServer {
        Self::start_with_password(None)
    }

    /// As `start`, with `requirepass` set (commands from `command` authenticate first).
    pub fn start_with_password(password: Option<&str>) -> RedisServer {
        let bin = redis_server_bin();
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::create_dir(dir.path().join("data")).expect("data dir");
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                password: password.map(str::to_string),
                dir,
            };
            match server.spawn(bin) {
                Ok(()) => return server,
                Err(log) => last = log,
            }
        }
        panic!("redis-server did not start:\n{last}");
    }

    /// Spawn `redis-server` on this port and directory; wait (bounded) for its PONG.
    fn spawn(&mut self, bin: &str) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("redis log");
        let mut command = Command::new(bin);
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.data_dir())
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .args(["--save", ""])
            .args(["--daemonize", "no"]);
        if let Some(pw) = &self.password {
            command.args(["--requirepass", pw]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if self.answers_ping() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.kill9();
        Err(format!(
            "no PONG on port {} within {START_DEADLINE:?}\n{}",
            self.port,
            self.log()
        ))
    }

    /// Whether a PING (after AUTH, with a password) gets `+PONG` within a second.
    fn answers_ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
        let mut request = Vec::new();
        if let Some(pw) = &self.password {
            request.extend(encode(&["AUTH", pw]));
        }
        request.extend(b"*1\r\n$4\r\nPING\r\n");
        if s.write_all(&request).is_err() {
            return false;
        }
        let mut reader = BufReader::new(s);
        if self.password.is_some() && !matches!(read_reply(&mut reader), Ok(Reply::Simple(_))) {
            return false;
        }
        // While it loads its AOF, Redis answers `-LOADING ...`.
        matches!(read_reply(&mut reader), Ok(Reply::Simple(s)) if s == "PONG")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT` (with `:PASSWORD@` when it has one).
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The directory Redis keeps its AOF in.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// What `redis-server` has written so far (all its runs).
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn pid(&self) -> Option<nix::unistd::Pid> {
        let child = self.child.as_ref()?;
        Some(nix::unistd::Pid::from_raw(
            i32::try_from(child.id()).expect("pid"),
        ))
    }

    fn send_signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.pid().expect("redis-server is not running");
        nix::sys::signal::kill(pid, signal).expect("signal redis-server");
    }

    /// SIGSTOP: Redis keeps its connections and its listening socket (the kernel still
    /// completes new TCP handshakes) but answers nothing, like a hung server.
    pub fn stop(&self) {
        self.send_signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// SIGCONT: it answers again, and what was sent meanwhile gets its answers.
    pub fn cont(&self) {
        self.send_signal(nix::sys::signal::Signal::SIGCONT);
    }

    /// SIGKILL, and reap it: no shutdown, only what the AOF already holds survives.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port and directory (killing it first if it still runs);
    /// waits until it has loaded its AOF and answers PING.
    pub fn restart(&mut self) {
        self.kill9();
        let bin = redis_server_bin();
        let mut last = String::new();
        // The port is ours until some other process grabs it; a failed bind is retried.
        for _ in 0..5 {
            match self.spawn(bin) {
                Ok(()) => return,
                Err(log) => last = log,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "redis-server did not restart on port {}:\n{last}",
            self.port
        );
    }

    /// Send one command and read its reply (5 s at most; panics on a broken connection).
    pub fn query(&self, args: &[&str]) -> Reply {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut request = Vec::new();
        if let Some(pw) = &self.password {
            request.extend(encode(&["AUTH", pw]));
        }
        request.extend(encode(args));
        s.write_all(&request).expect("write to redis");
        let mut reader = BufReader::new(s);
        if self.password.is_some() {
            let auth = read_reply(&mut reader).expect("AUTH reply");
            assert_eq!(auth, Reply::Simple("OK".into()), "AUTH");
        }
        read_reply(&mut reader).unwrap_or_else(|e| panic!("reply to {args:?}: {e}"))
    }

    /// `query`, as text (see `Reply::text`).
    pub fn command(&self, args: &[&str]) -> String {
        self.query(args).text()
    }

    /// `XLEN key`.
    pub fn xlen(&self, key: &str) -> i64 {
        let reply = self.query(&["XLEN", key]);
        reply
            .integer()
            .unwrap_or_else(|| panic!("XLEN {key}: {reply:?}"))
    }

    /// Every key (`KEYS *`), sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .query(&["KEYS", "*"])
            .items()
            .iter()
            .map(Reply::text)
            .collect();
        keys.sort();
        keys
    }

    /// Every key with its type, and the members and scores of sorted sets, with Redis `TIME`
    /// (for failure messages).
    pub fn dump(&self) -> String {
        let mut out = format!("TIME {}\n", self.command(&["TIME"]).replace('\n', "."));
        for key in self.keys() {
            let kind = self.command(&["TYPE", &key]);
            let detail = match kind.as_str() {
                "zset" => self.command(&["ZRANGE", &key, "0", "-1", "WITHSCORES"]),
                "string" => self.command(&["GET", &key]),
                "stream" => format!("XLEN {}", self.command(&["XLEN", &key])),
                _ => String::new(),
            };
            out.push_str(&format!("{key} ({kind}): {}\n", detail.replace('\n', " ")));
        }
        out
    }

    /// Whether the AOF directory exists and holds something (Redis 7 keeps a manifest and
    /// its files under `appendonlydir/`).
    pub fn has_aof(&self) -> bool {
        fn any_file(dir: &Path) -> bool {
            std::fs::read_dir(dir).is_ok_and(|d| {
                d.flatten().any(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        any_file(&p)
                    } else {
                        p.metadata().is_ok_and(|m| m.len() > 0)
                    }
                })
            })
        }
        any_file(&self.data_dir())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too; the TempDir removes the directory.
        self.kill9();
    }
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n", a.len()).into_bytes());
        out.extend(a.as_bytes());
        out.extend(b"\r\n");
    }
    out
}

fn read_line(r: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    let n = r.read_line(&mut line).map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed".into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Read one RESP2 reply (nested arrays included).
fn read_reply(r: &mut impl BufRead) -> Result<Reply, String> {
    let line = read_line(r)?;
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| format!("bad RESP line {line:?}"))
    };
    match kind {
        "+" => Ok(Reply::Simple(rest.to_string())),
        "-" => Ok(Reply::Error(rest.to_string())),
        ":" => Ok(Reply::Integer(number()?)),
        "$" => {
            let len = number()?;
            if len < 0 {
                return Ok(Reply::Nil);
            }
            let mut buf = vec![0u8; usize::try_from(len).expect("len") + 2];
            r.read_exact(&mut buf).map_err(|e| e.to_string())?;
            buf.truncate(buf.len() - 2);
            Ok(Reply::Bulk(String::from_utf8_lossy(&buf).into_owned()))
        }
        "*" => {
            let len = number()?;
            if len < 0 {
                return Ok(Reply::Nil);
            }
            (0..len)
                .map(|_| read_reply(r))
                .collect::<Result<_, _>>()
                .map(Reply::Array)
        }
        _ => Err(format!("unexpected RESP line {line:?}")),
    }
}
