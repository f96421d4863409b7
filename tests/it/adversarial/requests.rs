//! Ambiguous requests: duplicate and conflicting credentials, and JSON bodies with duplicate
//! keys, deep nesting, wrong types or another content type.

// ---------------------------------------------------------------------------------------------
// RFC 6750 §2 ("MUST NOT use more than one method"), §3.1 invalid_request: duplicate and
// conflicting credentials.
// ---------------------------------------------------------------------------------------------
mod duplicate_credentials {
    use crate::adversarial::*;

    #[tokio::test]
    async fn two_authorization_headers_are_a_bad_request_on_every_bearer_route() {
        let cases = Cases::new("duplicate credentials (headers)");
        let s = start(&[]);
        let (alice, _, _) = session(&s, "alice").await;
        let (bob, _, _) = session(&s, "bob").await;
        for (first, second) in [
            (alice.clone(), alice.clone()),
            (alice.clone(), bob.clone()),
            (alice.clone(), "garbage".to_owned()),
            ("garbage".to_owned(), alice.clone()),
        ] {
            for (method, route) in [
                ("GET", "/api/me"),
                ("GET", "/api/token/session-stats/alice"),
                ("POST", "/api/token/logout"),
                ("POST", "/api/token/logout-all"),
            ] {
                let request = if method == "GET" {
                    s.client.get(s.url(route))
                } else {
                    s.client.post(s.url(route))
                };
                let reply = send(
                    &cases,
                    request
                        .header(AUTHORIZATION, format!("Bearer {first}"))
                        .header(AUTHORIZATION, format!("Bearer {second}")),
                )
                .await;
                reply.error(400, "invalid_request");
                let challenge = reply.headers["www-authenticate"].to_str().unwrap();
                assert!(
                    challenge.contains(r#"error="invalid_request""#),
                    "{challenge}"
                );
            }
        }
        // Two credentials folded into one header value.
        let reply = send(
            &cases,
            s.client
                .get(s.url("/api/me"))
                .header(AUTHORIZATION, format!("Bearer {alice}, Bearer {bob}")),
        )
        .await;
        reply.error(401, "invalid_token");
        // A header and a query-string token: the query string is never read, so this is the
        // header's request alone; without the header it is no credentials at all.
        let reply = send(
            &cases,
            s.client
                .get(s.url(&format!("/api/me?access_token={bob}")))
                .bearer_auth(&alice),
        )
        .await;
        assert_eq!(reply.data()["userId"], "alice");
        send(
            &cases,
            s.client
                .post(s.url(&format!("/api/token/logout?access_token={alice}"))),
        )
        .await
        .error(401, "invalid_token");
        // Nobody was logged out by any of that.
        me_allowed(&cases, &s, &alice, "alice").await;
        me_allowed(&cases, &s, &bob, "bob").await;
        still_serving(&s).await;
    }

    #[tokio::test]
    async fn a_body_token_wins_over_the_cookie_and_never_falls_back_to_it() {
        let cases = Cases::new("duplicate credentials (body + cookie)");
        let s = start(&[]);
        let alice = s.login("alice").await;
        let bob = s.login("bob").await;
        let alice_rt = alice["refreshToken"].as_str().unwrap();
        let bob_rt = bob["refreshToken"].as_str().unwrap();
        let refresh = |body: Value, cookie: String| {
            s.client
                .post(s.url("/api/token/refresh"))
                .header(COOKIE, cookie)
                .header("x-requested-with", "XMLHttpRequest")
                .json(&body)
        };
        // Body alice, cookie bob: alice's session is refreshed, bob's cookie is left alone.
        let reply = send(
            &cases,
            refresh(
                json!({"refreshToken": alice_rt}),
                format!("tjs_refresh={bob_rt}"),
            ),
        )
        .await;
        let data = reply.data();
        assert_eq!(data["sessionId"], alice["sessionId"]);
        assert!(
            data["refreshToken"].is_string(),
            "a body token gets its successor in the body"
        );
        let alice_rt1 = data["refreshToken"].as_str().unwrap().to_owned();
        // A forged body token with a good cookie: refused, with no fall-back to the cookie,
        // and the cookie is not cleared (it was not the credential used).
        let reply = send(
            &cases,
            refresh(
                json!({"refreshToken": "tjs1.forged"}),
                format!("tjs_refresh={bob_rt}"),
            ),
        )
        .await;
        reply.error(401, "invalid_token");
        assert!(
            !reply.headers.contains_key("set-cookie"),
            "{:?}",
            reply.headers
        );
        // An empty body token means the cookie, under the CSRF rule.
        let reply = send(
            &cases,
            s.client
                .post(s.url("/api/token/refresh"))
                .header(COOKIE, format!("tjs_refresh={bob_rt}"))
                .json(&json!({"refreshToken": ""})),
        )
        .await;
        reply.error(403, "forbidden");
        // Bob's cookie still works afterwards: nothing above touched his session.
        let reply = send(&cases, refresh(json!({}), format!("tjs_refresh={bob_rt}"))).await;
        assert_eq!(reply.data()["sessionId"], bob["sessionId"]);
        assert!(reply.data().get("refreshToken").is_none());
        // Auto-refresh: the body's refresh token, not the cookie's.
        let reply = send(
            &cases,
            s.client
                .post(s.url("/api/token/auto-refresh"))
                .header(COOKIE, "tjs_refresh=tjs1.forged")
                .json(&json!({"accessToken": "expired.or.garbage", "refreshToken": alice_rt1})),
        )
        .await;
        let data = reply.data();
        assert_eq!(data["refreshed"], true);
        assert_eq!(data["sessionId"], alice["sessionId"]);
        // Both a body and a cookie that are garbage: one failed refresh, refused.
        let reply = send(
            &cases,
            refresh(json!({"refreshToken": "x"}), "tjs_refresh=y".to_owned()),
        )
        .await;
        reply.error(401, "invalid_token");
        still_serving(&s).await;
    }
}

// ---------------------------------------------------------------------------------------------
// OWASP mass assignment / parser differentials / resource exhaustion: duplicate keys, deep
// nesting and wrong types on every token route (and login).
// ---------------------------------------------------------------------------------------------
mod json_bodies {
    use crate::adversarial::*;

