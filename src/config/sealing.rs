//! The sealing keys of the session records at rest (`SESSION_ENCRYPTION_*`), which the Redis
//! and the PostgreSQL settings read and check alike.

use super::ConfigError;
use super::env::Env;
use super::secret::Secret;

/// Adds a sealing key to `keys` (the current key first, then older ones), refusing a key that is
/// not 32 bytes and an older key without a current one. Shared by the Redis and PostgreSQL
/// settings, which seal alike.
pub(super) fn add_sealing_key(
    keys: &mut Vec<Secret>,
    key: &[u8],
    current: bool,
) -> Result<(), ConfigError> {
    if !current && keys.is_empty() {
        return Err(ConfigError::Conflict {
            name: "with_previous_encryption_key",
            reason: "an older sealing key was given, but no current one".to_owned(),
            fix: "set the current key with with_encryption_key (SESSION_ENCRYPTION_KEY) first"
                .to_owned(),
        });
    }
    if key.len() != 32 {
        return Err(ConfigError::Invalid {
            name: if current {
                "SESSION_ENCRYPTION_KEY"
            } else {
                "SESSION_ENCRYPTION_PREVIOUS_KEYS"
            },
            value: "[redacted]".to_owned(),
            expected: if current {
                "exactly 32 bytes, e.g. `openssl rand -base64 32`"
            } else {
                "exactly 32 bytes each, base64"
            },
        });
    }
    if current {
        keys.insert(0, Secret::new(key));
    } else {
        keys.push(Secret::new(key));
    }
    Ok(())
}

/// `SESSION_ENCRYPTION_KEY`, `SESSION_ENCRYPTION_PREVIOUS_KEYS` (current key first) and
/// `SESSION_ENCRYPTION_ACCEPT_UNSEALED`: the sealing of whichever store is used.
pub(super) fn read_sealing_keys(env: &Env<'_>) -> Result<(Vec<Secret>, bool), ConfigError> {
    let mut keys = Vec::new();
    let mut accept_unsealed = false;
    let previous = env.list("SESSION_ENCRYPTION_PREVIOUS_KEYS");
    match env.get("SESSION_ENCRYPTION_KEY") {
        Some(key) => {
            keys = vec![encryption_key("SESSION_ENCRYPTION_KEY", &key)?];
            for old in previous.unwrap_or_default() {
                let key = encryption_key("SESSION_ENCRYPTION_PREVIOUS_KEYS", &old)?;
                keys.push(key);
            }
        }
        None if previous.is_some() => {
            return Err(ConfigError::Missing {
                name: "SESSION_ENCRYPTION_KEY",
                hint: "SESSION_ENCRYPTION_PREVIOUS_KEYS is set, so records are sealed: set the current key too",
            });
        }
        None => {}
    }
    if let Some(accept) = env.flag("SESSION_ENCRYPTION_ACCEPT_UNSEALED")? {
        if accept && keys.is_empty() {
            return Err(ConfigError::Missing {
                name: "SESSION_ENCRYPTION_KEY",
                hint: "SESSION_ENCRYPTION_ACCEPT_UNSEALED migrates records to sealing: set the key they are sealed with",
            });
        }
        accept_unsealed = accept;
    }
    Ok((keys, accept_unsealed))
}

/// A 32-byte key given in base64 (standard or URL-safe, padded or not).
fn encryption_key(name: &'static str, value: &str) -> Result<Secret, ConfigError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let v = value.trim();
    let bytes = STANDARD
        .decode(v)
        .or_else(|_| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')))
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or(ConfigError::Invalid {
            name,
            value: "[redacted]".to_owned(),
            expected: "32 random bytes in base64, e.g. the output of `openssl rand -base64 32`",
        })?;
    Ok(Secret::new(&bytes))
}
