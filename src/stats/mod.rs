//! Statistics.

pub mod acl;
pub mod activity;
pub mod api;
pub mod hub;
pub mod metrics;
pub mod second;
pub mod sockets;
pub mod web_log;
