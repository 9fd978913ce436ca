//! Configuration: a PixlProxy-compatible file (YAML or JSON) read once at start and turned
//! into the plain settings a server is built from (`server::Settings`). Nothing else: no
//! runtime object is built here, and nothing here runs on the request path.
//!
//! `file/` reads the text into typed keys with PixlProxy's defaults, applies pixl-server's
//! `config_overrides_file`, then the environment (`PIXLPROXY_...`, `POOLGATE_...`, `*_FILE`)
//! and audits the keys; `settings/` validates and resolves them;
//! `problem.rs` is what goes wrong, with its file, line and key path.
//!
//! Uses `server` (the settings types), the concept folders' settings and value types, and
//! `timing`.

mod file;
mod problem;
mod settings;

pub(crate) use file::FileConfig;
#[cfg(test)]
pub(crate) use file::{DEFAULT_SCRUB_REQUEST, DEFAULT_SCRUB_RESPONSE, DEFAULT_SUCCESS_MATCH};
pub(crate) use problem::{Located, Problem, Severity};

use crate::server::Settings;
use file::env;
use std::path::{Path, PathBuf};

/// Environment variable naming the config file when `--config` is not given.
pub(crate) const CONFIG_ENV: &str = "POOLGATE_CONFIG";
/// Config file used when neither `--config` nor `POOLGATE_CONFIG` is given.
const DEFAULT_CONFIG_PATH: &str = "conf/config.yaml";

/// The config path: the flag, else `POOLGATE_CONFIG`, else `conf/config.yaml`.
pub(crate) fn resolve_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// One setting taken from the overrides file or the environment.
#[cfg(test)]
pub(crate) use env::Origin;
pub(crate) use env::Override;

/// The outcome of loading a file: the settings (if it can run) and every problem found.
pub(crate) struct Loaded {
    pub(crate) settings: Option<Settings>,
    pub(crate) problems: Vec<Problem>,
    /// The typed file (defaults filled in, environment applied), when it parsed.
    pub(crate) file: Option<FileConfig>,
    /// Settings taken from the overrides file and the environment (the last of each path).
    pub(crate) overrides: Vec<Override>,
}

impl Loaded {
    fn failed(problems: Vec<Problem>) -> Self {
        Loaded {
            settings: None,
            problems,
            file: None,
            overrides: Vec::new(),
        }
    }
}

/// Read, parse, audit and validate a config file. Never panics on bad input.
pub(crate) fn load(path: &Path) -> Loaded {
    let text = match read_text(path) {
        Ok(t) => t,
        Err(problem) => return Loaded::failed(vec![problem]),
    };
    let vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| is_override_var(k))
        .collect();
    load_with_env(&text, &vars)
}

/// Whether an environment variable may override a setting (`POOLGATE_...`, `PIXLPROXY_...`).
fn is_override_var(name: &str) -> bool {
    name.starts_with("POOLGATE_") || name.starts_with(env::PIXL_PREFIX)
}

/// The file's text; a file over the size limit is read only up to it.
fn read_text(path: &Path) -> Result<String, Problem> {
    use std::io::Read;
    let cannot_read = |e: std::io::Error| Problem::error("", format!("cannot read file: {e}"));
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let mut bytes = Vec::new();
    let past_limit = file::limits::MAX_BYTES as u64 + 1;
    file.take(past_limit)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    file::limits::check_size(&bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error());
        cannot_read(io)
    })
}

/// As `load`, from text already read, without the environment.
pub(crate) fn load_str(text: &str) -> Loaded {
    load_with_env(text, &[])
}

