//! The streaming path's back-end deadlines (PixlProxy `http_timeout_ms`, "time to first
//! byte", and poolgate's `http_body_timeout_ms`, the gaps in the response body), kept apart.
//!
//! Pingora's proxy has one read timeout per back-end read, for the response header and for
//! every body read alike, and its upstream session cannot be reached from the hooks once the
//! request is under way; its timeout also costs a timer (three allocations and a locked
//! table) for every read. So the streaming path to HTTP/1 back ends gives Pingora no read
//! timeout and keeps both deadlines here. Arming a watch puts the connection's descriptor and
//! deadline in a sharded table: until the response header arrives the deadline is the first
//! byte's (pushed on by every request body chunk, so an upload at the client's pace is not
//! cut; the time counts from the last one); from the header on it is the body's gap, pushed
//! on by every body chunk read. One sweeper thread for the whole process looks at the table
//! every `TICK` while any watch is armed (and sleeps otherwise): a watch past its deadline
//! gets its socket shut down, which ends Pingora's wait at once; the proxy then reports the
//! request as a back-end timeout (504 before the header, a cut body after it).
//!
//! A bodiless request with a one-read answer pays three uncontended shard locks (arm, the
//! header, the end), no task, no timer and no system call. The sweeper never touches a
//! socket that is no longer this attempt's: stopping a watch (the end of the body, the end of
//! the attempt, dropping it) takes the same shard lock the sweeper takes, and before it shuts
//! a socket down the sweeper checks that the descriptor is still connected to the back end
//! the watch was armed for.

