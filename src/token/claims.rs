//! The JOSE header and the claims of an access token, as they are written and read.
//!
//! Reading goes through `jsonwebtoken::decode`, which wants owned claims. Each member is typed
//! strictly, so a registered claim of the wrong type refuses the token even where no check of
//! jsonwebtoken's would look at it (an `iss` array, an `aud` number with no audience configured,
//! a NumericDate written as a string); a duplicate member is refused by serde.

use serde::{Deserialize, Serialize};
use serde_json::Number;

#[derive(Serialize)]
pub(super) struct OutHeader<'a> {
    pub(super) alg: &'a str,
    pub(super) typ: &'a str,
    pub(super) kid: &'a str,
}

#[derive(Serialize)]
pub(super) struct OutClaims<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) iss: Option<&'a str>,
    pub(super) sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) aud: Option<&'a str>,
    pub(super) exp: u64,
    pub(super) iat: u64,
    pub(super) jti: &'a str,
    pub(super) sid: &'a str,
    pub(super) roles: &'a [String],
}

/// The claims verification reads. A member that is absent or `null` is `None`.
#[derive(Deserialize)]
pub(super) struct InClaims {
    pub(super) sub: Option<String>,
    pub(super) sid: Option<String>,
    pub(super) jti: Option<String>,
    pub(super) iat: Option<Number>,
    pub(super) exp: Option<Number>,
    pub(super) nbf: Option<Number>,
    /// One StringOrURI (RFC 7519 §4.1.1), never an array; its value is jsonwebtoken's check.
    pub(super) iss: Option<String>,
    /// Its value is jsonwebtoken's check; read here for its presence and its type.
    pub(super) aud: Option<Audience>,
    pub(super) roles: Option<Vec<String>>,
    /// Every other member: the app's custom claims (and registered names this codec does not
    /// read, such as `typ`, which are dropped). A member named twice is refused.
    #[serde(flatten)]
    pub(super) other: Other,
}

/// The members of a claims set that [`InClaims`] does not name, each named once.
#[derive(Default)]
pub(super) struct Other(pub(super) serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for Other {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(crate::session::UniqueVisitor).map(Other)
    }
}

/// `aud`: a string or an array of strings (RFC 7519 §4.1.3). Read for its type only.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Audience {
    One(#[allow(dead_code)] String),
    Many(#[allow(dead_code)] Vec<String>),
}

/// A NumericDate (RFC 7519 §2) in whole seconds: an integer up to `u64::MAX`, or a fraction
/// rounded down; `None` when negative or past `u64::MAX`.
pub(super) fn numeric_date(n: &Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|s| *s >= 0.0 && *s < u64::MAX as f64)
            .map(|s| s as u64)
    })
}
