//! What a well-signed token claims: time claims, missing or malformed claims, encodings that
//! are not UTF-8 JSON, refresh and access tokens swapped, and what a token can make a `Session` do.

// ---------------------------------------------------------------------------------------------
// RFC 7519 §4.1.4 / §4.1.5, RFC 8725 §3.x: time claims at and around the leeway, of the wrong
// type, and out of range.
// ---------------------------------------------------------------------------------------------
mod time_claims {
    use crate::adversarial::*;

    #[tokio::test]
    async fn exp_and_nbf_follow_the_leeway_exactly() {
        let cases = Cases::new("time claims (leeway 30 s)");
        let s = start(&[("JWT_LEEWAY", "30s")]);
        let (_, _, claims) = session(&s, "alice").await;
        let at = |exp: u64| forge(&good_header(), &with(claims.clone(), "exp", json!(exp)));
        let t = now();
        // Well inside, and inside the leeway (exp 25 s ago; the request takes under 5 s).
        me_allowed(&cases, &s, &at(t + 600), "alice").await;
        me_allowed(&cases, &s, &at(t - 25), "alice").await;
        // exp + leeway reached exactly, and beyond: expired. (The server's clock is at or after
        // `t`, so `now >= exp + leeway` holds however long the request takes.)
        for exp in [t - 30, t - 31, t - 3600, 0, 1] {
            me_refused(&cases, &s, &at(exp), "token_expired").await;
            let reply = post_json(
                &cases,
                &s,
                "/api/token/validate",
                json!({"accessToken": at(exp)}),
            )
            .await;
            let data = reply.data();
            assert_eq!(
                (
                    data["isValid"].clone(),
                    data["isExpired"].clone(),
                    data["needsRefresh"].clone()
                ),
                (json!(false), json!(true), json!(true)),
                "{data}"
            );
        }
        // A fractional NumericDate is a NumericDate.
        me_allowed(
            &cases,
            &s,
            &forge(
                &good_header(),
                &with(claims.clone(), "exp", json!(t as f64 + 600.5)),
            ),
            "alice",
        )
        .await;
        me_refused(
            &cases,
            &s,
            &forge(
                &good_header(),
                &with(claims.clone(), "exp", json!(t as f64 - 31.5)),
            ),
            "token_expired",
        )
        .await;

        // nbf inside the leeway is accepted; beyond it is not (yet).
        let nbf = |nbf: Value| forge(&good_header(), &with(claims.clone(), "nbf", nbf));
        me_allowed(&cases, &s, &nbf(json!(t + 25)), "alice").await;
        me_allowed(&cases, &s, &nbf(json!(t - 3600)), "alice").await;
        me_refused(&cases, &s, &nbf(json!(t + 40)), "invalid_token").await;
        me_refused(&cases, &s, &nbf(json!(u64::MAX)), "invalid_token").await;
        me_refused(&cases, &s, &nbf(json!("now")), "invalid_token").await;
        still_serving(&s).await;
    }

    #[tokio::test]
    async fn without_leeway_exp_exactly_now_is_expired() {
        let cases = Cases::new("time claims (leeway 0)");
        let s = start(&[("JWT_LEEWAY", "0s")]);
        let (_, _, claims) = session(&s, "alice").await;
        let at = |exp: u64| forge(&good_header(), &with(claims.clone(), "exp", json!(exp)));
        let t = now();
        me_refused(&cases, &s, &at(t), "token_expired").await;
        me_refused(&cases, &s, &at(t - 1), "token_expired").await;
        me_allowed(&cases, &s, &at(t + 10), "alice").await;
        let nbf = forge(&good_header(), &with(claims.clone(), "nbf", json!(t + 5)));
        me_refused(&cases, &s, &nbf, "invalid_token").await;
        still_serving(&s).await;
    }

