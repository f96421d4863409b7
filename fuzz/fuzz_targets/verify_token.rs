//! `TokenCodec::verify` on arbitrary input.
//!
//! The first byte picks the mode:
//! - 0: the rest, as a string, is the whole token (structure, base64, header parsing);
//! - 1: the rest is `header JSON \n payload JSON`, signed HS256 with the codec's secret, so the
//!   fuzzer reaches the header rules and claim parsing behind the signature;
//! - 2: the rest is the payload JSON under the server's own header, signed.
//!
//! Beyond "never panics", every accepted token is checked against an independent reading of
//! RFC 9068 / RFC 8725 with `serde_json::Value`: HS256, `typ` at+jwt, the server's `kid`, no key
//! references or `crit`, every required claim of the right type, `exp` within the leeway, `nbf`
//! not in the future, and a signature that really is the secret's.
//!
//! Every input is also verified through the cache of verified tokens (the path of the layer,
//! `SessionLayer::authenticate`), twice, so the second answer can come from the cache: both must
//! equal the verdict of a codec without a cache, session field for session field, refusal for
//! refusal. Many inputs share one process, so the cache fills with what the fuzzer signed.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_jwt_session::config::TokenCacheSettings;
use tower_jwt_session::session::RESERVED_CLAIMS;
use tower_jwt_session::{Session, SessionLayer, response::AuthError, token::TokenCodec};

use common::*;

/// A codec of the default settings with a verified-token cache of `capacity` (`None`: the
/// default one).
fn codec(capacity: Option<u64>) -> TokenCodec {
    let config = config();
    let mut tokens = config.tokens().clone();
    if let Some(capacity) = capacity {
        tokens = tokens.with_verified_cache(TokenCacheSettings::default().with_capacity(capacity));
    }
    TokenCodec::with_clock(&tokens, config.rules(), clock()).expect("a codec")
}

static CODEC: LazyLock<TokenCodec> = LazyLock::new(|| codec(None));
/// The cache of verified tokens off: the fresh verdict.
static UNCACHED: LazyLock<TokenCodec> = LazyLock::new(|| codec(Some(0)));
/// The layer's path, through a small cache of verified tokens (the fuzzer reaches eviction too).
static LAYER: LazyLock<SessionLayer> = LazyLock::new(|| SessionLayer::new(codec(Some(64))));
static KID: LazyLock<String> = LazyLock::new(|| kid(SECRET));

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = match mode % 3 {
        0 => match std::str::from_utf8(rest) {
            Ok(s) => s.to_owned(),
            Err(_) => return,
        },
        1 => {
            let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            let (header, payload) = rest.split_at(split);
            sign(header, payload.get(1..).unwrap_or_default())
        }
        _ => {
            let header = format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#, *KID);
            sign(header.as_bytes(), rest)
        }
    };
    let verdict = CODEC.verify(&token);
    match &verdict {
        Ok(session) => check_accepted(&token, session),
        Err(error) => {
            let status = error.status().as_u16();
            assert!(status == 401 || status == 400, "{error:?} -> {status}");
        }
    }
    check_cached(&token, &verdict);
});

/// The cached path answers as a fresh verification does, on first sight and again.
fn check_cached(token: &str, verdict: &Result<Session, AuthError>) {
    let fresh = UNCACHED.verify(token);
    assert_eq!(summary(&fresh), summary(verdict), "two codecs disagree");
    // The layer trims the header value and takes the token after `Bearer `: compare only tokens
    // it reads as they are.
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return;
    }
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return;
    };
    let mut request = http::Request::new(());
    request.headers_mut().insert(header::AUTHORIZATION, value);
    for round in ["first", "second"] {
        let cached = ready(LAYER.authenticate(&request));
        assert_eq!(
            summary(&cached),
            summary(&fresh),
            "the {round} cached verdict differs from a fresh one"
        );
    }
}

/// Everything a verdict says, comparable.
fn summary(verdict: &Result<Session, AuthError>) -> Result<String, AuthError> {
    verdict.as_ref().map_err(|e| *e).map(|s| {
        format!(
            "{:?} {} {:?} {:?} {:?} {}",
            s.user_id(),
            s.session_id(),
            s.roles().collect::<Vec<_>>(),
            s.issued_at(),
            s.expires_at(),
            s.custom_claims().as_json()
        )
    })
}

