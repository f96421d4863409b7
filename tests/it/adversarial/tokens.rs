//! Forged and tampered tokens: `alg` none, algorithm confusion, `kid` injection, key-reference
//! headers, changed claims and moved signatures.

// ---------------------------------------------------------------------------------------------
// RFC 8725 §2.1 / §3.1, OWASP "None hashing algorithm": alg none in every spelling.
// ---------------------------------------------------------------------------------------------
mod alg_none {
    use crate::adversarial::*;

    #[tokio::test]
    async fn unsecured_tokens_are_refused_in_every_spelling() {
        let cases = Cases::new("alg none");
        let s = start(&[]);
        let (_, _, claims) = session(&s, "alice").await;
        let payload = claims.to_string();
        // Control: the same claims under the server's own header are accepted.
        me_allowed(&cases, &s, &forge(&good_header(), &claims), "alice").await;

        for alg in ["none", "None", "NONE", "nOnE", "", " none", "none "] {
            let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid(SECRET)}).to_string();
            let signing_input = format!("{}.{}", b64(&header), b64(&payload));
            for token in [
                // RFC 7515 §A.5: an unsecured JWS has an empty signature.
                format!("{signing_input}."),
                // No signature part at all.
                signing_input.clone(),
                // A signature that is not empty, but signs nothing.
                format!("{signing_input}.{}", b64("garbage")),
                // A valid HS256 signature over the same input: the header's alg still rules.
                jws_raw(&header, &payload, SECRET.as_bytes()),
            ] {
                me_refused(&cases, &s, &token, "invalid_token").await;
                validate_refuses(&cases, &s, &token, false).await;
            }
        }
        // No alg at all, or alg of the wrong type.
        for header in [
            json!({"typ": "at+jwt", "kid": kid(SECRET)}),
            json!({"alg": null, "typ": "at+jwt", "kid": kid(SECRET)}),
            json!({"alg": ["none"], "typ": "at+jwt", "kid": kid(SECRET)}),
            json!({"alg": 0, "typ": "at+jwt", "kid": kid(SECRET)}),
        ] {
            me_refused(&cases, &s, &forge(&header, &claims), "invalid_token").await;
        }
        still_serving(&s).await;
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 8725 §2.1 / §3.1, OWASP "algorithm confusion". The example server signs HS256 only (its
// configuration has no PEM key), so end to end this tries other algorithms against its HMAC
// key; the HS256-signed-with-the-RS256-public-key attack needs an RS256 key configured, and is
// driven through the public `TokenSettings::with_signing_key_pem` / `TokenCodec` / `SessionLayer` API
// in `codec_level` below.
// ---------------------------------------------------------------------------------------------
mod algorithm_confusion {
    use crate::adversarial::*;
    use http_body_util::Full;
    use tower::{Layer, ServiceExt, service_fn};
    use tower_jwt_session::{
        SessionConfig, SessionManager, config::Algorithm, response::AuthError, session::SessionId,
        token::TokenCodec,
    };

    #[tokio::test]
    async fn other_algorithms_against_the_hmac_key_are_refused() {
        let cases = Cases::new("algorithm confusion (HTTP)");
        let s = start(&[]);
        let (_, _, claims) = session(&s, "alice").await;
        let payload = claims.to_string();
        for alg in [
            "HS384", "HS512", "RS256", "RS512", "PS256", "ES256", "ES384", "EdDSA", "hs256",
            "HS256 ", "Hs256",
        ] {
            let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid(SECRET)}).to_string();
            let token = jws_raw(&header, &payload, SECRET.as_bytes());
            me_refused(&cases, &s, &token, "invalid_token").await;
            validate_refuses(&cases, &s, &token, false).await;
        }
        still_serving(&s).await;
    }

    /// An HS256 token keyed with the RS256 public key (the classic confusion) against a codec
    /// that signs RS256 and, wrongly configured, also allows HS256.
    #[test]
    fn hs256_keyed_with_the_public_key_is_refused_by_the_codec() {
        let cases = Cases::new("algorithm confusion (codec)");
        let keys = [
            (
                Algorithm::RS256,
                &include_bytes!("../../keys/rsa_private.pem")[..],
                &include_bytes!("../../keys/rsa_public.pem")[..],
            ),
            (
                Algorithm::ES256,
                include_bytes!("../../keys/ec_private.pem"),
                include_bytes!("../../keys/ec_public.pem"),
            ),
            (
                Algorithm::EdDSA,
                include_bytes!("../../keys/ed_private.pem"),
                include_bytes!("../../keys/ed_public.pem"),
            ),
        ];
        for (alg, private, public) in keys {
            let config = SessionConfig::from_tokens(
                tower_jwt_session::config::TokenSettings::new(SECRET)
                    .unwrap()
                    .with_signing_key_pem(alg, private, public)
                    .unwrap()
                    .with_allowed_algorithms([alg, Algorithm::HS256]),
            );
            let codec = TokenCodec::new(config.tokens(), config.rules()).unwrap();
            let genuine = codec.issue("alice", SessionId::random(), &["user".to_owned()]);
            assert!(codec.verify(&genuine.token).is_ok(), "{alg:?} control");
            let asym_kid = part(&genuine.token, 0)["kid"].as_str().unwrap().to_owned();
            let claims = with(part(&genuine.token, 1), "roles", json!(["admin"]));
            let payload = claims.to_string();
            let trimmed = std::str::from_utf8(public).unwrap().trim().as_bytes();
            for (header_alg, key) in [
                ("HS256", public),
                ("HS256", trimmed),
                ("HS384", public),
                ("HS512", public),
            ] {
                let header = json!({"alg": header_alg, "typ": "at+jwt", "kid": asym_kid});
                let token = jws_raw(&header.to_string(), &payload, key);
                cases.tick();
                assert_eq!(
                    codec.verify(&token).unwrap_err(),
                    AuthError::UnsupportedAlgorithm,
                    "{alg:?} / {header_alg}"
                );
            }
            // The asymmetric alg with an HMAC where the signature belongs.
            let header = json!({"alg": format!("{alg:?}"), "typ": "at+jwt", "kid": asym_kid});
            let token = jws_raw(&header.to_string(), &payload, public);
            cases.tick();
            assert!(
                codec.verify(&token).is_err(),
                "{alg:?} with an HMAC signature"
            );
            // With the default allow-list (the signing key's algorithm alone), an HS256 token
            // under the HMAC key's own kid is refused too: HS256 must be allowed explicitly.
            let default_list = SessionConfig::from_tokens(
                tower_jwt_session::config::TokenSettings::new(SECRET)
                    .unwrap()
                    .with_signing_key_pem(alg, private, public)
                    .unwrap(),
            );
            let codec = TokenCodec::new(default_list.tokens(), default_list.rules()).unwrap();
            cases.tick();
            assert_eq!(
                codec.verify(&forge(&good_header(), &claims)).unwrap_err(),
                AuthError::UnsupportedAlgorithm,
                "{alg:?}: HMAC kid"
            );
        }
    }

    /// The same attack through the whole layer, as a hyper or axum app would run it.
    #[tokio::test]
    async fn hs256_keyed_with_the_public_key_is_refused_by_the_layer() {
        let cases = Cases::new("algorithm confusion (layer)");
        let public = &include_bytes!("../../keys/rsa_public.pem")[..];
        let config = SessionConfig::from_tokens(
            tower_jwt_session::config::TokenSettings::new(SECRET)
                .unwrap()
                .with_signing_key_pem(
                    Algorithm::RS256,
                    include_bytes!("../../keys/rsa_private.pem"),
                    public,
                )
                .unwrap()
                .with_allowed_algorithms([Algorithm::RS256, Algorithm::HS256]),
        );
        let manager = SessionManager::new(config).unwrap();
        let pair = manager
            .create_session(
                tower_jwt_session::manager::NewSession::new("alice").roles(&["user".to_owned()]),
            )
            .await
            .unwrap();
        let service = tower_jwt_session::SessionLayer::from_manager(&manager).layer(service_fn(
            |_req: http::Request<Full<bytes::Bytes>>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                    bytes::Bytes::new(),
                )))
            },
        ));
        let call = |token: String| {
            let service = service.clone();
            async move {
                let request = http::Request::builder()
                    .header("authorization", format!("Bearer {token}"))
                    .body(Full::<bytes::Bytes>::default())
                    .unwrap();
                service.oneshot(request).await.unwrap()
            }
        };
        cases.tick();
        assert_eq!(call(pair.access_token.clone()).await.status(), 200);
        let rsa_kid = part(&pair.access_token, 0)["kid"].clone();
        let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": rsa_kid});
        let claims = with(part(&pair.access_token, 1), "roles", json!(["admin"]));
        let token = jws_raw(&header.to_string(), &claims.to_string(), public);
        cases.tick();
        let res = call(token).await;
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.extensions().get::<AuthError>(),
            Some(&AuthError::UnsupportedAlgorithm)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 8725 §3.10, OWASP: kid injection (path traversal, SQL, oversized) and unknown keys.
