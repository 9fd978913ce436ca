//! The processes measured: the origin (nginx when installed, else the Rust origin), and the
//! proxies in front of it (the minimal Pingora floor, poolgate in three configs: one pool, 20
//! pools, one pool with limits shared on Redis; nginx), each pinned to its CPU and stopped when
//! dropped, and the Redis of cluster mode (on the proxies' CPU).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running process that is stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Running {
    pub name: String,
    pub child: Child,
    pub port: u16,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory (VmHWM) in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        proc_status_kib(self.pid(), "VmHWM:") / 1024.0
    }

    /// Resident memory now (VmRSS) in MiB.
    pub fn rss_mib(&self) -> f64 {
        proc_status_kib(self.pid(), "VmRSS:") / 1024.0
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, r)| r)
            .split_whitespace()
            .collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
        (ticks(11) + ticks(12)) / 100.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status_kib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

/// Start `program` pinned to `cpu` and wait (at most 10 s) until it accepts on `port`.
pub fn start(
    name: &str,
    cpu: &str,
    program: &str,
    args: &[String],
    port: u16,
    log: &Path,
) -> Result<Running, String> {
    let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let child = Command::new("taskset")
        .args(["-c", cpu, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("{name}: cannot start {program}: {e}"))?;
    let running = Running {
        name: name.to_string(),
        child,
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(running);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "{name} did not accept on port {port} within 10 s (see {})",
        log.display()
    ))
}

/// Where the programs and the scratch files are.
pub struct Setup {
    pub bin_dir: PathBuf,
    pub work: PathBuf,
    pub nginx: Option<String>,
}

impl Setup {
    fn bin(&self, name: &str) -> String {
        self.bin_dir.join(name).display().to_string()
    }

    /// The origin on the load CPU: nginx (`/` small, `/1m` 1 MiB, `/1g` 1 GiB) or the Rust one.
    pub fn origin(&self, cpu: &str) -> Result<Running, String> {
        let port = free_port();
        let log = self.work.join("origin.log");
        let Some(nginx) = &self.nginx else {
            let args = vec![format!("127.0.0.1:{port}")];
            return start(
                "origin (Rust)",
                cpu,
                &self.bin("examples/bench_origin"),
                &args,
                port,
                &log,
            );
        };
        let root = self.work.join("www");
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        std::fs::write(root.join("1m"), vec![b'x'; 1024 * 1024]).map_err(|e| e.to_string())?;
        let big = std::fs::File::create(root.join("1g")).map_err(|e| e.to_string())?;
        big.set_len(1024 * 1024 * 1024).map_err(|e| e.to_string())?;
        let server = format!(
            "listen 127.0.0.1:{port} reuseport; keepalive_requests 1000000; root {root};\n\
             location = / {{ default_type text/plain; return 200 'hello from the origin\\n'; }}",
            root = root.display()
        );
        self.nginx_with(
            nginx,
            "origin (nginx)",
            cpu,
            port,
            4096,
            &format!("server {{ {server} }}"),
        )
    }

    /// nginx as a reverse proxy with keep-alive to the origin (the reference point).
    pub fn nginx_proxy(&self, cpu: &str, origin_port: u16) -> Option<Result<Running, String>> {
        self.nginx_proxy_with(cpu, origin_port, 4096, "")
    }

    /// nginx as a reverse proxy for the connection-scale stage: room for `connections` client
    /// plus upstream connections, idle clients kept for 600 s.
    pub fn nginx_proxy_scale(
        &self,
        cpu: &str,
        origin_port: u16,
        connections: usize,
    ) -> Option<Result<Running, String>> {
        self.nginx_proxy_with(cpu, origin_port, connections, " keepalive_timeout 600;")
    }

    fn nginx_proxy_with(
        &self,
        cpu: &str,
        origin_port: u16,
        worker_connections: usize,
        server_extra: &str,
    ) -> Option<Result<Running, String>> {
        let nginx = self.nginx.as_ref()?;
        let port = free_port();
        let http = format!(
            "upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 128; }}\n\
             server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;{server_extra}\n\
             location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}"
        );
        Some(self.nginx_with(nginx, "nginx", cpu, port, worker_connections, &http))
    }

