//! The DPoP side of the session check (RFC 9449 §7): what a token's binding asks of the
//! request it came with.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};

use super::Scheme;
use crate::error::{AuthError, DpopError, ErrorCode, json_error};
use crate::manager::{Dpop, SessionError};
use crate::session::Session;
use crate::token::dpop::{DPOP, DPOP_NONCE, DpopProof, ProofRequest};

/// A proof check waiting for the replay cache.
pub(crate) type ProofWait = Pin<Box<dyn Future<Output = Result<DpopProof, DpopError>> + Send>>;

/// The URI the client sent: under axum, a nested router strips its prefix from the request's
/// URI and keeps the original in `OriginalUri`, which is what a proof's `htu` names.
#[inline]
pub(crate) fn original_uri<'a>(uri: &'a Uri, extensions: &'a http::Extensions) -> &'a Uri {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::OriginalUri(original)) = extensions.get() {
        return original;
    }
    let _ = extensions;
    uri
}

/// What the token's binding asks of the request: nothing for a Bearer token, the check of the
/// request's proof for a bound one. A bound token sent as `Bearer`, an unbound one sent as
/// `DPoP`, and a bound token where no proof can be checked (no public origin configured) are
/// refused: a binding is never dropped, and a scheme never downgraded.
pub(crate) fn binding(
    dpop: Option<&Dpop>,
    (scheme, token): (Scheme, &[u8]),
    session: &Session,
    method: &Method,
    (uri, extensions): (&Uri, &http::Extensions),
    headers: &HeaderMap,
) -> Result<Option<ProofWait>, AuthError> {
    match (session.dpop_jkt(), scheme) {
        (None, Scheme::Bearer) => Ok(None),
        (None, Scheme::Dpop) => Err(AuthError::NotDpopBound),
        (Some(_), Scheme::Bearer) => Err(AuthError::DpopBound),
        (Some(jkt), Scheme::Dpop) => {
            let dpop = dpop.ok_or(AuthError::DpopBound)?;
            // The codec verified the token: base64url, so ASCII.
            let token = std::str::from_utf8(token)
                .map_err(|_| AuthError::Malformed("the token is not ASCII"))?;
            let uri = original_uri(uri, extensions);
            let request = ProofRequest::new(method, &dpop.origin, uri)
                .with_access_token(token)
                .bound_to(jkt);
            Ok(Some(Box::pin(
                dpop.verifier.verify(headers.get_all(DPOP), &request),
            )))
        }
    }
}

/// Adds the server's current nonce to the refusal of a proof, when nonces are required
/// (RFC 9449 §8: the client makes the proof again with it).
pub(crate) fn with_nonce<B>(
    mut response: Response<B>,
    dpop: Option<&Dpop>,
    error: AuthError,
) -> Response<B> {
    if let AuthError::DpopProof(_) = error
        && let Some(nonce) = dpop.and_then(|d| d.verifier.current_nonce())
    {
        response.headers_mut().insert(DPOP_NONCE, nonce);
    }
    response
}

/// The proof of a request to a token route (login, refresh, re-authentication; RFC 9449 §5):
/// none without a `DPoP` header (or where no proof can be checked), else the checked proof.
/// Such a proof names no access token.
///
/// # Errors
/// [`SessionError::Dpop`] for a proof that fails a check: a client that sends one must send
/// a good one, never be answered as if it had sent none.
pub(crate) async fn token_route_proof(
    dpop: Option<&Dpop>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<DpopProof>, SessionError> {
    let Some(dpop) = dpop else {
        return Ok(None);
    };
    if !headers.contains_key(DPOP) {
        return Ok(None);
    }
    let request = ProofRequest::new(method, &dpop.origin, uri);
    dpop.verifier
        .verify(headers.get_all(DPOP), &request)
        .await
        .map(Some)
        .map_err(SessionError::Dpop)
}

/// A token route's answer to a DPoP refusal (RFC 9449 §5): 400 with the JSON error body (503
/// when the replay check could not be made), and the server nonce when nonces are required.
/// `None` for the other errors.
pub(crate) fn token_route_refusal(
    dpop: Option<&Dpop>,
    error: &SessionError,
) -> Option<Response<Bytes>> {
    if !matches!(error, SessionError::Dpop(_) | SessionError::NotDpopBound) {
        return None;
    }
    let code = error.code();
    let mut response = json_error(code, &error.client_message());
    if code == ErrorCode::Unavailable {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    } else {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    if let Some(nonce) = dpop.and_then(|d| d.verifier.current_nonce()) {
        response.headers_mut().insert(DPOP_NONCE, nonce);
    }
    Some(response)
}

/// Adds the current server nonce to the answer of a request whose proof used the previous one
/// (RFC 9449 §8.2): the client's next proof then needs no retry.
pub(crate) fn renew_nonce<B>(
    response: &mut Response<B>,
    dpop: Option<&Dpop>,
    proof: Option<&DpopProof>,
) {
    if proof.is_some_and(DpopProof::wants_new_nonce)
        && let Some(nonce) = dpop.and_then(|d| d.verifier.current_nonce())
    {
        response.headers_mut().insert(DPOP_NONCE, nonce);
    }
}
