//! Tokens made by hand, signed with the server's own secret.

use crate::adversarial::*;

pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The `kid` the server gives an HS256 key: base64url of the first 9 bytes of
/// SHA-256("tower-jwt-session kid v1\0" || "HS256" || "\0" || secret).
pub(crate) fn kid(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tower-jwt-session kid v1\0");
    h.update(b"HS256");
    h.update(b"\0");
    h.update(secret.as_bytes());
    b64(&h.finalize()[..9])
}

pub(crate) fn hs256(message: &str, key: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message.as_bytes());
    b64(mac.finalize().into_bytes())
}

/// A compact JWS of raw header and payload JSON text, HS256-signed with `key`.
pub(crate) fn jws_raw(header: &str, payload: &str, key: &[u8]) -> String {
    let signed = format!("{}.{}", b64(header), b64(payload));
    let signature = hs256(&signed, key);
    format!("{signed}.{signature}")
}

/// As [`jws_raw`], for header and payload bytes that need not be UTF-8.
pub(crate) fn jws_bytes(header: &[u8], payload: &[u8], key: &[u8]) -> String {
    let signed = format!("{}.{}", b64(header), b64(payload));
    let signature = hs256(&signed, key);
    format!("{signed}.{signature}")
}

/// A compact JWS of `header` and `claims`, HS256-signed with the server's secret.
pub(crate) fn forge(header: &Value, claims: &Value) -> String {
    jws_raw(&header.to_string(), &claims.to_string(), SECRET.as_bytes())
}

/// The header the server itself writes.
pub(crate) fn good_header() -> Value {
    json!({"alg": "HS256", "typ": "at+jwt", "kid": kid(SECRET)})
}

pub(crate) fn with(mut value: Value, key: &str, v: Value) -> Value {
    value[key] = v;
    value
}

pub(crate) fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

/// The decoded JSON of part `index` (0 header, 1 payload) of a compact JWS.
pub(crate) fn part(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Logs `user` in and returns (access token, refresh token, the access token's claims).
pub(crate) async fn session(s: &impl Harness, user: &str) -> (String, String, Value) {
    let data = s.login(user).await;
    let access = data["accessToken"].as_str().unwrap().to_owned();
    let refresh = data["refreshToken"].as_str().unwrap().to_owned();
    let claims = part(&access, 1);
    (access, refresh, claims)
}
