//! [`DpopConfig`]: whether sessions are bound to a key the client holds (DPoP, RFC 9449).

use std::fmt;

use super::ConfigError;
use super::env::Env;
use super::secret::Secret;

/// Whether logins bind their sessions to the client's DPoP key (`SESSION_DPOP`).
///
/// Whatever the mode, a session bound at login stays bound: its access tokens are accepted
/// only as `Authorization: DPoP` with a proof by its key, and it is refreshed only with one.
/// Turning the mode back to `off` binds no new session and frees none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopMode {
    /// No new session is bound (`off`, the default); sessions bound earlier stay bound.
    #[default]
    Off,
    /// A login or re-authentication that carries a `DPoP` proof binds the session to the
    /// proof's key; one without gets Bearer tokens (`optional`).
    Optional,
    /// Every login needs a `DPoP` proof (400 `invalid_dpop_proof` without one), and a session
    /// that is not bound cannot be refreshed (`required`).
    Required,
}

/// Shortest server-nonce key accepted, in bytes.
const MIN_NONCE_KEY: usize = 32;

/// The DPoP settings of the session manager: the [`DpopMode`], the public origin proofs name
/// in `htu`, and the key of server nonces.
///
/// ```
/// use tower_jwt_session::config::{DpopConfig, DpopMode};
///
/// let dpop = DpopConfig::default()
///     .with_mode(DpopMode::Optional)
///     .with_public_origin("https://api.example.com");
/// assert_eq!(dpop.mode(), DpopMode::Optional);
/// assert_eq!(dpop.public_origin(), Some("https://api.example.com"));
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct DpopConfig {
    mode: DpopMode,
    public_origin: Option<String>,
    nonce_key: Option<Secret>,
}

impl fmt::Debug for DpopConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopConfig")
            .field("mode", &self.mode)
            .field("public_origin", &self.public_origin)
            .field("nonces", &self.nonce_key.is_some())
            .finish()
    }
}

impl DpopConfig {
    /// Whether logins bind sessions to the client's key. The default is [`DpopMode::Off`].
    pub fn with_mode(mut self, mode: DpopMode) -> Self {
        self.mode = mode;
        self
    }

    /// The origin clients call this server at (`https://api.example.com`): a proof's `htu`
    /// must name it with the request's path. Needed by every mode but `off`; behind a proxy it
    /// is the proxy's public origin, never what the request's `Host` says. No default.
    pub fn with_public_origin(mut self, origin: impl Into<String>) -> Self {
        self.public_origin = Some(origin.into());
        self
    }

    /// Requires a fresh server nonce in every proof (RFC 9449 §8, §9): proofs cannot be made
    /// ahead of time. The nonce is derived from `key` and the time, so every instance given
    /// the same key accepts the others' nonces. Off by default: it costs clients one more
    /// round trip whenever the nonce changes (every 5 minutes).
    ///
    /// # Errors
    /// [`ConfigError::WeakSecret`] for a key under 32 bytes.
    pub fn with_nonce_key(mut self, key: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let key = key.as_ref();
        if key.len() < MIN_NONCE_KEY {
            return Err(ConfigError::WeakSecret {
                name: "SESSION_DPOP_NONCE_KEY",
                reason: "the DPoP nonce key must be at least 32 bytes of random data",
            });
        }
        self.nonce_key = Some(Secret::new(key));
        Ok(self)
    }

    /// The mode.
    pub fn mode(&self) -> DpopMode {
        self.mode
    }

    /// The public origin, as given.
    pub fn public_origin(&self) -> Option<&str> {
        self.public_origin.as_deref()
    }

    /// Whether proofs must carry a server nonce.
    pub fn requires_nonce(&self) -> bool {
        self.nonce_key.is_some()
    }

    pub(crate) fn nonce_key(&self) -> Option<&[u8]> {
        self.nonce_key.as_ref().map(Secret::expose)
    }

    /// A mode that binds sessions needs the public origin.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.mode != DpopMode::Off && self.public_origin.is_none() {
            return Err(ConfigError::Missing {
                name: "SESSION_PUBLIC_ORIGIN",
                hint: "SESSION_DPOP binds sessions to the client's key, and its proofs name the URL they were made for: set the origin clients call, such as https://api.example.com",
            });
        }
        Ok(())
    }

    /// `SESSION_DPOP` (`off`, `optional`, `required`), `SESSION_PUBLIC_ORIGIN`,
    /// `SESSION_DPOP_NONCE_KEY`.
    pub(super) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(mode) = env.choice(
            "SESSION_DPOP",
            &[
                ("off", DpopMode::Off),
                ("optional", DpopMode::Optional),
                ("required", DpopMode::Required),
            ],
            "`off`, `optional` or `required`",
        )? {
            config.mode = mode;
        }
        if let Some(origin) = env.get("SESSION_PUBLIC_ORIGIN") {
            config.public_origin = Some(origin);
        }
        if let Some(key) = env.raw("SESSION_DPOP_NONCE_KEY") {
            config = config.with_nonce_key(key.as_bytes())?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SessionConfig;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn from(vars: &[(&str, &str)]) -> Result<SessionConfig, ConfigError> {
        SessionConfig::from_lookup(|name| {
            if name == "JWT_SECRET" {
                return Some(SECRET.to_owned());
            }
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_mode_is_read_and_off_by_default() {
        assert_eq!(from(&[]).unwrap().dpop().mode(), DpopMode::Off);
        let config = from(&[
            ("SESSION_DPOP", "Required"),
            ("SESSION_PUBLIC_ORIGIN", "https://api.example.com"),
        ])
        .unwrap();
        assert_eq!(config.dpop().mode(), DpopMode::Required);
        let err = from(&[("SESSION_DPOP", "sometimes")]).unwrap_err();
        assert!(err.to_string().contains("SESSION_DPOP"), "{err}");
    }

    #[test]
    fn binding_without_a_public_origin_is_refused_naming_it() {
        let err = from(&[("SESSION_DPOP", "optional")]).unwrap_err();
        assert!(err.to_string().contains("SESSION_PUBLIC_ORIGIN"), "{err}");
    }

    #[test]
    fn a_short_nonce_key_is_refused_and_never_shown() {
        let err = from(&[("SESSION_DPOP_NONCE_KEY", "short-nonce-key")]).unwrap_err();
        assert!(err.to_string().contains("SESSION_DPOP_NONCE_KEY"), "{err}");
        assert!(!err.to_string().contains("short-nonce-key"), "{err}");
        let config = from(&[("SESSION_DPOP_NONCE_KEY", SECRET)]).unwrap();
        assert!(config.dpop().requires_nonce());
        assert!(!format!("{config:?}").contains(SECRET));
    }
}
