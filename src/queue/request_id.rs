//! Request ids for queued requests: 32 bytes shown as 64 lowercase hex digits, like
//! PixlProxy's. Unique within a process (a counter is part of every id) and unpredictable
//! across processes (each half-word is keyed by the standard library's random hash keys).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RequestId(pub(crate) [u8; 32]);

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl RequestId {
    pub(crate) fn new() -> RequestId {
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let keys = RandomState::new();
        let mut id = [0u8; 32];
        for (i, word) in id.chunks_mut(8).enumerate() {
            let h = keys.hash_one((i, seq, nanos, std::process::id()));
            word.copy_from_slice(&h.to_le_bytes());
        }
        RequestId(id)
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_lowercase_hex_and_unique() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| RequestId::new().to_string()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 64);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
    }
}
