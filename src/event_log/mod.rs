//! The event log: PixlProxy's `log_dir`/`log_filename` file, one line per event in pixl-logger's
//! columns (`line.rs`), written by its own thread (`writer.rs`) from a bounded buffer; a line
//! that finds the buffer full is counted and the count logged, never waited for. `debug_level`
//! (1-10) filters debug lines. Everything poolgate logs through the `log` crate lands here too
//! (`bridge.rs`), next to stderr.
//!
//! Owns the lines themselves: a pool's transaction and error lines (`transaction.rs`, PixlProxy's
//! `log_transactions`, `log_perf_ms`, `log_errors`), the web server's request lines
//! (`web.rs`, `http_log_requests`), the JSON they carry (`json_text.rs`) and what is redacted
//! from them (`redact.rs`). Uses only the leaf `timing`.
//!
//! pixl-server's logging keys: `log_columns`, `log_filters`, `log_debug_errors` and `color`
//! (`options.rs`), `log_crashes` (`crash.rs`), `echo` (`writer.rs`); pixl-server-web's
//! `http_log_request_details`, `http_log_body_max`, `http_log_perf`, `http_perf_threshold_ms`,
//! `http_log_socket_errors` (`web.rs`) and `http_req_max_dump_*` (`max_dump.rs`).

mod bridge;
mod columns;
mod crash;
mod json_text;
mod line;
mod max_dump;
mod options;
pub(crate) mod redact;
mod transaction;
mod web;
mod writer;

pub(crate) use bridge::{init_logging, CONSOLE_ONLY};
pub(crate) use json_text::JsonObject;
pub(crate) use line::EventLine;
use line::LocalDates;
pub(crate) use max_dump::{dump_source, maxed_out, MaxDumpSettings};
pub(crate) use options::{Column, ColumnFilter, LogOptions, WebLogOptions};
use std::cell::RefCell;
pub(crate) use transaction::{LogPolicy, Transaction};
#[cfg(test)]
pub(crate) use web::tests::request as sample_web_request;
pub(crate) use web::{socket_closed, BodyCapture, WebExtras, WebLog, WebRequest};

use once_cell::sync::OnceCell;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

/// Lines waiting for the writer at most; beyond that they are dropped and counted.
const BUFFER_LINES: usize = 16 * 1024;

/// Where the event log goes and what it keeps.
pub(crate) struct EventLogSettings {
    pub(crate) path: PathBuf,
    pub(crate) debug_level: u8,
    /// `--echo`: also print every line to standard output.
    pub(crate) echo: bool,
    /// Values never logged in the clear (see `redact.rs`).
    pub(crate) secrets: Vec<String>,
    /// pixl-server's `log_columns`, `log_filters`, `log_debug_errors`, `log_crashes`, `color`.
    pub(crate) options: LogOptions,
}

struct EventLog {
    /// Rendered lines, on their way to the writer.
    lines: SyncSender<String>,
    hostname: String,
    dropped: Arc<AtomicU64>,
    /// Lines handed to the writer, and lines it has written and flushed.
    sent: AtomicU64,
    written: Arc<AtomicU64>,
    debug_level: u8,
    /// `log_columns` (`None`: the default ones), shared with the writer.
    columns: Option<Arc<[Column]>>,
    filters: Vec<ColumnFilter>,
    debug_errors: bool,
    web: WebLogOptions,
}

static EVENTS: OnceCell<EventLog> = OnceCell::new();

/// Open the log file and start the writer (once per process). An unwritable file is an error.
pub(crate) fn start(settings: EventLogSettings) -> io::Result<()> {
    redact::set_secrets(settings.secrets);
    let out = writer::open(&settings.path)?;
    let (lines, rx) = sync_channel(BUFFER_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let reopen = Arc::new(AtomicBool::new(false));
    let hostname = hostname();
    let options = settings.options;
    let columns: Option<Arc<[Column]>> = options
        .columns
        .filter(|c| *c != Column::defaults())
        .map(Arc::from);
    let color = options.color && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let w = writer::Writer {
        path: settings.path,
        out,
        hostname: hostname.clone(),
        echo: settings.echo,
        color,
        columns: columns.clone(),
        reopen: reopen.clone(),
        dropped: dropped.clone(),
        written: written.clone(),
    };
    std::thread::Builder::new()
        .name("event-log".into())
        .spawn(move || w.run(rx))?;
    watch_reopen_signals(reopen)?;
    let log = EventLog {
        lines,
        hostname,
        dropped,
        sent: AtomicU64::new(0),
        written,
        debug_level: settings.debug_level,
        columns,
        filters: options.filters,
        debug_errors: options.debug_errors,
        web: options.web,
    };
    let _ = EVENTS.set(log);
    if let Some(crash_log) = options.crash_log {
        crash::install(crash_log);
    }
    if let Some(dump) = options.max_dump {
        max_dump::enable(dump);
    }
    Ok(())
}

/// pixl-server-web's logging keys (the defaults before the log is started).
pub(crate) fn web_options() -> &'static WebLogOptions {
    static DEFAULT: OnceCell<WebLogOptions> = OnceCell::new();
    match EVENTS.get() {
        Some(events) => &events.web,
        None => DEFAULT.get_or_init(WebLogOptions::default),
    }
}

/// Whether a debug line of `level` would be written.
pub(crate) fn wants_debug(level: u8) -> bool {
    EVENTS.get().is_some_and(|e| level <= e.debug_level)
}

