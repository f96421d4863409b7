//! Typed errors and the JSON error body of [the protocol](crate::routes#routes).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// The `error` codes of the JSON error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed (bad JSON, missing field, duplicate credentials).
    InvalidRequest,
    /// Wrong user name or password.
    InvalidCredentials,
    /// The token is missing, malformed, forged or otherwise unacceptable.
    InvalidToken,
    /// The token has expired.
    TokenExpired,
    /// The token's session has been revoked (logout, eviction, reuse detection).
    TokenRevoked,
    /// A retired refresh token was presented again: the session has been revoked.
    RefreshTokenReused,
    /// The session has passed its absolute lifetime.
    SessionExpired,
    /// Authenticated, but not allowed.
    Forbidden,
    /// Too many requests.
    RateLimited,
    /// The session store cannot be reached.
    Unavailable,
    /// The request body is larger than allowed.
    PayloadTooLarge,
    /// No such route.
    NotFound,
    /// The route exists, but not for this method.
    MethodNotAllowed,
    /// The body is not of a content type the route takes (415): the JSON routes take
    /// `application/json` only.
    UnsupportedMediaType,
    /// The server is at fault (500): the app gave a session claims the rules refuse, or a
    /// handler asked for claims of a type the token's do not fit.
    Internal,
    /// A DPoP proof (RFC 9449) is missing or fails a check: see
    /// [`DpopError`](crate::token::dpop::DpopError). 401, the status of a protected resource
    /// (RFC 9449 §7.1); the token endpoint of RFC 9449 §5 answers it with 400.
    InvalidDpopProof,
    /// The DPoP proof lacks the server's current nonce (RFC 9449 §8, §9): the answer carries
    /// a `DPoP-Nonce` header, and the client makes the proof again with it. 401, as
    /// `InvalidDpopProof`.
    UseDpopNonce,
    /// The session's authentication is too old or too weak for the resource (RFC 9470): 401
    /// with a `WWW-Authenticate` challenge naming `max_age` or `acr_values`; the client
    /// re-authenticates and retries. See
    /// [`require_recent_auth`](crate::layer::require_recent_auth).
    InsufficientUserAuthentication,
}

impl ErrorCode {
    /// The wire form, e.g. `token_expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TokenRevoked => "token_revoked",
            ErrorCode::RefreshTokenReused => "refresh_token_reused",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Internal => "internal_error",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::InsufficientUserAuthentication => "insufficient_user_authentication",
        }
    }

    /// The HTTP status the crate answers this code with, e.g. 401 for
    /// `token_expired`, 503 for `unavailable`.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::InvalidCredentials
            | ErrorCode::InvalidToken
            | ErrorCode::TokenExpired
            | ErrorCode::TokenRevoked
            | ErrorCode::RefreshTokenReused
            | ErrorCode::SessionExpired
            | ErrorCode::InvalidDpopProof
            | ErrorCode::UseDpopNonce
            | ErrorCode::InsufficientUserAuthentication => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Why a request was refused by [`SessionLayer`](crate::SessionLayer), or why a token did not
/// verify. Inserted into the extensions of every refusal response, so a custom
/// [`ErrorResponder`](crate::layer::ErrorResponder) or an outer layer can read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization: Bearer` credentials (absent, or another scheme).
    #[error("no bearer token: send Authorization: Bearer <access token>")]
    MissingToken,
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    DuplicateAuthorization,
    /// The token is not a well-formed JWS compact serialization, or its JSON is malformed.
    #[error("the access token is malformed: {0}")]
    Malformed(&'static str),
    /// `alg` is `none` or outside the allow-list, or does not match the key's algorithm.
    #[error("the access token's algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// The `kid` is missing or names no known key.
    #[error("the access token was signed with an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the access token's signature is invalid")]
    InvalidSignature,
    /// `typ` is not `at+jwt` (RFC 9068).
    #[error("the token is not an access token (typ must be at+jwt)")]
    InvalidType,
    /// The header asks to fetch or embed a key (`jku`, `jwk`, `x5u`, `x5c`) or carries `crit`.
    #[error(
        "the access token's header carries key references or critical extensions, which are never followed"
    )]
    ForbiddenHeader,
    /// A required claim is missing.
    #[error("the access token lacks the `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or form.
    #[error("the access token's `{0}` claim is invalid")]
    InvalidClaim(&'static str),
    /// `exp` is past, beyond the leeway.
    #[error("the access token has expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the access token was issued by someone else")]
    InvalidIssuer,
    /// `aud` does not contain the configured audience.
    #[error("the access token is meant for another audience")]
    InvalidAudience,
    /// The session has been revoked or no longer exists.
    #[error("the session has ended; log in again")]
    Revoked,
    /// The session store cannot be reached to check revocation (fail-closed).
    #[error("the session store is unavailable; try again shortly")]
    Unavailable,
    /// The access token is bound to a DPoP key (its `cnf.jkt`) and came with the `Bearer`
    /// scheme, or to a layer that cannot check proofs: a bound token is never accepted
    /// without a proof by its key.
    #[error(
        "the access token is bound to a key: send it as Authorization: DPoP <token> with a DPoP proof signed by that key"
    )]
    DpopBound,
    /// An access token that is not bound to a key came with the `DPoP` scheme.
    #[error(
        "the access token is not bound to a DPoP key: send it as Authorization: Bearer <token>"
    )]
    NotDpopBound,
    /// The DPoP proof of a bound token was refused.
    #[error("{0}")]
    DpopProof(DpopError),
}

