//! The load-test servers: one route, `GET /api/me`, answering `{"userId":"<sub>"}`, behind
//! each contender's check. One tokio worker thread (the load script pins it to one core and
//! wrk to the other, as Node runs on one thread).
//!
//! ```text
//! server <variant> <port>
//!   bare            axum 0.8, no check (the ceiling)
//!   session         axum 0.8 + tower-jwt-session's SessionLayer (MemoryStore, default config:
//!                   the cache of verified tokens on)
//!   session-nocache the same with the cache of verified tokens off (every request verifies)
//!   tower-http      axum 0.8 + tower-http AsyncRequireAuthorizationLayer, hand-written check
//!   jwt-authorizer  axum 0.7 + jwt-authorizer 0.15 (it is built on axum 0.7)
//!   bare07          axum 0.7, no check (jwt-authorizer's own ceiling)
//! ```
//!
//! Prints `listening on http://127.0.0.1:PORT`; the `session` variants also create a session
//! for `alice` and prints `token <access token>` (HS256 with the shared secret, so every
//! variant accepts it).

use serde::Serialize;
use tokio::net::TcpListener;

use tjs_bench::{AsyncJwtCheck, Claims, SECRET};

#[derive(Serialize)]
struct Me<'a> {
    #[serde(rename = "userId")]
    user_id: &'a str,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = args.next().expect("usage: server <variant> <port>");
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        match variant.as_str() {
            "bare" => {
                use axum::{Json, Router, routing::get};
                let app =
                    Router::new().route("/api/me", get(|| async { Json(Me { user_id: "alice" }) }));
                println!("listening on http://{addr}");
                axum::serve(listener, app).await.unwrap();
            }
            "session" | "session-nocache" => {
                use axum::{Json, Router, response::IntoResponse, routing::get};
                use tower_jwt_session::config::{TokenCacheSettings, TokenSettings};
                use tower_jwt_session::{Session, SessionConfig, SessionLayer, SessionManager};
                let mut tokens = TokenSettings::new(SECRET).unwrap();
                if variant == "session-nocache" {
                    tokens = tokens.with_verified_cache(TokenCacheSettings::off());
                }
                let manager = SessionManager::new(SessionConfig::from_tokens(tokens)).unwrap();
                let pair = manager
                    .create_session(
                        tower_jwt_session::manager::NewSession::new("alice")
                            .roles(&["user".to_owned(), "admin".to_owned()]),
                    )
                    .await
                    .unwrap();
                let app = Router::new()
                    .route(
                        "/api/me",
                        get(|session: Session| async move {
                            Json(Me {
                                user_id: session.user_id(),
                            })
                            .into_response()
                        }),
                    )
                    .layer(SessionLayer::from_manager(&manager));
                println!("listening on http://{addr}");
                println!("token {}", pair.access_token);
                axum::serve(listener, app).await.unwrap();
            }
            "tower-http" => {
                use axum::{Extension, Json, Router, response::IntoResponse, routing::get};
                let app = Router::new()
                    .route(
                        "/api/me",
                        get(|Extension(claims): Extension<Claims>| async move {
                            Json(Me {
                                user_id: &claims.sub,
                            })
                            .into_response()
                        }),
                    )
                    .layer(tower_http::auth::AsyncRequireAuthorizationLayer::new(
                        AsyncJwtCheck::<axum::body::Body>::new(),
                    ));
                println!("listening on http://{addr}");
                axum::serve(listener, app).await.unwrap();
            }
            "jwt-authorizer" => {
                use axum07::{Json, Router, response::IntoResponse, routing::get};
                use jwt_authorizer::{IntoLayer, JwtAuthorizer, JwtClaims, Validation};
                let authorizer = JwtAuthorizer::<Claims>::from_secret(SECRET)
                    .validation(Validation::new().algs(vec![jsonwebtoken9::Algorithm::HS256]))
                    .build()
                    .await
                    .unwrap();
                let app = Router::new()
                    .route(
                        "/api/me",
                        get(|JwtClaims(claims): JwtClaims<Claims>| async move {
                            Json(Me {
                                user_id: &claims.sub,
                            })
                            .into_response()
                        }),
                    )
                    .layer(authorizer.into_layer());
                println!("listening on http://{addr}");
                axum07::serve(listener, app).await.unwrap();
            }
            "bare07" => {
                use axum07::{Json, Router, routing::get};
                let app =
                    Router::new().route("/api/me", get(|| async { Json(Me { user_id: "alice" }) }));
                println!("listening on http://{addr}");
                axum07::serve(listener, app).await.unwrap();
            }
            other => panic!("unknown variant {other}"),
        }
    });
}
