//! Reading the JSON request bodies of the crate's routes: the content type, the 16 KiB cap
//! (413), and the JSON itself (400). Shared by the login service and the token routes.

// Early answers travel as `Err(Response)`: these routes do store I/O, so the size of that
// variant is of no consequence.
#![allow(clippy::result_large_err)]

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::error::{ErrorCode, json_error};

/// Largest accepted request body on the token routes and the login route.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Whether the request declares a JSON body: exactly one `Content-Type` whose media type is
/// `application/json`, parameters (`; charset=utf-8`) allowed.
pub(crate) fn declares_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    // Bytes, not `to_str`: a parameter with non-ASCII bytes (`charset=\xfe…`) does not change
    // the media type, which is all that is judged here (found by the token_routes fuzzer).
    value
        .as_bytes()
        .split(|b| *b == b';')
        .next()
        .is_some_and(|essence| {
            essence
                .trim_ascii()
                .eq_ignore_ascii_case(b"application/json")
        })
}

/// 415 `unsupported_media_type`: the route takes JSON only.
pub(crate) fn unsupported_media_type() -> Response<Bytes> {
    let mut res = json_error(
        ErrorCode::UnsupportedMediaType,
        "send the body as JSON, with Content-Type: application/json",
    );
    res.headers_mut().insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    res
}

pub(crate) fn bad_request(message: &str) -> Response<Bytes> {
    json_error(ErrorCode::InvalidRequest, message)
}

/// Reads a JSON object body of at most [`MAX_BODY_BYTES`]; an empty body is the default value.
/// The caller has checked the content type ([`declares_json`]).
pub(crate) async fn read_json<T, B>(headers: &HeaderMap, body: B) -> Result<T, Response<Bytes>>
where
    T: DeserializeOwned + Default,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let bytes = read_capped(headers, body).await?;
    parse_json(&bytes)
}

/// Reads a JSON object body of at most [`MAX_BODY_BYTES`] as its bytes, for a caller that reads
/// several types from it (the login's credentials, of the app's shape, and its own fields):
/// 400 for a body that is not a JSON object. The caller has checked the content type.
pub(crate) async fn read_json_object<B>(
    headers: &HeaderMap,
    body: B,
) -> Result<Bytes, Response<Bytes>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let bytes = read_capped(headers, body).await?;
    if bytes.trim_ascii().first() != Some(&b'{') {
        return Err(bad_request("the request body must be a JSON object"));
    }
    Ok(bytes)
}

/// Reads the JSON body of a route where the body is optional (the token routes):
///
/// - a `Content-Type` other than `application/json` (parameters allowed) is 415, before the
///   body is read, whatever the body;
/// - `application/json`: as [`read_json`];
/// - no `Content-Type` at all: a body of no bytes is the default value (a cookie-only refresh
///   from curl or a `fetch` without a body), and any other body is 415, as at login: a body
///   that does not say it is JSON is not read as JSON.
pub(crate) async fn read_optional_json<T, B>(
    headers: &HeaderMap,
    body: B,
) -> Result<T, Response<Bytes>>
where
    T: DeserializeOwned + Default,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if headers.contains_key(CONTENT_TYPE) {
        if !declares_json(headers) {
            return Err(unsupported_media_type());
        }
        return read_json(headers, body).await;
    }
    let bytes = read_capped(headers, body).await?;
    if !bytes.is_empty() {
        return Err(unsupported_media_type());
    }
    Ok(T::default())
}

/// The body, at most [`MAX_BODY_BYTES`] of it: 413 beyond (from `Content-Length` before
/// reading, or while reading), 400 when it cannot be read.
async fn read_capped<B>(headers: &HeaderMap, body: B) -> Result<Bytes, Response<Bytes>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let too_large = || {
        let mut res = json_error(
            ErrorCode::PayloadTooLarge,
            "the request body is larger than 16 KiB",
        );
        // The rest of the body is not read, so the connection cannot carry another request.
        res.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        res
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(_) => Err(bad_request("the request body could not be read")),
    }
}

/// A JSON object, or the default value for a body of whitespace alone.
fn parse_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, Response<Bytes>> {
    let text = bytes.trim_ascii();
    if text.is_empty() {
        return Ok(T::default());
    }
    if text[0] != b'{' {
        return Err(bad_request("the request body must be a JSON object"));
    }
    serde_json::from_slice(text).map_err(|e| {
        bad_request(match e.classify() {
            serde_json::error::Category::Data => {
                "the JSON body has a field of the wrong type or a duplicate field; token fields are strings"
            }
            _ => "the request body is not valid JSON",
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CONTENT_TYPE, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_application_json_is_json() {
        assert!(declares_json(&with(&["application/json"])));
        assert!(declares_json(&with(&["Application/JSON; charset=utf-8"])));
        assert!(declares_json(&with(&[" application/json ;charset=UTF-8"])));
        // Non-ASCII bytes in a parameter do not change the media type (a fuzzer's find).
        let mut odd = HeaderMap::new();
        odd.insert(
            CONTENT_TYPE,
            HeaderValue::from_bytes(b"Application/JSON; char\xfe\xff\xff\xf4utf-8").unwrap(),
        );
        assert!(declares_json(&odd));
        for other in [
            "text/plain",
            "text/plain; charset=application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "application/json-seq",
            "",
        ] {
            assert!(!declares_json(&with(&[other])), "{other}");
        }
        assert!(!declares_json(&with(&[])), "no Content-Type");
        assert!(
            !declares_json(&with(&["application/json", "text/plain"])),
            "two Content-Type headers"
        );
    }
}
