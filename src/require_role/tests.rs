use http::StatusCode;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::{BodyExt, Full};
use tower::{ServiceExt, service_fn};

use tower_service::Service;

use super::*;
use crate::guard::ResponseBody;
use crate::session::SessionId;

fn session(roles: &[&str]) -> Session {
    Session::new("alice", roles.iter().copied(), SessionId::random(), 1, 2)
}

fn request(session: Option<Session>) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::default());
    if let Some(s) = session {
        req.extensions_mut().insert(s);
    }
    req
}

fn counting(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>
+ Clone
+ Send
+ Sync {
    service_fn(move |_req: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
    })
}

async fn json(res: Response<ResponseBody<Full<Bytes>>>) -> serde_json::Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_session_with_the_role_is_let_through() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = require_role("admin").layer(counting(calls.clone()));
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some(session(&["user", "admin"]))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");

    let mut any = RequireRoleLayer::any_of(["ops", "admin"]).layer(counting(calls.clone()));
    let res = any
        .ready()
        .await
        .unwrap()
        .call(request(Some(session(&["admin"]))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_session_without_the_role_gets_403_insufficient_scope() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = require_role("admin").layer(counting(calls.clone()));
    for roles in [&["user"][..], &[], &["Admin"], &["admin "]] {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(request(Some(session(roles))))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{roles:?}");
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="api", error="insufficient_scope", error_description="the admin role is required""#
        );
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let body = json(res).await;
        assert_eq!(
            body,
            serde_json::json!({
                "success": false,
                "message": "the admin role is required",
                "error": "forbidden",
            })
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Custom realm, several roles, and quotes in names cannot break the header.
    let layer = RequireRoleLayer::any_of(["ops", "ad\"min"]).realm("my \"app\"");
    assert_eq!(layer.roles().collect::<Vec<_>>(), ["ops", "ad\"min"]);
    let mut svc = layer.layer(counting(calls.clone()));
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(Some(session(&["user"]))))
        .await
        .unwrap();
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="my app", error="insufficient_scope", error_description="one of the roles ops, admin is required""#
    );

    // An empty list lets nobody through.
    let mut nobody = RequireRoleLayer::any_of(Vec::<String>::new()).layer(counting(calls.clone()));
    let res = nobody
        .ready()
        .await
        .unwrap()
        .call(request(Some(session(&["admin"]))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn no_session_means_500_naming_the_missing_layer_never_the_inner_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = require_role("admin").layer(counting(calls.clone()));
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(None))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
    let body = json(res).await;
    assert_eq!(
        body["error"], "internal_error",
        "the code agrees with the 500"
    );
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("session layer is missing"), "{message}");
    assert!(!message.contains("bearer"), "{message}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn in_the_wrong_order_a_request_with_a_token_is_told_the_layer_is_misplaced() {
    use crate::{SessionConfig, SessionLayer, SessionManager};
    let config = SessionConfig::new("0123456789abcdef0123456789abcdef").unwrap();
    let manager = SessionManager::new(config).unwrap();
    let pair = manager
        .create_session(crate::manager::NewSession::new("root").roles(&["admin"]))
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    // The role check outside the session layer: it runs first and finds no session.
    let svc = tower::ServiceBuilder::new()
        .layer(require_role("admin"))
        .layer(SessionLayer::from_manager(&manager))
        .service(counting(calls.clone()));
    let req = Request::builder()
        .header("authorization", format!("Bearer {}", pair.access_token))
        .body(Full::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("runs after the role check"), "{message}");
    assert!(!message.to_lowercase().contains("bearer"), "{message}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn a_missing_session_is_logged_as_an_error_naming_the_session_layer() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::ERROR)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // A callsite reached first by a test without a subscriber may have cached "never".
    tracing::callsite::rebuild_interest_cache();

    let svc = require_role("admin").layer(counting(Arc::default()));
    let res = svc.oneshot(request(None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("ERROR"), "{log}");
    assert!(log.contains("the session layer is missing"), "{log}");
    assert!(log.contains(".route_layer(require_role(..))"), "{log}");
}

#[test]
fn the_layer_and_its_service_are_cheap_to_clone_and_send() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>(_: &T) {}
    let layer = require_role("admin");
    assert_send_sync_clone(&layer);
    assert_send_sync_clone(&layer.layer(counting(Arc::default())));
}
