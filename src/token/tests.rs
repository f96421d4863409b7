use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::*;
use crate::clock::ManualClock;
use crate::config::{Algorithm as Alg, ConfigError, key_id};
use crate::error::AuthError;
use crate::session::SessionId;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const OLD_SECRET: &str = "an-older-secret-that-was-rotated-out";
const NOW_MS: u64 = 1_800_000_000_000;
const NOW: u64 = NOW_MS / 1000;

/// `secs` seconds after the epoch.
fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn config() -> TokenSettings {
    TokenSettings::new(SECRET).unwrap()
}

fn codec_with(tokens: TokenSettings) -> (TokenCodec, ManualClock) {
    let clock = ManualClock::new(NOW_MS);
    let rules = SessionRules::default();
    (
        TokenCodec::with_clock(&tokens, &rules, Arc::new(clock.clone())).unwrap(),
        clock,
    )
}

fn plain() -> (TokenCodec, ManualClock) {
    codec_with(config())
}

fn kid(secret: &str) -> String {
    key_id(Alg::HS256, secret.as_bytes())
}

fn claims() -> Value {
    json!({
        "sub": "alice", "sid": SessionId::random().to_string(), "jti": "j1",
        "iat": NOW, "exp": NOW + 600, "roles": ["user"],
    })
}

/// Signs `claims` with jsonwebtoken as a foreign issuer would.
fn sign(
    alg: Algorithm,
    kid: Option<String>,
    typ: Option<&str>,
    claims: &Value,
    key: &[u8],
) -> String {
    let mut header = Header::new(alg);
    header.kid = kid;
    header.typ = typ.map(str::to_owned);
    encode(&header, claims, &EncodingKey::from_secret(key).unwrap()).unwrap()
}

fn good(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        Some(kid(SECRET)),
        Some("at+jwt"),
        claims,
        SECRET.as_bytes(),
    )
}

