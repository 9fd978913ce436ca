//! Criterion micro-benchmarks of the per-request work that is poolgate's own (not Pingora's):
//!
//! - `routing`: `RouteTable::route` over 1, 10 and 100 pools, the request matching the last
//!   pool (the worst case), by `uri_match`, and by `host_match` + `method_match` for 10 pools.
//! - `headers`: `Pool::rewrite_request` on a 10-header request, the pool's response rules,
//!   `FrontEnd::finish_response` (also with `secure_headers`), and both as `response_filter`
//!   runs them.
//! - `stats`: what a request's end records for the per-second figures (`PoolStats`, the
//!   Prometheus handles, the web server's stats), one by one and together as `request_end`
//!   does.
//! - `log`: building a transaction's event-log line (`Transaction::log`) and rendering event-log
//!   lines (`EventLine::render`) as the log's writer thread does.
//!
//! Pools and the front end are built from YAML config text by `poolgate::bench::Fixture`, with
//! the same code the server uses. Nothing here starts the event log, so a transaction line is
//! built and then dropped without I/O.
//!
//! Run: `cargo bench --bench micro` (a quick pass: add `-- --warm-up-time 1 --measurement-time 2`;
//! one group: `cargo bench --bench micro -- routing`).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use pingora::http::{RequestHeader, ResponseHeader};
use poolgate::bench::{self, BenchPool, Fixture, LogLine, Timer};
use std::fmt::Write;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

/// The pools and front end of `yaml`, built as the server builds them.
fn compile(yaml: &str) -> Fixture {
    Fixture::from_yaml(yaml)
        .unwrap_or_else(|problems| panic!("benchmark config does not compile: {problems}"))
}

/// A request header as Pingora parses it from an HTTP/1.1 client (header case kept).
fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut req = RequestHeader::build(method, path.as_bytes(), Some(headers.len())).unwrap();
    for (name, value) in headers {
        req.append_header(name.to_string(), *value).unwrap();
    }
    req
}

/// A browser-like request of 10 headers: nine common ones plus `tenth`.
fn browser_request(host: &str, path: &str, tenth: (&str, &str)) -> RequestHeader {
    request(
        "GET",
        path,
        &[
            ("Host", host),
            (
                "User-Agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            ),
            (
                "Accept",
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
            ("Accept-Encoding", "gzip, deflate, br"),
            ("Accept-Language", "en-US,en;q=0.5"),
            ("Referer", "https://www.example.com/dashboard"),
            ("Cookie", "session=3f2a9c1e7b; theme=dark"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("Connection", "keep-alive"),
            tenth,
        ],
    )
}

/// A back end's response of 8 headers, chunked (the default response scrub removes that).
fn backend_response() -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, Some(8)).unwrap();
    for (name, value) in [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Transfer-Encoding", "chunked"),
        ("Date", "Tue, 15 Apr 2025 10:00:00 GMT"),
        ("Server", "nginx"),
        ("Cache-Control", "private, max-age=0"),
        ("ETag", "\"5f3a-1b2c\""),
        ("Vary", "Accept-Encoding"),
        ("X-Request-Time", "0.012"),
    ] {
        resp.append_header(name, value).unwrap();
    }
    resp
}

/// The tenth header of a request that names no pool (routing then tries every pool in turn).
const NO_X_PROXY: (&str, &str) = ("Sec-Fetch-Mode", "navigate");

/// `n` pools chosen by `uri_match: ^/svc{i}/`, plus the `svc{n-1}` request (the last pool).
fn uri_pools(n: usize) -> (Fixture, RequestHeader) {
    let mut yaml = String::from("PixlProxy:\n  pools:\n");
    for i in 0..n {
        let _ = write!(
            yaml,
            "    svc{i}:\n      uri_match: '^/svc{i}/'\n      target_hostname: 10.0.0.{}\n      target_port: 8080\n",
            i % 250 + 1
        );
    }
    let path = format!("/svc{}/items?id=42&page=3", n - 1);
    (
        compile(&yaml),
        browser_request("api.example.com:3020", &path, NO_X_PROXY),
    )
}

/// `n` pools chosen by `host_match` and `method_match`, plus a request for the last pool.
fn host_method_pools(n: usize) -> (Fixture, RequestHeader) {
    let mut yaml = String::from("PixlProxy:\n  pools:\n");
    for i in 0..n {
        let _ = write!(
            yaml,
            "    svc{i}:\n      method_match: '^(GET|HEAD|POST)$'\n      host_match: '^svc{i}\\.example\\.com$'\n      target_hostname: 10.0.0.{}\n      target_port: 8080\n",
            i % 250 + 1
        );
    }
    let host = format!("svc{}.example.com:3020", n - 1);
    (
        compile(&yaml),
        browser_request(&host, "/items?id=42&page=3", NO_X_PROXY),
    )
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing");
    let cases = [1, 10, 100]
        .map(|n| ("uri_match", n, uri_pools(n)))
        .into_iter()
        .chain([("host_method_match", 10, host_method_pools(10))]);
    for (criteria, n, (rt, req)) in cases {
        let last = format!("svc{}", n - 1);
        let routed = rt.route(&req);
        assert_eq!(
            routed,
            Some(last.as_str()),
            "the request must match the last pool"
        );
        group.bench_with_input(BenchmarkId::new(criteria, n), &req, |b, req| {
            b.iter(|| rt.route(black_box(req)).is_some())
        });
    }
    group.finish();
}

/// One pool rewriting headers both ways, behind a front end with response headers.
const HEADERS_CONFIG: &str = "
WebServer:
  http_server_signature: poolgate
  http_response_headers:
    Via: poolgate
    X-Frame-Options: SAMEORIGIN
PixlProxy:
  pools:
    api:
      target_hostname: backend.internal
      target_port: 8080
      preserve_host: false
      append_to_x_forwarded_for: true
      insert_request_headers:
        X-Via-Pool: api
        X-Request-Source: poolgate
      insert_response_headers:
        X-Served-By: poolgate
";

fn only_pool(rt: &Fixture) -> BenchPool<'_> {
    rt.first_pool().expect("the config has a pool")
}

