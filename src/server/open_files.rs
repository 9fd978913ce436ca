//! The open-file limit: every client connection is a file descriptor, and a proxied request
//! usually holds a second one to its back end. Linux starts most processes with a soft limit
//! of 1 024, far below what an edge proxy holds (`WebServer.http_max_connections` may allow
//! tens of thousands), so poolgate raises its own soft limit to the hard limit at start and
//! logs both figures. Beyond the hard limit only the operator can go: systemd's
//! `LimitNOFILE` (set in the shipped unit), `ulimit -Hn` in the shell that starts poolgate, or
//! the container runtime's `--ulimit nofile`.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors kept aside from client and back-end connections: listeners, log files, the
/// queue journal, the epoll and event descriptors of the runtimes.
const RESERVED: u64 = 64;

/// The open-file limit before and after poolgate raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OpenFileLimit {
    /// The soft limit poolgate was started with.
    pub(super) was: u64,
    /// The soft limit now (the hard limit when the raise worked).
    pub(super) now: u64,
    /// The hard limit: the ceiling only the operator can lift.
    pub(super) hard: u64,
}

/// Raise the soft open-file limit to the hard limit. `None` when the limit cannot be read.
pub(super) fn raise_open_file_limit() -> Option<OpenFileLimit> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= hard {
        return Some(OpenFileLimit {
            was: soft,
            now: soft,
            hard,
        });
    }
    let now = match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => hard,
        Err(e) => {
            log::warn!(
                "open files: cannot raise the soft limit {soft} to the hard limit {hard}: {e}"
            );
            soft
        }
    };
    Some(OpenFileLimit {
        was: soft,
        now,
        hard,
    })
}

/// Log the limit, and warn when it cannot hold `max_connections` clients with a back-end
/// connection each (`0` = no cap: then only the figure is logged).
pub(super) fn report(limit: Option<OpenFileLimit>, max_connections: usize) {
    let Some(limit) = limit else {
        log::warn!("open files: the limit cannot be read");
        return;
    };
    if limit.now > limit.was {
        log::info!(
            "open files: soft limit raised from {} to {} (the hard limit)",
            limit.was,
            limit.now
        );
    } else {
        log::info!(
            "open files: limit {} (hard limit {})",
            limit.now,
            limit.hard
        );
    }
    if let Some(needed) = needed_for(max_connections) {
        if needed > limit.now {
            log::warn!(
                "open files: http_max_connections {max_connections} can need {needed} descriptors \
                 (one per client and one per back-end connection) but the limit is {}: raise \
                 LimitNOFILE (systemd), ulimit -n or the container's nofile limit",
                limit.now
            );
        }
    }
}

/// Descriptors `max_connections` clients can need: one each, one per back-end connection,
/// and the reserve. `None` for no cap.
fn needed_for(max_connections: usize) -> Option<u64> {
    (max_connections > 0).then(|| (max_connections as u64).saturating_mul(2) + RESERVED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_cap_needs_a_client_and_a_back_end_descriptor_each() {
        assert_eq!(needed_for(0), None);
        assert_eq!(needed_for(10_000), Some(20_064));
    }

    #[test]
    fn raising_the_limit_ends_at_the_hard_limit() {
        let Some(limit) = raise_open_file_limit() else {
            return;
        };
        assert!(limit.now >= limit.was);
        assert!(limit.now <= limit.hard);
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
        assert_eq!(soft, limit.now);
    }
}
