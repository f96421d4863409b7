//! Issuing and verifying access tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clock::{ms_to_secs, secs_to_ms, system_time};
use crate::error::AuthError;
use crate::session::{
    AuthContext, ClaimsError, CustomClaims, Session, SessionId, is_reserved, random_bytes,
};

use jsonwebtoken::Header;
use jsonwebtoken::errors::ErrorKind;

use super::claims::{InClaims, OutClaims, OutConfirmation, numeric_date};
use super::ecdsa;
use super::keys::VerifyKey;
use super::{Decoded, IssuedToken, MAX_TOKEN_LEN, TokenCodec};

/// Payloads up to this many decoded bytes are checked for UTF-8 on the stack.
const STACK_PAYLOAD: usize = 1536;

impl TokenCodec {
    /// Issues an access token for `user_id` in session `session_id` with `roles`, valid for the
    /// configured access-token lifetime.
    /// Its `auth_time` is now: the codec alone knows of no earlier authentication.
    pub fn issue(&self, user_id: &str, session_id: SessionId, roles: &[String]) -> IssuedToken {
        self.issue_capped(
            user_id,
            session_id,
            roles,
            &CustomClaims::default(),
            &AuthContext::at(self.inner.clock.now_ms()),
            u64::MAX,
        )
    }

    /// As [`issue`](Self::issue), carrying the app's own `claims` beside the registered ones.
    ///
    /// # Errors
    /// [`ClaimsError::TooLarge`] when the token would be longer than [`MAX_TOKEN_LEN`].
    #[cfg(test)]
    pub(crate) fn issue_with_claims(
        &self,
        user_id: &str,
        session_id: SessionId,
        roles: &[String],
        claims: &CustomClaims,
    ) -> Result<IssuedToken, ClaimsError> {
        self.check_fits(user_id, roles, claims)?;
        let auth = AuthContext::at(self.inner.clock.now_ms());
        Ok(self.issue_capped(user_id, session_id, roles, claims, &auth, u64::MAX))
    }

    /// Refuses `claims` when a token of `user_id` with `roles` and them could be longer than
    /// [`MAX_TOKEN_LEN`], which verification refuses: the length is reckoned with the longest
    /// `iat` and `exp`, so a token that passes is never refused for its length later.
    ///
    /// # Errors
    /// [`ClaimsError::TooLarge`], saying how large the claims and the token were.
    pub fn check_fits(
        &self,
        user_id: &str,
        roles: &[String],
        claims: &CustomClaims,
    ) -> Result<(), ClaimsError> {
        self.check_fits_with(user_id, roles, claims, &AuthContext::default())
    }

    /// As [`check_fits`](Self::check_fits), with the session's `amr` and `acr` (and the
    /// longest `auth_time`) in the token.
    pub(crate) fn check_fits_with(
        &self,
        user_id: &str,
        roles: &[String],
        claims: &CustomClaims,
        auth: &AuthContext,
    ) -> Result<(), ClaimsError> {
        auth.check()?;
        let inner = &*self.inner;
        let registered = OutClaims {
            iss: inner.issuer.as_deref(),
            sub: user_id,
            aud: inner.audience.as_deref(),
            exp: u64::MAX,
            iat: u64::MAX,
            jti: "0123456789012345678901",
            sid: "0123456789012345678901",
            roles,
            auth_time: u64::MAX,
            amr: &auth.amr,
            acr: auth.acr.as_deref(),
            cnf: auth.jkt.as_deref().map(|jkt| OutConfirmation { jkt }),
        };
        let registered = serde_json::to_vec(&registered).expect("claims serialize");
        // `{registered}` and `{custom}` become `{registered,custom}`.
        let payload = registered.len() + claims.members().map_or(0, |m| m.len() + 1);
        let token_bytes =
            inner.header_b64.len() + 1 + payload.div_ceil(3) * 4 + 1 + inner.signature_len;
        if token_bytes > MAX_TOKEN_LEN {
            return Err(ClaimsError::TooLarge {
                claims_bytes: claims.len(),
                token_bytes,
                max: MAX_TOKEN_LEN,
            });
        }
        Ok(())
    }

    /// As [`issue`](Self::issue), with `exp` no later than `not_after`, so an access token never
    /// outlives its session.
    #[cfg(test)]
    pub(crate) fn issue_until(
        &self,
        user_id: &str,
        session_id: SessionId,
        roles: &[String],
        not_after: std::time::SystemTime,
    ) -> IssuedToken {
        self.issue_capped(
            user_id,
            session_id,
            roles,
            &CustomClaims::default(),
            &AuthContext::at(self.inner.clock.now_ms()),
            crate::clock::unix_ms(not_after),
        )
    }

