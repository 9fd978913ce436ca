//! Where a pool's requests go: one back end (`target_hostname`/`target_port`, PixlProxy's form)
//! or several (`targets`, poolgate's form) balanced by pingora-load-balancing with optional
//! active health checks.
//!
//! Balanced targets are re-resolved by a Pingora background service every `cache_dns_sec`
//! (at least once a second for host names) and health-checked on their own schedule, so the
//! request path only reads an atomically swapped selector: no DNS, no locks.

use super::health::{HealthSettings, TargetHealthCheck};
use super::target::{Target, TargetIndex, Watch};
use async_trait::async_trait;
use pingora::server::Server;
use pingora::services::background::GenBackgroundService;
use pingora::{Error, ErrorType, Result};
use pingora_load_balancing::discovery::ServiceDiscovery;
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::selection::{BackendIter, BackendSelection, Consistent, Random};
use pingora_load_balancing::{Backend, Backends, LoadBalancer};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One configured back end, as the config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetAddress {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// A pool's back ends as configured.
#[derive(Debug, Clone)]
pub(crate) struct TargetSettings {
    pub(crate) targets: Vec<TargetAddress>,
    /// `cache_dns_sec`: how long a resolved address is used (0 = resolve per request for a
    /// single target; balanced targets are re-resolved at least once a second).
    pub(crate) cache_dns_sec: u64,
    /// `targets` (or `health_check`): balanced and resolved in the background.
    pub(crate) balanced: Option<BalanceSettings>,
}

/// How balanced targets are chosen and checked.
#[derive(Debug, Clone)]
pub(crate) struct BalanceSettings {
    pub(crate) balancing: Balancing,
    pub(crate) health: Option<HealthSettings>,
}

impl TargetSettings {
    /// PixlProxy's one `target_hostname` / `target_port`, resolved per request.
    #[cfg(test)]
    pub(crate) fn single(target: TargetAddress) -> Self {
        TargetSettings {
            targets: vec![target],
            cache_dns_sec: 0,
            balanced: None,
        }
    }
}

/// Which request property a hashing balancer keys on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HashOn {
    ClientIp,
    Uri,
    Header(http::HeaderName),
}

/// How balanced targets are chosen (`load_balancing`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Balancing {
    RoundRobin,
    Random,
    Hash(HashOn),
}

/// The chosen back end for one attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chosen {
    pub(crate) addr: SocketAddr,
    /// Index into the pool's targets.
    pub(crate) target: usize,
}

/// A pool's back ends at run time.
#[derive(Debug)]
pub(crate) enum TargetSet {
    /// PixlProxy's `target_hostname`/`target_port`, resolved per request (`cache_dns_sec`).
    /// (Boxed: a target is several times the size of the balanced variant.)
    Single(Box<Target>),
    /// poolgate's `targets` (or a single target with `health_check`).
    Balanced {
        targets: Arc<Vec<Target>>,
        balancer: BalancedTargets,
    },
}

impl TargetSet {
    /// The targets of `s`; `recording` when their request figures are read (the stats).
    pub(crate) fn new(pool_id: &str, s: &TargetSettings, recording: bool) -> Self {
        let mut watch = Watch {
            recording,
            checked: false,
        };
        let Some(balance) = &s.balanced else {
            // Config guarantees a single target here.
            let t = s.targets.first();
            let (tls, host, port) = t.map_or((false, "", 0), |t| (t.tls, t.host.as_str(), t.port));
            let target = Target::new(tls, host, port, s.cache_dns_sec, watch);
            return TargetSet::Single(Box::new(target));
        };
        watch.checked = balance.health.is_some();
        let targets: Arc<Vec<Target>> = Arc::new(
            s.targets
                .iter()
                .map(|t| Target::new(t.tls, &t.host, t.port, 0, watch))
                .collect(),
        );
        let health = balance.health.as_ref().map(|h| {
            (
                TargetHealthCheck::new(pool_id, h, targets.clone()),
                h.interval,
            )
        });
        let balancer = BalancedTargets::new(BalancerSpec {
            pool_id: pool_id.to_string(),
            targets: targets.clone(),
            balancing: balance.balancing.clone(),
            cache_dns_sec: s.cache_dns_sec,
            health,
        });
        TargetSet::Balanced { targets, balancer }
    }

    pub(super) fn get(&self, index: usize) -> Option<&Target> {
        match self {
            TargetSet::Single(t) => (index == 0).then_some(&**t),
            TargetSet::Balanced { targets, .. } => targets.get(index),
        }
    }

    pub(super) fn all(&self) -> &[Target] {
        match self {
            TargetSet::Single(t) => std::slice::from_ref(&**t),
            TargetSet::Balanced { targets, .. } => targets,
        }
    }

    pub(super) fn hash_on(&self) -> Option<&HashOn> {
        match self {
            TargetSet::Single(_) => None,
            TargetSet::Balanced { balancer, .. } => balancer.hash_on.as_ref(),
        }
    }

    pub(super) async fn choose(&self, key: &[u8], avoid: &[SocketAddr]) -> Result<Chosen> {
        match self {
            TargetSet::Single(t) => Ok(Chosen {
                addr: t.resolver.resolve().await?,
                target: 0,
            }),
            TargetSet::Balanced { balancer, .. } => balancer.select(key, avoid),
        }
    }

    pub(super) fn looks_up_per_request(&self) -> bool {
        match self {
            TargetSet::Single(t) => !t.resolver.is_literal(),
            TargetSet::Balanced { .. } => false,
        }
    }

