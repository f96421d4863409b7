//! What the criterion bench, the load-test servers and the scale runs share: the key, the
//! claims, the hand-written jsonwebtoken checks the tower-http contenders run, the resident set.

use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::{Deserialize, Serialize};
use tower_http::auth::AsyncAuthorizeRequest;
use tower_jwt_session::SessionConfig;

/// The resident set of this process, in bytes (Linux, `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The device metadata the scale runs give each session they create: with `TJS_BENCH_DEVICE=1`,
/// what a login from a desktop Chrome stores by default (`Chrome on Windows`, its /24), so the
/// bytes per session and the refresh latency can be compared with and without it; otherwise
/// none (as `create_session` stores).
pub fn bench_device() -> tower_jwt_session::store::DeviceInfo {
    use tower_jwt_session::config::DeviceIp;
    use tower_jwt_session::store::DeviceInfo;
    if std::env::var("TJS_BENCH_DEVICE").is_ok_and(|v| v == "1") {
        DeviceInfo::capture(
            Some(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like \
                 Gecko) Chrome/131.0.0.0 Safari/537.36",
            ),
            Some(std::net::IpAddr::from([203, 0, 113, 77])),
            DeviceIp::Truncated,
        )
    } else {
        DeviceInfo::default()
    }
}

/// The custom claims the scale runs give each session they create: with `TJS_BENCH_CLAIMS=1`, a
/// 200-byte claims object (a tenant, an org, a plan, an email, five permissions), so the bytes
/// per session can be compared with and without it; otherwise none.
pub fn bench_claims() -> tower_jwt_session::session::CustomClaims {
    use tower_jwt_session::session::CustomClaims;
    if std::env::var("TJS_BENCH_CLAIMS").is_ok_and(|v| v == "1") {
        let claims = CustomClaims::new(&serde_json::json!({
            "tenant": "acme",
            "org": "org_4f9c2a7e1b",
            "plan": "enterprise",
            "email": "alice.example@acme-corporation.example.com",
            "permissions": ["billing:read", "billing:write", "users:read", "users:invite", "reports:x"],
        }))
        .expect("an object without reserved names");
        assert_eq!(claims.len(), 200);
        claims
    } else {
        CustomClaims::default()
    }
}

/// The HMAC key every contender verifies with.
pub const SECRET: &str = "bench-secret-bench-secret-bench-secret!!";

/// The claims of our access tokens, decoded in full by every peer (so each does the same serde
/// work as the layer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub sid: String,
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
    pub roles: Vec<String>,
}

/// The session configuration of the benches: the shared secret, and a revocation cache that
/// stays warm for the whole run (the default, 1 s, would expire mid-run and measure the miss
/// path instead of the hot path).
pub fn session_config() -> SessionConfig {
    SessionConfig::new(SECRET)
        .expect("secret")
        .with_revocation_cache(
            tower_jwt_session::config::RevocationCacheSettings::default()
                .with_ttl(Duration::from_secs(3600)),
        )
}

/// The hand-written check: `Authorization: Bearer`, then `jsonwebtoken::decode` (HS256 only,
/// `exp` required), claims put into the request extensions.
#[derive(Clone)]
pub struct JwtCheck {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl Default for JwtCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl JwtCheck {
    pub fn new() -> Self {
        Self {
            key: Arc::new(DecodingKey::from_secret(SECRET.as_bytes()).expect("key")),
            validation: Arc::new(Validation::new(Algorithm::HS256)),
        }
    }

    /// The claims of a valid bearer token in `headers`.
    #[inline]
    pub fn check(&self, headers: &http::HeaderMap) -> Option<Claims> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let token = value.strip_prefix("Bearer ")?;
        decode::<Claims>(token, &self.key, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

fn unauthorized<R: Default>() -> Response<R> {
    let mut res = Response::new(R::default());
    *res.status_mut() = StatusCode::UNAUTHORIZED;
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    res
}

/// [`JwtCheck`] as tower-http's `AsyncAuthorizeRequest` (for `AsyncRequireAuthorizationLayer`).
/// The future is `std::future::Ready`: nothing to wait for.
pub struct AsyncJwtCheck<R> {
    check: JwtCheck,
    _body: PhantomData<fn() -> R>,
}

impl<R> Clone for AsyncJwtCheck<R> {
    fn clone(&self) -> Self {
        Self {
            check: self.check.clone(),
            _body: PhantomData,
        }
    }
}

impl<R> AsyncJwtCheck<R> {
    pub fn new() -> Self {
        Self {
            check: JwtCheck::new(),
            _body: PhantomData,
        }
    }
}

impl<R> Default for AsyncJwtCheck<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B, R: Default> AsyncAuthorizeRequest<B> for AsyncJwtCheck<R> {
    type RequestBody = B;
    type ResponseBody = R;
    type Future = Ready<Result<Request<B>, Response<R>>>;

    fn authorize(&mut self, mut request: Request<B>) -> Self::Future {
        ready(match self.check.check(request.headers()) {
            Some(claims) => {
                request.extensions_mut().insert(claims);
                Ok(request)
            }
            None => Err(unauthorized()),
        })
    }
}

/// [`JwtCheck`] as a `ValidateRequestHeaderLayer::custom` validator.
pub fn validate_fn<B, R: Default>(
    check: JwtCheck,
) -> impl FnMut(&mut Request<B>) -> Result<(), Response<R>> + Clone {
    move |request: &mut Request<B>| match check.check(request.headers()) {
        Some(claims) => {
            request.extensions_mut().insert(claims);
            Ok(())
        }
        None => Err(unauthorized()),
    }
}
