//! Who sees what: one user's sessions asked for by another, and token-bearing answers that a
//! cache could keep.

// ---------------------------------------------------------------------------------------------
// OWASP broken object level authorization (IDOR): one user's session stats for another, with
// the user id spelled in every way a path can spell it.
// ---------------------------------------------------------------------------------------------
mod cross_user_session_stats {
    use crate::adversarial::*;

    #[tokio::test]
    async fn a_user_sees_only_their_own_sessions_however_the_id_is_spelled() {
        let cases = Cases::new("cross-user session stats");
        let s = start_example(&[]);
        let (alice, _, alice_claims) = session(&s, "alice").await;
        let (bob, _, _) = session(&s, "bob").await;
        let (admin, _, _) = session(&s, "admin").await;
        let alice_sid = alice_claims["sid"].as_str().unwrap().to_owned();

        // Bob asking for alice, however spelled: 403, and nothing of alice's leaks.
        for path in [
            "alice",
            "%61lice",
            "%61%6c%69%63%65",
            "%61%6C%69%63%65",
            "ALICE",
            "bob%20",
            "%20bob",
            "bob%2F..%2Falice",
            "..%2Falice",
            "%2e%2e%2fhealth",
            "%2561lice",
            "*",
            "%2A",
            "admin",
            "bob,alice",
            "bob%2Calice",
        ] {
            let reply = get_bearer(
                &cases,
                &s,
                &format!("/api/token/session-stats/{path}"),
                &bob,
            )
            .await;
            reply.error(403, "forbidden");
            assert!(!reply.body.to_string().contains(&alice_sid), "{path}");
        }
        // A NUL is no user id at all: bad input, before anything looks it up.
        for path in ["alice%00", "bob%00"] {
            let reply = get_bearer(
                &cases,
                &s,
                &format!("/api/token/session-stats/{path}"),
                &bob,
            )
            .await;
            reply.error(400, "invalid_request");
            assert!(!reply.body.to_string().contains(&alice_sid), "{path}");
        }
        // Bad escapes are refused as such.
        for path in ["%", "%zz", "%ff", "%c3%28", "alice%"] {
            get_bearer(
                &cases,
                &s,
                &format!("/api/token/session-stats/{path}"),
                &bob,
            )
            .await
            .error(400, "invalid_request");
        }
        // Bob himself, however spelled.
        for path in ["bob", "%62ob", "%62%6F%62"] {
            let reply = get_bearer(
                &cases,
                &s,
                &format!("/api/token/session-stats/{path}"),
                &bob,
            )
            .await;
            let data = reply.data();
            assert_eq!(data["userId"], "bob");
            assert_eq!(data["activeSessions"], 1);
        }
        // Alice, through a double encoding, is not alice (no double decoding).
        get_bearer(&cases, &s, "/api/token/session-stats/%2561lice", &alice)
            .await
            .error(403, "forbidden");
        // Extra segments are no route.
        for path in ["alice/", "alice/x", ""] {
            get_bearer(
                &cases,
                &s,
                &format!("/api/token/session-stats/{path}"),
                &bob,
            )
            .await
            .error(404, "not_found");
        }
        // Dot segments sent raw (an HTTP client would resolve them away).
        for path in [
            "/api/token/session-stats/../session-stats/alice",
            "/api/token/session-stats/./alice",
            "/api/token/session-stats/bob/../alice",
        ] {
            // Routes are matched on the raw path: a user id never contains '/', so no user.
            let (status, body) = raw(&cases, &s, &raw_get(path, &bob)).await;
            common::assert_error(status, &body, 404, "not_found");
            assert!(!body.to_string().contains(&alice_sid), "{path}: {body}");
        }
        // HEAD is GET without a body: refused the same.
        let res = s
            .client
            .head(s.url("/api/token/session-stats/alice"))
            .bearer_auth(&bob)
            .send()
            .await
            .unwrap();
        cases.tick();
        assert_eq!(res.status(), 403);
        // A forged admin role under bob's signature is not admin.
        let b: Vec<&str> = bob.split('.').collect();
        let claims = with(part(&bob, 1), "roles", json!(["user", "admin"]));
        let forged = format!("{}.{}.{}", b[0], b64(claims.to_string()), b[2]);
        get_bearer(&cases, &s, "/api/token/session-stats/alice", &forged)
            .await
            .error(401, "invalid_token");
        // No token, another scheme, a revoked token.
        send(
            &cases,
            s.client.get(s.url("/api/token/session-stats/alice")),
        )
        .await
        .error(401, "invalid_token");
        send(
            &cases,
            s.client
                .get(s.url("/api/token/session-stats/alice"))
                .basic_auth("alice", Some("alice-password")),
        )
        .await
        .error(401, "invalid_token");
        // The admin sees alice's sessions, and alice hers.
        let reply = get_bearer(&cases, &s, "/api/token/session-stats/%61lice", &admin).await;
        let data = reply.data();
        assert_eq!(data["userId"], "alice");
        assert_eq!(data["sessions"][0]["sessionId"], alice_sid.as_str());
        assert_eq!(data["sessions"][0]["current"], false);
        let reply = get_bearer(&cases, &s, "/api/token/session-stats/alice", &alice).await;
        assert_eq!(reply.data()["sessions"][0]["current"], true);
        // Once alice logs out, her old token sees nothing.
        send(
            &cases,
            s.client
                .post(s.url("/api/token/logout"))
                .bearer_auth(&alice),
        )
        .await
        .data();
        get_bearer(&cases, &s, "/api/token/session-stats/alice", &alice)
            .await
            .error(401, "token_revoked");
        still_serving(&s).await;
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 6749 §5.1 ("MUST include … Cache-Control … no-store in any response containing tokens"),
// OWASP session management: token-bearing answers must not be cached by the browser or a proxy.
// ---------------------------------------------------------------------------------------------
mod token_caching {
    use crate::adversarial::*;

    #[tokio::test]
    async fn every_answer_carrying_tokens_says_no_store() {
        let cases = Cases::new("token caching");
        let s = start(&[]);
        let no_store = |reply: &Reply, what: &str| {
            let value = reply
                .headers
                .get("cache-control")
                .map(|v| v.to_str().unwrap().to_ascii_lowercase());
            assert!(
                value.as_deref().is_some_and(|v| v.contains("no-store")),
                "{what}: a response carrying tokens has Cache-Control {value:?}"
            );
        };
        let login = post_json(
            &cases,
            &s,
            "/api/auth/login",
            json!({"username": "alice", "password": "alice-password"}),
        )
        .await;
        let data = login.data().clone();
        let refresh = post_json(
            &cases,
            &s,
            "/api/token/refresh",
            json!({"refreshToken": data["refreshToken"]}),
        )
        .await;
        let rt = refresh.data()["refreshToken"].clone();
        let at = refresh.data()["accessToken"].clone();
        no_store(&refresh, "POST /api/token/refresh");
        let auto = post_json(
            &cases,
            &s,
            "/api/token/auto-refresh",
            json!({"accessToken": at, "refreshToken": rt}),
        )
        .await;
        auto.data();
        no_store(&auto, "POST /api/token/auto-refresh");
        no_store(&login, "POST /api/auth/login");
        still_serving(&s).await;
    }
}
