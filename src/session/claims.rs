//! The app's own claims in access tokens: [`CustomClaims`], the names it may not use, and
//! [`ClaimsError`].

use std::fmt;
use std::sync::Arc;

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Members of a JSON object read as their text, in name order: numbers are carried exactly as
/// written, whatever float parsing the app's `serde_json` does.
pub(crate) type RawMembers = BTreeMap<String, Box<RawValue>>;

/// Claim names the crate writes or that RFC 7519 registers: custom claims never use them.
///
/// `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti` (RFC 7519 §4.1), `sid` and `roles` (this
/// crate's), `typ` (the token type, which belongs in the header and would confuse verifiers
/// that look for it in the claims), and `auth_time`, `amr`, `acr` (OpenID Connect Core §2:
/// the crate writes them from the session's [`AuthContext`](crate::session::AuthContext), and
/// an app's claim of the same name would let it forge a step-up).
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "sid",
    "roles",
    "typ",
    "auth_time",
    "amr",
    "acr",
    "cnf",
];

/// The app's own claims of a session: a JSON object without reserved names
/// ([`RESERVED_CLAIMS`]), kept as its compact JSON text, shared by reference count. The empty
/// object is the default, and costs nothing.
///
/// They go into every access token of the session (beside `sub`, `sid`, `roles`, …), are
/// stored with the session (sealed with the rest of the record when the store seals), and are
/// read back with [`Session::claims`](crate::Session::claims) or, under the `axum` feature, the
/// `Claims<T>` extractor.
///
/// ```
/// use tower_jwt_session::session::{ClaimsError, CustomClaims};
///
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Tenant {
///     tenant: String,
/// }
///
/// let claims = CustomClaims::new(&Tenant { tenant: "acme".into() })?;
/// assert_eq!(claims.as_json(), r#"{"tenant":"acme"}"#);
/// assert_eq!(claims.get::<Tenant>()?, Tenant { tenant: "acme".into() });
///
/// // Reserved names and anything but an object are refused, naming what is wrong.
/// let err = CustomClaims::new(&serde_json::json!({ "sub": "root" })).unwrap_err();
/// assert!(matches!(err, ClaimsError::Reserved(ref name) if name == "sub"));
/// assert!(matches!(CustomClaims::new(&[1, 2]), Err(ClaimsError::NotAnObject)));
/// # Ok::<(), ClaimsError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CustomClaims(Option<Arc<str>>);

impl CustomClaims {
    /// The claims `value` serializes to.
    ///
    /// # Errors
    /// [`ClaimsError::Serialize`] when it does not serialize to JSON,
    /// [`ClaimsError::NotAnObject`] when it is not a JSON object (a struct or a map),
    /// [`ClaimsError::Reserved`] naming the first reserved name it uses.
    pub fn new<T: Serialize + ?Sized>(value: &T) -> Result<Self, ClaimsError> {
        match serde_json::to_value(value).map_err(|e| ClaimsError::Serialize(e.to_string()))? {
            Value::Object(map) => Self::from_map(map),
            _ => Err(ClaimsError::NotAnObject),
        }
    }

    /// The claims of a JSON object's text, as [`as_json`](Self::as_json) gives it (a store
    /// reading back what it kept). A member named twice is refused.
    ///
    /// # Errors
    /// [`ClaimsError::Syntax`] when it is not JSON or names a member twice, the rest as
    /// [`new`](Self::new).
    pub fn from_json(text: &str) -> Result<Self, ClaimsError> {
        if !text.trim_start().starts_with('{') {
            return Err(ClaimsError::NotAnObject);
        }
        match serde_json::from_str::<UniqueObject>(text) {
            Ok(UniqueObject(members)) => {
                if let Some(name) = members.keys().find(|k| is_reserved(k)) {
                    return Err(ClaimsError::Reserved(name.clone()));
                }
                Ok(Self::from_checked_members(&members))
            }
            Err(e) => Err(ClaimsError::Syntax(e.to_string())),
        }
    }

    /// Claims already checked: members of a verified token that are not reserved, as their
    /// text (made compact, numbers untouched).
    pub(crate) fn from_checked_members(members: &RawMembers) -> Self {
        if members.is_empty() {
            return Self(None);
        }
        let mut text = String::from("{");
        for (i, (name, value)) in members.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            // A `String` always serializes.
            text.push_str(&serde_json::to_string(name).unwrap_or_default());
            text.push(':');
            compact_into(&mut text, value.get());
        }
        text.push('}');
        Self(Some(text.into()))
    }

    fn from_map(map: Map<String, Value>) -> Result<Self, ClaimsError> {
        if let Some(name) = map.keys().find(|k| is_reserved(k)) {
            return Err(ClaimsError::Reserved(name.clone()));
        }
        if map.is_empty() {
            return Ok(Self(None));
        }
        // Serialized from values, not parsed: numbers are written as they are.
        let text =
            serde_json::to_string(&map).map_err(|e| ClaimsError::Serialize(e.to_string()))?;
        Ok(Self(Some(text.into())))
    }

    /// Whether there are none (the empty object).
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The compact JSON text of the object: `{}` when empty.
    pub fn as_json(&self) -> &str {
        self.0.as_deref().unwrap_or("{}")
    }

    /// The members' text without the braces, for splicing into a claims set; `None` when empty.
    pub(crate) fn members(&self) -> Option<&str> {
        self.0.as_deref().map(|t| &t[1..t.len() - 1])
    }

    /// Bytes of the JSON text (0 when empty): what a store keeps.
    pub fn len(&self) -> usize {
        self.0.as_deref().map_or(0, str::len)
    }

    /// The claims as `T`, e.g. a struct with the fields the app put there.
    ///
    /// # Errors
    /// [`ClaimsError::Mismatch`] when they do not fit `T`, saying why (serde's message).
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, ClaimsError> {
        serde_json::from_str(self.as_json()).map_err(|e| ClaimsError::Mismatch(e.to_string()))
    }
}

