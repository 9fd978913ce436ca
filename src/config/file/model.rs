//! Typed form of a poolgate (or PixlProxy) configuration file.
//!
//! Key names, nesting and defaults follow PixlProxy's README and the pixl-server / pixl-server-web
//! documentation, so a PixlProxy `config.json` deserializes unchanged. Every struct derives
//! `Serialize` as well: the key audit (see `keys.rs`) lists the keys poolgate understands by
//! serializing the defaults, so the set of known keys can never drift from the structs.

use super::forms;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// The whole file: pixl-server's top-level keys plus the `WebServer` and `PixlProxy` sections.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct FileConfig {
    /// Directory of the event log (pixl-server default `.`).
    pub(crate) log_dir: String,
    /// Event log file name inside `log_dir` (pixl-server default `event.log`).
    pub(crate) log_filename: String,
    /// Where the process id is written at start; empty = none.
    pub(crate) pid_file: String,
    /// Verbosity of debug lines, 1 (quietest) to 10 (loudest).
    pub(crate) debug_level: u8,
    /// poolgate: worker threads of the proxy service; 0 = one per CPU.
    pub(crate) threads: usize,
    /// poolgate: seconds SIGTERM waits for in-flight requests before the process exits.
    pub(crate) shutdown_timeout_sec: u64,
    /// poolgate: port of the built-in demo origin (an echo service on loopback); 0 = off.
    pub(crate) demo_origin_port: u16,
    /// poolgate: the Unix socket a reload hands the listeners over on; empty =
    /// `<log_dir>/poolgate-upgrade.sock`.
    pub(crate) upgrade_sock: String,
    /// pixl-server: the user (name or id) to run as once the listeners are bound; empty = stay.
    #[serde(deserialize_with = "forms::name_or_id")]
    pub(crate) uid: String,
    /// pixl-server: the group (name or id) to run as once the listeners are bound.
    #[serde(deserialize_with = "forms::name_or_id")]
    pub(crate) gid: String,
    /// pixl-server: run in the foreground (`start` does not detach), as `poolgate debug`.
    pub(crate) debug: bool,
    /// pixl-server: echo every event-log line to standard output when in the foreground.
    pub(crate) echo: bool,
    /// pixl-server: color the echoed columns (on a terminal only).
    pub(crate) color: bool,
    /// pixl-server: the event log's columns, in order.
    pub(crate) log_columns: Vec<String>,
    /// pixl-server: column -> value -> whether lines with it are written (`*` = any value).
    pub(crate) log_filters: BTreeMap<String, BTreeMap<String, serde_yaml::Value>>,
    /// pixl-server: append panics (message and backtrace) to `<log_dir>/crash.log`.
    pub(crate) log_crashes: bool,
    /// pixl-server: write debug level 1 lines as errors with the code `fatal`.
    pub(crate) log_debug_errors: bool,
    /// pixl-server: where `start`'s detached process writes its standard output; empty = nowhere.
    pub(crate) stdout: String,
    /// pixl-server: where `start`'s detached process writes its standard error; empty =
    /// `<log_dir>/poolgate.stderr.log`.
    pub(crate) stderr: String,
    /// pixl-server: a JSON file of `dot.path` overrides applied after this file.
    pub(crate) config_overrides_file: String,
    #[serde(rename = "WebServer")]
    pub(crate) web_server: WebServerConfig,
    #[serde(rename = "PixlProxy")]
    pub(crate) proxy: ProxyConfig,
    /// poolgate: cluster mode (limits and queues shared on Redis); off without `redis_url`.
    pub(crate) cluster: ClusterConfig,
}

