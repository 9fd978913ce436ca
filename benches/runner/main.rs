//! The benchmark runner: measures the origin directly, the minimal Pingora proxy, poolgate (one
//! pool; and 20 regex-routed pools with transaction logging and stats) and nginx when it is
//! installed, all in one run, with the proxy pinned to one CPU and the origin and the load
//! generators to the other. Prints a markdown table and writes it, plus JSON lines, to the
//! output directory. Then the connection-scale stage (`connections.rs`): resident memory per
//! idle keep-alive client and one request on each of 10 000 open connections, for poolgate,
//! the floor and nginx, each a fresh process; its table follows the first. Exit code 1 when
//! any request failed or a contender could not run.
//!
//! `bench_runner [--smoke] [--secs N] [--rounds N] [--connections-only] [--bin-dir DIR] [--out DIR]`
//! (normally started by `benches/run.sh`; `--connections-only` runs just the second stage).

mod connections;
mod contenders;
mod loadgen;
mod report;

use contenders::{Running, Setup};
use loadgen::LoadResult;
use std::io::{Read, Write};
use std::path::PathBuf;

/// The proxies under test run here; the origin and load generators on `LOAD_CPU`.
const PROXY_CPU: &str = "0";
const LOAD_CPU: &str = "1";
/// The fixed rate of the latency run (PixlProxy's published figure is at 500 req/s).
const LATENCY_RATE: u32 = 500;
/// Latency and closed-loop throughput are measured in rounds that visit every contender in
/// turn, and each figure's median round counts: a shared machine's speed drifts over seconds,
/// and interleaving spreads the drift over all contenders instead of handing it to whichever
/// ran at the wrong time.
const ROUNDS: usize = 8;

struct Options {
    smoke: bool,
    connections_only: bool,
    secs: u32,
    rounds: usize,
    bin_dir: PathBuf,
    out: PathBuf,
}

