//! The layer on a bare hyper 1 server, no axum: proof that any tower service can be protected.
//!
//! ```text
//! JWT_SECRET=$(openssl rand -base64 48) cargo run --example hyper
//! curl -s -X POST localhost:3001/login -d alice
//! curl -s localhost:3001/hello -H "Authorization: Bearer <accessToken>"
//! curl -s -X POST localhost:3001/api/token/refresh -H 'content-type: application/json' \
//!      -d '{"refreshToken":"<refreshToken>"}'
//! ```
//!
//! `POST /login` with a user name as the body starts a session without a password: a stand-in
//! for your own authentication. `/api/token/*` are the token routes; everything else needs a
//! bearer token.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_jwt_session::response::{Success, TokenPairBody};
use tower_jwt_session::{Session, SessionLayer, SessionManager, routes::TokenRoutes};

type Body =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[tokio::main]
// One function from the environment to the accept loop, so it reads top to bottom as a recipe.
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let manager = SessionManager::from_env().await?; // REDIS_URL picks the Redis store
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on http://{}", listener.local_addr()?);

    // Protected routes: the layer wraps a plain `service_fn`.
    let hello = service_fn(|req: Request<Incoming>| async move {
        let session = req
            .extensions()
            .get::<Session>()
            .expect("behind SessionLayer");
        let text = format!(
            "hello {}, roles {:?}\n",
            session.user_id(),
            session.roles().collect::<Vec<_>>()
        );
        Ok::<_, Infallible>(Response::new(full(text)))
    });
    let protected = SessionLayer::from_manager(&manager).layer(hello);
    let tokens = TokenRoutes::new(&manager);

    loop {
        let (stream, _) = listener.accept().await?;
        let (manager, protected, tokens) = (manager.clone(), protected.clone(), tokens.clone());
        let router = service_fn(move |req: Request<Incoming>| {
            let (manager, mut protected, mut tokens) =
                (manager.clone(), protected.clone(), tokens.clone());
            async move {
                let path = req.uri().path();
                let response = if path.starts_with("/api/token/") {
                    tokens
                        .call(req)
                        .await?
                        .map(|b| b.map_err(|never| match never {}).boxed_unsync())
                } else if path == "/login" && req.method() == Method::POST {
                    login(&manager, req).await
                } else {
                    protected
                        .ready()
                        .await?
                        .call(req)
                        .await?
                        .map(|b| b.map_err(Into::into).boxed_unsync())
                };
                Ok::<_, Infallible>(response)
            }
        });
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            if let Err(error) = http1::Builder::new()
                .serve_connection(io, TowerToHyperService::new(router))
                .await
            {
                eprintln!("connection error: {error}");
            }
        });
    }
}

async fn login(manager: &SessionManager, req: Request<Incoming>) -> Response<Body> {
    let Ok(body) = Limited::new(req.into_body(), 256).collect().await else {
        return status(
            StatusCode::BAD_REQUEST,
            "send a user name of at most 256 bytes\n",
        );
    };
    let user = String::from_utf8_lossy(&body.to_bytes()).trim().to_owned();
    match manager
        .create_session(
            tower_jwt_session::manager::NewSession::new(&user).roles(&["user".to_owned()]),
        )
        .await
    {
        Ok(pair) => {
            let body = Success::new("Login successful", TokenPairBody::from_pair(&pair));
            Response::new(full(serde_json::to_vec(&body).expect("serializable")))
        }
        Err(error) => status(error.code().status(), format!("{error}\n")),
    }
}

fn status(code: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(full(text));
    *res.status_mut() = code;
    res
}
