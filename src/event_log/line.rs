//! One event-log line in PixlProxy's (pixl-logger's) column format:
//! `[hires_epoch][date][hostname][component][category][code][msg][data]`, `data` as compact
//! JSON (an empty column when there is none), `date` in local time.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// What one line says; the first three columns are added when it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLine {
    pub component: String,
    /// `debug`, `error` or `transaction` (and `warning` for poolgate's warnings).
    pub category: &'static str,
    /// The debug level, an HTTP status, or a short key.
    pub code: String,
    pub msg: String,
    pub data: Option<serde_json::Value>,
}

impl EventLine {
    /// The whole line (without a newline), stamped `at` on host `hostname`.
    pub fn render(&self, at: SystemTime, hostname: &str) -> String {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut out = String::with_capacity(128 + self.msg.len());
        out.push('[');
        push_epoch(&mut out, since.as_secs(), since.subsec_millis());
        out.push_str("][");
        out.push_str(&local_date(since.as_secs()));
        for column in [hostname, &self.component, self.category, &self.code] {
            out.push_str("][");
            push_column(&mut out, column);
        }
        out.push_str("][");
        push_column(&mut out, &self.msg);
        out.push_str("][");
        if let Some(data) = &self.data {
            push_column(&mut out, &data.to_string());
        }
        out.push(']');
        out
    }
}

/// Seconds with milliseconds, written as JavaScript writes `Date.now() / 1000` (no trailing
/// zeros: `1508477033.311`, `1508477033.3`, `1508477033`).
fn push_epoch(out: &mut String, secs: u64, millis: u32) {
    let _ = write!(out, "{secs}");
    if millis > 0 {
        let frac = format!("{millis:03}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
}

/// A column never spans lines: line breaks become spaces.
fn push_column(out: &mut String, text: &str) {
    if text.contains(['\n', '\r']) {
        out.push_str(&text.replace(['\n', '\r'], " "));
    } else {
        out.push_str(text);
    }
}

/// `YYYY-MM-DD HH:MM:SS` in the machine's local time zone.
fn local_date(secs: u64) -> String {
    let t = libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX);
    // SAFETY: `tm` is plain data that `localtime_r` fills in; both pointers are valid for the
    // call and `localtime_r` (unlike `localtime`) keeps no shared state.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return "1970-01-01 00:00:00".into();
        }
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn columns_follow_pixl_logger() {
        let line = EventLine {
            component: "MyPool1".into(),
            category: "transaction",
            code: "http".into(),
            msg: "Proxy Request Completed: HTTP 200 OK".into(),
            data: Some(serde_json::json!({"http_code": 200})),
        };
        let text = line.render(at(1_508_477_033_311), "joedark.local");
        let date = local_date(1_508_477_033);
        assert_eq!(
            text,
            format!("[1508477033.311][{date}][joedark.local][MyPool1][transaction][http][Proxy Request Completed: HTTP 200 OK][{{\"http_code\":200}}]")
        );
    }

    #[test]
    fn epoch_has_no_trailing_zeros_and_empty_data_is_an_empty_column() {
        let line = EventLine {
            component: "poolgate".into(),
            category: "debug",
            code: "1".into(),
            msg: "two\nlines".into(),
            data: None,
        };
        let text = line.render(at(1_000_300), "h");
        assert!(text.starts_with("[1000.3]["), "{text}");
        assert!(
            text.ends_with("[h][poolgate][debug][1][two lines][]"),
            "{text}"
        );
        assert!(line.render(at(5_000), "h").starts_with("[5]["));
    }

    #[test]
    fn dates_are_well_formed() {
        let d = local_date(1_508_477_033);
        assert_eq!(d.len(), 19);
        assert!(d.starts_with("2017-10-"), "{d}");
    }
}
