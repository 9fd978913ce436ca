//! Connection scale: what an idle keep-alive client costs each proxy in resident memory, and
//! how long one request on each of many open, idle connections takes.
//!
//! Per contender (poolgate with one pool, the Pingora floor, nginx) and per N (1 000 and
//! 10 000; 200 and 1 000 with `--smoke`) a fresh proxy process in front of the origin: its
//! VmRSS at rest, then N plain HTTP/1.1 keep-alive connections, each sending one small
//! `GET /` and reading the whole answer (Content-Length framing), all left open and idle, and
//! VmRSS 500 ms after the last answer. The figure is the slope between the two Ns, in KiB per
//! connection. Then, on the larger N's connections (still open and idle), one more GET each,
//! 64 in flight: 64 client tasks, each taking every 64th connection in turn, one request at a
//! time. Reported: the wall time of all of them and the mean latency of one (write to the
//! answer's last byte). Every answer must be a 200; anything else is counted as an error.
//!
//! The client is one current-thread tokio runtime on the load CPU. Every connect and answer
//! has a timeout, every phase a deadline, and a phase stops after `MAX_ERRORS` failures.

use crate::contenders::{Running, Setup};
use futures_util::future::join_all;
use std::cell::Cell;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Requests in flight at once (client tasks).
pub const IN_FLIGHT: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest any phase (opening N connections, or N requests) may take.
const PHASE_DEADLINE: Duration = Duration::from_secs(180);
/// A phase stops after this many failed connections or requests.
const MAX_ERRORS: u64 = 50;
/// Between the last answer and reading VmRSS.
const SETTLE: Duration = Duration::from_millis(500);
/// Open files the runner wants, so its own sockets and each proxy's (which inherit the limit)
/// fit; raised to this as root, else the soft limit goes up to the hard limit.
pub const NOFILE_WANTED: u64 = 65536;

/// The two connection counts of the stage.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub small: usize,
    pub large: usize,
}

impl Scale {
    pub fn new(smoke: bool) -> Scale {
        match smoke {
            true => Scale {
                small: 200,
                large: 1000,
            },
            false => Scale {
                small: 1000,
                large: 10_000,
            },
        }
    }

    /// Open files needed. The limit is per process: the runner holds `large` client sockets,
    /// a proxy as many plus its upstream connections (at most `IN_FLIGHT` busy and its idle
    /// pool) and its own files; 5 000 is room for all of that.
    pub fn nofile_needed(&self) -> u64 {
        self.large as u64 + 5000
    }
}

/// One contender's figures.
#[derive(Debug, Default)]
pub struct ConnRow {
    pub name: String,
    /// VmRSS at rest of the process that got `small` and of the one that got `large`, MiB.
    pub base_small_mib: f64,
    pub base_large_mib: f64,
    /// VmRSS with `small` and with `large` idle connections open, MiB.
    pub rss_small_mib: f64,
    pub rss_large_mib: f64,
    /// Requests answered on the `large` open connections, their wall time and mean latency.
    pub served: u64,
    pub serve_total_s: f64,
    pub serve_mean_ms: f64,
    pub serve_max_ms: f64,
    /// The proxy's CPU time (user + system) over those requests, µs per request.
    pub serve_cpu_us: f64,
    /// Connections and requests that failed, over all phases.
    pub errors: u64,
    /// What the first failure was.
    pub first_error: Option<String>,
}

impl ConnRow {
    /// The slope between the two points, KiB per idle connection.
    pub fn kib_per_connection(&self, scale: Scale) -> f64 {
        (self.rss_large_mib - self.rss_small_mib) * 1024.0 / (scale.large - scale.small) as f64
    }

    fn failed(&mut self, errors: u64, first: Option<String>) {
        self.errors += errors;
        if self.first_error.is_none() {
            self.first_error = first;
        }
    }
}

/// The stage's result: the rows, or why it did not run.
pub enum Outcome {
    Ran(Vec<ConnRow>),
    Skipped(String),
}