    /// Each route with a JSON body, and a body with a well-formed string in every field.
    const ROUTES: [(&str, &[&str]); 4] = [
        ("/api/token/refresh", &["refreshToken"]),
        ("/api/token/validate", &["accessToken"]),
        ("/api/token/auto-refresh", &["accessToken", "refreshToken"]),
        ("/api/auth/login", &["username", "password"]),
    ];

    #[tokio::test]
    async fn duplicate_keys_deep_nesting_and_wrong_types_are_bad_requests() {
        let cases = Cases::new("JSON bodies");
        let s = start(&[]);
        let (access, refresh, _) = session(&s, "alice").await;
        let value_for = |field: &str| match field {
            "accessToken" => access.clone(),
            "refreshToken" => refresh.clone(),
            "username" => "alice".to_owned(),
            _ => "alice-password".to_owned(),
        };
        for (route, fields) in ROUTES {
            let base: serde_json::Map<String, Value> = fields
                .iter()
                .map(|f| ((*f).to_owned(), json!(value_for(f))))
                .collect();
            for field in fields {
                // Duplicate keys, with equal and with different values (a parser differential:
                // one library reads the first, another the last).
                for second in [value_for(field), "attacker".to_owned()] {
                    let mut text = Value::Object(base.clone()).to_string();
                    text.insert_str(1, &format!("{}:{},", json!(field), json!(second)));
                    post_raw(&cases, &s, route, text)
                        .await
                        .error(400, "invalid_request");
                }
                // Wrong types.
                for wrong in [
                    json!(12),
                    json!(1.5),
                    json!(true),
                    json!([value_for(field)]),
                    json!({"token": value_for(field)}),
                ] {
                    let mut body = base.clone();
                    body.insert((*field).to_owned(), wrong);
                    post_json(&cases, &s, route, Value::Object(body))
                        .await
                        .error(400, "invalid_request");
                }
                // 10 000-deep nesting in the field: unclosed (under the size cap; the parser
                // must stop at its depth limit) and balanced (over the cap).
                let mut text = Value::Object(base.clone()).to_string();
                text.insert_str(1, &format!("{}:{}", json!(field), "[".repeat(10_000)));
                post_raw(&cases, &s, route, text)
                    .await
                    .error(400, "invalid_request");
                let deep = format!(
                    "{{{}:{}{}}}",
                    json!(field),
                    "[".repeat(10_000),
                    "]".repeat(10_000)
                );
                post_raw(&cases, &s, route, deep)
                    .await
                    .error(413, "payload_too_large");
                // 8 000 deep, balanced, under the cap: refused at the parser's depth limit.
                let deep = format!(
                    "{{{}:{}{}}}",
                    json!(field),
                    "[".repeat(8_000),
                    "]".repeat(8_000)
                );
                post_raw(&cases, &s, route, deep)
                    .await
                    .error(400, "invalid_request");
                let deep = format!(
                    "{{{}:{}1{}}}",
                    json!(field),
                    "{\"a\":".repeat(2_500),
                    "}".repeat(2_500)
                );
                post_raw(&cases, &s, route, deep)
                    .await
                    .error(400, "invalid_request");
            }
            // Not an object at all, or broken JSON.
            for text in [
                "[]",
                "[{}]",
                "\"refreshToken\"",
                "null",
                "12",
                "{",
                "{\"refreshToken\":}",
                "{\"a\":1}{\"b\":2}",
                "{\"a\":1} trailing",
                "{'refreshToken':'x'}",
                "{\"a\":\"\\ud800\"}",
                "{\"a\":1e999999}",
                "{\"a\":NaN}",
            ] {
                post_raw(&cases, &s, route, text)
                    .await
                    .error(400, "invalid_request");
            }
        }
        // Deep nesting in an unknown field is skipped without recursion and changes nothing.
        let deep = format!(
            "{{\"junk\":{}{},\"accessToken\":\"nope\"}}",
            "[".repeat(8_000),
            "]".repeat(8_000)
        );
        let reply = post_raw(&cases, &s, "/api/token/validate", deep).await;
        assert_eq!(reply.data()["isValid"], false);
        // Nothing above moved the session: its tokens still work.
        me_allowed(&cases, &s, &access, "alice").await;
        let reply = post_json(
            &cases,
            &s,
            "/api/token/refresh",
            json!({"refreshToken": refresh}),
        )
        .await;
        assert!(reply.data()["accessToken"].is_string());
        still_serving(&s).await;
    }

