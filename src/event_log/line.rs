//! One event-log line in PixlProxy's (pixl-logger's) column format:
//! `[hires_epoch][date][hostname][component][category][code][msg][data]`, `data` as compact
//! JSON (an empty column when there is none), `date` in local time; or in the columns of
//! pixl-server's `log_columns` (`render_columns_into`).

use super::columns::Column;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What one line says; the first three columns are added when it is written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventLine {
    /// Shared, since a pool's lines all name it.
    pub(crate) component: Arc<str>,
    /// `debug`, `error` or `transaction` (and `warning` for poolgate's warnings).
    pub(crate) category: &'static str,
    /// The debug level, an HTTP status, or a short key.
    pub(crate) code: Cow<'static, str>,
    pub(crate) msg: String,
    /// Compact JSON, written on the caller's thread (so the writer only copies it).
    pub(crate) data: Option<String>,
}

impl EventLine {
    /// The whole line (without a newline), stamped `at` on host `hostname`.
    pub(crate) fn render(&self, at: SystemTime, hostname: &str) -> String {
        let mut out = String::new();
        self.render_into(&mut out, at, hostname, &mut LocalDates::default());
        out
    }

    /// Append the line (without a newline) to `out`; the writer reuses one buffer and one
    /// date for all the lines of a second.
    pub(crate) fn render_into(
        &self,
        out: &mut String,
        at: SystemTime,
        hostname: &str,
        dates: &mut LocalDates,
    ) {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        out.reserve(128 + self.msg.len() + self.data.as_ref().map_or(0, |d| d.len()));
        out.push('[');
        let (secs, date) = dates.of(since.as_secs());
        out.push_str(secs);
        push_millis(out, since.subsec_millis());
        out.push_str("][");
        out.push_str(date);
        // The host name is read once and the category is one of a few fixed words; the pool
        // and the code come from configuration and requests.
        out.push_str("][");
        out.push_str(hostname);
        for column in [&self.component, self.category, &self.code] {
            out.push_str("][");
            push_column(out, column);
        }
        out.push_str("][");
        push_column(out, &self.msg);
        out.push_str("][");
        // JSON text never holds a raw line break.
        if let Some(data) = &self.data {
            out.push_str(data);
        }
        out.push(']');
    }
}

impl EventLine {
    /// As `render_into`, in the columns of `log_columns`.
    pub(crate) fn render_columns_into(
        &self,
        out: &mut String,
        at: SystemTime,
        hostname: &str,
        dates: &mut LocalDates,
        columns: &[Column],
    ) {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        out.reserve(128 + self.msg.len() + self.data.as_ref().map_or(0, |d| d.len()));
        out.push('[');
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push_str("][");
            }
            match column {
                Column::HiresEpoch => {
                    out.push_str(dates.of(since.as_secs()).0);
                    push_millis(out, since.subsec_millis());
                }
                Column::Epoch => out.push_str(dates.of(since.as_secs()).0),
                Column::Date => out.push_str(dates.of(since.as_secs()).1),
                Column::Hostname => out.push_str(hostname),
                Column::Pid => out.push_str(&std::process::id().to_string()),
                Column::Component => push_column(out, &self.component),
                Column::Category => push_column(out, self.category),
                Column::Code => push_column(out, &self.code),
                Column::Msg => push_column(out, &self.msg),
                Column::Data => out.push_str(self.data.as_deref().unwrap_or("")),
                Column::Other(_) => {}
            }
        }
        out.push(']');
    }
}

/// The epoch seconds and local date of the last second a line was stamped with.
#[derive(Debug, Default)]
pub(crate) struct LocalDates {
    sec: u64,
    secs: String,
    date: String,
}

impl LocalDates {
    fn of(&mut self, sec: u64) -> (&str, &str) {
        if self.date.is_empty() || self.sec != sec {
            self.sec = sec;
            self.secs = sec.to_string();
            self.date = local_date(sec);
        }
        (&self.secs, &self.date)
    }
}

/// The milliseconds of the epoch column, written as JavaScript writes `Date.now() / 1000`
/// (no trailing zeros: `1508477033.311`, `1508477033.3`, `1508477033`).
fn push_millis(out: &mut String, millis: u32) {
    if millis > 0 {
        let (digits, keep) = super::json_text::thousandths((millis % 1000) as u16);
        out.push('.');
        out.extend(digits[..keep].iter().map(|d| char::from(*d)));
    }
}

/// A column never spans lines: line breaks become spaces.
fn push_column(out: &mut String, text: &str) {
    if text.bytes().any(|b| b == b'\n' || b == b'\r') {
        out.push_str(&text.replace(['\n', '\r'], " "));
    } else {
        out.push_str(text);
    }
}

/// `YYYY-MM-DD HH:MM:SS` in the machine's local time zone (`TZ`, else `/etc/localtime`).
fn local_date(secs: u64) -> String {
    use chrono::TimeZone;
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    match chrono::Local.timestamp_opt(secs, 0).earliest() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "1970-01-01 00:00:00".into(),
    }
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
            data: Some(serde_json::json!({"http_code": 200}).to_string()),
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
        assert!(line.render(at(5_020), "h").starts_with("[5.02]["));
        assert!(line.render(at(5_007), "h").starts_with("[5.007]["));
    }

    #[test]
    fn custom_columns_are_written_in_their_order() {
        let line = EventLine {
            component: "api".into(),
            category: "error",
            code: "500".into(),
            msg: "boom".into(),
            data: None,
        };
        let columns: Vec<Column> = ["epoch", "category", "pid", "msg", "nope"]
            .iter()
            .map(|c| Column::named(c))
            .collect();
        let mut out = String::new();
        let mut dates = LocalDates::default();
        line.render_columns_into(&mut out, at(5_020), "h", &mut dates, &columns);
        assert_eq!(out, format!("[5][error][{}][boom][]", std::process::id()));
        let mut default = String::new();
        line.render_columns_into(
            &mut default,
            at(5_020),
            "h",
            &mut dates,
            &Column::defaults(),
        );
        assert_eq!(default, line.render(at(5_020), "h"));
    }

    #[test]
    fn dates_are_well_formed() {
        let d = local_date(1_508_477_033);
        assert_eq!(d.len(), 19);
        assert!(d.starts_with("2017-10-"), "{d}");
    }
}
