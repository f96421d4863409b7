//! The library's own pieces as one axum router, driven in process with `oneshot` (as
//! tower-sessions' tests do): no socket, no child process.
//!
//! [`App::start`] wires what the example wires, from the same environment variables: the
//! login service (with a plain credential check standing in for the example's argon2), the
//! token routes under `/api/token`, the rate limiter in front of both, `GET /api/me` behind the
//! session layer, and `GET /api/admin` behind the session layer and `require_role("admin")`.
//! What only the example does (argon2, `/metrics`, security headers, CORS, the demo page,
//! startup from the process environment, graceful shutdown) is tested against the example over
//! real HTTP in `tests/example.rs`.
//!
//! [`Client`] reads like the part of `reqwest` the tests use (`s.client.post(s.url(..))
//! .header(..).json(..).send().await`), so a test reads the same in process and over HTTP.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_jwt_session::login::Credentials;
use tower_jwt_session::response::ErrorBody;
use tower_jwt_session::{
    Session, SessionConfig, SessionLayer, SessionManager,
    layer::{ClientRateLimitLayer, require_role},
    login::{Authenticated, LoginService},
    rate_limit::{AttemptTracker, RateLimitConfig},
    response::ErrorCode,
    routes::TokenRoutes,
};

use super::harness::Sendable;
use super::{Harness, SECRET};

/// The host every request is addressed to.
const BASE: &str = "http://127.0.0.1:3000";

/// The library's router with a manager made from `env`.
pub struct App {
    /// The manager behind every route.
    pub manager: SessionManager,
    /// `http://127.0.0.1:3000`: the `Host` of every request, as `Server::base` over HTTP.
    pub base: String,
    /// Sends from 127.0.0.1.
    pub client: Client,
}

impl App {
    /// The app with `JWT_SECRET` and the given extra variables, read as
    /// `SessionConfig::from_lookup` and `RateLimitConfig::from_lookup` read them.
    pub fn start(env: &[(&str, &str)]) -> App {
        let mut vars: HashMap<String, String> = HashMap::new();
        vars.insert("JWT_SECRET".into(), SECRET.into());
        for (k, v) in env {
            vars.insert((*k).into(), (*v).into());
        }
        let lookup = |name: &str| vars.get(name).cloned();
        let config = SessionConfig::from_lookup(lookup).expect("a valid configuration");
        let limits = RateLimitConfig::from_lookup(lookup).expect("valid rate limits");
        let manager = SessionManager::new(config).expect("a manager");
        let router = router(&manager, limits);
        App {
            manager,
            base: BASE.to_owned(),
            client: Client::new(router),
        }
    }
}

impl Harness for App {
    type Request = RequestBuilder;

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn get_req(&self, path: &str) -> Self::Request {
        self.client.get(self.url(path))
    }

    fn post_req(&self, path: &str) -> Self::Request {
        self.client.post(self.url(path))
    }

    fn with_header(request: Self::Request, name: HeaderName, value: HeaderValue) -> Self::Request {
        request.header(name, value)
    }

    fn with_body(request: Self::Request, body: Vec<u8>) -> Self::Request {
        request.body(body)
    }
}

impl Sendable for RequestBuilder {
    async fn send_parts(self) -> (u16, HeaderMap, String) {
        let res = self.send().await.expect("the router answers");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, headers, res.text().await.expect("a body"))
    }
}

/// The router: what the example serves (with its JSON 404 and 405), less what only the example
/// does.
pub fn router(manager: &SessionManager, limits: RateLimitConfig) -> Router {
    let attempts = AttemptTracker::default();
    let login = LoginService::new(manager, check_password).attempt_tracker(attempts.clone());
    let protected = Router::new()
        .route("/api/me", get(me))
        .route("/api/admin", get(admin).route_layer(require_role("admin")))
        .route_layer(SessionLayer::from_manager(manager));
    let rate_limited = Router::new()
        .route_service("/api/auth/login", login.clone())
        .route_service("/api/auth/reauthenticate", login)
        .nest_service(
            "/api/token",
            TokenRoutes::new(manager).attempt_tracker(attempts),
        )
        .layer(ClientRateLimitLayer::new(limits));
    Router::new()
        .merge(rate_limited)
        .merge(protected)
        .fallback(|| async { ErrorBody::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ErrorBody::new(
                ErrorCode::MethodNotAllowed,
                "this route does not take that method",
            )
        })
}

