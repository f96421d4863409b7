//! Every check of a proof but the replay cache: its form, header, claims, time, nonce and
//! signature, in that order.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::jwk::{JwkIn, ProofKey, SIGNATURE_B64_LEN, SIGNATURE_LEN};
use super::nonce::NonceCheck;
use super::proof::constant_time_eq;
use super::{
    Checked, DpopAlgorithm, DpopProof, DpopVerifier, MAX_JTI_LEN, MAX_PROOF_LEN, ProofRequest,
    access_token_hash, htu, jkt_matches,
};
use crate::error::DpopError;

impl DpopVerifier {
    /// Every check but the replay cache, synchronously.
    pub(super) fn check<'h>(
        &self,
        proofs: impl IntoIterator<Item = &'h HeaderValue>,
        request: &ProofRequest<'_>,
    ) -> Result<Checked, DpopError> {
        let proof = single_proof(proofs)?;
        let (header_b64, claims_b64, signature) = split_jws(proof)?;

        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| DpopError::Malformed("the header is not base64url"))?;
        let header: Header<'_> = serde_json::from_slice(&header_json).map_err(|_| {
            DpopError::Malformed("the header is not a JSON object of the JOSE form")
        })?;
        let (alg, key) = self.check_header(&header)?;

        let claims_json = URL_SAFE_NO_PAD
            .decode(claims_b64)
            .map_err(|_| DpopError::Malformed("the claims are not base64url"))?;
        let mut claims: Claims<'_> = serde_json::from_slice(&claims_json).map_err(|_| {
            DpopError::Malformed(
                "the claims are not a JSON object with string jti, htm, htu, ath, nonce and a numeric iat",
            )
        })?;
        let (jti, iat_ms) = check_request_claims(&mut claims, request)?;
        let now_ms = self.check_time(iat_ms)?;

        if let Some(token) = request.access_token {
            let ath = claims.ath.ok_or(DpopError::MissingClaim("ath"))?;
            if !constant_time_eq(ath.as_bytes(), access_token_hash(token).as_bytes()) {
                return Err(DpopError::AccessTokenMismatch);
            }
        }
        let wants_new_nonce = self.check_nonce(claims.nonce, now_ms)?;

        // `header.claims`: everything before the last dot.
        let signed = &proof[..header_b64.len() + 1 + claims_b64.len()];
        key.verify(signed.as_bytes(), &signature)?;

        let jkt = key.thumbprint();
        if let Some(bound) = request.bound_to
            && !jkt_matches(&jkt, bound)
        {
            return Err(DpopError::KeyMismatch);
        }
        Ok(Checked {
            proof: DpopProof {
                jkt: jkt.into(),
                alg,
                issued_at_ms: iat_ms,
                wants_new_nonce,
            },
            jti: jti.into_owned(),
            // Accepted while `now <= iat + max_age`; kept until just after.
            expires_at_ms: iat_ms
                .saturating_add(self.inner.max_age_ms)
                .saturating_add(1),
            now_ms,
        })
    }

    /// The header's type, algorithm (one of the allowed), no `crit`, and its key.
    fn check_header<'j>(
        &self,
        header: &'j Header<'j>,
    ) -> Result<(DpopAlgorithm, ProofKey<'j>), DpopError> {
        let typ = header.typ.as_deref().ok_or(DpopError::InvalidType)?;
        // RFC 7515 §4.1.9: media types compare case-insensitively, `application/` implied.
        if !(typ.eq_ignore_ascii_case("dpop+jwt")
            || typ.eq_ignore_ascii_case("application/dpop+jwt"))
        {
            return Err(DpopError::InvalidType);
        }
        let alg = header
            .alg
            .as_deref()
            .and_then(DpopAlgorithm::from_alg)
            .filter(|a| self.inner.settings.algorithms.contains(a))
            .ok_or(DpopError::UnsupportedAlgorithm)?;
        if header.crit.is_some() {
            return Err(DpopError::CriticalHeader);
        }
        let jwk = header.jwk.as_ref().ok_or(DpopError::MissingKey)?;
        Ok((alg, ProofKey::parse(jwk, alg)?))
    }

    /// The time since `iat_ms` within the window: the time now, in ms.
    fn check_time(&self, iat_ms: u64) -> Result<u64, DpopError> {
        let now_ms = self.inner.clock.now_ms();
        if iat_ms.saturating_add(self.inner.max_age_ms) < now_ms {
            return Err(DpopError::TooOld);
        }
        if iat_ms > now_ms.saturating_add(self.inner.skew_ms) {
            return Err(DpopError::IssuedInFuture);
        }
        Ok(now_ms)
    }

    /// The server nonce, when the settings ask for one: whether the client should take a new
    /// one.
    fn check_nonce(&self, nonce: Option<Cow<'_, str>>, now_ms: u64) -> Result<bool, DpopError> {
        let mut wants_new_nonce = false;
        if let Some(source) = &self.inner.settings.nonce {
            let nonce = nonce.ok_or(DpopError::NonceRequired)?;
            match source.check(&nonce, now_ms) {
                NonceCheck::Current => {}
                NonceCheck::Previous => wants_new_nonce = true,
                NonceCheck::Invalid => return Err(DpopError::NonceInvalid),
            }
        }
        Ok(wants_new_nonce)
    }
}

