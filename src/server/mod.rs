//! Assembling and running the Pingora server from a compiled config.

pub mod connection_limit;
pub mod demo_origin;
pub mod privileges;
pub mod shutdown;
pub mod startup;
pub mod tls;

use crate::config::RuntimeConfig;
use crate::front_end::FrontEnd;
use crate::pool::routing::RouteTable;
use crate::pool::TargetSet;
use crate::proxy::PoolProxy;
use crate::queue::QueueSender;
use crate::server::connection_limit::{ConnectionLimit, LimitedApp, KEEPALIVE_DRAIN};
use crate::server::privileges::PrivilegeDrop;
use crate::server::shutdown::ShutdownMonitor;
use crate::stats::hub::{StatsHub, StatsTicker};
use crate::stats::sockets::SocketTable;
use pingora::apps::{HttpServerOptions, ServerApp};
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
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
    // Pingora caps attempts per request at `max_retries`; poolgate counts retries itself, so
    // the cap only has to stay out of the way.
    let most_retries = rt
        .routes
        .pools()
        .iter()
        .map(|p| p.retry.retries)
        .max()
        .unwrap_or(0);
    ServerConf {
        threads: worker_threads(rt.threads),
        grace_period_seconds: Some(rt.shutdown_timeout_sec),
        graceful_shutdown_timeout_seconds: Some(1),
        max_retries: (most_retries as usize + 2).max(16),
        upgrade_sock: rt.upgrade_sock.display().to_string(),
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

/// The proxy service with its listeners.
fn listen<A: ServerApp + Send + Sync + 'static>(
    app: A,
    front: &FrontEnd,
) -> Result<Service<A>, StartError> {
    let mut service = Service::new("poolgate".to_string(), app);
    service.add_tcp(&front.http_addr);
    if let Some(tls) = &front.https {
        let settings =
            crate::server::tls::tls_settings(tls, tls.http2).map_err(StartError::Config)?;
        service.add_tls_with_settings(&tls.addr, None, settings);
    }
    Ok(service)
}

/// Client-side protocol options: cleartext HTTP/2 (`http_h2c`) and, since HTTP/2 connections
/// have no idle timeout of their own, `http_timeout` for them too.
fn server_options(front: &FrontEnd) -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2c = front.h2c;
    if front.idle_timeout_sec > 0 {
        options.h2_idle_timeout = Some(std::time::Duration::from_secs(front.idle_timeout_sec));
    }
    options
}

/// Resolve balanced targets once before serving, then keep them resolved and health-checked
/// in Pingora background services.
fn start_balancers(routes: &RouteTable, server: &mut Server) -> Result<(), StartError> {
    let balancers: Vec<_> = routes
        .pools()
        .iter()
        .filter_map(|p| match &p.targets {
            TargetSet::Balanced { balancer, .. } => Some(balancer),
            TargetSet::Single(_) => None,
        })
        .collect();
    if balancers.is_empty() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::Environment(format!("cannot start a runtime: {e}")))?;
    for balancer in balancers {
        // A failed first resolution is not fatal: the background service retries it.
        if let Err(e) = runtime.block_on(balancer.prime()) {
            log::warn!("resolving targets: {e}");
        }
        balancer.add_background_service(server);
    }
    Ok(())
}

/// The blind queues' background service, after checking that every journal directory can be
/// written (so a bad `queue_dir` stops the start instead of failing requests later).
fn queue_sender(
    routes: &RouteTable,
    server: &Server,
    shutdown_timeout_sec: u64,
) -> Result<Option<QueueSender>, StartError> {
    for pool in routes.pools() {
        let Some(queue) = &pool.queue else { continue };
        for dir in queue
            .settings
            .journal_dir
            .iter()
            .chain([&queue.settings.spool_dir])
        {
            check_writable(dir).map_err(|e| {
                StartError::Environment(format!(
                    "pool {}: queue directory {}: {e}",
                    pool.id,
                    dir.display()
                ))
            })?;
        }
    }
    let connector = Connector::new(Some(ConnectorOptions::from_server_conf(
        &server.configuration,
    )));
    let drain = std::time::Duration::from_secs(shutdown_timeout_sec);
    Ok(QueueSender::new(routes.pools(), connector, drain))
}

