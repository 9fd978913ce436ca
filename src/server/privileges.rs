//! `PixlProxy.nice` (process priority, set at start) and pixl-server's `uid` / `gid` (the user
//! and group to run as once the listeners are bound, so a proxy on port 80 or 443 can start as
//! root and serve as an unprivileged user).

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::ffi::CString;
use std::time::Duration;

/// A user and group, resolved at start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Identity {
    pub uid: Option<libc::uid_t>,
    pub gid: Option<libc::gid_t>,
}

/// Resolve `uid` / `gid` (names or numbers); a name that does not exist is an error.
pub fn identity(uid: &str, gid: &str) -> Result<Identity, String> {
    let user = match uid {
        "" => None,
        n => Some(
            n.parse()
                .or_else(|_| user_id(n))
                .map_err(|e| format!("uid: {e}"))?,
        ),
    };
    let group = match gid {
        "" => None,
        n => Some(
            n.parse()
                .or_else(|_| group_id(n))
                .map_err(|e| format!("gid: {e}"))?,
        ),
    };
    Ok(Identity {
        uid: user,
        gid: group,
    })
}

fn user_id(name: &str) -> Result<libc::uid_t, String> {
    let c = CString::new(name).map_err(|_| format!("bad user name `{name}`"))?;
    // SAFETY: `getpwnam` reads the passwd database; the result is used before any other call.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(format!("no user `{name}`"));
    }
    // SAFETY: checked non-null just above.
    Ok(unsafe { (*pw).pw_uid })
}

fn group_id(name: &str) -> Result<libc::gid_t, String> {
    let c = CString::new(name).map_err(|_| format!("bad group name `{name}`"))?;
    // SAFETY: as in `user_id`, for the group database.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(format!("no group `{name}`"));
    }
    // SAFETY: checked non-null just above.
    Ok(unsafe { (*gr).gr_gid })
}

/// Set the process priority (`nice`).
pub fn set_nice(nice: i32) -> Result<(), String> {
    if nice == 0 {
        return Ok(());
    }
    // SAFETY: changes this process's scheduling priority only.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    match rc {
        0 => Ok(()),
        _ => Err(format!("nice {nice}: {}", std::io::Error::last_os_error())),
    }
}

/// Drops to `identity` once the proxy accepts connections on `addr`.
pub struct PrivilegeDrop {
    pub identity: Identity,
    pub addr: String,
}

#[async_trait]
impl BackgroundService for PrivilegeDrop {
    async fn start(&self, _shutdown: ShutdownWatch) {
        crate::front_end::wait_until_accepting(&self.addr, Duration::from_secs(10)).await;
        // glibc applies setgid/setuid to every thread of the process. Group first: without
        // root it could not be changed afterwards.
        // SAFETY: plain system calls on this process's credentials.
        let failed = unsafe {
            (self.identity.gid.is_some_and(|g| libc::setgid(g) != 0))
                || (self.identity.uid.is_some_and(|u| libc::setuid(u) != 0))
        };
        if failed {
            log::error!(
                "cannot switch to uid/gid {:?}: {}; exiting",
                self.identity,
                std::io::Error::last_os_error()
            );
            std::process::exit(1);
        }
        log::info!(
            "running as uid {:?}, gid {:?}",
            self.identity.uid,
            self.identity.gid
        );
    }
}
