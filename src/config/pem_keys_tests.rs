//! The key variables of the environment: each refusal names its variable.

use std::collections::HashMap;
use std::io::Write as _;

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const ED: &str = include_str!("../../tests/keys/ed_private.pem");
const ED_PUBLIC: &str = include_str!("../../tests/keys/ed_public.pem");
const ED2_PUBLIC: &str = include_str!("../../tests/keys/ed2_public.pem");
const EC: &str = include_str!("../../tests/keys/ec_private.pem");
const EC384: &str = include_str!("../../tests/keys/ec384_private.pem");
const RSA: &str = include_str!("../../tests/keys/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("../../tests/keys/rsa_public.pem");
const RSA1024: &str = include_str!("../../tests/keys/rsa1024_private.pem");
const RSA1024_PUBLIC: &str = include_str!("../../tests/keys/rsa1024_public.pem");
const RSA2_PUBLIC: &str = include_str!("../../tests/keys/rsa2_public.pem");
const EC_PUBLIC: &str = include_str!("../../tests/keys/ec_public.pem");
const EC384_PUBLIC: &str = include_str!("../../tests/keys/ec384_public.pem");
const SECP256K1: &str = include_str!("../../tests/keys/secp256k1_private.pem");
const SECP256K1_PUBLIC: &str = include_str!("../../tests/keys/secp256k1_public.pem");

/// The variables that hold public keys, inline and as files.
const PUBLIC_KEY_VARIABLES: [&str; 4] = [
    "JWT_PREVIOUS_PUBLIC_KEYS",
    "JWT_PREVIOUS_PUBLIC_KEYS_FILE",
    "JWT_NEXT_PUBLIC_KEYS",
    "JWT_NEXT_PUBLIC_KEYS_FILE",
];

/// `vars` with `name` set to `text`, through a file for the `_FILE` variables.
fn with_keys(
    name: &'static str,
    text: &str,
    vars: &[(&'static str, &str)],
) -> Result<SessionConfig, ConfigError> {
    let file = TempFile::new(text);
    let value = if name.ends_with("_FILE") {
        file.path().to_owned()
    } else {
        text.to_owned()
    };
    let mut all: Vec<(&str, &str)> = vars.to_vec();
    all.push((name, &value));
    from(&all)
}

/// The algorithms of the published keys.
fn published_algs(c: &SessionConfig) -> Vec<Algorithm> {
    c.tokens()
        .verification_pems()
        .iter()
        .map(|k| k.alg)
        .collect()
}

fn from(vars: &[(&str, &str)]) -> Result<SessionConfig, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("JWT_SECRET".to_owned(), SECRET.to_owned())])
        .collect();
    SessionConfig::from_lookup(|k| map.get(k).cloned())
}

/// A temporary file holding `text`, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(text: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("tjs-key-{}-{n}.pem", std::process::id()));
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The error of `vars`, with the variable it names and its text.
fn refusal(vars: &[(&str, &str)]) -> (ConfigError, String) {
    let err = from(vars).unwrap_err();
    let text = err.to_string();
    (err, text)
}

#[test]
fn hs256_needs_no_key_and_is_the_default() {
    let c = from(&[]).unwrap();
    assert!(c.tokens().signing_pem().is_none());
    assert!(c.tokens().verification_pems().is_empty());
    let c = from(&[("JWT_ALGORITHM", "HS256")]).unwrap();
    assert!(c.tokens().signing_pem().is_none());
}

