//! [`Epochs`]: the revocation counts, per shard of session ids, that keep a raced lookup's
//! "active" out of the cache and void the memos of a shard at once.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::session::SessionId;

/// How many revocation counters the session ids are spread over. A lookup is kept out of the
/// cache by a revocation in its own shard only, so a fleet revoking other sessions does not
/// turn most misses into two store reads.
pub(super) const SHARDS: usize = 64;

/// Counts the revocations this cache has been told of, per shard of session ids.
///
/// A store read takes its shard's count when it starts; if the count moved by the time its
/// answer is written, a revocation may have overtaken the read, and its "active" is not
/// cached. A revocation bumps the count *before* it writes the cache (or, for a resync, clears
/// it), so a lookup that does not see the bump writes first and is overwritten or cleared.
pub(super) struct Epochs([AtomicU64; SHARDS]);

impl Epochs {
    pub(super) fn new() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }

    fn shard(&self, sid: SessionId) -> &AtomicU64 {
        // The last byte: the Redis store puts the user's hash tag into the first four.
        &self.0[usize::from(sid.as_bytes()[15]) % SHARDS]
    }

    pub(super) fn current(&self, sid: SessionId) -> u64 {
        self.shard(sid).load(Ordering::SeqCst)
    }

    pub(super) fn bump(&self, sid: SessionId) {
        self.shard(sid).fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn bump_all(&self) {
        for shard in &self.0 {
            shard.fetch_add(1, Ordering::SeqCst);
        }
    }
}
