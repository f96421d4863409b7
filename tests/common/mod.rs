//! Starts the example server as a child process on a free port and talks to it over HTTP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

pub use harness::Harness;

#[cfg(feature = "axum")]
pub mod app;
#[cfg(feature = "axum")]
pub mod dpop;
pub mod harness;
#[cfg(feature = "postgres")]
pub mod pg_server;
pub mod redis_server;

pub const SECRET: &str = "e2e-test-secret-e2e-test-secret-e2e-test-secret";

/// The example server's binary, (re)built once per test process.
fn server_binary() -> PathBuf {
    example_binary("server")
}

/// An example's binary, (re)built once per test process: `cargo test --test server` alone does
/// not build examples, and a stale binary would test old code.
fn example_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // The same features as these tests, so a Redis-enabled test gets a Redis-enabled server
        // and the build does not flip the example between two feature sets.
        if cfg!(feature = "full") {
            cmd.arg("--all-features");
        } else {
            let features: Vec<&str> = [
                ("redis", cfg!(feature = "redis")),
                ("postgres", cfg!(feature = "postgres")),
            ]
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect();
            if !features.is_empty() {
                cmd.args(["--features", &features.join(",")]);
            }
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the example {name} failed");
        built.push(name.to_owned());
    }
    binary
}

/// Runs the example with `env` (on top of a valid secret) and waits for it to exit.
pub fn run_to_exit(env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(server_binary());
    cmd.env_clear()
        .env("PORT", "0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("JWT_SECRET", SECRET);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the example server")
}

/// As [`run_to_exit`], for a start that must be refused: the server is killed if it has not
/// exited within `within` (then the test fails on its exit status, instead of hanging).
pub fn run_expecting_exit(env: &[(&str, &str)], within: Duration) -> std::process::Output {
    let mut cmd = Command::new(server_binary());
    cmd.env_clear()
        .env("PORT", "0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("JWT_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run the example server");
    let deadline = Instant::now() + within;
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().expect("the example's output")
}

/// A running example server; killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    /// The URL of `/metrics` on the example's metrics listener (`METRICS_ADDR`, a free port
    /// here), unless the test turned it off.
    pub metrics: Option<String>,
    pub client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the example with `JWT_SECRET` and the given extra environment. `METRICS_ADDR` is
    /// a free port, so that servers of tests running in parallel do not collide on the default.
    pub fn start(env: &[(&str, &str)]) -> Server {
        Self::start_example("server", env)
    }

    /// Starts the example `name` as [`start`](Self::start) starts the server.
    pub fn start_example(name: &str, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(example_binary(name));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the example server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut reader = BufReader::new(stdout);
        let mut metrics = None;
        // `metrics on …` comes before `listening on …`, the last line of a start.
        while !line.starts_with("listening on ") {
            line.clear();
            let n = reader.read_line(&mut line).expect("read server output");
            assert!(n > 0, "the server exited before listening");
            assert!(Instant::now() < deadline, "the server did not start");
            if let Some(url) = line.trim().strip_prefix("metrics on ") {
                metrics = Some(url.to_owned());
            }
        }
        let base = line.trim().trim_start_matches("listening on ").to_owned();
        Server {
            child,
            base,
            metrics,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the server to exit, up to `timeout`; whether it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A client on another loopback address: another client IP for the server.
    pub fn client_from(&self, ip: [u8; 4]) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .expect("client")
    }
}

impl Harness for Server {
    type Request = reqwest::RequestBuilder;

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

pub async fn read(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}

/// Asserts the SPEC §5 error body and code.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Two instances on one shared store (`store` as health names it): a session made on `a` works
/// on `b`, is refreshed on `b`, and the same refresh token sent to `a` within the reuse interval
/// gets the same successor. Returns the login's and the refresh's `data`.
pub async fn a_session_crosses_instances(a: &Server, b: &Server, store: &str) -> (Value, Value) {
    let (status, health) = b.get("/api/token/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["data"], json!({"status": "ok", "store": store}));

    let login = a.login("alice").await;
    let token = login["accessToken"].as_str().unwrap();
    let (status, me) = b.get_auth("/api/me", token).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["sessionId"], login["sessionId"]);

    // Refreshed on b, used on a; and the racing-tab grace holds across instances.
    let (status, refreshed) = b
        .post(
            "/api/token/refresh",
            json!({"refreshToken": login["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, again) = a
        .post(
            "/api/token/refresh",
            json!({"refreshToken": login["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["data"]["refreshToken"],
        refreshed["data"]["refreshToken"]
    );
    (login, refreshed["data"].clone())
}

/// SPEC §3: a logout on `a` is refused by `b` within one second, twenty times over (`b` has
/// cached each session as active first). Prints the lag's median and maximum under `label`.
pub async fn a_logout_reaches_the_other_instance(a: &Server, b: &Server, label: &str) {
    let mut lags = Vec::new();
    for _ in 0..20 {
        let login = a.login("bob").await;
        let token = login["accessToken"].as_str().unwrap().to_owned();
        assert_eq!(b.get_auth("/api/me", &token).await.0, 200);
        let start = Instant::now();
        assert_eq!(a.post_auth("/api/token/logout", &token).await.0, 200);
        loop {
            let (status, body) = b.get_auth("/api/me", &token).await;
            if status == 401 {
                assert_error(status, &body, 401, "token_revoked");
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "b still accepts a revoked session"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lags.push(start.elapsed());
    }
    lags.sort();
    eprintln!(
        "{label}cross-instance logout lag over 20 runs: median {:?}, max {:?}",
        lags[lags.len() / 2],
        lags[lags.len() - 1]
    );
}

/// The limits are shared by two instances. `limited` allow 4 requests a minute per client:
/// four requests split over both use up the one budget, and both refuse the fifth. `plain` run
/// the default limits: failed logins spread over both lock the guessing client (127.0.0.1) out
/// of bob on both, and only that client: bob's own machine (127.0.0.2) logs in on both.
pub async fn the_limits_hold_across_instances(
    limited: (&Server, &Server),
    plain: (&Server, &Server),
) {
    let (a, b) = limited;
    // Health probes are never limited, so validate.
    for (i, server) in [a, b, a, b].into_iter().enumerate() {
        let res = server
            .client
            .post(server.url("/api/token/validate"))
            .json(&json!({"accessToken": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "request {i}");
        assert_eq!(
            res.headers()["ratelimit-remaining"],
            (3 - i).to_string().as_str()
        );
    }
    for server in [a, b] {
        let res = server
            .client
            .post(server.url("/api/token/validate"))
            .json(&json!({"accessToken": "x"}))
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_error(status, &body, 429, "rate_limited");
    }

    let (a, b) = plain;
    for (i, server) in [a, b, a, b, a].into_iter().enumerate() {
        let (status, body) = server
            .post(
                "/api/auth/login",
                json!({"username": "bob", "password": format!("guess-{i}")}),
            )
            .await;
        assert_error(status, &body, 401, "invalid_credentials");
    }
    let bobs_machine = a.client_from([127, 0, 0, 2]);
    for server in [a, b] {
        let (status, body) = server
            .post(
                "/api/auth/login",
                json!({"username": "bob", "password": "bob-password"}),
            )
            .await;
        assert_error(status, &body, 429, "rate_limited");
        let res = bobs_machine
            .post(server.url("/api/auth/login"))
            .json(&json!({"username": "bob", "password": "bob-password"}))
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, 200, "{body}");
    }
}
