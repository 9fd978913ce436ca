//! The results as markdown tables (with the ratios the targets are stated in) and as JSON
//! lines, one per contender and stage.

use crate::connections::{ConnRow, Outcome, Scale, IN_FLIGHT};
use crate::Row;
use std::fmt::Write;
use std::path::Path;

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

pub fn markdown(rows: &[Row], secs: u32, rounds: usize, round_secs: u32) -> String {
    let direct = rows.iter().find(|r| r.name == "direct");
    let lat = |r: &Row, f: fn(&crate::LoadResult) -> Option<f64>| r.latency.as_ref().and_then(f);
    let added =
        |r: &Row, f: fn(&crate::LoadResult) -> Option<f64>| Some(lat(r, f)? - lat(direct?, f)?);
    let mut t = String::new();
    let _ = writeln!(t, "| contender | added p50 ms | added p99 ms | p50 / p90 / p99 / max ms at 500 req/s | req/s, 64 conns | 1 MiB answers, MiB/s | peak RSS MiB | CPU s | RSS growth over a 1 GiB stream, MiB | errors |");
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let l = r.latency.as_ref();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} / {} / {} / {} | {:.0} | {:.0} | {} | {} | {} | {} |",
            r.name,
            ms(added(r, |l| l.p50_ms)),
            ms(added(r, |l| l.p99_ms)),
            ms(l.and_then(|l| l.p50_ms)),
            ms(l.and_then(|l| l.p90_ms)),
            ms(l.and_then(|l| l.p99_ms)),
            ms(l.and_then(|l| l.max_ms)),
            r.small.requests_per_sec,
            r.large.bytes_per_sec / (1024.0 * 1024.0),
            num(r.peak_rss_mib, 1),
            num(r.cpu_seconds, 1),
            num(r.stream_growth_mib, 1),
            r.errors(),
        );
    }
    let _ = writeln!(
        t,
        "\n1 MiB: {secs} s per contender. Latency (500 req/s) and req/s: the median of {rounds} interleaved rounds of {round_secs} s (max: the worst round). Ratios to the minimal Pingora proxy (same run):\n"
    );
    let floor = rows.iter().find(|r| r.name == "pingora floor");
    for name in ["poolgate", "poolgate-20", "nginx"] {
        let (Some(r), Some(f)) = (rows.iter().find(|r| r.name == name), floor) else {
            continue;
        };
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let _ = writeln!(
            t,
            "- {name}: throughput × {:.3}, 1 MiB × {:.3}, added p50 {} ms, added p99 {} ms vs the floor's {} / {} ms",
            ratio(r.small.requests_per_sec, f.small.requests_per_sec),
            ratio(r.large.bytes_per_sec, f.large.bytes_per_sec),
            ms(added(r, |l| l.p50_ms)),
            ms(added(r, |l| l.p99_ms)),
            ms(added(f, |l| l.p50_ms)),
            ms(added(f, |l| l.p99_ms)),
        );
    }
    t
}

/// `10000` -> `10 000`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut s = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(' ');
        }
        s.push(c);
    }
    s
}

/// The connection-scale stage's table, or the line saying why it was skipped.
pub fn connections_markdown(outcome: &Outcome, scale: Scale) -> String {
    let (small, large) = (grouped(scale.small), grouped(scale.large));
    let rows = match outcome {
        Outcome::Skipped(why) => return format!("Connection scale: skipped: {why}\n"),
        Outcome::Ran(rows) => rows,
    };
    let mut t = String::new();
    let _ = writeln!(t, "| contender | RSS base MiB | RSS @{small} MiB | RSS @{large} MiB | KiB per idle connection (slope) | {large} requests on {large} open connections: total s / mean ms / max ms | proxy CPU µs per request | errors |");
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|");
    for r in rows {
        let (served, cpu) = match r.served {
            0 => ("–".to_string(), "–".to_string()),
            _ => (
                format!(
                    "{:.2} / {:.3} / {:.1}",
                    r.serve_total_s, r.serve_mean_ms, r.serve_max_ms
                ),
                format!("{:.0}", r.serve_cpu_us),
            ),
        };
        let _ = writeln!(
            t,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            r.name,
            r.base_large_mib,
            r.rss_small_mib,
            r.rss_large_mib,
            r.kib_per_connection(scale),
            served,
            cpu,
            r.errors,
        );
    }
    let _ = writeln!(
        t,
        "\nA fresh proxy process per count (RSS base: the {large} one's, before any connection); {small} or {large} keep-alive connections, one GET `/` each, left idle; VmRSS read {SETTLE_MS} ms after the last answer. Slope: (RSS@{large} − RSS@{small}) / {}. Then one more GET on each of the {large} open connections, {IN_FLIGHT} in flight ({IN_FLIGHT} client tasks, each taking every {IN_FLIGHT}th connection in turn); mean and max: one request's latency; proxy CPU: its user + system time over those requests (10 ms ticks), per request. Client: one thread on the load CPU, the proxy on the other.",
        grouped(scale.large - scale.small),
        SETTLE_MS = 500,
    );
    for r in rows {
        if let Some(e) = &r.first_error {
            let _ = writeln!(t, "- {}: {} failed, the first: {e}", r.name, r.errors);
        }
    }
    t
}

fn connections_json(r: &ConnRow, scale: Scale) -> serde_json::Value {
    serde_json::json!({
        "stage": "connections",
        "contender": r.name,
        "connections_small": scale.small,
        "connections_large": scale.large,
        "rss_base_small_mib": r.base_small_mib,
        "rss_base_large_mib": r.base_large_mib,
        "rss_small_mib": r.rss_small_mib,
        "rss_large_mib": r.rss_large_mib,
        "kib_per_idle_connection": r.kib_per_connection(scale),
        "requests_on_open_connections": r.served,
        "in_flight": IN_FLIGHT,
        "serve_total_s": r.serve_total_s,
        "serve_mean_ms": r.serve_mean_ms,
        "serve_max_ms": r.serve_max_ms,
        "serve_proxy_cpu_us_per_request": r.serve_cpu_us,
        "errors": r.errors,
        "first_error": r.first_error,
    })
}

pub fn write(
    out: &Path,
    table: &str,
    rows: &[Row],
    connections: &Outcome,
    scale: Scale,
) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("results.md"), table)?;
    let mut lines = String::new();
    for r in rows {
        let l = r.latency.as_ref();
        let line = serde_json::json!({
            "contender": r.name,
            "p50_ms": l.and_then(|l| l.p50_ms),
            "p90_ms": l.and_then(|l| l.p90_ms),
            "p99_ms": l.and_then(|l| l.p99_ms),
            "max_ms": l.and_then(|l| l.max_ms),
            "rps_64": r.small.requests_per_sec,
            "mib_per_sec_1m": r.large.bytes_per_sec / (1024.0 * 1024.0),
            "peak_rss_mib": r.peak_rss_mib,
            "cpu_seconds": r.cpu_seconds,
            "stream_1g_rss_growth_mib": r.stream_growth_mib,
            "errors": r.errors(),
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    if let Outcome::Ran(conn_rows) = connections {
        for r in conn_rows {
            lines.push_str(&connections_json(r, scale).to_string());
            lines.push('\n');
        }
    }
    std::fs::write(out.join("results.jsonl"), lines)
}
