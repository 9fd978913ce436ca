//! poolgate: a PixlProxy-compatible HTTP reverse proxy built on Cloudflare's Pingora.
//!
//! Module map (each named after the concept it owns):
//! - `config`: reading, auditing and compiling the config file.
//! - `routing`: which pool a request goes to.
//! - `pool`: a pool's back end and how to connect to it; `dns`: resolving it.
//! - `headers`: request and response header rewriting.
//! - `front_end`: listeners and client keep-alive policy.
//! - `proxy`: the Pingora `ProxyHttp` hooks, delegating to the modules above.
//! - `failure` and `reply`: what the client gets when proxying fails.
//! - `server`: assembling the Pingora server; `demo_origin`: the sample config's origin.

pub mod config;
pub mod demo_origin;
pub mod dns;
pub mod failure;
pub mod front_end;
pub mod headers;
pub mod pool;
pub mod proxy;
pub mod reply;
pub mod routing;
pub mod server;
