//! The blind queue (`use_queue`): immediate JSON answers, background sends within the pool's
//! limits and retries, the durable journal across `kill -9`, torn writes and shutdown.

use crate::harness::{client, free_port, Poolgate};
use crate::origin::{self, checksum, Origin};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// A config whose `default` pool queues everything for the origin on `port`.
fn queue_config(port: u16, extra: &str, top: &str) -> String {
    format!(
        "threads: 2\nshutdown_timeout_sec: 1\n{top}WebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\n  http_temp_dir: $DIR/tmp\nPixlProxy:\n  pools:\n    default: {{target_hostname: 127.0.0.1, target_port: {port}, use_queue: true, {extra}}}\n"
    )
}

/// Queue one request and return its `request_id` (asserting the answer's shape).
async fn enqueue(c: &reqwest::Client, pg: &Poolgate, path: &str, body: Vec<u8>) -> String {
    let resp = c
        .post(pg.url(path))
        .header("X-Custom", "kept")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let json: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(json["code"], 0);
    assert_eq!(json["description"], "Proxy request enqueued successfully.");
    let id = json["request_id"].as_str().expect("request_id").to_string();
    assert!(
        id.len() == 64
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    id
}

/// The request ids the origin has seen, with repeats.
fn ids_seen(o: &Origin) -> Vec<String> {
    o.arrivals().into_iter().filter_map(|(_, id)| id).collect()
}

fn has_all(o: &Origin, ids: &HashSet<String>) -> bool {
    ids_seen(o)
        .into_iter()
        .collect::<HashSet<_>>()
        .is_superset(ids)
}

#[tokio::test]
async fn queued_requests_are_answered_at_once_and_reach_the_back_end_intact() {
    let o = origin::http();
    let pg = Poolgate::start(&queue_config(o.port(), "queue_spool_bytes: 1000", ""));
    let c = client();
    let small = b"small body \x00\xff".to_vec();
    let large: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let a = enqueue(&c, &pg, "/describe?x=1", small.clone()).await;
    let b = enqueue(&c, &pg, "/describe/large", large.clone()).await;
    assert_ne!(a, b, "ids are unique");
    assert!(o.wait_until(Duration::from_secs(10), |o| o.described().len() == 2));
    let described = o.described();
    for (id, uri, body) in [
        (&a, "/describe?x=1", &small),
        (&b, "/describe/large", &large),
    ] {
        let d = described
            .iter()
            .find(|d| d["headers"]["x-proxy-request-id"] == id.as_str())
            .expect("request seen by the back end");
        assert_eq!(d["method"], "POST");
        assert_eq!(d["uri"], uri);
        assert_eq!(d["headers"]["x-custom"], "kept");
        assert_eq!(d["headers"]["x-forwarded-for"], "127.0.0.1");
        assert_eq!(d["body_len"], body.len() as u64);
        assert_eq!(d["body_sum"], checksum(body));
    }
    // The large body went through a spool file, removed once sent.
    let spool = pg.dir().join("tmp");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::fs::read_dir(&spool).map_or(0, |d| d.count()) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "spool file left behind"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_full_queue_answers_429_in_json_and_logs_it() {
    let o = origin::http();
    let extra = "max_queue_length: 2, max_concurrent_requests: 1";
    let pg = Poolgate::start(&queue_config(o.port(), extra, ""));
    let c = client();
    enqueue(&c, &pg, "/slow/3000", vec![]).await;
    assert!(o.wait_until(Duration::from_secs(10), |o| o.requests() == 1));
    enqueue(&c, &pg, "/slow/3000", vec![]).await;
    enqueue(&c, &pg, "/slow/3000", vec![]).await;
    let resp = c.post(pg.url("/slow/3000")).send().await.expect("send");
    assert_eq!(resp.status(), 429);
    let json: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(
        json["description"],
        "Proxy queue is full: 2 requests pending"
    );
    assert!(pg.wait_for_log("Proxy queue is full: 2 requests pending"));
    // The event log's error line, with PixlProxy's data.
    let expected = r#"[default][error][429][Proxy queue is full: 2 requests pending][{"uri":"/slow/3000","method":"POST","req_headers":{"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let event_log = || std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default();
    while !event_log().contains(expected) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(event_log().contains(expected), "{}", event_log());
}

#[tokio::test]
async fn queued_sends_keep_to_the_rate_limit() {
    let o = origin::http();
    let extra = "max_requests_per_sec: 5, throttle_requeue_delay_ms: 20";
    let pg = Poolgate::start(&queue_config(o.port(), extra, ""));
    let c = client();
    for _ in 0..15 {
        enqueue(&c, &pg, "/", vec![]).await;
    }
    assert!(o.wait_until(Duration::from_secs(20), |o| o.requests() == 15));
    let times: Vec<u64> = o.arrivals().iter().map(|(t, _)| *t).collect();
    let span = times.iter().max().unwrap() - times.iter().min().unwrap();
    // 15 sends at 5 a second take three distinct seconds: over one second from first to last.
    assert!(span >= 1000, "15 sends within {span} ms");
    let mut per_second = std::collections::HashMap::new();
    for t in &times {
        *per_second.entry(t / 1000).or_insert(0) += 1;
    }
    // 5 per poolgate second; one more may cross into the origin's next second in transit.
    assert!(per_second.values().all(|n| *n <= 6), "{per_second:?}");
}

#[tokio::test]
async fn queued_sends_keep_to_the_concurrency_limit() {
    let o = origin::http();
    let pg = Poolgate::start(&queue_config(o.port(), "max_concurrent_requests: 2", ""));
    let c = client();
    for _ in 0..6 {
        enqueue(&c, &pg, "/slow/300", vec![]).await;
    }
    assert!(o.wait_until(Duration::from_secs(20), |o| o.requests() == 6));
    let most = o
        .counters
        .slow_max
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(most, 2, "sends at once");
}

#[tokio::test]
async fn failed_sends_are_retried_and_logged_with_the_request_id() {
    let o = origin::http();
    let pg = Poolgate::start(&queue_config(o.port(), "retries: 2", ""));
    let c = client();
    let failing = enqueue(&c, &pg, "/status/500", vec![]).await;
    assert!(o.wait_until(Duration::from_secs(10), |o| o.requests() == 3));
    assert!(pg.wait_for_log(&format!("Proxy Request Error: queued request {failing}")));
    let log = pg.log();
    let retries = log
        .lines()
        .filter(|l| {
            l.contains(&format!(
                "queued request {failing} (POST /status/500) failed (HTTP 500); retrying"
            ))
        })
        .count();
    assert_eq!(retries, 2, "{log}");
    assert!(
        ids_seen(&o).iter().all(|id| *id == failing),
        "every attempt carries the id"
    );
    let recovering = enqueue(&c, &pg, "/fail/1", vec![]).await;
    assert!(o.wait_until(Duration::from_secs(10), |o| o.requests() == 5));
    assert!(pg.wait_for_log(&format!(
        "queued request {recovering} (POST /fail/1) failed (HTTP 500)"
    )));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(o.requests(), 5, "a success ends the retries");
}

/// A durable queue for a back end on `port` that retries for a long time.
fn durable(port: u16, dir: &Path, extra: &str) -> String {
    let pool = format!(
        "queue_dir: {}, max_concurrent_requests: 4, retries: 1000, error_retry_delay_base_ms: 500, queue_spool_bytes: 4096{extra}",
        dir.display()
    );
    queue_config(port, &pool, "")
}

fn journals(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .collect()
}

#[tokio::test]
async fn kill_9_with_a_backlog_loses_no_request() {
    let back_end_port = free_port(); // nothing listens there yet: the back end is down
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pg = Poolgate::start(&durable(back_end_port, dir.path(), ""));
    let c = client();
    let mut ids = HashSet::new();
    let mut sums = std::collections::HashMap::new();
    for batch in 0..50 {
        let sends = (0..40).map(|i| {
            let body: Vec<u8> = match (batch * 40 + i) % 100 {
                0 => (0..20_000u32).map(|j| (j * 13 + i) as u8).collect(),
                _ => format!("request {batch}-{i}").into_bytes(),
            };
            let (c, pg) = (&c, &pg);
            async move {
                let sum = checksum(&body);
                (enqueue(c, pg, "/describe", body).await, sum)
            }
        });
        for (id, sum) in futures_util::future::join_all(sends).await {
            sums.insert(id.clone(), sum);
            ids.insert(id);
        }
    }
    assert_eq!(ids.len(), 2000);
    pg.signal("KILL");
    assert!(pg.wait_exit(Duration::from_secs(10)).is_some());
    let o = origin::http_on(back_end_port);
    let pg = Poolgate::start(&durable(back_end_port, dir.path(), ""));
    let all = o.wait_until(Duration::from_secs(60), |o| has_all(o, &ids));
    let seen = ids_seen(&o);
    assert!(
        all,
        "{} of 2000 arrived\n{}",
        seen.iter().collect::<HashSet<_>>().len(),
        pg.log()
    );
    assert!(
        pg.wait_for_log("2000 unfinished requests recovered"),
        "{}",
        pg.log()
    );
    // Nothing reached the back end before the kill, so nothing is sent twice.
    assert_eq!(seen.len(), 2000, "duplicates");
    for d in o.described() {
        let id = d["headers"]["x-proxy-request-id"].as_str().expect("id");
        assert_eq!(d["body_sum"], sums[id], "body of {id}");
    }
    assert_eq!(
        journals(dir.path()).len(),
        1,
        "the old segment was adopted and removed"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("spool"))
            .expect("spool")
            .count(),
        0
    );
}

#[tokio::test]
async fn a_torn_journal_tail_is_reported_and_the_records_before_it_kept() {
    let back_end_port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pg = Poolgate::start(&durable(back_end_port, dir.path(), ""));
    let c = client();
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(enqueue(&c, &pg, "/", format!("body {i}").into_bytes()).await);
    }
    pg.signal("KILL");
    assert!(pg.wait_exit(Duration::from_secs(10)).is_some());
    let journal = journals(dir.path()).pop().expect("journal");
    let len = std::fs::metadata(&journal).expect("journal").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .expect("open");
    file.set_len(len - 5).expect("tear the last record");
    let o = origin::http_on(back_end_port);
    let pg = Poolgate::start(&durable(back_end_port, dir.path(), ""));
    let kept: HashSet<String> = ids[..29].iter().cloned().collect();
    assert!(
        o.wait_until(Duration::from_secs(30), |o| has_all(o, &kept)),
        "{}",
        pg.log()
    );
    assert!(pg.wait_for_log("are not a valid record (torn or corrupt write); skipped"));
    std::thread::sleep(Duration::from_millis(300));
    let seen: HashSet<String> = ids_seen(&o).into_iter().collect();
    assert_eq!(seen, kept, "the torn last request is the only one missing");
}

