//! Headless Chromium for the live page's tests: load a page and dump its DOM (optionally with
//! a net log of every request the browser made), or save a screenshot. Each run has its own
//! empty profile, is bounded by `timeout`, and leaves no process behind.

use std::path::Path;
use std::process::{Command, Output};

/// The Chromium binary (installed by `deploy/test-deps.sh`).
pub fn chromium() -> String {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {candidate}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return candidate.to_string();
        }
    }
    panic!("the live-page tests need Chromium: run `bash deploy/test-deps.sh`");
}

/// What one run does besides loading the page.
pub enum Run<'a> {
    /// Print the DOM after the page ran for `virtual_ms` of virtual time; with a net log
    /// written to the path given.
    DumpDom {
        virtual_ms: u32,
        net_log: Option<&'a Path>,
    },
    /// Save a PNG of a `width` × `height` window.
    Screenshot {
        virtual_ms: u32,
        width: u32,
        height: u32,
        to: &'a Path,
    },
}

/// Run Chromium once on `url` (at most 90 s); blocking, so call it from `spawn_blocking`.
pub fn run(url: &str, what: Run<'_>) -> Output {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = Command::new("timeout");
    cmd.arg("90").arg(chromium()).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.path().display()));
    match what {
        Run::DumpDom {
            virtual_ms,
            net_log,
        } => {
            cmd.arg(format!("--virtual-time-budget={virtual_ms}"));
            if let Some(path) = net_log {
                cmd.arg(format!("--log-net-log={}", path.display()));
            }
            cmd.arg("--dump-dom");
        }
        Run::Screenshot {
            virtual_ms,
            width,
            height,
            to,
        } => {
            cmd.arg(format!("--virtual-time-budget={virtual_ms}"));
            cmd.arg(format!("--window-size={width},{height}"));
            cmd.arg(format!("--screenshot={}", to.display()));
        }
    }
    cmd.arg(url).output().expect("run chromium")
}

/// The URLs of the requests a net log shows the page itself starting (the document and what
/// its script or markup asked for), leaving out Chromium's own background requests, whose
/// initiator is not an origin.
pub fn page_requests(net_log: &str, page_origin: &str) -> Vec<String> {
    // A log cut short (the browser killed) lacks its closing brackets.
    let doc: serde_json::Value = serde_json::from_str(net_log)
        .or_else(|_| {
            serde_json::from_str(&format!("{}]}}", net_log.trim_end().trim_end_matches(',')))
        })
        .expect("net log JSON");
    let start_job = doc["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].as_u64();
    let events = doc["events"].as_array().cloned().unwrap_or_default();
    events
        .iter()
        .filter(|e| e["type"].as_u64() == start_job)
        .filter(|e| {
            let p = &e["params"];
            p["initiator"] == page_origin || p["request_type"] == "main frame"
        })
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
        .collect()
}
