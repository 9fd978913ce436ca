//! poolgate: a PixlProxy-compatible HTTP reverse proxy built on Cloudflare's Pingora.
//!
//! Module map (each named after the concept it owns):
//! - `config`: reading, auditing and compiling the config file.
//! - `routing`: which pool a request goes to.
//! - `pool`: a pool's runtime form; `targets`: its back ends and load balancing; `health`:
//!   active health checks; `dns`: resolving host names.
//! - `headers`: request and response header rewriting.
//! - `limits` and `client_limit`: pool throttling (429); `connection_limit`: the client
//!   connection cap.
//! - `retry`, `redirect`: retry and redirect policy; `exchange`: the buffered exchange that
//!   applies them; `request_body`: keeping request bodies for it.
//! - `activity`: per-second pool activity; `degraded`: the `X-Degraded` hint; `clock`.
//! - `queue`: the blind queue (`use_queue`), its durable journal and its background sender;
//!   `request_id`: the ids it answers with.
//! - `front_end`: listeners and client keep-alive policy; `static_files`: answering unrouted
//!   requests from `http_htdocs_dir` (`serve_static_files`).
//! - `proxy`: the Pingora `ProxyHttp` hooks, delegating to the modules above; `request_ctx`:
//!   the state one request carries between them.
//! - `failure`, `reply` and `request_log`: what the client and the log get; `event_log`: the
//!   PixlProxy-format event log file; `transaction_log` and `perf`: its per-request lines.
//! - `server`: assembling the Pingora server; `demo_origin`: the sample config's origin.

pub mod admission;
pub mod cli;
pub mod clock;
pub mod config;
pub mod event_log;
pub mod front_end;
pub mod pool;
pub mod proxy;
pub mod queue;
pub mod server;
pub mod stats;
pub mod timing;

pub use cli::main;
