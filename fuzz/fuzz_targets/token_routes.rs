//! The token routes: `TokenRoutes` driven with arbitrary requests on a current-thread runtime.
//!
//! The input reads like an HTTP request: a first line `METHOD PATH`, header lines `name: value`,
//! an empty line, and the body. Placeholders stand for live credentials of a fresh manager made
//! for each input: `$ACCESS` / `$REFRESH` (alice, after one rotation), `$PARENT` (alice's first
//! refresh token, now the parent), `$ADMIN` (an admin's access token), `$BOB` (bob's access
//! token), `$SID` (alice's session id). `$JWT(claims)` becomes an access token with the server's
//! header over those claims, signed with the server's key: the fuzzer reaches whatever a key
//! holder could put in a token (a far `exp`, odd roles, another `sub`).
//!
//! Checked on every answer: no panic; status below 500 (the memory store cannot be unavailable,
//! so not even 503); a JSON body of SPEC §5 (`success`, `message`, `data` or an `error` code of
//! the list whose status matches the code); `Allow` on a 405; on a route that takes JSON, a 415
//! exactly when the body is not declared JSON (another `Content-Type`, or none with a body).

#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use bytes::Bytes;
use http::{Method, Request};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;
use tower_jwt_session::rate_limit::{AttemptTracker, ClientIp};

use common::*;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(runtime);

fuzz_target!(|data: &[u8]| {
    let runtime = &*RUNTIME;
    let manager = manager();
    let (alice0, alice, admin, bob) = runtime.block_on(async {
        let alice0 = manager
            .create_session(
                tower_jwt_session::manager::NewSession::new("alice").roles(&["user".to_owned()]),
            )
            .await
            .unwrap();
        let alice = manager.refresh(&alice0.refresh_token).await.unwrap();
        let admin = manager
            .create_session(
                tower_jwt_session::manager::NewSession::new("admin")
                    .roles(&["user".to_owned(), "admin".to_owned()]),
            )
            .await
            .unwrap();
        let bob = manager
            .create_session(
                tower_jwt_session::manager::NewSession::new("bob").roles(&["user".to_owned()]),
            )
            .await
            .unwrap();
        (alice0, alice, admin, bob)
    });
    let sid = alice.session_id.to_string();
    let values: [(&[u8], &[u8]); 6] = [
        (b"$ACCESS", alice.access_token.as_bytes()),
        (b"$REFRESH", alice.refresh_token.as_bytes()),
        (b"$PARENT", alice0.refresh_token.as_bytes()),
        (b"$ADMIN", admin.access_token.as_bytes()),
        (b"$BOB", bob.access_token.as_bytes()),
        (b"$SID", sid.as_bytes()),
    ];
    let data = signed_tokens(&substitute(data, &values));
    let Some(request) = parse(&data) else {
        return;
    };
    let media = json_route_media(&request);
    let service = tower_jwt_session::routes::TokenRoutes::new(&manager)
        .attempt_tracker(AttemptTracker::default());
    let response = runtime.block_on(service.oneshot(request)).unwrap();
    let status = response.status().as_u16();
    let allow = response.headers().get(http::header::ALLOW).cloned();
    let body = runtime
        .block_on(response.into_body().collect())
        .unwrap()
        .to_bytes();
    assert!(status < 500, "{status}: {body:?}");
    match media {
        Some(Media::Json | Media::Nothing) => assert_ne!(status, 415, "{body:?}"),
        Some(Media::Other) => assert_eq!(status, 415, "{body:?}"),
        // An announced length over the cap may be refused first.
        Some(Media::Undeclared) => assert!(status == 415 || status == 413, "{status}: {body:?}"),
        None => {}
    }
    let json: Value = serde_json::from_slice(&body).expect("a JSON body");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    if status == 200 {
        assert_eq!(json["success"], true, "{json}");
        assert!(json["data"].is_object(), "{json}");
        return;
    }
    assert_eq!(json["success"], false, "{json}");
    let code = json["error"].as_str().expect("an error code");
    let expected = match code {
        "invalid_request" => 400,
        "invalid_token"
        | "token_expired"
        | "token_revoked"
        | "refresh_token_reused"
        | "session_expired" => 401,
        "forbidden" => 403,
        "not_found" => 404,
        "method_not_allowed" => 405,
        "payload_too_large" => 413,
        "unsupported_media_type" => 415,
        "rate_limited" => 429,
        other => panic!("an error code outside SPEC §5: {other} ({status})"),
    };
    assert_eq!(status, expected, "{json}");
    if status == 405 {
        assert!(allow.is_some(), "405 without Allow");
    }
});

/// What a POST to a route that takes JSON declares about its body.
enum Media {
    /// One `Content-Type` of media type `application/json`, parameters allowed.
    Json,
    /// Another `Content-Type`, or several.
    Other,
    /// No `Content-Type`, and a body.
    Undeclared,
    /// No `Content-Type`, and no body (a cookie-only refresh).
    Nothing,
}

/// `Some` for a POST to `refresh`, `validate` or `auto-refresh` (with or without the prefix, as
/// the service routes them).
fn json_route_media(request: &Request<Full<Bytes>>) -> Option<Media> {
    let path = request.uri().path();
    let route = path
        .strip_prefix("/api/token")
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path);
    if request.method() != Method::POST
        || !matches!(route, "/refresh" | "/validate" | "/auto-refresh")
    {
        return None;
    }
    let types: Vec<_> = request
        .headers()
        .get_all(http::header::CONTENT_TYPE)
        .iter()
        .collect();
    Some(match types[..] {
        [] if request.body().size_hint().exact() == Some(0) => Media::Nothing,
        [] => Media::Undeclared,
        [one] => {
            let essence = one
                .as_bytes()
                .split(|b| *b == b';')
                .next()
                .unwrap_or_default();
            if essence
                .trim_ascii()
                .eq_ignore_ascii_case(b"application/json")
            {
                Media::Json
            } else {
                Media::Other
            }
        }
        _ => Media::Other,
    })
}

/// Replaces each `$JWT(claims)` with a token of those claims, signed by the server's key.
fn signed_tokens(data: &[u8]) -> Vec<u8> {
    const OPEN: &[u8] = b"$JWT(";
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(start) = rest.windows(OPEN.len()).position(|w| w == OPEN) {
        out.extend_from_slice(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after.iter().position(|b| *b == b')').unwrap_or(after.len());
        out.extend_from_slice(sign(HEADER.as_bytes(), &after[..end]).as_bytes());
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
    out
}

static HEADER: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
        kid(SECRET)
    )
});

/// `METHOD PATH\nname: value\n…\n\nbody`, or `None` when `http` would not build it.
fn parse(data: &[u8]) -> Option<Request<Full<Bytes>>> {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or((data, &[][..]), |i| (&data[..i], &data[i + 2..]));
    let (head, body) = split;
    let mut lines = head.split(|b| *b == b'\n');
    let first = lines.next()?;
    let space = first.iter().position(|b| *b == b' ')?;
    let method = Method::from_bytes(&first[..space]).ok()?;
    let path = std::str::from_utf8(&first[space + 1..]).ok()?;
    let mut builder = Request::builder().method(method).uri(path);
    for line in lines {
        let colon = line.iter().position(|b| *b == b':')?;
        let name = http::HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = http::HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
        builder = builder.header(name, value);
    }
    let mut request = builder.body(Full::new(Bytes::copy_from_slice(body))).ok()?;
    request
        .extensions_mut()
        .insert(ClientIp(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    Some(request)
}
