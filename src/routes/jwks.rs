//! `GET /.well-known/jwks.json`: the public keys, for services that verify our access tokens on
//! their own (jwt-authorizer, `jose`, PyJWT, ...).
//!
//! The document is the codec's, built once at startup ([`TokenCodec::jwks`]); a request only
//! compares its `If-None-Match` with the `ETag` and copies bytes. With HMAC signing alone it
//! answers 404 (see the [module docs](crate::routes)).
//!
//! [`TokenCodec::jwks`]: crate::token::TokenCodec::jwks

use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY};

use super::*;

/// The route's path, served whatever prefix the token routes have, so that an app can mount
/// the same service at the root for it.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// How long verifiers and proxies may cache the document by default: five minutes.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);

impl TokenRoutes {
    pub(super) fn jwks(&self, headers: &HeaderMap) -> Answer {
        let Some(jwks) = self.manager.codec().jwks() else {
            return json_error(
                ErrorCode::NotFound,
                "no public keys: access tokens are signed with the HMAC secret (JWT_ALGORITHM=HS256)",
            );
        };
        let etag = HeaderValue::from_str(jwks.etag()).expect("an ETag is base64url in quotes");
        let cache =
            HeaderValue::from_str(&format!("public, max-age={}", self.jwks_max_age.as_secs()))
                .expect("digits");
        let fresh = headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .any(|value| if_none_match(value.as_bytes(), jwks.etag()));
        let mut res = if fresh {
            let mut res = Response::new(Bytes::new());
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            res
        } else {
            let mut res = Response::new(jwks.json().clone());
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res
        };
        let h = res.headers_mut();
        h.insert(ETAG, etag);
        h.insert(CACHE_CONTROL, cache);
        h.insert(VARY, HeaderValue::from_static("accept-encoding"));
        res
    }
}

/// Whether an `If-None-Match` value matches `etag` (RFC 9110 §13.1.2: `*`, or a list of tags
/// compared weakly, so `W/"x"` matches `"x"`).
fn if_none_match(value: &[u8], etag: &str) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::SessionConfig;
    use crate::config::{Algorithm, TokenSettings};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const ED: &[u8] = include_bytes!("../../tests/keys/ed_private.pem");

    fn manager(asymmetric: bool) -> SessionManager {
        let mut config = SessionConfig::new(SECRET).unwrap();
        if asymmetric {
            config = config.with_tokens(
                TokenSettings::new(SECRET)
                    .unwrap()
                    .with_private_key_pem(Algorithm::EdDSA, ED)
                    .unwrap(),
            );
        }
        SessionManager::new(config).unwrap()
    }

    async fn call(
        service: TokenRoutes,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = service
            .oneshot(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    #[tokio::test]
    async fn hmac_signing_answers_404() {
        let (status, headers, body) = call(
            TokenRoutes::new(&manager(false)),
            Method::GET,
            JWKS_PATH,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "not_found", "{body}");
        assert!(headers.get(ETAG).is_none());
    }

    #[tokio::test]
    async fn the_document_is_cacheable_with_an_etag_and_304() {
        let manager = manager(true);
        let routes = TokenRoutes::new(&manager);
        let (status, headers, body) = call(routes.clone(), Method::GET, JWKS_PATH, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=300");
        let jwks = manager.codec().jwks().unwrap();
        assert_eq!(headers[ETAG], jwks.etag());
        assert_eq!(&body, jwks.json(), "the document built at startup");
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["keys"][0]["kty"], "OKP");

        let etag = jwks.etag().to_owned();
        for tag in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
        ] {
            let (status, headers, body) = call(
                routes.clone(),
                Method::GET,
                JWKS_PATH,
                &[("if-none-match", &tag)],
            )
            .await;
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{tag}");
            assert!(body.is_empty());
            assert_eq!(headers[ETAG], etag.as_str());
            assert_eq!(headers[CACHE_CONTROL], "public, max-age=300");
        }
        let (status, _, body) = call(
            routes.clone(),
            Method::GET,
            JWKS_PATH,
            &[("if-none-match", "\"stale\"")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body, jwks.json());

        let (_, headers, _) = call(
            routes.jwks_max_age(Duration::from_secs(60)),
            Method::GET,
            JWKS_PATH,
            &[],
        )
        .await;
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=60");
    }

    #[tokio::test]
    async fn only_get_and_head() {
        let routes = TokenRoutes::new(&manager(true));
        let (status, _, _) = call(routes.clone(), Method::HEAD, JWKS_PATH, &[]).await;
        assert_eq!(status, StatusCode::OK);
        let (status, headers, _) = call(routes, Method::POST, JWKS_PATH, &[]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[ALLOW], "GET");
    }

    /// Mounted at the root beside the nested token routes, as the module docs show.
    #[cfg(feature = "axum")]
    #[tokio::test]
    async fn it_is_served_at_the_root_of_an_axum_app() {
        let manager = manager(true);
        let routes = TokenRoutes::new(&manager);
        let app: axum::Router = axum::Router::new()
            .route_service(JWKS_PATH, routes.clone())
            .nest_service("/api/token", routes);
        let res = app
            .clone()
            .oneshot(
                Request::get(JWKS_PATH)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body, manager.codec().jwks().unwrap().json());
        // The token routes still answer under their prefix.
        let res = app
            .oneshot(
                Request::get("/api/token/health")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let etag = "\"abc\"";
        for yes in ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*", " \"abc\" "] {
            assert!(if_none_match(yes.as_bytes(), etag), "{yes}");
        }
        for no in ["\"abd\"", "abc", "\"abc", "", "W/abc", "\"ABC\""] {
            assert!(!if_none_match(no.as_bytes(), etag), "{no}");
        }
        assert!(!if_none_match(&[0xff, b'"'], etag));
    }
}
