//! End-to-end tests: the real poolgate binary, real origins on loopback, real HTTP clients.

mod balancing;
mod browser;
mod check;
mod cli;
mod client_identity;
mod cluster;
mod connections;
mod content_encoding;
mod control;
mod edge_scale;
mod event_log;
mod forwarding;
mod front_door;
mod front_end;
mod harness;
mod http2;
mod https_options;
mod live_page;
mod logging;
mod origin;
mod queue;
mod redis;
mod reload;
mod response_headers;
mod retries;
mod routing;
mod static_files;
mod stats;
mod throttling;
mod timeouts;
mod tls;
mod tls_resumption;
mod upload_limit;
mod websocket;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A config with the HTTP listener on `$PORT` (loopback) and the given `pools` map (YAML flow
/// or block text), plus extra `WebServer` lines.
pub fn config_with(web_extra: &str, pools: &str) -> String {
    format!(
        "threads: 2\nshutdown_timeout_sec: 1\nWebServer:\n  http_port: $PORT\n  http_bind_address: 127.0.0.1\n{web_extra}PixlProxy:\n  pools: {pools}\n"
    )
}

pub fn config(pools: &str) -> String {
    config_with("", pools)
}

/// Send raw bytes and read the reply until the server closes or 5 s pass.
pub fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON the echo origin returns for a described request.
pub async fn described(resp: reqwest::Response) -> serde_json::Value {
    assert_eq!(resp.status(), 200, "unexpected status");
    resp.json().await.expect("json body")
}

/// A header the origin saw, from its JSON description.
pub fn seen<'a>(desc: &'a serde_json::Value, header: &str) -> Option<&'a str> {
    desc["headers"][header].as_str()
}
