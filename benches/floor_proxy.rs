//! The floor poolgate is measured against: the smallest useful Pingora 0.9 proxy, one
//! `upstream_peer` returning a fixed peer, nothing else. Same Pingora, same features, same
//! build profile as poolgate.
//!
//! `bench_floor <listen addr> <upstream addr> [threads] [cert file] [key file]`: with a
//! certificate and key it listens with TLS instead (Pingora's own rustls settings, the
//! floor of poolgate's TLS figures).

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;

struct Floor {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bench_floor <listen addr> <upstream addr> [threads] [cert] [key]");
        std::process::exit(2);
    };
    let Ok(upstream) = upstream.parse::<SocketAddr>() else {
        eprintln!("upstream must be ip:port");
        std::process::exit(2);
    };
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Floor { upstream });
    match (args.get(4), args.get(5)) {
        (Some(cert), Some(key)) => {
            if let Err(e) = proxy.add_tls(listen, cert, key) {
                eprintln!("TLS listener: {e}");
                std::process::exit(2);
            }
        }
        _ => proxy.add_tcp(listen),
    }
    server.add_service(proxy);
    server.run_forever();
}
