//! The config file as typed data: the model of its keys with PixlProxy's defaults (`model.rs`,
//! `web_server.rs`, `forms.rs`), the reading of YAML or JSON with line numbers (`parse.rs`)
//! after a check of its size and nesting (`limits.rs`), the line and column of a key path
//! (`locate.rs`), the environment's overrides (`env.rs`) and the audit of unknown or unused
//! keys (`keys.rs`).
//!
//! Uses `config::problem` and the redaction of `event_log` (for `showconfig`).

pub(crate) mod env;
mod forms;
mod keys;
pub(crate) mod limits;
pub(crate) mod locate;
mod model;
pub(crate) mod parse;
mod web_server;

pub(crate) use model::{FileConfig, HealthCheckConfig, PoolConfig};
#[cfg(test)]
pub(crate) use model::{DEFAULT_SCRUB_REQUEST, DEFAULT_SCRUB_RESPONSE, DEFAULT_SUCCESS_MATCH};
pub(crate) use web_server::{CompressOptions, WebServerConfig};
