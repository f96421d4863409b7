//! The app a newcomer writes: an axum app with its own users in PostgreSQL, adding sessions.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1/app JWT_SECRET=$(openssl rand -base64 48) \
//!     cargo run --features postgres --example app
//! ```
//!
//! The app's own logic: a users table (made here, with three demo users), argon2 passwords
//! (an unknown user is verified against a dummy hash, so both take as long), a `tenant` claim,
//! `GET /api/me`, and an admin-only `GET /api/admin`. What wires in the crate is thirteen
//! lines: the four `use tower_jwt_session` lines, the five of `let sessions = …`, and in the
//! router `.route_layer(require_role("admin"))`, `.route_layer(SessionLayer::from_manager(…))`,
//! `.merge(routes::router(…))`, and `into_make_service_with_connect_info` at the end.
//! `check_password` and `fresh_roles` are the app's logic in the crate's vocabulary, as an axum
//! handler's signature is.
//!
//! Everything else the crate does by default, from the environment: the sessions live in the
//! app's own database and pool, as do the per-client rate limit and the login lock-out (shared
//! by every instance); the token routes include refresh, logout, the devices list
//! (`GET /api/token/sessions`, `DELETE /api/token/sessions/{id}`,
//! `POST /api/token/logout-others`) and health. A refresh asks the users table for fresh roles,
//! and a user deleted or disabled there loses every session at the next refresh.
//!
//! Listens on `127.0.0.1:$PORT` (default 3001) and prints `listening on http://…` when ready.

use std::net::SocketAddr;

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use sqlx::{PgPool, Row};
use tower_jwt_session::login::{Authenticated, CredentialCheck, Credentials};
use tower_jwt_session::manager::{HookError, RefreshContext, RefreshHook, Refreshed};
use tower_jwt_session::{Session, SessionConfig, SessionLayer, SessionManager};
use tower_jwt_session::{layer::require_role, routes};

/// What the app keeps of a user.
struct User {
    id: String,
    password_hash: String,
    roles: Vec<String>,
    tenant: String,
    disabled: bool,
}

/// The demo users: name, argon2id hash of `<name>-password`, roles, tenant.
const DEMO_USERS: &[(&str, &str, &[&str], &str)] = &[
    (
        "alice",
        "$argon2id$v=19$m=19456,t=2,p=1$RblrEcZLSKGCRFuv3WEffg$fgm+iVfwh1h02J3S5Yf0AA53+qDOVdEK4LfYJ+sAMGc",
        &["user"],
        "acme",
    ),
    (
        "bob",
        "$argon2id$v=19$m=19456,t=2,p=1$sNe0r2YH4dEV/pNIab1Cag$NF0+2R6jRsS37Z2NXlOpsghWlX/QlRTAPBhl6M6zWs0",
        &["user"],
        "acme",
    ),
    (
        "admin",
        "$argon2id$v=19$m=19456,t=2,p=1$cdT9MiFyKWEBDfAciqdD1w$tvrnriRfnqgLpihFp+FhWggdjoKdKTVxWHpKIcP79HU",
        &["user", "admin"],
        "ops",
    ),
];

/// Verified for unknown users, so that they take as long as known ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$z9cU5hySSHCaDsMGb47jWw$1q4S+DNkYx3JBzgNq17VyKxNyFRKBVNefsesezJobxc";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    let pool = PgPool::connect(&url).await?;
    create_users(&pool).await?;

    let sessions = SessionManager::builder(SessionConfig::from_env()?)
        .postgres_pool(pool.clone())
        .refresh_hook(fresh_roles(pool.clone()))
        .connect()
        .await?;

    let app = Router::new()
        .route(
            "/api/admin",
            get(list_users).route_layer(require_role("admin")),
        )
        .route("/api/me", get(me))
        .with_state(pool.clone())
        .route_layer(SessionLayer::from_manager(&sessions))
        .merge(routes::router(&sessions, check_password(pool)));

    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001u16);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}

/// The users table, with the demo users when it is new.
async fn create_users(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS app_users (id text PRIMARY KEY, password_hash text NOT NULL, \
         roles text[] NOT NULL, tenant text NOT NULL, disabled boolean NOT NULL DEFAULT false)",
    )
    .execute(pool)
    .await?;
    for (id, hash, roles, tenant) in DEMO_USERS {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        sqlx::query(
            "INSERT INTO app_users (id, password_hash, roles, tenant) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(hash)
        .bind(roles)
        .bind(tenant)
        .execute(pool)
        .await?;
    }
    Ok(())
}

async fn find_user(pool: &PgPool, id: &str) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, password_hash, roles, tenant, disabled FROM app_users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(User {
            id: row.try_get("id")?,
            password_hash: row.try_get("password_hash")?,
            roles: row.try_get("roles")?,
            tenant: row.try_get("tenant")?,
            disabled: row.try_get("disabled")?,
        })
    })
    .transpose()
}

/// The login's check: the user's argon2 hash (a dummy one for an unknown user), off the async
/// threads; the roles and the tenant go into the session's tokens.
fn check_password(pool: PgPool) -> impl CredentialCheck {
    move |c: Credentials| {
        let pool = pool.clone();
        async move {
            let user = find_user(&pool, &c.username).await?.filter(|u| !u.disabled);
            let hash = user
                .as_ref()
                .map_or(DUMMY_HASH, |u| &u.password_hash)
                .to_owned();
            let matches = tokio::task::spawn_blocking(move || {
                let hash = PasswordHash::new(&hash)?;
                Argon2::default().verify_password(c.password.as_bytes(), &hash)
            })
            .await?
            .is_ok();
            let user = user.filter(|_| matches);
            Ok(user.map(|u| Authenticated::new(u.id, u.roles).with_claims(&tenant(u.tenant))))
        }
    }
}

/// The refresh hook: fresh roles and tenant from the users table, and the end of every session
/// of a user deleted or disabled there.
fn fresh_roles(pool: PgPool) -> impl RefreshHook {
    move |context: RefreshContext| {
        let pool = pool.clone();
        async move {
            Ok::<_, HookError>(match find_user(&pool, &context.user_id).await? {
                Some(u) if !u.disabled => Refreshed::new(&u.roles).claims(&tenant(u.tenant)),
                _ => Refreshed::user_gone(),
            })
        }
    }
}

/// The app's own claim.
fn tenant(tenant: String) -> Value {
    json!({ "tenant": tenant })
}

async fn me(session: Session) -> axum::Json<Value> {
    let claims: Value = session.claims().unwrap_or_default();
    axum::Json(json!({
        "userId": session.user_id(),
        "roles": session.roles().collect::<Vec<_>>(),
        "tenant": claims["tenant"],
    }))
}

async fn list_users(axum::extract::State(pool): axum::extract::State<PgPool>) -> axum::Json<Value> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM app_users ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    axum::Json(json!({ "users": ids }))
}
