//! A fixed number of iterations of one contender, for `valgrind --tool=callgrind` (see
//! bench/profile.sh): only `measure_loop` is collected, so setup is left out.
//!
//! ```text
//! profile <decode12|decode9|session_layer|jwt_authorizer|tower_http|inner_only|refresh_memory> [iterations]
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use tower::{Layer, Service, service_fn};

use tjs_bench::{AsyncJwtCheck, Claims, SECRET, session_config};
use tower_jwt_session::SessionManager;

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("this path should not wait"),
    }
}

type Req = Request<Empty<Bytes>>;

#[inline(never)]
fn measure_loop<I>(inputs: Vec<I>, f: &mut dyn FnMut(I)) {
    for input in inputs {
        f(input);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().expect("which contender");
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let manager = SessionManager::new(session_config()).unwrap();
    let pair = rt
        .block_on(
            manager.create_session(
                tower_jwt_session::manager::NewSession::new("alice")
                    .roles(&["user".to_owned(), "admin".to_owned()]),
            ),
        )
        .unwrap();
    let token = pair.access_token.clone();
    let bearer = format!("Bearer {token}");
    let request = || -> Req {
        Request::builder()
            .uri("/api/me")
            .header("authorization", &bearer)
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let requests = || (0..n).map(|_| request()).collect::<Vec<_>>();
    let inner =
        service_fn(|_req: Req| async { Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())) });

    match what.as_str() {
        "decode12" => {
            let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()).unwrap();
            let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
            measure_loop(vec![(); n], &mut |()| {
                black_box(
                    jsonwebtoken::decode::<Claims>(black_box(&token), &key, &validation).unwrap(),
                );
            });
        }
        "decode9" => {
            let key = jsonwebtoken9::DecodingKey::from_secret(SECRET.as_bytes());
            let validation = jsonwebtoken9::Validation::new(jsonwebtoken9::Algorithm::HS256);
            measure_loop(vec![(); n], &mut |()| {
                black_box(
                    jsonwebtoken9::decode::<Claims>(black_box(&token), &key, &validation).unwrap(),
                );
            });
        }
        "inner_only" => {
            let mut svc = inner;
            measure_loop(requests(), &mut |req| {
                black_box(ready(svc.call(req)).unwrap());
            });
        }
        "session_layer" => {
            let mut svc = tower_jwt_session::SessionLayer::from_manager(&manager).layer(inner);
            assert_eq!(ready(svc.call(request())).unwrap().status(), 200);
            measure_loop(requests(), &mut |req| {
                black_box(ready(svc.call(req)).unwrap());
            });
        }
        "tower_http" => {
            let mut svc = tower_http::auth::AsyncRequireAuthorizationLayer::new(AsyncJwtCheck::<
                Empty<Bytes>,
            >::new(
            ))
            .layer(inner);
            measure_loop(requests(), &mut |req| {
                black_box(ready(svc.call(req)).unwrap());
            });
        }
        "jwt_authorizer" => {
            let inner07 = service_fn(|_req: Req| async {
                Ok::<_, Infallible>(axum07::response::Response::new(axum07::body::Body::empty()))
            });
            let authorizer = rt
                .block_on(
                    jwt_authorizer::JwtAuthorizer::<Claims>::from_secret(SECRET)
                        .validation(
                            jwt_authorizer::Validation::new()
                                .algs(vec![jsonwebtoken9::Algorithm::HS256]),
                        )
                        .build(),
                )
                .unwrap();
            let mut svc = jwt_authorizer::IntoLayer::into_layer(authorizer).layer(inner07);
            measure_loop(requests(), &mut |req| {
                black_box(ready(svc.call(req)).unwrap());
            });
        }
        "refresh_memory" => {
            let mut current = Some(pair);
            measure_loop(vec![(); n], &mut |()| {
                let next = rt
                    .block_on(manager.refresh(&current.take().unwrap().refresh_token))
                    .unwrap();
                current = Some(next);
            });
        }
        other => panic!("unknown contender {other}"),
    }
}