/// Polls a future that is ready at once (no revocation check waits).
fn ready<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("verification without revocation never waits"),
    }
}

fn part(token: &str, i: usize) -> Value {
    let segment = token.split('.').nth(i).expect("three parts");
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url");
    // RFC 8725 §3.7 / RFC 7519 §7.2: the header and the claims set are UTF-8 JSON.
    assert!(
        std::str::from_utf8(&bytes).is_ok(),
        "accepted a token whose part {i} is not UTF-8: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).expect("accepted a token whose part is not JSON")
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64().filter(|n| *n >= 0.0)
}

fn check_accepted(token: &str, session: &Session) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token that is not three parts");
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    let expected = hs256(signing_input.as_bytes(), SECRET.as_bytes());
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(parts[2])
            .expect("signature base64url"),
        expected,
        "accepted a signature that is not the secret's"
    );

    // serde_json's Value refuses numbers beyond f64 (e.g. a header member `1e191800`); the
    // codec's header reading skips what it does not use, which is fine (custom claims are read
    // as JSON values, so such a payload is refused). Such a token can only be checked for its
    // signature above.
    let out_of_range = |i: usize| {
        let segment = token.split('.').nth(i).expect("three parts");
        let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url");
        matches!(serde_json::from_slice::<Value>(&bytes), Err(e) if e.to_string().starts_with("number out of range"))
    };
    if out_of_range(0) || out_of_range(1) {
        return;
    }
    let header = part(token, 0);
    assert_eq!(header["alg"], "HS256", "{header}");
    let typ = header["typ"].as_str().expect("typ").to_ascii_lowercase();
    assert!(typ == "at+jwt" || typ == "application/at+jwt", "{header}");
    assert_eq!(header["kid"].as_str(), Some(KID.as_str()), "{header}");
    for forbidden in ["jku", "jwk", "x5u", "x5c", "crit"] {
        assert!(
            header.get(forbidden).is_none_or(Value::is_null),
            "accepted a header with {forbidden}: {header}"
        );
    }

    let claims = part(token, 1);
    let sub = claims["sub"].as_str().expect("sub is a string");
    assert!(!sub.is_empty());
    assert_eq!(session.user_id(), sub);
    let sid = claims["sid"].as_str().expect("sid is a string");
    assert_eq!(sid.len(), 22);
    assert_eq!(session.session_id().to_string(), sid);
    assert!(
        claims["jti"].as_str().is_some_and(|j| !j.is_empty()),
        "{claims}"
    );
    assert!(number(&claims["iat"]).is_some(), "{claims}");
    let exp = number(&claims["exp"]).expect("exp is a NumericDate");
    assert!(
        exp + LEEWAY as f64 > NOW as f64,
        "accepted an expired token: {claims}"
    );
    if let Some(nbf) = claims.get("nbf").filter(|v| !v.is_null()) {
        let nbf = number(nbf).expect("nbf is a NumericDate");
        assert!(
            nbf.floor() <= (NOW + LEEWAY) as f64,
            "accepted a token not valid yet: {claims}"
        );
    }
    let roles: Vec<&str> = match claims.get("roles") {
        None | Some(Value::Null) => Vec::new(),
        Some(list) => list
            .as_array()
            .expect("roles is an array")
            .iter()
            .map(|r| r.as_str().expect("roles are strings"))
            .collect(),
    };
    assert_eq!(session.roles().collect::<Vec<_>>(), roles);
    // Every other member is a custom claim, carried as it was; reserved names never are.
    let custom: serde_json::Map<String, Value> = claims
        .as_object()
        .expect("the claims are an object")
        .iter()
        .filter(|(name, _)| !RESERVED_CLAIMS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let carried: Value =
        serde_json::from_str(session.custom_claims().as_json()).expect("custom claims are JSON");
    assert_eq!(
        carried,
        Value::Object(custom),
        "custom claims differ: {claims}"
    );
    // Session::expires_at clamps an exp beyond 9999-12-31 instead of overflowing SystemTime.
    let _ = session.expires_at();
}