    #[tokio::test]
    async fn non_numeric_and_out_of_range_time_claims_are_refused() {
        let cases = Cases::new("time claims (types)");
        let s = start(&[]);
        let (_, _, claims) = session(&s, "alice").await;
        let t = now();
        for claim in ["exp", "iat", "nbf"] {
            for value in [
                json!("tomorrow"),
                json!((t + 600).to_string()),
                json!(true),
                json!([t + 600]),
                json!({"$date": t + 600}),
                json!(-1),
                json!(-1.5),
                json!(i64::MIN),
                json!(1e300),
            ] {
                let token = forge(&good_header(), &with(claims.clone(), claim, value));
                me_refused(&cases, &s, &token, "invalid_token").await;
            }
            // Out of the f64 range altogether: the JSON itself does not parse.
            let payload = without(claims.clone(), claim).to_string().replacen(
                '{',
                &format!("{{\"{claim}\":1e400,"),
                1,
            );
            let token = jws_raw(&good_header().to_string(), &payload, SECRET.as_bytes());
            me_refused(&cases, &s, &token, "invalid_token").await;
        }
        // exp and iat are required; null is absent.
        for claim in ["exp", "iat"] {
            let token = forge(&good_header(), &with(claims.clone(), claim, Value::Null));
            me_refused(&cases, &s, &token, "invalid_token").await;
        }
        still_serving(&s).await;
    }

