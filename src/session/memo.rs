//! [`StatusMemo`]: one word of revocation status shared by every clone of a session.
//!
//! The third of the request path's cache tiers; the revocation cache owns what the word means,
//! and its module doc (`manager::cache`) states the property the tiers keep together.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// A word a revocation check may leave on a verified session, read back on the next request
/// that carries the same token (the cache of verified tokens hands out clones of one session),
/// so that the check can answer without a lookup of its own.
///
/// The word means whatever its owner packs into it; this type only guarantees that one owner
/// reads and writes it. The first owner to write claims the memo for good; the writes of any
/// other owner are dropped and it reads nothing, so two checks that share a codec never read
/// each other's words. A fresh memo reads as 0 for the owner that claims it.
#[derive(Default)]
pub(crate) struct StatusMemo {
    owner: AtomicU64,
    word: AtomicU64,
}

impl StatusMemo {
    /// The word `owner` left here; `None` when the memo belongs to another owner or to none.
    #[inline]
    pub(crate) fn read(&self, owner: NonZeroU64) -> Option<u64> {
        // Relaxed is enough: the word is only ever written by its owner, and what it says
        // must be checked against the owner's own state anyway.
        (self.owner.load(Ordering::Relaxed) == owner.get())
            .then(|| self.word.load(Ordering::Relaxed))
    }

    /// Leaves `word` for `owner`, claiming the memo if nobody has; dropped when it belongs to
    /// another owner.
    #[inline]
    pub(crate) fn write(&self, owner: NonZeroU64, word: u64) {
        let current = self.owner.load(Ordering::Relaxed);
        let mine = current == owner.get()
            || (current == 0
                && self
                    .owner
                    .compare_exchange(0, owner.get(), Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok());
        if mine {
            self.word.store(word, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).unwrap()
    }

    #[test]
    fn the_first_writer_owns_the_memo() {
        let memo = StatusMemo::default();
        assert_eq!(memo.read(owner(1)), None);
        memo.write(owner(1), 7);
        assert_eq!(memo.read(owner(1)), Some(7));
        memo.write(owner(2), 9);
        assert_eq!(memo.read(owner(2)), None, "another owner reads nothing");
        assert_eq!(
            memo.read(owner(1)),
            Some(7),
            "another owner's write is dropped"
        );
        memo.write(owner(1), 8);
        assert_eq!(memo.read(owner(1)), Some(8));
    }
}