/// The names and sizes only: claim values are the app's data (emails, tenants) and stay out of
/// logs.
impl fmt::Debug for CustomClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomClaims({} bytes)", self.len())
    }
}

/// Whether `name` is one of [`RESERVED_CLAIMS`].
pub(crate) fn is_reserved(name: &str) -> bool {
    RESERVED_CLAIMS.contains(&name)
}

/// Why custom claims were refused or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsError {
    /// Custom claims must be a JSON object (a struct or a map).
    #[error("custom claims must be a JSON object (a struct or a map)")]
    NotAnObject,
    /// A custom claim uses a name the crate writes or RFC 7519 registers.
    #[error(
        "the custom claim `{0}` uses a reserved name (reserved: iss, sub, aud, exp, nbf, iat, jti, sid, roles, typ, auth_time, amr, acr, cnf)"
    )]
    Reserved(String),
    /// The claims make the access token longer than the codec accepts.
    #[error(
        "the custom claims take {claims_bytes} bytes of JSON, which makes an access token of {token_bytes} bytes; at most {max} are accepted"
    )]
    TooLarge {
        /// Bytes of the claims' JSON text.
        claims_bytes: usize,
        /// Bytes of the access token they would make.
        token_bytes: usize,
        /// The codec's limit, [`MAX_TOKEN_LEN`](crate::token::MAX_TOKEN_LEN).
        max: usize,
    },
    /// The roles given with the claims (by a refresh hook) do not follow the session rules.
    #[error("invalid roles: {0}")]
    InvalidRoles(&'static str),
    /// The authentication methods (`amr`) or class (`acr`) a credential check gave break the
    /// rules of [`AuthContext::new`](crate::session::AuthContext::new).
    #[error("invalid authentication context: {0}")]
    InvalidAuthContext(&'static str),
    /// The value does not serialize to JSON.
    #[error("custom claims do not serialize to JSON: {0}")]
    Serialize(String),
    /// The text is not JSON, or names a member twice.
    #[error("custom claims are not a JSON object: {0}")]
    Syntax(String),
    /// The claims do not fit the type they were read as.
    #[error("the session's custom claims do not fit the type asked for: {0}")]
    Mismatch(String),
}

/// Appends valid JSON `raw` without the white space between its tokens (strings untouched).
fn compact_into(out: &mut String, raw: &str) {
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !c.is_ascii_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
}

/// A JSON object whose members are each named once, read as their text.
struct UniqueObject(RawMembers);

impl<'de> serde::Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(UniqueVisitor).map(UniqueObject)
    }
}

/// Collects a map's members as their text, refusing a name seen before.
pub(crate) struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = RawMembers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut access: A,
    ) -> Result<Self::Value, A::Error> {
        let mut members = RawMembers::new();
        while let Some(name) = access.next_key::<String>()? {
            let value = access.next_value::<Box<RawValue>>()?;
            if members.insert(name, value).is_some() {
                return Err(serde::de::Error::custom("a member is named twice"));
            }
        }
        Ok(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_kept_compact_and_read_back() {
        let claims = CustomClaims::from_json(r#"{ "tenant" : "acme", "n": [1, 2] }"#).unwrap();
        assert_eq!(claims.as_json(), r#"{"n":[1,2],"tenant":"acme"}"#);
        assert_eq!(claims.members(), Some(r#""n":[1,2],"tenant":"acme""#));
        let empty = CustomClaims::new(&serde_json::json!({})).unwrap();
        assert!(empty.is_empty() && empty.members().is_none());
        assert_eq!(empty.as_json(), "{}");
        assert_eq!(empty, CustomClaims::default());
    }

    #[test]
    fn every_reserved_name_is_refused_by_name() {
        for name in RESERVED_CLAIMS {
            let value = serde_json::json!({ "ok": 1, *name: "x" });
            assert_eq!(
                CustomClaims::new(&value),
                Err(ClaimsError::Reserved((*name).to_owned()))
            );
            let text = format!(r#"{{"{name}":1}}"#);
            assert_eq!(
                CustomClaims::from_json(&text),
                Err(ClaimsError::Reserved((*name).to_owned()))
            );
        }
    }

    #[test]
    fn non_objects_and_duplicates_are_refused() {
        assert_eq!(CustomClaims::new("text"), Err(ClaimsError::NotAnObject));
        assert_eq!(
            CustomClaims::new(&Option::<u8>::None),
            Err(ClaimsError::NotAnObject)
        );
        assert_eq!(
            CustomClaims::from_json("[1]"),
            Err(ClaimsError::NotAnObject)
        );
        assert!(matches!(
            CustomClaims::from_json("{"),
            Err(ClaimsError::Syntax(_))
        ));
        assert!(matches!(
            CustomClaims::from_json(r#"{"a":1,"a":2}"#),
            Err(ClaimsError::Syntax(_))
        ));
    }

    #[test]
    fn debug_shows_no_values() {
        let claims = CustomClaims::new(&serde_json::json!({ "email": "a@example.com" })).unwrap();
        let shown = format!("{claims:?}");
        assert!(!shown.contains("example"), "{shown}");
    }
}