/// Raises the soft limit on open files to `wanted` (the hard limit too, which only works with
/// CAP_SYS_RESOURCE), else to the hard limit. Returns the soft and hard limit in force.
pub fn raise_nofile(wanted: u64) -> Result<(u64, u64), String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit(NOFILE): {e}"))?;
    if hard < wanted && setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted).is_ok() {
        return Ok((wanted, wanted));
    }
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .map_err(|e| format!("setrlimit(NOFILE, {hard}): {e}"))?;
    }
    Ok((soft.max(hard), hard))
}

/// Which proxy to start fresh for each N.
#[derive(Clone, Copy)]
enum Contender {
    Poolgate,
    Floor,
    Nginx,
}

/// Runs the stage: every contender at both Ns, the client pinned to `load_cpu`.
pub fn run(
    setup: &Setup,
    proxy_cpu: &str,
    load_cpu: &str,
    origin_port: u16,
    scale: Scale,
    nofile: u64,
) -> Result<Outcome, String> {
    let needed = scale.nofile_needed();
    if nofile < needed {
        return Ok(Outcome::Skipped(format!(
            "the open-files limit (RLIMIT_NOFILE) is {nofile} and could not be raised; \
             {needed} are needed for {} connections (raise the hard limit, e.g. `ulimit -Hn 65536` as root)",
            scale.large
        )));
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Err(e) = pin_this_thread(load_cpu) {
                eprintln!("  connections: the client runs unpinned ({e})");
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("connections: tokio runtime: {e}"))?;
            let mut rows = Vec::new();
            for contender in [Contender::Poolgate, Contender::Floor, Contender::Nginx] {
                let start = |n: usize| -> Option<Result<Running, String>> {
                    match contender {
                        Contender::Poolgate => Some(setup.poolgate_scale(
                            proxy_cpu,
                            origin_port,
                            &format!("conn-poolgate-{n}"),
                        )),
                        Contender::Floor => Some(setup.floor(proxy_cpu, origin_port)),
                        Contender::Nginx => setup.nginx_proxy_scale(proxy_cpu, origin_port, 32768),
                    }
                };
                if let Some(row) = contender_row(&rt, &start, scale)? {
                    rows.push(row);
                }
            }
            Ok(Outcome::Ran(rows))
        })
        .join()
        .unwrap_or_else(|_| Err("connections: the client thread panicked".into()))
    })
}

/// One contender at both Ns, a fresh process each; `None` when it is not installed.
fn contender_row(
    rt: &tokio::runtime::Runtime,
    start: &dyn Fn(usize) -> Option<Result<Running, String>>,
    scale: Scale,
) -> Result<Option<ConnRow>, String> {
    let mut row = ConnRow::default();
    for (i, n) in [scale.small, scale.large].into_iter().enumerate() {
        let Some(proxy) = start(n) else {
            return Ok(None);
        };
        let proxy = proxy?;
        row.name = proxy.name.clone();
        std::thread::sleep(Duration::from_millis(300));
        let base = alive_rss(&proxy)?;
        let port = proxy.port;
        let (mut conns, opened) = rt.block_on(open(port, n));
        row.failed(opened.errors, opened.first_error);
        std::thread::sleep(SETTLE);
        let rss = alive_rss(&proxy)?;
        eprintln!(
            "  {}: {n} idle connections open ({} failed): RSS {base:.1} -> {rss:.1} MiB",
            row.name, opened.errors
        );
        if i == 0 {
            (row.base_small_mib, row.rss_small_mib) = (base, rss);
        } else {
            (row.base_large_mib, row.rss_large_mib) = (base, rss);
            if opened.errors == 0 {
                let (started, cpu) = (Instant::now(), proxy.cpu_seconds());
                let served = rt.block_on(serve(port, &mut conns));
                row.serve_total_s = started.elapsed().as_secs_f64();
                row.serve_cpu_us = (proxy.cpu_seconds() - cpu) * 1e6 / served.ok.max(1) as f64;
                row.served = served.ok;
                row.serve_mean_ms =
                    served.latency_sum.as_secs_f64() * 1000.0 / served.ok.max(1) as f64;
                row.serve_max_ms = served.latency_max.as_secs_f64() * 1000.0;
                row.failed(served.errors, served.first_error);
                eprintln!(
                    "  {}: {} requests on {n} open connections in {:.2} s, proxy CPU {:.0} µs each ({} failed)",
                    row.name, served.ok, row.serve_total_s, row.serve_cpu_us, served.errors
                );
            }
        }
        // The proxy goes first: its sockets close, so the client's ports are not left in
        // TIME_WAIT for the next contender.
        drop(proxy);
        drop(conns);
    }
    if let Some(e) = &row.first_error {
        eprintln!("  {}: {} failed, the first: {e}", row.name, row.errors);
    }
    Ok(Some(row))
}

