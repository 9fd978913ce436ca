//! The results as a markdown table (with the ratios the targets are stated in) and as JSON
//! lines, one per contender.

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

pub fn write(out: &Path, table: &str, rows: &[Row]) -> std::io::Result<()> {
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
    std::fs::write(out.join("results.jsonl"), lines)
}
