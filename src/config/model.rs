//! Typed form of a poolgate (or PixlProxy) configuration file.
//!
//! Key names, nesting and defaults follow PixlProxy's README and the pixl-server / pixl-server-web
//! documentation, so a PixlProxy `config.json` deserializes unchanged. Every struct derives
//! `Serialize` as well: the key audit (see `keys.rs`) lists the keys poolgate understands by
//! serializing the defaults, so the set of known keys can never drift from the structs.

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// The whole file: pixl-server's top-level keys plus the `WebServer` and `PixlProxy` sections.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    /// Directory of the event log (pixl-server default `.`).
    pub log_dir: String,
    /// Event log file name inside `log_dir` (pixl-server default `event.log`).
    pub log_filename: String,
    /// Where the process id is written at start; empty = none.
    pub pid_file: String,
    /// Verbosity of debug lines, 1 (quietest) to 10 (loudest).
    pub debug_level: u8,
    /// poolgate: worker threads of the proxy service; 0 = one per CPU.
    pub threads: usize,
    /// poolgate: seconds SIGTERM waits for in-flight requests before the process exits.
    pub shutdown_timeout_sec: u64,
    /// poolgate: port of the built-in demo origin (an echo service on loopback); 0 = off.
    pub demo_origin_port: u16,
    #[serde(rename = "WebServer")]
    pub web_server: WebServerConfig,
    #[serde(rename = "PixlProxy")]
    pub proxy: ProxyConfig,
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
            web_server: WebServerConfig::default(),
            proxy: ProxyConfig::default(),
        }
    }
}

/// The front end (pixl-server-web's `WebServer` keys that poolgate implements).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebServerConfig {
    pub http_port: u16,
    /// Local address to listen on; empty = all addresses.
    pub http_bind_address: String,
    /// Idle read timeout of client sockets in seconds; doubles as the keep-alive idle timeout.
    pub http_timeout: u64,
    /// `default`, `request` or `close`.
    pub http_keep_alives: String,
    /// `Server` header sent when the back end sends none.
    pub http_server_signature: String,
    /// Headers added to every response.
    pub http_response_headers: BTreeMap<String, String>,
    pub https: bool,
    pub https_port: u16,
    /// Local address of the HTTPS listener; empty = same as `http_bind_address`.
    pub https_bind_address: String,
    pub https_cert_file: String,
    pub https_key_file: String,
}

impl Default for WebServerConfig {
    fn default() -> Self {
        WebServerConfig {
            http_port: 80,
            http_bind_address: String::new(),
            http_timeout: 120,
            http_keep_alives: "default".into(),
            http_server_signature: "WebServer".into(),
            http_response_headers: BTreeMap::new(),
            https: false,
            https_port: 443,
            https_bind_address: String::new(),
            https_cert_file: String::new(),
            https_key_file: String::new(),
        }
    }
}

/// The `PixlProxy` section: global proxy settings and the pools.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyConfig {
    pub pools: PoolList,
    pub validate_ssl_certs: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            pools: PoolList::default(),
            validate_ssl_certs: true,
        }
    }
}

/// One back-end pool, as documented in PixlProxy's "Pool Configuration".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolConfig {
    pub method_match: Option<String>,
    pub host_match: Option<String>,
    pub uri_match: Option<String>,
    pub x_proxy_only: bool,
    pub target_protocol: String,
    pub target_hostname: String,
    /// 0 = the protocol's port (80 for http, 443 for https).
    pub target_port: u16,
    pub use_keep_alives: bool,
    pub cache_dns_sec: u64,
    pub http_user_agent: String,
    /// Time to first byte from the back end, in milliseconds; 0 = no limit.
    pub http_timeout_ms: u64,
    /// `USERNAME:PASSWORD` sent to the back end as HTTP Basic auth.
    pub http_basic_auth: String,
    pub append_to_x_forwarded_for: bool,
    pub preserve_host: bool,
    pub insert_request_headers: BTreeMap<String, String>,
    pub insert_response_headers: BTreeMap<String, String>,
    pub scrub_request_headers: String,
    pub scrub_response_headers: String,
}

/// PixlProxy's default for `scrub_request_headers`.
pub const DEFAULT_SCRUB_REQUEST: &str =
    r"^(host|x\-proxy|x\-proxy\-\w+|expect|content\-length|connection)$";
/// PixlProxy's default for `scrub_response_headers`.
pub const DEFAULT_SCRUB_RESPONSE: &str = r"^(transfer\-encoding)$";

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
            http_basic_auth: String::new(),
            append_to_x_forwarded_for: true,
            preserve_host: true,
            insert_request_headers: BTreeMap::new(),
            insert_response_headers: BTreeMap::new(),
            scrub_request_headers: DEFAULT_SCRUB_REQUEST.into(),
            scrub_response_headers: DEFAULT_SCRUB_RESPONSE.into(),
        }
    }
}

/// The `pools` object, kept in file order (PixlProxy checks non-default pools in config order).
#[derive(Debug, Clone, Default)]
pub struct PoolList(pub Vec<(String, PoolConfig)>);

impl<'de> Deserialize<'de> for PoolList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PoolListVisitor;
        impl<'de> Visitor<'de> for PoolListVisitor {
            type Value = PoolList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
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