/// VmRSS in MiB, or an error when the proxy is gone.
fn alive_rss(proxy: &Running) -> Result<f64, String> {
    match proxy.rss_mib() {
        rss if rss > 0.0 => Ok(rss),
        _ => Err(format!("{} (pid {}) is gone", proxy.name, proxy.pid())),
    }
}

/// What one phase counted.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    latency_sum: Duration,
    latency_max: Duration,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.latency_sum += other.latency_sum;
        self.latency_max = self.latency_max.max(other.latency_max);
    }
}

/// Shared by the tasks of one phase: stop when set (too many errors, out of ports, deadline).
struct Phase {
    deadline: Instant,
    errors: Cell<u64>,
    stop: Cell<bool>,
}

impl Phase {
    fn new() -> Phase {
        Phase {
            deadline: Instant::now() + PHASE_DEADLINE,
            errors: Cell::new(0),
            stop: Cell::new(false),
        }
    }

    /// Whether the task may go on to its next connection.
    fn go_on(&self, tally: &mut Tally) -> bool {
        if self.stop.get() {
            return false;
        }
        if Instant::now() > self.deadline {
            self.fail(
                tally,
                format!("the phase's {} s deadline passed", PHASE_DEADLINE.as_secs()),
            );
            self.stop.set(true);
            return false;
        }
        true
    }

    fn fail(&self, tally: &mut Tally, e: String) {
        tally.errors += 1;
        tally.first_error.get_or_insert(e);
        self.errors.set(self.errors.get() + 1);
        if self.errors.get() >= MAX_ERRORS {
            self.stop.set(true);
        }
    }
}

fn request(port: u16) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench-connections\r\n\r\n")
        .into_bytes()
}

/// Opens `n` keep-alive connections, one GET on each, `IN_FLIGHT` at a time. Returns the open
/// ones (task by task) and the tally; connections that failed are not kept.
async fn open(port: u16, n: usize) -> (Vec<Vec<TcpStream>>, Tally) {
    let phase = Phase::new();
    let req = request(port);
    let tasks = (0..IN_FLIGHT.min(n)).map(|k| {
        let (phase, req) = (&phase, &req);
        async move {
            let mut conns = Vec::new();
            let mut tally = Tally::default();
            let mut buf = Vec::with_capacity(4096);
            for i in (k..n).step_by(IN_FLIGHT) {
                if !phase.go_on(&mut tally) {
                    break;
                }
                let mut s = match connect(port).await {
                    Ok(s) => s,
                    Err((e, fatal)) => {
                        phase.fail(&mut tally, format!("connection {i}: {e}"));
                        if fatal {
                            phase.stop.set(true);
                        }
                        continue;
                    }
                };
                match exchange(&mut s, req, &mut buf).await {
                    Ok(()) => {
                        tally.ok += 1;
                        conns.push(s);
                    }
                    Err(e) => {
                        phase.fail(&mut tally, format!("first request on connection {i}: {e}"))
                    }
                }
            }
            (conns, tally)
        }
    });
    let mut all = Tally::default();
    let mut kept = Vec::new();
    for (conns, tally) in join_all(tasks).await {
        kept.push(conns);
        all.add(tally);
    }
    // Connections never tried because the phase stopped count as failed.
    all.errors = all.errors.max(n as u64 - all.ok);
    (kept, all)
}