/// Write a line (debug lines only up to `debug_level`; only what `log_filters` allows; a debug
/// level 1 line also as a `fatal` error with `log_debug_errors`).
pub(crate) fn emit(line: EventLine) {
    emit_at(line, None);
}

/// As `emit`, stamped `at` instead of now (pixl-server-web's perf lines show the request's
/// start).
pub(crate) fn emit_at(line: EventLine, at: Option<SystemTime>) {
    let Some(events) = EVENTS.get() else { return };
    if line.category == "debug" && !line.code.parse().is_ok_and(|l: u8| l <= events.debug_level) {
        return;
    }
    let fatal =
        (events.debug_errors && line.category == "debug" && line.code == "1").then(|| EventLine {
            category: "error",
            code: "fatal".into(),
            ..line.clone()
        });
    for line in std::iter::once(line).chain(fatal) {
        if events.allows(&line) {
            events.push_at(line, at);
        }
    }
}

thread_local! {
    /// The date columns of the last second this thread stamped a line with.
    static DATES: RefCell<LocalDates> = RefCell::new(LocalDates::default());
}

impl EventLog {
    fn allows(&self, line: &EventLine) -> bool {
        self.filters.is_empty() || options::allows(&self.filters, line, &self.hostname)
    }

    /// Render a line here, on the caller's thread, and hand it to the writer, or count it
    /// dropped when the buffer is full. Rendering here means one string per line crosses to
    /// the writer (allocated and freed on different threads once, not once per part).
    #[cfg(test)]
    fn push(&self, line: EventLine) {
        self.push_at(line, None);
    }

    fn push_at(&self, line: EventLine, at: Option<SystemTime>) {
        let mut text = String::new();
        let at = at.unwrap_or_else(SystemTime::now);
        let render = |text: &mut String, dates: &mut LocalDates| match &self.columns {
            None => line.render_into(text, at, &self.hostname, dates),
            Some(columns) => line.render_columns_into(text, at, &self.hostname, dates, columns),
        };
        DATES.with(|dates| match dates.try_borrow_mut() {
            Ok(mut dates) => render(&mut text, &mut dates),
            Err(_) => render(&mut text, &mut LocalDates::default()),
        });
        match self.lines.try_send(text) {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::AcqRel);
            }
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Wait (at most `limit`) until every line handed over so far is written (before exiting).
pub(crate) fn flush(limit: std::time::Duration) {
    let Some(events) = EVENTS.get() else { return };
    let target = events.sent.load(Ordering::Acquire);
    let deadline = std::time::Instant::now() + limit;
    while events.written.load(Ordering::Acquire) < target && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A debug line of `level` (1-10).
pub(crate) fn debug(
    level: u8,
    component: &str,
    msg: impl Into<String>,
    data: Option<serde_json::Value>,
) {
    if wants_debug(level) {
        emit(EventLine {
            component: component.into(),
            category: "debug",
            code: level.to_string().into(),
            msg: msg.into(),
            data: data.map(|d| d.to_string()),
        });
    }
}

/// An error line; `code` is an HTTP status or a short key.
pub(crate) fn error(
    component: &str,
    code: impl ToString,
    msg: impl Into<String>,
    data: serde_json::Value,
) {
    emit(EventLine {
        component: component.into(),
        category: "error",
        code: code.to_string().into(),
        msg: msg.into(),
        data: Some(data.to_string()),
    });
}

/// Lines dropped because the writer fell behind.
pub(crate) fn dropped() -> u64 {
    EVENTS
        .get()
        .map_or(0, |e| e.dropped.load(Ordering::Relaxed))
}

/// This machine's host name (the log's third column and the stats API's `hostname`).
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.trim().replace(['\n', '\r'], " "))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// SIGUSR1 and SIGHUP ask the writer to reopen the file (after logrotate moved it).
fn watch_reopen_signals(reopen: Arc<AtomicBool>) -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut usr1, mut hup) = {
        let _guard = rt.enter();
        (
            signal(SignalKind::user_defined1())?,
            signal(SignalKind::hangup())?,
        )
    };
    std::thread::Builder::new()
        .name("event-log-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                loop {
                    tokio::select! {
                        got = usr1.recv() => if got.is_none() { return },
                        got = hup.recv() => if got.is_none() { return },
                    }
                    reopen.store(true, Ordering::Release);
                }
            })
        })?;
    Ok(())
}

/// Request headers for a log line's `data`, lower-case names, secrets redacted.
pub(crate) fn headers_json(headers: &http::HeaderMap) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, value) in headers {
        let shown = redact::header_value(name, value.as_bytes()).into_owned();
        out.insert(name.as_str().to_string(), shown.into());
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_drops_and_counts_instead_of_waiting() {
        let (lines, _writer_not_reading) = sync_channel(2);
        let log = EventLog {
            lines,
            hostname: "h".into(),
            dropped: Arc::new(AtomicU64::new(0)),
            sent: AtomicU64::new(0),
            written: Arc::new(AtomicU64::new(0)),
            debug_level: 1,
            columns: None,
            filters: Vec::new(),
            debug_errors: false,
            web: WebLogOptions::default(),
        };
        let line = EventLine {
            component: "c".into(),
            category: "error",
            code: "1".into(),
            msg: "m".into(),
            data: None,
        };
        (0..5).for_each(|_| log.push(line.clone()));
        assert_eq!(log.dropped.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn credentials_are_redacted_from_logged_headers() {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        h.insert("x-a", "1".parse().unwrap());
        let json = headers_json(&h).to_string();
        assert_eq!(json, r#"{"authorization":"[redacted]","x-a":"1"}"#);
    }
}