    /// A validly signed token whose `exp` is close to `u64::MAX` seconds (a key holder's mistake,
    /// or a token from another service sharing a previous secret) must not bring a route down.
    /// The layer handles it; `validate` and `auto-refresh` compute `exp * 1000` unchecked.
    #[tokio::test]
    async fn an_exp_near_u64_max_is_answered_without_overflow() {
        let cases = Cases::new("time claims (u64 overflow)");
        let s = start(&[]);
        let (_, refresh, claims) = session(&s, "alice").await;
        for exp in [json!(u64::MAX), json!(u64::MAX / 1000 + 1), json!(1.8e19)] {
            let token = forge(&good_header(), &with(claims.clone(), "exp", exp.clone()));
            me_allowed(&cases, &s, &token, "alice").await;
            let reply = post_json(
                &cases,
                &s,
                "/api/token/validate",
                json!({"accessToken": token}),
            )
            .await;
            let data = reply.data();
            assert_eq!(data["isValid"], true, "{exp}: {data}");
            assert_eq!(data["isExpired"], false, "{exp}: {data}");
            let reply = post_json(
                &cases,
                &s,
                "/api/token/auto-refresh",
                json!({"accessToken": token, "refreshToken": refresh}),
            )
            .await;
            assert_eq!(reply.data()["refreshed"], false, "{exp}");
        }
        still_serving(&s).await;
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 9068 §2.2, RFC 8725 §3.x: required claims missing or malformed.
// ---------------------------------------------------------------------------------------------
mod missing_claims {
    use crate::adversarial::*;

    #[tokio::test]
    async fn tokens_missing_or_mangling_a_required_claim_are_refused() {
        let cases = Cases::new("missing / malformed claims");
        let s = start(&[]);
        let (_, _, claims) = session(&s, "alice").await;
        for claim in ["exp", "iat", "sub", "sid", "jti"] {
            let token = forge(&good_header(), &without(claims.clone(), claim));
            me_refused(&cases, &s, &token, "invalid_token").await;
            validate_refuses(&cases, &s, &token, false).await;
        }
        let sid = claims["sid"].as_str().unwrap().to_owned();
        for (claim, value) in [
            ("sub", json!("")),
            ("sub", json!(42)),
            ("sub", json!(["alice"])),
            ("sub", Value::Null),
            ("sid", json!("short")),
            ("sid", json!(format!("{sid}A"))),
            ("sid", json!(&sid[..21])),
            ("sid", json!(format!("{}=", &sid[..21]))),
            (
                "sid",
                json!(sid.replace(|c: char| c.is_alphanumeric(), "/")),
            ),
            ("sid", json!(12)),
            ("jti", json!("")),
            ("jti", json!(7)),
            ("roles", json!("admin")),
            ("roles", json!([1, 2])),
            ("roles", json!(["user", null])),
            ("roles", json!(["user\u{0}admin"])),
            ("roles", json!({"admin": true})),
        ] {
            let token = forge(&good_header(), &with(claims.clone(), claim, value));
            me_refused(&cases, &s, &token, "invalid_token").await;
        }
        // The payload is not a claims object.
        for payload in ["[]", "null", "\"alice\"", "{", "", "{}"] {
            let token = jws_raw(&good_header().to_string(), payload, SECRET.as_bytes());
            me_refused(&cases, &s, &token, "invalid_token").await;
        }
        // A well-formed sid that names no session: no such session is live.
        let stranger = with(claims.clone(), "sid", json!("AAAAAAAAAAAAAAAAAAAAAA"));
        me_refused(
            &cases,
            &s,
            &forge(&good_header(), &stranger),
            "token_revoked",
        )
        .await;
        // Duplicate claims (a parser differential): refused rather than first- or last-wins.
        let dup = claims.to_string().replacen('{', "{\"sub\":\"admin\",", 1);
        let token = jws_raw(&good_header().to_string(), &dup, SECRET.as_bytes());
        me_refused(&cases, &s, &token, "invalid_token").await;
        let dup_header = good_header()
            .to_string()
            .replacen('{', "{\"alg\":\"none\",", 1);
        let token = jws_raw(&dup_header, &claims.to_string(), SECRET.as_bytes());
        me_refused(&cases, &s, &token, "invalid_token").await;
        // 3000-deep nesting inside a signed payload.
        let deep = format!("{{\"x\":{}1{}}}", "[".repeat(3000), "]".repeat(3000));
        let token = jws_raw(&good_header().to_string(), &deep, SECRET.as_bytes());
        me_refused(&cases, &s, &token, "invalid_token").await;
        still_serving(&s).await;
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 8725 §3.7 ("use UTF-8"), RFC 7519 §7.2 step 10: the header and the claims set must be
// UTF-8 JSON, including members the verifier does not read. Found by the verify_token fuzz
// target: invalid UTF-8 inside an unknown member is skipped unchecked and the token accepted.
// ---------------------------------------------------------------------------------------------
mod json_encoding {
    use crate::adversarial::*;

    #[tokio::test]
    async fn a_header_or_claims_set_that_is_not_utf8_is_refused() {
        let cases = Cases::new("non-UTF-8 JSON in a signed token");
        let s = start(&[]);
        let (_, _, claims) = session(&s, "alice").await;
        // Control: valid UTF-8 in an unknown member is fine.
        let with_extra = with(claims.clone(), "x", json!("\u{e9}"));
        me_allowed(&cases, &s, &forge(&good_header(), &with_extra), "alice").await;

        let header = good_header().to_string();
        let payload = claims.to_string();
        let cases_bytes: [(&str, Vec<u8>, Vec<u8>); 4] = [
            (
                "unknown claim",
                header.as_bytes().to_vec(),
                [b"{\"x\":\"\xff\",".as_slice(), &payload.as_bytes()[1..]].concat(),
            ),
            (
                "unknown claim, overlong encoding",
                header.as_bytes().to_vec(),
                [b"{\"x\":\"\xc0\xaf\",".as_slice(), &payload.as_bytes()[1..]].concat(),
            ),
            (
                "unknown claim, lone surrogate bytes",
                header.as_bytes().to_vec(),
                [
                    b"{\"x\":[\"\xed\xa0\x80\"],".as_slice(),
                    &payload.as_bytes()[1..],
                ]
                .concat(),
            ),
            (
                "unknown header parameter",
                [b"{\"x\":\"\xfe\",".as_slice(), &header.as_bytes()[1..]].concat(),
                payload.as_bytes().to_vec(),
            ),
        ];
        let mut accepted = Vec::new();
        for (what, header, payload) in cases_bytes {
            let token = jws_bytes(&header, &payload, SECRET.as_bytes());
            let reply = get_bearer(&cases, &s, "/api/me", &token).await;
            if reply.status == 401 {
                reply.error(401, "invalid_token");
                validate_refuses(&cases, &s, &token, false).await;
            } else {
                accepted.push(format!("{what}: {} {}", reply.status, reply.body));
            }
        }
        assert!(accepted.is_empty(), "accepted: {accepted:#?}");
        still_serving(&s).await;
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 8725 §3.11 (explicit typing), RFC 9068: a refresh token is not an access token, nor the
// reverse.
// ---------------------------------------------------------------------------------------------
mod token_kind_confusion {
    use crate::adversarial::*;

    #[tokio::test]
    async fn refresh_and_access_tokens_are_not_interchangeable() {
        let cases = Cases::new("token-kind confusion");
        let s = start(&[]);
        let (access, refresh, _) = session(&s, "alice").await;

        // A refresh token as a bearer access token, on every bearer route.
        me_refused(&cases, &s, &refresh, "invalid_token").await;
        get_bearer(&cases, &s, "/api/token/session-stats/alice", &refresh)
            .await
            .error(401, "invalid_token")
            .challenges_invalid_token();
        for route in ["/api/token/logout", "/api/token/logout-all"] {
            send(&cases, s.client.post(s.url(route)).bearer_auth(&refresh))
                .await
                .error(401, "invalid_token")
                .challenges_invalid_token();
        }
        validate_refuses(&cases, &s, &refresh, false).await;

        // An access token as a refresh token: in the body, in the cookie, in auto-refresh.
        // (Three malformed refresh tokens of the refresh bucket's 20.)
        post_json(
            &cases,
            &s,
            "/api/token/refresh",
            json!({"refreshToken": access}),
        )
        .await
        .error(401, "invalid_token");
        let reply = send(
            &cases,
            s.client
                .post(s.url("/api/token/refresh"))
                .header(COOKIE, format!("tjs_refresh={access}"))
                .header("x-requested-with", "XMLHttpRequest"),
        )
        .await;
        reply.error(401, "invalid_token");
        assert!(
            reply.headers["set-cookie"]
                .to_str()
                .unwrap()
                .contains("Max-Age=0"),
            "a cookie that can never work is cleared"
        );
        post_json(
            &cases,
            &s,
            "/api/token/auto-refresh",
            json!({"accessToken": refresh, "refreshToken": access}),
        )
        .await
        .error(401, "invalid_token");

        // Neither mix-up cost the session anything.
        me_allowed(&cases, &s, &access, "alice").await;
        let reply = post_json(
            &cases,
            &s,
            "/api/token/refresh",
            json!({"refreshToken": refresh}),
        )
        .await;
        let data = reply.data();
        assert!(data["refreshToken"].as_str().unwrap().starts_with("tjs1."));
        still_serving(&s).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Library-level: what a token can make a `Session` do.
// ---------------------------------------------------------------------------------------------
mod session_api {
    use crate::adversarial::*;
    use tower_jwt_session::{session::SessionId, token::TokenCodec};

    /// `Session::expires_at` on a validly signed token with a far `exp` must not panic:
    /// `UNIX_EPOCH + Duration::from_secs(u64::MAX)` overflows `SystemTime`.
    #[test]
    fn expires_at_of_a_far_exp_does_not_panic() {
        let codec = TokenCodec::new(
            &tower_jwt_session::config::TokenSettings::new(SECRET).unwrap(),
            &Default::default(),
        )
        .unwrap();
        let genuine = codec.issue("alice", SessionId::random(), &[]);
        let claims = with(part(&genuine.token, 1), "exp", json!(u64::MAX));
        let session = codec.verify(&forge(&good_header(), &claims)).unwrap();
        let at = std::panic::catch_unwind(|| session.expires_at());
        assert!(at.is_ok(), "Session::expires_at panicked on exp = u64::MAX");
    }
}
