//! Issuing and verifying access tokens (RFC 9068 / RFC 8725).
//!
//! Tokens carry `typ: at+jwt` and a `kid`; each key is bound to one algorithm and the `alg` of a
//! presented token must be both on the allow-list and the algorithm of the key its `kid` names,
//! which rules out `alg: none` and algorithm confusion. `jku`, `jwk`, `x5u` and `x5c` are never
//! followed: a token carrying them is refused.
//!
//! HMAC verification, the hot path, runs on pre-keyed HMAC states, decodes into stack buffers and
//! parses the JSON with borrowed strings, so verifying a token allocates only the one buffer of
//! the resulting [`Session`]. Asymmetric algorithms go through `jsonwebtoken`'s crypto.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sha2::{Sha256, Sha384, Sha512};

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{ConfigError, SessionConfig, key_id};
use crate::error::AuthError;
use crate::session::{Session, SessionId, random_bytes};

/// Longest token accepted, in bytes. Larger ones are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
const STACK_HEADER: usize = 512;
const STACK_PAYLOAD: usize = 1536;
const MAX_SIGNATURE: usize = 512;

#[derive(Clone)]
enum HmacKey {
    S256(Hmac<Sha256>),
    S384(Hmac<Sha384>),
    S512(Hmac<Sha512>),
}

impl HmacKey {
    fn new(alg: Algorithm, secret: &[u8]) -> Self {
        match alg {
            Algorithm::HS384 => {
                HmacKey::S384(Hmac::new_from_slice(secret).expect("HMAC takes any key"))
            }
            Algorithm::HS512 => {
                HmacKey::S512(Hmac::new_from_slice(secret).expect("HMAC takes any key"))
            }
            _ => HmacKey::S256(Hmac::new_from_slice(secret).expect("HMAC takes any key")),
        }
    }

    /// Constant-time check of `signature` over `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        fn check<M: Mac + Clone>(key: &M, message: &[u8], signature: &[u8]) -> bool {
            let mut mac = key.clone();
            mac.update(message);
            mac.verify_slice(signature).is_ok()
        }
        match self {
            HmacKey::S256(k) => check(k, message, signature),
            HmacKey::S384(k) => check(k, message, signature),
            HmacKey::S512(k) => check(k, message, signature),
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        fn tag<M: Mac + Clone>(key: &M, message: &[u8]) -> Vec<u8> {
            let mut mac = key.clone();
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            HmacKey::S256(k) => tag(k, message),
            HmacKey::S384(k) => tag(k, message),
            HmacKey::S512(k) => tag(k, message),
        }
    }
}

// The HMAC state is the hot path and sits inline on purpose; a key set holds a handful of keys.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Verifier {
    Hmac(HmacKey),
    Public(DecodingKey),
}

#[derive(Clone)]
struct VerifyKey {
    kid: Box<str>,
    alg: Algorithm,
    verifier: Verifier,
}

#[allow(clippy::large_enum_variant)]
enum SignerKey {
    Hmac(HmacKey),
    Private(EncodingKey),
}

struct Inner {
    /// base64url of the JSON header, computed once.
    header_b64: String,
    alg: Algorithm,
    signer: SignerKey,
    keys: Vec<VerifyKey>,
    allowed: Vec<Algorithm>,
    issuer: Option<Box<str>>,
    audience: Option<Box<str>>,
    leeway_secs: u64,
    access_ttl: Duration,
    refresh_threshold_secs: u64,
    realm: Arc<str>,
    clock: SharedClock,
}

