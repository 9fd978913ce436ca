//! pixl-server-web's Request Max Dump (`http_req_max_dump_enabled`, `http_req_max_dump_dir`,
//! `http_req_max_dump_debounce`): when the front end is maxed out (`http_max_connections`
//! reached, or the request queue full), a JSON file with everything the stats API shows — the
//! pools, the open sockets with their requests in progress, the request queue — is written to
//! the dump directory as `req-dump-<hostname>-<pid>-<base36 ms>.json`, at most once per
//! debounce period. The document is built and written on a thread of its own (under a
//! temporary name, then renamed, so a reader never sees half of it): the request that found
//! the limit only reads the clock and swaps an atomic.

use once_cell::sync::OnceCell;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `http_req_max_dump_dir` and `http_req_max_dump_debounce`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MaxDumpSettings {
    pub(crate) dir: PathBuf,
    pub(crate) debounce: Duration,
}

type Source = Box<dyn Fn() -> Value + Send + Sync>;

struct MaxDump {
    settings: MaxDumpSettings,
    /// What is dumped (the stats API's document), registered by the server.
    source: OnceCell<Source>,
    /// Unix milliseconds of the last dump (0 = none yet).
    last: AtomicU64,
}

static DUMP: OnceCell<MaxDump> = OnceCell::new();

/// Turn the dumps on (at start, with the event log).
pub(super) fn enable(settings: MaxDumpSettings) {
    let _ = DUMP.set(MaxDump {
        settings,
        source: OnceCell::new(),
        last: AtomicU64::new(0),
    });
}

/// Register what a dump holds (once; with dumps off it is dropped).
pub(crate) fn dump_source(source: impl Fn() -> Value + Send + Sync + 'static) {
    if let Some(dump) = DUMP.get() {
        let _ = dump.source.set(Box::new(source));
    }
}

/// The front end is maxed out (`why`: the limit reached): dump, unless one was written less
/// than the debounce period ago.
pub(crate) fn maxed_out(why: &'static str) {
    let Some(dump) = DUMP.get() else { return };
    let now = crate::timing::clock::unix_ms();
    let last = dump.last.load(Ordering::Acquire);
    let debounce = dump.settings.debounce.as_millis() as u64;
    if last != 0 && now.saturating_sub(last) < debounce {
        return;
    }
    if dump
        .last
        .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("req-max-dump".into())
        .spawn(move || write(dump, why, now));
    if let Err(e) = spawned {
        log::warn!("http_req_max_dump: cannot start the dump: {e}");
    }
}

fn write(dump: &MaxDump, why: &str, now: u64) {
    let mut doc = dump.source.get().map_or(Value::Null, |source| source());
    if let Value::Object(map) = &mut doc {
        map.insert("reason".into(), why.into());
        map.insert("date".into(), serde_json::json!(now as f64 / 1000.0));
    }
    let dir = &dump.settings.dir;
    let name = file_name(&super::hostname(), std::process::id(), now);
    let path = dir.join(name);
    // Written under a temporary name and renamed: whoever watches the directory never reads
    // a half-written dump.
    let partial = dir.join(format!(
        ".{}.partial",
        file_name(&super::hostname(), std::process::id(), now)
    ));
    let result = std::fs::create_dir_all(dir).and_then(|()| {
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, &path)
    });
    match result {
        Ok(()) => log::warn!("{why} reached: wrote request dump {}", path.display()),
        Err(e) => log::warn!("http_req_max_dump: cannot write {}: {e}", path.display()),
    }
}

/// `req-dump-<hostname>-<pid>-<ms in base 36>.json`, as pixl-server-web names them.
fn file_name(hostname: &str, pid: u32, ms: u64) -> String {
    let host: String = hostname
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    format!("req-dump-{host}-{pid}-{}.json", base36(ms))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_files_are_named_like_pixl_server_webs() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(
            file_name("joemax.local", 67463, 1_644_617_758_688),
            "req-dump-joemax.local-67463-kziyy868.json"
        );
    }
}
