use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::clock::ManualClock;
use crate::guard::ResponseBody;
use crate::revocation::{Checked, RevocationCheck, SessionStatus};
use crate::{Session, SessionConfig, session::SessionId, token::TokenCodec};

const NOW_MS: u64 = 1_800_000_000_000;

fn codec() -> (TokenCodec, ManualClock) {
    let clock = ManualClock::new(NOW_MS);
    let config = SessionConfig::new("0123456789abcdef0123456789abcdef")
        .unwrap()
        .with_rules(
            crate::config::SessionRules::default()
                .with_access_token_ttl(Duration::from_secs(3600))
                .with_refresh_threshold(Duration::from_secs(900)),
        );
    (
        TokenCodec::with_clock(config.tokens(), config.rules(), Arc::new(clock.clone())).unwrap(),
        clock,
    )
}

/// An inner service that echoes the session's user id and counts its calls.
fn echo(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(move |req: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let user = req
            .extensions()
            .get::<Session>()
            .map(|s| s.user_id().to_owned())
            .unwrap_or_default();
        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(user)))) }
    })
}

fn request(auth: &[&str]) -> Request<Full<Bytes>> {
    let mut req = Request::builder().uri("/me").body(Full::default()).unwrap();
    for value in auth {
        req.headers_mut()
            .append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    }
    req
}

/// Sends `req` through `svc` once it is ready.
async fn send<S, B>(svc: &mut S, req: Request<B>) -> S::Response
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    svc.ready().await.unwrap().call(req).await.unwrap()
}