/// poolgate's `cluster` section: several instances share their pools' limits and blind
/// queues on one Redis. Cluster mode is on when `redis_url` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ClusterConfig {
    /// `redis://[:PASSWORD@]HOST:PORT[/DB]` or `rediss://...`; empty = cluster mode off.
    pub(crate) redis_url: String,
    /// Every key is `{<key_prefix>}:...`.
    pub(crate) key_prefix: String,
    /// An instance's lease: its slots are freed this long after it dies.
    pub(crate) lease_ms: u64,
    /// One Redis operation at most.
    pub(crate) timeout_ms: u64,
    /// `local`, `open` or `closed`: what decisions do while Redis cannot be reached.
    pub(crate) on_redis_error: String,
    /// How long a queued request held by an instance stays untouched before another takes it.
    pub(crate) queue_claim_idle_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: String::new(),
            key_prefix: "poolgate".into(),
            lease_ms: 3000,
            timeout_ms: 50,
            on_redis_error: "local".into(),
            queue_claim_idle_ms: 10_000,
        }
    }
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            log_dir: ".".into(),
            log_filename: "event.log".into(),
            pid_file: String::new(),
            debug_level: 1,
            threads: 0,
            shutdown_timeout_sec: 5,
            demo_origin_port: 0,
            upgrade_sock: String::new(),
            uid: String::new(),
            gid: String::new(),
            debug: false,
            echo: false,
            color: false,
            log_columns: DEFAULT_LOG_COLUMNS.iter().map(|c| c.to_string()).collect(),
            log_filters: BTreeMap::new(),
            log_crashes: false,
            log_debug_errors: false,
            stdout: String::new(),
            stderr: String::new(),
            config_overrides_file: String::new(),
            web_server: WebServerConfig::default(),
            proxy: ProxyConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

use super::web_server::WebServerConfig;

/// pixl-server's event-log columns.
pub(crate) const DEFAULT_LOG_COLUMNS: &[&str] = &[
    "hires_epoch",
    "date",
    "hostname",
    "component",
    "category",
    "code",
    "msg",
    "data",
];

/// The `PixlProxy` section: global proxy settings and the pools.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ProxyConfig {
    pub(crate) pools: PoolList,
    pub(crate) validate_ssl_certs: bool,
    /// poolgate: directory of the blind-queue journals of every pool with `use_queue`
    /// (a pool's own `queue_dir` wins); empty = queues are kept in memory only.
    pub(crate) queue_dir: String,
    /// Regex of the stats API's URI, or `false` (the default) for no stats API.
    #[serde(deserialize_with = "forms::optional_pattern")]
    pub(crate) stats_uri_match: Option<String>,
    /// poolgate: tokens accepted as `Authorization: Bearer` on the stats API from any address.
    pub(crate) stats_api_tokens: Vec<String>,
    /// poolgate: path of the Prometheus metrics on the main port (same access rules as the
    /// stats API); empty = off.
    pub(crate) metrics_uri: String,
    /// Process priority (-20 highest to 19 lowest), set at start.
    pub(crate) nice: i32,
    /// Answer requests no pool takes from `WebServer.http_htdocs_dir` (instead of 404).
    pub(crate) serve_static_files: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            pools: PoolList::default(),
            validate_ssl_certs: true,
            queue_dir: String::new(),
            stats_uri_match: None,
            stats_api_tokens: Vec::new(),
            metrics_uri: String::new(),
            nice: 0,
            serve_static_files: false,
        }
    }
}