/// Issues and verifies access tokens. Cheap to clone.
///
/// ```
/// use tower_jwt_session::{SessionConfig, SessionId, TokenCodec};
///
/// let codec = TokenCodec::new(&SessionConfig::new("0123456789abcdef0123456789abcdef")?)?;
/// let sid = SessionId::random();
/// let token = codec.issue("alice", sid, &["user".to_owned()]);
/// let session = codec.verify(&token.token).expect("a fresh token verifies");
/// assert_eq!(session.user_id(), "alice");
/// assert_eq!(session.session_id(), sid);
/// # Ok::<(), tower_jwt_session::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct TokenCodec {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCodec")
            .field("alg", &self.inner.alg)
            .field(
                "kids",
                &self.inner.keys.iter().map(|k| &*k.kid).collect::<Vec<_>>(),
            )
            .field("allowed", &self.inner.allowed)
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

/// A freshly issued access token.
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// `exp`, in seconds since the epoch.
    pub expires_at: u64,
    /// `iat`, in seconds since the epoch.
    pub issued_at: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Serialize)]
struct OutHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

#[derive(Serialize)]
struct OutClaims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    exp: u64,
    iat: u64,
    jti: &'a str,
    sid: &'a str,
    roles: &'a [String],
}

#[derive(Deserialize)]
struct InHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    jku: Option<IgnoredAny>,
    #[serde(default)]
    jwk: Option<IgnoredAny>,
    #[serde(default)]
    x5u: Option<IgnoredAny>,
    #[serde(default)]
    x5c: Option<IgnoredAny>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// A JSON NumericDate: an integer or a fraction, seconds since the epoch.
