//! The example server as a process, signing with an asymmetric key from the environment
//! (issue 16): `JWT_ALGORITHM` and `JWT_PRIVATE_KEY_FILE` reach it through
//! `SessionConfig::from_env`, its `/.well-known/jwks.json` names the key its tokens carry, and a
//! key that does not fit stops it with a message naming the variable.
#![cfg(feature = "axum")]

use crate::common;
use crate::common::Harness as _;

use common::Server;

fn key(name: &str) -> String {
    format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn the_example_signs_with_a_key_file_and_publishes_it() {
    let ed = key("ed_private.pem");
    let s = Server::start(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_PRIVATE_KEY_FILE", &ed)]);
    let login = s.login("alice").await;
    let token = login["accessToken"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(s.get_auth("/api/me", token).await.0, 200);

    let res = s
        .client
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=")
    );
    let etag = res.headers()["etag"].clone();
    let jwks: jsonwebtoken::jwk::JwkSet = res.json().await.unwrap();
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].common.key_id, header.kid);
    let again = s
        .client
        .get(s.url("/.well-known/jwks.json"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

#[tokio::test]
async fn with_hs256_the_jwks_is_404() {
    let s = Server::start(&[]);
    let (status, body) = s.get("/.well-known/jwks.json").await;
    common::assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn a_key_that_does_not_fit_stops_the_example_naming_the_variable() {
    for (alg, file, says) in [
        ("ES256", "ed_private.pem", "Ed25519"),
        ("RS256", "rsa1024_private.pem", "1024 bits"),
        ("EdDSA", "ed_public.pem", "public key"),
    ] {
        let path = key(file);
        let output =
            common::run_to_exit(&[("JWT_ALGORITHM", alg), ("JWT_PRIVATE_KEY_FILE", &path)]);
        assert!(!output.status.success(), "{alg} with {file}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("JWT_PRIVATE_KEY_FILE") && stderr.contains(says),
            "{alg} with {file}: {stderr}"
        );
        assert!(!stderr.contains("BEGIN"), "no PEM echoed: {stderr}");
    }
    let output = common::run_to_exit(&[("JWT_ALGORITHM", "EdDSA")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_PRIVATE_KEY_FILE"), "{stderr}");
}

/// The example through its environment: each published key carries its own algorithm, an RSA
/// key's from the `alg:` line of its file; an RSA key without one, or a secp256k1 key, stops it
/// with a message naming the variable.
#[tokio::test]
async fn the_example_publishes_each_key_with_its_own_algorithm() {
    let dir = std::env::temp_dir().join(format!("tjs-example-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let read = |name: &str| std::fs::read_to_string(key(name)).unwrap();
    let previous = write(
        "previous.pub",
        format!("alg: PS384\n{}", read("rsa_public.pem")),
    );
    let next = write("next.pub", read("ec384_public.pem"));
    let ed = key("ed_private.pem");
    let s = Server::start(&[
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY_FILE", &ed),
        ("JWT_PREVIOUS_PUBLIC_KEYS_FILE", &previous),
        ("JWT_NEXT_PUBLIC_KEYS_FILE", &next),
    ]);
    let jwks: jsonwebtoken::jwk::JwkSet = s
        .client
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let algs: Vec<String> = jwks
        .keys
        .iter()
        .map(|k| k.common.key_algorithm.unwrap().to_string())
        .collect();
    assert_eq!(algs, ["EdDSA", "PS384", "ES384"]);
    drop(s);

    for (name, text, says) in [
        (
            "JWT_PREVIOUS_PUBLIC_KEYS_FILE",
            read("rsa_public.pem"),
            "alg: PS256",
        ),
        (
            "JWT_NEXT_PUBLIC_KEYS_FILE",
            read("secp256k1_public.pem"),
            "secp256k1",
        ),
    ] {
        let path = write("refused.pub", text);
        let output = common::run_to_exit(&[
            ("JWT_ALGORITHM", "EdDSA"),
            ("JWT_PRIVATE_KEY_FILE", &ed),
            (name, &path),
        ]);
        assert!(!output.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(name) && stderr.contains(says),
            "{name}: {stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
