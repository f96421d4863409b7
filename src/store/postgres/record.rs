//! A session record as PostgreSQL holds it: the times the rules read in SQL as columns, the
//! rest (user id, roles, device, custom claims, authentication context) in one `data` value, sealed with the times when a key is configured;
//! and the keys that stand for user ids in the index.

use sha2::{Digest, Sha256};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use crate::session::{CustomClaims, SessionId};
use crate::store::sealing::{AuthWire, Cipher};
use crate::store::{DeviceInfo, SessionRecord, StoreError};

/// The columns a record is read from, in this order.
pub(super) const COLUMNS: &str = "session_id, user_key, created_at, last_active_at, expires_at, generation, refresh_expires_at, purge_at, data";

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// The part of a record no rule reads in SQL: everything but the session id and the times.
/// [`encode_data`] is the one place it is written and [`decode_row`] the one place it is read,
/// so a new field of [`SessionRecord`] that is not a time goes here and nowhere else.
#[derive(serde::Serialize, serde::Deserialize)]
struct RecordData {
    /// The user id.
    u: String,
    /// The roles.
    r: Vec<String>,
    /// The device the session was started from (display only); absent when unknown, so rows
    /// written before the devices list read as no device.
    #[serde(default, skip_serializing_if = "is_unknown")]
    dv: DeviceInfo,
    /// The custom claims' JSON text; absent when there are none (and in rows written before
    /// custom claims existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    /// The authentication context; absent in rows written before it existed, which read as
    /// authenticated at their creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    au: Option<AuthWire>,
}

fn is_unknown(device: &DeviceInfo) -> bool {
    *device == DeviceInfo::default()
}

impl RecordData {
    fn of(record: &SessionRecord) -> Self {
        Self {
            u: record.user_id.clone(),
            r: record.roles.clone(),
            dv: record.device.clone(),
            k: (!record.claims.is_empty()).then(|| record.claims.as_json().to_owned()),
            au: Some(AuthWire::of(&record.auth)),
        }
    }
}

/// What a sealed `data` value holds: the data and every time a rule reads, so that a row
/// whose clear columns were changed behind the store's back is no session.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sealed {
    d: RecordData,
    /// created, last active, end, generation, refresh end, purge.
    t: [u64; 6],
}

/// The times of a record, as its columns hold them.
fn times(record: &SessionRecord) -> [u64; 6] {
    [
        record.created_at,
        record.last_active_at,
        record.expires_at,
        record.generation,
        record.refresh_expires_at,
        record.purge_at,
    ]
}

/// The associated data of a sealed record: the session id, so rows cannot be swapped.
fn aad(sid: SessionId) -> Vec<u8> {
    let mut aad = b"tjs-pg-record-v1:".to_vec();
    aad.extend_from_slice(sid.as_bytes());
    aad
}

/// The `data` column of `record`: JSON of its user id, roles, device and custom claims without a key; with a key,
/// those and its times sealed together (XChaCha20-Poly1305, the session id as associated data).
pub(super) fn encode_data(
    cipher: Option<&Cipher>,
    record: &SessionRecord,
) -> Result<String, StoreError> {
    let data = RecordData::of(record);
    match cipher {
        None => serde_json::to_string(&data).map_err(|_| corrupt("record data")),
        Some(cipher) => {
            let plain = serde_json::to_vec(&Sealed {
                d: data,
                t: times(record),
            })
            .map_err(|_| corrupt("record data"))?;
            Ok(cipher.seal(&aad(record.session_id), &plain))
        }
    }
}

/// A time column as the store reads it.
pub(super) fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt("a negative time"))
}

/// A time for a column.
pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A session id from its `bytea` column.
pub(super) fn sid_from(bytes: &[u8]) -> Result<SessionId, StoreError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| corrupt("a session id"))?;
    Ok(SessionId::from_bytes(bytes))
}

/// No session: a row that is not what this crate wrote. Counted and logged, never trusted.
fn refused(sid: SessionId, why: &str) -> Option<(SessionRecord, bool)> {
    crate::telemetry::unreadable_record();
    tracing::warn!(session_id = %sid, why, "a session record failed its integrity check: treated as no session");
    None
}