#[derive(Clone, Copy)]
struct NumericDate(u64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NumericDate, E> {
                u64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("negative"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                    Ok(NumericDate(v as u64))
                } else {
                    Err(E::custom("out of range"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `aud`: a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    #[serde(borrow)]
    One(Cow<'a, str>),
    #[serde(borrow)]
    Many(Vec<Cow<'a, str>>),
}

#[derive(Deserialize)]
struct InClaims<'a> {
    #[serde(borrow, default)]
    sub: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    jti: Option<Cow<'a, str>>,
    #[serde(default)]
    iat: Option<NumericDate>,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    aud: Option<Audience<'a>>,
    #[serde(borrow, default)]
    roles: Option<RoleList<'a>>,
}

/// Roles parsed without allocating: up to eight inline, more spill to the heap.
#[derive(Default)]
struct RoleList<'a> {
    inline: [Cow<'a, str>; 8],
    len: usize,
    spill: Vec<Cow<'a, str>>,
}

impl<'a> RoleList<'a> {
    fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        self.inline[..self.len.min(8)]
            .iter()
            .chain(self.spill.iter())
            .map(|r| &**r)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RoleList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = RoleList<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of role names")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RoleList<'a>, A::Error> {
                #[derive(Deserialize)]
                struct Role<'a>(#[serde(borrow)] Cow<'a, str>);
                let mut list = RoleList::default();
                while let Some(Role(role)) = seq.next_element()? {
                    if list.len < 8 {
                        list.inline[list.len] = role;
                    } else {
                        list.spill.push(role);
                    }
                    list.len += 1;
                }
                Ok(list)
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// A token whose signature and claims were checked, except for its time window.
pub(crate) struct Decoded {
    pub(crate) session: Session,
    pub(crate) not_before: Option<u64>,
}

impl TokenCodec {
    /// A codec for the keys, issuer, audience, leeway and access-token lifetime of `config`,
    /// on the system clock.
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration does not validate.
    pub fn new(config: &SessionConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// As [`new`](Self::new), reading time from `clock`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_clock(config: &SessionConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        config.validate()?;
        let hmac_alg = Algorithm::HS256;
        let mut keys = vec![VerifyKey {
            kid: key_id(hmac_alg, config.secret.expose()).into(),
            alg: hmac_alg,
            verifier: Verifier::Hmac(HmacKey::new(hmac_alg, config.secret.expose())),
        }];
        for old in &config.previous_secrets {
            keys.push(VerifyKey {
                kid: key_id(hmac_alg, old.expose()).into(),
                alg: hmac_alg,
                verifier: Verifier::Hmac(HmacKey::new(hmac_alg, old.expose())),
            });
        }
        let (alg, kid, signer) = match &config.signing_pem {
            Some(pem) => {
                keys.insert(
                    0,
                    VerifyKey {
                        kid: pem.kid.as_str().into(),
                        alg: pem.alg,
                        verifier: Verifier::Public(pem.decoding.clone()),
                    },
                );
                let encoding = pem.encoding.clone().ok_or(ConfigError::Conflict {
                    name: "signing_key_pem",
                    reason: "no private key",
                })?;
                (pem.alg, pem.kid.clone(), SignerKey::Private(encoding))
            }
            None => (
                hmac_alg,
                keys[0].kid.to_string(),
                SignerKey::Hmac(HmacKey::new(hmac_alg, config.secret.expose())),
            ),
        };
        for pem in &config.verification_pems {
            keys.push(VerifyKey {
                kid: pem.kid.as_str().into(),
                alg: pem.alg,
                verifier: Verifier::Public(pem.decoding.clone()),
            });
        }
        let allowed = config.algorithms.clone().unwrap_or_else(|| vec![alg]);
        let header = OutHeader {
            alg: alg_name(alg),
            typ: "at+jwt",
            kid: &kid,
        };
        let header_b64 =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("a header serializes"));
        Ok(Self {
            inner: Arc::new(Inner {
                header_b64,
                alg,
                signer,
                keys,
                allowed,
                issuer: config.issuer.as_deref().map(Into::into),
                audience: config.audience.as_deref().map(Into::into),
                leeway_secs: config.leeway.as_secs(),
                access_ttl: config.access_token_ttl,
                refresh_threshold_secs: config.refresh_threshold.as_secs(),
                realm: crate::error::sanitize_realm(&config.realm).into(),
                clock,
            }),
        })
    }

    /// The clock this codec reads.
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// Seconds since the epoch, on this codec's clock.
    #[inline]
    pub(crate) fn now_secs(&self) -> u64 {
        self.inner.clock.now_ms() / 1000
    }

    /// Remaining lifetime, in seconds, at or under which a refresh is advised.
    pub(crate) fn refresh_threshold_secs(&self) -> u64 {
        self.inner.refresh_threshold_secs
    }

    /// The realm of `WWW-Authenticate` challenges.
    pub(crate) fn realm(&self) -> &Arc<str> {
        &self.inner.realm
    }

    /// Issues an access token for `user_id` in session `session_id` with `roles`, valid for the
    /// configured access-token lifetime.
    pub fn issue(&self, user_id: &str, session_id: SessionId, roles: &[String]) -> IssuedToken {
        self.issue_until(user_id, session_id, roles, u64::MAX)
    }

    /// As [`issue`](Self::issue), with `exp` no later than `cap` (seconds since the epoch), so
    /// an access token never outlives its session.
    pub fn issue_until(
        &self,
        user_id: &str,
        session_id: SessionId,
        roles: &[String],
        cap: u64,
    ) -> IssuedToken {
        let inner = &*self.inner;
        let now_ms = inner.clock.now_ms();
        let iat = now_ms / 1000;
        let ttl_ms = inner.access_ttl.as_millis() as u64;
        let exp = (now_ms.saturating_add(ttl_ms) / 1000).min(cap).max(iat);
        let jti_bytes: [u8; 16] = random_bytes();
        let jti = URL_SAFE_NO_PAD.encode(jti_bytes);
        let mut sid_buf = [0u8; 22];
        let claims = OutClaims {
            iss: inner.issuer.as_deref(),
            sub: user_id,
            aud: inner.audience.as_deref(),
            exp,
            iat,
            jti: &jti,
            sid: session_id.encode_into(&mut sid_buf),
            roles,
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialize");
        let mut token = String::with_capacity(inner.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&inner.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = match &inner.signer {
            SignerKey::Hmac(key) => URL_SAFE_NO_PAD.encode(key.sign(token.as_bytes())),
            SignerKey::Private(key) => jsonwebtoken::crypto::sign(token.as_bytes(), key, inner.alg)
                .expect("a key loaded for its algorithm signs"),
        };
        token.push('.');
        token.push_str(&signature);
        IssuedToken {
            token,
            expires_at: exp,
            issued_at: iat,
        }
    }

    /// Verifies `token` completely: structure, header, key, signature, claims and time.
    ///
    /// # Errors
    /// The [`AuthError`] naming the first check that failed.
    pub fn verify(&self, token: &str) -> Result<Session, AuthError> {
        self.verify_bytes(token.as_bytes())
    }

    /// As [`verify`](Self::verify), on the raw bytes of a header value.
    pub(crate) fn verify_bytes(&self, token: &[u8]) -> Result<Session, AuthError> {
        let now = self.inner.clock.now_ms() / 1000;
        let decoded = self.decode(token)?;
        self.check_time(&decoded, now)?;
        Ok(decoded.session)
    }

    /// Checks the time window: `exp` (required) and `nbf`, both with the leeway.
    pub(crate) fn check_time(&self, decoded: &Decoded, now: u64) -> Result<(), AuthError> {
        let leeway = self.inner.leeway_secs;
        if now >= decoded.session.expires_at().saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = decoded.not_before
            && nbf > now.saturating_add(leeway)
        {
            return Err(AuthError::NotYetValid);
        }
        Ok(())
    }

    /// Verifies everything but the time window.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Decoded, AuthError> {
        let inner = &*self.inner;
        if bytes.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed("longer than 8 KiB"));
        }
        let (header_b64, rest) =
            split_dot(bytes).ok_or(AuthError::Malformed("not three dot-separated parts"))?;
        let (payload_b64, signature_b64) =
            split_dot(rest).ok_or(AuthError::Malformed("not three dot-separated parts"))?;
        if signature_b64.contains(&b'.') {
            return Err(AuthError::Malformed("not three dot-separated parts"));
        }

        let mut header_buf = [0u8; STACK_HEADER];
        let header_json = b64_decode(header_b64, &mut header_buf)
            .ok_or(AuthError::Malformed("the header is not base64url"))?;
        // RFC 7519 §7.2 / RFC 8725 §3.7: the JSON must be UTF-8 as a whole, not only the fields
        // serde looks at (it skips unknown ones unchecked).
        if std::str::from_utf8(header_json).is_err() {
            return Err(AuthError::Malformed("the header is not UTF-8"));
        }
        let header: InHeader<'_> = serde_json::from_slice(header_json)
            .map_err(|_| AuthError::Malformed("the header is not a JSON object"))?;
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(AuthError::ForbiddenHeader);
        }
        let alg = parse_alg(&header.alg).ok_or(AuthError::UnsupportedAlgorithm)?;
        if !inner.allowed.contains(&alg) {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        match header.typ.as_deref() {
            Some(t)
                if t.eq_ignore_ascii_case("at+jwt")
                    || t.eq_ignore_ascii_case("application/at+jwt") => {}
            _ => return Err(AuthError::InvalidType),
        }
        let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
        let key = inner
            .keys
            .iter()
            .find(|k| &*k.kid == kid)
            .ok_or(AuthError::UnknownKey)?;
        if key.alg != alg {
            return Err(AuthError::UnsupportedAlgorithm);
        }

        let signed = &bytes[..header_b64.len() + 1 + payload_b64.len()];
        let valid = match &key.verifier {
            Verifier::Hmac(hmac) => {
                let mut sig_buf = [0u8; MAX_SIGNATURE];
                let signature = b64_decode(signature_b64, &mut sig_buf)
                    .ok_or(AuthError::Malformed("the signature is not base64url"))?;
                hmac.verify(signed, signature)
            }
            Verifier::Public(decoding) => {
                let signature = std::str::from_utf8(signature_b64)
                    .map_err(|_| AuthError::Malformed("the signature is not base64url"))?;
                jsonwebtoken::crypto::verify(signature, signed, decoding, alg).unwrap_or(false)
            }
        };
        if !valid {
            return Err(AuthError::InvalidSignature);
        }

        let mut payload_stack = [0u8; STACK_PAYLOAD];
        let mut payload_heap = Vec::new();
        let payload_json = if payload_b64.len() / 4 * 3 + 3 <= STACK_PAYLOAD {
            b64_decode(payload_b64, &mut payload_stack)
        } else {
            payload_heap.resize(payload_b64.len() / 4 * 3 + 3, 0);
            b64_decode(payload_b64, &mut payload_heap)
        }
        .ok_or(AuthError::Malformed("the payload is not base64url"))?;
        if std::str::from_utf8(payload_json).is_err() {
            return Err(AuthError::Malformed("the payload is not UTF-8"));
        }
        let claims: InClaims<'_> = serde_json::from_slice(payload_json)
            .map_err(|_| AuthError::Malformed("the payload is not a valid claims object"))?;
        self.session_from(claims)
    }

    fn session_from(&self, claims: InClaims<'_>) -> Result<Decoded, AuthError> {
        let inner = &*self.inner;
        let exp = claims.exp.ok_or(AuthError::MissingClaim("exp"))?.0;
        let iat = claims.iat.ok_or(AuthError::MissingClaim("iat"))?.0;
        let sub = claims.sub.ok_or(AuthError::MissingClaim("sub"))?;
        if sub.is_empty() {
            return Err(AuthError::InvalidClaim("sub"));
        }
        let sid = claims.sid.ok_or(AuthError::MissingClaim("sid"))?;
        let sid = SessionId::parse(sid.as_bytes()).ok_or(AuthError::InvalidClaim("sid"))?;
        if claims.jti.as_deref().is_none_or(str::is_empty) {
            return Err(AuthError::MissingClaim("jti"));
        }
        if let Some(expected) = inner.issuer.as_deref()
            && claims.iss.as_deref() != Some(expected)
        {
            return Err(AuthError::InvalidIssuer);
        }
        if let Some(expected) = inner.audience.as_deref() {
            let ok = match &claims.aud {
                Some(Audience::One(a)) => a == expected,
                Some(Audience::Many(list)) => list.iter().any(|a| a == expected),
                None => false,
            };
            if !ok {
                return Err(AuthError::InvalidAudience);
            }
        }
        let roles = claims.roles.unwrap_or_default();
        if roles.iter().any(|r| r.contains('\0')) {
            return Err(AuthError::InvalidClaim("roles"));
        }
        Ok(Decoded {
            session: Session::new(&sub, roles.iter(), sid, iat, exp),
            not_before: claims.nbf.map(|n| n.0),
        })
    }
}

fn split_dot(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|b| *b == b'.')?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

fn b64_decode<'b>(input: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
    if input.is_empty() || input.len().div_ceil(4) * 3 > buf.len() {
        return None;
    }
    let n = URL_SAFE_NO_PAD.decode_slice(input, buf).ok()?;
    Some(&buf[..n])
}

/// Exact, case-sensitive names (RFC 7518): `none`, `None`, `NONE` and friends are all refused.
fn parse_alg(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => "unsupported",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::{Value, json};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const OLD_SECRET: &str = "an-older-secret-that-was-rotated-out";
    const NOW_MS: u64 = 1_800_000_000_000;
    const NOW: u64 = NOW_MS / 1000;

    fn config() -> SessionConfig {
        SessionConfig::new(SECRET).unwrap()
    }

    fn codec_with(config: SessionConfig) -> (TokenCodec, ManualClock) {
        let clock = ManualClock::new(NOW_MS);
        (
            TokenCodec::with_clock(&config, Arc::new(clock.clone())).unwrap(),
            clock,
        )
    }

    fn plain() -> (TokenCodec, ManualClock) {
        codec_with(config())
    }

    fn kid(secret: &str) -> String {
        key_id(Algorithm::HS256, secret.as_bytes())
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

    /// Builds a token from raw header and payload JSON, signed with the HS256 secret.
    fn raw(header: &str, payload: &str) -> String {
        let mut t = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let key = HmacKey::new(Algorithm::HS256, SECRET.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(key.sign(t.as_bytes()));
        t.push('.');
        t.push_str(&sig);
        t
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_rfc9068_header_and_claims() {
        let (codec, _) = codec_with(config().issuer("https://iss").audience("api"));
        let sid = SessionId::random();
        let issued = codec.issue("alice", sid, &["user".into(), "admin".into()]);
        assert_eq!(issued.expires_at, NOW + 7200);
        let session = codec.verify(&issued.token).unwrap();
        assert_eq!(session.user_id(), "alice");
        assert_eq!(session.session_id(), sid);
        assert_eq!(session.roles().collect::<Vec<_>>(), ["user", "admin"]);
        assert_eq!(session.expires_at(), NOW + 7200);

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
        let (wide, _) =
            codec_with(config().allowed_algorithms([Algorithm::HS256, Algorithm::HS512]));
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
        let (rotated, _) = codec_with(config().previous_secret(OLD_SECRET).unwrap());
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

        let (strict, clock) = codec_with(config().leeway(Duration::ZERO));
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
        let (codec, _) = codec_with(config().issuer("https://iss").audience("api"));
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
        let rsa_private = include_bytes!("../tests/keys/rsa_private.pem");
        let rsa_public = include_bytes!("../tests/keys/rsa_public.pem");
        for (alg, private, public) in [
            (Algorithm::RS256, &rsa_private[..], &rsa_public[..]),
            (
                Algorithm::ES256,
                include_bytes!("../tests/keys/ec_private.pem"),
                include_bytes!("../tests/keys/ec_public.pem"),
            ),
            (
                Algorithm::EdDSA,
                include_bytes!("../tests/keys/ed_private.pem"),
                include_bytes!("../tests/keys/ed_public.pem"),
            ),
        ] {
            let (codec, _) = codec_with(config().signing_key_pem(alg, private, public).unwrap());
            let issued = codec.issue("alice", SessionId::random(), &[]);
            assert_eq!(jsonwebtoken::decode_header(&issued.token).unwrap().alg, alg);
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
                .signing_key_pem(Algorithm::RS256, rsa_private, rsa_public)
                .unwrap()
                .allowed_algorithms([Algorithm::RS256, Algorithm::HS256]),
        );
        let rsa_kid = key_id(Algorithm::RS256, rsa_public);
        let confused = sign(
            Algorithm::HS256,
            Some(rsa_kid),
            Some("at+jwt"),
            &claims(),
            rsa_public,
        );
        assert_eq!(
            codec.verify(&confused).unwrap_err(),
            AuthError::UnsupportedAlgorithm
        );

        assert!(matches!(
            config().signing_key_pem(Algorithm::RS256, b"not a pem", rsa_public),
            Err(ConfigError::Key { .. })
        ));
        assert!(
            config()
                .signing_key_pem(Algorithm::HS256, rsa_private, rsa_public)
                .is_err()
        );
    }

    #[test]
    fn access_tokens_are_capped_by_the_session_end() {
        let (codec, _) = plain();
        let issued = codec.issue_until("alice", SessionId::random(), &[], NOW + 60);
        assert_eq!(issued.expires_at, NOW + 60);
    }

    #[test]
    fn debug_output_has_no_key_material() {
        let (codec, _) = plain();
        let text = format!("{codec:?}");
        assert!(!text.contains(SECRET));
        let issued = codec.issue("alice", SessionId::random(), &[]);
        assert!(!format!("{issued:?}").contains(&issued.token));
    }
}
