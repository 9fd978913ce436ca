//! The `poolgate` command line: `serve` runs the proxy, `check` validates a config.

use clap::{Parser, Subcommand};
use poolgate::config::{self, Located, Severity};
use poolgate::event_log::{self, EventLogSettings};
use poolgate::server::{self, StartError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code for a config that cannot run.
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "poolgate",
    version,
    about = "PixlProxy-compatible HTTP reverse proxy on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy in the foreground until SIGTERM (graceful) or SIGINT (fast).
    Serve {
        /// Config file (YAML or JSON). Default: $POOLGATE_CONFIG, else conf/config.yaml.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Also print every event-log line to standard output.
        #[arg(long)]
        echo: bool,
    },
    /// Validate a config: exit 0 if it can run, else print every problem and exit 2.
    Check {
        /// Config file (YAML or JSON). Default: $POOLGATE_CONFIG, else conf/config.yaml.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, echo } => serve(&config::resolve_path(config), echo),
        Command::Check { config } => check(&config::resolve_path(config)),
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
        loaded.runtime.is_none() || loaded.problems.iter().any(|p| p.severity == Severity::Typo);
    if failed {
        eprintln!("{}: config check failed", path.display());
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    println!("{}: config OK", path.display());
    ExitCode::SUCCESS
}

fn serve(path: &Path, echo: bool) -> ExitCode {
    let loaded = config::load(path);
    print_problems(path, &loaded.problems);
    let Some(runtime) = loaded.runtime else {
        eprintln!("{}: not starting: the config has errors", path.display());
        return ExitCode::from(EXIT_BAD_CONFIG);
    };
    let log = EventLogSettings {
        path: runtime.log_path.clone(),
        debug_level: runtime.debug_level,
        echo,
    };
    if let Err(e) = event_log::start(log) {
        eprintln!(
            "poolgate: cannot start: event log {}: {e}",
            runtime.log_path.display()
        );
        return ExitCode::FAILURE;
    }
    event_log::init_logging(runtime.debug_level);
    poolgate::startup::announce(&runtime, path);
    if runtime.routes.pools().is_empty() {
        log::warn!("no pools configured: every request will be answered 404");
    }
    match server::build(runtime) {
        Ok(server) => {
            log::info!(
                "poolgate {} serving with config {}",
                env!("CARGO_PKG_VERSION"),
                path.display()
            );
            server.run_forever()
        }
        Err(StartError::Config(msg)) => {
            eprintln!("{}: error: {msg}", path.display());
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Err(StartError::Environment(msg)) => {
            eprintln!("poolgate: cannot start: {msg}");
            ExitCode::FAILURE
        }
    }
}