/// The base64url HS256 signature of `message` under [`SECRET`], as a foreign issuer computes it.
fn hs256(message: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(message);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Builds a token from raw header and payload JSON, signed with the HS256 secret.
fn raw(header: &str, payload: &str) -> String {
    let mut t = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = hs256(t.as_bytes());
    t.push('.');
    t.push_str(&sig);
    t
}

#[test]
fn issued_tokens_verify_and_carry_the_rfc9068_header_and_claims() {
    let (codec, _) = codec_with(config().with_issuer("https://iss").with_audience("api"));
    let sid = SessionId::random();
    let issued = codec.issue("alice", sid, &["user".into(), "admin".into()]);
    assert_eq!(issued.expires_at, at(NOW + 7200));
    let session = codec.verify(&issued.token).unwrap();
    assert_eq!(session.user_id(), "alice");
    assert_eq!(session.session_id(), sid);
    assert_eq!(session.roles().collect::<Vec<_>>(), ["user", "admin"]);
    assert_eq!(session.expires_at(), at(NOW + 7200));

    let header = jsonwebtoken::decode_header(&issued.token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid, Some(kid(SECRET)));
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(issued.token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    for claim in ["sub", "sid", "jti", "iat", "exp", "roles", "iss", "aud"] {
        assert!(payload.get(claim).is_some(), "missing {claim}");
    }
    // Two tokens never share a jti.
    let again = codec.issue("alice", sid, &[]);
    let jti = |t: &str| {
        let p: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(t.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        p["jti"].as_str().unwrap().to_owned()
    };
    assert_ne!(jti(&issued.token), jti(&again.token));
}

#[test]
fn tokens_from_another_jwt_library_verify() {
    let (codec, _) = plain();
    assert!(codec.verify(&good(&claims())).is_ok());
    let typ_mime = sign(
        Algorithm::HS256,
        Some(kid(SECRET)),
        Some("application/at+JWT"),
        &claims(),
        SECRET.as_bytes(),
    );
    assert!(codec.verify(&typ_mime).is_ok());
}

#[test]
fn alg_none_in_every_spelling_is_refused() {
    let (codec, _) = plain();
    let payload = claims().to_string();
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let header = format!(
            r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{}"}}"#,
            kid(SECRET)
        );
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(&payload)
        );
        assert!(codec.verify(&unsigned).is_err(), "{alg} unsigned");
        let signed = raw(&header, &payload);
        assert_eq!(
            codec.verify(&signed).unwrap_err(),
            AuthError::UnsupportedAlgorithm,
            "{alg}"
        );
    }
}

#[test]
fn algorithms_outside_the_allow_list_are_refused() {
    let (codec, _) = plain();
    let hs512 = sign(
        Algorithm::HS512,
        Some(kid(SECRET)),
        Some("at+jwt"),
        &claims(),
        SECRET.as_bytes(),
    );
    assert_eq!(
        codec.verify(&hs512).unwrap_err(),
        AuthError::UnsupportedAlgorithm
    );
    // Listed, but the key is bound to HS256.
    let (wide, _) = codec_with(config().with_allowed_algorithms([Alg::HS256, Alg::HS512]));
    assert_eq!(
        wide.verify(&hs512).unwrap_err(),
        AuthError::UnsupportedAlgorithm
    );
}

#[test]
fn wrong_key_and_tampering_are_refused() {
    let (codec, _) = plain();
    let forged = sign(
        Algorithm::HS256,
        Some(kid(SECRET)),
        Some("at+jwt"),
        &claims(),
        b"another-secret-another-secret-!!",
    );
    assert_eq!(
        codec.verify(&forged).unwrap_err(),
        AuthError::InvalidSignature
    );

    let token = good(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    assert_eq!(
        codec.verify(&tampered).unwrap_err(),
        AuthError::InvalidSignature
    );

    // Splicing the signature of one token onto another.
    let other = good(&claims());
    let spliced = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        other.split('.').nth(2).unwrap()
    );
    assert_eq!(
        codec.verify(&spliced).unwrap_err(),
        AuthError::InvalidSignature
    );

    // A non-canonical base64 signature (trailing bits changed) does not verify either.
    let mut sig = parts[2].to_owned();
    let last = sig.pop().unwrap();
    sig.push(if last == 'A' { 'B' } else { 'A' });
    assert!(
        codec
            .verify(&format!("{}.{}.{}", parts[0], parts[1], sig))
            .is_err()
    );
}

#[test]
fn wrong_typ_is_refused() {
    let (codec, _) = plain();
    for typ in [Some("JWT"), Some("refresh+jwt"), None] {
        let t = sign(
            Algorithm::HS256,
            Some(kid(SECRET)),
            typ,
            &claims(),
            SECRET.as_bytes(),
        );
        assert_eq!(
            codec.verify(&t).unwrap_err(),
            AuthError::InvalidType,
            "{typ:?}"
        );
    }
}

#[test]
fn unknown_or_missing_kid_is_refused_and_listed_previous_keys_are_accepted() {
    let (codec, _) = plain();
    let unknown = sign(
        Algorithm::HS256,
        Some("nope".into()),
        Some("at+jwt"),
        &claims(),
        SECRET.as_bytes(),
    );
    assert_eq!(codec.verify(&unknown).unwrap_err(), AuthError::UnknownKey);
    let missing = sign(
        Algorithm::HS256,
        None,
        Some("at+jwt"),
        &claims(),
        SECRET.as_bytes(),
    );
    assert_eq!(codec.verify(&missing).unwrap_err(), AuthError::UnknownKey);

    let old = sign(
        Algorithm::HS256,
        Some(kid(OLD_SECRET)),
        Some("at+jwt"),
        &claims(),
        OLD_SECRET.as_bytes(),
    );
    assert_eq!(codec.verify(&old).unwrap_err(), AuthError::UnknownKey);
    let (rotated, _) = codec_with(config().with_previous_secret(OLD_SECRET).unwrap());
    assert!(rotated.verify(&old).is_ok());
    // The previous key verifies only its own tokens.
    let mislabelled = sign(
        Algorithm::HS256,
        Some(kid(OLD_SECRET)),
        Some("at+jwt"),
        &claims(),
        SECRET.as_bytes(),
    );
    assert_eq!(
        rotated.verify(&mislabelled).unwrap_err(),
        AuthError::InvalidSignature
    );
    // New tokens are signed with the current key.
    let fresh = rotated.issue("bob", SessionId::random(), &[]);
    assert_eq!(
        jsonwebtoken::decode_header(&fresh.token).unwrap().kid,
        Some(kid(SECRET))
    );
}

#[test]
fn missing_and_malformed_claims_are_refused() {
    let (codec, _) = plain();
    for claim in ["exp", "iat", "sub", "sid", "jti"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(claim);
        assert_eq!(
            codec.verify(&good(&c)).unwrap_err(),
            AuthError::MissingClaim(claim),
            "{claim}"
        );
    }
    for (claim, value) in [
        ("exp", json!("tomorrow")),
        ("iat", json!(-5)),
        ("sid", json!("short")),
        ("sub", json!("")),
        ("roles", json!("admin")),
        ("sub", json!(42)),
    ] {
        let mut c = claims();
        c[claim] = value;
        assert!(codec.verify(&good(&c)).is_err(), "{claim}");
    }
    let mut c = claims();
    c["exp"] = json!((NOW + 600) as f64 + 0.5);
    assert!(codec.verify(&good(&c)).is_ok(), "fractional NumericDate");
}

#[test]
fn time_rules_apply_with_leeway() {
    let (codec, clock) = plain();
    let mut c = claims();
    c["exp"] = json!(NOW + 10);
    let t = good(&c);
    assert!(codec.verify(&t).is_ok());
    clock.set((NOW + 10) * 1000);
    assert!(
        codec.verify(&t).is_ok(),
        "exp reached, inside the 30 s leeway"
    );
    clock.set((NOW + 39) * 1000);
    assert!(codec.verify(&t).is_ok());
    clock.set((NOW + 40) * 1000);
    assert_eq!(codec.verify(&t).unwrap_err(), AuthError::Expired);

    let (strict, clock) = codec_with(config().with_leeway(Duration::ZERO));
    clock.set((NOW + 10) * 1000);
    assert_eq!(
        strict.verify(&t).unwrap_err(),
        AuthError::Expired,
        "exp exactly now"
    );

    let (codec, _) = plain();
    let mut c = claims();
    c["nbf"] = json!(NOW + 31);
    assert_eq!(codec.verify(&good(&c)).unwrap_err(), AuthError::NotYetValid);
    c["nbf"] = json!(NOW + 30);
    assert!(codec.verify(&good(&c)).is_ok());
}

#[test]
fn issuer_and_audience_are_required_when_configured() {
    let (codec, _) = codec_with(config().with_issuer("https://iss").with_audience("api"));
    let mut c = claims();
    assert_eq!(
        codec.verify(&good(&c)).unwrap_err(),
        AuthError::InvalidIssuer
    );
    c["iss"] = json!("https://evil");
    assert_eq!(
        codec.verify(&good(&c)).unwrap_err(),
        AuthError::InvalidIssuer
    );
    c["iss"] = json!("https://iss");
    assert_eq!(
        codec.verify(&good(&c)).unwrap_err(),
        AuthError::InvalidAudience
    );
    c["aud"] = json!("other");
    assert_eq!(
        codec.verify(&good(&c)).unwrap_err(),
        AuthError::InvalidAudience
    );
    c["aud"] = json!(["other", "api"]);
    assert!(codec.verify(&good(&c)).is_ok());
    c["aud"] = json!("api");
    assert!(codec.verify(&good(&c)).is_ok());
}

#[test]
fn key_references_and_crit_are_refused() {
    let (codec, _) = plain();
    let payload = claims().to_string();
    for extra in [
        r#""jku":"https://evil/jwks""#,
        r#""jwk":{"kty":"oct","k":"AAAA"}"#,
        r#""x5u":"https://evil/cert""#,
        r#""x5c":["MIIB"]"#,
        r#""crit":["exp"]"#,
    ] {
        let header = format!(
            r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}",{extra}}}"#,
            kid(SECRET)
        );
        assert_eq!(
            codec.verify(&raw(&header, &payload)).unwrap_err(),
            AuthError::ForbiddenHeader,
            "{extra}"
        );
    }
}