#[test]
fn every_asymmetric_algorithm_reads_its_key_inline_or_from_a_file() {
    for (alg, pem) in [
        (Algorithm::EdDSA, ED),
        (Algorithm::ES256, EC),
        (Algorithm::ES384, EC384),
        (Algorithm::RS256, RSA),
        (Algorithm::PS256, RSA),
    ] {
        let name = alg.as_str();
        let inline = from(&[("JWT_ALGORITHM", name), ("JWT_PRIVATE_KEY", pem)]).unwrap();
        let key = inline.tokens().signing_pem().expect("a signing key");
        assert_eq!(key.alg, alg);
        assert!(key.encoding.is_some());
        let file = TempFile::new(pem);
        let from_file = from(&[
            ("JWT_ALGORITHM", name),
            ("JWT_PRIVATE_KEY_FILE", file.path()),
        ])
        .unwrap();
        assert_eq!(from_file.tokens().signing_pem().unwrap().alg, alg);
        // Line breaks written as `\n`, as a .env file or a CI secret may hold them.
        let escaped = pem.trim_end().replace('\n', "\\n");
        let from_escaped = from(&[("JWT_ALGORITHM", name), ("JWT_PRIVATE_KEY", &escaped)]).unwrap();
        assert_eq!(from_escaped.tokens().signing_pem().unwrap().alg, alg);
    }
}

#[test]
fn an_unknown_or_hmac_algorithm_other_than_hs256_is_refused() {
    for bad in ["none", "HS512", "ed25519", "RS1"] {
        let (err, text) = refusal(&[("JWT_ALGORITHM", bad)]);
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    name: "JWT_ALGORITHM",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(text.contains(bad) && text.contains("EdDSA"), "{text}");
    }
}