/// Send a request's head and part of its body, leaving the rest for later.
fn start_upload(pg: &Poolgate) -> TcpStream {
    let mut s = TcpStream::connect(pg.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
        .expect("write");
    s
}

#[tokio::test]
async fn sigterm_stops_accepting_and_sends_what_is_queued_before_exit() {
    let o = origin::http();
    let extra = "max_concurrent_requests: 1";
    let pg_config = queue_config(o.port(), extra, "")
        .replace("shutdown_timeout_sec: 1", "shutdown_timeout_sec: 6");
    let mut pg = Poolgate::start(&pg_config);
    let c = client();
    let mut ids = HashSet::new();
    for _ in 0..5 {
        ids.insert(enqueue(&c, &pg, "/slow/300", vec![]).await);
    }
    let mut upload = start_upload(&pg);
    std::thread::sleep(Duration::from_millis(200));
    pg.signal("TERM");
    assert!(pg.wait_for_log("queue: shutting down"), "{}", pg.log());
    upload.write_all(b"67890").expect("rest of the body");
    let mut answer = String::new();
    let _ = upload.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Proxy queue is shutting down."), "{answer}");
    let status = pg.wait_exit(Duration::from_secs(20)).expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(
        has_all(&o, &ids),
        "every queued request was sent before the exit"
    );
}

#[tokio::test]
async fn sigterm_leaves_unsent_requests_in_the_journal_for_the_next_start() {
    let back_end_port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pg = Poolgate::start(&durable(back_end_port, dir.path(), ""));
    let c = client();
    let mut ids = HashSet::new();
    for _ in 0..20 {
        ids.insert(enqueue(&c, &pg, "/", vec![]).await);
    }
    pg.signal("TERM");
    assert!(pg
        .wait_exit(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
    assert!(
        pg.log().contains("20 requests left in the journal"),
        "{}",
        pg.log()
    );
    let o = origin::http_on(back_end_port);
    let pg = Poolgate::start(&durable(back_end_port, dir.path(), ""));
    assert!(
        o.wait_until(Duration::from_secs(30), |o| has_all(o, &ids)),
        "{}",
        pg.log()
    );
}

#[tokio::test]
async fn sigterm_counts_what_a_memory_queue_drops() {
    let back_end_port = free_port();
    let extra = "max_concurrent_requests: 2, retries: 1000, error_retry_delay_base_ms: 500";
    let mut pg = Poolgate::start(&queue_config(back_end_port, extra, ""));
    let c = client();
    for _ in 0..10 {
        enqueue(&c, &pg, "/", vec![]).await;
    }
    pg.signal("TERM");
    assert!(pg
        .wait_exit(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
    assert!(
        pg.log().contains("10 queued requests dropped at shutdown"),
        "{}",
        pg.log()
    );
}

#[tokio::test]
async fn a_running_process_adopts_what_a_stopped_one_leaves_as_in_an_upgrade() {
    let back_end_port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut old = Poolgate::start(&durable(back_end_port, dir.path(), ""));
    let new = Poolgate::start(&durable(back_end_port, dir.path(), ""));
    let c = client();
    let mut ids = HashSet::new();
    for _ in 0..10 {
        ids.insert(enqueue(&c, &old, "/", vec![]).await);
    }
    assert_eq!(journals(dir.path()).len(), 2, "one segment per process");
    old.signal("TERM");
    assert!(old.wait_exit(Duration::from_secs(20)).is_some());
    assert!(
        new.wait_for_log("adopted 10 unfinished requests"),
        "{}",
        new.log()
    );
    let o = origin::http_on(back_end_port);
    assert!(
        o.wait_until(Duration::from_secs(30), |o| has_all(o, &ids)),
        "{}",
        new.log()
    );
    assert_eq!(journals(dir.path()).len(), 1);
}
