//! Metrics and log helpers; the metrics are listed in the crate docs.

pub(crate) use crate::escape::Escaped;

#[cfg(feature = "metrics")]
use std::sync::Arc;
use std::time::Duration;

use crate::error::AuthError;

/// Handles for the per-request counters.
#[derive(Clone, Default)]
pub(crate) struct Metrics {
    #[cfg(feature = "metrics")]
    validations: Option<Arc<ValidationCounters>>,
}

#[cfg(feature = "metrics")]
struct ValidationCounters {
    valid: metrics::Counter,
    invalid_token: metrics::Counter,
    token_expired: metrics::Counter,
    token_revoked: metrics::Counter,
    invalid_request: metrics::Counter,
    unavailable: metrics::Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers the layer's counters with the installed recorder.
    pub(crate) fn register() -> Self {
        #[cfg(feature = "metrics")]
        {
            let c = |outcome: &'static str| metrics::counter!("tjs_token_validations_total", "outcome" => outcome);
            Self {
                validations: Some(Arc::new(ValidationCounters {
                    valid: c("valid"),
                    invalid_token: c("invalid_token"),
                    token_expired: c("token_expired"),
                    token_revoked: c("token_revoked"),
                    invalid_request: c("invalid_request"),
                    unavailable: c("unavailable"),
                })),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Self::default()
    }

    /// One layer decision.
    #[inline]
    pub(crate) fn validation(&self, result: Result<(), AuthError>) {
        #[cfg(feature = "metrics")]
        if let Some(c) = &self.validations {
            use crate::error::ErrorCode;
            let counter = match result {
                Ok(()) => &c.valid,
                Err(e) => match e.code() {
                    ErrorCode::TokenExpired => &c.token_expired,
                    ErrorCode::TokenRevoked => &c.token_revoked,
                    ErrorCode::InvalidRequest => &c.invalid_request,
                    ErrorCode::Unavailable => &c.unavailable,
                    _ => &c.invalid_token,
                },
            };
            counter.increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = result;
    }
}

/// Handles for the counters of the cache of verified tokens, registered when the codec is built.
#[derive(Clone, Default)]
pub(crate) struct TokenCacheMetrics {
    #[cfg(feature = "metrics")]
    counters: Option<Arc<TokenCacheCounters>>,
}

#[cfg(feature = "metrics")]
struct TokenCacheCounters {
    hit: metrics::Counter,
    miss: metrics::Counter,
    evicted_size: metrics::Counter,
    evicted_expired: metrics::Counter,
}

impl std::fmt::Debug for TokenCacheMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCacheMetrics")
    }
}

/// Why an entry left the cache of verified tokens, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// Pushed out by the capacity.
    Size,
    /// Its token's `exp` (plus leeway) passed.
    Expired,
}

impl TokenCacheMetrics {
    /// Registers the counters with the installed recorder.
    pub(crate) fn register() -> Self {
        #[cfg(feature = "metrics")]
        {
            let lookup = |outcome: &'static str| metrics::counter!("tjs_verified_cache_lookups_total", "outcome" => outcome);
            let evicted = |cause: &'static str| metrics::counter!("tjs_verified_cache_evictions_total", "cause" => cause);
            Self {
                counters: Some(Arc::new(TokenCacheCounters {
                    hit: lookup("hit"),
                    miss: lookup("miss"),
                    evicted_size: evicted("size"),
                    evicted_expired: evicted("expired"),
                })),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Self::default()
    }

    /// A token found in the cache.
    #[inline]
    pub(crate) fn hit(&self) {
        #[cfg(feature = "metrics")]
        if let Some(c) = &self.counters {
            c.hit.increment(1);
        }
    }

    /// A token verified in full.
    #[inline]
    pub(crate) fn miss(&self) {
        #[cfg(feature = "metrics")]
        if let Some(c) = &self.counters {
            c.miss.increment(1);
        }
    }

    /// An entry evicted.
    pub(crate) fn evicted(&self, cause: Eviction) {
        #[cfg(feature = "metrics")]
        if let Some(c) = &self.counters {
            match cause {
                Eviction::Size => c.evicted_size.increment(1),
                Eviction::Expired => c.evicted_expired.increment(1),
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = cause;
    }
}

/// A refresh and how it ended.
pub(crate) fn refresh(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tjs_refresh_total", "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// Sessions created.
pub(crate) fn created() {
    #[cfg(feature = "metrics")]
    metrics::counter!("tjs_sessions_created_total").increment(1);
}

/// Sessions ended early.
pub(crate) fn revoked(reason: &'static str, count: u64) {
    #[cfg(feature = "metrics")]
    if count > 0 {
        metrics::counter!("tjs_sessions_revoked_total", "reason" => reason).increment(count);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (reason, count);
}

/// A session refused as `token_revoked` because the store had no record of it (`no_record`:
/// ended where this instance did not see it end, or lost by the store), or had it at an older
/// generation than this server issued (`rotation_lost`: the store lost a rotation), on the
/// `refresh` or `access` path.
pub(crate) fn session_unknown(path: &'static str, cause: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tjs_sessions_unknown_total", "path" => path, "cause" => cause).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (path, cause);
}

/// Refresh-token reuse detected.
pub(crate) fn reuse(kind: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tjs_refresh_reuse_detected_total", "kind" => kind).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = kind;
}

/// A login refused by the `deny` policy.
pub(crate) fn denied() {
    #[cfg(feature = "metrics")]
    metrics::counter!("tjs_logins_denied_total").increment(1);
}

/// A request refused by a rate limit or lock-out.
pub(crate) fn rate_limited(scope: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tjs_rate_limited_total", "scope" => scope).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = scope;
}

/// How long a store operation took.
pub(crate) fn store_latency(store: &'static str, op: &'static str, took: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("tjs_store_operation_seconds", "op" => op, "store" => store)
        .record(took.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (store, op, took);
}

/// A sealed record that failed to open (wrong key, swapped or tampered record).
#[allow(dead_code)]
pub(crate) fn unreadable_record() {
    #[cfg(feature = "metrics")]
    metrics::counter!("tjs_records_unreadable_total").increment(1);
}

/// Logout-all found the store's index of a user missing a live session.
pub(crate) fn store_inconsistent() {
    #[cfg(feature = "metrics")]
    metrics::counter!("tjs_store_inconsistent_total").increment(1);
}

/// Records held by the memory store.
pub(crate) fn sessions_held(count: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("tjs_sessions_held").set(count as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = count;
}

/// A security event and what became of it: `recorded` (kept by the store), `dropped` (the
/// queue was full), `store_failed`, `hook_failed`, `hook_timeout`, `hook_dropped` (too many
/// hook calls at once).
pub(crate) fn activity(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("tjs_security_events_total", "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// A name a person typed that may be a secret (a password typed into the user field): logged
/// as 12 hex digits of SHA-256 over a per-process salt and the name, so the attempts on one
/// name can be told apart in one instance's log without the name itself being written.
pub(crate) fn typed_name(name: &str) -> String {
    use sha2::{Digest as _, Sha256};
    static SALT: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    let salt = SALT.get_or_init(|| {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).expect("the operating system's random source is available");
        salt
    });
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update(name)
        .finalize();
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}
