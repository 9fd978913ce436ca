//! The stats live page (`?html=1`) in a real browser: headless Chromium loads it, lets it poll
//! the JSON API for a few (virtual) seconds, and the resulting DOM shows the pool and its charts.

use crate::harness::{client, Poolgate};
use crate::origin;
use std::process::Command;
use std::time::Duration;

fn chromium() -> String {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {candidate}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return candidate.to_string();
        }
    }
    panic!("the live-page test needs Chromium: run `bash deploy/test-deps.sh`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_draws_every_pool_in_headless_chromium() {
    let browser = chromium();
    let o = origin::http();
    let config = format!(
        "threads: 2\nshutdown_timeout_sec: 1\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\nPixlProxy:\n  stats_uri_match: '^/proxy-stats'\n  pools:\n    api: {{target_hostname: 127.0.0.1, target_port: {0}, uri_match: '^/api'}}\n    default: {{target_hostname: 127.0.0.1, target_port: {0}}}\n",
        o.port()
    );
    let pg = Poolgate::start(&config);
    // Traffic while the page polls, so the charts have something to draw.
    let url = pg.url("/api/x");
    let traffic = tokio::spawn(async move {
        let c = client();
        for _ in 0..100 {
            let _ = c.get(&url).send().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let profile = tempfile::tempdir().expect("profile dir");
    let page = pg.url("/proxy-stats?html=1");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("90")
            .arg(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--dump-dom", &page])
            .output()
            .expect("run chromium")
    })
    .await
    .expect("chromium task");
    traffic.abort();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains(r#"data-pool="api""#) && dom.contains(r#"data-pool="default""#),
        "pools not shown:\n{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: u32 = dom
        .split("data-samples=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(samples >= 2, "the page polled {samples} times:\n{dom}");
    assert!(
        dom.contains("class=\"rate\"") && dom.contains("data-points=\""),
        "{dom}"
    );
    assert!(dom.contains("poolgate "), "{dom}");
}
