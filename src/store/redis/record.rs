//! A session record as Redis holds it: a hash of short fields, its data sealed when a key is
//! configured, and its parsing back.

use std::collections::HashMap;

use redis::{FromRedisValue, Value};

use crate::clock::Clock as _;
use crate::session::{CustomClaims, SessionId};
use crate::store::sealing::{
    AuthWire, Cipher, SEAL_VERSION, SealedData, SealedDataV1, record_aad, sealed_part_name,
};
use crate::store::{DeviceInfo, SessionRecord, StoreError};

/// What a version-2 seal holds, with the device metadata beside the record data: a seal
/// written before the metadata existed opens as no device, and one written with it opens in
/// an older release (it ignores the field). Borrowed when sealing.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "D: serde::Serialize + std::borrow::Borrow<DeviceInfo>",
    deserialize = "D: serde::Deserialize<'de> + Default"
))]
struct SealedWithDevice<D> {
    #[serde(flatten)]
    data: SealedData,
    #[serde(default, skip_serializing_if = "is_unknown")]
    dv: D,
    /// The custom claims' JSON text; absent when there are none (and in seals written before
    /// they existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<String>,
    /// The authentication context; absent in seals written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    au: Option<AuthWire>,
}

/// The clear field of the authentication context (`au`), when records are not sealed: its
/// JSON text. A rotation that moves it writes the field anew.
pub(super) fn auth_field(auth: &crate::session::AuthContext) -> Result<String, StoreError> {
    serde_json::to_string(&AuthWire::of(auth)).map_err(|_| corrupt("auth context"))
}

/// The authentication context from its clear field, or an authentication at `created_at` for
/// a record written before it existed.
fn clear_auth(
    map: &HashMap<&str, &str>,
    created_at: u64,
) -> Result<crate::session::AuthContext, StoreError> {
    let wire = map
        .get("au")
        .map(|text| serde_json::from_str::<AuthWire>(text))
        .transpose()
        .map_err(|_| corrupt("the auth context is not what this crate writes"))?;
    Ok(AuthWire::context(wire, created_at))
}

fn is_unknown<D: std::borrow::Borrow<DeviceInfo>>(device: &D) -> bool {
    *device.borrow() == DeviceInfo::default()
}

/// The clear fields of the device metadata, when records are not sealed: each is one short
/// value (at most 64 bytes), so the hash keeps its compact encoding.
fn device_fields(device: &DeviceInfo) -> impl Iterator<Item = (String, String)> + '_ {
    let label = (!device.label().is_empty()).then(|| ("l".to_owned(), device.label().to_owned()));
    let ip = device.ip().map(|ip| ("ip".to_owned(), ip.to_owned()));
    label.into_iter().chain(ip)
}

/// The clear fields of the custom claims, when records are not sealed: their JSON text in parts
/// of at most 64 bytes (`k`, `k1`, `k2`, …), cut between characters, so the hash keeps its
/// compact encoding (hash-max-listpack-value). None when there are no claims.
pub(super) fn claims_fields(claims: &CustomClaims) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = if claims.is_empty() {
        ""
    } else {
        claims.as_json()
    };
    while !rest.is_empty() {
        let mut cut = rest.len().min(64);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let name = match fields.len() {
            0 => "k".to_owned(),
            n => format!("k{n}"),
        };
        fields.push((name, rest[..cut].to_owned()));
        rest = &rest[cut..];
    }
    fields
}

