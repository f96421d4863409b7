//! Server nonces (RFC 9449 §8, §9) without shared state.
//!
//! A nonce names a period of time and is authenticated by a server key:
//! `base64url(period || HMAC-SHA256(key, "tjs-dpop-nonce-v1" || period)[..16])`, with `period`
//! the 8-byte big-endian number of whole periods since the epoch. Every instance with the same
//! key computes the same nonce, so several instances agree without talking to each other. A
//! nonce is accepted during its own period and the next one (clients keep theirs until told a
//! new one), and during the period before it, so that an instance whose clock runs a little
//! behind the one that issued it still takes it. It cannot be made without the key, so a
//! proof carrying it was made after the period began: proofs cannot be made ahead of time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of MAC kept in a nonce.
const MAC_LEN: usize = 16;
/// Length of a nonce in bytes before base64url: the period, then the MAC.
const RAW_LEN: usize = 8 + MAC_LEN;
/// Its base64url form: 32 characters, all within RFC 9449's `NQCHAR`.
pub(super) const NONCE_LEN: usize = 32;
const LABEL: &[u8] = b"tjs-dpop-nonce-v1";

/// How a presented nonce relates to the current period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NonceCheck {
    /// Made in the current period (or the next: a clock a little ahead).
    Current,
    /// Made in the previous period: still accepted; the answer should carry the current one.
    Previous,
    /// Not a nonce of this key, or too old.
    Invalid,
}

/// The key and period nonces are made with.
#[derive(Clone)]
pub(super) struct NonceSource {
    mac: Hmac<Sha256>,
    period_ms: u64,
}

impl fmt::Debug for NonceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceSource")
            .field("key", &"[redacted]")
            .field("period_ms", &self.period_ms)
            .finish()
    }
}

impl NonceSource {
    pub(super) fn new(key: &[u8], period_ms: u64) -> Self {
        Self {
            mac: <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key"),
            period_ms: period_ms.max(1),
        }
    }

    fn mac_of(&self, period: u64) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(LABEL);
        mac.update(&period.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// The nonce of the period `now_ms` falls in.
    pub(super) fn current(&self, now_ms: u64) -> String {
        let period = now_ms / self.period_ms;
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&period.to_be_bytes());
        raw[8..].copy_from_slice(&self.mac_of(period));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a presented nonce at `now_ms`: one MAC, compared in constant time.
    pub(super) fn check(&self, nonce: &str, now_ms: u64) -> NonceCheck {
        if nonce.len() != NONCE_LEN {
            return NonceCheck::Invalid;
        }
        let mut raw = [0u8; RAW_LEN];
        if URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) != Ok(RAW_LEN) {
            return NonceCheck::Invalid;
        }
        let period = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
        let now = now_ms / self.period_ms;
        let verdict = if period == now || period == now.saturating_add(1) {
            NonceCheck::Current
        } else if period.saturating_add(1) == now {
            NonceCheck::Previous
        } else {
            return NonceCheck::Invalid;
        };
        let good = subtle::ConstantTimeEq::ct_eq(&self.mac_of(period)[..], &raw[8..]);
        if bool::from(good) {
            verdict
        } else {
            NonceCheck::Invalid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"nonce-key-nonce-key-nonce-key-nonce-key!";
    const PERIOD: u64 = 300_000;

    #[test]
    fn a_nonce_is_accepted_in_its_period_and_the_next_and_the_one_before() {
        let source = NonceSource::new(KEY, PERIOD);
        let t = 1_700_000_000_000 / PERIOD * PERIOD + 1_000;
        let nonce = source.current(t);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert!(
            nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(source.current(t + 1_000), nonce, "stable within a period");
        assert_eq!(source.check(&nonce, t), NonceCheck::Current);
        assert_eq!(source.check(&nonce, t + PERIOD), NonceCheck::Previous);
        assert_eq!(source.check(&nonce, t + 2 * PERIOD), NonceCheck::Invalid);
        // An instance whose clock is behind the issuer's, in the period before.
        assert_eq!(source.check(&nonce, t - 2_000), NonceCheck::Current);
        assert_eq!(
            source.check(&nonce, t - PERIOD - 2_000),
            NonceCheck::Invalid
        );
        assert_ne!(source.current(t + PERIOD), nonce, "rotates");
    }

    #[test]
    fn instances_with_the_same_key_agree_and_other_keys_do_not() {
        let a = NonceSource::new(KEY, PERIOD);
        let b = NonceSource::new(KEY, PERIOD);
        let other = NonceSource::new(b"another-key-another-key-another-key-!!!!", PERIOD);
        let t = 1_700_000_123_456;
        assert_eq!(b.check(&a.current(t), t), NonceCheck::Current);
        assert_eq!(other.check(&a.current(t), t), NonceCheck::Invalid);
    }

    #[test]
    fn forged_and_malformed_nonces_are_invalid() {
        let source = NonceSource::new(KEY, PERIOD);
        let t = 1_700_000_123_456;
        let nonce = source.current(t);
        // The period moved forward, the MAC kept: no longer this key's nonce.
        let mut raw = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        raw[7] ^= 1;
        let moved = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(source.check(&moved, t), NonceCheck::Invalid);
        let mut flipped = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        flipped[RAW_LEN - 1] ^= 1;
        assert_eq!(
            source.check(&URL_SAFE_NO_PAD.encode(&flipped), t),
            NonceCheck::Invalid
        );
        for bad in ["", "x", &nonce[..31], &format!("{nonce}A"), &"*".repeat(32)] {
            assert_eq!(source.check(bad, t), NonceCheck::Invalid, "{bad:?}");
        }
    }
}
