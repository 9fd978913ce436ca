//! Configuration: a PixlProxy-compatible file (YAML or JSON) read once at start.
//!
//! `load` reads and parses (`load.rs`), audits keys (`keys.rs`) and compiles the runtime form
//! (`compile.rs`). Nothing here runs on the request path.

pub mod compile;
pub mod env;
mod forms;
pub mod keys;
pub mod load;
pub mod model;
mod pools;
pub mod problem;
mod protocols;
mod queue;
mod static_files;
pub mod stats;
mod targets;
mod traffic;
pub mod web_server;

pub use compile::RuntimeConfig;
pub use problem::{Located, Problem, Severity};

use std::path::{Path, PathBuf};

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "POOLGATE_CONFIG";
/// Config file used when neither `--config` nor `POOLGATE_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "conf/config.yaml";

/// The config path: the flag, else `POOLGATE_CONFIG`, else `conf/config.yaml`.
pub fn resolve_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// The outcome of loading a file: the runtime config (if it can run) and every problem found.
pub struct Loaded {
    pub runtime: Option<RuntimeConfig>,
    pub problems: Vec<Problem>,
    /// The typed file (defaults filled in, environment applied), when it parsed.
    pub file: Option<model::FileConfig>,
    /// Settings taken from `POOLGATE_` variables.
    pub overrides: Vec<env::Override>,
}

/// Read, parse, audit and compile a config file. Never panics on bad input.
pub fn load(path: &Path) -> Loaded {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Loaded {
                runtime: None,
                problems: vec![Problem::error("", format!("cannot read file: {e}"))],
                file: None,
                overrides: Vec::new(),
            }
        }
    };
    let vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("POOLGATE_"))
        .collect();
    load_with_env(&text, &vars)
}

/// As `load`, from text already read, without the environment.
pub fn load_str(text: &str) -> Loaded {
    load_with_env(text, &[])
}

