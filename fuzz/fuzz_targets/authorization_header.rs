//! The `Authorization` header path: arbitrary header bytes through
//! `SessionLayer::from_manager` around a trivial service, and through
//! `SessionLayer::authenticate`.
//!
//! The input is up to four header values separated by `\n`, each sent as one `Authorization`
//! header (values `http` refuses are skipped). `$A` stands for a live access token, `$R` for the
//! access token of a revoked session, so the fuzzer can mutate around real tokens.
//!
//! Checked: the layer answers 200, 400 or 401 and never calls the inner service on a refusal;
//! it agrees with `authenticate`; and a request is let through only with exactly one header that
//! is `Bearer` (any case), whitespace, and the live token byte for byte.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt, service_fn};
use tower_jwt_session::{Session, SessionManager};

use common::*;

struct State {
    manager: SessionManager,
    runtime: tokio::runtime::Runtime,
    live: String,
    revoked: String,
}

static STATE: LazyLock<State> = LazyLock::new(|| {
    let runtime = runtime();
    let manager = manager();
    let (live, revoked) = runtime.block_on(async {
        let live = manager
            .create_session(
                tower_jwt_session::manager::NewSession::new("alice").roles(&["user".to_owned()]),
            )
            .await
            .unwrap();
        let gone = manager
            .create_session(tower_jwt_session::manager::NewSession::new("bob"))
            .await
            .unwrap();
        manager.revoke(gone.session_id).await.unwrap();
        (live.access_token, gone.access_token)
    });
    State {
        manager,
        runtime,
        live,
        revoked,
    }
});

static CALLED: AtomicBool = AtomicBool::new(false);

fuzz_target!(|data: &[u8]| {
    let state = &*STATE;
    let values = [
        (&b"$A"[..], state.live.as_bytes()),
        (&b"$R"[..], state.revoked.as_bytes()),
    ];
    let mut request = Request::new(Full::<Bytes>::default());
    for line in data.split(|b| *b == b'\n').take(4) {
        if let Ok(value) = HeaderValue::from_bytes(&substitute(line, &values)) {
            request.headers_mut().append(AUTHORIZATION, value);
        }
    }
    let headers = request.headers().clone();
    let mut probe = Request::new(());
    *probe.headers_mut() = headers.clone();

    let layer = tower_jwt_session::SessionLayer::from_manager(&state.manager);
    let service = layer
        .clone()
        .layer(service_fn(|req: Request<Full<Bytes>>| async move {
            CALLED.store(true, Ordering::SeqCst);
            let session = req
                .extensions()
                .get::<Session>()
                .expect("the layer put the session there");
            assert_eq!(session.user_id(), "alice");
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    CALLED.store(false, Ordering::SeqCst);
    let response = state.runtime.block_on(service.oneshot(request)).unwrap();
    let status = response.status().as_u16();
    let called = CALLED.load(Ordering::SeqCst);
    let authenticated = state.runtime.block_on(layer.authenticate(&probe));

    match authenticated {
        Ok(session) => {
            assert_eq!(status, 200);
            assert!(called);
            assert_eq!(session.user_id(), "alice");
            let mut all = headers.get_all(AUTHORIZATION).iter();
            let value = all.next().expect("one header").as_bytes().trim_ascii();
            assert!(
                all.next().is_none(),
                "let through with two Authorization headers"
            );
            let (scheme, token) = value.split_at(6);
            assert!(scheme.eq_ignore_ascii_case(b"bearer"), "{value:?}");
            assert!(token.first().is_some_and(|b| *b == b' ' || *b == b'\t'));
            assert_eq!(
                token.trim_ascii_start(),
                state.live.as_bytes(),
                "let through with a token that is not the live one"
            );
        }
        Err(error) => {
            assert_eq!(status, error.status().as_u16(), "{error:?}");
            assert!(!called, "the inner service was called on a refusal");
            assert!(status == 400 || status == 401, "{error:?} -> {status}");
            assert!(
                response
                    .headers()
                    .contains_key(http::header::WWW_AUTHENTICATE),
                "a refusal without a challenge"
            );
        }
    }
});