    /// The balancer whose background service keeps the targets resolved and checked.
    pub(crate) fn balancer(&self) -> Option<&BalancedTargets> {
        match self {
            TargetSet::Single(_) => None,
            TargetSet::Balanced { balancer, .. } => Some(balancer),
        }
    }
}

enum Selector {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Random(Arc<LoadBalancer<Random>>),
    Hash(Arc<LoadBalancer<Consistent>>),
}

/// Several targets behind a load balancer.
pub(crate) struct BalancedTargets {
    pool_id: String,
    selector: Selector,
    hash_on: Option<HashOn>,
}

impl std::fmt::Debug for BalancedTargets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancedTargets")
            .field("pool_id", &self.pool_id)
            .finish()
    }
}

/// Everything needed to build the balancer of one pool.
struct BalancerSpec {
    pool_id: String,
    targets: Arc<Vec<Target>>,
    balancing: Balancing,
    cache_dns_sec: u64,
    health: Option<(TargetHealthCheck, Duration)>,
}

impl BalancedTargets {
    fn new(spec: BalancerSpec) -> Self {
        let hash_on = match &spec.balancing {
            Balancing::Hash(on) => Some(on.clone()),
            _ => None,
        };
        let selector = match spec.balancing {
            Balancing::RoundRobin => Selector::RoundRobin(balancer(&spec)),
            Balancing::Random => Selector::Random(balancer(&spec)),
            Balancing::Hash(_) => Selector::Hash(balancer(&spec)),
        };
        BalancedTargets {
            pool_id: spec.pool_id,
            selector,
            hash_on,
        }
    }

    /// Resolve the targets once before serving, so the first requests find them.
    pub(crate) async fn prime(&self) -> Result<()> {
        match &self.selector {
            Selector::RoundRobin(lb) => lb.update().await,
            Selector::Random(lb) => lb.update().await,
            Selector::Hash(lb) => lb.update().await,
        }
    }

    /// A healthy target not in `avoid` (falling back to any healthy one), or a 502-class error
    /// when none is healthy.
    fn select(&self, key: &[u8], avoid: &[SocketAddr]) -> Result<Chosen> {
        let fresh = |b: &Backend, healthy: bool| healthy && !avoid.contains(&addr_of(b));
        let picked = match &self.selector {
            Selector::RoundRobin(lb) => pick(lb, key, fresh),
            Selector::Random(lb) => pick(lb, key, fresh),
            Selector::Hash(lb) => pick(lb, key, fresh),
        };
        let backend = picked.ok_or_else(|| {
            let why = format!("no healthy target in pool {}", self.pool_id);
            Error::explain(ErrorType::ConnectNoRoute, why).into_up()
        })?;
        let target = backend.ext.get::<TargetIndex>().map_or(0, |t| t.0);
        Ok(Chosen {
            addr: addr_of(&backend),
            target,
        })
    }

    /// Run discovery and health checks as a Pingora background service.
    pub(crate) fn add_background_service(&self, server: &mut Server) {
        let name = format!("targets of pool {}", self.pool_id);
        match &self.selector {
            Selector::RoundRobin(lb) => {
                server.add_service(GenBackgroundService::new(name, lb.clone()))
            }
            Selector::Random(lb) => server.add_service(GenBackgroundService::new(name, lb.clone())),
            Selector::Hash(lb) => server.add_service(GenBackgroundService::new(name, lb.clone())),
        };
    }
}

/// Iterations a selection may take before giving up (bounds the search on large rings).
const MAX_SELECT_ITERATIONS: usize = 256;

fn pick<S, F>(lb: &LoadBalancer<S>, key: &[u8], fresh: F) -> Option<Backend>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
    F: Fn(&Backend, bool) -> bool,
{
    lb.select_with(key, MAX_SELECT_ITERATIONS, fresh)
        .or_else(|| lb.select(key, MAX_SELECT_ITERATIONS))
}

fn addr_of(b: &Backend) -> SocketAddr {
    b.addr
        .as_inet()
        .copied()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

fn balancer<S>(spec: &BalancerSpec) -> Arc<LoadBalancer<S>>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let discovery = TargetDiscovery {
        pool_id: spec.pool_id.clone(),
        targets: spec.targets.clone(),
    };
    let mut lb = LoadBalancer::<S>::from_backends(Backends::new(Box::new(discovery)));
    let all_literal = spec.targets.iter().all(|t| t.resolver.is_literal());
    lb.update_frequency = (!all_literal).then(|| Duration::from_secs(spec.cache_dns_sec.max(1)));
    if let Some((check, interval)) = &spec.health {
        lb.set_health_check(Box::new(check.clone()));
        lb.health_check_frequency = Some(*interval);
        lb.parallel_health_check = true;
    }
    Arc::new(lb)
}

/// Resolves every configured target into backends, tagging each with its target index.
struct TargetDiscovery {
    pool_id: String,
    targets: Arc<Vec<Target>>,
}

#[async_trait]
impl ServiceDiscovery for TargetDiscovery {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let mut found = BTreeSet::new();
        for (i, target) in self.targets.iter().enumerate() {
            match target.resolver.resolve().await {
                Ok(addr) => {
                    let mut backend = Backend::new(&addr.to_string())?;
                    backend.ext.insert(TargetIndex(i));
                    found.insert(backend);
                }
                // One unresolvable target must not take the others down with it.
                Err(e) => log::warn!(
                    "[{}] target {} is left out: {e}",
                    self.pool_id,
                    target.base_url()
                ),
            }
        }
        Ok((found, HashMap::new()))
    }
}
