//! Cluster mode on Redis: pool limits shared exactly by several real poolgate processes, slot
//! leases that die with their instance, the shared blind queue (a Redis Stream per pool) with
//! takeover of a dead instance's requests, the `cluster.on_redis_error` policies while Redis is
//! hung (SIGSTOP) or killed, `check` on the `cluster` section, and the cluster figures in the
//! stats API and Prometheus. Every test has its own `redis-server` and its own key prefix.
//!
//! `timeout_ms` is generous (300 ms, 1 s in the test of exact limits; at most a third of the
//! lease, as `check` requires): a Redis operation slowed past 50 ms by a loaded machine must not
//! turn a test of exact shared limits into a test of the fallback policy.

use crate::harness::{client, run_cli, Poolgate};
use crate::origin::{self, checksum, Origin};
use crate::redis::RedisServer;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a request may take while Redis is hung: far above `timeout_ms` (250 ms in those
/// tests), far below anything that would mean "waited for Redis".
const PROMPT: Duration = Duration::from_secs(2);

/// The `cluster` section of one instance's config.
struct Cluster {
    url: String,
    prefix: &'static str,
    lease_ms: u64,
    timeout_ms: u64,
    on_redis_error: &'static str,
    claim_idle_ms: u64,
}

impl Cluster {
    fn on(redis: &RedisServer, prefix: &'static str) -> Cluster {
        Cluster {
            url: redis.url(),
            prefix,
            lease_ms: 1000,
            // At most a third of the lease (`check` insists).
            timeout_ms: 300,
            on_redis_error: "local",
            claim_idle_ms: 1000,
        }
    }

    fn lease(self, ms: u64) -> Cluster {
        Cluster {
            lease_ms: ms,
            ..self
        }
    }

    fn timeout(self, ms: u64) -> Cluster {
        Cluster {
            timeout_ms: ms,
            ..self
        }
    }

    fn policy(self, on_redis_error: &'static str) -> Cluster {
        Cluster {
            on_redis_error,
            ..self
        }
    }

    /// The section without `redis_url` (for a URL from `POOLGATE_CLUSTER_REDIS_URL_FILE`).
    fn keys_but_url(&self) -> String {
        format!(
            "  key_prefix: {}\n  lease_ms: {}\n  timeout_ms: {}\n  on_redis_error: {}\n  queue_claim_idle_ms: {}\n",
            self.prefix, self.lease_ms, self.timeout_ms, self.on_redis_error, self.claim_idle_ms
        )
    }

    fn section(&self) -> String {
        format!(
            "cluster:\n  redis_url: {}\n{}",
            self.url,
            self.keys_but_url()
        )
    }

    /// A whole config: this section, the HTTP listener, the stats API, Prometheus, and the
    /// `pools` given as block lines (see `pool`).
    fn config(&self, pools: &str) -> String {
        config_with_cluster(&self.section(), pools)
    }

    /// The key of a pool's shared queue.
    fn queue_key(&self, pool: &str) -> String {
        format!("{{{}}}:pool:{pool}:queue", self.prefix)
    }
}

fn config_with_cluster(cluster: &str, pools: &str) -> String {
    format!(
        "threads: 2\nshutdown_timeout_sec: 1\n{cluster}WebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\n  http_temp_dir: $DIR/tmp\nPixlProxy:\n  stats_uri_match: '^/proxy-stats'\n  metrics_uri: /metrics\n  pools:\n{pools}"
    )
}

/// One pool's line in a `pools` block: the back end on loopback `port`, plus `extra` keys.
fn pool(id: &str, port: u16, extra: &str) -> String {
    format!("    {id}: {{target_hostname: 127.0.0.1, target_port: {port}, {extra}}}\n")
}

/// Start an instance and wait (bounded) until it says it is in cluster mode.
fn instance(config: &str) -> Poolgate {
    instance_with_env(config, &[])
}

fn instance_with_env(config: &str, env: &[(&str, &str)]) -> Poolgate {
    let pg = Poolgate::start_with_env(config, env);
    assert!(
        pg.wait_for_log("cluster: instance "),
        "no cluster start line:\n{}",
        pg.log()
    );
    pg
}

/// Poll `f` every 20 ms until it holds or `limit` passes; the last answer.
async fn within(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// The log (stderr) contains `needle` within 10 s, waiting without blocking the runtime.
async fn logged(pg: &Poolgate, needle: &str) -> bool {
    within(Duration::from_secs(10), || pg.log().contains(needle)).await
}

/// The event log (`$DIR/event.log`) so far.
fn event_log(pg: &Poolgate) -> String {
    std::fs::read_to_string(pg.dir().join("event.log")).unwrap_or_default()
}

/// How many log lines contain `needle`.
fn log_lines(pg: &Poolgate, needle: &str) -> usize {
    pg.log().lines().filter(|l| l.contains(needle)).count()
}

/// GET `path`: (status, body, time to the whole answer).
async fn timed_get(c: &reqwest::Client, pg: &Poolgate, path: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let resp = c.get(pg.url(path)).send().await.expect("send");
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    (status, body, started.elapsed())
}

/// The stats API's `cluster` object.
async fn cluster_stats(c: &reqwest::Client, pg: &Poolgate) -> Value {
    let resp = c.get(pg.url("/proxy-stats")).send().await.expect("stats");
    assert_eq!(resp.status(), 200, "stats API");
    let doc: Value = resp.json().await.expect("stats json");
    doc["cluster"].clone()
}

/// Wait (bounded, 15 s) until the instance counts `n` live instances; the last `cluster`.
async fn wait_live(c: &reqwest::Client, pg: &Poolgate, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stats = cluster_stats(c, pg).await;
        if stats["live_instances"] == n || Instant::now() > deadline {
            assert_eq!(stats["live_instances"], n, "live instances: {stats}");
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Requests to `path` on `pg` that are left running (their answers come when they come).
fn hold(
    c: &reqwest::Client,
    pg: &Poolgate,
    path: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let req = c.get(pg.url(path)).send();
            tokio::spawn(async move {
                let _ = req.await;
            })
        })
        .collect()
}

fn concurrency_refusal(limit: u64) -> String {
    format!(
        "429 Too Many Requests: pool default is over its max_concurrent_requests limit ({limit})."
    )
}

fn rate_refusal(limit: u64) -> String {
    format!("429 Too Many Requests: pool default is over its max_requests_per_sec limit ({limit}).")
}

/// Queue one request and return its `request_id`.
async fn enqueue(c: &reqwest::Client, pg: &Poolgate, path: &str, body: Vec<u8>) -> String {
    let (status, json) = try_enqueue(c, pg, path, body).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["description"], "Proxy request enqueued successfully.");
    json["request_id"].as_str().expect("request_id").to_string()
}

/// Queue one request: (status, JSON answer).
async fn try_enqueue(
    c: &reqwest::Client,
    pg: &Poolgate,
    path: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = c.post(pg.url(path)).body(body).send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json answer"))
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

/// Wait (bounded) until the pool's stream is empty; its last length.
async fn wait_stream_empty(redis: &RedisServer, key: &str, limit: Duration) -> i64 {
    let deadline = Instant::now() + limit;
    loop {
        let len = redis.xlen(key);
        if len == 0 || Instant::now() > deadline {
            return len;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The number of entries delivered to a consumer of group `send` and not yet acknowledged.
fn pending(redis: &RedisServer, key: &str) -> i64 {
    let reply = redis.query(&["XPENDING", key, "send"]);
    reply
        .items()
        .first()
        .and_then(|r| r.integer())
        .unwrap_or_else(|| panic!("XPENDING {key} send: {reply:?}"))
}

/// A Prometheus sample's value (the line starting with `name ` or `name{`).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// What `spread_load` saw.
struct SpreadLoad {
    served: usize,
    per_instance: Vec<usize>,
    refused: usize,
    unexpected: Vec<String>,
}

/// `workers` clients at once, each sending to the `urls` (one per instance) in turn until
/// `target` requests were served (or 90 s passed); a client refused with one of the `allowed`
/// 429 answers waits 20 ms before its next request.
async fn spread_load(
    c: &reqwest::Client,
    urls: Vec<String>,
    workers: usize,
    target: usize,
    allowed: Vec<String>,
) -> SpreadLoad {
    let n = urls.len();
    let urls = Arc::new(urls);
    let allowed = Arc::new(allowed);
    let served = Arc::new(AtomicUsize::new(0));
    let per_instance: Arc<Vec<AtomicUsize>> =
        Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    let refused = Arc::new(AtomicUsize::new(0));
    let unexpected = Arc::new(Mutex::new(Vec::<String>::new()));
    let deadline = Instant::now() + Duration::from_secs(90);
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (c, urls, served, per_instance, refused, unexpected, allowed) = (
                c.clone(),
                urls.clone(),
                served.clone(),
                per_instance.clone(),
                refused.clone(),
                unexpected.clone(),
                allowed.clone(),
            );
            tokio::spawn(async move {
                let mut k = 0;
                while served.load(Ordering::SeqCst) < target && Instant::now() < deadline {
                    let i = (w + k) % n;
                    k += 1;
                    match c.get(&urls[i]).send().await {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let body = resp.text().await.unwrap_or_default();
                            if status == 200 {
                                served.fetch_add(1, Ordering::SeqCst);
                                per_instance[i].fetch_add(1, Ordering::SeqCst);
                            } else if status == 429
                                && allowed.contains(&body.trim_end().to_string())
                            {
                                refused.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            } else {
                                unexpected
                                    .lock()
                                    .expect("lock")
                                    .push(format!("instance {i}: {status} {body}"));
                            }
                        }
                        Err(e) => unexpected
                            .lock()
                            .expect("lock")
                            .push(format!("instance {i}: {e}")),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("worker");
    }
    let unexpected = unexpected.lock().expect("lock").clone();
    SpreadLoad {
        served: served.load(Ordering::SeqCst),
        per_instance: per_instance
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .collect(),
        refused: refused.load(Ordering::SeqCst),
        unexpected,
    }
}

/// How many `EVALSHA` calls (every script call: admissions, heartbeats, releases) Redis
/// has answered.
fn script_calls(redis: &RedisServer) -> u64 {
    let stats = redis.query(&["INFO", "commandstats"]).text();
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_never_let_more_than_the_shared_limits_reach_the_back_end() {
    let redis = RedisServer::start();
    let o = origin::http();
    // A long lease: a slot must not expire under a 75 ms request on a loaded machine.
    let cluster = Cluster::on(&redis, "limits").lease(3000).timeout(1000);
    let config = cluster.config(&pool(
        "default",
        o.port(),
        "max_concurrent_requests: 4, max_requests_per_sec: 30",
    ));
    let pgs: Vec<Poolgate> = (0..3).map(|_| instance(&config)).collect();
    let c = client();
    for pg in &pgs {
        wait_live(&c, pg, 3).await;
    }
    // 12 clients at once, each sending to the three instances in turn until 120 requests were
    // served; a refused client waits 20 ms before its next request.
    const TARGET: usize = 120;
    let urls: Vec<String> = pgs.iter().map(|pg| pg.url("/slow/75")).collect();
    let allowed = vec![concurrency_refusal(4), rate_refusal(30)];
    let SpreadLoad {
        served,
        per_instance,
        refused,
        unexpected,
    } = spread_load(&c, urls, 12, TARGET, allowed).await;
    assert!(
        unexpected.is_empty(),
        "answers other than 200 or the pool's 429: {unexpected:?}"
    );
    assert!(served >= TARGET, "only {served} served in 90 s");
    assert_eq!(
        o.requests(),
        served,
        "every 200 reached the origin once, nothing else did"
    );
    assert!(refused > 0, "the limits never refused anything");
    assert!(
        per_instance.iter().all(|n| *n > 0),
        "every instance served some requests: {per_instance:?}"
    );
    assert!(
        o.slow_max() <= 4,
        "{} requests at once at the origin",
        o.slow_max()
    );
    // At most 30 admissions per Redis second. A request admitted in the last milliseconds of a
    // second may arrive at the origin in the next one, but each such request still holds one
    // of the 4 concurrency slots as the second turns: at most 30 + 4 arrivals per second.
    let per_second = o.arrivals_per_second();
    assert!(
        per_second.values().all(|n| *n <= 30 + 4),
        "arrivals per wall-clock second: {per_second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_holding_spare_slots_and_tokens_still_never_exceed_the_shared_limits() {
    let redis = RedisServer::start();
    let o = origin::http();
    let cluster = Cluster::on(&redis, "reserve").lease(3000).timeout(1000);
    // Large enough for a reserve with two instances (4 spare slots, 8 tokens each), small
    // enough for 48 clients to run into both limits.
    let config = cluster.config(&pool(
        "default",
        o.port(),
        "max_concurrent_requests: 64, max_requests_per_sec: 128",
    ));
    let pgs: Vec<Poolgate> = (0..2).map(|_| instance(&config)).collect();
    let c = client();
    for pg in &pgs {
        wait_live(&c, pg, 2).await;
    }
    const TARGET: usize = 400;
    let urls: Vec<String> = pgs.iter().map(|pg| pg.url("/slow/50")).collect();
    let allowed = vec![concurrency_refusal(64), rate_refusal(128)];
    let load = spread_load(&c, urls, 48, TARGET, allowed).await;
    assert!(
        load.unexpected.is_empty(),
        "answers other than 200 or the pool's 429: {:?}",
        load.unexpected
    );
    assert!(load.served >= TARGET, "only {} served in 90 s", load.served);
    assert_eq!(
        o.requests(),
        load.served,
        "every 200 reached the origin once"
    );
    assert!(load.refused > 0, "the limits never refused anything");
    assert!(
        o.slow_max() <= 64,
        "{} requests at once at the origin",
        o.slow_max()
    );
    // As in the test above: 128 per Redis second, plus the 64 slots' requests admitted at
    // the end of one second and arriving in the next.
    let per_second = o.arrivals_per_second();
    assert!(
        per_second.values().all(|n| *n <= 128 + 64),
        "arrivals per wall-clock second: {per_second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_with_large_limits_admits_most_requests_without_a_round_trip() {
    let redis = RedisServer::start();
    let o = origin::http();
    let cluster = Cluster::on(&redis, "ahead").lease(3000).timeout(1000);
    let config = cluster.config(&pool(
        "default",
        o.port(),
        "max_concurrent_requests: 1000, max_requests_per_sec: 100000",
    ));
    let pg = instance(&config);
    let c = client();
    wait_live(&c, &pg, 1).await;
    let before = script_calls(&redis);
    const REQUESTS: usize = 400;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (c, url) = (c.clone(), pg.url("/"));
            tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..REQUESTS / 4 {
                    if let Ok(resp) = c.get(&url).send().await {
                        ok += usize::from(resp.status() == 200);
                        let _ = resp.bytes().await;
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.expect("client");
    }
    let calls = script_calls(&redis) - before;
    assert_eq!(ok, REQUESTS, "every request served");
    assert_eq!(o.requests(), REQUESTS);
    // Heartbeats, the first admission of each second, a grant now and then: far fewer
    // script calls than requests.
    assert!(
        calls < REQUESTS as u64 / 4,
        "{calls} script calls for {REQUESTS} requests"
    );
    // Unused for a while, the spare slots go back: the pool's set empties.
    let set = format!("{{{}}}:pool:default:conc", cluster.prefix);
    let emptied = within(Duration::from_secs(5), || {
        redis.query(&["ZCARD", &set]).integer() == Some(0)
    })
    .await;
    assert!(
        emptied,
        "spare slots still held: {:?}",
        redis.query(&["ZRANGE", &set, "0", "-1"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_slots_come_back_within_the_lease() {
    let redis = RedisServer::start();
    let o = origin::http();
    let lease_ms = 1500;
    let cluster = Cluster::on(&redis, "lease").lease(lease_ms);
    let config = cluster.config(&pool("default", o.port(), "max_concurrent_requests: 4"));
    let mut a = instance(&config);
    let b = instance(&config);
    let c = client();
    wait_live(&c, &b, 2).await;
    let held = hold(&c, &a, "/slow/30000", 4);
    assert!(
        within(Duration::from_secs(10), || o.requests() == 4).await,
        "A's 4 slow requests reached the origin ({})",
        o.requests()
    );
    let (status, body, _) = timed_get(&c, &b, "/x").await;
    assert_eq!(
        (status, body.trim_end()),
        (429, concurrency_refusal(4).as_str()),
        "B while A holds every slot"
    );
    a.signal("KILL");
    let killed = Instant::now();
    assert!(a.wait_exit(Duration::from_secs(10)).is_some(), "A exited");
    let bound = Duration::from_millis(3 * lease_ms);
    let mut statuses = Vec::new();
    let admitted = loop {
        let (status, body, _) = timed_get(&c, &b, "/x").await;
        if status == 200 {
            break Some(killed.elapsed());
        }
        assert_eq!(
            (status, body.trim_end()),
            (429, concurrency_refusal(4).as_str())
        );
        statuses.push(status);
        if killed.elapsed() > bound + Duration::from_secs(5) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let admitted = admitted.unwrap_or_else(|| {
        panic!(
            "B still refuses {:?} after the kill:\n{}",
            killed.elapsed(),
            b.log()
        )
    });
    assert!(
        admitted <= bound,
        "B admitted again {admitted:?} after the kill, lease {lease_ms} ms"
    );
    // The dead instance leaves the count too.
    wait_live(&c, &b, 1).await;
    for h in held {
        h.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_through_a_killed_instance_are_all_delivered_by_another() {
    let redis = RedisServer::start();
    let hole = origin::silent();
    let o = origin::http();
    let cluster = Cluster::on(&redis, "takeover");
    let key = cluster.queue_key("default");
    // A sends to a back end that never answers, and would wait a minute, then retry for ever:
    // it finishes nothing.
    let queued =
        "use_queue: true, retries: 1000, error_retry_delay_base_ms: 500, http_timeout_ms: 60000";
    let mut a = instance(&cluster.config(&pool("default", hole.port(), queued)));
    let c = client();
    let mut ids = HashSet::new();
    let mut sums = std::collections::HashMap::new();
    for batch in 0..10 {
        let sends = (0..10).map(|i| {
            let body = format!("queued request {batch}-{i}").into_bytes();
            let (c, a) = (&c, &a);
            async move {
                let sum = checksum(&body);
                (enqueue(c, a, "/describe", body).await, sum)
            }
        });
        for (id, sum) in futures_util::future::join_all(sends).await {
            sums.insert(id.clone(), sum);
            ids.insert(id);
        }
    }
    assert_eq!(ids.len(), 100, "unique request ids");
    assert_eq!(
        redis.xlen(&key),
        100,
        "every accepted request is in the stream {key}"
    );
    assert!(
        within(Duration::from_secs(10), || hole.connections() > 0).await,
        "A started sending (and holds entries)"
    );
    a.signal("KILL");
    assert!(a.wait_exit(Duration::from_secs(10)).is_some(), "A exited");
    let b = instance(&cluster.config(&pool("default", o.port(), "use_queue: true, retries: 5")));
    let all = within(Duration::from_secs(60), || has_all(&o, &ids)).await;
    let seen = ids_seen(&o);
    assert!(
        all,
        "{} of 100 delivered by B\n{}",
        seen.iter().collect::<HashSet<_>>().len(),
        b.log()
    );
    assert!(
        seen.iter().all(|id| ids.contains(id)),
        "only the queued requests, each once or repeated with its id"
    );
    assert_eq!(
        o.requests(),
        seen.len(),
        "every delivery carries its request id"
    );
    for d in o.described() {
        let id = d["headers"]["x-proxy-request-id"].as_str().expect("id");
        assert_eq!(d["body_sum"], sums[id], "body of {id}");
    }
    let left = wait_stream_empty(&redis, &key, Duration::from_secs(15)).await;
    assert_eq!(left, 0, "entries left in {key}\n{}", b.log());
    assert_eq!(
        pending(&redis, &key),
        0,
        "entries delivered and never acknowledged"
    );
    let stats = cluster_stats(&c, &b).await;
    assert!(
        stats["queue_taken_over"].as_u64().is_some_and(|n| n >= 1),
        "B took over A's entries: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_with_on_redis_error_closed_refuses_at_once_and_admission_recovers() {
    let redis = RedisServer::start();
    let o = origin::http();
    let lease_ms = 1000;
    let cluster = Cluster::on(&redis, "closed")
        .lease(lease_ms)
        .timeout(250)
        .policy("closed");
    let pools = format!(
        "{}{}",
        pool("default", o.port(), "max_concurrent_requests: 4"),
        pool("queued", o.port(), "uri_match: '^/queued', use_queue: true")
    );
    let pg = instance(&cluster.config(&pools));
    let c = client();
    assert_eq!(timed_get(&c, &pg, "/x").await.0, 200);
    let before = enqueue(&c, &pg, "/queued/before", vec![]).await;
    assert!(
        within(Duration::from_secs(10), || ids_seen(&o).contains(&before)).await,
        "a queued request is delivered while Redis is up"
    );
    assert_eq!(
        log_lines(&pg, "cluster: Redis unreachable"),
        0,
        "{}",
        pg.log()
    );

    redis.stop();
    let refusal = "503 Service Unavailable: pool default cannot reach the cluster's Redis (cluster.on_redis_error: closed).";
    for i in 0..10 {
        let (status, body, took) = timed_get(&c, &pg, "/x").await;
        assert_eq!((status, body.trim_end()), (503, refusal), "request {i}");
        assert!(
            took <= PROMPT,
            "request {i} waited {took:?} for a hung Redis"
        );
    }
    for i in 0..3 {
        let started = Instant::now();
        let (status, json) = try_enqueue(&c, &pg, "/queued/during", vec![]).await;
        assert!(
            started.elapsed() <= PROMPT,
            "queued request {i} waited {:?}",
            started.elapsed()
        );
        assert_eq!(status, 503, "{json}");
        assert_eq!(json["code"], 503, "{json}");
        assert_eq!(
            json["description"],
            "Proxy queue is unavailable: the cluster's Redis cannot be reached.",
            "{json}"
        );
    }
    let stats = cluster_stats(&c, &pg).await;
    assert_eq!(stats["redis_reachable"], false, "{stats}");
    assert!(
        logged(&pg, "cluster: Redis unreachable (").await,
        "{}",
        pg.log()
    );
    assert!(
        pg.wait_for_event_log("cluster: Redis unreachable"),
        "event log:\n{}",
        event_log(&pg)
    );

    redis.cont();
    assert!(
        logged(&pg, "cluster: Redis reachable again").await,
        "{}",
        pg.log()
    );
    // An admission sent just before the breaker opened runs on Redis once it continues; its
    // slot (nobody's any more) lasts one lease.
    tokio::time::sleep(Duration::from_millis(2 * lease_ms)).await;
    assert_eq!(timed_get(&c, &pg, "/x").await.0, 200, "admitted again");
    let base = o.requests();
    let held = hold(&c, &pg, "/slow/3000", 4);
    assert!(
        within(Duration::from_secs(10), || o.requests() == base + 4).await,
        "4 slow requests admitted after the recovery ({} of 4)\n{}\nRedis:\n{}",
        o.requests() - base,
        pg.log(),
        redis.dump()
    );
    let (status, body, _) = timed_get(&c, &pg, "/x").await;
    assert_eq!(
        (status, body.trim_end()),
        (429, concurrency_refusal(4).as_str()),
        "the shared limit again"
    );
    let stats = cluster_stats(&c, &pg).await;
    assert_eq!(stats["redis_reachable"], true, "{stats}");
    assert!(
        stats["reachability_changes"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "{stats}"
    );
    assert_eq!(
        log_lines(&pg, "cluster: Redis unreachable"),
        1,
        "one line per change, not per request:\n{}",
        pg.log()
    );
    assert_eq!(
        log_lines(&pg, "cluster: Redis reachable again"),
        1,
        "{}",
        pg.log()
    );
    // Both changes reach the event log too, at its default debug_level.
    assert!(
        pg.wait_for_event_log("cluster: Redis reachable again"),
        "event log:\n{}",
        event_log(&pg)
    );
    for h in held {
        h.await.expect("slow request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_with_on_redis_error_local_leaves_each_instance_its_share() {
    let redis = RedisServer::start();
    let o = origin::http();
    // Long enough that a heartbeat delayed on a loaded machine does not make an instance
    // distrust the shared counts (two thirds of a lease without an answer) after Redis is back.
    let lease_ms = 2000;
    let cluster = Cluster::on(&redis, "local").lease(lease_ms).timeout(250);
    let config = cluster.config(&pool("default", o.port(), "max_concurrent_requests: 4"));
    let a = instance(&config);
    let b = instance(&config);
    let c = client();
    wait_live(&c, &a, 2).await;
    wait_live(&c, &b, 2).await;

    redis.stop();
    // Each of the 2 last known live instances may send 4 / 2 = 2 at once.
    let mut held = Vec::new();
    let refusal_start =
        "429 Too Many Requests: pool default is over its max_concurrent_requests limit";
    for (name, pg) in [("A", &a), ("B", &b)] {
        let base = o.requests();
        let sent = Instant::now();
        held.extend(hold(&c, pg, "/slow/3000", 2));
        assert!(
            within(PROMPT, || o.requests() == base + 2).await,
            "{name}'s 2 requests reached the origin within {PROMPT:?} ({} of 2 after {:?})\n{}",
            o.requests() - base,
            sent.elapsed(),
            pg.log()
        );
        let (status, body, took) = timed_get(&c, pg, "/x").await;
        assert_eq!(status, 429, "{name}'s third request: {body}");
        assert!(body.starts_with(refusal_start), "{body}");
        assert!(took <= PROMPT, "{name}'s third request waited {took:?}");
    }
    assert_eq!(o.slow_max(), 4, "2 + 2 at once at the origin");
    for (name, pg) in [("A", &a), ("B", &b)] {
        let stats = cluster_stats(&c, pg).await;
        assert_eq!(stats["redis_reachable"], false, "{name}: {stats}");
        assert!(
            stats["local_decisions"].as_u64().is_some_and(|n| n >= 1),
            "{name}: {stats}"
        );
        assert!(
            logged(pg, "cluster: Redis unreachable (").await,
            "{name}:\n{}",
            pg.log()
        );
    }

    redis.cont();
    for pg in [&a, &b] {
        assert!(
            logged(pg, "cluster: Redis reachable again").await,
            "{}",
            pg.log()
        );
    }
    for h in held {
        h.await.expect("slow request");
    }
    // Admissions sent as Redis hung ran when it continued; their slots last one lease.
    tokio::time::sleep(Duration::from_millis(2 * lease_ms)).await;
    let base = o.requests();
    let held = hold(&c, &a, "/slow/3000", 4);
    assert!(
        within(Duration::from_secs(10), || o.requests() == base + 4).await,
        "A gets all 4 shared slots again ({} of 4)\n{}\nB:\n{}\nRedis:\n{}",
        o.requests() - base,
        a.log(),
        b.log(),
        redis.dump()
    );
    let (status, body, _) = timed_get(&c, &b, "/x").await;
    assert_eq!(
        (status, body.trim_end()),
        (429, concurrency_refusal(4).as_str()),
        "B: the shared limit again"
    );
    for (name, pg) in [("A", &a), ("B", &b)] {
        let stats = cluster_stats(&c, pg).await;
        assert_eq!(stats["redis_reachable"], true, "{name}: {stats}");
        assert_eq!(
            log_lines(pg, "cluster: Redis unreachable"),
            1,
            "{name}: one line per change, not per request:\n{}",
            pg.log()
        );
        assert_eq!(
            log_lines(pg, "cluster: Redis reachable again"),
            1,
            "{name}:\n{}",
            pg.log()
        );
    }
    for h in held {
        h.await.expect("slow request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_killed_and_restarted_on_its_directory_loses_no_accepted_queued_request() {
    let mut redis = RedisServer::start();
    let o = origin::http();
    let cluster = Cluster::on(&redis, "aof").timeout(250);
    let key = cluster.queue_key("default");
    let queued = "use_queue: true, max_concurrent_requests: 1, queue_dir: $DIR/queue, retries: 1000, error_retry_delay_base_ms: 200";
    let pg = instance(&cluster.config(&pool("default", o.port(), queued)));
    let c = client();
    let mut accepted = HashSet::new();
    for i in 0..25 {
        accepted.insert(enqueue(&c, &pg, "/slow/200", format!("before {i}").into_bytes()).await);
    }
    assert!(
        within(Duration::from_secs(10), || o.requests() > 0).await,
        "sending started"
    );
    // One at a time, 200 ms each: most of the 25 are still in the stream.
    let in_stream = redis.xlen(&key);
    assert!(in_stream > 0, "nothing left in {key} to lose");
    assert!(
        redis.has_aof(),
        "Redis keeps an AOF in {}",
        redis.data_dir().display()
    );
    assert_eq!(
        redis.command(&["CONFIG", "GET", "appendfsync"]),
        "appendfsync\nalways",
        "every accepted write is on disk"
    );
    redis.kill9();
    let mut refused = Vec::new();
    for i in 0..25 {
        let started = Instant::now();
        let (status, json) =
            try_enqueue(&c, &pg, "/slow/200", format!("after {i}").into_bytes()).await;
        assert!(
            started.elapsed() <= PROMPT,
            "intake {i} waited {:?} for a dead Redis",
            started.elapsed()
        );
        match status {
            200 => {
                accepted.insert(json["request_id"].as_str().expect("request_id").to_string());
            }
            503 => refused.push(json),
            _ => panic!("intake {i} while Redis is dead: {status} {json}"),
        }
    }
    assert!(
        accepted.len() > 25,
        "on_redis_error: local spills the intake into the local journal; refused: {refused:?}"
    );
    assert!(
        logged(&pg, "cluster: Redis unreachable (").await,
        "{}",
        pg.log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    assert!(
        logged(&pg, "cluster: Redis reachable again").await,
        "{}",
        pg.log()
    );
    let all = within(Duration::from_secs(90), || has_all(&o, &accepted)).await;
    let seen: HashSet<String> = ids_seen(&o).into_iter().collect();
    let missing: Vec<_> = accepted.difference(&seen).collect();
    assert!(
        all,
        "{} of {} accepted requests never reached the origin: {missing:?}\n{}",
        missing.len(),
        accepted.len(),
        pg.log()
    );
    let left = wait_stream_empty(&redis, &key, Duration::from_secs(15)).await;
    assert_eq!(left, 0, "entries left in {key}\n{}", pg.log());
}

#[test]
fn check_refuses_a_bad_cluster_section_at_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pools = "PixlProxy:\n  pools:\n    api:\n      target_hostname: 127.0.0.1\n";
    let check = |name: &str, text: &str, env: &[(&str, &str)]| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write config");
        run_cli(
            &["check", "--config", &path.display().to_string()],
            env,
            None,
        )
    };
    let (code, out) = check(
        "scheme.yaml",
        &format!("cluster:\n  redis_url: http://127.0.0.1:6379\n{pools}"),
        &[],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(": error: cluster.redis_url: "), "{out}");
    let (code, out) = check(
        "policy.yaml",
        &format!("cluster:\n  redis_url: redis://127.0.0.1:6379\n  on_redis_error: maybe\n{pools}"),
        &[],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(": error: cluster.on_redis_error: "), "{out}");
    let (code, out) = check(
        "pool.yaml",
        &format!(
            "cluster:\n  redis_url: redis://127.0.0.1:6379\n{pools}      cluster_limits: maybe\n"
        ),
        &[],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(": error: PixlProxy.pools.api.cluster_limits: "),
        "{out}"
    );
    // A good section passes without any Redis to talk to.
    let good = format!(
        "cluster:\n  redis_url: rediss://:pw@redis.invalid:6380\n  key_prefix: app\n  lease_ms: 3000\n  timeout_ms: 50\n  on_redis_error: closed\n  queue_claim_idle_ms: 10000\n{pools}      cluster_limits: false\n      cluster_queue: false\n"
    );
    let (code, out) = check("good.yaml", &good, &[]);
    assert_eq!(code, 0, "{out}");
    // The URL from POOLGATE_CLUSTER_REDIS_URL_FILE is checked as well.
    let url_file = dir.path().join("redis-url");
    std::fs::write(&url_file, "http://127.0.0.1:6379\n").expect("url file");
    let url_file = url_file.display().to_string();
    let (code, out) = check(
        "from-file.yaml",
        &format!("cluster:\n  key_prefix: app\n{pools}"),
        &[("POOLGATE_CLUSTER_REDIS_URL_FILE", url_file.as_str())],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("cluster.redis_url") || out.contains("POOLGATE_CLUSTER_REDIS_URL"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_url_and_its_password_can_come_from_a_file() {
    let password = "s3cret-redis-pw";
    let redis = RedisServer::start_with_password(Some(password));
    let o = origin::http();
    let cluster = Cluster::on(&redis, "file");
    let file = tempfile::NamedTempFile::new().expect("url file");
    std::fs::write(file.path(), format!("{}\n", redis.url())).expect("write url");
    let file_path = file.path().display().to_string();
    let config = config_with_cluster(
        &format!("cluster:\n{}", cluster.keys_but_url()),
        &pool("default", o.port(), "max_concurrent_requests: 4"),
    );
    let pg = instance_with_env(
        &config,
        &[("POOLGATE_CLUSTER_REDIS_URL_FILE", file_path.as_str())],
    );
    let c = client();
    let line = pg
        .log()
        .lines()
        .find(|l| l.contains("cluster: instance "))
        .expect("start line")
        .to_string();
    assert!(
        line.contains(&format!("127.0.0.1:{}", redis.port())),
        "the start line names the Redis: {line}"
    );
    assert_eq!(timed_get(&c, &pg, "/x").await.0, 200);
    let stats = cluster_stats(&c, &pg).await;
    assert_eq!(stats["redis_reachable"], true, "{stats}");
    let keys = redis.keys();
    assert!(
        !keys.is_empty(),
        "the instance wrote to the Redis behind the password"
    );
    assert!(
        keys.iter().all(|k| k.starts_with("{file}:")),
        "every key under the prefix: {keys:?}"
    );
    assert!(
        !pg.log().contains(password) && !event_log(&pg).contains(password),
        "the password is never logged"
    );
    assert!(
        !stats.to_string().contains(password),
        "nor shown in the stats: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_api_and_prometheus_show_the_cluster() {
    let redis = RedisServer::start();
    let o = origin::http();
    let cluster = Cluster::on(&redis, "stats");
    let config = cluster.config(&pool("default", o.port(), "max_concurrent_requests: 4"));
    let a = instance(&config);
    let b = instance(&config);
    let c = client();
    assert_eq!(timed_get(&c, &a, "/x").await.0, 200);
    let sa = wait_live(&c, &a, 2).await;
    let sb = wait_live(&c, &b, 2).await;
    for (name, pg, stats) in [("A", &a, &sa), ("B", &b, &sb)] {
        let id = stats["instance"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{name}: {stats}");
        let start = format!(
            "cluster: instance {id} on Redis redis://127.0.0.1:{}",
            redis.port()
        );
        assert!(pg.log().contains(&start), "{name}: {start}\n{}", pg.log());
        assert_eq!(stats["redis_reachable"], true, "{name}: {stats}");
        assert!(
            stats["redis_rtt_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{name}: {stats}"
        );
        for counter in [
            "local_decisions",
            "queue_taken_over",
            "reachability_changes",
        ] {
            assert!(
                stats[counter].as_u64().is_some(),
                "{name}: {counter}: {stats}"
            );
        }
        assert_eq!(
            stats["local_decisions"], 0,
            "{name}: Redis was always there: {stats}"
        );
        let metrics = c.get(pg.url("/metrics")).send().await.expect("metrics");
        assert_eq!(metrics.status(), 200);
        let text = metrics.text().await.expect("metrics body");
        assert_eq!(
            sample(&text, "poolgate_cluster_live_instances"),
            Some(2.0),
            "{name}: {text}"
        );
        assert_eq!(
            sample(&text, "poolgate_cluster_redis_reachable"),
            Some(1.0),
            "{name}: {text}"
        );
        assert!(
            sample(&text, "poolgate_cluster_redis_rtt_seconds").is_some_and(|s| s >= 0.0),
            "{name}: {text}"
        );
        for counter in [
            "poolgate_cluster_local_decisions_total",
            "poolgate_cluster_queue_taken_over_total",
            "poolgate_cluster_reachability_changes_total",
        ] {
            assert!(
                sample(&text, counter).is_some(),
                "{name}: {counter}: {text}"
            );
        }
    }
    assert_ne!(
        sa["instance"], sb["instance"],
        "each instance has its own id"
    );
    let keys = redis.keys();
    assert!(
        keys.iter().all(|k| k.starts_with("{stats}:")),
        "every key under the prefix: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_that_opt_out_keep_their_limits_and_queue_per_instance() {
    let redis = RedisServer::start();
    let o = origin::http();
    let cluster = Cluster::on(&redis, "optout");
    let pools = format!(
        "{}{}",
        pool(
            "default",
            o.port(),
            "max_concurrent_requests: 1, cluster_limits: false"
        ),
        pool(
            "lq",
            o.port(),
            "uri_match: '^/lq', use_queue: true, cluster_queue: false"
        )
    );
    let config = cluster.config(&pools);
    let a = instance(&config);
    let b = instance(&config);
    let c = client();
    wait_live(&c, &b, 2).await;
    let held = hold(&c, &a, "/slow/3000", 1);
    assert!(within(Duration::from_secs(10), || o.requests() == 1).await);
    let (status, body, _) = timed_get(&c, &a, "/x").await;
    assert_eq!(
        (status, body.trim_end()),
        (429, concurrency_refusal(1).as_str()),
        "A's own limit"
    );
    assert_eq!(timed_get(&c, &b, "/x").await.0, 200, "B keeps its own slot");
    let id = enqueue(&c, &b, "/lq/x", b"local".to_vec()).await;
    assert!(
        within(Duration::from_secs(10), || ids_seen(&o).contains(&id)).await,
        "the local queue delivers"
    );
    assert_eq!(
        redis.xlen(&cluster.queue_key("lq")),
        0,
        "no stream for a local queue"
    );
    assert!(
        !redis.keys().contains(&cluster.queue_key("lq")),
        "{:?}",
        redis.keys()
    );
    for h in held {
        h.await.expect("slow request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_limits_count_across_instances() {
    let redis = RedisServer::start();
    let o = origin::http();
    let cluster = Cluster::on(&redis, "client");
    let config = cluster.config(&pool("default", o.port(), "max_requests_per_min_per_ip: 3"));
    let a = instance(&config);
    let b = instance(&config);
    let c = client();
    wait_live(&c, &b, 2).await;
    // Leave at least 10 s of the minute, so that the five requests share one window.
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        % 60_000;
    if into > 50_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into) as u64 + 50)).await;
    }
    let mut statuses = Vec::new();
    for pg in [&a, &b, &a, &b, &a] {
        let (status, body, _) = timed_get(&c, pg, "/x").await;
        if status == 429 {
            assert!(
                body.contains("max_requests_per_min_per_ip limit (3)"),
                "{body}"
            );
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        vec![200, 200, 200, 429, 429],
        "3 a minute for the client, over both"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_decided_in_batches_admits_exactly_the_shared_limit() {
    // 40 requests at once: while the first admission is on its way to Redis the others wait
    // and go together; each is decided as if alone, so exactly 8 hold a slot at once.
    let redis = RedisServer::start();
    let o = origin::http();
    let cluster = Cluster::on(&redis, "burst").lease(3000).timeout(1000);
    let config = cluster.config(&pool("default", o.port(), "max_concurrent_requests: 8"));
    let pg = instance(&config);
    let c = client();
    wait_live(&c, &pg, 1).await;
    let sends: Vec<_> = (0..40)
        .map(|_| {
            let req = c.get(pg.url("/slow/2500")).send();
            tokio::spawn(async move {
                match req.await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        (status, resp.text().await.unwrap_or_default())
                    }
                    Err(e) => (0, e.to_string()),
                }
            })
        })
        .collect();
    let mut admitted = 0;
    let mut refused = 0;
    for send in sends {
        let (status, body) = send.await.expect("request task");
        match status {
            200 => admitted += 1,
            429 => {
                assert_eq!(body.trim_end(), concurrency_refusal(8));
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(o.slow_max(), 8, "exactly the limit at the origin at once");
    assert!(
        admitted >= 8 && refused >= 1,
        "{admitted} admitted, {refused} refused"
    );
    let stats = cluster_stats(&c, &pg).await;
    assert_eq!(
        stats["local_decisions"], 0,
        "every decision was Redis's: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_held_across_a_redis_restart_are_put_back_before_admissions_use_it_again() {
    // The limits' state is kept out of the append-only file (an admission waits for no disk
    // flush), so a restarted Redis comes back without the slots; the first heartbeat after
    // the outage puts the held ones back.
    let mut redis = RedisServer::start();
    let o = origin::http();
    let cluster = Cluster::on(&redis, "restore").lease(3000).timeout(250);
    let config = cluster.config(&pool("default", o.port(), "max_concurrent_requests: 2"));
    let pg = instance(&config);
    let c = client();
    wait_live(&c, &pg, 1).await;
    let held = hold(&c, &pg, "/slow/8000", 2);
    assert!(
        within(PROMPT, || o.requests() == 2).await,
        "both slow requests reached the origin"
    );
    redis.kill9();
    redis.restart();
    assert!(
        logged(&pg, "cluster: Redis reachable again").await,
        "{}",
        pg.log()
    );
    let (status, body, _) = timed_get(&c, &pg, "/x").await;
    assert_eq!(
        (status, body.trim_end()),
        (429, concurrency_refusal(2).as_str()),
        "the two held slots are Redis's again\n{}\n{}",
        pg.log(),
        redis.dump()
    );
    let stats = cluster_stats(&c, &pg).await;
    assert_eq!(stats["redis_reachable"], true, "{stats}");
    for h in held {
        h.await.expect("slow request");
    }
}
