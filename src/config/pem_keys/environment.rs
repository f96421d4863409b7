//! The key variables of the environment: `JWT_ALGORITHM`, `JWT_PRIVATE_KEY[_FILE]`,
//! `JWT_PREVIOUS_PUBLIC_KEYS[_FILE]`, `JWT_NEXT_PUBLIC_KEYS[_FILE]`, and the `alg:` lines that
//! state a block's algorithm.

use super::kinds::{Kind, kind_of};
use super::{ENV_ALGORITHMS, family, key_error, load_private, load_public, no_algorithm, refused};
use crate::config::env::Env;
use crate::config::keys::PemKey;
use crate::config::{Algorithm, ConfigError};

/// The PEM in `inline` (the PEM itself) or in the file `file` names, which may not both be
/// set; with the name of the variable it came from. In an inline value a literal `\n` stands
/// for a line break, as many deployment tools cannot hold one.
pub(super) fn pem_variable(
    env: &Env<'_>,
    inline: &'static str,
    file: &'static str,
) -> Result<Option<(&'static str, String)>, ConfigError> {
    match (env.raw(inline), env.get(file)) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict {
            name: inline,
            reason: format!("both {inline} and {file} are set"),
            fix: format!("set one of them: {inline} to the PEM itself, or {file} to its path"),
        }),
        (Some(pem), None) => {
            let pem = if pem.contains('\n') {
                pem
            } else {
                pem.replace("\\n", "\n")
            };
            Ok(Some((inline, pem)))
        }
        (None, Some(path)) => std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "it is not text".to_owned()))
            .map(|pem| Some((file, pem)))
            .map_err(|reason| ConfigError::KeyFile {
                name: file,
                path,
                reason,
            }),
        (None, None) => Ok(None),
    }
}

/// A PEM block of a key variable, with the algorithm an `alg:` line before it states.
pub(super) struct Stated<'a> {
    pub(super) alg: Option<Algorithm>,
    pub(super) pem: &'a str,
}

/// Splits the text of a key variable into its PEM blocks, each with the algorithm stated on a
/// line `alg: NAME` before it (after the previous block). Other text between blocks is ignored,
/// as every PEM reader ignores it (RFC 7468 §2), so a file with `alg:` lines stays a PEM file
/// for `openssl`; a line that starts `alg` and a `:` or `=` must be an exact statement.
///
/// # Errors
/// [`ConfigError::KeyAlgorithm`] for an `alg:` line that names no asymmetric algorithm, two of
/// them before one block, or one after the last block.
pub(super) fn stated_blocks<'a>(
    name: &'static str,
    text: &'a str,
) -> Result<Vec<Stated<'a>>, ConfigError> {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    let mut blocks = Vec::new();
    let mut rest = text;
    loop {
        let number = blocks.len() + 1;
        let block_end = rest.find(BEGIN).map(|start| {
            // The end of `-----END TAG-----`, or of the text (then `pem` says what is missing).
            let end = rest[start..]
                .find(END)
                .map(|e| start + e + END.len())
                .and_then(|e| rest[e..].find("-----").map(|c| e + c + "-----".len()))
                .unwrap_or(rest.len());
            (start, end)
        });
        let before = &rest[..block_end.map_or(rest.len(), |(start, _)| start)];
        let alg = alg_line(name, before, number)?;
        let Some((start, end)) = block_end else {
            if alg.is_some() {
                return Err(no_algorithm(
                    name,
                    "an `alg:` line after the last PEM block states the algorithm of no key",
                ));
            }
            return Ok(blocks);
        };
        blocks.push(Stated {
            alg,
            pem: &rest[start..end],
        });
        rest = &rest[end..];
    }
}

/// The algorithm an `alg: NAME` line in `text` states for PEM block `number`, if any.
pub(super) fn alg_line(
    name: &'static str,
    text: &str,
    number: usize,
) -> Result<Option<Algorithm>, ConfigError> {
    let mut stated = None;
    for line in text.lines().map(str::trim) {
        let Some(rest) = line
            .get(..3)
            .filter(|word| word.eq_ignore_ascii_case("alg"))
            .map(|_| line[3..].trim_start())
        else {
            continue;
        };
        let value = match rest.strip_prefix(':') {
            Some(value) => value.trim(),
            None if rest.starts_with('=') => {
                return Err(no_algorithm(
                    name,
                    format!(
                        "the line `{line}` before PEM block {number}: write the algorithm as \
                         `alg: NAME`, e.g. `alg: PS256`"
                    ),
                ));
            }
            // A word that starts with "alg" (explanatory text).
            None => continue,
        };
        let alg = match value.parse::<Algorithm>() {
            Ok(alg) if !alg.is_hmac() => alg,
            Ok(alg) => {
                return Err(no_algorithm(
                    name,
                    format!(
                        "the line `{line}` before PEM block {number} names {alg}, which is \
                         keyed with JWT_SECRET, not a PEM key"
                    ),
                ));
            }
            Err(unknown) => {
                return Err(no_algorithm(
                    name,
                    format!("the line `{line}` before PEM block {number}: {unknown}"),
                ));
            }
        };
        if stated.replace(alg).is_some() {
            return Err(no_algorithm(
                name,
                format!("PEM block {number} has two `alg:` lines before it; keep one"),
            ));
        }
    }
    Ok(stated)
}