    /// SPEC §5: routes that take a JSON body refuse other content types with 415, before the
    /// body is read; a cookie-only refresh with no body and no content type still works.
    #[tokio::test]
    async fn other_content_types_are_refused_with_415() {
        let cases = Cases::new("JSON bodies (content type)");
        let s = start(&[]);
        let (access, refresh, _) = session(&s, "alice").await;
        let cookie = format!("tjs_refresh={refresh}");
        let json_body = |route: &str| match route {
            "/api/token/refresh" => json!({"refreshToken": refresh}),
            "/api/token/validate" => json!({"accessToken": access}),
            "/api/token/auto-refresh" => json!({"accessToken": access, "refreshToken": refresh}),
            _ => json!({"username": "alice", "password": "alice-password"}),
        };
        for (route, _) in ROUTES {
            let json = json_body(route).to_string();
            let form = format!("refreshToken={refresh}&accessToken={access}");
            let multipart = format!(
                "--x\r\ncontent-disposition: form-data; name=\"refreshToken\"\r\n\r\n{refresh}\r\n--x--\r\n"
            );
            for (content_type, body) in [
                (Some("text/plain"), &json),
                (Some("text/plain;charset=UTF-8"), &json),
                (Some("application/x-www-form-urlencoded"), &form),
                (Some("multipart/form-data; boundary=x"), &multipart),
                (None, &json),
            ] {
                let mut request = s
                    .client
                    .post(s.url(route))
                    .header(COOKIE, &cookie)
                    .header("x-requested-with", "XMLHttpRequest")
                    .body(body.clone());
                if let Some(content_type) = content_type {
                    request = request.header(CONTENT_TYPE, content_type);
                }
                let reply = send(&cases, request).await;
                reply.error(415, "unsupported_media_type");
                assert!(
                    reply.headers.get("set-cookie").is_none(),
                    "{route} {content_type:?}"
                );
            }
        }
        // Nothing above was read: the session's tokens still work, and a cookie-only refresh
        // with no body and no Content-Type (curl -X POST, a bare fetch) is served.
        me_allowed(&cases, &s, &access, "alice").await;
        let request = s
            .client
            .post(s.url("/api/token/refresh"))
            .header(COOKIE, &cookie)
            .header("x-requested-with", "XMLHttpRequest");
        let reply = send(&cases, request).await;
        assert!(reply.data()["accessToken"].is_string());
        assert!(reply.data().get("refreshToken").is_none(), "cookie mode");
        still_serving(&s).await;
    }

    #[tokio::test]
    async fn missing_null_and_empty_fields_are_bad_requests() {
        let cases = Cases::new("JSON bodies (missing fields)");
        let s = start(&[]);
        for (route, fields) in ROUTES {
            for body in [json!({}), json!({"other": "x"})] {
                post_json(&cases, &s, route, body)
                    .await
                    .error(400, "invalid_request");
            }
            if route == "/api/auth/login" {
                continue;
            }
            // An empty body is an empty object (no cookie: nothing to refresh or validate).
            post_raw(&cases, &s, route, Vec::new())
                .await
                .error(400, "invalid_request");
            for field in fields {
                for empty in [Value::Null, json!("")] {
                    let mut body: serde_json::Map<String, Value> = fields
                        .iter()
                        .map(|f| ((*f).to_owned(), json!("x.y.z")))
                        .collect();
                    body.insert((*field).to_owned(), empty);
                    post_json(&cases, &s, route, Value::Object(body))
                        .await
                        .error(400, "invalid_request");
                }
            }
        }
        still_serving(&s).await;
    }
}
