//! Who the client is (`WebServer.http_public_ip_offset`, pixl-server-web's `args.ip` and
//! `args.ips`): the address chosen from the proxy headers and the socket counts for the
//! per-client limits (`max_requests_per_min_per_ip`) and shows in the web log and the stats;
//! the stats ACL (`http_default_acl`) checks every address of the chain; the back end's
//! `X-Forwarded-For` (`append_to_x_forwarded_for`) still ends with the socket peer.

use crate::harness::{client, run_cli, Poolgate};
use crate::origin;
use crate::{config, config_with, described, seen};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn pool(origin_port: u16, extra: &str) -> String {
    format!("{{default: {{target_hostname: 127.0.0.1, target_port: {origin_port}, {extra}}}}}")
}

/// Sleep until the next wall-clock minute starts if less than `leave_at_least` is left of
/// this one, so a per-minute window cannot roll over mid-test.
async fn align_to_minute(leave_at_least: Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    let left = Duration::from_secs(60) - into;
    if left < leave_at_least {
        tokio::time::sleep(left + Duration::from_millis(20)).await;
    }
}

/// A client that keeps its one connection to poolgate, so every request shares a socket.
fn one_socket_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The event log's text (`$DIR/event.log`).
fn event_log(pg: &Poolgate) -> String {
    std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_client_limit_counts_two_clients_behind_one_socket_by_their_forwarded_address() {
    let o = origin::http();
    let pg = Poolgate::start(&config(&pool(o.port(), "max_requests_per_min_per_ip: 2")));
    let c = one_socket_client();
    align_to_minute(Duration::from_secs(20)).await;
    let mut statuses = Vec::new();
    for xff in [
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.1",
        "203.0.113.2",
    ] {
        let resp = c
            .get(pg.url("/x"))
            .header("X-Forwarded-For", xff)
            .send()
            .await
            .expect("send");
        statuses.push(resp.status().as_u16());
        let _ = resp.bytes().await;
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    // The socket's own address is a third client with its own window.
    let direct = c.get(pg.url("/x")).send().await.expect("send");
    assert_eq!(direct.status(), 200);
    assert!(pg.wait_for_log("max_requests_per_min_per_ip limit (2)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_log_shows_the_first_public_address_and_the_whole_chain() {
    let o = origin::http();
    let web = "  http_log_requests: true\n";
    let pg = Poolgate::start(&config_with(web, &pool(o.port(), "")));
    let resp = client()
        .get(pg.url("/logged"))
        .header(
            "X-Forwarded-For",
            "10.0.0.5, unknown,  203.0.113.7 , 198.51.100.1",
        )
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let want = r#""ip":"203.0.113.7","ips":["10.0.0.5","unknown","203.0.113.7","198.51.100.1","127.0.0.1"]"#;
    assert!(pg.wait_for_event_log(want), "{}", event_log(&pg));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_offset_counts_from_the_socket_end_of_the_chain() {
    let o = origin::http();
    let web = "  http_log_requests: true\n  http_public_ip_offset: -2\n";
    let pg = Poolgate::start(&config_with(web, &pool(o.port(), "")));
    let c = client();
    let resp = c
        .get(pg.url("/behind-one-proxy"))
        .header("X-Forwarded-For", "198.51.100.1, 203.0.113.7")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let want = r#""ip":"203.0.113.7","ips":["198.51.100.1","203.0.113.7","127.0.0.1"]"#;
    assert!(pg.wait_for_event_log(want), "{}", event_log(&pg));
    // With no proxy header the chain is the socket alone: past its start, the first address.
    let resp = c.get(pg.url("/direct")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    assert!(pg.wait_for_event_log("[/direct]"), "{}", event_log(&pg));
    let text = event_log(&pg);
    let line = text.lines().find(|l| l.contains("[/direct]"));
    let want = r#""ip":"127.0.0.1","ips":["127.0.0.1"]"#;
    assert!(line.is_some_and(|l| l.contains(want)), "{text}");
}

fn stats_config(origin_port: u16) -> String {
    format!(
        "threads: 2\nshutdown_timeout_sec: 1\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\n  http_default_acl: ['127.0.0.1', '10.0.0.0/8']\nPixlProxy:\n  stats_uri_match: '^/proxy-stats'\n  pools: {}\n",
        pool(origin_port, "")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_api_needs_every_address_of_the_chain_in_the_acl() {
    let o = origin::http();
    let pg = Poolgate::start(&stats_config(o.port()));
    let c = client();
    let get = |xff: Option<&'static str>| {
        let mut req = c.get(pg.url("/proxy-stats"));
        if let Some(xff) = xff {
            req = req.header("X-Forwarded-For", xff);
        }
        req.send()
    };
    assert_eq!(get(None).await.expect("send").status(), 200);
    let outside = get(Some("10.1.2.3, 8.8.8.8")).await.expect("send");
    assert_eq!(outside.status(), 403);
    assert!(pg.wait_for_log("stats: refused 8.8.8.8 (ips: 10.1.2.3, 8.8.8.8, 127.0.0.1)"));
    let garbage = get(Some("10.1.2.3, unknown")).await.expect("send");
    assert_eq!(garbage.status(), 403);
    let other_header = c
        .get(pg.url("/proxy-stats"))
        .header("X-Real-IP", "8.8.4.4")
        .send()
        .await
        .expect("send");
    assert_eq!(other_header.status(), 403);
    let refused = serde_json::json!(["10.1.2.3", "8.8.8.8", "127.0.0.1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let inside = get(Some("10.1.2.3, 10.4.5.6")).await.expect("send");
        assert_eq!(inside.status(), 200);
        let doc: serde_json::Value = inside.json().await.expect("json");
        // The stats request itself is in progress while the document is written.
        let sockets = doc["web"]["sockets"].as_object().expect("sockets");
        let mine = sockets
            .values()
            .find(|s| s["state"] == "processing" && s["uri"] == "/proxy-stats")
            .expect("the request in progress");
        assert_eq!(mine["ip"], "127.0.0.1");
        assert_eq!(
            mine["ips"],
            serde_json::json!(["10.1.2.3", "10.4.5.6", "127.0.0.1"])
        );
        // The refused request is among the recent ones (once its end is recorded), with its
        // chain.
        let recent = doc["web"]["recent"].as_array().expect("recent");
        if recent
            .iter()
            .any(|r| r["code"] == 403 && r["ips"] == refused)
        {
            break;
        }
        assert!(Instant::now() < deadline, "{recent:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_back_end_still_sees_the_socket_peer_appended_to_x_forwarded_for() {
    let o = origin::http();
    let web = "  http_public_ip_offset: 0\n";
    let pg = Poolgate::start(&config_with(web, &pool(o.port(), "")));
    let resp = client()
        .get(pg.url("/echo"))
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .expect("send");
    let desc = described(resp).await;
    assert_eq!(
        seen(&desc, "x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
}

#[test]
fn check_accepts_http_public_ip_offset_without_a_warning_and_bounds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, offset: &str| {
        let path = dir.path().join(name);
        let text = format!("WebServer:\n  http_public_ip_offset: {offset}\nPixlProxy:\n  pools:\n    api:\n      target_hostname: 127.0.0.1\n");
        std::fs::write(&path, text).expect("write config");
        path.display().to_string()
    };
    let fine = write("fine.yaml", "-2");
    let (code, out) = run_cli(&["check", "--config", &fine], &[], None);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("http_public_ip_offset"), "{out}");
    let wild = write("wild.yaml", "1000");
    let (code, out) = run_cli(&["check", "--config", &wild], &[], None);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("WebServer.http_public_ip_offset: must be -255 to 255"),
        "{out}"
    );
}
