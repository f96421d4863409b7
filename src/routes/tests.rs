use http_body_util::BodyExt;
use tower::ServiceExt;

use serde_json::{Value, json};

use super::*;
use crate::SessionConfig;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

async fn setup() -> (TokenRoutes, TokenPair) {
    let config = SessionConfig::new(SECRET).unwrap();
    let manager = SessionManager::new(config).unwrap();
    let pair = manager
        .create_session("alice", &["user".to_owned()])
        .await
        .unwrap();
    (TokenRoutes::new(&manager), pair)
}

/// `POST path` with `headers` and `body`: the status and the JSON body.
async fn post(
    service: &TokenRoutes,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::post(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let mut service = service.clone();
    let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service);
    let res = ready.await.unwrap().call(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap(),
    )
}

#[tokio::test]
async fn the_json_routes_refuse_other_content_types() {
    let (service, pair) = setup().await;
    let cookie = format!("tjs_refresh={}", pair.refresh_token);
    let json_bodies = [
        (
            "/api/token/refresh",
            json!({ "refreshToken": pair.refresh_token }).to_string(),
        ),
        (
            "/api/token/validate",
            json!({ "accessToken": pair.access_token }).to_string(),
        ),
        (
            "/api/token/auto-refresh",
            json!({ "accessToken": pair.access_token, "refreshToken": pair.refresh_token })
                .to_string(),
        ),
    ];
    for (path, json) in &json_bodies {
        let form = format!("refreshToken={}", pair.refresh_token);
        let multipart = format!(
            "--x\r\ncontent-disposition: form-data; name=\"refreshToken\"\r\n\r\n{}\r\n--x--\r\n",
            pair.refresh_token
        );
        for (content_type, body) in [
            (Some("text/plain"), json.as_str()),
            (Some("text/plain;charset=UTF-8"), json.as_str()),
            (Some("application/x-www-form-urlencoded"), form.as_str()),
            (Some("multipart/form-data; boundary=x"), multipart.as_str()),
            (Some("application/jsonx"), json.as_str()),
            // A declared type that is not JSON is refused even with nothing to read.
            (Some("text/plain"), ""),
            // No type at all, with a body: not read as JSON either.
            (None, json.as_str()),
            (None, " "),
        ] {
            let mut headers = vec![("cookie", cookie.as_str()), ("x-requested-with", "x")];
            headers.extend(content_type.map(|t| ("content-type", t)));
            let (status, res_headers, body) = post(&service, path, &headers, body).await;
            assert_eq!(status, 415, "{path} {content_type:?}: {body}");
            assert_eq!(body["success"], false);
            assert_eq!(body["error"], "unsupported_media_type");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert_eq!(res_headers[http::header::ACCEPT], "application/json");
            assert!(res_headers.get(SET_COOKIE).is_none(), "{path}");
        }
    }
    // Nothing above spent the refresh token: JSON, with parameters, still works.
    let (path, json) = &json_bodies[0];
    let headers = [("content-type", "Application/JSON; charset=utf-8")];
    let (status, _, body) = post(&service, path, &headers, json).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_cookie_only_refresh_needs_no_body_and_no_content_type() {
    let (service, pair) = setup().await;
    let cookie = format!("tjs_refresh={}", pair.refresh_token);
    let headers = [("cookie", cookie.as_str()), ("x-requested-with", "x")];
    let (status, res_headers, body) = post(&service, "/api/token/refresh", &headers, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["accessToken"].is_string(), "{body}");
    assert!(body["data"].get("refreshToken").is_none(), "{body}");
    assert!(res_headers.contains_key(SET_COOKIE));
    // The CSRF rule still holds for such a request (checked before the token is used).
    let (status, _, body) = post(
        &service,
        "/api/token/refresh",
        &[("cookie", cookie.as_str())],
        "",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // And with no cookie it is an empty object: nothing to refresh.
    let (status, _, body) = post(&service, "/api/token/refresh", &[], "").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("alice").as_deref(), Some("alice"));
    assert_eq!(percent_decode("a%40b.c").as_deref(), Some("a@b.c"));
    assert_eq!(percent_decode("%E2%9C%93").as_deref(), Some("✓"));
    assert_eq!(percent_decode("%"), None);
    assert_eq!(percent_decode("%zz"), None);
    assert_eq!(percent_decode("%ff"), None);
}
