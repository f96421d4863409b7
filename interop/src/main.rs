//! jwt-authorizer 0.15 protecting a route with its JWKS URL option, fed the tokens
//! `interop/run.sh` made:
//!
//! ```text
//! tjs-interop JWKS_URL CASES_FILE
//! ```
//!
//! Each line of CASES_FILE is `NAME EXPECT TOKEN`, EXPECT being `accept:SUB` (the protected
//! route answers 200 with the token's `sub`) or `reject` (401). The route is served over real
//! HTTP on a free port and each token is sent to it as a bearer token. Prints one line per
//! case; exits 1 when any answer differs from the expected one, 2 on a usage or set-up error.

use std::process::ExitCode;

use axum07::{Router, routing::get};
use jwt_authorizer::{
    Authorizer, IntoLayer, JwtAuthorizer, JwtClaims, RegisteredClaims, Validation,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn protected(JwtClaims(claims): JwtClaims<RegisteredClaims>) -> String {
    claims.sub.unwrap_or_default()
}

/// `GET /protected` with `token` over a fresh connection: the status and the body.
async fn call(addr: std::net::SocketAddr, token: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "GET /protected HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, jwks_url, cases] = args.as_slice() else {
        eprintln!("usage: tjs-interop JWKS_URL CASES_FILE");
        return ExitCode::from(2);
    };
    let cases = match std::fs::read_to_string(cases) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("jwt-authorizer: cannot read {cases}: {e}");
            return ExitCode::from(2);
        }
    };
    // No leeway: the expired case is a token a few seconds past its `exp`.
    let auth: Authorizer = match JwtAuthorizer::from_jwks_url(jwks_url)
        .validation(Validation::new().leeway(0))
        .build()
        .await
    {
        Ok(auth) => auth,
        Err(e) => {
            eprintln!("jwt-authorizer: cannot build the authorizer from {jwks_url}: {e}");
            return ExitCode::from(2);
        }
    };
    let app = Router::new()
        .route("/protected", get(protected))
        .layer(auth.into_layer());
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("jwt-authorizer: cannot listen: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(async move { axum07::serve(listener, app).await });

    let mut failed = 0;
    let mut total = 0;
    for line in cases.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(expect), Some(token)) = (parts.next(), parts.next(), parts.next())
        else {
            eprintln!("jwt-authorizer: malformed case line: {line:.60}");
            return ExitCode::from(2);
        };
        total += 1;
        let (status, body) = match call(addr, token).await {
            Ok(answer) => answer,
            Err(e) => {
                eprintln!("jwt-authorizer: request failed: {e}");
                return ExitCode::from(2);
            }
        };
        let ok = match expect.strip_prefix("accept:") {
            Some(sub) => status == 200 && body == sub,
            None => expect == "reject" && status == 401,
        };
        let verdict = if status == 200 { "accepted" } else { "refused" };
        println!(
            "jwt-authorizer {name}: {verdict} ({status}{}) {}",
            if status == 200 {
                format!(", sub {body}")
            } else {
                String::new()
            },
            if ok { "ok" } else { "UNEXPECTED" }
        );
        if !ok {
            failed += 1;
        }
    }
    if total == 0 {
        eprintln!("jwt-authorizer: no cases");
        return ExitCode::from(2);
    }
    if failed > 0 {
        eprintln!("jwt-authorizer: {failed} of {total} cases unexpected");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