/// One back-end pool, as documented in PixlProxy's "Pool Configuration".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct PoolConfig {
    pub(crate) method_match: Option<String>,
    pub(crate) host_match: Option<String>,
    pub(crate) uri_match: Option<String>,
    pub(crate) x_proxy_only: bool,
    pub(crate) target_protocol: String,
    pub(crate) target_hostname: String,
    /// 0 = the protocol's port (80 for http, 443 for https).
    pub(crate) target_port: u16,
    pub(crate) use_keep_alives: bool,
    pub(crate) cache_dns_sec: u64,
    pub(crate) http_user_agent: String,
    /// Time to first byte from the back end, in milliseconds; 0 = no limit.
    pub(crate) http_timeout_ms: u64,
    /// poolgate: the longest gap between reads of the response body, in milliseconds (also
    /// the longest wait for the header when `http_timeout_ms` is 0 or longer); 0 = no limit.
    pub(crate) http_body_timeout_ms: u64,
    /// `USERNAME:PASSWORD` sent to the back end as HTTP Basic auth.
    pub(crate) http_basic_auth: String,
    pub(crate) append_to_x_forwarded_for: bool,
    pub(crate) preserve_host: bool,
    pub(crate) insert_request_headers: BTreeMap<String, String>,
    pub(crate) insert_response_headers: BTreeMap<String, String>,
    pub(crate) scrub_request_headers: String,
    pub(crate) scrub_response_headers: String,
    /// Requests in flight to the back end at once; the one beyond gets 429. 0 = no limit.
    pub(crate) max_concurrent_requests: usize,
    /// Requests admitted per wall-clock second; the one beyond gets 429. 0 = no limit.
    pub(crate) max_requests_per_sec: u32,
    /// poolgate: requests per second admitted from one client IP. 0 = no limit.
    pub(crate) max_requests_per_sec_per_ip: u32,
    /// poolgate: requests per minute admitted from one client IP. 0 = no limit.
    pub(crate) max_requests_per_min_per_ip: u32,
    /// Redirect hops the proxy follows itself: a number, `true` (10) or `false` (0).
    #[serde(deserialize_with = "forms::redirect_hops")]
    pub(crate) follow_redirects: u32,
    /// Regex over the status code; a match is a success, anything else an error.
    pub(crate) resp_code_success_match: String,
    /// Extra attempts after a failed one (connect error, reset, timeout, error status).
    pub(crate) retries: u32,
    pub(crate) error_retry_delay_base_ms: u64,
    pub(crate) error_retry_delay_mult_ms: u64,
    /// Upper bound of the retry delay; 0 = no bound.
    pub(crate) error_retry_delay_max_ms: u64,
    /// poolgate: request bodies up to this size are kept for retries and redirects.
    pub(crate) retry_max_body_bytes: u64,
    pub(crate) degraded_perf_monitor: bool,
    pub(crate) degraded_min_avg_ms: f64,
    pub(crate) degraded_min_req_sec: f64,
    pub(crate) degraded_min_uptime_sec: u64,
    /// poolgate: several back ends as `host:port` (instead of target_hostname/target_port).
    pub(crate) targets: Vec<String>,
    /// poolgate: `round_robin`, `random`, `ip_hash`, `uri_hash` or `header_hash`.
    pub(crate) load_balancing: String,
    /// poolgate: the request header hashed by `load_balancing: header_hash`.
    pub(crate) load_balancing_header: String,
    /// poolgate: active health checks of the pool's targets.
    pub(crate) health_check: HealthCheckConfig,
    /// Answer every request at once and send it to the back end in the background.
    pub(crate) use_queue: bool,
    /// Requests waiting in the queue at most; the one beyond gets 429. 0 = no limit.
    pub(crate) max_queue_length: usize,
    /// How long a queued send refused by the pool's limits waits before trying again.
    pub(crate) throttle_requeue_delay_ms: u64,
    /// poolgate: directory of this pool's queue journal; empty = `PixlProxy.queue_dir`.
    pub(crate) queue_dir: String,
    /// poolgate: flush each journal write to the disk before answering (survives power loss).
    pub(crate) queue_fsync: bool,
    /// poolgate: queued request bodies larger than this are spooled to a file.
    pub(crate) queue_spool_bytes: u64,
    /// Compressed responses up to this many bytes (by `Content-Length`) are compressed in one
    /// piece in memory; larger or unsized ones chunk by chunk as they stream.
    pub(crate) min_stream_size: u64,
    /// poolgate: speak HTTP/2 to the back end (ALPN over HTTPS, prior knowledge over HTTP).
    pub(crate) target_http2: bool,
    /// Write a transaction line for every back-end request (`true`/`false` or 1/0).
    #[serde(deserialize_with = "forms::flag")]
    pub(crate) log_transactions: bool,
    /// Write a transaction line for back-end requests taking this many ms or more; 0 = off.
    pub(crate) log_perf_ms: u64,
    /// Write an error line for every failed back-end request.
    #[serde(deserialize_with = "forms::flag")]
    pub(crate) log_errors: bool,
    /// poolgate, cluster mode: count this pool's limits across the cluster (`false`: each
    /// instance its own).
    pub(crate) cluster_limits: bool,
    /// poolgate, cluster mode: keep this pool's blind queue on Redis, shared (`false`: each
    /// instance its own).
    pub(crate) cluster_queue: bool,
}

/// poolgate: how a pool checks its targets in the background.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HealthCheckConfig {
    /// `none`, `tcp` (connect) or `http` (GET `path`, success per `status_match`).
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) path: String,
    /// Regex over the status code of an `http` check.
    pub(crate) status_match: String,
    pub(crate) interval_ms: u64,
    pub(crate) timeout_ms: u64,
    /// Consecutive passes that bring an unhealthy target back.
    pub(crate) healthy_threshold: usize,
    /// Consecutive failures that take a healthy target out.
    pub(crate) unhealthy_threshold: usize,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            kind: "none".into(),
            path: "/".into(),
            status_match: r"^2\d\d$".into(),
            interval_ms: 5000,
            timeout_ms: 1000,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

