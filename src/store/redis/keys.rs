//! Key names: the prefix, the hash tags that keep a user's keys in one cluster slot, and the
//! keyed hashes that keep user ids and client addresses out of key names when records are
//! sealed.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::session::SessionId;
use crate::store::StoreError;
use crate::store::sealing::Cipher;

/// How keys are named under one prefix.
pub(crate) struct KeyNames {
    prefix: String,
    cipher: Option<Arc<Cipher>>,
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl KeyNames {
    /// Names under `prefix`, hashed with `cipher`'s name keys when records are sealed.
    ///
    /// # Errors
    /// A prefix with `{` or `}`: they would change the cluster hash slot.
    pub(crate) fn new(prefix: &str, cipher: Option<Arc<Cipher>>) -> Result<Self, StoreError> {
        if prefix.contains(['{', '}']) {
            return Err(StoreError::Unavailable(
                "REDIS_KEY_PREFIX must not contain { or }: they would change the cluster hash slot"
                    .to_owned(),
            ));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            cipher,
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The sealing cipher, when records are sealed.
    pub(super) fn cipher(&self) -> Option<&Cipher> {
        self.cipher.as_deref()
    }

    /// `P:<name>`, for keys outside any user's slot (the key-check marker, the channel).
    pub(super) fn plain(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// `P:<namespace>{key}`, with the key (an IP address, `login:uc:<id>|<ip>`) replaced by a
    /// keyed hash when records are sealed, so key names leak no user ids or addresses either.
    pub(crate) fn hashed(&self, namespace: &str, key: &str) -> String {
        match &self.cipher {
            Some(cipher) => format!(
                "{}:{namespace}{{{}}}",
                self.prefix,
                hex(&cipher.name_hash(0, key)[..16])
            ),
            None => format!("{}:{namespace}{{{key}}}", self.prefix),
        }
    }

    /// A hash of the user id for key names: keyed when records are sealed (so key names leak
    /// nothing), plain SHA-256 otherwise. `key` picks among the sealing keys, current first.
    fn user_hash(&self, key: usize, user_id: &str) -> [u8; 32] {
        match &self.cipher {
            Some(cipher) => cipher.name_hash(key, user_id),
            None => Sha256::digest(user_id.as_bytes()).into(),
        }
    }

    /// The hash tag shared by a user's keys: four bytes of the user hash.
    pub(super) fn tag_of_user(&self, user_id: &str) -> [u8; 4] {
        let h = self.user_hash(0, user_id);
        [h[0], h[1], h[2], h[3]]
    }

    /// `P:{tag}:s:`: what the record keys of a tag start with.
    pub(super) fn record_prefix(&self, tag: &[u8]) -> String {
        format!("{}:{{{}}}:s:", self.prefix, hex(tag))
    }

    pub(super) fn record_key(&self, sid: SessionId) -> String {
        format!("{}{sid}", self.record_prefix(&sid.as_bytes()[..4]))
    }

    pub(super) fn index_key(&self, user_id: &str) -> String {
        self.index_key_with(0, user_id)
    }

    fn index_key_with(&self, key: usize, user_id: &str) -> String {
        let digest = self.user_hash(key, user_id);
        format!("{}{}", self.index_prefix(&digest[..4]), hex(&digest[..16]))
    }

    /// `P:{tag}:a:<user hash>`: the user's security activity list, in the slot of the user's
    /// sessions, named by the current key's user hash (a key rotation starts a new list).
    pub(super) fn activity_key(&self, user_id: &str) -> String {
        let digest = self.user_hash(0, user_id);
        format!(
            "{}:{{{}}}:a:{}",
            self.prefix,
            hex(&digest[..4]),
            hex(&digest[..16])
        )
    }

    /// `P:{tag}:u:`: what a user's index key starts with; the rest is [`Self::index_suffix`].
    pub(super) fn index_prefix(&self, tag: &[u8]) -> String {
        format!("{}:{{{}}}:u:", self.prefix, hex(tag))
    }

    /// The end of a user's index key, kept in each record (field `i`) so that the scripts that
    /// end a session by its id alone (revoke, reuse) take it out of the index at once.
    pub(super) fn index_suffix(&self, key: usize, user_id: &str) -> String {
        hex(&self.user_hash(key, user_id)[..16])
    }

    /// The user's index under the current key, then under each previous key: after a key
    /// rotation, sessions made before it are listed and revoked too.
    pub(super) fn index_keys(&self, user_id: &str) -> Vec<(String, [u8; 4])> {
        let keys = self.cipher.as_ref().map_or(1, |c| c.name_keys());
        (0..keys)
            .map(|k| {
                let h = self.user_hash(k, user_id);
                (self.index_key_with(k, user_id), [h[0], h[1], h[2], h[3]])
            })
            .collect()
    }
}