fn headers(c: &mut Criterion) {
    let rt = compile(HEADERS_CONFIG);
    let secure =
        compile(&HEADERS_CONFIG.replace("WebServer:\n", "WebServer:\n  secure_headers: true\n"));
    let pool = only_pool(&rt);
    let client = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 23)));
    // `X-Proxy` names the pool, and the default scrub removes it.
    let req = browser_request(
        "api.example.com:3020",
        "/svc/items?id=42",
        ("X-Proxy", "api"),
    );
    let resp = backend_response();
    let mut rewritten = req.clone();
    pool.rewrite_request(&mut rewritten, client).unwrap();
    let header = |name| rewritten.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("host"), Some("backend.internal:8080"));
    assert_eq!(
        header("x-forwarded-for"),
        Some("203.0.113.7, 198.51.100.23")
    );
    assert_eq!(header("x-proxy"), None);

    let mut group = c.benchmark_group("headers");
    group.bench_function("rewrite_request", |b| {
        b.iter_batched(
            || req.clone(),
            |mut req| {
                pool.rewrite_request(&mut req, client).unwrap();
                req
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("response_rules", |b| {
        b.iter_batched(
            || resp.clone(),
            |mut resp| {
                pool.apply_response_rules(&mut resp).unwrap();
                resp
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("finish_response", |b| {
        b.iter_batched(
            || resp.clone(),
            |mut resp| {
                rt.finish_response(&mut resp, false).unwrap();
                resp
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("finish_response_secure_headers", |b| {
        b.iter_batched(
            || resp.clone(),
            |mut resp| {
                secure.finish_response(&mut resp, true).unwrap();
                resp
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("response_filter", |b| {
        b.iter_batched(
            || resp.clone(),
            |mut resp| {
                pool.apply_response_rules(&mut resp).unwrap();
                rt.finish_response(&mut resp, false).unwrap();
                resp
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// A finished back-end request's timer: every phase lapped, bytes counted.
fn finished_timer() -> Timer {
    Timer::finished(512, 16 * 1024)
}

fn stats(c: &mut Criterion) {
    // With a Prometheus endpoint, so the metrics are recorded (without one they are skipped),
    // and with it every per-second figure.
    let rt = compile(
        "PixlProxy: {metrics_uri: /metrics, pools: {api: {target_hostname: backend.internal}}}",
    );
    let pool = only_pool(&rt);
    let perf = finished_timer();
    let total = Duration::from_micros(12_345);

    let mut group = c.benchmark_group("stats");
    group.bench_function("pool_stats_record", |b| {
        b.iter(|| pool.record_stats(black_box(&perf)))
    });
    group.bench_function("metrics_observe", |b| {
        b.iter(|| pool.observe_metrics(black_box(200), black_box(&perf)))
    });
    group.bench_function("web_stats_record_total", |b| {
        b.iter(|| rt.record_web_request(black_box(total), 16 * 1024, 512))
    });
    // `request_end::finish` minus what needs a live session: the pool's in-flight gauge,
    // figures, metrics, the success check, and the web server's figures.
    group.bench_function("request_end", |b| {
        b.iter(|| {
            pool.record_request_end(black_box(200), &perf);
            rt.record_web_request(total, 16 * 1024, 512);
        })
    });
    group.finish();
}

fn log(c: &mut Criterion) {
    assert!(
        !bench::event_log_runs(),
        "the event log must not be running: a transaction line would be written"
    );
    let rt = compile(
        "PixlProxy: {pools: {api: {target_hostname: backend.internal, target_port: 8080, log_transactions: true}}}",
    );
    let pool = only_pool(&rt);
    let req = browser_request("api.example.com:3020", "/svc/items?id=42", NO_X_PROXY);
    let resp = backend_response();
    let perf = finished_timer();
    let debug_line = LogLine::debug(
        5,
        "poolgate",
        "Pool api: target backend.internal:8080 resolved to 10.0.0.7",
    );
    let transaction_line = pool.transaction_line(&req, &resp, &perf);
    let hostname = bench::host_name();

    let mut group = c.benchmark_group("log");
    // As `request_end` builds it: the URL, then the line (headers, perf JSON) on the request's
    // thread. Without a running event log the line is dropped instead of handed over.
    group.bench_function("transaction_line", |b| {
        b.iter(|| pool.log_transaction(black_box(&req), &resp, &perf))
    });
    group.bench_function("render_debug_line", |b| {
        b.iter(|| black_box(&debug_line).render(SystemTime::now(), &hostname))
    });
    group.bench_function("render_transaction_line", |b| {
        b.iter(|| black_box(&transaction_line).render(SystemTime::now(), &hostname))
    });
    group.finish();
}

criterion_group!(micro, routing, headers, stats, log);
criterion_main!(micro);
