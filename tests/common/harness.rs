//! One harness for both forms of the app under test: the library's router in process
//! ([`App`](super::app::App): `oneshot`, no socket, no child process) and the example over real
//! HTTP ([`Server`](super::Server): a child process on a free port).
//!
//! Each form says how it builds a request (`get_req`, `post_req`, a header, a body) and how one
//! is sent ([`Sendable`]); the verbs tests use (`post`, `get`, `get_auth`, `post_auth`, `login`)
//! are written once, here, on top of them. A test or helper written against [`Harness`] runs on
//! either form; one that needs a socket (bytes no HTTP client sends, a connection closed after
//! a 413, the process's exit) takes a `Server`.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

/// Where a test sends: the router in process or the example over HTTP.
pub trait Harness {
    /// A request being built.
    type Request: Sendable;

    /// The absolute URL of `path` (`http://127.0.0.1:<port>/path`).
    fn url(&self, path: &str) -> String;

    /// A `GET` of `path`, from 127.0.0.1.
    fn get_req(&self, path: &str) -> Self::Request;

    /// A `POST` to `path` without a body yet, from 127.0.0.1.
    fn post_req(&self, path: &str) -> Self::Request;

    /// `request` with one more header.
    fn with_header(request: Self::Request, name: HeaderName, value: HeaderValue) -> Self::Request;

    /// `request` with `body` as its bytes.
    fn with_body(request: Self::Request, body: Vec<u8>) -> Self::Request;

    /// A `GET` of `path` with one header.
    fn get_with(&self, path: &str, name: HeaderName, value: HeaderValue) -> Self::Request {
        Self::with_header(self.get_req(path), name, value)
    }

    /// A `POST` of `body` as JSON (`Content-Type: application/json`).
    fn post_json_req(&self, path: &str, body: &Value) -> Self::Request {
        self.post_bytes_req(path, body.to_string().into_bytes())
    }

    /// A `POST` of `body` as it is, labelled JSON.
    fn post_bytes_req(&self, path: &str, body: Vec<u8>) -> Self::Request {
        let json = HeaderValue::from_static("application/json");
        Self::with_body(
            Self::with_header(self.post_req(path), CONTENT_TYPE, json),
            body,
        )
    }

    /// Posts `body` as JSON; the status and the JSON answer.
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        json_answer(self.post_json_req(path, &body).send_parts().await)
    }

    /// Gets `path`; the status and the JSON answer.
    async fn get(&self, path: &str) -> (u16, Value) {
        json_answer(self.get_req(path).send_parts().await)
    }

    /// Gets `path` with `token` as a Bearer token.
    async fn get_auth(&self, path: &str, token: &str) -> (u16, Value) {
        let request = self.get_with(path, AUTHORIZATION, bearer(token));
        json_answer(request.send_parts().await)
    }

    /// Posts to `path`, without a body, with `token` as a Bearer token.
    async fn post_auth(&self, path: &str, token: &str) -> (u16, Value) {
        let request = Self::with_header(self.post_req(path), AUTHORIZATION, bearer(token));
        json_answer(request.send_parts().await)
    }

    /// Logs `user` in with the test password (`<user>-password`) and returns the `data` object.
    async fn login(&self, user: &str) -> Value {
        let body = json!({ "username": user, "password": format!("{user}-password") });
        let (status, body) = self.post("/api/auth/login", body).await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }
}

/// A request that can be sent: the status, the headers and the body as text.
pub trait Sendable {
    async fn send_parts(self) -> (u16, HeaderMap, String);
}

impl Sendable for reqwest::RequestBuilder {
    async fn send_parts(self) -> (u16, HeaderMap, String) {
        let res = self.send().await.expect("the server answers");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, headers, res.text().await.expect("a body"))
    }
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).expect("a token is a header value")
}

/// The status and the JSON of an answer; a body that is not JSON fails the test.
fn json_answer((status, _, text): (u16, HeaderMap, String)) -> (u16, Value) {
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}
