//! The server: builds every runtime object from the `Settings` config produced, each by its
//! owner, assembles the Pingora server and runs it. Owns the listen addresses
//! (`listeners.rs`), TLS (`tls.rs`, session tickets in `tickets.rs`), the client listeners that
//! accept every connection (`client_listener.rs`, its socket in `client_socket.rs`), the front
//! door every connection passes (`front_door.rs`: the client connection cap of
//! `connection_limit.rs`, request heads read and checked by `head_reader.rs`), the graceful
//! shutdown (`shutdown.rs`), `uid`/`gid`/`nice` (`privileges.rs`), the open-file limit raised
//! to the hard limit (`open_files.rs`), the startup lines (`startup.rs`) and the sample
//! config's origin (`demo_origin.rs`).
//!
//! Uses `proxy` and every concept folder below it; `config` uses its settings types.

mod client_listener;
mod client_socket;
mod connection_limit;
mod demo_origin;
mod front_door;
mod head_reader;
mod listeners;
mod open_files;
mod privileges;
mod settings;
mod shutdown;
mod startup;
mod tickets;
mod tls;

pub(crate) use listeners::{listen_addr, local_addr};
pub(crate) use privileges::{identity, Identity, IdentityError};
pub(crate) use settings::{
    ListenerSettings, PoolEntry, ProcessSettings, Settings, TlsListener, TICKET_SECRET_MIN,
};

