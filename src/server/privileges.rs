//! `PixlProxy.nice` (process priority, set at start) and pixl-server's `uid` / `gid` (the user
//! and group to run as once the listeners are bound, so a proxy on port 80 or 443 can start as
//! root and serve as an unprivileged user).

use async_trait::async_trait;
use nix::unistd::{Gid, Group, Uid, User};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::time::Duration;

/// A user and group, resolved at start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Identity {
    pub(crate) uid: Option<Uid>,
    pub(crate) gid: Option<Gid>,
}

/// A `uid` or `gid` that names nobody.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IdentityError {
    #[error("no user `{0}`")]
    User(String),
    #[error("no group `{0}`")]
    Group(String),
}

/// Resolve `uid` / `gid` (names or numbers); a name that does not exist is an error.
pub(crate) fn identity(uid: &str, gid: &str) -> Result<Identity, IdentityError> {
    let uid = match uid {
        "" => None,
        n => Some(match n.parse() {
            Ok(id) => Uid::from_raw(id),
            Err(_) => User::from_name(n)
                .ok()
                .flatten()
                .map(|u| u.uid)
                .ok_or_else(|| IdentityError::User(n.into()))?,
        }),
    };
    let gid = match gid {
        "" => None,
        n => Some(match n.parse() {
            Ok(id) => Gid::from_raw(id),
            Err(_) => Group::from_name(n)
                .ok()
                .flatten()
                .map(|g| g.gid)
                .ok_or_else(|| IdentityError::Group(n.into()))?,
        }),
    };
    Ok(Identity { uid, gid })
}

/// The priority could not be set.
#[derive(Debug, thiserror::Error)]
#[error("nice {nice}: {source}")]
pub(crate) struct NiceError {
    nice: i32,
    source: std::io::Error,
}

/// Set the process priority (`nice`).
pub(super) fn set_nice(nice: i32) -> Result<(), NiceError> {
    if nice == 0 {
        return Ok(());
    }
    // nix has no wrapper for setpriority.
    // SAFETY: changes this process's scheduling priority only; no memory is passed.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    match rc {
        0 => Ok(()),
        _ => Err(NiceError {
            nice,
            source: std::io::Error::last_os_error(),
        }),
    }
}

/// Drops to `identity` once the proxy accepts connections on `addr`.
pub(super) struct PrivilegeDrop {
    pub(super) identity: Identity,
    pub(super) addr: String,
}

#[async_trait]
impl BackgroundService for PrivilegeDrop {
    async fn start(&self, _shutdown: ShutdownWatch) {
        super::listeners::wait_until_accepting(&self.addr, Duration::from_secs(10)).await;
        // glibc applies setgid/setuid to every thread of the process. Group first: without
        // root it could not be changed afterwards.
        let switched = self
            .identity
            .gid
            .map_or(Ok(()), nix::unistd::setgid)
            .and_then(|()| self.identity.uid.map_or(Ok(()), nix::unistd::setuid));
        if let Err(e) = switched {
            log::error!("cannot switch to uid/gid {:?}: {e}; exiting", self.identity);
            std::process::exit(1);
        }
        log::info!(
            "running as uid {:?}, gid {:?}",
            self.identity.uid,
            self.identity.gid
        );
    }
}
