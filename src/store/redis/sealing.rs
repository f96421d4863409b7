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
pub(super) fn sealed_part_name(index: usize) -> String {
    if index == 0 {
        "d".to_owned()
    } else {
        format!("d{index}")
    }
}

/// What a sealed record holds.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct SealedData {
    pub(super) u: String,
    pub(super) r: Vec<String>,
}

/// Seals the data fields of records (user id and roles) and hashes user ids in key names.
pub(crate) struct Cipher {
    /// `(key id, cipher)`, the current key first.
    seal: Vec<(u8, XChaCha20Poly1305)>,
    /// Keys for hashing user ids into key names, the current key's first.
    names: Vec<Hmac<Sha256>>,
}

/// The associated data of a sealed record: the session id, so records cannot be swapped.
pub(super) fn record_aad(sid: SessionId) -> Vec<u8> {
    let mut aad = b"tjs-record-v1:".to_vec();
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
    pub(crate) fn new(keys: &[Secret]) -> Option<Self> {
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
        })
    }

    /// `base64url(version | key id | nonce | ciphertext and tag)`.
    pub(super) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> String {
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
        let mut out = vec![1u8, *id];
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The plaintext, and whether it was sealed with a previous key (so it should be sealed
    /// again with the current one).
    pub(super) fn open(&self, aad: &[u8], sealed: &str) -> Option<(Vec<u8>, bool)> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 2 + 24 + 16 || bytes[0] != 1 {
            return None;
        }
        let nonce: [u8; 24] = bytes[2..26].try_into().ok()?;
        self.seal
            .iter()
            .enumerate()
            .filter(|(_, (id, _))| *id == bytes[1])
            .find_map(|(i, (_, cipher))| {
                let payload = Payload {
                    msg: &bytes[26..],
                    aad,
                };
                cipher
                    .decrypt(&nonce.into(), payload)
                    .ok()
                    .map(|plain| (plain, i > 0))
            })
    }

    /// How many keys hash names: the current one and each previous one.
    pub(super) fn name_keys(&self) -> usize {
        self.names.len()
    }

    /// The keyed hash of `name` under name key `key` (0 is the current key).
    pub(super) fn name_hash(&self, key: usize, name: &str) -> [u8; 32] {
        let mut mac = self.names[key].clone();
        mac.update(name.as_bytes());
        mac.finalize().into_bytes().into()
    }
}
