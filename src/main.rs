//! The `poolgate` command line: `serve` runs the proxy, `check` validates a config.

use clap::{Parser, Subcommand};
use poolgate::config::{self, Located, Severity};
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
        Command::Serve { config } => serve(&config::resolve_path(config)),
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

fn serve(path: &Path) -> ExitCode {
    let loaded = config::load(path);
    print_problems(path, &loaded.problems);
    let Some(runtime) = loaded.runtime else {
        eprintln!("{}: not starting: the config has errors", path.display());
        return ExitCode::from(EXIT_BAD_CONFIG);
    };
    init_logging(runtime.debug_level);
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

/// Log lines go to stderr; `debug_level` 5 and up adds poolgate's debug lines. `RUST_LOG`
/// overrides both.
fn init_logging(debug_level: u8) {
    let ours = if debug_level >= 5 { "debug" } else { "info" };
    let default = format!("warn,poolgate={ours}");
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .init();
}
