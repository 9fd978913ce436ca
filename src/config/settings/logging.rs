//! pixl-server's logging keys as settings: `log_columns`, `log_filters`, `log_debug_errors`,
//! `log_crashes` (`<log_dir>/crash.log`), `echo` and `color` into the event log's options;
//! `stdout` / `stderr` (where `start`'s detached process writes) into paths. And
//! pixl-server-web's `http_log_request_details`, `http_log_body_max`, `http_log_perf`,
//! `http_perf_threshold_ms`, `http_log_socket_errors` and `http_req_max_dump_enabled` /
//! `_dir` (default `log_dir`) / `_debounce`.

use super::super::file::FileConfig;
use super::super::problem::Problems;
use crate::event_log::{Column, ColumnFilter, LogOptions, MaxDumpSettings, WebLogOptions};
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(super) fn log_options(cfg: &FileConfig, problems: &mut Problems) -> LogOptions {
    if cfg.log_columns.is_empty() {
        problems.push("log_columns", "must list at least one column");
    }
    let columns = cfg.log_columns.iter().map(|c| Column::named(c)).collect();
    let mut filters = Vec::new();
    for (column, rules) in &cfg.log_filters {
        let mut filter = ColumnFilter {
            column: Column::named(column),
            any: false,
            values: Default::default(),
        };
        for (value, on) in rules {
            let Some(on) = flag(on) else {
                let path = format!("log_filters.{column}.{value}");
                problems.push(path, "must be true or false");
                continue;
            };
            match value.as_str() {
                "*" => filter.any = on,
                _ => {
                    filter.values.insert(value.clone(), on);
                }
            }
        }
        filters.push(filter);
    }
    let web = &cfg.web_server;
    let web_options = WebLogOptions {
        details: web.http_log_request_details,
        body_max: usize::try_from(web.http_log_body_max).unwrap_or(usize::MAX),
        perf_threshold: web
            .http_log_perf
            .then(|| Duration::from_millis(web.http_perf_threshold_ms)),
        socket_errors: web.http_log_socket_errors,
    };
    let max_dump = web.http_req_max_dump_enabled.then(|| {
        let dir = match web.http_req_max_dump_dir.as_str() {
            "" => PathBuf::from(&cfg.log_dir),
            dir => PathBuf::from(dir),
        };
        MaxDumpSettings {
            dir: absolute(dir),
            debounce: Duration::from_secs(web.http_req_max_dump_debounce),
        }
    });
    LogOptions {
        web: web_options,
        max_dump,
        columns: Some(columns),
        filters,
        debug_errors: cfg.log_debug_errors,
        crash_log: cfg
            .log_crashes
            .then(|| absolute(Path::new(&cfg.log_dir).join("crash.log"))),
        echo: cfg.echo,
        color: cfg.color,
    }
}

/// A `log_filters` value: `true`/`false` (or 1/0, as JavaScript reads them).
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_u64().filter(|n| *n <= 1).map(|n| n == 1),
        _ => None,
    }
}

/// `stdout` / `stderr`: empty = the default, else the file (made absolute, since the detached
/// process may run elsewhere).
pub(super) fn daemon_output(path: &str) -> Option<PathBuf> {
    (!path.is_empty()).then(|| absolute(PathBuf::from(path)))
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    #[test]
    fn logging_keys_become_the_event_logs_options() {
        let text = "log_dir: /l\nlog_columns: [epoch, msg]\nlog_filters: {category: {error: true, debug: 0}, component: {'*': 1, WebServer: false}}\nlog_crashes: true\nlog_debug_errors: true\ncolor: true\nstdout: /o\nPixlProxy: {pools: {a: {target_hostname: h}}}";
        let s = load_str(text).settings.unwrap();
        let o = &s.logging;
        assert_eq!(o.columns.as_ref().map(Vec::len), Some(2));
        assert_eq!(o.filters.len(), 2);
        assert!(o.filters[1].any && !o.filters[1].values["WebServer"]);
        assert_eq!(
            o.crash_log.as_deref(),
            Some(std::path::Path::new("/l/crash.log"))
        );
        assert!(o.debug_errors && o.color && !o.echo);
        assert_eq!(
            s.process.stdout.as_deref(),
            Some(std::path::Path::new("/o"))
        );
        assert!(s.process.stderr.is_none());
    }

    #[test]
    fn bad_logging_keys_are_errors_at_their_paths() {
        let errs = crate::config::tests::errors(
            "log_columns: []\nlog_filters: {category: {error: maybe}}",
        );
        assert_eq!(
            errs,
            [
                "log_columns: must list at least one column",
                "log_filters.category.error: must be true or false"
            ]
        );
    }
}