use crate::pool::PeerSettings;
use nix::sys::socket::{getpeername, shutdown, Shutdown, SockaddrStorage};
use once_cell::sync::Lazy;
use std::net::SocketAddr;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How often the sweeper looks while watches are armed (the deadline's precision).
const TICK: Duration = Duration::from_millis(20);
const SHARDS: usize = 16;

/// One armed watch in the table.
struct Slot {
    id: u64,
    fd: RawFd,
    /// The back end the connection goes to.
    peer: Option<SocketAddr>,
    deadline: Instant,
    timed_out: bool,
}

struct Table {
    shards: [Mutex<Vec<Slot>>; SHARDS],
    next_id: AtomicU64,
    armed: AtomicUsize,
    sweeper: OnceLock<Option<std::thread::Thread>>,
}

static TABLE: Lazy<Table> = Lazy::new(|| Table {
    shards: std::array::from_fn(|_| Mutex::new(Vec::new())),
    next_id: AtomicU64::new(0),
    armed: AtomicUsize::new(0),
    sweeper: OnceLock::new(),
});

impl Table {
    fn shard(&self, id: u64) -> MutexGuard<'_, Vec<Slot>> {
        self.shards[(id as usize) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The sweeper thread, started on first use; `None` if it could not be started (then
    /// deadlines are not kept, and Pingora's body timeout still bounds the wait).
    fn sweeper(&'static self) -> Option<&'static std::thread::Thread> {
        self.sweeper
            .get_or_init(|| {
                let started = std::thread::Builder::new()
                    .name("first-byte".into())
                    .spawn(move || self.sweep());
                match started {
                    Ok(handle) => Some(handle.thread().clone()),
                    Err(e) => {
                        log::error!("cannot start the first-byte deadline thread: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }

    fn sweep(&self) {
        loop {
            if self.armed.load(Ordering::Acquire) == 0 {
                // Woken by the next arm (a spurious wake-up just looks again).
                std::thread::park();
                continue;
            }
            std::thread::sleep(TICK);
            let now = Instant::now();
            for shard in &self.shards {
                let mut slots = shard.lock().unwrap_or_else(PoisonError::into_inner);
                for slot in slots
                    .iter_mut()
                    .filter(|s| !s.timed_out && s.deadline <= now)
                {
                    slot.timed_out = true;
                    if still_connected_to(slot.fd, slot.peer) {
                        // Ends Pingora's pending read of the header (it sees the connection
                        // closed).
                        let _ = shutdown(slot.fd, Shutdown::Both);
                    }
                }
            }
        }
    }
}

/// Whether `fd` is still a socket connected to `peer`.
fn still_connected_to(fd: RawFd, peer: Option<SocketAddr>) -> bool {
    let (Some(peer), Ok(now)) = (peer, getpeername::<SockaddrStorage>(fd)) else {
        return false;
    };
    let now = match (now.as_sockaddr_in(), now.as_sockaddr_in6()) {
        (Some(v4), _) => SocketAddr::from((v4.ip(), v4.port())),
        (_, Some(v6)) => SocketAddr::from((v6.ip(), v6.port())),
        _ => return false,
    };
    now == peer
}

/// Where a watch is.
const WAITING: u8 = 0;
const OVER: u8 = 1;
const TIMED_OUT: u8 = 2;

/// The limits one watch keeps, from the pool's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WatchLimits {
    /// The wait for the response header (after the request's last body chunk).
    pub(crate) header: Duration,
    /// The setting `header` comes from, for the error message.
    pub(crate) header_key: &'static str,
    /// The longest gap in the response body once the header arrived; `None`: no limit.
    pub(crate) body_gap: Option<Duration>,
}

impl WatchLimits {
    /// What the streaming path watches for a pool, if anything (see
    /// `PeerSettings::watches_responses`).
    pub(crate) fn for_streaming(settings: &PeerSettings) -> Option<WatchLimits> {
        if !settings.watches_responses() {
            return None;
        }
        Some(WatchLimits {
            header: settings.header_read_timeout()?,
            header_key: settings.header_limit_key(),
            body_gap: settings.body_timeout,
        })
    }
}

/// The back-end deadlines of one streaming attempt.
#[derive(Debug)]
pub(crate) struct ResponseWatch {
    id: u64,
    limits: WatchLimits,
    /// The header arrived: the deadline is the body gap's.
    in_body: bool,
    /// Set when the watch is stopped: whether it had timed out by then.
    state: AtomicU8,
}

impl ResponseWatch {
    /// Start watching the connection on `fd` to the back end `peer`: the response header must
    /// arrive within `limits.header` of now (or of the last request body chunk).
    pub(crate) fn arm(fd: RawFd, peer: Option<SocketAddr>, limits: WatchLimits) -> ResponseWatch {
        ResponseWatch::arm_from(fd, peer, limits, Instant::now())
    }

    /// `arm`, counting from `now`, a clock reading the caller already has.
    pub(crate) fn arm_from(
        fd: RawFd,
        peer: Option<SocketAddr>,
        limits: WatchLimits,
        now: Instant,
    ) -> ResponseWatch {
        let table = &*TABLE;
        let id = table.next_id.fetch_add(1, Ordering::Relaxed);
        table.shard(id).push(Slot {
            id,
            fd,
            peer,
            deadline: now + limits.header,
            timed_out: false,
        });
        if table.armed.fetch_add(1, Ordering::AcqRel) == 0 {
            if let Some(sweeper) = table.sweeper() {
                sweeper.unpark();
            }
        }
        ResponseWatch {
            id,
            limits,
            in_body: false,
            state: AtomicU8::new(WAITING),
        }
    }

    /// The limit that applies now.
    fn current_limit(&self) -> Duration {
        match (self.in_body, self.limits.body_gap) {
            (true, Some(gap)) => gap,
            _ => self.limits.header,
        }
    }

    /// A request body chunk went to the back end, or a response body chunk came from it: the
    /// deadline counts from now.
    pub(crate) fn push_on(&self) {
        self.move_deadline(Instant::now() + self.current_limit());
    }

    fn move_deadline(&self, deadline: Instant) {
        if self.state.load(Ordering::Acquire) != WAITING {
            return;
        }
        if let Some(slot) = TABLE.shard(self.id).iter_mut().find(|s| s.id == self.id) {
            // A passed deadline stays passed: its socket may already be cut.
            if !slot.timed_out {
                slot.deadline = deadline;
            }
        }
    }

    /// The response header arrived at `now`: from here on the body's gaps are watched, or
    /// nothing when they have no limit.
    pub(crate) fn header_arrived(&mut self, now: Instant) {
        match self.limits.body_gap {
            Some(gap) => {
                self.in_body = true;
                self.move_deadline(now + gap);
            }
            None => self.stop(),
        }
    }

    /// The attempt is over (the body ended, or it failed): stop watching.
    pub(crate) fn stop(&self) {
        if self.state.load(Ordering::Acquire) != WAITING {
            return;
        }
        let table = &*TABLE;
        let mut slots = table.shard(self.id);
        let Some(i) = slots.iter().position(|s| s.id == self.id) else {
            return;
        };
        let slot = slots.swap_remove(i);
        drop(slots);
        table.armed.fetch_sub(1, Ordering::AcqRel);
        let state = if slot.timed_out { TIMED_OUT } else { OVER };
        self.state.store(state, Ordering::Release);
    }

    /// Whether a deadline passed and the connection was cut (this also stops the watch).
    pub(crate) fn timed_out(&self) -> bool {
        self.stop();
        self.state.load(Ordering::Acquire) == TIMED_OUT
    }

    /// What passed, for the error message: the setting and its limit; `true` when it was a
    /// gap in the body.
    pub(crate) fn what_passed(&self) -> (&'static str, Duration, bool) {
        match (self.in_body, self.limits.body_gap) {
            (true, Some(gap)) => ("http_body_timeout_ms", gap, true),
            _ => (self.limits.header_key, self.limits.header, false),
        }
    }
}

impl Drop for ResponseWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::io::AsRawFd;
    use tokio::io::AsyncReadExt;

    fn header_only(ms: u64) -> WatchLimits {
        WatchLimits {
            header: Duration::from_millis(ms),
            header_key: "http_timeout_ms",
            body_gap: None,
        }
    }

    async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let client = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (server, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        (client, server, addr)
    }

    #[tokio::test]
    async fn a_silent_back_end_is_cut_at_the_deadline() {
        let (mut client, _server, addr) = pair().await;
        let watch = ResponseWatch::arm(client.as_raw_fd(), Some(addr), header_only(100));
        let started = Instant::now();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(watch.timed_out());
    }

    #[tokio::test]
    async fn a_stopped_watch_leaves_the_socket_alone() {
        let (client, _server, addr) = pair().await;
        let watch = ResponseWatch::arm(client.as_raw_fd(), Some(addr), header_only(50));
        watch.stop();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!watch.timed_out());
        let mut probe = [0u8; 1];
        assert!(
            client.try_read(&mut probe).is_err(),
            "still open, nothing to read"
        );
    }

    #[tokio::test]
    async fn a_socket_connected_elsewhere_is_left_alone() {
        let (client, _server, addr) = pair().await;
        let elsewhere = SocketAddr::from(([127, 0, 0, 1], addr.port().wrapping_add(1)));
        let watch = ResponseWatch::arm(client.as_raw_fd(), Some(elsewhere), header_only(20));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(watch.timed_out(), "the deadline passed");
        let mut probe = [0u8; 1];
        assert!(
            client.try_read(&mut probe).is_err(),
            "but the socket is open"
        );
    }

    #[tokio::test]
    async fn body_chunks_push_the_deadline_on() {
        let (client, _server, addr) = pair().await;
        let watch = ResponseWatch::arm(client.as_raw_fd(), Some(addr), header_only(600));
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            watch.push_on();
        }
        assert!(!watch.timed_out(), "1 s in, but just after the last chunk");
    }

    #[tokio::test]
    async fn after_the_header_the_body_gap_is_watched() {
        let (mut client, _server, addr) = pair().await;
        let limits = WatchLimits {
            header: Duration::from_secs(60),
            header_key: "http_timeout_ms",
            body_gap: Some(Duration::from_millis(100)),
        };
        let mut watch = ResponseWatch::arm(client.as_raw_fd(), Some(addr), limits);
        watch.header_arrived(Instant::now());
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        assert!(watch.timed_out());
        assert_eq!(
            watch.what_passed(),
            ("http_body_timeout_ms", Duration::from_millis(100), true)
        );
    }

    #[tokio::test]
    async fn a_header_with_no_body_limit_ends_the_watch() {
        let (client, _server, addr) = pair().await;
        let mut watch = ResponseWatch::arm(client.as_raw_fd(), Some(addr), header_only(50));
        watch.header_arrived(Instant::now());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!watch.timed_out());
        assert_eq!(watch.what_passed().0, "http_timeout_ms");
    }
}
