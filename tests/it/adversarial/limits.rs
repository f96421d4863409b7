//! Sizes and bytes: oversized and non-UTF-8 headers and bodies, and what a 413 does to the
//! connection.

// ---------------------------------------------------------------------------------------------
// OWASP input validation, RFC 6750 §2.1 (b64token syntax): oversized and non-UTF-8 headers and
// bodies.
// ---------------------------------------------------------------------------------------------
mod oversized_and_non_utf8 {
    use crate::adversarial::*;

    #[tokio::test]
    async fn oversized_and_non_utf8_authorization_headers_are_refused() {
        let cases = Cases::new("oversized / non-UTF-8 headers");
        let s = start_example(&[]);
        let (access, _, _) = session(&s, "alice").await;
        let values: Vec<Vec<u8>> = vec![
            format!("Bearer {}", "A".repeat(100 * 1024)).into_bytes(),
            format!(
                "Bearer {}.{}.{}",
                "e".repeat(40_000),
                "e".repeat(40_000),
                "e".repeat(20_000)
            )
            .into_bytes(),
            format!("Bearer {access}{}", "A".repeat(100 * 1024)).into_bytes(),
            b"Bearer \xff\xfe\xfd".to_vec(),
            [b"Bearer ".as_slice(), access.as_bytes(), b"\x80"].concat(),
            [b"Bearer \xc3\x28.", access.as_bytes()].concat(),
            [
                b"Bearer ".as_slice(),
                &access.as_bytes()[..20],
                b"\xe2\x82",
                &access.as_bytes()[20..],
            ]
            .concat(),
            b"Bearer \xef\xbb\xbfabc.def.ghi".to_vec(),
            "Bearer ＡＢＣ.ｄｅｆ.ｇｈｉ".as_bytes().to_vec(),
            b"Bearer \t".to_vec(),
            b"Bearer".to_vec(),
        ];
        for route in [
            "/api/me",
            "/api/token/session-stats/alice",
            "/api/token/logout",
            "/api/token/logout-all",
        ] {
            for value in &values {
                let header = HeaderValue::from_bytes(value).unwrap();
                let request = if route.starts_with("/api/token/logout") {
                    s.client.post(s.url(route))
                } else {
                    s.client.get(s.url(route))
                };
                send(&cases, request.header(AUTHORIZATION, header))
                    .await
                    .error(401, "invalid_token")
                    .challenges_invalid_token();
            }
        }
        // Another scheme, or a scheme alone: no bearer token was presented (RFC 6750 §3.1: no
        // error attribute in the challenge).
        for value in [
            &b"Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ="[..],
            b"Bearer\xff",
            b"\xff\xfe",
            b"Token abc",
            b"Bearerabc.def.ghi",
        ] {
            let reply = send(
                &cases,
                s.client
                    .get(s.url("/api/me"))
                    .header(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap()),
            )
            .await;
            reply.error(401, "invalid_token");
            assert_eq!(reply.headers["www-authenticate"], r#"Bearer realm="api""#);
        }
        // The scheme is case-insensitive and surrounding whitespace is tolerated (RFC 6750 §2.1,
        // RFC 9110 §11.1).
        for value in [
            format!("bearer {access}"),
            format!("BEARER  {access}"),
            format!("Bearer\t{access} "),
        ] {
            let reply = send(
                &cases,
                s.client
                    .get(s.url("/api/me"))
                    .header(AUTHORIZATION, HeaderValue::from_str(&value).unwrap()),
            )
            .await;
            assert_eq!(reply.data()["userId"], "alice");
        }
        still_serving(&s).await;
    }

    #[tokio::test]
    async fn oversized_and_non_utf8_bodies_are_refused() {
        let cases = Cases::new("oversized / non-UTF-8 bodies");
        let s = start_example(&[]);
        // The server closes a connection whose request body it did not read (413): a fresh
        // connection for every request, so that the next one does not land on the closed one
        // (`a_413_closes_the_connection_or_keeps_serving_it` is about that).
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let big = format!(r#"{{"refreshToken":"{}"}}"#, "a".repeat(100 * 1024));
        for route in [
            "/api/token/refresh",
            "/api/token/validate",
            "/api/token/auto-refresh",
            "/api/auth/login",
        ] {
            post_raw_with(&cases, &fresh, &s, route, big.clone())
                .await
                .error(413, "payload_too_large");
            // Not UTF-8, and JSON with a non-UTF-8 string.
            for body in [
                &b"\xff\xfe\xfd"[..],
                b"{\"refreshToken\":\"\xff\"}",
                b"{\"accessToken\":\"\xc3\x28\"}",
                b"\xef\xbb\xbf{}",
                b"{\"username\":\"\xff\",\"password\":\"x\"}",
            ] {
                post_raw_with(&cases, &fresh, &s, route, body.to_vec())
                    .await
                    .error(400, "invalid_request");
            }
            // A chunked body (no Content-Length to refuse up front) of 100 KiB.
            let chunk = "a".repeat(100 * 1024);
            let request = format!(
                "POST {route} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
                chunk.len()
            );
            let (status, body) = raw(&cases, &s, request.as_bytes()).await;
            common::assert_error(status, &body, 413, "payload_too_large");
            // A Content-Length that announces more than the cap, with a small body: the token
            // routes refuse it up front. (The example's login handler, behind axum's
            // `DefaultBodyLimit`, waits for the announced bytes instead.)
            if route == "/api/auth/login" {
                continue;
            }
            let request = format!(
                "POST {route} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n{{}}"
            );
            let (status, body) = raw(&cases, &s, request.as_bytes()).await;
            common::assert_error(status, &body, 413, "payload_too_large");
        }
        // Just under the cap is read, and refused for what it says.
        let near = format!(
            r#"{{"refreshToken":"tjs1.{}"}}"#,
            "a".repeat(16 * 1024 - 40)
        );
        post_raw(&cases, &s, "/api/token/refresh", near)
            .await
            .error(401, "invalid_token");
        let near = format!(r#"{{"accessToken":"{}"}}"#, "a".repeat(16 * 1024 - 40));
        let reply = post_raw(&cases, &s, "/api/token/validate", near).await;
        assert_eq!(reply.data()["isValid"], false);
        still_serving(&s).await;
    }
    /// After a 413 the server does not read the rest of the body, so it cannot go on reading
    /// the connection: it must say so with `Connection: close` (RFC 9112 §9.6) or else keep the
    /// connection usable. Today it answers 413 without `Connection: close` and then closes, so
    /// a client that sends its next request on the same keep-alive connection (as reqwest,
    /// browsers and most pools do) gets a reset instead of an answer.
    #[tokio::test]
    async fn a_413_closes_the_connection_or_keeps_serving_it() {
        let s = start_example(&[]);
        let addr = s.base.trim_start_matches("http://").to_owned();
        let failures = tokio::task::spawn_blocking(move || {
            [
                "/api/token/refresh",
                "/api/token/validate",
                "/api/token/auto-refresh",
                "/api/auth/login",
            ]
            .into_iter()
            .filter_map(|route| {
                keep_alive_after_413(&addr, route)
                    .err()
                    .map(|e| format!("{route}: {e}"))
            })
            .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert!(failures.is_empty(), "{failures:#?}");
        still_serving(&s).await;
    }

    /// One response from `stream`: the head (lower-cased) and the body.
    fn read_response(stream: &mut std::net::TcpStream) -> std::io::Result<(String, Vec<u8>)> {
        use std::io::Read;
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body)?;
        Ok((head, body))
    }

    fn keep_alive_after_413(addr: &str, route: &str) -> Result<(), String> {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let body = format!(r#"{{"refreshToken":"{}"}}"#, "a".repeat(100 * 1024));
        let request = format!(
            "POST {route} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(request.as_bytes());
        let (head, _) = read_response(&mut stream).map_err(|e| format!("no 413: {e}"))?;
        if !head.starts_with("http/1.1 413") {
            return Err(format!("expected 413, got {head}"));
        }
        if head.contains("\r\nconnection: close\r\n") {
            return Ok(());
        }
        let next = stream
            .write_all(b"GET /api/token/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .map_err(|e| e.to_string())
            .and_then(|()| read_response(&mut stream).map_err(|e| e.to_string()));
        match next {
            Ok((head, _)) if head.starts_with("http/1.1 200") => Ok(()),
            Ok((head, _)) => Err(format!(
                "413 without Connection: close; the next request got {head}"
            )),
            Err(e) => Err(format!(
                "413 without Connection: close, then the connection was dropped: {e}"
            )),
        }
    }
}
