//! A session record as Redis holds it: a hash of short fields, its data sealed when a key is
//! configured, and its parsing back.

use std::collections::HashMap;

use redis::{FromRedisValue, Value};

use super::sealing::{Cipher, SealedData, record_aad, sealed_part_name};
use crate::clock::Clock as _;
use crate::session::SessionId;
use crate::store::{SessionRecord, StoreError};

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// The data fields of a record: sealed together when a key is configured.
pub(super) fn data_fields(
    cipher: Option<&Cipher>,
    record: &SessionRecord,
) -> Result<Vec<(String, String)>, StoreError> {
    let Some(cipher) = cipher else {
        let roles = serde_json::to_string(&record.roles).map_err(|_| corrupt("roles"))?;
        return Ok(vec![
            ("u".to_owned(), record.user_id.clone()),
            ("r".to_owned(), roles),
        ]);
    };
    let plain = serde_json::to_vec(&SealedData {
        u: record.user_id.clone(),
        r: record.roles.clone(),
    })
    .map_err(|_| corrupt("record data"))?;
    let sealed = cipher.seal(&record_aad(record.session_id), &plain);
    // In parts of at most 64 bytes: a longer value would make Redis give up its compact
    // encoding for the whole hash (hash-max-listpack-value), which costs hundreds of bytes a
    // session. Base64 is ASCII: every cut falls between characters.
    Ok(sealed
        .as_bytes()
        .chunks(64)
        .enumerate()
        .map(|(index, part)| {
            let part = String::from_utf8_lossy(part).into_owned();
            (sealed_part_name(index), part)
        })
        .collect())
}

/// The sealed value of a record, joined from its parts, if it has one.
fn sealed_value(fields: &[(String, String)]) -> Option<String> {
    let part = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    part("d").map(|first| {
        let mut all = first.to_owned();
        for index in 1..fields.len() {
            match part(&sealed_part_name(index)) {
                Some(more) => all.push_str(more),
                None => break,
            }
        }
        all
    })
}

/// A record from its hash fields, or `None` when its sealed data does not open (a wrong key,
/// a swapped or tampered record): that is no session, and it is counted. The second value
/// says whether the data should be sealed again with the current key.
pub(super) fn decode(
    cipher: Option<&Cipher>,
    sid: SessionId,
    fields: &[(String, String)],
    pttl: i64,
) -> Result<Option<(SessionRecord, bool)>, StoreError> {
    let sealed = sealed_value(fields);
    let (data, reseal) = match (sealed.as_deref(), cipher) {
        (Some(sealed), Some(cipher)) => match cipher.open(&record_aad(sid), sealed) {
            Some((plain, old_key)) => match serde_json::from_slice::<SealedData>(&plain) {
                Ok(data) => (Some(data), old_key),
                Err(_) => (None, false),
            },
            None => (None, false),
        },
        (Some(_), None) => (None, false),
        // A plaintext record (written before sealing was turned on) is sealed on next write.
        (None, cipher) => (None, cipher.is_some()),
    };
    if sealed.is_some() && data.is_none() {
        crate::telemetry::unreadable_record();
        tracing::warn!(session_id = %sid, "a sealed session record failed to open: treated as no session");
        return Ok(None);
    }
    parse_record(sid, fields, pttl, data).map(|r| Some((r, reseal)))
}

/// A record from its hash fields and its key's remaining lifetime (`PTTL`, in ms). The purge time
/// is the key's expiry, the rotation time is the last activity, and `v` is present only once
/// revoked: fewer fields, fewer bytes per session.
fn parse_record(
    sid: SessionId,
    fields: &[(String, String)],
    pttl: i64,
    sealed: Option<SealedData>,
) -> Result<SessionRecord, StoreError> {
    let map: HashMap<&str, &str> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let text = |k: &str| {
        map.get(k)
            .copied()
            .ok_or_else(|| corrupt(&format!("field {k} missing")))
    };
    let parse = |k: &str, v: &str| -> Result<u64, StoreError> {
        v.parse::<u64>()
            .or_else(|_| v.parse::<f64>().map(|f| f as u64))
            .map_err(|_| corrupt(&format!("field {k} is not a number")))
    };
    let num = |k: &str| parse(k, text(k)?);
    let last_active_at = num("a")?;
    let expires_at = num("e")?;
    let now = crate::clock::SystemClock.now_ms();
    let (user_id, roles) = match sealed {
        Some(data) => (data.u, data.r),
        None => (
            text("u")?.to_owned(),
            serde_json::from_str(text("r")?).map_err(|_| corrupt("roles are not a JSON array"))?,
        ),
    };
    Ok(SessionRecord {
        session_id: sid,
        user_id,
        roles,
        created_at: num("c")?,
        last_active_at,
        expires_at,
        generation: num("g")?,
        rotated_at: last_active_at,
        refresh_expires_at: num("x")?,
        revoked_at: map.get("v").map(|v| parse("v", v)).transpose()?,
        // Written by this version: exact. Older records: read back from the key's lifetime.
        purge_at: match map.get("p") {
            Some(p) => parse("p", p)?,
            None if pttl > 0 => now + pttl as u64 - 1,
            None => expires_at,
        },
    })
}

/// Splits a flat `[field, value, …]` reply into pairs.
pub(super) fn pairs(values: &[Value]) -> Result<Vec<(String, String)>, StoreError> {
    values
        .chunks(2)
        .map(|kv| match kv {
            [k, v] => Ok((
                String::from_redis_value(k.clone()).map_err(|_| corrupt("field name"))?,
                String::from_redis_value(v.clone()).map_err(|_| corrupt("field value"))?,
            )),
            _ => Err(corrupt("odd number of hash entries")),
        })
        .collect()
}

pub(super) fn sid_of(value: &Value) -> Result<SessionId, StoreError> {
    String::from_redis_value(value.clone())
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| corrupt("not a session id"))
}
