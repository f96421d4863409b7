//! [`DpopError`]: why a DPoP proof was refused, and what to answer.

use crate::error::ErrorCode;

use super::MAX_PROOF_LEN;

/// Why a DPoP proof was refused (RFC 9449 §4.3, §7, §9, §11.1).
///
/// Each error maps to the `error` of the answer through [`code`](Self::code):
/// `invalid_dpop_proof` for a proof that fails a check, `use_dpop_nonce` when a server nonce is
/// required and the proof lacks the current one (answer it with a `DPoP-Nonce` header carrying
/// [`DpopVerifier::current_nonce`](super::DpopVerifier::current_nonce)), and `unavailable`
/// when the replay check cannot be made. The messages say what a client developer should fix;
/// none contains any part of the proof or the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// No `DPoP` header.
    #[error("no DPoP proof: send a DPoP header with a proof signed by the client's key")]
    Missing,
    /// More than one `DPoP` header, or one header carrying several comma-separated values.
    #[error("more than one DPoP proof: send exactly one DPoP header with one proof")]
    Multiple,
    /// The proof is longer than [`MAX_PROOF_LEN`] bytes; nothing of it was decoded.
    #[error("the DPoP proof is longer than {MAX_PROOF_LEN} bytes")]
    TooLarge,
    /// Not a compact JWS of three base64url parts, or its header or claims are not the JSON
    /// objects they should be.
    #[error("the DPoP proof is malformed: {0}")]
    Malformed(&'static str),
    /// The `typ` header is not `dpop+jwt`.
    #[error("the DPoP proof's typ header must be dpop+jwt")]
    InvalidType,
    /// The `alg` header is `none`, a MAC (HS256…), or another algorithm than those accepted.
    #[error(
        "the DPoP proof's alg is not accepted: sign it with an asymmetric key (ES256 or EdDSA), never none or an HMAC"
    )]
    UnsupportedAlgorithm,
    /// The `crit` header names extensions; none is understood here (RFC 7515 §4.1.11).
    #[error("the DPoP proof's header carries crit, and no extension is understood")]
    CriticalHeader,
    /// No `jwk` header.
    #[error("the DPoP proof carries no jwk header: put the client's public key in it")]
    MissingKey,
    /// The `jwk` holds a private key member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`).
    #[error("the DPoP proof's jwk contains private key material: send the public key only")]
    PrivateKey,
    /// The `jwk` is not a public key of the `alg`'s type and curve, or its coordinates are
    /// not a point of that curve.
    #[error("the DPoP proof's jwk is not a usable public key: {0}")]
    InvalidKey(&'static str),
    /// The signature does not verify with the `jwk` (a wrong signature, or for ES256 a key
    /// that is not a point of P-256).
    #[error("the DPoP proof's signature does not verify with its jwk")]
    InvalidSignature,
    /// A required claim (`jti`, `htm`, `htu`, `iat`, `ath`) is absent.
    #[error("the DPoP proof lacks the `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or form (a `jti` longer than allowed, an `iat` that is not a
    /// number).
    #[error("the DPoP proof's `{0}` claim is invalid")]
    InvalidClaim(&'static str),
    /// `htm` is not the request's method.
    #[error("the DPoP proof was made for another HTTP method (htm)")]
    MethodMismatch,
    /// `htu` is not the request's URL (scheme, host, port and path; query and fragment are
    /// ignored).
    #[error("the DPoP proof was made for another URL (htu)")]
    UriMismatch,
    /// `iat` is further in the past than the accepted age.
    #[error("the DPoP proof is too old (iat): make a fresh proof for every request")]
    TooOld,
    /// `iat` is further in the future than the accepted clock skew.
    #[error("the DPoP proof is dated in the future (iat): check the client's clock")]
    IssuedInFuture,
    /// `ath` is not the hash of the access token sent with the proof.
    #[error("the DPoP proof was made for another access token (ath)")]
    AccessTokenMismatch,
    /// The proof's key is not the key the token is bound to (its `cnf.jkt`).
    #[error("the DPoP proof is signed by another key than the one the token is bound to")]
    KeyMismatch,
    /// The proof's `jti` was seen before within the window: the proof is a replay.
    #[error("the DPoP proof has been used before (jti): make a new proof for every request")]
    Replayed,
    /// A server nonce is required and the proof carries none.
    #[error(
        "a server nonce is required: make the proof again with the nonce of the DPoP-Nonce header"
    )]
    NonceRequired,
    /// The proof's nonce is not one this server issued recently.
    #[error(
        "the DPoP proof's nonce is not current: make the proof again with the nonce of the DPoP-Nonce header"
    )]
    NonceInvalid,
    /// The replay cache could not record the proof (it is full, or its store cannot be
    /// reached): the proof is refused rather than let through unchecked.
    #[error("DPoP proofs cannot be checked for replay right now; try again shortly")]
    ReplayCheckUnavailable,
}

impl DpopError {
    /// The `error` code of the answer: [`ErrorCode::UseDpopNonce`] for the nonce errors,
    /// [`ErrorCode::Unavailable`] when the replay check could not be made,
    /// [`ErrorCode::InvalidDpopProof`] for everything else.
    pub fn code(&self) -> ErrorCode {
        match self {
            DpopError::NonceRequired | DpopError::NonceInvalid => ErrorCode::UseDpopNonce,
            DpopError::ReplayCheckUnavailable => ErrorCode::Unavailable,
            _ => ErrorCode::InvalidDpopProof,
        }
    }

    /// The `error` attribute of the `WWW-Authenticate: DPoP` challenge (RFC 9449 §7.1):
    /// `invalid_dpop_proof` or `use_dpop_nonce`; none when the refusal is the server's
    /// (`unavailable`).
    pub fn challenge_error(&self) -> Option<&'static str> {
        match self.code() {
            ErrorCode::UseDpopNonce => Some("use_dpop_nonce"),
            ErrorCode::InvalidDpopProof => Some("invalid_dpop_proof"),
            _ => None,
        }
    }

    /// Whether the answer should carry a `DPoP-Nonce` header with the current nonce.
    pub fn wants_nonce(&self) -> bool {
        self.code() == ErrorCode::UseDpopNonce
    }
}