/// The one proof of the request, within the size limit, as text.
fn single_proof<'h>(
    proofs: impl IntoIterator<Item = &'h HeaderValue>,
) -> Result<&'h str, DpopError> {
    let mut proofs = proofs.into_iter();
    let proof = proofs.next().ok_or(DpopError::Missing)?;
    if proofs.next().is_some() {
        return Err(DpopError::Multiple);
    }
    let proof = proof.as_bytes();
    if proof.len() > MAX_PROOF_LEN {
        return Err(DpopError::TooLarge);
    }
    if proof.contains(&b',') {
        // Two proofs folded into one header line.
        return Err(DpopError::Multiple);
    }
    Ok(std::str::from_utf8(proof)
        .map_err(|_| DpopError::Malformed("it is not ASCII"))?
        .trim_matches([' ', '\t']))
}

/// The three parts of a compact JWS: the header and claims as base64url, the signature decoded.
fn split_jws(proof: &str) -> Result<(&str, &str, [u8; SIGNATURE_LEN]), DpopError> {
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DpopError::Malformed(
            "it is not a JWS of three base64url parts separated by dots",
        ));
    };
    if signature_b64.len() != SIGNATURE_B64_LEN {
        return Err(DpopError::Malformed(
            "the signature is not 64 bytes of base64url (ES256 or EdDSA)",
        ));
    }
    let mut signature = [0u8; SIGNATURE_LEN];
    if URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut signature) != Ok(SIGNATURE_LEN) {
        return Err(DpopError::Malformed("the signature is not base64url"));
    }
    Ok((header_b64, claims_b64, signature))
}

/// The claims that name the request: `jti` (taken and returned), `htm` and `htu` (matched against
/// `request`), and `iat` (returned, in ms).
fn check_request_claims<'c>(
    claims: &mut Claims<'c>,
    request: &ProofRequest<'_>,
) -> Result<(Cow<'c, str>, u64), DpopError> {
    let jti = claims.jti.take().ok_or(DpopError::MissingClaim("jti"))?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(DpopError::InvalidClaim("jti"));
    }
    let htm = claims
        .htm
        .as_deref()
        .ok_or(DpopError::MissingClaim("htm"))?;
    let htu = claims
        .htu
        .as_deref()
        .ok_or(DpopError::MissingClaim("htu"))?;
    let iat_ms = claims.iat.as_ref().ok_or(DpopError::MissingClaim("iat"))?.0;

    if htm != request.method.as_str() {
        return Err(DpopError::MethodMismatch);
    }
    if htu::normalize_htu(htu).is_none() {
        return Err(DpopError::InvalidClaim("htu"));
    }
    if !htu::htu_matches(htu, request.origin, request.path) {
        return Err(DpopError::UriMismatch);
    }
    Ok((jti, iat_ms))
}

/// The JOSE header of a proof. Duplicate members are refused by serde (an ambiguous header).
#[derive(Deserialize)]
pub(super) struct Header<'a> {
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    jwk: Option<JwkIn<'a>>,
    crit: Option<IgnoredAny>,
}

/// The claims of a proof.
#[derive(Deserialize)]
pub(super) struct Claims<'a> {
    #[serde(borrow)]
    jti: Option<Cow<'a, str>>,
    #[serde(borrow)]
    htm: Option<Cow<'a, str>>,
    #[serde(borrow)]
    htu: Option<Cow<'a, str>>,
    iat: Option<NumericDate>,
    #[serde(borrow)]
    ath: Option<Cow<'a, str>>,
    #[serde(borrow)]
    nonce: Option<Cow<'a, str>>,
}

/// A JWT NumericDate (seconds, possibly fractional, RFC 7519 §2) in milliseconds.
pub(super) struct NumericDate(u64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds since the epoch, not negative")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(v.saturating_mul(1000)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NumericDate, E> {
                u64::try_from(v)
                    .map(|v| NumericDate(v.saturating_mul(1000)))
                    .map_err(|_| E::custom("a negative iat"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && v >= 0.0 {
                    // `as` saturates at u64::MAX.
                    Ok(NumericDate((v * 1000.0).floor() as u64))
                } else {
                    Err(E::custom("a negative or infinite iat"))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
