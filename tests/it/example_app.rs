//! `examples/app.rs`, the app a newcomer writes, run as a process against a database of its
//! own: its users table, argon2 logins with the tenant claim, the admin route, the token and
//! devices routes, a refresh that reads fresh roles, and a user disabled in the app's table
//! losing every session at the next refresh. The lock-out is on with the example's wiring.
#![cfg(all(feature = "postgres", feature = "axum"))]

use crate::common;
use crate::common::Harness as _;
use crate::common::pg_server;

use common::Server;
use serde_json::json;

async fn login(app: &Server, user: &str, password: &str) -> (u16, serde_json::Value) {
    app.post(
        "/api/auth/login",
        json!({"username": user, "password": password}),
    )
    .await
}

#[tokio::test]
async fn the_newcomers_app_runs_end_to_end_on_postgres() {
    let db = pg_server::TestDb::create().await;
    let app = Server::start_example("app", &[("DATABASE_URL", db.url.as_str())]);

    // Argon2 logins, the tenant claim, the admin route.
    let (status, alice) = login(&app, "alice", "alice-password").await;
    assert_eq!(status, 200, "{alice}");
    let access = alice["data"]["accessToken"].as_str().unwrap().to_owned();
    let refresh = alice["data"]["refreshToken"].as_str().unwrap().to_owned();
    let (status, me) = app.get_auth("/api/me", &access).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["userId"].as_str(), me["tenant"].as_str()),
        (Some("alice"), Some("acme"))
    );
    assert_eq!(app.get_auth("/api/admin", &access).await.0, 403);
    let (_, admin) = login(&app, "admin", "admin-password").await;
    let admin_token = admin["data"]["accessToken"].as_str().unwrap();
    let (status, users) = app.get_auth("/api/admin", admin_token).await;
    assert_eq!(
        (status, users["users"].as_array().map(Vec::len)),
        (200, Some(3))
    );
    assert_eq!(login(&app, "nobody", "x").await.0, 401);

    // The devices list, and fresh roles at refresh from the app's table.
    let (status, sessions) = app.get_auth("/api/token/sessions", &access).await;
    assert_eq!(
        (status, sessions["data"]["activeSessions"].as_u64()),
        (200, Some(1))
    );
    let mut conn = db.connect().await;
    sqlx::query("UPDATE app_users SET roles = ARRAY['user', 'editor'] WHERE id = 'alice'")
        .execute(&mut conn)
        .await
        .unwrap();
    let (status, refreshed) = app
        .post("/api/token/refresh", json!({"refreshToken": refresh}))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let access = refreshed["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = refreshed["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, me) = app.get_auth("/api/me", &access).await;
    assert_eq!(me["roles"], json!(["user", "editor"]), "{me}");

    // A user disabled in the app's table loses every session at the next refresh.
    sqlx::query("UPDATE app_users SET disabled = true WHERE id = 'alice'")
        .execute(&mut conn)
        .await
        .unwrap();
    let (status, refused) = app
        .post("/api/token/refresh", json!({"refreshToken": refresh}))
        .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("token_revoked")),
        "{refused}"
    );
    assert_eq!(app.get_auth("/api/me", &access).await.0, 401);
    assert_eq!(login(&app, "alice", "alice-password").await.0, 401);

    // The lock-out is on, counted in the app's database: bob's guesser is refused.
    for _ in 0..5 {
        assert_eq!(login(&app, "bob", "guess").await.0, 401);
    }
    assert_eq!(login(&app, "bob", "bob-password").await.0, 429);
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM tjs_attempts")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(attempts > 0);
}