    /// As [`issue`](Self::issue) with `claims` and the session's authentication context, with
    /// `exp` no later than `cap_ms` (milliseconds since the epoch, rounded down to the second).
    /// The caller checked the claims with [`check_fits_with`](Self::check_fits_with).
    pub(crate) fn issue_capped(
        &self,
        user_id: &str,
        session_id: SessionId,
        roles: &[String],
        custom: &CustomClaims,
        auth: &AuthContext,
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
            auth_time: ms_to_secs(auth.auth_time),
            amr: &auth.amr,
            acr: auth.acr.as_deref(),
            cnf: auth.jkt.as_deref().map(|jkt| OutConfirmation { jkt }),
        };
        let mut payload = serde_json::to_vec(&claims).expect("claims serialize");
        if let Some(members) = custom.members() {
            // A JSON object without reserved names (CustomClaims checked it), spliced in.
            payload.pop();
            payload.push(b',');
            payload.extend_from_slice(members.as_bytes());
            payload.push(b'}');
        }
        let mut token = String::with_capacity(inner.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&inner.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = jsonwebtoken::crypto::sign(token.as_bytes(), &inner.signer, inner.alg)
            .expect("a key loaded for its algorithm signs");
        let signature = ecdsa::low_s(inner.alg, signature);
        token.push('.');
        token.push_str(&signature);
        IssuedToken {
            token,
            expires_at: system_time(secs_to_ms(exp)),
            issued_at: system_time(secs_to_ms(iat)),
        }
    }

    /// Verifies `token` completely: structure, header, key, signature, claims and time. A
    /// token verified before is answered from the cache of verified tokens (its time window
    /// still checked): see [`TokenCacheSettings`](crate::config::TokenCacheSettings).
    ///
    /// # Errors
    /// The [`AuthError`] naming the first check that failed.
    pub fn verify(&self, token: &str) -> Result<Session, AuthError> {
        self.verify_bytes(token.as_bytes())
    }

