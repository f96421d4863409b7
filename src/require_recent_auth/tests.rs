use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::StatusCode;
use http_body_util::{BodyExt, Full};
use tower::{ServiceExt, service_fn};
use tower_service::Service;

use super::*;
use crate::clock::ManualClock;
use crate::guard::ResponseBody;
use crate::session::SessionId;

const NOW: u64 = 1_800_000_000_000;

fn session(auth_time_ms: u64, acr: Option<&str>) -> Session {
    Session::new("alice", ["user"].into_iter(), SessionId::random(), 1, 2).with_auth(
        auth_time_ms,
        vec!["pwd".to_owned()],
        acr.map(str::to_owned),
    )
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

async fn call(
    layer: &RequireRecentAuthLayer,
    calls: &Arc<AtomicUsize>,
    session: Option<Session>,
) -> Response<ResponseBody<Full<Bytes>>> {
    let mut svc = layer.layer(counting(calls.clone()));
    svc.ready()
        .await
        .unwrap()
        .call(request(session))
        .await
        .unwrap()
}

async fn json(res: Response<ResponseBody<Full<Bytes>>>) -> serde_json::Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_recent_authentication_is_let_through_and_an_old_one_gets_the_rfc_9470_challenge() {
    let clock = ManualClock::new(NOW);
    let layer = require_recent_auth(Duration::from_secs(300)).clock(clock.clone());
    let calls = Arc::new(AtomicUsize::new(0));
    // Exactly at the bound: still recent.
    let res = call(&layer, &calls, Some(session(NOW - 300_000, None))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let res = call(&layer, &calls, Some(session(NOW - 300_001, None))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"api\", error=\"insufficient_user_authentication\", \
         error_description=\"a more recent authentication is required\", max_age=300"
    );
    assert_eq!(
        json(res).await,
        serde_json::json!({
            "success": false,
            "message": "a more recent authentication is required",
            "error": "insufficient_user_authentication",
        })
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the inner service is not called"
    );

    // A token without auth_time (an older release's) is never recent.
    let res = call(&layer, &calls, Some(session(0, None))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_acr_requirement_names_its_values_and_max_age() {
    let clock = ManualClock::new(NOW);
    let layer = require_recent_auth(Duration::from_secs(600))
        .acr_values(["urn:example:aal2", "urn:example:aal3"])
        .realm("shop")
        .clock(clock);
    let calls = Arc::new(AtomicUsize::new(0));
    for acr in [None, Some("urn:example:aal1")] {
        let res = call(&layer, &calls, Some(session(NOW, acr))).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"shop\", error=\"insufficient_user_authentication\", \
             error_description=\"a different authentication level is required\", \
             acr_values=\"urn:example:aal2 urn:example:aal3\", max_age=600"
        );
    }
    let res = call(&layer, &calls, Some(session(NOW, Some("urn:example:aal3")))).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Strong but old: told to be recent.
    let res = call(
        &layer,
        &calls,
        Some(session(NOW - 601_000, Some("urn:example:aal2"))),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("a more recent authentication")
    );
    // An empty list lets nobody through; no requirement lets everyone through.
    let nobody = RequireRecentAuthLayer::new().acr_values(Vec::<String>::new());
    let res = call(&nobody, &calls, Some(session(NOW, Some("x")))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let anyone = RequireRecentAuthLayer::new();
    let res = call(&anyone, &calls, Some(session(0, None))).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn no_session_is_the_servers_wiring_mistake() {
    let calls = Arc::new(AtomicUsize::new(0));
    let res = call(&require_recent_auth(Duration::from_secs(60)), &calls, None).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