fn check_writable(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".poolgate-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// Build the server. On success the caller runs it with `run_forever`.
///
/// With `upgrade`, the listeners are taken over from the running process (Pingora's graceful
/// upgrade: it hands them over on `upgrade_sock` when it gets SIGQUIT) instead of being bound.
pub fn build(rt: RuntimeConfig, upgrade: bool) -> Result<Server, StartError> {
    if !upgrade {
        probe_listeners(&rt)?;
    }
    let pid_file = rt.pid_file_path();
    let rt_shutdown = rt.shutdown_timeout_sec;
    let listen_file = crate::cli::control::listen_file(&rt);
    let listen_addrs = crate::cli::control::listen_addrs(&rt).join("\n");
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), server_conf(&rt));
    server.bootstrap();
    start_balancers(&rt.routes, &mut server)?;
    let front = Arc::new(rt.front);
    let connector = Connector::new(Some(ConnectorOptions::from_server_conf(
        &server.configuration,
    )));
    let queues = queue_sender(&rt.routes, &server, rt.shutdown_timeout_sec)?;
    // Connections are always counted (the stats' `cur_client_conns`); 0 = no limit.
    let connections = ConnectionLimit::new(front.max_connections);
    let ip = front
        .http_addr
        .rsplit_once(':')
        .map_or(String::new(), |(ip, _)| ip.to_string());
    let web_log = Arc::new(rt.web_log);
    let pools = rt.routes.pools().to_vec();
    let monitor = ShutdownMonitor {
        connections: connections.clone(),
        queues: pools.iter().filter_map(|p| p.queue.clone()).collect(),
        pid_file: Some(pid_file.clone()),
        timeout: std::time::Duration::from_secs(rt.shutdown_timeout_sec),
    };
    server.add_service(background_service("shutdown", monitor));
    if rt.identity.uid.is_some() || rt.identity.gid.is_some() {
        let drop = PrivilegeDrop {
            identity: rt.identity,
            addr: front.http_addr.clone(),
        };
        server.add_service(background_service("privileges", drop));
    }
    let sockets = Arc::new(SocketTable::default());
    let hub = Arc::new(StatsHub::new(
        pools,
        web_log.clone(),
        connections.clone(),
        sockets.clone(),
        ip,
    ));
    server.add_service(background_service("stats", StatsTicker(hub.clone())));
    let app = PoolProxy {
        front: front.clone(),
        routes: Arc::new(rt.routes),
        connector: Arc::new(connector),
        stats: hub,
        stats_api: Arc::new(rt.stats_api),
        web_log,
    };
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, app);
    proxy.server_options = Some(server_options(&front));
    let drain = std::time::Duration::from_secs(rt_shutdown).min(KEEPALIVE_DRAIN);
    let app = LimitedApp::new(proxy, connections, sockets, drain);
    let service = listen(app, &front)?;
    let proxy_handle = server.add_service(service);
    if let Some(sender) = queues {
        // Journals are open and replayed before the first request is accepted.
        let handle = server.add_service(background_service("blind queue", sender));
        proxy_handle.add_dependency(&handle);
    }
    if rt.demo_origin_port != 0 {
        server.add_service(demo_origin::service(rt.demo_origin_port));
        let ready = demo_origin::DemoOriginReady(rt.demo_origin_port);
        let gate = server.add_service(background_service("demo origin ready", ready));
        proxy_handle.add_dependency(&gate);
    }
    if let Some(dir) = pid_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .map_err(|e| StartError::Environment(format!("pid_file {}: {e}", pid_file.display())))?;
    // What a later `reload` compares its config's listeners with.
    let _ = std::fs::write(&listen_file, listen_addrs + "\n");
    Ok(server)
}