/// The public keys of a key variable, each with its own algorithm: the one its `alg:` line
/// states, else the one its curve implies. An RSA key must state it.
pub(super) fn public_keys(
    name: &'static str,
    text: &str,
    signing: Algorithm,
) -> Result<Vec<PemKey>, ConfigError> {
    let blocks = stated_blocks(name, text)?;
    if blocks.is_empty() {
        return Err(key_error(
            name,
            signing,
            "no PEM block found (expected one or more `-----BEGIN PUBLIC KEY-----` blocks)",
        ));
    }
    let mut keys = Vec::with_capacity(blocks.len());
    for (index, stated) in blocks.iter().enumerate() {
        let number = index + 1;
        let block = pem::parse(stated.pem).map_err(|e| key_error(name, signing, e.to_string()))?;
        if !matches!(block.tag(), "PUBLIC KEY" | "RSA PUBLIC KEY") {
            return Err(refused(
                name,
                signing,
                format!(
                    "it holds a `{}` block, and only public keys belong there \
                     (`openssl pkey -in private.pem -pubout` prints the public key)",
                    block.tag()
                ),
            ));
        }
        let alg = match stated.alg {
            Some(alg) => alg,
            None => {
                let (_, kind) =
                    kind_of(&block).map_err(|reason| key_error(name, signing, reason))?;
                match kind.implied() {
                    Some(alg) => alg,
                    None if kind == Kind::Rsa => {
                        return Err(no_algorithm(
                            name,
                            format!(
                                "PEM block {number} is an RSA public key, which may verify RS256, \
                                 RS384, RS512, PS256, PS384 or PS512, and its PEM cannot say which: \
                                 write the algorithm of its tokens on the line before its \
                                 `-----BEGIN` line, e.g. `alg: PS256`"
                            ),
                        ));
                    }
                    None => {
                        return Err(no_algorithm(
                            name,
                            format!("PEM block {number} holds {}", kind.describe()),
                        ));
                    }
                }
            }
        };
        keys.push(load_public(name, alg, stated.pem.as_bytes())?);
    }
    Ok(keys)
}

/// What the key variables of the environment say.
pub(crate) struct EnvKeys {
    /// The signing key, when `JWT_ALGORITHM` is asymmetric.
    pub(crate) signing: Option<PemKey>,
    /// Previous and next public keys: accepted and published.
    pub(crate) published: Vec<PemKey>,
}

/// Reads `JWT_ALGORITHM`, `JWT_PRIVATE_KEY` / `JWT_PRIVATE_KEY_FILE`, and the previous and next
/// public keys.
///
/// # Errors
/// A [`ConfigError`] naming the variable: an unknown algorithm, a private key with HS256 or
/// none with an asymmetric algorithm, both the inline and the file variable set, a file that
/// cannot be read, a key that does not load, does not fit the algorithm or is too weak, an RSA
/// public key without its `alg:` line.
pub(crate) fn read_env_keys(env: &Env<'_>) -> Result<EnvKeys, ConfigError> {
    let alg = match env.get("JWT_ALGORITHM") {
        None => Algorithm::HS256,
        Some(text) => match text.parse::<Algorithm>() {
            Ok(alg) if alg == Algorithm::HS256 || family(alg).is_some() => alg,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "JWT_ALGORITHM",
                    value: text,
                    expected: ENV_ALGORITHMS,
                });
            }
        },
    };
    let private = pem_variable(env, "JWT_PRIVATE_KEY", "JWT_PRIVATE_KEY_FILE")?;
    let signing = match (family(alg), private) {
        (None, None) => None,
        (None, Some((name, _))) => {
            return Err(ConfigError::Conflict {
                name: "JWT_ALGORITHM",
                reason: format!(
                    "{name} is set, but JWT_ALGORITHM is HS256 (the default), which signs with JWT_SECRET"
                ),
                fix: format!(
                    "set JWT_ALGORITHM to the key's algorithm (EdDSA, ES256, RS256, ...), or unset {name}"
                ),
            });
        }
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                name: "JWT_PRIVATE_KEY_FILE",
                hint: "JWT_ALGORITHM names an asymmetric algorithm, which signs with a private key: \
                       set JWT_PRIVATE_KEY_FILE to a PKCS#8 PEM file (or JWT_PRIVATE_KEY to the PEM itself)",
            });
        }
        (Some(_), Some((name, pem))) => Some(load_private(name, alg, pem.as_bytes())?),
    };
    let mut published = Vec::new();
    for (inline, file) in [
        ("JWT_PREVIOUS_PUBLIC_KEYS", "JWT_PREVIOUS_PUBLIC_KEYS_FILE"),
        ("JWT_NEXT_PUBLIC_KEYS", "JWT_NEXT_PUBLIC_KEYS_FILE"),
    ] {
        if let Some((name, text)) = pem_variable(env, inline, file)? {
            published.extend(public_keys(name, &text, alg)?);
        }
    }
    Ok(EnvKeys { signing, published })
}
