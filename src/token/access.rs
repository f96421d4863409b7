//! Issuing and verifying access tokens.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clock::{ms_to_secs, secs_to_ms, system_time, unix_ms};
use crate::error::AuthError;
use crate::session::{Session, SessionId, random_bytes};

use super::claims::{Audience, InClaims, InHeader, OutClaims};
use super::keys::{SignerKey, Verifier, VerifyKey, parse_alg};
use super::{Decoded, IssuedToken, MAX_TOKEN_LEN, TokenCodec};

const STACK_HEADER: usize = 512;
const STACK_PAYLOAD: usize = 1536;
const MAX_SIGNATURE: usize = 512;

impl TokenCodec {
    /// Issues an access token for `user_id` in session `session_id` with `roles`, valid for the
    /// configured access-token lifetime.
    pub fn issue(&self, user_id: &str, session_id: SessionId, roles: &[String]) -> IssuedToken {
        self.issue_capped(user_id, session_id, roles, u64::MAX)
    }

    /// As [`issue`](Self::issue), with `exp` no later than `not_after`, so an access token never
    /// outlives its session.
    pub fn issue_until(
        &self,
        user_id: &str,
        session_id: SessionId,
        roles: &[String],
        not_after: SystemTime,
    ) -> IssuedToken {
        self.issue_capped(user_id, session_id, roles, unix_ms(not_after))
    }

    /// As [`issue`](Self::issue), with `exp` no later than `cap_ms` (milliseconds since the
    /// epoch, rounded down to the second).
    pub(crate) fn issue_capped(
        &self,
        user_id: &str,
        session_id: SessionId,
        roles: &[String],
        cap_ms: u64,
    ) -> IssuedToken {
        let inner = &*self.inner;
        let now_ms = inner.clock.now_ms();
        let iat = ms_to_secs(now_ms);
        let exp = ms_to_secs(now_ms.saturating_add(inner.access_ttl_ms))
            .min(ms_to_secs(cap_ms))
            .max(iat);
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
            expires_at: system_time(secs_to_ms(exp)),
            issued_at: system_time(secs_to_ms(iat)),
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
        let now_ms = self.inner.clock.now_ms();
        let decoded = self.decode(token)?;
        self.check_time(&decoded, now_ms)?;
        Ok(decoded.session)
    }

    /// Checks the time window at `now_ms`: `exp` (required) and `nbf`, both with the leeway.
    pub(crate) fn check_time(&self, decoded: &Decoded, now_ms: u64) -> Result<(), AuthError> {
        let leeway = self.inner.leeway_ms;
        if now_ms >= decoded.session.expires_at_ms().saturating_add(leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = decoded.not_before_ms
            && nbf > now_ms.saturating_add(leeway)
        {
            return Err(AuthError::NotYetValid);
        }
        Ok(())
    }

    /// Verifies everything but the time window.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Decoded, AuthError> {
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
        let key = self.header_key(header_b64)?;
        let signed = &bytes[..header_b64.len() + 1 + payload_b64.len()];
        if !verify_signature(key, signed, signature_b64)? {
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

    /// Reads the header and returns the key it names, bound to the algorithm it names.
    fn header_key(&self, header_b64: &[u8]) -> Result<&VerifyKey, AuthError> {
        let inner = &*self.inner;
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
        Ok(key)
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
            session: Session::new(&sub, roles.iter(), sid, secs_to_ms(iat), secs_to_ms(exp)),
            not_before_ms: claims.nbf.map(|n| secs_to_ms(n.0)),
        })
    }
}

/// Checks the signature over `signed` with `key` (constant time for HMAC).
fn verify_signature(
    key: &VerifyKey,
    signed: &[u8],
    signature_b64: &[u8],
) -> Result<bool, AuthError> {
    Ok(match &key.verifier {
        Verifier::Hmac(hmac) => {
            let mut sig_buf = [0u8; MAX_SIGNATURE];
            let signature = b64_decode(signature_b64, &mut sig_buf)
                .ok_or(AuthError::Malformed("the signature is not base64url"))?;
            hmac.verify(signed, signature)
        }
        Verifier::Public(decoding) => {
            let signature = std::str::from_utf8(signature_b64)
                .map_err(|_| AuthError::Malformed("the signature is not base64url"))?;
            jsonwebtoken::crypto::verify(signature, signed, decoding, key.alg).unwrap_or(false)
        }
    })
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
