//! The typed `WebServer` section: pixl-server-web's keys that poolgate implements, with their
//! defaults, plus poolgate's own front-end keys.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The front end (pixl-server-web's `WebServer` keys that poolgate implements).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct WebServerConfig {
    pub(crate) http_port: u16,
    /// Local address to listen on; empty = all addresses.
    pub(crate) http_bind_address: String,
    /// Idle read timeout of client sockets in seconds; doubles as the keep-alive idle timeout.
    pub(crate) http_timeout: u64,
    /// `default`, `request` or `close`.
    pub(crate) http_keep_alives: String,
    /// `Server` header sent when the back end sends none.
    pub(crate) http_server_signature: String,
    /// Headers added to every response.
    pub(crate) http_response_headers: BTreeMap<String, String>,
    /// Headers added to responses by status code (`{"429": {"Retry-After": "10"}}`); null
    /// (the default) = none.
    pub(crate) http_code_response_headers: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Strip what is not printable ASCII from every response header value.
    pub(crate) http_clean_headers: bool,
    pub(crate) https: bool,
    pub(crate) https_port: u16,
    /// Local address of the HTTPS listener; empty = same as `http_bind_address`.
    pub(crate) https_bind_address: String,
    pub(crate) https_cert_file: String,
    pub(crate) https_key_file: String,
    /// Where request bodies of in-memory blind queues are spooled; empty = the system's temp dir.
    pub(crate) http_temp_dir: String,
    /// Largest request body accepted for a blind queue, in bytes (pixl-server-web: 32 MB).
    pub(crate) http_max_upload_size: u64,
    /// Most client connections open at once; the one beyond is hard-closed. 0 = no limit.
    pub(crate) http_max_connections: usize,
    /// Addresses and CIDR blocks allowed to read the stats API (and `/metrics`).
    pub(crate) http_default_acl: Vec<String>,
    /// Write a `WebServer` transaction line per client request.
    pub(crate) http_log_requests: bool,
    /// Only requests whose URI matches are logged by `http_log_requests`.
    pub(crate) http_regex_log: String,
    /// Recent requests listed in the stats API's `web.recent`.
    pub(crate) http_recent_requests: usize,
    /// With `https`: redirect plain-HTTP requests to HTTPS (301).
    pub(crate) https_force: bool,
    /// Request header name -> regex: a match means the client came over HTTPS (a load
    /// balancer in front terminated TLS).
    pub(crate) https_header_detect: BTreeMap<String, String>,
    /// poolgate: add HSTS (HTTPS only), X-Content-Type-Options, X-Frame-Options,
    /// Referrer-Policy and a Content-Security-Policy to responses that lack them.
    pub(crate) secure_headers: bool,
    /// poolgate: extra CSP sources per directive (`default`, `script`, `style`, `img`, `font`,
    /// `connect`, `frame`, `media`, `object`).
    pub(crate) csp_allowed: BTreeMap<String, Vec<String>>,
    /// Directory static files are served from (`PixlProxy.serve_static_files`); relative to
    /// the working directory at start.
    pub(crate) http_htdocs_dir: String,
    /// File served for a directory.
    pub(crate) http_static_index: String,
    /// `Cache-Control: public, max-age=<ttl>` of static files, in seconds.
    pub(crate) http_static_ttl: u64,
    /// Compress text responses the back end did not encode (`http_gzip_text` is the legacy
    /// name; either one turns it on).
    pub(crate) http_compress_text: bool,
    pub(crate) http_gzip_text: bool,
    /// Regex over the response `Content-Type`: only matching responses are compressed.
    pub(crate) http_regex_text: String,
    /// zlib options; poolgate reads `level` (1-9, default 6).
    pub(crate) http_gzip_opts: CompressOptions,
    /// Prefer brotli when the client accepts it.
    pub(crate) http_enable_brotli: bool,
    /// brotli options; poolgate reads `level` (1-11, default 4).
    pub(crate) http_brotli_opts: CompressOptions,
    /// poolgate: offer HTTP/2 on the HTTPS listener (ALPN `h2`, falling back to HTTP/1.1).
    pub(crate) https_http2: bool,
    /// poolgate: let returning clients resume their TLS sessions (tickets, and a cache of
    /// sessions for clients without tickets); `false`: every handshake is a full one.
    pub(crate) https_session_resumption: bool,
    /// poolgate: the secret the session tickets' keys are derived from, shared by the
    /// processes of a zero-downtime reload (and by instances given the same file); empty =
    /// `<log_dir>/poolgate-tls-tickets.key`, created at first start.
    pub(crate) https_ticket_key_file: String,
    /// poolgate: accept cleartext HTTP/2 (prior knowledge, `h2c`) on the HTTP listener.
    pub(crate) http_h2c: bool,
    /// poolgate: more certificates, selected by the name the client asks for (SNI):
    /// host name (or `*.domain`) -> `{cert_file, key_file}`. Other names get `https_cert_file`.
    pub(crate) https_sni_certs: BTreeMap<String, CertFiles>,
    /// poolgate: largest request head (request line and headers) in bytes; beyond it 431.
    pub(crate) http_max_header_size: usize,
    /// poolgate: longest request line in bytes; beyond it 414.
    pub(crate) http_max_request_line: usize,
    /// poolgate: most header fields of a request; beyond it 431.
    pub(crate) http_max_header_count: usize,
    /// poolgate: seconds from a request head's first byte to its end; then 408. 0 = none.
    pub(crate) http_header_timeout: u64,
    /// poolgate: let a request with both `Content-Length` and `Transfer-Encoding` through
    /// (chunked wins, the connection closes after it) instead of refusing it with 400.
    pub(crate) http_allow_te_and_cl: bool,
    /// More HTTP ports, served like `http_port`.
    pub(crate) http_alt_ports: Vec<u16>,
    /// More HTTPS ports, served like `https_port`.
    pub(crate) https_alt_ports: Vec<u16>,
    /// PEM chain served after the certificate (`chain.pem`); empty = none.
    pub(crate) https_ca_file: String,
    /// Idle timeout of HTTPS client sockets in seconds (HTTP ones: `http_timeout`).
    pub(crate) https_timeout: u64,
    /// Hard limit on a whole request in seconds (then 408); 0 = none.
    pub(crate) http_request_timeout: u64,
    /// Idle seconds between keep-alive requests before the connection is closed.
    pub(crate) http_keep_alive_timeout: u64,
    /// Seconds a new socket has to send its first request before it is closed; 0 = none.
    pub(crate) http_socket_prelim_timeout: u64,
    /// Requests served on one connection before `Connection: close`; 0 = no limit.
    pub(crate) http_max_requests_per_connection: u32,
    /// Requests processed at once; more wait in arrival order. 0 = no limit (no queue).
    pub(crate) http_max_concurrent_requests: usize,
    /// Requests that may wait; beyond it 429. 0 = no limit.
    pub(crate) http_max_queue_length: usize,
    /// Requests in progress beyond which new ones get 429 at once instead of waiting. 0 = off.
    pub(crate) http_max_queue_active: usize,
    /// URIs matching this regex skip the queue; `false` = none.
    #[serde(deserialize_with = "super::forms::optional_pattern")]
    pub(crate) http_queue_skip_uri_match: Option<String>,
    /// Which address of the request's chain (proxy headers, then the socket) is the client's:
    /// 0 = the first public one; negative = counted from the end (-1 = the socket).
    pub(crate) http_public_ip_offset: i64,
    /// With `http_log_requests`: headers, cookies, query, text bodies and the response too.
    pub(crate) http_log_request_details: bool,
    /// Longest request or response body logged with the details, in bytes.
    pub(crate) http_log_body_max: u64,
    /// Write a `perf` line for requests taking at least `http_perf_threshold_ms`.
    pub(crate) http_log_perf: bool,
    pub(crate) http_perf_threshold_ms: u64,
    /// Client sockets closed mid-request are error lines (`false`: level 9 debug lines).
    pub(crate) http_log_socket_errors: bool,
    /// Write a JSON dump of the connections and requests when the front end is maxed out.
    pub(crate) http_req_max_dump_enabled: bool,
    /// Directory of the dumps (created if needed); empty = `log_dir`.
    pub(crate) http_req_max_dump_dir: String,
    /// Seconds between dumps at least.
    pub(crate) http_req_max_dump_debounce: u64,
}