#[test]
fn an_asymmetric_algorithm_without_a_key_is_refused() {
    let (err, text) = refusal(&[("JWT_ALGORITHM", "EdDSA")]);
    assert!(
        matches!(
            err,
            ConfigError::Missing {
                name: "JWT_PRIVATE_KEY_FILE",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("JWT_PRIVATE_KEY"), "{text}");
}

#[test]
fn a_private_key_with_hs256_is_refused_not_ignored() {
    let (err, text) = refusal(&[("JWT_PRIVATE_KEY", ED)]);
    assert!(
        matches!(
            err,
            ConfigError::Conflict {
                name: "JWT_ALGORITHM",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("JWT_PRIVATE_KEY is set"), "{text}");
    assert!(
        !text.contains("PRIVATE KEY-----"),
        "the key is never printed: {text}"
    );
}

#[test]
fn both_the_inline_and_the_file_variable_is_refused() {
    let file = TempFile::new(ED);
    let (err, text) = refusal(&[
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY", ED),
        ("JWT_PRIVATE_KEY_FILE", file.path()),
    ]);
    assert!(
        matches!(
            err,
            ConfigError::Conflict {
                name: "JWT_PRIVATE_KEY",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("JWT_PRIVATE_KEY_FILE"), "{text}");
    let (err, _) = refusal(&[
        ("JWT_PREVIOUS_PUBLIC_KEYS", ED_PUBLIC),
        ("JWT_PREVIOUS_PUBLIC_KEYS_FILE", file.path()),
    ]);
    assert!(
        matches!(
            err,
            ConfigError::Conflict {
                name: "JWT_PREVIOUS_PUBLIC_KEYS",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_missing_key_file_names_the_variable_and_path() {
    let (err, text) = refusal(&[
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY_FILE", "/nonexistent/key.pem"),
    ]);
    assert!(
        matches!(
            err,
            ConfigError::KeyFile {
                name: "JWT_PRIVATE_KEY_FILE",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("/nonexistent/key.pem"), "{text}");
}

#[test]
fn a_bad_key_is_refused_naming_the_variable() {
    for garbage in [
        "not a pem at all",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        let (err, text) = refusal(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_PRIVATE_KEY", garbage)]);
        assert!(
            matches!(
                err,
                ConfigError::Key {
                    name: "JWT_PRIVATE_KEY",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(text.starts_with("JWT_PRIVATE_KEY"), "{text}");
    }
    // A public key where the private key belongs.
    let (err, text) = refusal(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_PRIVATE_KEY", ED_PUBLIC)]);
    assert!(
        matches!(
            err,
            ConfigError::KeyRefused {
                name: "JWT_PRIVATE_KEY",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("public key where a private key"), "{text}");
}

#[test]
fn an_algorithm_that_does_not_match_the_key_is_refused() {
    for (alg, pem, holds) in [
        ("ES256", ED, "Ed25519"),
        ("RS256", ED, "Ed25519"),
        ("EdDSA", RSA, "RSA"),
        ("ES256", RSA, "RSA"),
        ("EdDSA", EC, "P-256"),
        ("RS256", EC, "P-256"),
        ("ES256", EC384, "P-384"),
        ("ES384", EC, "P-256"),
    ] {
        let file = TempFile::new(pem);
        let (err, text) = refusal(&[
            ("JWT_ALGORITHM", alg),
            ("JWT_PRIVATE_KEY_FILE", file.path()),
        ]);
        assert!(
            matches!(
                err,
                ConfigError::KeyRefused {
                    name: "JWT_PRIVATE_KEY_FILE",
                    ..
                }
            ),
            "{alg} with {holds}: {err:?}"
        );
        assert!(
            text.contains(holds) && text.contains(alg) && text.contains("JWT_ALGORITHM"),
            "{text}"
        );
    }
}

#[test]
fn an_rsa_key_under_2048_bits_is_refused() {
    let (err, text) = refusal(&[("JWT_ALGORITHM", "RS256"), ("JWT_PRIVATE_KEY", RSA1024)]);
    assert!(
        matches!(
            err,
            ConfigError::KeyRefused {
                name: "JWT_PRIVATE_KEY",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        text.contains("1024 bits") && text.contains("2048"),
        "{text}"
    );
    // As a previous public key too: a weak key verifies forgeries as well.
    let (err, _) = refusal(&[
        ("JWT_ALGORITHM", "RS256"),
        ("JWT_PRIVATE_KEY", RSA),
        (
            "JWT_PREVIOUS_PUBLIC_KEYS",
            &format!("alg: RS256\n{RSA1024_PUBLIC}"),
        ),
    ]);
    assert!(
        matches!(
            err,
            ConfigError::KeyRefused {
                name: "JWT_PREVIOUS_PUBLIC_KEYS",
                ..
            }
        ),
        "{err:?}"
    );
    // And through the builder.
    assert!(matches!(
        TokenSettings::new(SECRET)
            .unwrap()
            .with_private_key_pem(Algorithm::RS256, RSA1024.as_bytes()),
        Err(ConfigError::KeyRefused { .. })
    ));
}

#[test]
fn previous_and_next_public_keys_are_read_with_their_own_algorithms() {
    // Several keys in one file, of several types; the RSA one says its algorithm.
    let previous = TempFile::new(&format!("{ED_PUBLIC}alg: PS256\n{RSA_PUBLIC}"));
    let c = from(&[
        ("JWT_ALGORITHM", "PS256"),
        ("JWT_PRIVATE_KEY", RSA),
        ("JWT_PREVIOUS_PUBLIC_KEYS_FILE", previous.path()),
        ("JWT_NEXT_PUBLIC_KEYS", ED2_PUBLIC),
    ])
    .unwrap();
    let algs: Vec<Algorithm> = c
        .tokens()
        .verification_pems()
        .iter()
        .map(|k| k.alg)
        .collect();
    assert_eq!(algs, [Algorithm::EdDSA, Algorithm::PS256, Algorithm::EdDSA]);
    assert!(
        c.tokens()
            .verification_pems()
            .iter()
            .all(|k| k.encoding.is_none())
    );
    // Public keys alongside HS256 signing: an EC key verifies ES256, an RSA one what it says.
    let c = from(&[(
        "JWT_PREVIOUS_PUBLIC_KEYS",
        &format!("alg: RS256\n{RSA_PUBLIC}{EC_PUBLIC}"),
    )])
    .unwrap();
    let algs: Vec<Algorithm> = c
        .tokens()
        .verification_pems()
        .iter()
        .map(|k| k.alg)
        .collect();
    assert_eq!(algs, [Algorithm::RS256, Algorithm::ES256]);
}

#[test]
fn a_private_key_among_the_public_keys_is_refused() {
    for name in ["JWT_PREVIOUS_PUBLIC_KEYS", "JWT_NEXT_PUBLIC_KEYS"] {
        let (err, text) = refusal(&[(name, &format!("{ED_PUBLIC}{ED}"))]);
        assert!(
            matches!(&err, ConfigError::KeyRefused { name: n, .. } if *n == name),
            "{err:?}"
        );
        assert!(
            text.contains("PRIVATE KEY") && text.contains("-pubout"),
            "{text}"
        );
        assert!(
            !text.contains("MC4CAQAw"),
            "the key is never printed: {text}"
        );
    }
    let (err, _) = refusal(&[("JWT_NEXT_PUBLIC_KEYS", "no pem here")]);
    assert!(
        matches!(
            err,
            ConfigError::Key {
                name: "JWT_NEXT_PUBLIC_KEYS",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_public_key_that_is_not_the_private_keys_is_refused() {
    let err = TokenSettings::new(SECRET)
        .unwrap()
        .with_signing_key_pem(Algorithm::EdDSA, ED.as_bytes(), ED2_PUBLIC.as_bytes())
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::KeyRefused {
                name: "TokenSettings::with_signing_key_pem",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn the_key_variables_are_listed() {
    for name in [
        "JWT_ALGORITHM",
        "JWT_PRIVATE_KEY",
        "JWT_PRIVATE_KEY_FILE",
        "JWT_PREVIOUS_PUBLIC_KEYS",
        "JWT_PREVIOUS_PUBLIC_KEYS_FILE",
        "JWT_NEXT_PUBLIC_KEYS",
        "JWT_NEXT_PUBLIC_KEYS_FILE",
    ] {
        assert!(ENV_VARS.contains(&name), "{name}");
    }
}

#[test]
fn debug_output_has_no_private_key() {
    let c = from(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_PRIVATE_KEY", ED)]).unwrap();
    let text = format!("{c:?}");
    assert!(text.contains("[redacted]"), "{text}");
    assert!(!text.contains("MC4CAQAw"), "{text}");
}

/// An RSA PEM cannot say whether it verifies RS256 or PS512: a line `alg: NAME` before its block
/// says it, in every key variable, and an RSA key without one is refused naming the variable.
#[test]
fn an_rsa_public_key_states_its_algorithm_on_an_alg_line() {
    for name in PUBLIC_KEY_VARIABLES {
        for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
            for signing in [
                &[][..],
                &[("JWT_ALGORITHM", "ES256"), ("JWT_PRIVATE_KEY", EC)][..],
            ] {
                let c = with_keys(name, &format!("alg: {alg}\n{RSA_PUBLIC}"), signing).unwrap();
                assert_eq!(published_algs(&c), [alg.parse().unwrap()], "{name}");
            }
        }
        // Without it, refused: even beside an RSA signing key, whose algorithm it need not share.
        for signing in [
            &[][..],
            &[("JWT_ALGORITHM", "PS256"), ("JWT_PRIVATE_KEY", RSA)][..],
        ] {
            let err = with_keys(name, &format!("{ED_PUBLIC}{RSA2_PUBLIC}"), signing).unwrap_err();
            assert!(
                matches!(err, ConfigError::KeyAlgorithm { name: n, .. } if n == name),
                "{name}: {err:?}"
            );
            let text = err.to_string();
            assert!(
                text.starts_with(name)
                    && text.contains("PEM block 2")
                    && text.contains("alg: PS256"),
                "{text}"
            );
        }
    }
    // Several keys, each with its own line; blank lines and comments between are ignored, and
    // an inline value may write its line breaks as `\n`.
    let text = format!(
        "# the key of 2025\nalg: PS384\n\n{RSA_PUBLIC}\nalg: RS512\n{RSA2_PUBLIC}{EC_PUBLIC}alg: EdDSA\n{ED_PUBLIC}"
    );
    let escaped = text.trim_end().replace('\n', "\\n");
    for text in [&text, &escaped] {
        let c = from(&[("JWT_NEXT_PUBLIC_KEYS", text)]).unwrap();
        assert_eq!(
            published_algs(&c),
            [
                Algorithm::PS384,
                Algorithm::RS512,
                Algorithm::ES256,
                Algorithm::EdDSA
            ]
        );
    }
}

#[test]
fn an_alg_line_that_is_wrong_or_says_nothing_is_refused() {
    for (text, says) in [
        (format!("alg: PS257\n{RSA_PUBLIC}"), "PS257"),
        (format!("alg: ps256\n{RSA_PUBLIC}"), "ps256"),
        (format!("alg=PS256\n{RSA_PUBLIC}"), "alg: NAME"),
        (format!("alg: HS256\n{RSA_PUBLIC}"), "JWT_SECRET"),
        (format!("alg: none\n{RSA_PUBLIC}"), "none"),
        (
            format!("alg: PS256\nalg: RS256\n{RSA_PUBLIC}"),
            "two `alg:` lines",
        ),
        (
            format!("alg: PS256\n{RSA_PUBLIC}alg: RS256\n"),
            "after the last PEM block",
        ),
    ] {
        for name in PUBLIC_KEY_VARIABLES {
            let err = with_keys(name, &text, &[]).unwrap_err();
            assert!(
                matches!(err, ConfigError::KeyAlgorithm { name: n, .. } if n == name),
                "{name}: {err:?}"
            );
            assert!(err.to_string().contains(says), "{err}");
        }
    }
    // A line that names another algorithm than the key's curve or type.
    for (text, alg) in [
        (format!("alg: ES384\n{EC_PUBLIC}"), Algorithm::ES384),
        (format!("alg: ES256\n{EC384_PUBLIC}"), Algorithm::ES256),
        (format!("alg: RS256\n{ED_PUBLIC}"), Algorithm::RS256),
        (format!("alg: EdDSA\n{RSA_PUBLIC}"), Algorithm::EdDSA),
    ] {
        let err = from(&[("JWT_PREVIOUS_PUBLIC_KEYS", &text)]).unwrap_err();
        assert!(
            matches!(err, ConfigError::KeyRefused { name: "JWT_PREVIOUS_PUBLIC_KEYS", alg: a, .. } if a == alg),
            "{err:?}"
        );
    }
    // The private key's line must agree with JWT_ALGORITHM.
    let err = from(&[
        ("JWT_ALGORITHM", "RS256"),
        ("JWT_PRIVATE_KEY", &format!("alg: PS256\n{RSA}")),
    ])
    .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Conflict {
                name: "JWT_PRIVATE_KEY",
                ..
            }
        ),
        "{err:?}"
    );
    let c = from(&[
        ("JWT_ALGORITHM", "PS256"),
        ("JWT_PRIVATE_KEY", &format!("alg: PS256\n{RSA}")),
    ])
    .unwrap();
    assert_eq!(c.tokens().signing_pem().unwrap().alg, Algorithm::PS256);
    // And a builder key's with the algorithm it is given for.
    assert!(matches!(
        TokenSettings::new(SECRET)
            .unwrap()
            .with_verification_key_pem(
                Algorithm::RS256,
                format!("alg: PS256\n{RSA_PUBLIC}").as_bytes()
            ),
        Err(ConfigError::Conflict { .. })
    ));
}

/// One key under two algorithms would verify both while its `kid` stands for one: refused,
/// naming the variable, whichever variables list it.
#[test]
fn one_key_under_two_algorithms_is_refused() {
    let twice = format!("alg: RS256\n{RSA_PUBLIC}alg: PS256\n{RSA_PUBLIC}");
    let err = from(&[("JWT_PREVIOUS_PUBLIC_KEYS", &twice)]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Conflict {
                name: "JWT_PREVIOUS_PUBLIC_KEYS",
                ..
            }
        ),
        "{err:?}"
    );
    let err = from(&[
        ("JWT_ALGORITHM", "RS256"),
        ("JWT_PRIVATE_KEY", RSA),
        ("JWT_NEXT_PUBLIC_KEYS", &format!("alg: PS256\n{RSA_PUBLIC}")),
    ])
    .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Conflict {
                name: "JWT_NEXT_PUBLIC_KEYS",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("JWT_PRIVATE_KEY") && err.to_string().contains("RS256"),
        "{err}"
    );
    // The same key under the same algorithm is one key.
    let c = from(&[
        ("JWT_ALGORITHM", "RS256"),
        ("JWT_PRIVATE_KEY", RSA),
        ("JWT_NEXT_PUBLIC_KEYS", &format!("alg: RS256\n{RSA_PUBLIC}")),
    ])
    .unwrap();
    assert_eq!(published_algs(&c), [Algorithm::RS256]);
}

/// A secp256k1 key is 65 bytes like a P-256 one, and jsonwebtoken reads the curve from the
/// length: it was accepted for ES256 and published as `crv: P-256`. The curve its PEM names
/// decides, wherever the key is given.
#[test]
fn a_secp256k1_key_is_refused_wherever_it_is_given() {
    for name in PUBLIC_KEY_VARIABLES {
        for signing in [
            &[][..],
            &[("JWT_ALGORITHM", "ES256"), ("JWT_PRIVATE_KEY", EC)][..],
        ] {
            let err = with_keys(name, SECP256K1_PUBLIC, signing).unwrap_err();
            assert!(
                matches!(err, ConfigError::KeyAlgorithm { name: n, .. } if n == name),
                "{name}: {err:?}"
            );
            assert!(err.to_string().contains("secp256k1"), "{err}");
            // Stated as ES256, it is still not a P-256 key.
            let err =
                with_keys(name, &format!("alg: ES256\n{SECP256K1_PUBLIC}"), signing).unwrap_err();
            assert!(
                matches!(err, ConfigError::KeyRefused { name: n, alg: Algorithm::ES256, .. } if n == name),
                "{name}: {err:?}"
            );
            assert!(err.to_string().contains("secp256k1"), "{err}");
        }
    }
    for alg in [Algorithm::ES256, Algorithm::ES384] {
        let err = from(&[
            ("JWT_ALGORITHM", alg.as_str()),
            ("JWT_PRIVATE_KEY", SECP256K1),
        ])
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::KeyRefused {
                    name: "JWT_PRIVATE_KEY",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("secp256k1"), "{err}");
        assert!(matches!(
            TokenSettings::new(SECRET)
                .unwrap()
                .with_verification_key_pem(alg, SECP256K1_PUBLIC.as_bytes()),
            Err(ConfigError::KeyRefused { .. })
        ));
    }
}

/// A P-256 public key whose point is not on the curve: refused at startup, not published.
#[test]
fn an_ec_point_off_its_curve_is_refused() {
    let block = pem::parse(EC_PUBLIC).unwrap();
    let mut der = block.contents().to_vec();
    // The last byte of y: the point leaves the curve.
    *der.last_mut().unwrap() ^= 1;
    let off = pem::encode(&pem::Pem::new("PUBLIC KEY", der));
    let err = from(&[("JWT_NEXT_PUBLIC_KEYS", &off)]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::KeyRefused {
                name: "JWT_NEXT_PUBLIC_KEYS",
                alg: Algorithm::ES256,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("not a point on the curve"),
        "{err}"
    );
}
