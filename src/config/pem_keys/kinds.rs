//! What a PEM block holds: the key type and curve its own algorithm identifier names, and the
//! algorithms that fit it.

use pkcs8::{ObjectIdentifier, PrivateKeyInfoRef, SubjectPublicKeyInfoRef};

use super::RSA_ALGORITHMS;
use crate::config::Algorithm;

pub(super) const ID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub(super) const RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(super) const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
pub(super) const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
pub(super) const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Names of the key types and curves an operator may have at hand that this crate does not
/// verify, for the error message.
pub(super) const OTHER_NAMES: [(&str, &str); 10] = [
    ("1.3.132.0.10", "secp256k1"),
    ("1.3.132.0.35", "P-521"),
    ("1.3.36.3.3.2.8.1.1.7", "brainpoolP256r1"),
    ("1.3.36.3.3.2.8.1.1.11", "brainpoolP384r1"),
    ("1.3.36.3.3.2.8.1.1.13", "brainpoolP512r1"),
    ("1.3.101.113", "Ed448"),
    ("1.3.101.110", "X25519"),
    ("1.3.101.111", "X448"),
    ("1.2.840.113549.1.1.10", "RSASSA-PSS (a PSS-only RSA key)"),
    ("1.2.840.10040.4.1", "DSA"),
];

pub(super) fn oid_name(oid: Option<ObjectIdentifier>) -> String {
    let Some(oid) = oid else {
        return "no named curve".to_owned();
    };
    let dotted = oid.to_string();
    match OTHER_NAMES.iter().find(|(o, _)| *o == dotted) {
        Some((_, name)) => format!("{name} (OID {dotted})"),
        None => format!("OID {dotted}"),
    }
}

/// Which key a PEM block holds, as the key's own algorithm identifier says (PKCS#8
/// `PrivateKeyInfo`, SubjectPublicKeyInfo), or the block's tag for PKCS#1 RSA keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Rsa,
    Ed25519,
    P256,
    P384,
    /// An EC key on another curve, named.
    OtherCurve(String),
    /// Another type of key, named.
    Other(String),
}

impl Kind {
    pub(super) fn from_oids(oid: ObjectIdentifier, parameters: Option<ObjectIdentifier>) -> Self {
        match (oid, parameters) {
            (RSA_ENCRYPTION, _) => Self::Rsa,
            (ID_ED25519, _) => Self::Ed25519,
            (ID_EC_PUBLIC_KEY, Some(SECP256R1)) => Self::P256,
            (ID_EC_PUBLIC_KEY, Some(SECP384R1)) => Self::P384,
            (ID_EC_PUBLIC_KEY, curve) => Self::OtherCurve(oid_name(curve)),
            (oid, _) => Self::Other(oid_name(Some(oid))),
        }
    }

    /// The algorithms a key of this kind verifies.
    pub(super) fn algorithms(&self) -> &'static [Algorithm] {
        match self {
            Self::Rsa => &RSA_ALGORITHMS,
            Self::Ed25519 => &[Algorithm::EdDSA],
            Self::P256 => &[Algorithm::ES256],
            Self::P384 => &[Algorithm::ES384],
            Self::OtherCurve(_) | Self::Other(_) => &[],
        }
    }

    /// The algorithm of a key of this kind, when its PEM says it (all but RSA keys).
    pub(super) fn implied(&self) -> Option<Algorithm> {
        match self.algorithms() {
            [alg] => Some(*alg),
            _ => None,
        }
    }

    /// The key and what it signs, as an error message says them.
    pub(super) fn describe(&self) -> String {
        let algs = self
            .algorithms()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>();
        let what = match self {
            Self::Rsa => "an RSA key".to_owned(),
            Self::Ed25519 => "an Ed25519 key".to_owned(),
            Self::P256 => "a P-256 EC key".to_owned(),
            Self::P384 => "a P-384 EC key".to_owned(),
            Self::OtherCurve(curve) => format!("an EC key on curve {curve}"),
            Self::Other(kind) => format!("a key of type {kind}"),
        };
        match algs.as_slice() {
            [] => format!(
                "{what}, which this crate does not verify (it takes Ed25519, P-256, P-384 and \
                 RSA keys)"
            ),
            [.., last] if algs.len() > 1 => format!(
                "{what}, which signs {} or {last}",
                algs[..algs.len() - 1].join(", ")
            ),
            _ => format!("{what}, which signs {}", algs.join(", ")),
        }
    }
}

/// Whether a PEM block holds a private key, and which kind of key; `Err` with the reason when it
/// holds no key this crate reads.
pub(super) fn kind_of(block: &pem::Pem) -> Result<(bool, Kind), String> {
    let der = block.contents();
    let asn1 = |e: &dyn std::fmt::Display| format!("the `{}` block is no key: {e}", block.tag());
    match block.tag() {
        "RSA PUBLIC KEY" => Ok((false, Kind::Rsa)),
        "RSA PRIVATE KEY" => Ok((true, Kind::Rsa)),
        "PUBLIC KEY" => {
            let spki = SubjectPublicKeyInfoRef::try_from(der).map_err(|e| asn1(&e))?;
            let (oid, parameters) = spki.algorithm.oids().map_err(|e| asn1(&e))?;
            Ok((false, Kind::from_oids(oid, parameters)))
        }
        "PRIVATE KEY" => {
            let info = PrivateKeyInfoRef::try_from(der).map_err(|e| asn1(&e))?;
            let (oid, parameters) = info.algorithm.oids().map_err(|e| asn1(&e))?;
            Ok((true, Kind::from_oids(oid, parameters)))
        }
        "ENCRYPTED PRIVATE KEY" => Err("the private key is encrypted: decrypt it \
             (`openssl pkey -in key.pem -out plain.pem`) and keep the result as secret"
            .to_owned()),
        "EC PRIVATE KEY" => Err("a SEC1 `EC PRIVATE KEY` block: convert it to PKCS#8 \
             (`openssl pkcs8 -topk8 -nocrypt -in key.pem -out pkcs8.pem`)"
            .to_owned()),
        tag => Err(format!("a `{tag}` block, which holds no key")),
    }
}
