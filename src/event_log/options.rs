//! pixl-server's event-log options: `log_columns` (which columns a line has, in order),
//! `log_filters` (which lines are written, by column value), `log_debug_errors` (debug level 1
//! lines also written as `error` lines with the code `fatal`), `log_crashes` (the crash log,
//! see `crash.rs`) and `color` (colored echo).

pub(crate) use super::columns::Column;
use super::line::EventLine;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One `log_filters` ruleset: the values of one column that are written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnFilter {
    pub(crate) column: Column,
    /// `*: true`: every value not listed as `false` is written; otherwise only values listed
    /// as `true`.
    pub(crate) any: bool,
    pub(crate) values: BTreeMap<String, bool>,
}

impl ColumnFilter {
    fn allows(&self, value: &str) -> bool {
        self.values.get(value).copied().unwrap_or(self.any)
    }
}

/// The event log's options beyond its path and debug level.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LogOptions {
    /// `log_columns`; `None` = the default columns.
    pub(crate) columns: Option<Vec<Column>>,
    /// `log_filters`: a line is written only if every ruleset allows it.
    pub(crate) filters: Vec<ColumnFilter>,
    /// `log_debug_errors`.
    pub(crate) debug_errors: bool,
    /// `log_crashes`: `<log_dir>/crash.log`; `None` = off.
    pub(crate) crash_log: Option<PathBuf>,
    /// `echo` from the config (the command line decides whether it applies).
    pub(crate) echo: bool,
    /// `color`: color the echoed columns when standard output is a terminal.
    pub(crate) color: bool,
    /// pixl-server-web's logging keys.
    pub(crate) web: WebLogOptions,
    /// `http_req_max_dump_*`; `None` = off.
    pub(crate) max_dump: Option<super::MaxDumpSettings>,
}

/// pixl-server-web's `http_log_request_details`, `http_log_body_max`, `http_log_perf` /
/// `http_perf_threshold_ms` and `http_log_socket_errors`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WebLogOptions {
    /// Request details in the transaction lines (with `http_log_requests`).
    pub(crate) details: bool,
    /// Longest body logged with the details, in bytes.
    pub(crate) body_max: usize,
    /// `http_log_perf`: a perf line for requests taking at least this long; `None` = off.
    pub(crate) perf_threshold: Option<std::time::Duration>,
    /// Client sockets closed mid-request as error lines (else level 9 debug lines).
    pub(crate) socket_errors: bool,
}

impl Default for WebLogOptions {
    fn default() -> Self {
        WebLogOptions {
            details: false,
            body_max: 32 * 1024,
            perf_threshold: None,
            socket_errors: true,
        }
    }
}

impl LogOptions {
    /// Whether `log_filters` lets `line` through.
    #[cfg(test)]
    fn allows(&self, line: &EventLine, hostname: &str) -> bool {
        allows(&self.filters, line, hostname)
    }
}

/// Whether every ruleset of `filters` lets `line` through.
pub(super) fn allows(filters: &[ColumnFilter], line: &EventLine, hostname: &str) -> bool {
    filters.iter().all(|f| {
        let pid;
        let value = match &f.column {
            Column::Component => &*line.component,
            Column::Category => line.category,
            Column::Code => &line.code,
            Column::Msg => &line.msg,
            Column::Data => line.data.as_deref().unwrap_or(""),
            Column::Hostname => hostname,
            Column::Pid => {
                pid = std::process::id().to_string();
                &pid
            }
            _ => "",
        };
        f.allows(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(component: &str, category: &'static str) -> EventLine {
        EventLine {
            component: component.into(),
            category,
            code: "1".into(),
            msg: "m".into(),
            data: None,
        }
    }

    fn filter(column: &str, any: bool, values: &[(&str, bool)]) -> ColumnFilter {
        ColumnFilter {
            column: Column::named(column),
            any,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn filters_follow_pixl_server() {
        let only_errors = LogOptions {
            filters: vec![filter("category", false, &[("error", true)])],
            ..LogOptions::default()
        };
        assert!(only_errors.allows(&line("api", "error"), "h"));
        assert!(!only_errors.allows(&line("api", "debug"), "h"));
        let all_but_web = LogOptions {
            filters: vec![filter("component", true, &[("WebServer", false)])],
            ..LogOptions::default()
        };
        assert!(all_but_web.allows(&line("api", "debug"), "h"));
        assert!(!all_but_web.allows(&line("WebServer", "transaction"), "h"));
        let both = LogOptions {
            filters: [only_errors.filters, all_but_web.filters].concat(),
            ..LogOptions::default()
        };
        assert!(!both.allows(&line("WebServer", "error"), "h"));
        assert!(both.allows(&line("api", "error"), "h"));
    }

    #[test]
    fn column_names_map_to_columns() {
        assert_eq!(Column::named("hires_epoch"), Column::HiresEpoch);
        assert_eq!(Column::named("pid"), Column::Pid);
        assert_eq!(Column::named("ip"), Column::Other("ip".into()));
        assert_eq!(Column::defaults().len(), 8);
    }
}