#[test]
fn malformed_input_never_panics() {
    let (codec, _) = plain();
    let long = "a".repeat(MAX_TOKEN_LEN + 1);
    let dup = raw(
        &format!(
            r#"{{"alg":"HS256","alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
            kid(SECRET)
        ),
        &claims().to_string(),
    );
    let dup_claim = raw(
        &format!(
            r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
            kid(SECRET)
        ),
        r#"{"sub":"a","sub":"b"}"#,
    );
    let deep = raw(
        &format!(
            r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
            kid(SECRET)
        ),
        &format!("{}1{}", "[".repeat(5000), "]".repeat(5000)),
    );
    for bad in [
        "",
        ".",
        "..",
        "a.b.c",
        "a.b.c.d",
        "😀.😀.😀",
        "eyJ.eyJ.",
        &long,
        &dup,
        &dup_claim,
        &deep,
        "=.=.=",
    ] {
        assert!(codec.verify(bad).is_err(), "{bad:.40}");
    }
}

#[test]
fn asymmetric_algorithms_work_and_confusion_is_refused() {
    let rsa_private = include_bytes!("../../tests/keys/rsa_private.pem");
    let rsa_public = include_bytes!("../../tests/keys/rsa_public.pem");
    for (alg, private, public) in [
        (Alg::RS256, &rsa_private[..], &rsa_public[..]),
        (
            Alg::ES256,
            include_bytes!("../../tests/keys/ec_private.pem"),
            include_bytes!("../../tests/keys/ec_public.pem"),
        ),
        (
            Alg::EdDSA,
            include_bytes!("../../tests/keys/ed_private.pem"),
            include_bytes!("../../tests/keys/ed_public.pem"),
        ),
    ] {
        let (codec, _) = codec_with(config().with_signing_key_pem(alg, private, public).unwrap());
        let issued = codec.issue("alice", SessionId::random(), &[]);
        assert_eq!(
            jsonwebtoken::decode_header(&issued.token).unwrap().alg,
            alg.to_jwt()
        );
        assert_eq!(
            codec.verify(&issued.token).unwrap().user_id(),
            "alice",
            "{alg:?}"
        );
        // An HMAC token is not accepted once an asymmetric key signs.
        assert_eq!(
            codec.verify(&good(&claims())).unwrap_err(),
            AuthError::UnsupportedAlgorithm
        );
    }

    // Algorithm confusion: an HS256 token keyed with the RSA public key, naming the RSA kid.
    let (codec, _) = codec_with(
        config()
            .with_signing_key_pem(Alg::RS256, rsa_private, rsa_public)
            .unwrap()
            .with_allowed_algorithms([Alg::RS256, Alg::HS256]),
    );
    let rsa_kid =
        jsonwebtoken::decode_header(&codec.issue("alice", SessionId::random(), &[]).token)
            .unwrap()
            .kid;
    let confused = sign(
        Algorithm::HS256,
        rsa_kid,
        Some("at+jwt"),
        &claims(),
        rsa_public,
    );
    assert_eq!(
        codec.verify(&confused).unwrap_err(),
        AuthError::UnsupportedAlgorithm
    );

    assert!(matches!(
        config().with_signing_key_pem(Alg::RS256, b"not a pem", rsa_public),
        Err(ConfigError::Key { .. })
    ));
    assert!(
        config()
            .with_signing_key_pem(Alg::HS256, rsa_private, rsa_public)
            .is_err()
    );
}