    /// As [`verify`](Self::verify), on the raw bytes of a header value: through the cache of
    /// verified tokens, as every verification path is.
    pub(crate) fn verify_bytes(&self, token: &[u8]) -> Result<Session, AuthError> {
        self.verify_cached(token, self.inner.clock.now_ms())
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

    /// Verifies everything but the time window, reading no clock: a verdict cached from it
    /// holds at any instant, and [`check_time`](Self::check_time) applies the window.
    ///
    /// The header goes through `jsonwebtoken::decode_header` for the rules of this codec
    /// (`typ`, `kid`, the allow-list, no key references), then the whole token through
    /// `jsonwebtoken::decode` with the named key's `Validation`. What remains here is what
    /// jsonwebtoken does not check: the claims of RFC 9068 and the session id, and that the
    /// claims set is UTF-8 in members no one reads (RFC 8725 §3.7).
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Decoded, AuthError> {
        if bytes.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed("longer than 8 KiB"));
        }
        let mut dots = bytes.iter().enumerate().filter(|(_, b)| **b == b'.');
        let (Some(_), Some((second_dot, _)), None) = (dots.next(), dots.next(), dots.next()) else {
            return Err(AuthError::Malformed("not three dot-separated parts"));
        };
        let header = jsonwebtoken::decode_header(bytes).map_err(header_error)?;
        let key = self.header_key(&header)?;
        // The high-S twin of a valid ES256/ES384 signature verifies too: one form only.
        if ecdsa::is_high_s(key.alg, &bytes[second_dot + 1..]) {
            return Err(AuthError::InvalidSignature);
        }
        let claims = jsonwebtoken::decode::<InClaims>(bytes, &key.decoding, &key.validation)
            .map_err(decode_error)?
            .claims;
        payload_is_utf8(&bytes[..second_dot])?;
        self.session_from(claims)
    }

    /// The key the header names, bound to the algorithm it names, once the header passed the
    /// rules of RFC 8725 and RFC 9068.
    fn header_key(&self, header: &Header) -> Result<&VerifyKey, AuthError> {
        let inner = &*self.inner;
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(AuthError::ForbiddenHeader);
        }
        if !inner.allowed.contains(&header.alg) {
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
        if key.alg != header.alg {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        Ok(key)
    }

    /// The claims jsonwebtoken leaves to the caller: `iat`, `sub`, `sid`, `jti`, the presence of
    /// a configured `iss` and `aud` (their values are jsonwebtoken's check), `roles`, `nbf`.
    // Size: one check per registered claim; split, the claims would no longer read as one list.
    fn session_from(&self, claims: InClaims) -> Result<Decoded, AuthError> {
        let inner = &*self.inner;
        let date = |n: Option<serde_json::Number>, name| match n {
            None => Ok(None),
            Some(n) => numeric_date(&n)
                .map(Some)
                .ok_or(AuthError::InvalidClaim(name)),
        };
        let exp = date(claims.exp, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
        let iat = date(claims.iat, "iat")?.ok_or(AuthError::MissingClaim("iat"))?;
        let nbf = date(claims.nbf, "nbf")?;
        // Absent in tokens of releases before it: the epoch, never recent.
        let auth_time = date(claims.auth_time, "auth_time")?.unwrap_or(0);
        let sub = claims.sub.ok_or(AuthError::MissingClaim("sub"))?;
        if sub.is_empty() {
            return Err(AuthError::InvalidClaim("sub"));
        }
        let sid = claims.sid.ok_or(AuthError::MissingClaim("sid"))?;
        let sid = SessionId::parse(sid.as_bytes()).ok_or(AuthError::InvalidClaim("sid"))?;
        if claims.jti.as_deref().is_none_or(str::is_empty) {
            return Err(AuthError::MissingClaim("jti"));
        }
        if inner.issuer.is_some() && claims.iss.is_none() {
            return Err(AuthError::InvalidIssuer);
        }
        if inner.audience.is_some() && claims.aud.is_none() {
            return Err(AuthError::InvalidAudience);
        }
        let roles = claims.roles.unwrap_or_default();
        if roles.iter().any(|r| r.contains('\0')) {
            return Err(AuthError::InvalidClaim("roles"));
        }
        let jkt = match claims.cnf {
            None => None,
            Some(cnf) => Some(
                cnf.jkt
                    .filter(|jkt| crate::session::is_thumbprint(jkt))
                    .ok_or(AuthError::InvalidClaim("cnf"))?,
            ),
        };
        let mut other = claims.other.0;
        if other.keys().any(|k| is_reserved(k)) {
            other.retain(|k, _| !is_reserved(k));
        }
        Ok(Decoded {
            session: Session::new(
                &sub,
                roles.iter().map(String::as_str),
                sid,
                secs_to_ms(iat),
                secs_to_ms(exp),
            )
            .with_claims(CustomClaims::from_checked_members(&other))
            .with_auth(
                secs_to_ms(auth_time),
                claims.amr.unwrap_or_default(),
                claims.acr,
            )
            .with_jkt(jkt),
            not_before_ms: nbf.map(secs_to_ms),
        })
    }
}

/// RFC 7519 §7.2 / RFC 8725 §3.7: the claims set is UTF-8 as a whole, not only in the members
/// serde reads; serde_json skips unknown members unchecked. (The header needs no such check:
/// jsonwebtoken's `Header` keeps unknown members as JSON values, which are read.) Runs on tokens
/// whose signature verified, so it costs forged tokens nothing.
fn payload_is_utf8(signed: &[u8]) -> Result<(), AuthError> {
    let payload_b64 = signed
        .rsplit(|b| *b == b'.')
        .next()
        .expect("rsplit yields at least one part");
    let mut stack = [0u8; STACK_PAYLOAD];
    let mut heap = Vec::new();
    let buf = if payload_b64.len().div_ceil(4) * 3 <= STACK_PAYLOAD {
        &mut stack[..]
    } else {
        heap.resize(payload_b64.len().div_ceil(4) * 3, 0);
        &mut heap[..]
    };
    let n = URL_SAFE_NO_PAD
        .decode_slice(payload_b64, buf)
        .map_err(|_| AuthError::Malformed("the payload is not base64url"))?;
    std::str::from_utf8(&buf[..n])
        .map(drop)
        .map_err(|_| AuthError::Malformed("the payload is not UTF-8"))
}

/// Why `jsonwebtoken::decode_header` refused the header.
fn header_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::Base64(_) => AuthError::Malformed("the header is not base64url"),
        ErrorKind::Utf8(_) => AuthError::Malformed("the header is not UTF-8"),
        // `alg` is read into jsonwebtoken's closed enum, so `none`, `None`, `HS256 ` and other
        // names outside it fail as serde's unknown variant. (Pinned by the `alg_none` tests.)
        ErrorKind::Json(json) if json.to_string().starts_with("unknown variant") => {
            AuthError::UnsupportedAlgorithm
        }
        _ => AuthError::Malformed("the header is not a JOSE header"),
    }
}

/// Why `jsonwebtoken::decode` refused a token whose header passed `header_key`.
fn decode_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.into_kind() {
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::UnsupportedAlgorithm
        }
        ErrorKind::Base64(_) => {
            AuthError::Malformed("the signature or the payload is not base64url")
        }
        ErrorKind::Json(_) => AuthError::Malformed("the payload is not a valid claims object"),
        ErrorKind::Utf8(_) => AuthError::Malformed("the payload is not UTF-8"),
        // `b64: false` (RFC 7797): an unencoded payload is not an access token.
        ErrorKind::InvalidToken => AuthError::Malformed("the header is not a JOSE header"),
        ErrorKind::MissingRequiredClaim(_) => AuthError::MissingClaim("exp"),
        ErrorKind::InvalidIssuer => AuthError::InvalidIssuer,
        ErrorKind::InvalidAudience => AuthError::InvalidAudience,
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim(match claim.as_str() {
            "iss" => "iss",
            "aud" => "aud",
            "sub" => "sub",
            "nbf" => "nbf",
            _ => "exp",
        }),
        // The signature did not verify, or could not be read as one for this key.
        _ => AuthError::InvalidSignature,
    }
}