/// A record from a row of [`COLUMNS`], or `None` when it is not what this crate wrote: with a
/// key, a seal that does not open (a wrong key, a swapped row), clear columns that disagree with
/// the seal, or no seal at all (unless unsealed records are accepted for a migration); without
/// a key, a sealed row; and with or without one, a `user_key` that is not the key of the user
/// id the row holds (a row moved to another user's index would be out of reach of that
/// user's logout-all and devices list). The second value says whether the row should be
/// sealed again (with the current key, or at all).
///
/// Every column a decision reads is covered: the session id is the seal's associated data,
/// the times are in the seal, and `user_key` is a keyed hash of the sealed user id, checked
/// here (so seals written before this check open as they did).
// Size: one column per statement, in the table's order, each refused by name when corrupt.
pub(super) fn decode_row(
    cipher: Option<&Cipher>,
    row: &PgRow,
) -> Result<Option<(SessionRecord, bool)>, StoreError> {
    let get = |name: &str| -> Result<u64, StoreError> {
        to_u64(row.try_get::<i64, _>(name).map_err(|_| corrupt(name))?)
    };
    let sid = sid_from(
        row.try_get::<&[u8], _>("session_id")
            .map_err(|_| corrupt("session_id"))?,
    )?;
    let columns = [
        get("created_at")?,
        get("last_active_at")?,
        get("expires_at")?,
        get("generation")?,
        get("refresh_expires_at")?,
        get("purge_at")?,
    ];
    let user_key: &[u8] = row.try_get("user_key").map_err(|_| corrupt("user_key"))?;
    let text: &str = row.try_get("data").map_err(|_| corrupt("data"))?;
    let clear = || serde_json::from_str::<RecordData>(text).ok();
    let (data, reseal) = match cipher {
        None => match clear() {
            Some(data) => (data, false),
            None => {
                return Ok(refused(
                    sid,
                    "the record is sealed but no key is configured",
                ));
            }
        },
        Some(cipher) => match cipher.open(|_| aad(sid), text) {
            Some(opened) => {
                let Ok(sealed) = serde_json::from_slice::<Sealed>(&opened.plain) else {
                    return Ok(refused(sid, "the seal holds no record data"));
                };
                if sealed.t != columns {
                    return Ok(refused(sid, "the clear columns disagree with the seal"));
                }
                (sealed.d, opened.old_key)
            }
            None => match clear() {
                Some(data) if cipher.accepts_unsealed() => (data, true),
                Some(_) => return Ok(refused(sid, "the record has no seal")),
                None => return Ok(refused(sid, "the seal does not open")),
            },
        },
    };
    if !user_keys(cipher, &data.u).iter().any(|key| key == user_key) {
        return Ok(refused(sid, "the user key is not the user id's"));
    }
    let claims = match data.k.as_deref().map(CustomClaims::from_json) {
        None => CustomClaims::default(),
        Some(Ok(claims)) => claims,
        Some(Err(_)) => return Ok(refused(sid, "the custom claims are not a JSON object")),
    };
    let [
        created_at,
        last_active_at,
        expires_at,
        generation,
        refresh_expires_at,
        purge_at,
    ] = columns;
    let auth = AuthWire::context(data.au, created_at);
    Ok(Some((
        SessionRecord {
            session_id: sid,
            user_id: data.u,
            roles: data.r,
            device: data.dv,
            claims,
            auth,
            created_at,
            last_active_at,
            expires_at,
            generation,
            // A rotation sets both; nothing else moves either.
            rotated_at: last_active_at,
            refresh_expires_at,
            revoked_at: None,
            purge_at,
        },
        reseal,
    )))
}

/// The keys that stand for `user_id` in the `user_key` column, current first: SHA-256 of the
/// user id without sealing; with sealing a keyed hash under each sealing key (so the table
/// holds no user id in clear, and sessions made before a key rotation are still found), and
/// while unsealed rows are accepted for a migration, their SHA-256 key too (so a user's
/// logout-all and devices list reach the rows not yet sealed).
pub(super) fn user_keys(cipher: Option<&Cipher>, user_id: &str) -> Vec<Vec<u8>> {
    let plain = || Sha256::digest(user_id.as_bytes()).to_vec();
    match cipher {
        None => vec![plain()],
        Some(cipher) => {
            let mut keys: Vec<Vec<u8>> = (0..cipher.name_keys())
                .map(|key| cipher.name_hash(key, user_id).to_vec())
                .collect();
            if cipher.accepts_unsealed() {
                keys.push(plain());
            }
            keys
        }
    }
}

/// Lower-case hex of `bytes` (the payload of a revocation notification).
#[cfg(test)]
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A session id from the hex of its 16 bytes.
pub(super) fn sid_from_hex(text: &str) -> Option<SessionId> {
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(SessionId::from_bytes(bytes))
}