#[test]
fn access_tokens_are_capped_by_the_session_end() {
    let (codec, _) = plain();
    let issued = codec.issue_until(
        "alice",
        SessionId::random(),
        &[],
        at(NOW + 60) + Duration::from_millis(999),
    );
    assert_eq!(issued.expires_at, at(NOW + 60));
}

#[test]
fn debug_output_has_no_key_material() {
    let (codec, _) = plain();
    let text = format!("{codec:?}");
    assert!(!text.contains(SECRET));
    let issued = codec.issue("alice", SessionId::random(), &[]);
    assert!(!format!("{issued:?}").contains(&issued.token));
}

/// Inputs a lenient JWT library reads one way and this codec must refuse: duplicate members
/// (first-wins and last-wins parsers disagree), an `iss` array, key references hidden behind
/// `crit: ["b64"]`, a mistyped `aud` nobody asked for, and JSON that is not UTF-8 in members no
/// one reads.
#[test]
fn parser_differentials_are_refused() {
    let (codec, _) = plain();
    let k = kid(SECRET);
    let payload = claims().to_string();
    let header = format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{k}"}}"#);
    assert!(codec.verify(&raw(&header, &payload)).is_ok(), "control");

    let headers = [
        format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"nope","kid":"{k}"}}"#),
        format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{k}","kid":"nope"}}"#),
        format!(r#"{{"alg":"HS256","typ":"JWT","typ":"at+jwt","kid":"{k}"}}"#),
        format!(r#"{{"alg":"none","alg":"HS256","typ":"at+jwt","kid":"{k}"}}"#),
        format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{k}","crit":["b64"],"b64":true}}"#),
        format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{k}","x5c":[]}}"#),
    ];
    for h in &headers {
        assert!(codec.verify(&raw(h, &payload)).is_err(), "{h}");
    }

    let body = |extra: &str| payload.replacen('{', &format!("{{{extra},"), 1);
    for p in [
        body(&format!(r#""exp":{}"#, NOW - 3600)),
        body(r#""sub":"admin""#),
        body(r#""roles":["admin"]"#),
        body(r#""sid":"AAAAAAAAAAAAAAAAAAAAAA""#),
        body(r#""tenant":"a","tenant":"b""#),
        body(r#""sub":null"#),
        body(&format!(r#""exp":"{}""#, NOW + 600)),
        body(r#""aud":5"#),
        body(r#""aud":{"api":true}"#),
        body(r#""iss":["a","b"]"#),
    ] {
        assert!(codec.verify(&raw(&header, &p)).is_err(), "{p}");
    }
    let (with_iss, _) = codec_with(config().with_issuer("https://iss"));
    let p = body(r#""iss":["https://iss","https://evil"]"#);
    assert!(with_iss.verify(&raw(&header, &p)).is_err(), "{p}");

    // Not UTF-8, in a member no one reads.
    let signed = |h: &[u8], p: &[u8]| {
        let mut t = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(h),
            URL_SAFE_NO_PAD.encode(p)
        );
        let sig = hs256(t.as_bytes());
        t.push('.');
        t.push_str(&sig);
        t
    };
    let bad_payload = [b"{\"x\":\"\xff\",".as_slice(), &payload.as_bytes()[1..]].concat();
    let bad_header = [b"{\"x\":\"\xfe\",".as_slice(), &header.as_bytes()[1..]].concat();
    assert!(
        codec
            .verify(&signed(header.as_bytes(), &bad_payload))
            .is_err()
    );
    assert!(
        codec
            .verify(&signed(&bad_header, payload.as_bytes()))
            .is_err()
    );
}

/// What a strict reading still accepts: `typ` in any case, a NumericDate in exponent or
/// fractional form, an `exp` as large as a u64, `aud` unchecked when none is configured.
#[test]
fn lenient_but_valid_forms_are_accepted() {
    let (codec, _) = plain();
    let k = kid(SECRET);
    for typ in ["AT+JWT", "Application/At+Jwt"] {
        let h = format!(r#"{{"alg":"HS256","typ":"{typ}","kid":"{k}"}}"#);
        assert!(
            codec.verify(&raw(&h, &claims().to_string())).is_ok(),
            "{typ}"
        );
    }
    for exp in [json!(1.8000006e9), json!(u64::MAX), json!(1.8e19)] {
        let mut c = claims();
        c["exp"] = exp.clone();
        assert!(codec.verify(&good(&c)).is_ok(), "{exp}");
    }
    let mut c = claims();
    c["aud"] = json!(["someone-else"]);
    c["nbf"] = json!(NOW as f64 - 0.5);
    assert!(codec.verify(&good(&c)).is_ok());
}

/// `decode` reads no clock, so a verdict cached from it holds at any time; `check_time` applies
/// `exp` and `nbf` with the leeway on every call.
#[test]
fn decode_leaves_the_time_window_to_check_time() {
    let (codec, clock) = plain();
    let mut c = claims();
    c["exp"] = json!(NOW - 3600);
    c["nbf"] = json!(NOW + 3600);
    let t = good(&c);
    let decoded = codec.decode(t.as_bytes()).expect("decode ignores time");
    assert_eq!(decoded.not_before_ms, Some((NOW + 3600) * 1000));
    assert_eq!(
        codec.check_time(&decoded, NOW_MS).unwrap_err(),
        AuthError::Expired
    );
    let mut c = claims();
    c["nbf"] = json!(NOW + 3600);
    c["exp"] = json!(NOW + 7200);
    let decoded = codec.decode(good(&c).as_bytes()).unwrap();
    assert_eq!(
        codec.check_time(&decoded, NOW_MS).unwrap_err(),
        AuthError::NotYetValid
    );
    clock.set((NOW + 3570) * 1000);
    assert!(codec.check_time(&decoded, clock.now_ms()).is_ok());
}

/// A public key's `kid` is its RFC 7638 JWK thumbprint (SHA-256, base64url), the same whatever
/// the PEM's line breaks; the values were computed independently (Python `cryptography`).
#[test]
fn public_key_kids_are_rfc7638_thumbprints() {
    for (alg, private, public, thumbprint) in [
        (
            Alg::RS256,
            &include_bytes!("../../tests/keys/rsa_private.pem")[..],
            &include_bytes!("../../tests/keys/rsa_public.pem")[..],
            "5vcHV-bd4uk0wisdo4FuHwbZg6of2AYEVX7V4S3Urkk",
        ),
        (
            Alg::ES256,
            include_bytes!("../../tests/keys/ec_private.pem"),
            include_bytes!("../../tests/keys/ec_public.pem"),
            "oRyMdDVk33yEBhSh9N527lcskc-8b076KCu7g24pznA",
        ),
        (
            Alg::EdDSA,
            include_bytes!("../../tests/keys/ed_private.pem"),
            include_bytes!("../../tests/keys/ed_public.pem"),
            "x10CxuCFTPcM4ObjX1wbYDbk3PKSz2kD6ORlccs94kg",
        ),
    ] {
        let (codec, _) = codec_with(config().with_signing_key_pem(alg, private, public).unwrap());
        let issued = codec.issue("alice", SessionId::random(), &[]);
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(thumbprint), "{alg:?}");
        // The same key as a verification key, its PEM re-wrapped: the same kid.
        let rewrapped = std::str::from_utf8(public).unwrap().replace('\n', "\r\n");
        let (verifier, _) = codec_with(
            config()
                .with_verification_key_pem(alg, rewrapped.as_bytes())
                .unwrap()
                .with_allowed_algorithms([alg]),
        );
        assert_eq!(
            verifier.verify(&issued.token).unwrap().user_id(),
            "alice",
            "{alg:?}"
        );
    }
}

fn custom(value: Value) -> crate::session::CustomClaims {
    crate::session::CustomClaims::new(&value).unwrap()
}

#[test]
fn custom_claims_ride_beside_the_registered_ones_and_come_back() {
    let (codec, _) = plain();
    let claims = custom(json!({ "tenant": "acme", "perms": ["read"], "n": 7 }));
    let sid = SessionId::random();
    let issued = codec
        .issue_with_claims("alice", sid, &["user".to_owned()], &claims)
        .unwrap();
    let payload = issued.token.split('.').nth(1).unwrap();
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(payload["tenant"], "acme");
    assert_eq!(payload["sub"], "alice");
    assert_eq!(payload["roles"], json!(["user"]));
    let session = codec.verify(&issued.token).unwrap();
    assert_eq!(session.custom_claims(), &claims);
    assert_eq!(session.claims::<Value>().unwrap()["perms"], json!(["read"]));
    assert_eq!(session.session_id(), sid);
    // Without claims the payload has none, and the session reads the empty object.
    let bare = codec.verify(&codec.issue("bob", sid, &[]).token).unwrap();
    assert!(bare.custom_claims().is_empty());
    assert_eq!(bare.claims::<Value>().unwrap(), json!({}));
    // Through the cache of verified tokens: the second sight carries the same claims.
    assert_eq!(
        codec.verify(&issued.token).unwrap().custom_claims(),
        &claims
    );
}

#[test]
fn foreign_tokens_with_custom_claims_verify_and_registered_claims_stay_strict() {
    let (codec, _) = plain();
    let mut with_custom = claims();
    with_custom["org"] = json!({ "id": 3 });
    with_custom["typ"] = json!("Bearer");
    let session = codec.verify(&good(&with_custom)).unwrap();
    // `typ` is a reserved name: not a custom claim, dropped.
    assert_eq!(session.custom_claims().as_json(), r#"{"org":{"id":3}}"#);
    let mut bad_exp = with_custom.clone();
    bad_exp["exp"] = json!("soon");
    assert!(codec.verify(&good(&bad_exp)).is_err());
    let mut bad_roles = with_custom.clone();
    bad_roles["roles"] = json!("admin");
    assert!(codec.verify(&good(&bad_roles)).is_err());
    let header = format!(
        r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
        kid(SECRET)
    );
    let base = claims();
    let body = |extra: &str| {
        format!(
            r#"{{"sub":"alice","sid":"{}","jti":"j","iat":{NOW},"exp":{}{extra}}}"#,
            base["sid"].as_str().unwrap(),
            NOW + 600
        )
    };
    assert!(codec.verify(&raw(&header, &body(r#","org":1"#))).is_ok());
    for duplicate in [r#","org":1,"org":2"#, r#","sub":"mallory""#] {
        assert!(
            matches!(
                codec.verify(&raw(&header, &body(duplicate))),
                Err(AuthError::Malformed(_))
            ),
            "{duplicate}"
        );
    }
}

#[test]
fn claims_that_would_pass_the_token_limit_are_refused_exactly_at_it() {
    let rsa = (
        include_bytes!("../../tests/keys/rsa_private.pem"),
        include_bytes!("../../tests/keys/rsa_public.pem"),
    );
    for config in [
        config()
            .with_issuer("https://issuer.example")
            .with_audience("api"),
        config()
            .with_signing_key_pem(Alg::RS256, rsa.0, rsa.1)
            .unwrap(),
    ] {
        let (codec, _) = codec_with(config);
        let roles = vec!["user".to_owned(), "admin".to_owned()];
        let pad = |n: usize| custom(json!({ "pad": "x".repeat(n) }));
        let fits = |n: usize| codec.check_fits("alice", &roles, &pad(n)).is_ok();
        let (mut lo, mut hi) = (0, MAX_TOKEN_LEN);
        while lo + 1 < hi {
            let mid = (lo + hi) / 2;
            if fits(mid) { lo = mid } else { hi = mid }
        }
        let issued = codec
            .issue_with_claims("alice", SessionId::random(), &roles, &pad(lo))
            .unwrap();
        assert!(issued.token.len() <= MAX_TOKEN_LEN);
        assert!(
            issued.token.len() > MAX_TOKEN_LEN - 64,
            "{}",
            issued.token.len()
        );
        assert_eq!(
            codec.verify(&issued.token).unwrap().custom_claims(),
            &pad(lo)
        );
        match codec.issue_with_claims("alice", SessionId::random(), &roles, &pad(hi)) {
            Err(crate::session::ClaimsError::TooLarge {
                claims_bytes,
                token_bytes,
                max,
            }) => {
                assert_eq!(claims_bytes, pad(hi).as_json().len());
                assert!(token_bytes > max && max == MAX_TOKEN_LEN);
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A custom claim is carried as it was: a number whose shortest form reads back only through a
/// correctly rounded parser (`118910e0000031` is written back as `1.1891e36`) is the same
/// number afterwards. Found by the `verify_token` fuzz target.
#[test]
fn custom_claim_numbers_are_carried_exactly() {
    let (codec, _) = plain();
    let header = format!(
        r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
        kid(SECRET)
    );
    for number in [
        "118910e0000031",
        "0.1",
        "1e300",
        "-2.2250738585072014e-308",
        "123456789.987654321",
    ] {
        let payload = claims()
            .to_string()
            .replacen('{', &format!(r#"{{"n":{number},"#), 1);
        let session = codec.verify(&raw(&header, &payload)).unwrap();
        let carried: Value = serde_json::from_str(session.custom_claims().as_json()).unwrap();
        let sent: Value = serde_json::from_str(&format!(r#"{{"n":{number}}}"#)).unwrap();
        assert_eq!(carried, sent, "{number}");
    }
}

/// The signature of `token` with `s` replaced by `n - s`: the other valid ECDSA signature of the
/// same message under the same key.
fn high_s_twin(alg: Alg, token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let twin = match alg {
        Alg::ES256 => {
            let sig = p256::ecdsa::Signature::from_slice(&bytes).unwrap();
            let (r, s) = sig.split_scalars();
            p256::ecdsa::Signature::from_scalars(r, -s)
                .unwrap()
                .to_vec()
        }
        Alg::ES384 => {
            let sig = p384::ecdsa::Signature::from_slice(&bytes).unwrap();
            let (r, s) = sig.split_scalars();
            p384::ecdsa::Signature::from_scalars(r, -s)
                .unwrap()
                .to_vec()
        }
        _ => unreachable!(),
    };
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(twin))
}

fn is_high_s(alg: Alg, token: &str) -> bool {
    use p256::elliptic_curve::scalar::IsHigh as _;
    let bytes = URL_SAFE_NO_PAD
        .decode(token.rsplit_once('.').unwrap().1)
        .unwrap();
    match alg {
        Alg::ES256 => p256::ecdsa::Signature::from_slice(&bytes)
            .unwrap()
            .s()
            .is_high()
            .into(),
        Alg::ES384 => p384::ecdsa::Signature::from_slice(&bytes)
            .unwrap()
            .s()
            .is_high()
            .into(),
        _ => unreachable!(),
    }
}

/// ECDSA signatures are malleable: `(r, n - s)` verifies wherever `(r, s)` does. A token has one
/// valid form: the issued one has a low S, and its high-S twin is refused (401) without taking
/// a place in the cache of verified tokens; the original still verifies.
#[test]
fn the_high_s_twin_of_an_ecdsa_token_is_refused() {
    for (alg, private) in [
        (
            Alg::ES256,
            &include_bytes!("../../tests/keys/ec_private.pem")[..],
        ),
        (
            Alg::ES384,
            &include_bytes!("../../tests/keys/ec384_private.pem")[..],
        ),
    ] {
        let (codec, _) = codec_with(config().with_private_key_pem(alg, private).unwrap());
        // p256 and p384 sign with a high S half of the time: enough tokens to meet both.
        for n in 0..32 {
            let token = codec.issue("alice", SessionId::random(), &[]).token;
            assert!(!is_high_s(alg, &token), "{alg}: token {n} has a high S");
            let twin = high_s_twin(alg, &token);
            assert!(is_high_s(alg, &twin));
            assert_ne!(twin, token);
            let before = codec.cached_tokens();
            let err = codec.verify(&twin).unwrap_err();
            assert_eq!(err, AuthError::InvalidSignature, "{alg}: token {n}");
            assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED);
            assert_eq!(codec.cached_tokens(), before, "{alg}: the twin was cached");
            assert_eq!(codec.verify(&token).unwrap().user_id(), "alice");
            // Refused again once the original is cached.
            assert_eq!(
                codec.verify(&twin).unwrap_err(),
                AuthError::InvalidSignature
            );
        }
    }
}

/// A foreign issuer's high-S ES256 signature (jsonwebtoken signs with either form) is refused,
/// its low-S form accepted: the rule is on the signature, not on who made it.
#[test]
fn a_high_s_signature_is_refused_whoever_made_it() {
    let private = include_bytes!("../../tests/keys/ec_private.pem");
    let (codec, _) = codec_with(config().with_private_key_pem(Alg::ES256, private).unwrap());
    let kid = jsonwebtoken::decode_header(&codec.issue("a", SessionId::random(), &[]).token)
        .unwrap()
        .kid;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid;
    header.typ = Some("at+jwt".to_owned());
    let key = EncodingKey::from_ec_pem(private).unwrap();
    let (mut high, mut low) = (0, 0);
    for _ in 0..32 {
        let token = encode(&header, &claims(), &key).unwrap();
        let (high_form, low_form) = if is_high_s(Alg::ES256, &token) {
            (token.clone(), high_s_twin(Alg::ES256, &token))
        } else {
            (high_s_twin(Alg::ES256, &token), token.clone())
        };
        high += usize::from(token == high_form);
        low += usize::from(token == low_form);
        assert_eq!(
            codec.verify(&high_form).unwrap_err(),
            AuthError::InvalidSignature
        );
        assert!(codec.verify(&low_form).is_ok());
    }
    assert!(high > 0 && low > 0, "jsonwebtoken signs with both forms");
}