use crate::cluster::{Cluster, ClusterHeartbeat};
use crate::event_log::{self, EventLogSettings, WebLog};
use crate::front_end::{FrontEnd, RequestQueue};
use crate::pool::{Pool, RouteTable};
use crate::proxy::PoolProxy;
use crate::queue::{BlindQueue, QueueSender, QueueTable};
use crate::stats::{History, PoolFigures, PoolStats, PoolView, QueueGauges, RecentRequests};
use crate::stats::{Recording, StatsHub};
use crate::stats::{SocketTable, StatsSettings, StatsTicker};
use client_listener::{ClientListener, ClientListeners};
use connection_limit::ConnectionLimit;
use front_door::{FrontDoor, FrontDoorParts, KEEPALIVE_DRAIN};
use pingora::apps::HttpServerOptions;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use privileges::PrivilegeDrop;
use shutdown::ShutdownMonitor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// A certificate that only fails when loaded: a config problem (exit code 2).
    #[error("{0}")]
    Certificate(#[from] tls::CertificateError),
    /// The port is taken, or not ours to bind (exit code 1).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("event log {}: {source}", path.display())]
    EventLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Nice(#[from] privileges::NiceError),
    #[error("pool {pool}: queue directory {}: {source}", dir.display())]
    QueueDir {
        pool: String,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("pid_file {}: {source}", path.display())]
    PidFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
}

impl StartError {
    /// Whether the config is at fault (exit code 2) rather than the environment (1).
    pub(crate) fn is_config(&self) -> bool {
        matches!(self, StartError::Certificate(_))
    }
}

/// Where `serve` notes its listen addresses, next to the pid file.
pub(crate) fn listen_file(process: &ProcessSettings) -> PathBuf {
    let mut path = process.pid_file.clone().into_os_string();
    path.push(".listen");
    PathBuf::from(path)
}

/// Start the event log, then build and run the server until it is stopped. `echo` prints the
/// event log too; `upgrade` takes the listeners over from the running process (Pingora's
/// graceful upgrade: it hands them over on `upgrade_sock` when it gets SIGQUIT).
pub(crate) fn run(
    settings: Settings,
    config_path: &Path,
    echo: bool,
    upgrade: bool,
) -> Result<std::convert::Infallible, StartError> {
    crate::timing::clock::mark_start();
    let process = &settings.process;
    let log = EventLogSettings {
        path: process.log_path.clone(),
        debug_level: process.debug_level,
        echo,
        secrets: settings.secrets.clone(),
        options: settings.logging.clone(),
    };
    event_log::start(log).map_err(|source| StartError::EventLog {
        path: process.log_path.clone(),
        source,
    })?;
    event_log::init_logging(process.debug_level);
    privileges::set_nice(process.nice)?;
    startup::announce(&settings, config_path);
    let open_files = open_files::raise_open_file_limit();
    open_files::report(open_files, settings.listeners.max_connections);
    if settings.pools.is_empty() && settings.front_end.static_files.is_none() {
        log::warn!("no pools configured: every request will be answered 404");
    }
    let server = build(settings, upgrade)?;
    log::info!(
        "poolgate {} serving with config {}",
        env!("CARGO_PKG_VERSION"),
        config_path.display()
    );
    server.run_forever()
}

/// Worker threads for the proxy service: the configured number, or one per CPU.
fn worker_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn server_conf(s: &Settings) -> ServerConf {
    // Pingora sleeps the whole grace period on SIGTERM while in-flight requests finish, then
    // gives runtimes one more second; its own default grace is 300 s.
    // Pingora caps attempts per request at `max_retries`; poolgate counts retries itself, so
    // the cap only has to stay out of the way.
    let most_retries = s
        .pools
        .iter()
        .map(|p| p.pool.retry.retries)
        .max()
        .unwrap_or(0);
    ServerConf {
        threads: worker_threads(s.process.threads),
        grace_period_seconds: Some(s.process.shutdown_timeout.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        max_retries: (most_retries as usize + 2).max(16),
        upgrade_sock: s.process.upgrade_sock.display().to_string(),
        ..Default::default()
    }
}

/// Every client listener: plain HTTP, then HTTPS with its certificates.
fn client_listeners(listeners: &ListenerSettings) -> Result<Vec<ClientListener>, StartError> {
    let mut all: Vec<ClientListener> = std::iter::once(&listeners.http_addr)
        .chain(&listeners.http_alt_addrs)
        .map(|addr| ClientListener {
            addr: addr.clone(),
            tls: None,
        })
        .collect();
    if let Some(https) = &listeners.https {
        // One acceptor (certificates loaded once) for the main and the alt ports.
        let acceptor = Arc::new(tls::acceptor(https)?);
        for addr in std::iter::once(&https.addr).chain(&https.alt_addrs) {
            all.push(ClientListener {
                addr: addr.clone(),
                tls: Some(acceptor.clone()),
            });
        }
    }
    Ok(all)
}

/// Client-side protocol options: cleartext HTTP/2 (`http_h2c`) and, since HTTP/2 connections
/// have no idle timeout of their own, `http_timeout` for them too.
fn server_options(listeners: &ListenerSettings, idle_timeout_sec: u64) -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2c = listeners.h2c;
    if idle_timeout_sec > 0 {
        options.h2_idle_timeout = Some(Duration::from_secs(idle_timeout_sec));
    }
    options
}

/// HTTP/2 as Pingora sets it up, the header block bounded by `http_max_header_size` (431).
fn h2_options(max_head_size: usize) -> pingora::protocols::http::v2::server::H2Options {
    let mut options = pingora::protocols::http::v2::server::default_h2_options();
    options.max_header_list_size(u32::try_from(max_head_size).unwrap_or(u32::MAX));
    options
}

/// Resolve balanced targets once before serving, then keep them resolved and health-checked
/// in Pingora background services.
fn start_balancers(pools: &[Arc<Pool>], server: &mut Server) -> Result<(), StartError> {
    let balancers: Vec<_> = pools.iter().filter_map(|p| p.targets.balancer()).collect();
    if balancers.is_empty() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    for balancer in balancers {
        // A failed first resolution is not fatal: the background service retries it.
        if let Err(e) = runtime.block_on(balancer.prime()) {
            log::warn!("resolving targets: {e}");
        }
        balancer.add_background_service(server);
    }
    Ok(())
}

/// Check that every queue directory can be written: a bad `queue_dir` stops the start.
fn check_queue_dirs(pools: &[Arc<Pool>], queues: &QueueTable) -> Result<(), StartError> {
    for (index, queue) in queues.iter() {
        let settings = &queue.settings;
        for dir in settings.journal_dir.iter().chain([&settings.spool_dir]) {
            check_writable(dir).map_err(|source| StartError::QueueDir {
                pool: pools
                    .get(index)
                    .map_or_else(String::new, |p| p.id.to_string()),
                dir: dir.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

fn check_writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".poolgate-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// The pools and their queues, each built from its settings, in config order; in cluster
/// mode their limits and queues are shared unless the pool opts out (`cluster_limits`,
/// `cluster_queue`).
fn build_pools(
    entries: Vec<PoolEntry>,
    cluster: Option<&Arc<Cluster>>,
) -> (Vec<Arc<Pool>>, QueueTable) {
    let mut pools = Vec::with_capacity(entries.len());
    let mut queues = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let id = entry.pool.id.clone();
        let limits = cluster.filter(|_| entry.cluster_limits);
        pools.push(Arc::new(Pool::new(index, entry.pool, limits)));
        let shared = cluster.filter(|_| entry.cluster_queue);
        queues.push(
            entry
                .queue
                .map(|settings| BlindQueue::new(settings, shared.map(|c| (c, id.as_str())))),
        );
    }
    (pools, QueueTable::new(queues))
}

/// The stats hub: every pool's counters, the web server's own figures (kept only when the
/// stats API can show them), the connections.
fn stats_hub(
    pools: &[Arc<Pool>],
    queues: &QueueTable,
    stats: &StatsSettings,
    listeners: &ListenerSettings,
    connections: Arc<ConnectionLimit>,
    sockets: Arc<SocketTable>,
    request_queue: Arc<RequestQueue>,
) -> StatsHub {
    let figures = pools
        .iter()
        .map(|p| PoolFigures {
            id: p.id.clone(),
            stats: p.stats.clone(),
            queue: queues
                .of(p.index)
                .map(|q| q.clone() as Arc<dyn QueueGauges>),
            view: p.clone() as Arc<dyn PoolView>,
            history: History::default(),
        })
        .collect();
    let web = match stats.api.uri.is_some() {
        true => Recording::Full,
        false => Recording::Off,
    };
    let ip = listeners
        .http_addr
        .rsplit_once(':')
        .map_or(String::new(), |(ip, _)| ip.to_string());
    StatsHub::new(
        figures,
        PoolStats::new(web),
        RecentRequests::new(stats.recent_requests),
        sockets,
        connections,
        ip,
        request_queue,
    )
}

/// Build the server. On success the caller runs it with `run_forever`.
fn build(s: Settings, upgrade: bool) -> Result<Server, StartError> {
    if !upgrade {
        let mut addrs = s.listeners.addrs();
        if s.process.demo_origin_port != 0 {
            addrs.push(demo_origin::addr(s.process.demo_origin_port));
        }
        listeners::probe(&addrs)?;
    }
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), server_conf(&s));
    server.bootstrap();
    let Settings {
        process,
        listeners,
        front_end,
        pools,
        stats,
        request_log,
        cluster,
        ..
    } = s;
    let idle_timeout_sec = front_end.idle_timeout_sec;
    let max_head_size = front_end.head_limits.max_size;
    let cluster = cluster.map(Cluster::new);
    let (pools, queues) = build_pools(pools, cluster.as_ref());
    start_balancers(&pools, &mut server)?;
    check_queue_dirs(&pools, &queues)?;
    let conf = server.configuration.clone();
    let connector = || Connector::new(Some(ConnectorOptions::from_server_conf(&conf)));
    let queued: Vec<_> = queues
        .iter()
        .filter_map(|(i, q)| Some((pools.get(i)?.clone(), q.clone())))
        .collect();
    let sender = QueueSender::new(queued, connector(), process.shutdown_timeout);
    // Connections are always counted (the stats' `cur_client_conns`); 0 = no limit.
    let connections = ConnectionLimit::new(listeners.max_connections);
    let monitor = ShutdownMonitor {
        connections: connections.clone(),
        queues: queues.iter().map(|(_, q)| q.clone()).collect(),
        pid_file: Some(process.pid_file.clone()),
        timeout: process.shutdown_timeout,
    };
    server.add_service(background_service("shutdown", monitor));
    if process.identity.uid.is_some() || process.identity.gid.is_some() {
        let drop = PrivilegeDrop {
            identity: process.identity,
            addr: listeners.http_addr.clone(),
        };
        server.add_service(background_service("privileges", drop));
    }
    let sockets = Arc::new(SocketTable::default());
    let front = Arc::new(FrontEnd::new(front_end));
    let hub = Arc::new(
        stats_hub(
            &pools,
            &queues,
            &stats,
            &listeners,
            connections.clone(),
            sockets.clone(),
            front.request_queue.clone(),
        )
        .with_cluster(cluster.clone()),
    );
    server.add_service(background_service("stats", StatsTicker(hub.clone())));
    let dumped = hub.clone();
    event_log::dump_source(move || dumped.document());
    let web_log = Arc::new(WebLog::new(request_log));
    let app = PoolProxy {
        front: front.clone(),
        routes: Arc::new(RouteTable::new(pools)),
        queues: Arc::new(queues),
        connector: Arc::new(connector()),
        stats: hub.clone(),
        stats_api: Arc::new(stats.api),
        web_log: web_log.clone(),
    };
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, app);
    proxy.server_options = Some(server_options(&listeners, idle_timeout_sec));
    proxy.h2_options = Some(h2_options(max_head_size));
    let parts = FrontDoorParts {
        limit: connections,
        sockets,
        drain: process.shutdown_timeout.min(KEEPALIVE_DRAIN),
        front,
        hub,
        web_log,
        h2c: listeners.h2c,
    };
    let door = FrontDoor::new(proxy, parts);
    let service = ClientListeners::new(door, client_listeners(&listeners)?);
    let proxy_handle = server.add_service(service);
    if let Some(cluster) = &cluster {
        // Redis is asked (for at most a second) before the first request is accepted.
        let heartbeat = ClusterHeartbeat(cluster.clone());
        let handle = server.add_service(background_service("cluster", heartbeat));
        proxy_handle.add_dependency(&handle);
    }
    if let Some(sender) = sender {
        // Journals are open and replayed before the first request is accepted.
        let handle = server.add_service(background_service("blind queue", sender));
        proxy_handle.add_dependency(&handle);
    }
    if process.demo_origin_port != 0 {
        server.add_service(demo_origin::service(process.demo_origin_port));
        let ready = demo_origin::DemoOriginReady(process.demo_origin_port);
        let gate = server.add_service(background_service("demo origin ready", ready));
        proxy_handle.add_dependency(&gate);
    }
    let pid_file = &process.pid_file;
    if let Some(dir) = pid_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(pid_file, format!("{}\n", std::process::id())).map_err(|source| {
        StartError::PidFile {
            path: pid_file.clone(),
            source,
        }
    })?;
    // What a later `reload` compares its config's listeners with.
    let _ = std::fs::write(listen_file(&process), listeners.addrs().join("\n") + "\n");
    Ok(server)
}
