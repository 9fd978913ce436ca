//! The event log's own thread: it renders and writes lines (and echoes them with `--echo`), so
//! request threads only hand a line over. The file is reopened after SIGUSR1 or SIGHUP, for
//! logrotate.

use super::line::EventLine;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Lines written with one flush.
const MAX_BATCH: usize = 1024;

pub(super) struct Writer {
    pub(super) path: PathBuf,
    pub(super) out: BufWriter<File>,
    pub(super) hostname: String,
    pub(super) echo: bool,
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
    Ok(BufWriter::new(file))
}

impl Writer {
    pub(super) fn run(mut self, lines: Receiver<(SystemTime, EventLine)>) {
        let mut reported = 0;
        loop {
            let first = match lines.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => Some(line),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if self.reopen.swap(false, Ordering::AcqRel) {
                self.reopen_file();
            }
            let mut batch: Vec<_> = first.into_iter().collect();
            while batch.len() < MAX_BATCH {
                match lines.try_recv() {
                    Ok(line) => batch.push(line),
                    Err(_) => break,
                }
            }
            let handed_over = batch.len() as u64;
            let dropped = self.dropped.load(Ordering::Relaxed);
            if dropped > reported {
                batch.push((SystemTime::now(), dropped_line(dropped - reported)));
                reported = dropped;
            }
            for (at, line) in &batch {
                self.write(&line.render(*at, &self.hostname));
            }
            let _ = self.out.flush();
            self.written.fetch_add(handed_over, Ordering::Release);
        }
    }

    fn write(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        if self.echo {
            println!("{text}");
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

fn dropped_line(n: u64) -> EventLine {
    EventLine {
        component: "poolgate".into(),
        category: "error",
        code: "log".into(),
        msg: format!("{n} event log lines dropped: the log writer fell behind"),
        data: None,
    }
}