/// As `load`, from text already read, with `vars` as the environment.
pub fn load_with_env(text: &str, vars: &[(String, String)]) -> Loaded {
    let failed = |problems: Vec<Problem>| Loaded {
        runtime: None,
        problems,
        file: None,
        overrides: Vec::new(),
    };
    let mut parsed = match load::parse(text) {
        Ok(p) => p,
        Err(problem) => return failed(vec![problem]),
    };
    let mut overrides = Vec::new();
    if vars.iter().any(|(k, _)| k.starts_with("POOLGATE_")) {
        let (config, found, env_problems) = load::with_env(text, vars);
        let env_failed = env_problems.iter().any(|p| p.severity == Severity::Error);
        parsed.problems.extend(env_problems);
        match config {
            Some(config) if !env_failed => parsed.config = config,
            _ => return failed(parsed.problems),
        }
        overrides = found;
    }
    let mut problems = parsed.problems;
    let runtime = match compile::compile(&parsed.config) {
        Ok(rt) => Some(rt),
        Err(found) => {
            problems.extend(found.into_iter().map(|p| {
                let at = load::locate(text, &p.path);
                p.at(at)
            }));
            None
        }
    };
    Loaded {
        runtime,
        problems,
        file: Some(parsed.config),
        overrides,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The error problems of a config text, as `path: message` (shared by the config tests).
    pub(crate) fn errors(text: &str) -> Vec<String> {
        load_str(text)
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn bad_regex_names_the_key_path() {
        let errs = errors("PixlProxy:\n  pools:\n    MyPool1:\n      target_hostname: h\n      uri_match: '(unclosed'\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("PixlProxy.pools.MyPool1.uri_match: invalid regex"),
            "{errs:?}"
        );
        let loaded = load_str("PixlProxy:\n  pools:\n    MyPool1:\n      target_hostname: h\n      uri_match: '(unclosed'\n");
        assert_eq!(loaded.problems[0].location, Some((5, 7)));
    }

    #[test]
    fn missing_target_is_an_error() {
        let errs = errors("PixlProxy: {pools: {P: {uri_match: '^/x'}}}");
        assert_eq!(errs, ["PixlProxy.pools.P.target_hostname: required: the back end's host name or IP address (or `targets`)"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errs = errors(
            "WebServer: {http_keep_alives: sometimes}\nPixlProxy: {pools: {A: {target_hostname: h, method_match: '['}, B: {target_protocol: ftp, target_hostname: h}}}",
        );
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn bad_header_and_auth_values() {
        let errs = errors("PixlProxy: {pools: {A: {target_hostname: h, http_basic_auth: nocolon, insert_request_headers: {'Bad Name': x}}}}");
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn https_needs_cert_and_key() {
        let errs = errors("WebServer: {https: true}");
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn empty_file_runs_with_defaults() {
        let loaded = load_str("");
        assert!(loaded.runtime.is_some());
    }

    #[test]
    fn default_port_follows_protocol() {
        let rt = load_str("PixlProxy: {pools: {A: {target_hostname: h, target_protocol: https}, B: {target_hostname: h}}}").runtime.unwrap();
        let ports: Vec<_> = rt
            .routes
            .pools()
            .iter()
            .filter_map(|p| p.primary_target())
            .map(|t| t.port)
            .collect();
        assert_eq!(ports, [443, 80]);
    }

    #[test]
    fn traffic_settings_compile_into_the_pool() {
        let rt = load_str("PixlProxy: {pools: {A: {target_hostname: h, retries: 3, follow_redirects: true, max_concurrent_requests: 4, degraded_perf_monitor: true}}}").runtime.unwrap();
        let pool = &rt.routes.pools()[0];
        assert_eq!(pool.retry.retries, 3);
        assert_eq!(pool.redirect_hops, model::DEFAULT_REDIRECT_HOPS);
        assert!(pool.limits.concurrency.is_some() && pool.limits.rate.is_none());
        assert!(pool.degraded.is_some());
        assert!(pool.uses_exchange());
    }

    #[test]
    fn queue_settings_resolve_against_the_globals() {
        let text = "WebServer: {http_temp_dir: /t, http_max_upload_size: 99}\nPixlProxy: {queue_dir: /q, pools: {A: {target_hostname: h, use_queue: true, max_queue_length: 5, max_concurrent_requests: 3}, B: {target_hostname: h, use_queue: true, queue_dir: /own}, C: {target_hostname: h}}}";
        let rt = load_str(text).runtime.unwrap();
        let pools = rt.routes.pools();
        let a = &pools[0].queue.as_ref().unwrap().settings;
        assert_eq!((a.max_length, a.workers, a.max_body_bytes), (5, 3, 99));
        assert_eq!(a.requeue_delay, std::time::Duration::from_millis(100));
        assert_eq!(a.journal_dir.as_deref(), Some(Path::new("/q")));
        assert_eq!(a.spool_dir, Path::new("/q/spool"));
        assert!(a.fsync);
        let b = &pools[1].queue.as_ref().unwrap().settings;
        assert_eq!(b.journal_dir.as_deref(), Some(Path::new("/own")));
        assert_eq!(b.workers, crate::queue::DEFAULT_WORKERS);
        assert!(pools[2].queue.is_none());
        let memory = load_str("WebServer: {http_temp_dir: /t}\nPixlProxy: {pools: {A: {target_hostname: h, use_queue: true}}}");
        let memory = memory.runtime.unwrap();
        let settings = &memory.routes.pools()[0].queue.as_ref().unwrap().settings;
        assert!(settings.journal_dir.is_none());
        assert_eq!(settings.spool_dir, Path::new("/t"));
    }

    #[test]
    fn a_queue_cannot_follow_redirects() {
        let errs = errors("PixlProxy: {pools: {A: {target_hostname: h, use_queue: true, follow_redirects: true}}}");
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("PixlProxy.pools.A.follow_redirects"),
            "{errs:?}"
        );
    }

    #[test]
    fn target_and_balancing_mistakes_are_reported() {
        let errs = errors("PixlProxy: {pools: {A: {target_hostname: h, targets: ['a:1']}, B: {targets: ['a:1', 'b/x']}, C: {targets: ['a:1'], load_balancing: fastest}, D: {targets: ['a:1'], load_balancing: header_hash}}}");
        let paths: Vec<_> = errs
            .iter()
            .map(|e| e.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            paths,
            [
                "PixlProxy.pools.A.targets",
                "PixlProxy.pools.B.targets[1]",
                "PixlProxy.pools.C.load_balancing",
                "PixlProxy.pools.D.load_balancing_header"
            ],
            "{errs:?}"
        );
    }

    #[test]
    fn health_check_keys_are_checked() {
        let errs = errors("PixlProxy: {pools: {A: {targets: ['a:1'], health_check: {type: http, intervall_ms: 5}}}}");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("intervall_ms"), "{errs:?}");
        let errs = errors("PixlProxy: {pools: {A: {targets: ['a:1'], health_check: {type: udp}}, B: {targets: ['a:1'], health_check: {type: http, path: x, interval_ms: 0}}}}");
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn follow_redirects_takes_a_flag_or_a_count() {
        let hops = |v: &str| {
            let text = format!(
                "PixlProxy: {{pools: {{A: {{target_hostname: h, follow_redirects: {v}}}}}}}"
            );
            load_str(&text)
                .runtime
                .map(|rt| rt.routes.pools()[0].redirect_hops)
        };
        assert_eq!(hops("false"), Some(0));
        assert_eq!(hops("7"), Some(7));
        assert_eq!(hops("'many'"), None);
    }
}