fn options() -> Options {
    let mut o = Options {
        smoke: false,
        connections_only: false,
        secs: 10,
        rounds: ROUNDS,
        bin_dir: PathBuf::from("target/release"),
        out: PathBuf::from("target/bench"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "--smoke" => {
                o.smoke = true;
                o.secs = 2;
                o.rounds = 1;
            }
            "--connections-only" => o.connections_only = true,
            "--secs" => o.secs = value().parse().unwrap_or(o.secs),
            "--rounds" => o.rounds = value().parse().unwrap_or(o.rounds).max(1),
            "--bin-dir" => o.bin_dir = PathBuf::from(value()),
            "--out" => o.out = PathBuf::from(value()),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    o
}

impl Options {
    /// Seconds per round: together the rounds take twice one measurement's time.
    fn round_secs(&self) -> u32 {
        match self.rounds {
            1 => self.secs,
            n => (self.secs * 2 / n as u32).max(1),
        }
    }
}

/// One contender's figures.
#[derive(Debug, Default)]
pub struct Row {
    pub name: String,
    pub latency: Option<LoadResult>,
    pub small: LoadResult,
    pub large: LoadResult,
    pub peak_rss_mib: Option<f64>,
    pub cpu_seconds: Option<f64>,
    pub stream_growth_mib: Option<f64>,
}

impl Row {
    pub fn errors(&self) -> u64 {
        self.latency.as_ref().map_or(0, |l| l.errors) + self.small.errors + self.large.errors
    }
}

/// Starts one proxy in front of the origin; `None` when it is not installed (nginx).
type StartProxy<'a> = dyn Fn() -> Option<Result<Running, String>> + 'a;

struct Tools {
    wrk: String,
    oha: Option<String>,
}

fn measure(
    tools: &Tools,
    o: &Options,
    name: &str,
    port: u16,
    proxy: Option<&Running>,
) -> Result<Row, String> {
    let url = format!("http://127.0.0.1:{port}/");
    let mut row = Row {
        name: name.to_string(),
        ..Row::default()
    };
    // Warm up: connections, pools, caches.
    loadgen::wrk(&tools.wrk, LOAD_CPU, &url, 64, 1)?;
    row.large = loadgen::wrk(&tools.wrk, LOAD_CPU, &format!("{url}1m"), 8, o.secs)?;
    if let Some(p) = proxy {
        if !o.smoke {
            let before = p.rss_mib();
            stream_one_gib(port)?;
            row.stream_growth_mib = Some(p.peak_rss_mib().max(p.rss_mib()) - before);
        }
    }
    eprintln!("  {name}: 1 MiB done, {} errors", row.errors());
    Ok(row)
}

/// Runs `load` against every contender in turn, `o.rounds` times: each contender's results.
fn interleaved(
    o: &Options,
    ports: &[u16],
    what: &str,
    load: impl Fn(&str) -> Result<LoadResult, String>,
) -> Result<Vec<Vec<LoadResult>>, String> {
    let mut runs: Vec<Vec<LoadResult>> = ports.iter().map(|_| Vec::new()).collect();
    for round in 1..=o.rounds {
        for (i, port) in ports.iter().enumerate() {
            runs[i].push(load(&format!("http://127.0.0.1:{port}/"))?);
        }
        eprintln!("  {what} round {round}/{} done", o.rounds);
    }
    Ok(runs)
}

/// The median of one figure over the rounds that have it.
fn median(results: &[LoadResult], figure: impl Fn(&LoadResult) -> Option<f64>) -> Option<f64> {
    let mut values: Vec<f64> = results.iter().filter_map(figure).collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Rounds combined: the median of each figure, the worst `max`, every request and error.
fn combined(results: &[LoadResult]) -> LoadResult {
    LoadResult {
        requests_per_sec: median(results, |r| Some(r.requests_per_sec)).unwrap_or(0.0),
        bytes_per_sec: median(results, |r| Some(r.bytes_per_sec)).unwrap_or(0.0),
        p50_ms: median(results, |r| r.p50_ms),
        p90_ms: median(results, |r| r.p90_ms),
        p99_ms: median(results, |r| r.p99_ms),
        max_ms: results.iter().filter_map(|r| r.max_ms).reduce(f64::max),
        requests: results.iter().map(|r| r.requests).sum(),
        errors: results.iter().map(|r| r.errors).sum(),
    }
}

/// Latency at a fixed rate and closed-loop throughput on 64 connections, each in `o.rounds`
/// interleaved rounds of `o.round_secs()`; every row gets the medians.
fn interleaved_runs(
    tools: &Tools,
    o: &Options,
    ports: &[u16],
    rows: &mut [Row],
) -> Result<(), String> {
    let secs = o.round_secs();
    if let Some(oha) = &tools.oha {
        let runs = interleaved(o, ports, "latency", |url| {
            loadgen::oha(oha, LOAD_CPU, url, LATENCY_RATE, secs)
        })?;
        for (row, results) in rows.iter_mut().zip(runs) {
            let p99s: Vec<String> = results
                .iter()
                .map(|r| format!("{:.3}", r.p99_ms.unwrap_or(0.0)))
                .collect();
            eprintln!("  {} p99 by round: {}", row.name, p99s.join(" "));
            row.latency = Some(combined(&results));
        }
    }
    let runs = interleaved(o, ports, "throughput", |url| {
        loadgen::wrk(&tools.wrk, LOAD_CPU, url, 64, secs)
    })?;
    for (row, results) in rows.iter_mut().zip(runs) {
        let each: Vec<String> = results
            .iter()
            .map(|r| format!("{:.0}", r.requests_per_sec))
            .collect();
        eprintln!("  {} req/s by round: {}", row.name, each.join(" "));
        row.small = combined(&results);
    }
    Ok(())
}

/// GET `/1g` through the contender and read all of it (the client keeps nothing).
fn stream_one_gib(port: u16) -> Result<(), String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /1g HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => return Err(format!("streaming 1 GiB: {e}")),
        }
    }
    if total < 1 << 30 {
        return Err(format!("streaming 1 GiB: only {total} bytes arrived"));
    }
    Ok(())
}

/// What the stages measured.
struct Results {
    rows: Vec<Row>,
    connections: connections::Outcome,
}

fn run(o: &Options, tools: Option<&Tools>, nofile: u64) -> Result<Results, String> {
    // Absolute: nginx resolves relative paths against its prefix.
    let work = std::path::absolute(o.out.join("work")).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let setup = Setup {
        bin_dir: o.bin_dir.clone(),
        work,
        nginx: loadgen::find("nginx"),
    };
    let origin = setup.origin(LOAD_CPU)?;
    eprintln!("origin: {} on port {}", origin.name, origin.port);
    let rows = match tools {
        Some(tools) => load_stages(o, tools, &setup, &origin)?,
        None => Vec::new(),
    };
    eprintln!("connection scale:");
    let scale = connections::Scale::new(o.smoke);
    let connections = connections::run(&setup, PROXY_CPU, LOAD_CPU, origin.port, scale, nofile)?;
    if let connections::Outcome::Skipped(why) = &connections {
        eprintln!("  skipped: {why}");
    }
    Ok(Results { rows, connections })
}

