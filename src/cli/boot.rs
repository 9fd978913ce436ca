//! `boot` / `unboot`: install or remove a systemd unit that runs this binary with this config
//! (PixlProxy's "Server Reboot"). `--root DIR` writes under another root, so the files can be
//! checked without touching the machine; with the real root, systemd is asked to reload and to
//! enable (or disable) the unit.

use super::control::ControlError;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT_NAME: &str = "poolgate.service";

fn unit_path(root: &Path) -> PathBuf {
    root.join("etc/systemd/system").join(UNIT_NAME)
}

/// The unit for `exe` serving `config`, stopping within `shutdown_timeout_sec`. It is a
/// forking service followed through its pid file, so a `reload` (a new process taking over)
/// keeps systemd tracking the live process.
fn unit(exe: &Path, config: &Path, shutdown_timeout_sec: u64, pid_file: &Path) -> String {
    let (exe, config, pid_file) = (exe.display(), config.display(), pid_file.display());
    format!(
        "# Installed by `poolgate boot`; remove with `poolgate unboot`.
[Unit]
Description=poolgate HTTP reverse proxy
After=network-online.target
Wants=network-online.target

[Service]
Type=forking
PIDFile={pid_file}
ExecStartPre={exe} check --config {config}
ExecStart={exe} start --config {config}
# Zero downtime: a new process takes the listeners over, the old one drains and exits.
ExecReload={exe} reload --config {config}
ExecStop={exe} stop --config {config}
# SIGTERM: in-flight requests finish (at most shutdown_timeout_sec), then exit 0.
KillSignal=SIGTERM
TimeoutStopSec={stop}
Restart=on-failure
# One descriptor per client connection and one per back-end connection: poolgate raises its
# soft limit to this hard limit at start and logs the figure.
LimitNOFILE=1048576
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
",
        stop = shutdown_timeout_sec + 10
    )
}

fn systemctl(args: &[&str]) -> String {
    match Command::new("systemctl").args(args).status() {
        Ok(s) if s.success() => String::new(),
        Ok(s) => format!(" (systemctl {} exited with {s})", args.join(" ")),
        Err(e) => format!(" (systemctl {}: {e})", args.join(" ")),
    }
}

pub(super) fn boot(
    root: &Path,
    config: &Path,
    shutdown_timeout_sec: u64,
    pid_file: &Path,
) -> Result<String, ControlError> {
    let exe = std::env::current_exe().map_err(ControlError::OwnBinary)?;
    let config = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    let path = unit_path(root);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ControlError::File {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(&path, unit(&exe, &config, shutdown_timeout_sec, pid_file)).map_err(
        |source| ControlError::File {
            path: path.clone(),
            source,
        },
    )?;
    let mut note = String::new();
    if root == Path::new("/") {
        note = systemctl(&["daemon-reload"]) + &systemctl(&["enable", UNIT_NAME]);
    }
    Ok(format!("installed {}{note}", path.display()))
}

pub(super) fn unboot(root: &Path) -> Result<String, ControlError> {
    let path = unit_path(root);
    let mut note = String::new();
    if root == Path::new("/") {
        note = systemctl(&["disable", UNIT_NAME]);
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(format!("removed {}{note}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(format!("{} was not installed", path.display()))
        }
        Err(source) => Err(ControlError::File { path, source }),
    }
}