async fn body_json(res: Response<ResponseBody<Full<Bytes>>>) -> serde_json::Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_valid_token_reaches_the_inner_service_with_its_session() {
    let (codec, _) = codec();
    let token = codec.issue("alice", SessionId::random(), &[]).token;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = SessionLayer::new(codec).layer(echo(calls.clone()));
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let res = send(&mut svc, request(&[&format!("{scheme} {token}")])).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().get(X_TOKEN_REFRESH).is_none());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"alice");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn refusals_carry_a_challenge_and_json_and_skip_the_inner_service() {
    let (codec, _) = codec();
    let token = codec.issue("alice", SessionId::random(), &[]).token;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = SessionLayer::new(codec).layer(echo(calls.clone()));

    // No token: a bare challenge (RFC 6750 §3.1).
    let res = svc.ready().await.unwrap().call(request(&[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="api""#
    );
    assert_eq!(
        res.extensions().get::<AuthError>(),
        Some(&AuthError::MissingToken)
    );
    let body = body_json(res).await;
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "invalid_token");
    assert!(body["message"].as_str().unwrap().contains("Bearer"));

    // Another scheme counts as no bearer token.
    let res = send(&mut svc, request(&["Basic YWxpY2U6cHc="])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A bad token: invalid_token with a description.
    let res = send(&mut svc, request(&["Bearer abc.def.ghi"])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with(r#"Bearer realm="api", error="invalid_token", error_description=""#),
        "{challenge}"
    );

    // Empty credentials and embedded spaces.
    for bad in ["Bearer", "Bearer    ", &format!("Bearer {token} extra")] {
        let res = send(&mut svc, request(&[bad])).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }

    // Two Authorization headers: 400 invalid_request, even when both are valid.
    let both = format!("Bearer {token}");
    let res = send(&mut svc, request(&[&both, &both])).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_request""#)
    );
    assert_eq!(body_json(res).await["error"], "invalid_request");

    // A token in the query string is never read.
    let req = Request::builder()
        .uri(format!("/me?access_token={token}"))
        .body(Full::default())
        .unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn expired_tokens_get_token_expired() {
    let (codec, clock) = codec();
    let token = codec.issue("alice", SessionId::random(), &[]).token;
    let mut svc = SessionLayer::new(codec).layer(echo(Arc::default()));
    clock.advance(Duration::from_secs(3600 + 30));
    let res = send(&mut svc, request(&[&format!("Bearer {token}")])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body_json(res).await["error"], "token_expired");
}

#[tokio::test]
async fn refresh_hints_appear_within_the_threshold() {
    let (codec, clock) = codec();
    let token = codec.issue("alice", SessionId::random(), &[]).token;
    let mut svc = SessionLayer::new(codec).layer(echo(Arc::default()));
    let auth = format!("Bearer {token}");

    clock.advance(Duration::from_secs(3600 - 901));
    let res = send(&mut svc, request(&[&auth])).await;
    assert!(
        res.headers().get(X_TOKEN_REFRESH).is_none(),
        "901 s left is above the threshold"
    );

    clock.advance(Duration::from_secs(1));
    let res = send(&mut svc, request(&[&auth])).await;
    assert_eq!(res.headers()[X_TOKEN_REFRESH], "true");
    assert_eq!(res.headers()[X_TOKEN_EXPIRES_IN], "900");

    clock.advance(Duration::from_secs(900 + 10));
    let res = send(&mut svc, request(&[&auth])).await;
    assert_eq!(res.status(), StatusCode::OK, "inside the leeway");
    assert_eq!(res.headers()[X_TOKEN_EXPIRES_IN], "0");
}

/// A check whose answer is fixed, either at once or after a yield.
#[derive(Debug, Clone)]
struct Fixed {
    status: SessionStatus,
    pending: bool,
}

impl RevocationCheck for Fixed {
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = SessionStatus> + Send>>;
    fn check(&self, _session: &Session) -> Checked<Self::Future> {
        if self.pending {
            let status = self.status;
            Checked::Pending(Box::pin(async move {
                tokio::task::yield_now().await;
                status
            }))
        } else {
            Checked::Ready(self.status)
        }
    }
}

#[tokio::test]
async fn revocation_answers_are_obeyed_ready_or_pending() {
    let (codec, _) = codec();
    let token = codec.issue("alice", SessionId::random(), &[]).token;
    let auth = format!("Bearer {token}");
    for pending in [false, true] {
        for (status, expected, code) in [
            (SessionStatus::Active, StatusCode::OK, None),
            (
                SessionStatus::Revoked,
                StatusCode::UNAUTHORIZED,
                Some("token_revoked"),
            ),
            (
                SessionStatus::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                Some("unavailable"),
            ),
        ] {
            let calls = Arc::new(AtomicUsize::new(0));
            let layer = SessionLayer::with_revocation(codec.clone(), Fixed { status, pending });
            let mut svc = layer.layer(echo(calls.clone()));
            let res = send(&mut svc, request(&[&auth])).await;
            assert_eq!(res.status(), expected, "{status:?} pending={pending}");
            assert_eq!(calls.load(Ordering::SeqCst), usize::from(code.is_none()));
            if let Some(code) = code {
                assert_eq!(body_json(res).await["error"], code);
            } else {
                let body = res.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(&body[..], b"alice");
            }
        }
    }
}

#[tokio::test]
async fn the_refusal_response_can_be_replaced() {
    let (codec, _) = codec();
    let layer = SessionLayer::new(codec).error_responder(|error: AuthError| {
        let mut res = Response::new(Bytes::from_static(b"nope"));
        *res.status_mut() = if error == AuthError::MissingToken {
            StatusCode::FORBIDDEN
        } else {
            error.status()
        };
        res
    });
    let mut svc = layer.layer(echo(Arc::default()));
    let res = svc.ready().await.unwrap().call(request(&[])).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.extensions().get::<AuthError>(),
        Some(&AuthError::MissingToken)
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"nope");
}

#[test]
fn the_layer_and_its_service_are_cheap_to_clone_and_send() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>(_: &T) {}
    let (codec, _) = codec();
    let layer = SessionLayer::new(codec);
    assert_send_sync_clone(&layer);
    let svc = layer.layer(echo(Arc::default()));
    assert_send_sync_clone(&svc);
}

#[tokio::test]
async fn a_revoked_session_is_refused_on_a_cache_hit() {
    let manager =
        crate::SessionManager::new(SessionConfig::new("0123456789abcdef0123456789abcdef").unwrap())
            .unwrap();
    let pair = manager
        .create_session(crate::manager::NewSession::new("alice").roles(&[] as &[&str]))
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = SessionLayer::from_manager(&manager);
    let mut svc = layer.clone().layer(echo(calls.clone()));
    let auth = format!("Bearer {}", pair.access_token);
    let mut headers = http::HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&auth).unwrap());

    let res = send(&mut svc, request(&[&auth])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(layer.authenticate(&with_headers(&headers)).await.is_ok());
    assert!(
        manager
            .verify_access_token(&pair.access_token)
            .await
            .is_ok()
    );
    assert_eq!(layer.codec().cached_tokens(), 1);

    assert_eq!(manager.revoke(pair.session_id).await.unwrap(), 1);
    // The token is still cached: each path below answers from the cache, and still refuses.
    let res = send(&mut svc, request(&[&auth])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body_json(res).await["error"], "token_revoked");
    assert_eq!(
        layer.authenticate(&with_headers(&headers)).await.err(),
        Some(AuthError::Revoked)
    );
    assert_eq!(
        manager.verify_access_token(&pair.access_token).await.err(),
        Some(AuthError::Revoked)
    );
    assert_eq!(layer.codec().cached_tokens(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_layer_caches_valid_tokens_only() {
    let (codec, _) = codec();
    let token = codec.issue("alice", SessionId::random(), &[]).token;
    let layer = SessionLayer::new(codec.clone());
    let mut svc = layer.layer(echo(Arc::new(AtomicUsize::new(0))));
    for _ in 0..3 {
        let res = send(&mut svc, request(&[&format!("Bearer {token}")])).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    // Invalid ones are refused as before and never cached.
    let res = send(&mut svc, request(&[&format!("Bearer {token}x")])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(codec.cached_tokens(), 1);
}

/// A request carrying `headers`.
fn with_headers(headers: &http::HeaderMap) -> http::Request<()> {
    let mut request = http::Request::new(());
    *request.headers_mut() = headers.clone();
    request
}
