//! The command line: `serve` runs the proxy, `check` validates a config, and the control
//! commands (`start`, `stop`, `restart`, `reload`, `status`, `debug`, `config`, `showconfig`,
//! `boot`, `unboot`) manage it as a service (`control.rs`, `boot.rs`: the systemd unit).
//!
//! Uses `config` (every command reads the settings) and `server` (`serve` runs one); the
//! control commands build nothing beyond the settings.

use crate::config::{self, Located};
use crate::server::{self, Settings};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod boot;
mod control;
mod showconfig;

/// Exit code for a config that cannot run.
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "poolgate",
    version,
    about = "PixlProxy-compatible HTTP reverse proxy on Pingora"
)]
struct Cli {
    /// Config file (YAML or JSON). Default: $POOLGATE_CONFIG, else conf/config.yaml.
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy in the foreground until SIGTERM (graceful) or SIGINT (fast).
    Serve {
        /// Also print every event-log line to standard output.
        #[arg(long)]
        echo: bool,
        /// Take the listening sockets over from the running process (used by `reload`).
        #[arg(long, hide = true)]
        upgrade: bool,
        /// Started detached by `start` or `reload`: the config's `echo` does not apply.
        #[arg(long, hide = true)]
        daemon: bool,
    },
    /// Validate a config: exit 0 if it can run, else print every problem and exit 2.
    Check,
    /// Start the proxy in the background; returns once it listens (or says why it failed).
    Start,
    /// Stop the background proxy (SIGTERM) and wait until it has exited.
    Stop,
    /// Stop, then start.
    Restart,
    /// Zero-downtime reload: a new process (new binary and config) takes the listeners over,
    /// the old one finishes its requests and exits.
    Reload,
    /// Whether the proxy is running (exit 0) or not (exit 3), with its pid and uptime.
    Status,
    /// Run in the foreground with the event log echoed to the terminal.
    Debug,
    /// Edit the config in $EDITOR, then check it.
    Config,
    /// Print the config path and the effective config (secrets redacted).
    Showconfig,
    /// Install a systemd unit for this binary and config.
    Boot {
        /// Install under this root instead of / (no systemctl calls then).
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Remove the systemd unit.
    Unboot {
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
}

/// Run the command line (the `poolgate` binary).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = config::resolve_path(cli.config);
    match cli.command {
        Command::Serve {
            echo,
            upgrade,
            daemon,
        } => serve(&path, Echo::of(echo, daemon), upgrade),
        Command::Debug => serve(&path, Echo::Always, false),
        Command::Reload => with_settings(&path, |s| report(control::reload(s, &path))),
        Command::Check => check(&path),
        Command::Config => edit(&path),
        Command::Showconfig => showconfig(&path),
        // pixl-server's `debug: true`: run in the foreground instead of detaching.
        Command::Start => with_settings(&path, |s| match s.process.foreground {
            true => serve(&path, Echo::Config, false),
            false => report(control::start(s, &path)),
        }),
        Command::Stop => with_settings(&path, |s| report(control::stop(s))),
        Command::Restart => with_settings(&path, |s| {
            match control::stop(s) {
                Ok(msg) => println!("{msg}"),
                Err(e) => return report(Err(e)),
            }
            report(control::start(s, &path))
        }),
        Command::Status => with_settings(&path, |s| {
            let (running, msg) = control::status(s);
            println!("{msg}");
            match running {
                true => ExitCode::SUCCESS,
                false => ExitCode::from(control::EXIT_NOT_RUNNING),
            }
        }),
        Command::Boot { root } => with_settings(&path, |s| {
            let timeout = s.process.shutdown_timeout.as_secs();
            report(boot::boot(&root, &path, timeout, &s.process.pid_file))
        }),
        Command::Unboot { root } => report(boot::unboot(&root)),
    }
}

/// Load the settings and run `f` with them, or print the problems and exit 2.
fn with_settings(path: &Path, f: impl FnOnce(&Settings) -> ExitCode) -> ExitCode {
    let loaded = config::load(path);
    print_problems(path, &loaded.problems);
    match loaded.settings {
        Some(s) => f(&s),
        None => {
            eprintln!("{}: the config has errors", path.display());
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

fn report(result: Result<String, control::ControlError>) -> ExitCode {
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("poolgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `$EDITOR` (else `vi`) on the config, then `check`.
fn edit(path: &Path) -> ExitCode {
    let editor = std::env::var("EDITOR").unwrap_or_else(|_| "vi".into());
    let status = std::process::Command::new("sh")
        .args(["-c", "$0 \"$1\"", &editor])
        .arg(path)
        .status();
    if let Err(e) = status {
        eprintln!("poolgate: cannot run {editor}: {e}");
        return ExitCode::FAILURE;
    }
    check(path)
}

fn showconfig(path: &Path) -> ExitCode {
    let loaded = config::load(path);
    print_problems(path, &loaded.problems);
    let Some(file) = loaded.file else {
        return ExitCode::from(EXIT_BAD_CONFIG);
    };
    println!("# {}", path.display());
    for o in &loaded.overrides {
        println!("# {} from {}", o.path, o.source());
    }
    // The file as written, to tell its values from the defaults.
    let written: serde_yaml::Value = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_yaml::from_str(&t).ok())
        .unwrap_or(serde_yaml::Value::Null);
    match serde_yaml::to_string(&file.redacted()) {
        Ok(text) => {
            print!(
                "{}",
                showconfig::annotate(&text, &written, &loaded.overrides)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("poolgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_problems(path: &Path, problems: &[config::Problem]) {
    let file = path.display().to_string();
    for problem in problems {
        eprintln!(
            "{}",
            Located {
                file: &file,
                problem
            }
        );
    }
}

fn check(path: &Path) -> ExitCode {
    let loaded = config::load(path);
    print_problems(path, &loaded.problems);
    let failed =
        loaded.settings.is_none() || loaded.problems.iter().any(|p| p.severity.fails_check());
    if failed {
        eprintln!("{}: config check failed", path.display());
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    println!("{}: config OK", path.display());
    if let Some(change) = loaded
        .settings
        .as_ref()
        .and_then(control::listeners_changed)
    {
        println!("note: the running poolgate listens elsewhere ({change}): apply with `restart`, not `reload`");
    }
    ExitCode::SUCCESS
}

/// Whether the event log is echoed to standard output.
#[derive(Clone, Copy)]
enum Echo {
    /// `--echo`, `debug`.
    Always,
    /// In the foreground: as the config's `echo` says.
    Config,
    /// Detached by `start`: never (pixl-server echoes only in debug mode).
    Never,
}

impl Echo {
    fn of(flag: bool, daemon: bool) -> Echo {
        match (flag, daemon) {
            (true, _) => Echo::Always,
            (false, false) => Echo::Config,
            (false, true) => Echo::Never,
        }
    }
}

fn serve(path: &Path, echo: Echo, upgrade: bool) -> ExitCode {
    let loaded = config::load(path);
    print_problems(path, &loaded.problems);
    let Some(settings) = loaded.settings else {
        eprintln!("{}: not starting: the config has errors", path.display());
        return ExitCode::from(EXIT_BAD_CONFIG);
    };
    let echo = match echo {
        Echo::Always => true,
        Echo::Config => settings.logging.echo,
        Echo::Never => false,
    };
    match server::run(settings, path, echo, upgrade) {
        Ok(never) => match never {},
        Err(e) if e.is_config() => {
            eprintln!("{}: error: {e}", path.display());
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Err(e) => {
            eprintln!("poolgate: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}
