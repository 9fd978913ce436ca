//! Assembling and running the Pingora server from a compiled config.

use crate::config::RuntimeConfig;
use crate::demo_origin;
use crate::proxy::PoolProxy;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use std::sync::Arc;

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// A config value that only fails when used (e.g. an unreadable certificate): exit code 2.
    Config(String),
    /// The environment refused (e.g. the port is taken): exit code 1.
    Environment(String),
}

/// Worker threads for the proxy service: the configured number, or one per CPU.
fn worker_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn server_conf(rt: &RuntimeConfig) -> ServerConf {
    // Pingora sleeps the whole grace period on SIGTERM while in-flight requests finish, then
    // gives runtimes one more second; its own default grace is 300 s.
    ServerConf {
        threads: worker_threads(rt.threads),
        grace_period_seconds: Some(rt.shutdown_timeout_sec),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    }
}

/// Check that every listen address can be bound, so a taken port is reported clearly before
/// anything starts (Pingora itself would fail later, inside a service thread).
fn probe_listeners(rt: &RuntimeConfig) -> Result<(), StartError> {
    let mut addrs = vec![rt.front.http_addr.clone()];
    addrs.extend(rt.front.https.as_ref().map(|t| t.addr.clone()));
    if rt.demo_origin_port != 0 {
        addrs.push(demo_origin::addr(rt.demo_origin_port));
    }
    for addr in addrs {
        std::net::TcpListener::bind(&addr)
            .map_err(|e| StartError::Environment(format!("cannot listen on {addr}: {e}")))?;
    }
    Ok(())
}

/// Build the server. On success the caller runs it with `run_forever`.
pub fn build(rt: RuntimeConfig) -> Result<Server, StartError> {
    probe_listeners(&rt)?;
    let mut server = Server::new_with_opt_and_conf(Some(Opt::default()), server_conf(&rt));
    server.bootstrap();
    let front = Arc::new(rt.front);
    let app = PoolProxy::new(front.clone(), Arc::new(rt.routes));
    let mut proxy =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, app, "poolgate");
    proxy.add_tcp(&front.http_addr);
    if let Some(tls) = &front.https {
        proxy
            .add_tls(&tls.addr, &tls.cert_file, &tls.key_file)
            .map_err(|e| {
                StartError::Config(format!("WebServer.https_cert_file / https_key_file: {e}"))
            })?;
    }
    server.add_service(proxy);
    if rt.demo_origin_port != 0 {
        server.add_service(demo_origin::service(rt.demo_origin_port));
    }
    if !rt.pid_file.is_empty() {
        std::fs::write(&rt.pid_file, format!("{}\n", std::process::id()))
            .map_err(|e| StartError::Environment(format!("pid_file {}: {e}", rt.pid_file)))?;
    }
    Ok(server)
}
