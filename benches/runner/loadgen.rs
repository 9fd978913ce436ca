//! The load generators: `wrk` (closed loop, Debian's package) for throughput, `oha` (open loop
//! at a fixed rate, latency corrected for coordinated omission) for latency. Both run pinned
//! to the load CPU; their output is parsed here.

use std::process::Command;

/// What one load run measured.
#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    pub requests_per_sec: f64,
    /// Bytes per second read by the client (bodies and headers).
    pub bytes_per_sec: f64,
    /// Latency percentiles in ms (oha only).
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub requests: u64,
    /// Non-2xx answers plus socket errors.
    pub errors: u64,
}

pub fn find(tool: &str) -> Option<String> {
    let local = format!("target/bench-tools/bin/{tool}");
    if std::path::Path::new(&local).is_file() {
        return Some(local);
    }
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    (!path.is_empty()).then_some(path)
}

/// Closed loop: `connections` keep-alive connections, one thread, `secs` seconds.
pub fn wrk(
    wrk: &str,
    cpu: &str,
    url: &str,
    connections: u32,
    secs: u32,
) -> Result<LoadResult, String> {
    let out = Command::new("taskset")
        .args(["-c", cpu, wrk, "-t1", &format!("-c{connections}")])
        .args([&format!("-d{secs}s"), "--timeout", "10s", url])
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(parse_wrk(&text))
}

fn parse_wrk(text: &str) -> LoadResult {
    let mut r = LoadResult::default();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("Transfer/sec:") {
            r.bytes_per_sec = parse_size(v.trim());
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            r.errors += v
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if line.contains("requests in") {
            r.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    r
}

/// `12.34MB` -> bytes.
fn parse_size(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().unwrap_or(0.0);
    n * match unit {
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    }
}

/// Open loop: `rate` requests per second for `secs` seconds, latency measured from when each
/// request was due (coordinated omission corrected).
pub fn oha(oha: &str, cpu: &str, url: &str, rate: u32, secs: u32) -> Result<LoadResult, String> {
    let out = Command::new("taskset")
        .args([
            "-c",
            cpu,
            oha,
            "--no-tui",
            "--output-format",
            "json",
            "--latency-correction",
        ])
        .args([
            "-q",
            &rate.to_string(),
            "-c",
            "16",
            "-z",
            &format!("{secs}s"),
            "--wait-ongoing-requests-after-deadline",
            url,
        ])
        .output()
        .map_err(|e| format!("oha: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "oha failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_oha(&text)
}

fn parse_oha(text: &str) -> Result<LoadResult, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("oha output is not JSON: {e}"))?;
    let ms = |x: &serde_json::Value| x.as_f64().map(|s| s * 1000.0);
    let pct = &v["latencyPercentiles"];
    let codes = v["statusCodeDistribution"].as_object();
    let ok: u64 = codes
        .map(|m| {
            m.iter()
                .filter(|(code, _)| code.starts_with('2'))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    let all: u64 = codes
        .map(|m| m.values().filter_map(|n| n.as_u64()).sum())
        .unwrap_or(0);
    let socket_errors: u64 = v["errorDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(|n| n.as_u64()).sum())
        .unwrap_or(0);
    Ok(LoadResult {
        requests_per_sec: v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        bytes_per_sec: v["summary"]["sizePerSec"].as_f64().unwrap_or(0.0),
        p50_ms: ms(&pct["p50"]),
        p90_ms: ms(&pct["p90"]),
        p99_ms: ms(&pct["p99"]),
        max_ms: ms(&v["summary"]["slowest"]),
        requests: all + socket_errors,
        errors: all - ok + socket_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 2s test @ http://127.0.0.1:1/\n  1 threads and 64 connections\n  45000 requests in 2.00s, 6.44MB read\n  Non-2xx or 3xx responses: 3\n  Socket errors: connect 0, read 2, write 0, timeout 1\nRequests/sec:  22500.12\nTransfer/sec:      3.22MB\n";
        let r = parse_wrk(text);
        assert_eq!(r.requests, 45000);
        assert_eq!(r.errors, 6);
        assert!((r.requests_per_sec - 22500.12).abs() < 0.01);
        assert!((r.bytes_per_sec - 3.22 * 1024.0 * 1024.0).abs() < 1.0);
    }
}