impl AuthError {
    /// The HTTP status: 400 for a duplicate `Authorization` header, 503 when the store is
    /// unavailable, 401 otherwise.
    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    /// The JSON `error` code.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::DuplicateAuthorization => ErrorCode::InvalidRequest,
            AuthError::Expired => ErrorCode::TokenExpired,
            AuthError::Revoked => ErrorCode::TokenRevoked,
            AuthError::Unavailable => ErrorCode::Unavailable,
            AuthError::DpopProof(e) => e.code(),
            _ => ErrorCode::InvalidToken,
        }
    }

    /// The scheme of the `WWW-Authenticate` challenge: `DPoP` for the refusals of
    /// sender-constrained tokens and their proofs (RFC 9449 §7.1), `Bearer` otherwise.
    pub fn scheme(&self) -> &'static str {
        match self {
            AuthError::DpopBound | AuthError::DpopProof(_) => "DPoP",
            _ => "Bearer",
        }
    }

    /// The RFC 6750 `error` attribute of the challenge, if any: none when no token was
    /// presented (§3.1), `invalid_request` for a malformed request, `invalid_token` otherwise.
    pub fn challenge_error(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingToken | AuthError::Unavailable => None,
            AuthError::DuplicateAuthorization => Some("invalid_request"),
            AuthError::DpopProof(e) => e.challenge_error(),
            _ => Some("invalid_token"),
        }
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The JSON error body of [the protocol](crate::routes#routes): `{"success": false, "message": …, "error": …}`, with the
/// HTTP status it goes out with (not serialized): the code's [`status`](ErrorCode::status), so
/// the two never disagree.
///
/// Under the `axum` feature it is an `IntoResponse` (with `Cache-Control: no-store`).
///
/// ```
/// use http::StatusCode;
/// use tower_jwt_session::response::ErrorCode;
/// use tower_jwt_session::response::ErrorBody;
///
/// let body = ErrorBody::new(ErrorCode::NotFound, "no such route");
/// assert_eq!(
///     serde_json::to_string(&body)?,
///     r#"{"success":false,"message":"no such route","error":"not_found"}"#,
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, serde::Serialize)]
pub struct ErrorBody<'a> {
    #[serde(skip)]
    status: StatusCode,
    success: bool,
    message: std::borrow::Cow<'a, str>,
    error: ErrorCode,
}

impl<'a> ErrorBody<'a> {
    /// The body of an error with this code, answered with the code's status.
    pub fn new(code: ErrorCode, message: impl Into<std::borrow::Cow<'a, str>>) -> Self {
        Self {
            status: code.status(),
            success: false,
            message: message.into(),
            error: code,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `error` code.
    pub fn code(&self) -> ErrorCode {
        self.error
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response: this body as JSON, `Cache-Control: no-store`.
    pub(crate) fn into_http(self) -> Response<Bytes> {
        json_response(self.status, &self)
    }
}

/// A JSON error response: `{"success": false, "message": …, "error": …}`.
pub(crate) fn json_error(code: ErrorCode, message: &str) -> Response<Bytes> {
    ErrorBody::new(code, message).into_http()
}

/// A JSON response with the given status and body.
pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Bytes> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| {
        br#"{"success":false,"message":"internal error","error":"unavailable"}"#.to_vec()
    });
    let mut res = Response::new(Bytes::from(bytes));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The refusal of [`SessionLayer`](crate::SessionLayer): status, `WWW-Authenticate` challenge
/// (RFC 6750 §3) and JSON body.
pub(crate) fn auth_error_response(realm: &str, error: AuthError) -> Response<Bytes> {
    let message = error.to_string();
    let mut res = json_error(error.code(), &message);
    if error.status() != StatusCode::SERVICE_UNAVAILABLE {
        let scheme = error.scheme();
        let challenge = match error.challenge_error() {
            None => format!("{scheme} realm=\"{realm}\""),
            Some(code) => format!(
                "{scheme} realm=\"{realm}\", error=\"{code}\", error_description=\"{message}\""
            ),
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    } else {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
}

/// Makes a realm safe to put between quotes in a challenge.
pub(crate) fn sanitize_realm(realm: &str) -> String {
    realm
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

/// Why a DPoP proof was refused (RFC 9449 §4.3, §7, §9, §11.1).
///
/// Each error maps to the `error` of the answer through [`code`](Self::code):
/// `invalid_dpop_proof` for a proof that fails a check, `use_dpop_nonce` when a server nonce is
/// required and the proof lacks the current one (answer it with a `DPoP-Nonce` header carrying
/// [`DpopVerifier::current_nonce`](crate::token::dpop::DpopVerifier::current_nonce)), and `unavailable`
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
    /// The proof is longer than 4096 bytes
    /// ([`MAX_PROOF_LEN`](crate::token::dpop::MAX_PROOF_LEN)); nothing of it was decoded.
    #[error("the DPoP proof is longer than 4096 bytes")]
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
