//! Everything logged through the `log` crate goes to stderr (filtered by `RUST_LOG`, default
//! `warn,poolgate=info`, with poolgate's debug lines from `debug_level` 5) and to the event
//! log: errors as `error`, warnings as `warning`, poolgate's info / debug / trace lines as debug
//! levels 2 / 5 / 9. A message starting with `[<pool>] ` is logged with the pool as component.
//! Lines logged with the target `CONSOLE_ONLY` go to stderr alone (their event-log form is
//! written separately, with its data).

use super::line::EventLine;
use log::{Level, LevelFilter, Log, Metadata, Record};

/// Target of `log` lines that stay out of the event log.
pub(crate) const CONSOLE_ONLY: &str = "poolgate::console";

/// Pingora's file-descriptor transfer, which logs expected retries as errors.
const NOISY: &str = "pingora_core::server::transfer_fd";

struct Bridge {
    stderr: env_logger::Logger,
}

/// Install the logger. `RUST_LOG` overrides the stderr filter.
pub(crate) fn init_logging(debug_level: u8) {
    let ours = if debug_level >= 5 { "debug" } else { "info" };
    // A reload's new process retries for the sockets while the old one is being told to send
    // them; Pingora logs each early attempt as an error. A real failure still shows as
    // "Bootstrap failed".
    let default = format!("warn,poolgate={ours},{NOISY}=off");
    let stderr =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
            .format_timestamp_millis()
            .build();
    let events = match debug_level {
        9.. => LevelFilter::Trace,
        5..=8 => LevelFilter::Debug,
        2..=4 => LevelFilter::Info,
        _ => LevelFilter::Warn,
    };
    let max = stderr.filter().max(events);
    if log::set_boxed_logger(Box::new(Bridge { stderr })).is_ok() {
        log::set_max_level(max);
    }
}

/// The event-log category, code and debug level of a `log` line, if it goes there.
fn mapping(level: Level, target: &str) -> Option<(&'static str, &'static str, u8)> {
    let ours = target.starts_with("poolgate") && target != CONSOLE_ONLY;
    match level {
        _ if target == CONSOLE_ONLY || target == NOISY => None,
        Level::Error => Some(("error", "error", 1)),
        Level::Warn => Some(("warning", "warn", 1)),
        Level::Info if ours => Some(("debug", "2", 2)),
        Level::Debug if ours => Some(("debug", "5", 5)),
        Level::Trace if ours => Some(("debug", "9", 9)),
        _ => None,
    }
}

fn wanted(level: Level, target: &str) -> Option<(&'static str, &'static str)> {
    let (category, code, debug_level) = mapping(level, target)?;
    (category != "debug" || super::wants_debug(debug_level)).then_some((category, code))
}

/// `[pool] message` -> (`pool`, `message`); anything else belongs to poolgate (or Pingora).
fn split_component<'a>(text: &'a str, target: &str) -> (&'a str, &'a str) {
    if let Some((pool, rest)) = text
        .strip_prefix('[')
        .and_then(|t| t.split_once("] "))
        .filter(|(pool, _)| !pool.contains(['[', ']']))
    {
        return (pool, rest);
    }
    let owner = if target.starts_with("pingora") {
        "Pingora"
    } else {
        "poolgate"
    };
    (owner, text)
}

impl Log for Bridge {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        self.stderr.enabled(m) || wanted(m.level(), m.target()).is_some()
    }

    fn log(&self, record: &Record<'_>) {
        if self.stderr.matches(record) {
            self.stderr.log(record);
        }
        let Some((category, code)) = wanted(record.level(), record.target()) else {
            return;
        };
        let text = record.args().to_string();
        let (component, msg) = split_component(&text, record.target());
        super::emit(EventLine {
            component: component.into(),
            category,
            code: code.into(),
            msg: msg.into(),
            data: None,
        });
    }

    fn flush(&self) {
        self.stderr.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_prefixes_become_the_component() {
        assert_eq!(
            split_component("[api] target down", "poolgate::pool::health"),
            ("api", "target down")
        );
        assert_eq!(
            split_component("no pools", "poolgate"),
            ("poolgate", "no pools")
        );
        assert_eq!(
            split_component("[a][b] x", "pingora_core"),
            ("Pingora", "[a][b] x")
        );
    }

    #[test]
    fn levels_map_to_categories() {
        assert_eq!(
            mapping(Level::Error, "pingora_core").map(|m| m.0),
            Some("error")
        );
        assert_eq!(
            mapping(Level::Warn, "poolgate::x").map(|m| m.0),
            Some("warning")
        );
        assert_eq!(mapping(Level::Info, "poolgate"), Some(("debug", "2", 2)));
        assert_eq!(mapping(Level::Info, "pingora_core"), None);
        assert_eq!(mapping(Level::Error, CONSOLE_ONLY), None);
    }
}