    /// nginx, one worker in the foreground, with `http` as its `http { }` block's content.
    fn nginx_with(
        &self,
        nginx: &str,
        name: &str,
        cpu: &str,
        port: u16,
        worker_connections: usize,
        http: &str,
    ) -> Result<Running, String> {
        let dir = self.work.join(format!("nginx-{port}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        // Beyond the usual 4096 connections: open files for two per connection (client and
        // upstream) plus nginx's own.
        let nofile = match worker_connections > 4096 {
            true => format!("worker_rlimit_nofile {};\n", worker_connections * 2 + 1024),
            false => String::new(),
        };
        let conf = format!(
            "worker_processes 1; daemon off; master_process off; error_log {d}/error.log; pid {d}/nginx.pid;\n\
             {nofile}events {{ worker_connections {worker_connections}; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on; client_body_temp_path {d}; proxy_temp_path {d};\n\
             fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n{http} }}\n",
            d = dir.display()
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).map_err(|e| e.to_string())?;
        let args = vec![
            "-c".to_string(),
            path.display().to_string(),
            "-p".to_string(),
            dir.display().to_string(),
        ];
        start(name, cpu, nginx, &args, port, &dir.join("stderr.log"))
    }

    /// The minimal Pingora proxy.
    pub fn floor(&self, cpu: &str, origin_port: u16) -> Result<Running, String> {
        let port = free_port();
        let args = vec![
            format!("127.0.0.1:{port}"),
            format!("127.0.0.1:{origin_port}"),
            "1".into(),
        ];
        start(
            "pingora floor",
            cpu,
            &self.bin("examples/bench_floor"),
            &args,
            port,
            &self.work.join("floor.log"),
        )
    }

    /// poolgate with one pool, or (`busy`) with 20 regex-routed pools (the request matches the
    /// last), transaction logging and the stats API on.
    pub fn poolgate(&self, cpu: &str, origin_port: u16, busy: bool) -> Result<Running, String> {
        let name = if busy { "poolgate-20" } else { "poolgate" };
        self.poolgate_with(cpu, origin_port, busy, name, "", None)
    }

    /// `redis-server` on `cpu` (the proxy's: cluster mode's cost lands on the same core), in
    /// its own directory, persistence as cluster mode wants it; `None` when not installed.
    pub fn redis(&self, cpu: &str) -> Option<Result<Running, String>> {
        let program = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let port = free_port();
        let dir = self.work.join(format!("redis-{port}"));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return Some(Err(e.to_string()));
        }
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir.display().to_string(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        Some(start(
            "redis",
            cpu,
            program,
            &args,
            port,
            &dir.join("redis.log"),
        ))
    }

    /// poolgate with one pool whose limits (high enough never to refuse) are shared on the
    /// Redis at `redis_port`: cluster mode's cost per request, one admission round trip.
    pub fn poolgate_cluster(
        &self,
        cpu: &str,
        origin_port: u16,
        redis_port: u16,
    ) -> Result<Running, String> {
        self.poolgate_with(
            cpu,
            origin_port,
            false,
            "poolgate-cluster",
            "",
            Some(redis_port),
        )
    }

    /// poolgate with one pool for the connection-scale stage: idle keep-alive clients kept
    /// for 600 s (the default `http_keep_alive_timeout` of 5 s would close them), no limit on
    /// client connections. Its files go to `work/<dir>`.
    pub fn poolgate_scale(
        &self,
        cpu: &str,
        origin_port: u16,
        dir: &str,
    ) -> Result<Running, String> {
        let web =
            "  http_keep_alive_timeout: 600\n  http_timeout: 600\n  http_max_connections: 0\n";
        self.poolgate_with(cpu, origin_port, false, dir, web, None)
    }

    /// poolgate in `work/<dir>`; `web_extra`: more `WebServer` lines (indented by two);
    /// `cluster`: the port of a Redis to share the pool's limits on.
    fn poolgate_with(
        &self,
        cpu: &str,
        origin_port: u16,
        busy: bool,
        dir: &str,
        web_extra: &str,
        cluster: Option<u16>,
    ) -> Result<Running, String> {
        let port = free_port();
        let name = match (busy, cluster) {
            (true, _) => "poolgate-20",
            (false, Some(_)) => "poolgate-cluster",
            (false, None) => "poolgate",
        };
        let dir = self.work.join(dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let target = format!("target_hostname: 127.0.0.1, target_port: {origin_port}");
        let pools = if busy {
            let mut p: Vec<String> = (0..19)
                .map(|i| format!("    svc{i}: {{uri_match: '^/svc{i}/(api|v2)/', {target}, log_transactions: true}}"))
                .collect();
            p.push(format!(
                "    main: {{uri_match: '^/', {target}, log_transactions: true}}"
            ));
            p.join("\n")
        } else if cluster.is_some() {
            format!(
                "    main: {{{target}, max_concurrent_requests: 100000, max_requests_per_sec: 100000000}}"
            )
        } else {
            format!("    main: {{{target}}}")
        };
        let top = match cluster {
            Some(redis) => format!(
                "cluster:\n  redis_url: 'redis://127.0.0.1:{redis}'\n  key_prefix: 'bench-{port}'\n"
            ),
            None => String::new(),
        };
        let extra = if busy {
            "  stats_uri_match: '^/proxy-stats'\n"
        } else {
            ""
        };
        let config = format!(
            "log_dir: '{d}'\nthreads: 1\nshutdown_timeout_sec: 1\n{top}WebServer:\n  http_port: {port}\n  http_bind_address: 127.0.0.1\n{web_extra}PixlProxy:\n{extra}  pools:\n{pools}\n",
            d = dir.display()
        );
        let path = dir.join("config.yaml");
        std::fs::write(&path, config).map_err(|e| e.to_string())?;
        let args = vec![
            "--config".to_string(),
            path.display().to_string(),
            "serve".to_string(),
        ];
        start(
            name,
            cpu,
            &self.bin("poolgate"),
            &args,
            port,
            &dir.join("stderr.log"),
        )
    }
}