/// The custom claims joined from their clear parts; none without a `k` field.
fn clear_claims(map: &HashMap<&str, &str>) -> Result<CustomClaims, StoreError> {
    let Some(first) = map.get("k") else {
        return Ok(CustomClaims::default());
    };
    let mut text = (*first).to_owned();
    for index in 1.. {
        match map.get(format!("k{index}").as_str()) {
            Some(part) => text.push_str(part),
            None => break,
        }
    }
    CustomClaims::from_json(&text).map_err(|_| corrupt("the custom claims are not a JSON object"))
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// The data fields of a record: its user id and roles in clear without a key; with a key,
/// the whole record (data, times, generation) sealed together, in parts.
pub(super) fn data_fields(
    cipher: Option<&Cipher>,
    record: &SessionRecord,
) -> Result<Vec<(String, String)>, StoreError> {
    let Some(cipher) = cipher else {
        let roles = serde_json::to_string(&record.roles).map_err(|_| corrupt("roles"))?;
        let mut fields = vec![
            ("u".to_owned(), record.user_id.clone()),
            ("r".to_owned(), roles),
        ];
        fields.extend(device_fields(&record.device));
        fields.extend(claims_fields(&record.claims));
        fields.push(("au".to_owned(), auth_field(&record.auth)?));
        return Ok(fields);
    };
    let plain = serde_json::to_vec(&SealedWithDevice {
        data: SealedData {
            u: record.user_id.clone(),
            r: record.roles.clone(),
            c: record.created_at,
            a: record.last_active_at,
            e: record.expires_at,
            g: record.generation,
            x: record.refresh_expires_at,
            p: record.purge_at,
        },
        dv: &record.device,
        k: (!record.claims.is_empty()).then(|| record.claims.as_json().to_owned()),
        au: Some(AuthWire::of(&record.auth)),
    })
    .map_err(|_| corrupt("record data"))?;
    let sealed = cipher.seal(&record_aad(SEAL_VERSION, record.session_id), &plain);
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

/// The fields the Lua scripts read, in clear: creation, last activity, end, generation,
/// refresh-token end, purge time.
pub(super) fn time_fields(record: &SessionRecord) -> [(&'static str, u64); 6] {
    [
        ("c", record.created_at),
        ("a", record.last_active_at),
        ("e", record.expires_at),
        ("g", record.generation),
        ("x", record.refresh_expires_at),
        ("p", record.purge_at),
    ]
}

/// The sealed value of a record, joined from its parts, if it has one.
pub(super) fn sealed_value(fields: &[(String, String)]) -> Option<String> {
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

/// No session: a record that is not what this crate wrote. Counted and logged, never trusted.
fn refused(sid: SessionId, why: &str) -> Option<(SessionRecord, bool)> {
    crate::telemetry::unreadable_record();
    tracing::warn!(session_id = %sid, why, "a session record failed its integrity check: treated as no session");
    None
}

/// A record from its hash fields, or `None` when it is not what this crate wrote: with a key,
/// a seal that does not open (a wrong key, a swapped record), clear fields that disagree with
/// the seal, or no whole seal at all (unless unsealed records are accepted for a migration).
/// That is no session, and it is counted. The second value says whether the record should be
/// sealed again (with the current key, or whole).
pub(super) fn decode(
    cipher: Option<&Cipher>,
    sid: SessionId,
    fields: &[(String, String)],
    pttl: i64,
) -> Result<Option<(SessionRecord, bool)>, StoreError> {
    let Some(cipher) = cipher else {
        if sealed_value(fields).is_some() {
            return Ok(refused(
                sid,
                "the record is sealed but no key is configured",
            ));
        }
        return parse_record(sid, fields, pttl, None).map(|r| Some((r, false)));
    };
    let Some(sealed) = sealed_value(fields) else {
        if cipher.accepts_unsealed() {
            return parse_record(sid, fields, pttl, None).map(|r| Some((r, true)));
        }
        return Ok(refused(sid, "the record has no seal"));
    };
    let Some(opened) = cipher.open(|version| record_aad(version, sid), &sealed) else {
        return Ok(refused(sid, "the seal does not open"));
    };
    if opened.version == 1 {
        if !cipher.accepts_unsealed() {
            return Ok(refused(
                sid,
                "the record was sealed without its times by an earlier release",
            ));
        }
        let Ok(data) = serde_json::from_slice::<SealedDataV1>(&opened.plain) else {
            return Ok(refused(sid, "the seal holds no record data"));
        };
        return parse_record(sid, fields, pttl, Some((data.u, data.r))).map(|r| Some((r, true)));
    }
    let Ok(sealed) = serde_json::from_slice::<SealedWithDevice<DeviceInfo>>(&opened.plain) else {
        return Ok(refused(sid, "the seal holds no record data"));
    };
    let claims = match sealed.k.as_deref().map(CustomClaims::from_json) {
        None => CustomClaims::default(),
        Some(Ok(claims)) => claims,
        Some(Err(_)) => {
            return Ok(refused(
                sid,
                "the seal holds custom claims that do not parse",
            ));
        }
    };
    let auth = AuthWire::context(sealed.au, sealed.data.c);
    Ok(
        sealed_record(sid, fields, sealed.data, sealed.dv, claims, auth)
            .map(|r| (r, opened.old_key)),
    )
}

/// A whole-sealed record, if its clear fields agree with its seal.
fn sealed_record(
    sid: SessionId,
    fields: &[(String, String)],
    data: SealedData,
    device: DeviceInfo,
    claims: CustomClaims,
    auth: crate::session::AuthContext,
) -> Option<SessionRecord> {
    let record = SessionRecord {
        session_id: sid,
        user_id: data.u,
        roles: data.r,
        created_at: data.c,
        last_active_at: data.a,
        expires_at: data.e,
        generation: data.g,
        rotated_at: data.a,
        refresh_expires_at: data.x,
        revoked_at: None,
        purge_at: data.p,
        device,
        claims,
        auth,
    };
    let clear = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| parse_number(v))
    };
    let agrees = time_fields(&record)
        .iter()
        .all(|(name, value)| clear(name) == Some(*value));
    // This crate deletes an ended session's record; it never marks a sealed one `v`.
    if !agrees || fields.iter().any(|(k, _)| k == "v") {
        return refused(sid, "the clear fields disagree with the seal").map(|(r, _)| r);
    }
    Some(record)
}

/// A number as Redis hands it back: an integer, or a float a Lua script wrote.
fn parse_number(v: &str) -> Option<u64> {
    v.parse::<u64>()
        .ok()
        .or_else(|| v.parse::<f64>().ok().map(|f| f as u64))
}

/// A record from its clear hash fields and its key's remaining lifetime (`PTTL`, in ms), with
/// its user id and roles from `data` when a version-1 seal held them. The purge time is the
/// key's expiry, the rotation time is the last activity, and `v` is present only once revoked
/// (by older versions): fewer fields, fewer bytes per session.
fn parse_record(
    sid: SessionId,
    fields: &[(String, String)],
    pttl: i64,
    data: Option<(String, Vec<String>)>,
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
        parse_number(v).ok_or_else(|| corrupt(&format!("field {k} is not a number")))
    };
    let num = |k: &str| parse(k, text(k)?);
    let last_active_at = num("a")?;
    let expires_at = num("e")?;
    let now = crate::clock::SystemClock.now_ms();
    let (user_id, roles) = match data {
        Some(data) => data,
        None => (
            text("u")?.to_owned(),
            serde_json::from_str(text("r")?).map_err(|_| corrupt("roles are not a JSON array"))?,
        ),
    };
    let created_at = num("c")?;
    Ok(SessionRecord {
        session_id: sid,
        user_id,
        roles,
        created_at,
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
        // Records written before the metadata existed have neither field.
        device: DeviceInfo::new(
            map.get("l").copied().unwrap_or_default(),
            map.get("ip").copied(),
        ),
        claims: clear_claims(&map)?,
        auth: clear_auth(&map, created_at)?,
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