/// One more GET on every open connection, each task on its own connections in turn.
async fn serve(port: u16, conns: &mut [Vec<TcpStream>]) -> Tally {
    let phase = Phase::new();
    let req = request(port);
    let total: usize = conns.iter().map(Vec::len).sum();
    let tasks = conns.iter_mut().map(|list| {
        let (phase, req) = (&phase, &req);
        async move {
            let mut tally = Tally::default();
            let mut buf = Vec::with_capacity(4096);
            for s in list.iter_mut() {
                if !phase.go_on(&mut tally) {
                    break;
                }
                let sent = Instant::now();
                match exchange(s, req, &mut buf).await {
                    Ok(()) => {
                        let took = sent.elapsed();
                        tally.ok += 1;
                        tally.latency_sum += took;
                        tally.latency_max = tally.latency_max.max(took);
                    }
                    Err(e) => phase.fail(&mut tally, format!("request on an open connection: {e}")),
                }
            }
            tally
        }
    });
    let mut all = Tally::default();
    for tally in join_all(tasks).await {
        all.add(tally);
    }
    all.errors = all.errors.max(total as u64 - all.ok);
    all
}

/// Connects within `CONNECT_TIMEOUT`; the flag says the phase cannot go on (out of ports).
async fn connect(port: u16) -> Result<TcpStream, (String, bool)> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", port))).await {
        Err(_) => Err((format!("connect timed out after {} s", CONNECT_TIMEOUT.as_secs()), false)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Err((
            format!(
                "connect: out of local ports (EADDRNOTAVAIL, {e}); see /proc/sys/net/ipv4/ip_local_port_range ({})",
                std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                    .unwrap_or_default()
                    .trim()
            ),
            true,
        )),
        Ok(Err(e)) => Err((format!("connect: {e}"), false)),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

/// Sends `req` and reads its whole answer (Content-Length framing) within `ANSWER_TIMEOUT`;
/// anything but a 200 is an error.
async fn exchange(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> Result<(), String> {
    match tokio::time::timeout(ANSWER_TIMEOUT, exchange_inner(s, req, buf)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no full answer within {} s",
            ANSWER_TIMEOUT.as_secs()
        )),
    }
}

async fn exchange_inner(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> Result<(), String> {
    s.write_all(req)
        .await
        .map_err(|e| format!("writing the request: {e}"))?;
    buf.clear();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err("answer head over 64 KiB".into());
        }
        read_more(s, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        let line = head.lines().next().unwrap_or("");
        return Err(format!("answer {line:?}"));
    }
    let length: usize = head
        .lines()
        .skip(1)
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or("answer without a valid Content-Length")?;
    while buf.len() < head_end + length {
        read_more(s, buf).await?;
    }
    if buf.len() > head_end + length {
        return Err("more bytes than the answer's Content-Length".into());
    }
    Ok(())
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.reserve(4096);
    match s.read_buf(buf).await {
        Ok(0) => Err("connection closed before the whole answer".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("reading the answer: {e}")),
    }
}

/// Pins the calling thread to `cpu` (a number, as given to `taskset -c`).
fn pin_this_thread(cpu: &str) -> Result<(), String> {
    let cpu: usize = cpu
        .parse()
        .map_err(|_| format!("CPU {cpu:?} is not a number"))?;
    // SAFETY: cpu_set_t is plain data that CPU_ZERO and CPU_SET only write inside of (cpu is
    // checked against its size); sched_setaffinity reads it, pid 0 = the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(format!("CPU {cpu} is out of range"));
        }
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    match rc {
        0 => Ok(()),
        _ => Err(format!(
            "sched_setaffinity(CPU {cpu}): {}",
            std::io::Error::last_os_error()
        )),
    }
}
