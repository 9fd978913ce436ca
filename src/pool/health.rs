//! Active health checks of balanced targets (`health_check`), run by pingora-load-balancing's
//! background service: a TCP connect, or an HTTP GET whose status must match `status_match`.
//! Each target is checked with its own Host and TLS name; changes are logged, and each check's
//! result and each change are kept on the target for the stats (`target_state.rs`).

use super::target::{Target, TargetIndex};
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use pingora_load_balancing::health_check::HealthCheck;
use pingora_load_balancing::Backend;
use regex::Regex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What a check does.
#[derive(Debug, Clone)]
pub(crate) enum CheckKind {
    Tcp,
    Http { path: String, status: Regex },
}

/// A pool's `health_check`, validated.
#[derive(Debug, Clone)]
pub(crate) struct HealthSettings {
    pub(crate) kind: CheckKind,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    /// Consecutive passes that bring an unhealthy target back.
    pub(crate) healthy_threshold: usize,
    /// Consecutive failures that take a healthy target out.
    pub(crate) unhealthy_threshold: usize,
    /// `validate_ssl_certs` for HTTPS checks.
    pub(crate) verify_tls: bool,
}

#[derive(Clone)]
pub(super) struct TargetHealthCheck {
    pool_id: String,
    kind: CheckKind,
    timeout: Duration,
    healthy_threshold: usize,
    unhealthy_threshold: usize,
    targets: Arc<Vec<Target>>,
    verify_tls: bool,
    connector: Arc<Connector>,
}

impl std::fmt::Debug for TargetHealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetHealthCheck")
            .field("pool_id", &self.pool_id)
            .field("kind", &self.kind)
            .finish()
    }
}

impl TargetHealthCheck {
    pub(super) fn new(pool_id: &str, s: &HealthSettings, targets: Arc<Vec<Target>>) -> Self {
        TargetHealthCheck {
            pool_id: pool_id.to_string(),
            kind: s.kind.clone(),
            timeout: s.timeout,
            healthy_threshold: s.healthy_threshold.max(1),
            unhealthy_threshold: s.unhealthy_threshold.max(1),
            targets,
            verify_tls: s.verify_tls,
            connector: Arc::new(Connector::new(None)),
        }
    }

    fn target_of(&self, backend: &Backend) -> Option<&Target> {
        let index = backend.ext.get::<TargetIndex>()?.0;
        self.targets.get(index)
    }

    async fn http_check(&self, addr: SocketAddr, target: &Target, path: &str) -> Result<u16> {
        let sni = if target.tls {
            target.hostname.clone()
        } else {
            String::new()
        };
        let mut peer = HttpPeer::new(addr, target.tls, sni);
        peer.options.connection_timeout = Some(self.timeout);
        peer.options.verify_cert = self.verify_tls;
        peer.options.verify_hostname = self.verify_tls;
        let (mut session, _) = self.connector.get_http_session(&peer).await?;
        session.set_read_timeout(Some(self.timeout));
        session.set_write_timeout(Some(self.timeout));
        let mut req = RequestHeader::build("GET", path.as_bytes(), None)?;
        let host = target.host_header.clone();
        if let Some(host) = host {
            req.insert_header("Host", host)?;
        }
        req.insert_header("User-Agent", "poolgate-health-check")?;
        req.insert_header("Connection", "close")?;
        session.write_request_header(Box::new(req)).await?;
        session.finish_request_body().await?;
        session.read_response_header().await?;
        let status = session.response_header().map_or(0, |r| r.status.as_u16());
        Ok(status)
    }
}

fn failed(why: String) -> Box<Error> {
    Error::explain(ErrorType::Custom("health check failed"), why)
}

#[async_trait]
impl HealthCheck for TargetHealthCheck {
    async fn check(&self, backend: &Backend) -> Result<()> {
        let addr = backend
            .addr
            .as_inet()
            .copied()
            .ok_or_else(|| failed("not an IP target".into()))?;
        let target = self
            .target_of(backend)
            .ok_or_else(|| failed("unknown target".into()))?;
        let outcome = match &self.kind {
            CheckKind::Tcp => {
                let connect = tokio::net::TcpStream::connect(addr);
                match tokio::time::timeout(self.timeout, connect).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(failed(format!("connect: {e}"))),
                    Err(_) => Err(failed("connect timed out".into())),
                }
            }
            CheckKind::Http { path, status } => {
                let exchange = self.http_check(addr, target, path);
                match tokio::time::timeout(self.timeout, exchange).await {
                    Ok(Ok(code)) if status.is_match(&code.to_string()) => Ok(()),
                    Ok(Ok(code)) => Err(failed(format!("GET {path} answered {code}"))),
                    Ok(Err(e)) => Err(failed(format!("GET {path}: {e}"))),
                    Err(_) => Err(failed(format!("GET {path} timed out"))),
                }
            }
        };
        if let Err(e) = &outcome {
            log::debug!("[{}] health check of {addr}: {e}", self.pool_id);
        }
        let result = outcome.as_ref().map(|_| ()).map_err(|e| match &e.context {
            Some(why) => why.to_string(),
            None => e.to_string(),
        });
        target.health.checked(result);
        outcome
    }

    async fn health_status_change(&self, backend: &Backend, healthy: bool) {
        if let Some(target) = self.target_of(backend) {
            target.health.changed(healthy);
        }
        let name = self.target_of(backend).map(Target::base_url);
        let state = if healthy {
            "healthy again"
        } else {
            "unhealthy"
        };
        log::warn!(
            "[{}] target {} ({}) is {state}",
            self.pool_id,
            name.unwrap_or_default(),
            backend.addr
        );
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.healthy_threshold
        } else {
            self.unhealthy_threshold
        }
    }
}
