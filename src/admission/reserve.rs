//! What an instance of a cluster may hold of a pool's shared limits ahead of its requests
//! (cluster mode, `cluster_limits`, pools whose `max_concurrent_requests` or
//! `max_requests_per_sec` is large beside the number of live instances): a few spare
//! concurrency slots (kept by `cluster::SlotRegistry`) and a few of the current second's rate
//! tokens (`RateTokens`), granted by an admission script together with the requests it
//! decides. A request that finds both takes them without a round trip to Redis.
//!
//! Never over-admits: a token is counted in Redis's second when it is granted and used only
//! before that second ends by Redis's clock (the instance counts the time left from before it
//! asked), and a spare slot is a member of the pool's set like any admitted request's. What
//! it may cost is a little under-admission: the tokens and spares an instance holds unused
//! are not available to the others. So they are granted only while the pool is at most half
//! full, an instance holds at most an eighth of the limit divided by the live instances, and
//! spares go back when unused (see `cluster::SlotRegistry`). Small limits (fewer than
//! `MIN_GRANT` per instance) get none: every request is decided by Redis.

use super::LimitSettings;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most spare slots an instance holds for one pool.
const MAX_SPARE_SLOTS: usize = 128;
/// The most rate tokens one grant hands an instance.
const MAX_TOKENS: u64 = 256;
/// An instance may hold at most the limit divided by this times the live instances.
const SHARE_DIVISOR: u64 = 8;
/// Grants smaller than this are not worth their under-admission: none at all.
const MIN_GRANT: u64 = 4;
/// Time kept back from the end of Redis's second: tokens are not used in its last moments.
const SECOND_MARGIN: Duration = Duration::from_millis(2);

/// How much of a pool's limits an instance may hold ahead of its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct ReserveSizes {
    /// Spare concurrency slots (0: none).
    pub(super) slots: usize,
    /// Rate tokens per grant (0: none).
    pub(super) tokens: u64,
}

impl ReserveSizes {
    /// The sizes for a pool with `settings` among `live` instances.
    pub(super) fn for_pool(settings: &LimitSettings, live: usize) -> Self {
        let share = |limit: u64, most: u64| {
            let n = limit / (SHARE_DIVISOR * live.max(1) as u64);
            if n < MIN_GRANT {
                0
            } else {
                n.min(most)
            }
        };
        ReserveSizes {
            slots: share(settings.max_concurrent as u64, MAX_SPARE_SLOTS as u64) as usize,
            tokens: share(u64::from(settings.max_per_sec), MAX_TOKENS),
        }
    }

    /// Whether a request may be admitted from the reserve at all: every pool-wide limit the
    /// pool has must have one (a limit without gets every request decided by Redis).
    pub(super) fn serves(&self, settings: &LimitSettings) -> bool {
        (settings.max_concurrent == 0 || self.slots > 0)
            && (settings.max_per_sec == 0 || self.tokens > 0)
            && (settings.max_concurrent > 0 || settings.max_per_sec > 0)
    }
}

/// Rate tokens of one of Redis's seconds, usable until `until`.
#[derive(Debug)]
pub(super) struct RateTokens {
    state: Mutex<Tokens>,
}

#[derive(Debug)]
struct Tokens {
    left: u64,
    until: Instant,
}

impl Default for RateTokens {
    fn default() -> Self {
        RateTokens {
            state: Mutex::new(Tokens {
                left: 0,
                until: Instant::now(),
            }),
        }
    }
}

impl RateTokens {
    fn state(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take one token, if one of the current second is left, and say whether a new grant of
    /// `size` should now be asked for (see `wanted`), read under the same lock.
    pub(super) fn take(&self, size: u64) -> Option<bool> {
        let mut tokens = self.state();
        if tokens.left == 0 || Instant::now() >= tokens.until {
            return None;
        }
        tokens.left -= 1;
        Some(tokens.left * 2 < size)
    }

    /// Put back a token just taken (its request found no spare slot).
    pub(super) fn put_back(&self) {
        let mut tokens = self.state();
        if Instant::now() < tokens.until {
            tokens.left += 1;
        }
    }

    /// Whether a new grant of `size` should be asked for: less than half of one is left.
    pub(super) fn wanted(&self, size: u64) -> bool {
        let tokens = self.state();
        size > 0 && (tokens.left * 2 < size || Instant::now() >= tokens.until)
    }

    /// `granted` tokens of the second that had `ms_left` ms left when Redis read its clock;
    /// `asked` is when the grant was asked for, before Redis read it, so `asked + ms_left`
    /// is never past the end of that second.
    pub(super) fn add(&self, granted: u64, ms_left: u64, asked: Instant) {
        if granted == 0 {
            return;
        }
        let until = (asked + Duration::from_millis(ms_left))
            .checked_sub(SECOND_MARGIN)
            .unwrap_or(asked);
        let mut tokens = self.state();
        if Instant::now() >= tokens.until {
            // The tokens left are of a second that is over.
            tokens.left = granted;
            tokens.until = until;
        } else {
            // A grant asked while the tokens left were still usable: the same second (Redis
            // read its clock before they ran out). Both ends are early estimates of its end.
            tokens.left += granted;
            tokens.until = tokens.until.max(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_concurrent: usize, max_per_sec: u32) -> LimitSettings {
        LimitSettings {
            max_concurrent,
            max_per_sec,
            ..LimitSettings::default()
        }
    }

    #[test]
    fn small_limits_get_no_reserve() {
        let s = limits(4, 30);
        assert_eq!(ReserveSizes::for_pool(&s, 3), ReserveSizes::default());
        assert!(!ReserveSizes::for_pool(&s, 3).serves(&s));
        let s = limits(100, 30);
        let sizes = ReserveSizes::for_pool(&s, 1);
        assert_eq!(sizes.slots, 12);
        assert_eq!(sizes.tokens, 0);
        assert!(
            !sizes.serves(&s),
            "the rate limit has no tokens to hand out"
        );
    }

    #[test]
    fn large_limits_get_a_bounded_reserve_per_live_instance() {
        let s = limits(100_000, 100_000_000);
        let one = ReserveSizes::for_pool(&s, 1);
        assert_eq!((one.slots, one.tokens), (128, 256));
        assert!(one.serves(&s));
        let s = limits(960, 0);
        let three = ReserveSizes::for_pool(&s, 3);
        assert_eq!((three.slots, three.tokens), (40, 0));
        assert!(three.serves(&s));
        assert_eq!(ReserveSizes::for_pool(&s, 10).slots, 12);
        assert!(!ReserveSizes::for_pool(&limits(0, 0), 1).serves(&limits(0, 0)));
    }

    #[test]
    fn tokens_are_used_only_within_their_second() {
        let t = RateTokens::default();
        assert_eq!(t.take(4), None);
        assert!(t.wanted(8));
        let asked = Instant::now();
        t.add(3, 10_000, asked);
        assert!(!t.wanted(4), "3 of 4 left");
        assert_eq!(t.take(4), Some(false), "2 of 4 left");
        assert_eq!(t.take(4), Some(true), "1 of 4 left: ask for more");
        assert!(t.wanted(4));
        t.put_back();
        assert!(t.take(4).is_some() && t.take(4).is_some());
        assert_eq!(t.take(4), None, "all used");
        let late = RateTokens::default();
        late.add(2, 1, Instant::now());
        assert_eq!(
            late.take(4),
            None,
            "a second about to end gives nothing usable"
        );
    }
}
