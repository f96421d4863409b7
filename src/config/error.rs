//! [`ConfigError`], what a refused configuration says, and [`SessionLimitPolicy`].

use super::Algorithm;

/// A configuration value was missing or malformed, or settings contradict each other.
///
/// Every variant names the setting (the environment variable where there is one), and the
/// `Display` text says what form was expected or what fixes it, so it can be shown to an
/// operator as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting was not given.
    #[error("{name} is not set: {hint}")]
    Missing {
        /// The setting or environment variable.
        name: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
    /// A value could not be parsed or is out of range. The value is included unless it is secret.
    #[error("{name}={value:?} is invalid: expected {expected}")]
    Invalid {
        /// The setting or environment variable.
        name: &'static str,
        /// The offending value (`[redacted]` for secrets).
        value: String,
        /// The expected form.
        expected: &'static str,
    },
    /// A secret was refused (too short, or the well-known placeholder). The secret itself is
    /// never included.
    #[error("{name} is refused: {reason}")]
    WeakSecret {
        /// The setting or environment variable.
        name: &'static str,
        /// Why, and how to fix it.
        reason: &'static str,
    },
    /// A PEM key could not be loaded.
    #[error("{name}: the {alg} key could not be read from PEM: {reason}")]
    Key {
        /// The environment variable or builder method that was given the key.
        name: &'static str,
        /// The algorithm the key was given for.
        alg: Algorithm,
        /// What the key parser said.
        reason: String,
    },
    /// A key was read, but it does not fit: another key type or curve than the algorithm
    /// needs, an RSA key under 2048 bits, a private key where public keys belong, or a public
    /// key that is not the private key's.
    #[error("{name} is refused for {alg}: {reason}")]
    KeyRefused {
        /// The environment variable or builder method that was given the key.
        name: &'static str,
        /// The algorithm the key was given for.
        alg: Algorithm,
        /// Why, and how to fix it.
        reason: String,
    },
    /// The algorithm of a key in a key variable is not known: an RSA public key without the
    /// `alg: NAME` line that states it, a key of a type or on a curve this crate does not
    /// verify, or an `alg:` line that names no asymmetric algorithm or no key.
    #[error("{name} is refused: {reason}")]
    KeyAlgorithm {
        /// The environment variable that holds the key.
        name: &'static str,
        /// Which key, and how to fix it.
        reason: String,
    },
    /// A key file could not be read.
    #[error("{name}={path:?} cannot be read: {reason}")]
    KeyFile {
        /// The environment variable that names the file.
        name: &'static str,
        /// The path it names.
        path: String,
        /// What the operating system said.
        reason: String,
    },
    /// Two settings contradict each other.
    #[error("{reason}; {fix}")]
    Conflict {
        /// The settings involved.
        name: &'static str,
        /// What contradicts what, with the values in force.
        reason: String,
        /// The setting that fixes it (variable and builder method).
        fix: String,
    },
    /// A store URL is set, but this build of the crate has no such store.
    #[error(
        "{name} is set, but this build of tower-jwt-session has no store for it: enable the crate's `{feature}` feature, unset {name}, or name the store that holds the sessions in SESSION_STORE (memory, redis or postgres)"
    )]
    StoreNotBuilt {
        /// The environment variable that names the store.
        name: &'static str,
        /// The cargo feature that brings the store.
        feature: &'static str,
    },
}

/// What happens when a user already has the maximum number of sessions and logs in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SessionLimitPolicy {
    /// End the user's least recently active session (created or refreshed) to make room.
    #[default]
    Evict,
    /// Refuse the new login with 403 `forbidden`.
    Deny,
}