// ---------------------------------------------------------------------------------------------
mod kid_injection {
    use crate::adversarial::*;

    const OLD_SECRET: &str = "an-older-secret-an-older-secret-an-older";

    #[tokio::test]
    async fn injected_and_unknown_kids_are_refused() {
        let cases = Cases::new("kid injection / unknown kid");
        let s = start(&[]);
        let (_, _, claims) = session(&s, "alice").await;
        let long = "k".repeat(5000);
        let huge = "k".repeat(20_000);
        let mut kids: Vec<Value> = [
            "../../etc/passwd",
            "/dev/null",
            "../../../../../../dev/null",
            "' OR '1'='1",
            "1; DROP TABLE keys; --",
            "\" UNION SELECT 'secret' --",
            "$(cat /etc/passwd)",
            "|id",
            "%00",
            "\u{0}",
            "http://127.0.0.1/keys",
            "",
            "unknown",
            &long,
            &huge,
        ]
        .into_iter()
        .map(Value::from)
        .collect();
        // A near miss of the real kid, and the real kid in the wrong type.
        let real = kid(SECRET);
        kids.push(json!(real.to_uppercase()));
        kids.push(json!(format!("{real} ")));
        kids.push(json!(format!("{real}\u{0}")));
        kids.push(json!([real.clone()]));
        kids.push(json!({"kid": real}));
        kids.push(json!(12));
        kids.push(Value::Null);
        for k in kids {
            let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": k});
            let token = forge(&header, &claims);
            me_refused(&cases, &s, &token, "invalid_token").await;
        }
        // No kid at all.
        let header = without(good_header(), "kid");
        me_refused(&cases, &s, &forge(&header, &claims), "invalid_token").await;

        // The kid of a key this server does not hold, signed with that key.
        let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid(OLD_SECRET)});
        let foreign = jws_raw(
            &header.to_string(),
            &claims.to_string(),
            OLD_SECRET.as_bytes(),
        );
        me_refused(&cases, &s, &foreign, "invalid_token").await;
        // The server's kid, signed with another key.
        let wrong_key = jws_raw(
            &good_header().to_string(),
            &claims.to_string(),
            OLD_SECRET.as_bytes(),
        );
        me_refused(&cases, &s, &wrong_key, "invalid_token").await;
        still_serving(&s).await;
        drop(s);

        // With the old secret configured as a previous key, its kid verifies its own tokens and
        // nothing else.
        let s = start(&[("JWT_PREVIOUS_SECRETS", OLD_SECRET)]);
        let (_, _, claims) = session(&s, "alice").await;
        let old = jws_raw(
            &header.to_string(),
            &claims.to_string(),
            OLD_SECRET.as_bytes(),
        );
        me_allowed(&cases, &s, &old, "alice").await;
        let mislabelled = jws_raw(&header.to_string(), &claims.to_string(), SECRET.as_bytes());
        me_refused(&cases, &s, &mislabelled, "invalid_token").await;
        still_serving(&s).await;
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 8725 §3.10 / RFC 7515 §4.1.2–§4.1.6, §4.1.11: jku, jwk, x5u, x5c and crit headers are
// refused, and never followed: a listener named by them sees no connection.
// ---------------------------------------------------------------------------------------------
mod key_references {
    use crate::adversarial::*;

