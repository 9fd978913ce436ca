//! pixl-server's `log_crashes`: a panic hook that appends the panic's message, where it
//! happened and a backtrace to `<log_dir>/crash.log` (pixl-server's format: a header line
//! `<date> - <hostname> - PID <pid>`, then the message and the stack, then a blank line), writes
//! an `Uncaught Exception` debug line (level 1) to the event log, then runs the hook that was
//! there before (Rust's own, which prints to stderr). The file is written by the panicking
//! thread itself: a panic is the one moment that is allowed to wait for the disk.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Install the hook (once per process; a second call adds a second hook around the first).
pub(crate) fn install(path: PathBuf) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = match info.payload().downcast_ref::<&str>() {
            Some(text) => (*text).to_string(),
            None => match info.payload().downcast_ref::<String>() {
                Some(text) => text.clone(),
                None => "panic".to_string(),
            },
        };
        let place = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        let backtrace = std::backtrace::Backtrace::force_capture().to_string();
        let text = entry(
            chrono::Local::now(),
            &super::hostname(),
            &format!("thread '{thread}' panicked at {place}:\n{message}"),
            &backtrace,
        );
        append(&path, &text);
        super::debug(
            1,
            "poolgate",
            format!("Uncaught Exception: {message}"),
            Some(serde_json::json!({"location": place, "thread": thread})),
        );
        previous(info);
    }));
}

/// One crash log entry, as pixl-server writes it.
fn entry(
    at: chrono::DateTime<chrono::Local>,
    hostname: &str,
    message: &str,
    backtrace: &str,
) -> String {
    let date = at.format("%a %b %d %Y %H:%M:%S GMT%z");
    let pid = std::process::id();
    format!(
        "{date} - {hostname} - PID {pid}\n{message}\n{}\n\n",
        backtrace.trim_end()
    )
}

fn append(path: &Path, text: &str) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    match file {
        Ok(mut f) => {
            let _ = f.write_all(text.as_bytes());
        }
        Err(e) => eprintln!("poolgate: cannot write {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_follow_pixl_server() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-02T03:40:14+00:00")
            .unwrap()
            .with_timezone(&chrono::Local);
        let text = entry(at, "edge1", "boom", "   0: main\n");
        let pid = std::process::id();
        assert!(
            text.contains(&format!(" - edge1 - PID {pid}\nboom\n   0: main\n\n")),
            "{text}"
        );
        assert!(text.ends_with("main\n\n"), "{text}");
    }

    #[test]
    fn a_panic_is_appended_to_the_crash_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crash.log");
        install(path.clone());
        let crashed = std::thread::Builder::new()
            .name("crasher".into())
            .spawn(|| panic!("crash log test"))
            .unwrap()
            .join();
        assert!(crashed.is_err());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("thread 'crasher' panicked at "), "{text}");
        assert!(text.contains("crash log test"), "{text}");
        assert!(text.contains("crash.rs"), "{text}");
    }
}
