//! The event log's own thread: it writes the lines request threads rendered (and echoes them
//! with `--echo` or pixl-server's `echo`, colored with `color` on a terminal), so a request
//! never waits on the file. The file is reopened after SIGUSR1 or SIGHUP, for logrotate.

use super::columns::Column;
use super::line::{EventLine, LocalDates};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Lines written with one flush.
const MAX_BATCH: usize = 1024;
/// How long a busy writer lets lines gather before it writes them.
const GATHER: Duration = Duration::from_millis(10);
/// The file's write buffer: one write call per this many bytes of lines.
const WRITE_BUFFER: usize = 64 * 1024;

pub(super) struct Writer {
    pub(super) path: PathBuf,
    pub(super) out: BufWriter<File>,
    pub(super) hostname: String,
    pub(super) echo: bool,
    /// Color the echoed columns.
    pub(super) color: bool,
    /// `log_columns`; `None` = the default ones.
    pub(super) columns: Option<Arc<[Column]>>,
    pub(super) reopen: Arc<AtomicBool>,
    pub(super) dropped: Arc<AtomicU64>,
    /// Lines written and flushed (read by `flush`).
    pub(super) written: Arc<AtomicU64>,
}

pub(super) fn open(path: &Path) -> io::Result<BufWriter<File>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(BufWriter::with_capacity(WRITE_BUFFER, file))
}

impl Writer {
    pub(super) fn run(mut self, lines: Receiver<String>) {
        let mut reported = 0;
        let mut dates = LocalDates::default();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = match lines.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => Some(line),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if self.reopen.swap(false, Ordering::AcqRel) {
                self.reopen_file();
            }
            batch.extend(first);
            while batch.len() < MAX_BATCH {
                match lines.try_recv() {
                    Ok(line) => batch.push(line),
                    Err(_) => break,
                }
            }
            let handed_over = batch.len() as u64;
            let dropped = self.dropped.load(Ordering::Relaxed);
            if dropped > reported {
                let mut notice = String::new();
                let line = dropped_line(dropped - reported);
                let now = SystemTime::now();
                match &self.columns {
                    None => line.render_into(&mut notice, now, &self.hostname, &mut dates),
                    Some(columns) => line.render_columns_into(
                        &mut notice,
                        now,
                        &self.hostname,
                        &mut dates,
                        columns,
                    ),
                }
                batch.push(notice);
                reported = dropped;
            }
            for line in batch.drain(..) {
                self.write(&line);
            }
            let _ = self.out.flush();
            self.written.fetch_add(handed_over, Ordering::Release);
            // While lines keep coming, let them gather for a moment instead of being woken for
            // each one: a wake-up per line costs the request threads a futex call and a context
            // switch (measured at 2.7 per request with transaction logging on).
            // A full batch means more are waiting: write on at once.
            if handed_over > 0 && handed_over < MAX_BATCH as u64 {
                std::thread::sleep(GATHER);
            }
        }
    }

    fn write(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.write_all(b"\n");
        if self.echo {
            match self.color {
                true => println!("{}", colorize(text)),
                false => println!("{text}"),
            }
        }
    }

    fn reopen_file(&mut self) {
        let _ = self.out.flush();
        match open(&self.path) {
            Ok(out) => self.out = out,
            Err(e) => eprintln!("poolgate: cannot reopen {}: {e}", self.path.display()),
        }
    }
}

/// Colors of the columns, in turn (as pixl-logger's `colorize`: each column its own color,
/// the brackets dimmed).
const COLORS: &[&str] = &["90", "37", "36", "35", "33", "32", "34", "39"];

/// `[a][b]...` with each column in its color (ANSI escapes).
fn colorize(text: &str) -> String {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let mut out = String::with_capacity(text.len() * 2);
    for (i, column) in inner.split("][").enumerate() {
        let color = COLORS[i % COLORS.len()];
        out.push_str("\x1b[2m[\x1b[0m\x1b[");
        out.push_str(color);
        out.push('m');
        out.push_str(column);
        out.push_str("\x1b[0m\x1b[2m]\x1b[0m");
    }
    out
}

fn dropped_line(n: u64) -> EventLine {
    EventLine {
        component: "poolgate".into(),
        category: "error",
        code: "log".into(),
        msg: format!("{n} event log lines dropped: the log writer fell behind"),
        data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colored_echo_keeps_every_column_in_its_own_color() {
        let out = colorize("[1][h][debug][hello]");
        assert_eq!(out.matches("\x1b[2m[").count(), 4);
        assert!(out.contains("\x1b[90m1\x1b[0m"), "{out:?}");
        assert!(out.contains("\x1b[35mhello\x1b[0m"), "{out:?}");
    }
}
