//! Sealing of record data (user id and roles) with XChaCha20-Poly1305, and the keyed hash
//! that names keys, when an encryption key is configured.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::session::{SessionId, random_bytes};

/// The field name of part `index` of a sealed value: `d`, `d1`, `d2`, … As many parts as the
/// value needs: a record the manager accepts is never cut short.
pub(crate) fn sealed_part_name(index: usize) -> String {
    if index == 0 {
        "d".to_owned()
    } else {
        format!("d{index}")
    }
}

/// A record's [`AuthContext`](crate::session::AuthContext) as the Redis and PostgreSQL stores
/// keep it (in the seal where they seal): short names, empty parts left out. A record without
/// it (written before it existed) reads as authenticated at its creation.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq, Debug)]
pub(crate) struct AuthWire {
    /// `auth_time`, milliseconds since the epoch.
    t: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    m: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    /// The DPoP key thumbprint the session is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
}

impl AuthWire {
    pub(crate) fn of(auth: &crate::session::AuthContext) -> Self {
        Self {
            t: auth.auth_time,
            m: auth.amr.clone(),
            c: auth.acr.clone(),
            k: auth.jkt.clone(),
        }
    }

    /// The context kept, or for a record without one, an authentication at `created_at`.
    pub(crate) fn context(wire: Option<Self>, created_at: u64) -> crate::session::AuthContext {
        match wire {
            Some(w) => crate::session::AuthContext {
                auth_time: w.t,
                amr: w.m,
                acr: w.c,
                jkt: w.k,
            },
            None => crate::session::AuthContext::at(created_at),
        }
    }
}

/// The seal's format: 2 seals the whole record (data, times and generation); 1, written by
/// earlier releases, sealed the user id and roles only.
pub(crate) const SEAL_VERSION: u8 = 2;

/// What a sealed record holds: everything a rule reads. The hash also keeps the times in clear
/// for the Lua scripts that sort and sweep a user's sessions; a record whose clear fields
/// disagree with its seal is tampered with.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq, Debug)]
pub(crate) struct SealedData {
    pub(crate) u: String,
    pub(crate) r: Vec<String>,
    pub(crate) c: u64,
    pub(crate) a: u64,
    pub(crate) e: u64,
    pub(crate) g: u64,
    pub(crate) x: u64,
    pub(crate) p: u64,
}

/// What a version-1 seal holds.
#[derive(serde::Deserialize)]
pub(crate) struct SealedDataV1 {
    pub(crate) u: String,
    pub(crate) r: Vec<String>,
}

/// A sealed value opened: its plaintext, its format, and whether a previous key sealed it.
pub(crate) struct Opened {
    pub(crate) plain: Vec<u8>,
    pub(crate) version: u8,
    pub(crate) old_key: bool,
}

/// Seals the data fields of records (user id and roles) and hashes user ids in key names.
pub(crate) struct Cipher {
    /// `(key id, cipher)`, the current key first.
    seal: Vec<(u8, XChaCha20Poly1305)>,
    /// Keys for hashing user ids into key names, the current key's first.
    names: Vec<Hmac<Sha256>>,
    /// Records without a whole seal are accepted (one migration), not refused.
    accept_unsealed: bool,
}

/// The associated data of a sealed record of format `version`: the session id, so records
/// cannot be swapped.
pub(crate) fn record_aad(version: u8, sid: SessionId) -> Vec<u8> {
    let mut aad = format!("tjs-record-v{version}:").into_bytes();
    aad.extend_from_slice(sid.as_bytes());
    aad
}

fn derive(key: &[u8], label: &[u8]) -> impl AsRef<[u8]> {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(label);
    mac.finalize().into_bytes()
}

impl Cipher {
    /// The cipher for `keys` (current first), or `None` without keys: records stay plaintext.
    /// `accept_unsealed` accepts records without a whole seal, for one migration.
    pub(crate) fn new(keys: &[Secret], accept_unsealed: bool) -> Option<Self> {
        if keys.is_empty() {
            return None;
        }
        Some(Self {
            seal: keys
                .iter()
                .map(|k| {
                    let id = Sha256::digest(k.expose())[0];
                    let key = derive(k.expose(), b"tower-jwt-session seal v1");
                    let cipher =
                        XChaCha20Poly1305::new_from_slice(key.as_ref()).expect("32-byte key");
                    (id, cipher)
                })
                .collect(),
            names: keys
                .iter()
                .map(|k| {
                    let key = derive(k.expose(), b"tower-jwt-session key names v1");
                    <Hmac<Sha256>>::new_from_slice(key.as_ref()).expect("HMAC takes any key")
                })
                .collect(),
            accept_unsealed,
        })
    }

    /// Whether records without a whole seal are accepted (one migration).
    pub(crate) fn accepts_unsealed(&self) -> bool {
        self.accept_unsealed
    }

    /// `base64url(version | key id | nonce | ciphertext and tag)`, in the current format.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> String {
        self.seal_as(SEAL_VERSION, aad, plaintext)
    }

    /// [`seal`](Self::seal) in format `version` (tests write the formats of earlier releases).
    pub(crate) fn seal_as(&self, version: u8, aad: &[u8], plaintext: &[u8]) -> String {
        let (id, cipher) = &self.seal[0];
        let nonce: [u8; 24] = random_bytes();
        let sealed = cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any length we write");
        let mut out = vec![version, *id];
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The plaintext of a value sealed in format 1 or 2, with the associated data `aad` gives
    /// for its format; `None` when no key opens it (wrong key, tampered, unknown format).
    pub(crate) fn open(&self, aad: impl Fn(u8) -> Vec<u8>, sealed: &str) -> Option<Opened> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        let version = *bytes.first()?;
        if bytes.len() < 2 + 24 + 16 || !(1..=SEAL_VERSION).contains(&version) {
            return None;
        }
        let aad = aad(version);
        let nonce: [u8; 24] = bytes[2..26].try_into().ok()?;
        self.seal
            .iter()
            .enumerate()
            .filter(|(_, (id, _))| *id == bytes[1])
            .find_map(|(i, (_, cipher))| {
                let payload = Payload {
                    msg: &bytes[26..],
                    aad: &aad,
                };
                cipher
                    .decrypt(&nonce.into(), payload)
                    .ok()
                    .map(|plain| Opened {
                        plain,
                        version,
                        old_key: i > 0,
                    })
            })
    }

    /// How many keys hash names: the current one and each previous one.
    pub(crate) fn name_keys(&self) -> usize {
        self.names.len()
    }

    /// The keyed hash of `name` under name key `key` (0 is the current key).
    pub(crate) fn name_hash(&self, key: usize, name: &str) -> [u8; 32] {
        let mut mac = self.names[key].clone();
        mac.update(name.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The current name key alone, for what hashes names without sealing anything (the
    /// PostgreSQL rate-limit and attempt tables).
    #[cfg(feature = "postgres")]
    pub(crate) fn current_name_key(&self) -> NameKey {
        NameKey(self.names[0].clone())
    }
}

/// One name key: hashes names as [`Cipher::name_hash`] does with key 0. Its `Debug` shows no
/// key.
#[cfg(feature = "postgres")]
#[derive(Clone)]
pub(crate) struct NameKey(Hmac<Sha256>);

#[cfg(feature = "postgres")]
impl NameKey {
    /// The keyed hash of `name`.
    pub(crate) fn hash(&self, name: &str) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(name.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(feature = "postgres")]
impl std::fmt::Debug for NameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameKey(..)")
    }
}
