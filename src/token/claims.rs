//! The JOSE header and the claims of an access token, as they are written and read.
//!
//! Reading borrows from the decoded JSON and keeps up to eight roles inline, so a verification
//! allocates nothing here.

use std::borrow::Cow;
use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

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

#[derive(Deserialize)]
pub(super) struct InHeader<'a> {
    #[serde(borrow)]
    pub(super) alg: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) kid: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) jku: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) jwk: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) x5u: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) x5c: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) crit: Option<IgnoredAny>,
}

/// A JSON NumericDate: an integer or a fraction, seconds since the epoch.
#[derive(Clone, Copy)]
pub(super) struct NumericDate(pub(super) u64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NumericDate, E> {
                u64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("negative"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                    Ok(NumericDate(v as u64))
                } else {
                    Err(E::custom("out of range"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `aud`: a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Audience<'a> {
    #[serde(borrow)]
    One(Cow<'a, str>),
    #[serde(borrow)]
    Many(Vec<Cow<'a, str>>),
}

#[derive(Deserialize)]
pub(super) struct InClaims<'a> {
    #[serde(borrow, default)]
    pub(super) sub: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) sid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) jti: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) iat: Option<NumericDate>,
    #[serde(default)]
    pub(super) exp: Option<NumericDate>,
    #[serde(default)]
    pub(super) nbf: Option<NumericDate>,
    #[serde(borrow, default)]
    pub(super) iss: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) aud: Option<Audience<'a>>,
    #[serde(borrow, default)]
    pub(super) roles: Option<RoleList<'a>>,
}

/// Roles parsed without allocating: up to eight inline, more spill to the heap.
#[derive(Default)]
pub(super) struct RoleList<'a> {
    inline: [Cow<'a, str>; 8],
    len: usize,
    spill: Vec<Cow<'a, str>>,
}

impl<'a> RoleList<'a> {
    pub(super) fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        self.inline[..self.len.min(8)]
            .iter()
            .chain(self.spill.iter())
            .map(|r| &**r)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RoleList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = RoleList<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of role names")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RoleList<'a>, A::Error> {
                #[derive(Deserialize)]
                struct Role<'a>(#[serde(borrow)] Cow<'a, str>);
                let mut list = RoleList::default();
                while let Some(Role(role)) = seq.next_element()? {
                    if list.len < 8 {
                        list.inline[list.len] = role;
                    } else {
                        list.spill.push(role);
                    }
                    list.len += 1;
                }
                Ok(list)
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}