/// Latency, throughput, 1 MiB answers and memory of every contender, all running at once.
fn load_stages(
    o: &Options,
    tools: &Tools,
    setup: &Setup,
    origin: &Running,
) -> Result<Vec<Row>, String> {
    // Cluster mode's Redis shares the proxies' CPU, so its work counts against poolgate's.
    let redis = match setup.redis(PROXY_CPU) {
        Some(started) => Some(started?),
        None => {
            eprintln!("redis-server is not installed: the poolgate-cluster contender is skipped");
            None
        }
    };
    let redis_port = redis.as_ref().map(|r| r.port);
    let starts: Vec<Box<StartProxy>> = vec![
        Box::new(|| Some(setup.floor(PROXY_CPU, origin.port))),
        Box::new(|| Some(setup.poolgate(PROXY_CPU, origin.port, false))),
        Box::new(|| Some(setup.poolgate(PROXY_CPU, origin.port, true))),
        Box::new(|| redis_port.map(|r| setup.poolgate_cluster(PROXY_CPU, origin.port, r))),
        Box::new(|| setup.nginx_proxy(PROXY_CPU, origin.port)),
    ];
    // Every proxy runs from here to the end (idle while another is measured), so the
    // throughput rounds can visit them in turn.
    let mut proxies = Vec::new();
    for start in starts {
        if let Some(proxy) = start() {
            proxies.push(proxy?);
        }
    }
    let mut rows = vec![measure(tools, o, "direct", origin.port, None)?];
    for proxy in &proxies {
        rows.push(measure(tools, o, &proxy.name, proxy.port, Some(proxy))?);
    }
    let mut ports = vec![origin.port];
    ports.extend(proxies.iter().map(|p| p.port));
    interleaved_runs(tools, o, &ports, &mut rows)?;
    // Peak memory and CPU time over the whole run, the 64-connection rounds included.
    for (row, proxy) in rows[1..].iter_mut().zip(&proxies) {
        row.peak_rss_mib = Some(proxy.peak_rss_mib());
        row.cpu_seconds = Some(proxy.cpu_seconds());
    }
    // The proxies stop here, before the connection-scale stage starts fresh ones.
    Ok(rows)
}

fn main() {
    let o = options();
    // 10 000 client sockets here, and as many in each proxy (children inherit the limit).
    let nofile = match connections::raise_nofile(connections::NOFILE_WANTED) {
        Ok((soft, hard)) => {
            eprintln!("open files limit: {soft} (hard {hard})");
            soft
        }
        Err(e) => {
            eprintln!("open files limit: {e}");
            0
        }
    };
    let tools = match o.connections_only {
        true => None,
        false => {
            let Some(wrk) = loadgen::find("wrk") else {
                eprintln!("wrk is not installed: run benches/run.sh, which installs it");
                std::process::exit(1);
            };
            let oha = loadgen::find("oha");
            if oha.is_none() {
                eprintln!("oha is not installed: the fixed-rate latency run is skipped");
            }
            Some(Tools { wrk, oha })
        }
    };
    let Results { rows, connections } = match run(&o, tools.as_ref(), nofile) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    };
    let scale = connections::Scale::new(o.smoke);
    let mut table = String::new();
    if !rows.is_empty() {
        table = report::markdown(&rows, o.secs, o.rounds, o.round_secs());
        table.push('\n');
    }
    table.push_str(&report::connections_markdown(&connections, scale));
    println!("{table}");
    if let Err(e) = report::write(&o.out, &table, &rows, &connections, scale) {
        eprintln!("writing results: {e}");
    }
    let mut errors: u64 = rows.iter().map(Row::errors).sum();
    if let connections::Outcome::Ran(conn_rows) = &connections {
        errors += conn_rows.iter().map(|r| r.errors).sum::<u64>();
    }
    if errors > 0 {
        eprintln!("{errors} requests failed");
        std::process::exit(1);
    }
}