/// Options of a compressor (Node's zlib / brotli options). Only `level` is used; the rest are
/// accepted so a pixl-server-web config loads unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CompressOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) level: Option<u32>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, serde_yaml::Value>,
}

/// A certificate chain and its private key (PEM files).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertFiles {
    pub(crate) cert_file: String,
    pub(crate) key_file: String,
}

/// pixl-server-web's default ACL: localhost plus the private ranges.
pub(super) fn default_acl() -> Vec<String> {
    [
        "127.0.0.1/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::1/128",
        "fd00::/8",
        "169.254.0.0/16",
        "fe80::/10",
    ]
    .map(String::from)
    .to_vec()
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
            http_code_response_headers: None,
            http_clean_headers: false,
            https: false,
            https_port: 443,
            https_bind_address: String::new(),
            https_cert_file: String::new(),
            https_key_file: String::new(),
            http_temp_dir: String::new(),
            http_max_upload_size: 32 * 1024 * 1024,
            http_max_connections: 0,
            http_default_acl: default_acl(),
            http_log_requests: false,
            http_regex_log: ".+".into(),
            http_recent_requests: 10,
            https_force: false,
            https_header_detect: BTreeMap::new(),
            secure_headers: false,
            csp_allowed: BTreeMap::new(),
            http_compress_text: false,
            http_gzip_text: false,
            http_regex_text: "(text|javascript|json|css|html)".into(),
            http_gzip_opts: CompressOptions::default(),
            http_enable_brotli: false,
            http_brotli_opts: CompressOptions::default(),
            https_http2: true,
            https_session_resumption: true,
            https_ticket_key_file: String::new(),
            http_h2c: false,
            https_sni_certs: BTreeMap::new(),
            http_htdocs_dir: "htdocs".into(),
            http_static_index: "index.html".into(),
            http_static_ttl: 0,
            http_max_header_size: 32 * 1024,
            http_max_request_line: 8 * 1024,
            http_max_header_count: 100,
            http_header_timeout: 30,
            http_allow_te_and_cl: false,
            http_alt_ports: Vec::new(),
            https_alt_ports: Vec::new(),
            https_ca_file: String::new(),
            https_timeout: 120,
            http_request_timeout: 0,
            http_keep_alive_timeout: 5,
            http_socket_prelim_timeout: 0,
            http_max_requests_per_connection: 0,
            http_max_concurrent_requests: 0,
            http_max_queue_length: 0,
            http_max_queue_active: 0,
            http_queue_skip_uri_match: None,
            http_public_ip_offset: 0,
            http_log_request_details: false,
            http_log_body_max: 32768,
            http_log_perf: false,
            http_perf_threshold_ms: 100,
            http_log_socket_errors: true,
            http_req_max_dump_enabled: false,
            http_req_max_dump_dir: String::new(),
            http_req_max_dump_debounce: 10,
        }
    }
}
