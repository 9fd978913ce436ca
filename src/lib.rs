//! poolgate: a PixlProxy-compatible HTTP reverse proxy built on Cloudflare's Pingora.
//!
//! The folders follow a request and depend one way only, from the top down:
//!
//! - `cli`: the command line, the control commands, the systemd unit.
//! - `config`: the file model and the environment, validated into plain settings.
//! - `server`: the runtime built from the settings — listeners, certificates, the
//!   connection cap, shutdown, privileges, the demo origin.
//! - `proxy`: the `ProxyHttp` hooks, the request context, the end of a request, the answers
//!   poolgate writes itself, the buffered exchange and the WebSocket tunnel.
//! - The concepts the proxy hands each request to: `front_end` (client facts, keep-alive,
//!   HTTPS policy, upload limit, compression, static files), `pool` (routing, targets and
//!   health, DNS, header rules, retry, redirects, degraded hints), `admission` (pool and
//!   per-client limits), `upstream` (the one attempt to a back end), `queue` (the blind
//!   queue), `stats` (per-second figures, the stats API, Prometheus, connections) and
//!   `event_log` (the event log and its lines).
//! - `cluster`: cluster mode's Redis engine (connection, circuit breaker, heartbeat, scripts),
//!   which `admission` and `queue` share their limits and queues through.
//! - The leaf everything may use: `timing` (wall-clock seconds and uptime in `timing::clock`,
//!   the phase timer).
//!
//! The library's public surface is the binary's entry point ([`main`]) and what the
//! micro-benchmarks drive ([`bench`](mod@bench)).

#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

mod admission;
pub mod bench;
mod cli;
mod cluster;
mod config;
mod event_log;
mod front_end;
mod pool;
mod proxy;
mod queue;
mod server;
mod stats;
mod timing;
mod upstream;

pub use cli::main;
