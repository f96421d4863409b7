//! Runs one hot-path variant in a loop, for instruction counts that do not depend on how busy
//! the machine is (the time figures of `cargo bench --bench layer` do):
//!
//! ```text
//! cargo build --release --example profile_hot_path
//! for mode in decode layer; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/profile_hot_path $mode 20000 2>&1 | grep refs
//! done
//! ```
//!
//! `decode` is a bare `jsonwebtoken::decode` of the token; `layer` is the whole `SessionLayer`
//! path with a revocation-cache hit (request construction included); `verify` is the codec alone.
//! Subtract the `baseline` (setup only) run from each. Under valgrind SHA-256 runs without the
//! SHA extensions, which inflates both sides by the same HMAC work.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use tower::{Layer, Service, service_fn};
use tower_jwt_session::{SessionConfig, SessionLayer, SessionManager};

const SECRET: &str = "bench-secret-bench-secret-bench-secret!!";

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Claims {
    sub: String,
    sid: String,
    jti: String,
    iat: u64,
    exp: u64,
    roles: Vec<String>,
}

fn ready<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the hot path should not wait"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "layer".to_owned());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let config = SessionConfig::new(SECRET).unwrap().with_revocation_cache(
        tower_jwt_session::config::RevocationCacheSettings::default()
            .with_ttl(std::time::Duration::from_secs(3600)),
    );
    let manager = SessionManager::new(config).unwrap();
    let pair = rt
        .block_on(
            manager.create_session(
                tower_jwt_session::manager::NewSession::new("alice")
                    .roles(&["user".to_owned(), "admin".to_owned()]),
            ),
        )
        .unwrap();
    let token = pair.access_token;
    let bearer = format!("Bearer {token}");
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    let inner = service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let mut layered = SessionLayer::from_manager(&manager).layer(inner);
    let codec = manager.codec().clone();

    let start = std::time::Instant::now();
    for _ in 0..n {
        match mode.as_str() {
            "decode" => {
                black_box(
                    jsonwebtoken::decode::<Claims>(black_box(&token), &key, &validation).unwrap(),
                );
            }
            "verify" => {
                black_box(codec.verify(black_box(&token)).unwrap());
            }
            "layer" => {
                let req = Request::builder()
                    .uri("/api/me")
                    .header("authorization", &bearer)
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let res = ready(layered.call(req)).unwrap();
                assert_eq!(res.status(), 200);
                black_box(res);
            }
            _ => {}
        }
    }
    eprintln!(
        "{mode}: {:?} per iteration",
        start.elapsed() / n.max(1) as u32
    );
}