/// PixlProxy's default for `scrub_request_headers`.
pub(crate) const DEFAULT_SCRUB_REQUEST: &str =
    r"^(host|x\-proxy|x\-proxy\-\w+|expect|content\-length|connection)$";
/// PixlProxy's success range, 200-399.
pub(crate) const DEFAULT_SUCCESS_MATCH: &str = r"^(2\d\d|3\d\d)$";
/// PixlProxy's default for `scrub_response_headers`.
pub(crate) const DEFAULT_SCRUB_RESPONSE: &str = r"^(transfer\-encoding)$";

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            method_match: None,
            host_match: None,
            uri_match: None,
            x_proxy_only: false,
            target_protocol: "http".into(),
            target_hostname: String::new(),
            target_port: 0,
            use_keep_alives: true,
            cache_dns_sec: 0,
            http_user_agent: String::new(),
            http_timeout_ms: 30_000,
            http_body_timeout_ms: 300_000,
            http_basic_auth: String::new(),
            append_to_x_forwarded_for: true,
            preserve_host: true,
            insert_request_headers: BTreeMap::new(),
            insert_response_headers: BTreeMap::new(),
            scrub_request_headers: DEFAULT_SCRUB_REQUEST.into(),
            scrub_response_headers: DEFAULT_SCRUB_RESPONSE.into(),
            max_concurrent_requests: 0,
            max_requests_per_sec: 0,
            max_requests_per_sec_per_ip: 0,
            max_requests_per_min_per_ip: 0,
            follow_redirects: 0,
            resp_code_success_match: DEFAULT_SUCCESS_MATCH.into(),
            retries: 0,
            error_retry_delay_base_ms: 0,
            error_retry_delay_mult_ms: 0,
            error_retry_delay_max_ms: 0,
            retry_max_body_bytes: 1024 * 1024,
            degraded_perf_monitor: false,
            degraded_min_avg_ms: 0.0,
            degraded_min_req_sec: 0.0,
            degraded_min_uptime_sec: 0,
            targets: Vec::new(),
            load_balancing: "round_robin".into(),
            load_balancing_header: String::new(),
            health_check: HealthCheckConfig::default(),
            use_queue: false,
            max_queue_length: 0,
            throttle_requeue_delay_ms: 100,
            queue_dir: String::new(),
            queue_fsync: true,
            queue_spool_bytes: 64 * 1024,
            min_stream_size: 128 * 1024,
            target_http2: false,
            log_transactions: false,
            log_perf_ms: 0,
            log_errors: true,
            cluster_limits: true,
            cluster_queue: true,
        }
    }
}

/// The `pools` object, kept in file order (PixlProxy checks non-default pools in config order).
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolList(pub(crate) Vec<(String, PoolConfig)>);

impl<'de> Deserialize<'de> for PoolList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PoolListVisitor;
        impl<'de> Visitor<'de> for PoolListVisitor {
            type Value = PoolList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of pool id to pool settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PoolList, A::Error> {
                let mut pools = Vec::new();
                while let Some((id, pool)) = map.next_entry::<String, PoolConfig>()? {
                    pools.push((id, pool));
                }
                Ok(PoolList(pools))
            }
        }
        deserializer.deserialize_map(PoolListVisitor)
    }
}

impl Serialize for PoolList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(id, pool)| (id, pool)))
    }
}

use crate::event_log::redact::REDACTED;

impl FileConfig {
    /// A copy for display: back-end credentials and API tokens replaced by `[redacted]`.
    pub(crate) fn redacted(&self) -> FileConfig {
        let mut out = self.clone();
        for (_, pool) in &mut out.proxy.pools.0 {
            if !pool.http_basic_auth.is_empty() {
                pool.http_basic_auth = REDACTED.into();
            }
        }
        for token in &mut out.proxy.stats_api_tokens {
            *token = REDACTED.into();
        }
        out.cluster.redis_url = crate::cluster::display_url(&out.cluster.redis_url);
        out
    }
}