/// alice, bob (role `user`) and admin (`user`, `admin`), each with the password
/// `<name>-password`: the example's users, without argon2. Every suite's credential check.
pub async fn check_password(
    c: Credentials,
) -> Result<Option<Authenticated>, tower_jwt_session::login::CheckError> {
    let roles: &[&str] = match c.username.as_str() {
        "alice" | "bob" => &["user"],
        "admin" => &["user", "admin"],
        _ => return Ok(None),
    };
    let right = c.password == format!("{}-password", c.username);
    Ok(right.then(|| Authenticated::new(c.username.as_str(), roles.iter().copied())))
}

/// `GET /api/me`: the verified session, as the example answers it.
async fn me(session: Session) -> axum::Json<Value> {
    axum::Json(json!({
        "success": true,
        "message": "Authenticated",
        "data": {
            "userId": session.user_id(),
            "sessionId": session.session_id(),
            "roles": session.roles().collect::<Vec<_>>(),
        },
    }))
}

/// `GET /api/admin`: reached only with the `admin` role.
async fn admin(session: Session) -> axum::Json<Value> {
    axum::Json(json!({"success": true, "data": {"userId": session.user_id()}}))
}

/// Sends requests to the router in process, from one client address.
#[derive(Clone)]
pub struct Client {
    router: Router,
    peer: IpAddr,
}

impl Client {
    /// Sends to `router` from 127.0.0.1.
    pub fn new(router: Router) -> Client {
        Client {
            router,
            peer: IpAddr::from([127, 0, 0, 1]),
        }
    }

    /// The same router, seen from another client address (as reqwest's `local_address`).
    pub fn with_address(&self, peer: impl Into<IpAddr>) -> Client {
        Client {
            router: self.router.clone(),
            peer: peer.into(),
        }
    }

    pub fn get(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// A request to `url` (`http://host/path?query`; the host goes into `Host`).
    pub fn request(&self, method: Method, url: impl AsRef<str>) -> RequestBuilder {
        let url = url.as_ref();
        let rest = url.strip_prefix("http://").expect("an http:// URL");
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let builder = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, host);
        RequestBuilder {
            client: self.clone(),
            builder,
            body: Body::empty(),
        }
    }

    /// Sends `request` as it is, with this client's address as the peer.
    pub async fn send(&self, mut request: Request<Body>) -> Response {
        let peer = SocketAddr::new(self.peer, 40_000);
        request.extensions_mut().insert(ConnectInfo(peer));
        let res = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("a body");
        Response {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

/// A request being built; `send` answers with the whole response.
pub struct RequestBuilder {
    client: Client,
    builder: http::request::Builder,
    body: Body,
}

impl RequestBuilder {
    pub fn header<V>(mut self, name: impl AsRef<str>, value: V) -> Self
    where
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        let name = HeaderName::from_bytes(name.as_ref().as_bytes()).expect("a header name");
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn bearer_auth(self, token: impl std::fmt::Display) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    pub fn json(mut self, body: &Value) -> Self {
        let has_type = self
            .builder
            .headers_ref()
            .is_some_and(|h| h.contains_key(http::header::CONTENT_TYPE));
        if !has_type {
            self = self.header("content-type", "application/json");
        }
        self.body(body.to_string())
    }

    pub fn body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request. Never fails (there is no connection to lose); a `Result` so that a
    /// test reads as it does over HTTP.
    pub async fn send(self) -> Result<Response, Infallible> {
        let request = self.builder.body(self.body).expect("a valid request");
        Ok(self.client.send(request).await)
    }
}

/// A whole response.
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub async fn text(self) -> Result<String, Infallible> {
        Ok(String::from_utf8_lossy(&self.body).into_owned())
    }

    pub async fn json<T: serde::de::DeserializeOwned>(self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }
}

/// The status and the JSON body of `res`.
pub async fn read(res: Response) -> (u16, Value) {
    let status = res.status.as_u16();
    let body = serde_json::from_slice(&res.body).unwrap_or_else(|_| {
        panic!(
            "not JSON ({status}): {}",
            String::from_utf8_lossy(&res.body)
        )
    });
    (status, body)
}
