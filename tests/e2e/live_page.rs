//! The stats live page (`?html=1`) in a real browser: headless Chromium loads it against a
//! running poolgate with two pools, one with a target that is down (health checks on) and one
//! under load, and the rendered DOM shows the down target, the loaded pool's figures and its
//! server-side history; a net log shows that the page asked nothing of anyone but poolgate;
//! screenshots at 1280 px and at phone width are saved under `target/` for people to look at.

use crate::browser::{self, Run};
use crate::harness::{client, free_port, Poolgate};
use crate::origin;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The number in `attr="N"` of the first element whose tag text contains `anchor`.
fn number_after(dom: &str, anchor: &str, attr: &str) -> Option<f64> {
    let from = dom.find(anchor)?;
    let tail = &dom[from..];
    let at = tail.find(&format!("{attr}=\""))? + attr.len() + 2;
    tail[at..].split('"').next()?.parse().ok()
}

/// Where the screenshots go: `target/` (beside the build's own `tmp`).
fn screenshot_path(name: &str) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map_or(tmp.clone(), |t| t.to_path_buf())
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_a_down_target_and_a_loaded_pools_history_and_asks_only_poolgate() {
    let o = origin::http();
    let dead = free_port();
    let config = format!(
        "threads: 2\nshutdown_timeout_sec: 1\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\n  http_max_connections: 500\nPixlProxy:\n  stats_uri_match: '^/proxy-stats'\n  pools:\n    checked:\n      uri_match: '^/checked'\n      targets: ['127.0.0.1:{o}', '127.0.0.1:{dead}']\n      health_check: {{type: tcp, interval_ms: 200, timeout_ms: 500, healthy_threshold: 1, unhealthy_threshold: 1}}\n    busy:\n      uri_match: '^/busy'\n      target_hostname: 127.0.0.1\n      target_port: {o}\n      max_concurrent_requests: 50\n",
        o = o.port()
    );
    let pg = Poolgate::start(&config);
    // Load on `busy` until the browser is done: two clients, one request after the other.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (url, stop) = (pg.url("/busy/item"), stop.clone());
            tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    let _ = c.get(&url).send().await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    // Until the server's own figures show the dead target down and a few seconds of history.
    let stats_url = pg.url("/proxy-stats");
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = serde_json::Value::Null;
    let ready = loop {
        if let Ok(resp) = c.get(&stats_url).send().await {
            last = resp.json().await.unwrap_or_default();
        }
        let down = last["pools"]["checked"]["targets"][1]["health"] == "down";
        let history = last["pools"]["busy"]["history"]["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let busy = history.iter().filter(|n| n.as_u64() > Some(0)).count();
        if down && busy >= 3 {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ready, "no down target or history in the stats:\n{last:#}");

    let page = pg.url("/proxy-stats?html=1");
    let net_log_dir = tempfile::tempdir().expect("net log dir");
    let net_log = net_log_dir.path().join("net.json");
    let (page_url, log_path) = (page.clone(), net_log.clone());
    let out = tokio::task::spawn_blocking(move || {
        let what = Run::DumpDom {
            virtual_ms: 4000,
            net_log: Some(&log_path),
        };
        browser::run(&page_url, what)
    })
    .await
    .expect("chromium task");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();

    // The failing target is shown down, in words as well as colour.
    let dead_row = format!(r#"data-target="http://127.0.0.1:{dead}" data-health="down""#);
    let row_at = dom.find(&dead_row);
    assert!(
        row_at.is_some(),
        "the dead target is not shown down:\n{dom}\n{stderr}"
    );
    let row = &dom[row_at.unwrap_or(0)..];
    let row = &row[..row.find("</tr>").unwrap_or(row.len())];
    assert!(row.contains("✖ down"), "{row}");
    assert!(dom.contains(r#"data-pool="checked""#), "{dom}");
    let verdict = &dom[dom.find(r#"id="verdict""#).unwrap_or(0)..];
    assert!(
        verdict[..verdict.find("</div>").unwrap_or(0)].contains("checked: 1 of 2 targets down"),
        "{verdict}"
    );
    // The loaded pool's figures are non-zero and its history has points.
    let requests = number_after(&dom, r#"data-pool="busy""#, "data-requests-5min");
    assert!(
        requests.is_some_and(|n| n > 0.0),
        "busy: {requests:?}\n{dom}"
    );
    let details = r#"data-details="busy""#;
    let points = number_after(&dom, details, "data-points");
    let peak = number_after(&dom, details, "data-max");
    assert!(
        points.is_some_and(|n| n >= 3.0),
        "history points {points:?}\n{dom}"
    );
    assert!(peak.is_some_and(|n| n > 0.0), "history peak {peak:?}");
    let samples = number_after(&dom, "<body", "data-samples").unwrap_or(0.0);
    assert!(samples >= 2.0, "the page polled {samples} times");

    // The page asked nothing of anyone but poolgate, and names no other origin.
    let origin = format!("http://127.0.0.1:{}", pg.port);
    let log = std::fs::read_to_string(&net_log).expect("net log");
    let asked = browser::page_requests(&log, &origin);
    let own = format!("{origin}/");
    let elsewhere: Vec<_> = asked.iter().filter(|u| !u.starts_with(&own)).collect();
    assert!(elsewhere.is_empty(), "the page asked {elsewhere:?}");
    let polls = asked.iter().filter(|u| u.ends_with("/proxy-stats")).count();
    assert!(polls >= 2, "the page's requests: {asked:?}");
    let resp = c.get(&page).send().await.expect("page");
    let policy = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    let source = resp.text().await.expect("page source");
    for external in ["http://", "https://", "src=", "url("] {
        assert!(
            !source.contains(external),
            "the page source holds {external}"
        );
    }

    // Screenshots for people to look at (`target/dashboard.png`, `target/dashboard-phone.png`).
    for (name, width, height) in [
        ("dashboard.png", 1280, 900),
        ("dashboard-phone.png", 390, 1400),
    ] {
        let to = screenshot_path(name);
        let _ = std::fs::remove_file(&to);
        let (page_url, path) = (page.clone(), to.clone());
        let shot = tokio::task::spawn_blocking(move || {
            let what = Run::Screenshot {
                virtual_ms: 3000,
                width,
                height,
                to: &path,
            };
            browser::run(&page_url, what)
        })
        .await
        .expect("chromium task");
        let png = std::fs::read(&to).unwrap_or_default();
        assert!(
            png.starts_with(b"\x89PNG"),
            "no screenshot at {}: {}",
            to.display(),
            String::from_utf8_lossy(&shot.stderr)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        let _ = task.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_draws_every_pool_in_headless_chromium() {
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
    let page = pg.url("/proxy-stats?html=1");
    let out = tokio::task::spawn_blocking(move || {
        let what = Run::DumpDom {
            virtual_ms: 5000,
            net_log: None,
        };
        browser::run(&page, what)
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
    let samples = number_after(&dom, "<body", "data-samples").unwrap_or(0.0);
    assert!(samples >= 2.0, "the page polled {samples} times:\n{dom}");
    assert!(
        dom.contains(r#"data-series="requests""#) && dom.contains("data-points=\""),
        "{dom}"
    );
    // Two pools without problems: the verdict says so, with its icon.
    assert!(dom.contains("✔ No problems: 2 pools"), "{dom}");
    assert!(dom.contains("poolgate "), "{dom}");
}