/// As `load`, from text already read, with `vars` as the environment.
fn load_with_env(text: &str, vars: &[(String, String)]) -> Loaded {
    let mut parsed = match file::parse::parse(text) {
        Ok(p) => p,
        Err(problem) => return Loaded::failed(vec![problem]),
    };
    let mut overrides = Vec::new();
    let overridden = !parsed.config.config_overrides_file.is_empty();
    if overridden || vars.iter().any(|(k, _)| is_override_var(k)) {
        let (config, found, env_problems) = file::parse::with_env(text, vars);
        let env_failed = env_problems.iter().any(|p| p.severity == Severity::Error);
        // The overrides file's problems are placed at its key in the file.
        let key = "config_overrides_file";
        let at = file::locate::Locator::new(text).key(key);
        parsed.problems.extend(
            env_problems
                .into_iter()
                .map(|p| match p.path.starts_with(key) {
                    true => p.at(at),
                    false => p,
                }),
        );
        match config {
            Some(config) if !env_failed => parsed.config = config,
            _ => return Loaded::failed(parsed.problems),
        }
        overrides = found;
    }
    let mut problems = parsed.problems;
    let mut locator = file::locate::Locator::new(text);
    let settings = match settings::settings(&parsed.config) {
        Ok(s) => Some(s),
        Err(found) => {
            problems.extend(found.into_iter().map(|p| {
                let at = locator.key_or_ancestor(&p.path);
                p.at(at)
            }));
            None
        }
    };
    if let Some(idle) = settings::nothing_to_proxy(&parsed.config, parsed.empty) {
        // Where the pools would go, else the file's start.
        let at = locator.key_or_ancestor(&idle.path).unwrap_or((1, 1));
        problems.push(idle.at(Some(at)));
    }
    Loaded {
        settings,
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

    /// The key paths of the errors of `errs` (what `errors` returns).
    fn paths(errs: &[String]) -> Vec<&str> {
        errs.iter()
            .map(|e| e.split(':').next().unwrap_or(""))
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
    fn empty_file_runs_with_defaults_but_check_says_there_is_nothing_to_proxy() {
        let loaded = load_str("");
        assert!(loaded.settings.is_some());
        let idle: Vec<_> = loaded
            .problems
            .iter()
            .map(|p| (p.severity, p.path.as_str(), p.message.as_str(), p.location))
            .collect();
        let message = "nothing to proxy: no pools (the file is empty)";
        assert_eq!(
            idle,
            [(Severity::Idle, "PixlProxy.pools", message, Some((1, 1)))]
        );
    }

    #[test]
    fn no_pools_is_reported_at_the_pools_key_unless_static_files_are_on() {
        let loaded = load_str("log_dir: .\nPixlProxy:\n  pools: {}\n");
        let idle = &loaded.problems[0];
        assert_eq!(
            (idle.severity, idle.location),
            (Severity::Idle, Some((3, 3)))
        );
        assert!(idle.message.starts_with("nothing to proxy: no pools"));
        let without_section = load_str("log_dir: .\n");
        assert_eq!(without_section.problems[0].location, Some((1, 1)));
        let static_files =
            "WebServer: {http_htdocs_dir: src}\nPixlProxy: {serve_static_files: true}";
        assert!(load_str(static_files).problems.is_empty());
        let one_pool = load_str("PixlProxy: {pools: {default: {target_hostname: h}}}");
        assert!(one_pool.problems.is_empty());
    }

    #[test]
    fn every_regex_is_checked_with_its_feature_off() {
        let pool = "target_hostname: h";
        let errs = errors(&format!(
            "WebServer: {{http_regex_text: '(', http_regex_log: '['}}\nPixlProxy: {{pools: {{A: {{{pool}, health_check: {{type: none, status_match: '*'}}}}}}}}"
        ));
        assert_eq!(
            paths(&errs),
            [
                "WebServer.http_regex_text",
                "PixlProxy.pools.A.health_check.status_match",
                "WebServer.http_regex_log",
            ],
            "{errs:?}"
        );
    }

    #[test]
    fn balancing_is_checked_on_a_pool_of_one_target() {
        let errs = errors("PixlProxy: {pools: {A: {target_hostname: h, load_balancing: fastest}, B: {target_hostname: h, load_balancing: header_hash}}}");
        assert_eq!(
            paths(&errs),
            [
                "PixlProxy.pools.A.load_balancing",
                "PixlProxy.pools.B.load_balancing_header"
            ],
            "{errs:?}"
        );
        let fine =
            load_str("PixlProxy: {pools: {A: {target_hostname: h, load_balancing: ip_hash}}}");
        assert!(fine
            .settings
            .is_some_and(|s| s.pools[0].pool.targets.balanced.is_none()));
    }

    #[test]
    fn bind_addresses_must_be_ip_addresses() {
        let pools = "PixlProxy: {pools: {A: {target_hostname: h}}}";
        let errs = errors(&format!(
            "WebServer:\n  http_bind_address: localhost\n  https_bind_address: '::1:x'\n{pools}"
        ));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("WebServer.http_bind_address: `localhost` is not an IP address"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("WebServer.https_bind_address: "),
            "{errs:?}"
        );
        let loaded = load_str(&format!(
            "WebServer:\n  http_bind_address: localhost\n{pools}"
        ));
        assert_eq!(loaded.problems[0].location, Some((2, 3)));
        for fine in ["''", "127.0.0.1", "'::1'", "'[::1]'", "0.0.0.0"] {
            let text = format!("WebServer: {{http_bind_address: {fine}}}\n{pools}");
            assert!(load_str(&text).settings.is_some(), "{fine}");
        }
    }

    #[test]
    fn a_pool_problem_is_at_its_key_or_at_the_pool_when_the_key_is_missing() {
        let text = "PixlProxy:\n  pools:\n    B: {uri_match: '^/b'}\n    C:\n      target_hostname: h\n      follow_redirects: true\n      use_queue: true\n";
        let loaded = load_str(text);
        let at: Vec<_> = loaded
            .problems
            .iter()
            .map(|p| (p.path.as_str(), p.location))
            .collect();
        assert_eq!(
            at,
            [
                ("PixlProxy.pools.B.target_hostname", Some((3, 5))),
                ("PixlProxy.pools.C.follow_redirects", Some((6, 7))),
            ]
        );
    }

    #[test]
    fn default_port_follows_protocol() {
        let s = load_str("PixlProxy: {pools: {A: {target_hostname: h, target_protocol: https}, B: {target_hostname: h}}}").settings.unwrap();
        let ports: Vec<_> = s
            .pools
            .iter()
            .filter_map(|p| p.pool.targets.targets.first())
            .map(|t| t.port)
            .collect();
        assert_eq!(ports, [443, 80]);
    }

    #[test]
    fn traffic_settings_go_into_the_pool() {
        let s = load_str("PixlProxy: {pools: {A: {target_hostname: h, retries: 3, follow_redirects: true, max_concurrent_requests: 4, degraded_perf_monitor: true}}}").settings.unwrap();
        let pool = &s.pools[0].pool;
        assert_eq!(pool.retry.retries, 3);
        assert_eq!(pool.redirect_hops, 10, "follow_redirects: true");
        assert_eq!(
            (pool.limits.max_concurrent, pool.limits.max_per_sec),
            (4, 0)
        );
        assert!(pool.degraded.is_some());
        assert_eq!(pool.recording, crate::stats::Recording::Summary);
    }

    #[test]
    fn per_second_figures_are_kept_only_for_their_readers() {
        let recording = |text: &str| load_str(text).settings.unwrap().pools[0].pool.recording;
        use crate::stats::Recording;
        let pool = "pools: {A: {target_hostname: h";
        assert_eq!(
            recording(&format!("PixlProxy: {{{pool}}}}}}}")),
            Recording::Off
        );
        let mult = format!("PixlProxy: {{{pool}, retries: 1, error_retry_delay_mult_ms: 5}}}}}}");
        assert_eq!(recording(&mult), Recording::Summary);
        let base = format!("PixlProxy: {{{pool}, retries: 1, error_retry_delay_base_ms: 5}}}}}}");
        assert_eq!(recording(&base), Recording::Off);
        let stats = format!("PixlProxy: {{stats_uri_match: '^/s', {pool}}}}}}}");
        assert_eq!(recording(&stats), Recording::Full);
        let debug = format!("debug_level: 2\nPixlProxy: {{{pool}}}}}}}");
        assert_eq!(recording(&debug), Recording::Full);
    }

    #[test]
    fn queue_settings_resolve_against_the_globals() {
        let text = "WebServer: {http_temp_dir: /t, http_max_upload_size: 99}\nPixlProxy: {queue_dir: /q, pools: {A: {target_hostname: h, use_queue: true, max_queue_length: 5, max_concurrent_requests: 3}, B: {target_hostname: h, use_queue: true, queue_dir: /own}, C: {target_hostname: h}}}";
        let s = load_str(text).settings.unwrap();
        let pools = &s.pools;
        let a = pools[0].queue.as_ref().unwrap();
        assert_eq!((a.max_length, a.workers, a.max_body_bytes), (5, 3, 99));
        assert_eq!(a.requeue_delay, std::time::Duration::from_millis(100));
        assert_eq!(a.journal_dir.as_deref(), Some(Path::new("/q")));
        assert_eq!(a.spool_dir, Path::new("/q/spool"));
        assert!(a.fsync);
        let b = pools[1].queue.as_ref().unwrap();
        assert_eq!(b.journal_dir.as_deref(), Some(Path::new("/own")));
        assert_eq!(b.workers, crate::queue::DEFAULT_WORKERS);
        assert!(pools[2].queue.is_none());
        let memory = load_str("WebServer: {http_temp_dir: /t}\nPixlProxy: {pools: {A: {target_hostname: h, use_queue: true}}}");
        let memory = memory.settings.unwrap();
        let settings = memory.pools[0].queue.as_ref().unwrap();
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
        assert_eq!(
            paths(&errs),
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
                .settings
                .map(|s| s.pools[0].pool.redirect_hops)
        };
        assert_eq!(hops("false"), Some(0));
        assert_eq!(hops("7"), Some(7));
        assert_eq!(hops("'many'"), None);
    }
}