    #[tokio::test]
    async fn key_reference_headers_are_refused_and_never_fetched() {
        let cases = Cases::new("jku/jwk/x5u/x5c/crit");
        let s = start(&[]);
        let (_, _, claims) = session(&s, "alice").await;
        let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let trap_url = format!("http://{}/jwks.json", trap.local_addr().unwrap());
        let attacker_key = "attacker-key-attacker-key-attacker-key!!";
        let extras = [
            ("jku", json!(trap_url)),
            ("x5u", json!(trap_url)),
            (
                "jwk",
                json!({"kty": "oct", "k": b64(attacker_key), "kid": kid(SECRET)}),
            ),
            (
                "x5c",
                json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
            ),
            ("x5c", json!([])),
            ("crit", json!(["exp"])),
            ("crit", json!([])),
            ("crit", json!("b64")),
            ("jku", json!("")),
            ("jku", json!(12)),
        ];
        for (name, value) in extras {
            let header = with(good_header(), name, value);
            // Signed with the server's key: only the header is wrong.
            let token = forge(&header, &claims);
            me_refused(&cases, &s, &token, "invalid_token").await;
            validate_refuses(&cases, &s, &token, false).await;
            // Signed with the key the header offers.
            let token = jws_raw(
                &header.to_string(),
                &claims.to_string(),
                attacker_key.as_bytes(),
            );
            me_refused(&cases, &s, &token, "invalid_token").await;
        }
        // An embedded key without the server's kid, signed with it.
        let header = json!({"alg": "HS256", "typ": "at+jwt",
            "jwk": {"kty": "oct", "k": b64(attacker_key)}});
        let token = jws_raw(
            &header.to_string(),
            &claims.to_string(),
            attacker_key.as_bytes(),
        );
        me_refused(&cases, &s, &token, "invalid_token").await;
        assert!(
            tokio::time::timeout(Duration::from_millis(500), trap.accept())
                .await
                .is_err(),
            "the server fetched a key from a URL in a token header"
        );
        still_serving(&s).await;
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 8725 §2.x / RFC 7515 §5.2, OWASP "token tampering": changed claims, moved signatures,
// broken serializations, wrong `typ` (RFC 9068 §2.1).
// ---------------------------------------------------------------------------------------------
mod tampering {
    use crate::adversarial::*;

    #[tokio::test]
    async fn tampered_and_spliced_tokens_are_refused() {
        let cases = Cases::new("tampered / spliced tokens");
        let s = start(&[]);
        let (alice, _, alice_claims) = session(&s, "alice").await;
        let (bob, _, _) = session(&s, "bob").await;
        let a: Vec<&str> = alice.split('.').collect();
        let b: Vec<&str> = bob.split('.').collect();
        me_allowed(&cases, &s, &alice, "alice").await;

        let escalated =
            b64(with(alice_claims.clone(), "roles", json!(["user", "admin"])).to_string());
        let other_user = b64(with(alice_claims.clone(), "sub", json!("admin")).to_string());
        let later = b64(with(alice_claims.clone(), "exp", json!(now() + 86_400 * 365)).to_string());
        let mut flipped_sig = a[2].as_bytes().to_vec();
        flipped_sig[3] = if flipped_sig[3] == b'A' { b'B' } else { b'A' };
        let flipped_sig = String::from_utf8(flipped_sig).unwrap();
        let padded = |p: &str| format!("{p}==");
        let standard_alphabet = {
            let sig = URL_SAFE_NO_PAD.decode(a[2]).unwrap();
            STANDARD.encode(sig)
        };
        let tampered = [
            // Claims changed under the original signature.
            format!("{}.{escalated}.{}", a[0], a[2]),
            format!("{}.{other_user}.{}", a[0], a[2]),
            format!("{}.{later}.{}", a[0], a[2]),
            // Spliced: alice's header and payload with bob's signature, and the reverse.
            format!("{}.{}.{}", a[0], a[1], b[2]),
            // (alice's and bob's headers are the same bytes: no header splice.)
            format!("{}.{}.{}", a[0], b[1], a[2]),
            // The signature changed, shortened, doubled, removed, or re-encoded.
            format!("{}.{}.{flipped_sig}", a[0], a[1]),
            format!("{}.{}.{}", a[0], a[1], &a[2][..a[2].len() - 2]),
            format!("{}.{}.{}{}", a[0], a[1], a[2], a[2]),
            format!("{}.{}.", a[0], a[1]),
            format!("{}.{}", a[0], a[1]),
            format!("{}.{}.{}", a[0], a[1], padded(a[2])),
            format!("{}.{}.{standard_alphabet}", a[0], a[1]),
            // Serialization broken around a valid token.
            format!("{alice}."),
            format!(".{alice}"),
            format!("{alice}.{}", a[2]),
            format!("{}..{}", a[0], a[2]),
            format!("{}.{}.{}", padded(a[0]), a[1], a[2]),
            format!("{alice}{alice}"),
            alice.replace('.', ".."),
            alice.to_uppercase(),
            alice.chars().rev().collect(),
            // JWE-shaped (five parts) and JSON-serialized JWS.
            format!("{}.{}.{}.{}.{}", a[0], a[1], a[2], a[1], a[2]),
            json!({"payload": a[1], "protected": a[0], "signature": a[2]}).to_string(),
            // Characters outside base64url inside a segment.
            format!("{}.{}*.{}", a[0], a[1], a[2]),
            format!("{}.+{}.{}", a[0], a[1], a[2]),
            format!("{}.{}.{}/", a[0], a[1], a[2]),
        ];
        for token in &tampered {
            me_refused(&cases, &s, token, "invalid_token").await;
        }
        // Correctly signed, but not an access token (RFC 9068 §2.1, RFC 8725 §3.11).
        for typ in [
            json!("JWT"),
            json!("jwt"),
            json!("refresh+jwt"),
            json!("id_token+jwt"),
            json!("at+jwt+"),
            json!(""),
            json!(null),
            json!(["at+jwt"]),
        ] {
            let header = with(good_header(), "typ", typ);
            me_refused(&cases, &s, &forge(&header, &alice_claims), "invalid_token").await;
        }
        me_refused(
            &cases,
            &s,
            &forge(&without(good_header(), "typ"), &alice_claims),
            "invalid_token",
        )
        .await;
        // The header is a JSON array, a string, or not JSON.
        for header in ["[]", "\"HS256\"", "{", "{\"alg\":\"HS256\"}garbage", ""] {
            let token = jws_raw(header, &alice_claims.to_string(), SECRET.as_bytes());
            me_refused(&cases, &s, &token, "invalid_token").await;
        }
        // The untampered tokens still work.
        me_allowed(&cases, &s, &alice, "alice").await;
        me_allowed(&cases, &s, &bob, "bob").await;
        still_serving(&s).await;
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 8725 §3.x, parser differentials: a JWT library that reads a member one way while the
// verifier's checks read it another. Duplicate members (first-wins against last-wins), an
// `iss` array holding the configured issuer, `crit: ["b64"]` (which some libraries accept), and
// a registered claim of the wrong type nobody configured a check for.
// ---------------------------------------------------------------------------------------------
mod parser_differentials {
    use crate::adversarial::*;

    #[tokio::test]
    async fn duplicate_members_and_lenient_forms_are_refused() {
        let cases = Cases::new("parser differentials");
        let s = start(&[("JWT_ISSUER", "https://issuer.example")]);
        let (_, _, claims) = session(&s, "alice").await;
        me_allowed(&cases, &s, &forge(&good_header(), &claims), "alice").await;
        let k = kid(SECRET);
        let payload = claims.to_string();
        for header in [
            format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"unknown","kid":"{k}"}}"#),
            format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{k}","kid":"unknown"}}"#),
            format!(r#"{{"alg":"HS256","typ":"JWT","typ":"at+jwt","kid":"{k}"}}"#),
            format!(r#"{{"alg":"HS256","typ":"at+jwt","typ":"JWT","kid":"{k}"}}"#),
            format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{k}","crit":["b64"],"b64":true}}"#),
        ] {
            let token = jws_raw(&header, &payload, SECRET.as_bytes());
            me_refused(&cases, &s, &token, "invalid_token").await;
            validate_refuses(&cases, &s, &token, false).await;
        }
        let t = now();
        let member = |m: &str| payload.replacen('{', &format!("{{{m},"), 1);
        for p in [
            // A past exp before the real one, and a far one before a past one.
            member(&format!(r#""exp":{}"#, t - 3600)),
            member(r#""sub":"admin""#),
            member(r#""roles":["admin"]"#),
            member(r#""sid":"AAAAAAAAAAAAAAAAAAAAAA""#),
            member(r#""iss":"https://evil.example""#),
            // The configured issuer inside an array: `iss` is one StringOrURI (RFC 7519 §4.1.1).
            with(
                claims.clone(),
                "iss",
                json!(["https://issuer.example", "https://evil.example"]),
            )
            .to_string(),
            // `aud` mistyped, with no audience configured.
            with(claims.clone(), "aud", json!(5)).to_string(),
            with(claims.clone(), "aud", json!({"api": true})).to_string(),
            // A NumericDate written as a string.
            with(claims.clone(), "exp", json!((t + 600).to_string())).to_string(),
        ] {
            let token = jws_raw(&good_header().to_string(), &p, SECRET.as_bytes());
            me_refused(&cases, &s, &token, "invalid_token").await;
        }
        let far_then_past = with(claims.clone(), "exp", json!(t - 3600))
            .to_string()
            .replacen('{', &format!(r#"{{"exp":{},"#, t + 86_400), 1);
        let token = jws_raw(
            &good_header().to_string(),
            &far_then_past,
            SECRET.as_bytes(),
        );
        me_refused(&cases, &s, &token, "invalid_token").await;
        still_serving(&s).await;
    }
}
