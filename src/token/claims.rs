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
    /// When the user last proved who they are, in whole seconds (OpenID Connect Core §2).
    pub(super) auth_time: u64,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(super) amr: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) acr: Option<&'a str>,
    /// The key the token is bound to (RFC 9449 §6.1, RFC 7800).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cnf: Option<OutConfirmation<'a>>,
}

/// `cnf` as written: the DPoP key's thumbprint.
#[derive(Serialize)]
pub(super) struct OutConfirmation<'a> {
    pub(super) jkt: &'a str,
}

/// `cnf` as read: a confirmation this codec does not write (`x5t#S256`, `jwk`) leaves `jkt`
/// empty, and the token is refused: a binding that cannot be checked is never dropped.
#[derive(Deserialize)]
pub(super) struct InConfirmation {
    pub(super) jkt: Option<String>,
}

/// The claims verification reads. A member that is absent or `null` is `None`; a member named
/// twice refuses the token.
///
/// Read by a visitor of its own rather than a derive with `#[serde(flatten)]` for the custom
/// claims: a flattened struct buffers every member of the claims set before it sorts them out,
/// which doubled the cost of a verification.
#[derive(Default)]
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
    pub(super) auth_time: Option<Number>,
    pub(super) amr: Option<Vec<String>>,
    pub(super) acr: Option<String>,
    pub(super) cnf: Option<InConfirmation>,
    /// Every other member: the app's custom claims (and registered names this codec does not
    /// read, such as `typ`, which are dropped).
    pub(super) other: Other,
}

/// The members of a claims set that [`InClaims`] does not name, as their text.
#[derive(Default)]
pub(super) struct Other(pub(super) crate::session::RawMembers);

/// A member's name: one [`InClaims`] reads, or another (the only kind that is copied).
enum Name {
    Sub,
    Sid,
    Jti,
    Iat,
    Exp,
    Nbf,
    Iss,
    Aud,
    Roles,
    AuthTime,
    Amr,
    Acr,
    Cnf,
    Other(String),
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(NameVisitor)
    }
}

struct NameVisitor;

impl serde::de::Visitor<'_> for NameVisitor {
    type Value = Name;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Name, E> {
        Ok(match name {
            "sub" => Name::Sub,
            "sid" => Name::Sid,
            "jti" => Name::Jti,
            "iat" => Name::Iat,
            "exp" => Name::Exp,
            "nbf" => Name::Nbf,
            "iss" => Name::Iss,
            "aud" => Name::Aud,
            "roles" => Name::Roles,
            "auth_time" => Name::AuthTime,
            "amr" => Name::Amr,
            "acr" => Name::Acr,
            "cnf" => Name::Cnf,
            other => Name::Other(other.to_owned()),
        })
    }
}

impl<'de> Deserialize<'de> for InClaims {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

/// Reads the value of member `name` into `slot`, refusing a second one.
fn read_once<'de, A, T>(
    access: &mut A,
    slot: &mut Option<T>,
    seen: &mut bool,
    name: &'static str,
) -> Result<(), A::Error>
where
    A: serde::de::MapAccess<'de>,
    T: Deserialize<'de>,
{
    if std::mem::replace(seen, true) {
        return Err(serde::de::Error::duplicate_field(name));
    }
    *slot = access.next_value()?;
    Ok(())
}

impl<'de> serde::de::Visitor<'de> for ClaimsVisitor {
    type Value = InClaims;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<InClaims, A::Error> {
        let mut c = InClaims::default();
        let mut seen = [false; 13];
        let a = &mut access;
        while let Some(name) = a.next_key::<Name>()? {
            match name {
                Name::Sub => read_once(a, &mut c.sub, &mut seen[0], "sub")?,
                Name::Sid => read_once(a, &mut c.sid, &mut seen[1], "sid")?,
                Name::Jti => read_once(a, &mut c.jti, &mut seen[2], "jti")?,
                Name::Iat => read_once(a, &mut c.iat, &mut seen[3], "iat")?,
                Name::Exp => read_once(a, &mut c.exp, &mut seen[4], "exp")?,
                Name::Nbf => read_once(a, &mut c.nbf, &mut seen[5], "nbf")?,
                Name::Iss => read_once(a, &mut c.iss, &mut seen[6], "iss")?,
                Name::Aud => read_once(a, &mut c.aud, &mut seen[7], "aud")?,
                Name::Roles => read_once(a, &mut c.roles, &mut seen[8], "roles")?,
                Name::AuthTime => read_once(a, &mut c.auth_time, &mut seen[9], "auth_time")?,
                Name::Amr => read_once(a, &mut c.amr, &mut seen[10], "amr")?,
                Name::Acr => read_once(a, &mut c.acr, &mut seen[11], "acr")?,
                Name::Cnf => read_once(a, &mut c.cnf, &mut seen[12], "cnf")?,
                Name::Other(name) => {
                    let value = a.next_value::<Box<serde_json::value::RawValue>>()?;
                    if c.other.0.insert(name, value).is_some() {
                        return Err(serde::de::Error::custom("a member is named twice"));
                    }
                }
            }
        }
        Ok(c)
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
