//! The harness: the library's router in process (`App`) or the example over real HTTP
//! (`Server`) started per test, answers checked to be below 500 and JSON, and requests written
//! byte for byte.

use crate::adversarial::*;

/// The library's router in process with a request budget no test reaches, plus `env`.
pub(crate) fn start(env: &[(&str, &str)]) -> App {
    let mut all = vec![("RATE_LIMIT_MAX_REQUESTS", "1000000")];
    all.extend_from_slice(env);
    App::start(&all)
}

/// The example over real HTTP with a request budget no test reaches, plus `env`: for what
/// needs a socket (bytes an HTTP client would not send, what a 413 does to the connection).
pub(crate) fn start_example(env: &[(&str, &str)]) -> Server {
    let mut all = vec![("RATE_LIMIT_MAX_REQUESTS", "1000000")];
    all.extend_from_slice(env);
    Server::start(&all)
}

/// Counts the cases of one threat and prints the total when dropped.
pub(crate) struct Cases {
    threat: &'static str,
    n: AtomicUsize,
}

impl Cases {
    pub(crate) fn new(threat: &'static str) -> Self {
        Self {
            threat,
            n: AtomicUsize::new(0),
        }
    }

    pub(crate) fn tick(&self) {
        self.n.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Cases {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            eprintln!("[adversarial] {}: {} cases", self.threat, self.n.get_mut());
        }
    }
}

/// One answer of the server, already checked to be below 500 and JSON.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    /// Asserts the SPEC §5 error body with this status and code.
    #[track_caller]
    pub(crate) fn error(&self, status: u16, code: &str) -> &Self {
        common::assert_error(self.status, &self.body, status, code);
        self
    }

    /// Asserts a success and returns `data`.
    #[track_caller]
    pub(crate) fn data(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.body);
        assert_eq!(self.body["success"], true, "{}", self.body);
        &self.body["data"]
    }

    /// Asserts an RFC 6750 §3 challenge for a presented but refused token.
    #[track_caller]
    pub(crate) fn challenges_invalid_token(&self) -> &Self {
        let challenge = self.headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer realm=")
                && challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        self
    }
}

pub(crate) async fn send(cases: &Cases, request: impl Sendable) -> Reply {
    cases.tick();
    let (status, headers, text) = request.send_parts().await;
    assert!(status < 500, "a server error ({status}): {text}");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("the answer is not JSON ({status}): {text}"));
    Reply {
        status,
        headers,
        body,
    }
}

pub(crate) async fn post_json(cases: &Cases, s: &impl Harness, path: &str, body: Value) -> Reply {
    send(cases, s.post_json_req(path, &body)).await
}

pub(crate) async fn post_raw(
    cases: &Cases,
    s: &impl Harness,
    path: &str,
    body: impl Into<Vec<u8>>,
) -> Reply {
    send(cases, s.post_bytes_req(path, body.into())).await
}

pub(crate) async fn post_raw_with(
    cases: &Cases,
    client: &reqwest::Client,
    s: &Server,
    path: &str,
    body: impl Into<Vec<u8>>,
) -> Reply {
    let request = client
        .post(s.url(path))
        .header(CONTENT_TYPE, "application/json")
        .body(body.into());
    send(cases, request).await
}

pub(crate) async fn get_bearer(cases: &Cases, s: &impl Harness, path: &str, token: &str) -> Reply {
    let value = HeaderValue::from_bytes(format!("Bearer {token}").as_bytes()).unwrap();
    send(cases, s.get_with(path, AUTHORIZATION, value)).await
}

/// `GET /api/me` with `token`: refused with 401 and `code`, with an RFC 6750 challenge.
pub(crate) async fn me_refused(cases: &Cases, s: &impl Harness, token: &str, code: &str) {
    get_bearer(cases, s, "/api/me", token)
        .await
        .error(401, code)
        .challenges_invalid_token();
}

/// `GET /api/me` with `token`: allowed for `user`.
pub(crate) async fn me_allowed(cases: &Cases, s: &impl Harness, token: &str, user: &str) {
    let reply = get_bearer(cases, s, "/api/me", token).await;
    assert_eq!(reply.data()["userId"], user);
}

/// `POST /api/token/validate`: `isValid` is false and `isExpired` is `expired`.
pub(crate) async fn validate_refuses(cases: &Cases, s: &impl Harness, token: &str, expired: bool) {
    let reply = post_json(
        cases,
        s,
        "/api/token/validate",
        json!({"accessToken": token}),
    )
    .await;
    let data = reply.data();
    assert_eq!(data["isValid"], false, "{data}");
    assert_eq!(data["isExpired"], expired, "{data}");
}

/// The server still answers its health check and lets a user log in.
pub(crate) async fn still_serving(s: &impl Harness) {
    let (status, _, _) = s.get_req("/api/token/health").send_parts().await;
    assert_eq!(status, 200);
    let login = s.login("admin").await;
    let token = login["accessToken"].as_str().unwrap();
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let (status, _, _) = s
        .get_with("/api/me", AUTHORIZATION, bearer)
        .send_parts()
        .await;
    assert_eq!(status, 200);
}

/// A request written byte for byte on a fresh connection: for what an HTTP client library would
/// not send (dot segments, raw bytes, chunked bodies). Returns the status and the body.
pub(crate) async fn raw(cases: &Cases, s: &Server, request: &[u8]) -> (u16, Value) {
    cases.tick();
    let addr = s.base.trim_start_matches("http://").to_owned();
    let request = request.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // The server may answer before reading everything (413): a failed write is no error.
        let _ = stream.write_all(&request);
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    assert!(status < 500, "a server error ({status}): {text}");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON ({status}): {body}"))
    };
    (status, body)
}

pub(crate) fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

pub(crate) fn raw_get(path: &str, token: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}
