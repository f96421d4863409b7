//! Adversarial end-to-end tests: the library's router in process (`tests/common/app.rs`,
//! `oneshot`), attacked the ways RFC 8725 (JWT Best Current Practices), RFC 6750 (Bearer Token
//! Usage), RFC 9068 (JWT access tokens) and the OWASP JWT cheat sheet describe; what needs a
//! socket (`limits`, and the raw paths of `exposure::cross_user_session_stats`) attacks the
//! example server over real HTTP. One module per threat, grouped in files:
//!
//! - `tokens`: forged and tampered tokens (`alg` none, algorithm confusion, `kid` injection,
//!   key-reference headers, tampering);
//! - `claims`: time claims, missing claims, non-UTF-8 JSON, token kind confusion, `Session`;
//! - `limits`: oversized and non-UTF-8 headers and bodies, 413 and the connection;
//! - `requests`: duplicate credentials and ambiguous JSON bodies;
//! - `exposure`: one user's sessions seen by another, token-bearing answers and caches.
//!
//! `harness` starts the router (`start`) or the example (`start_example`) and checks every
//! answer, for either; `forge` makes tokens by hand.
//!
//! Every case asserts the exact status and `error` code; every answer is checked to be below
//! 500 and JSON; and every test ends by checking that the server still serves (health and a
//! login). Forged tokens are signed with the server's own `JWT_SECRET` (`common::SECRET`, which
//! the tests control through the environment) and carry the session id of a real login, so that
//! the one thing wrong with each token is the thing under test; a control case with nothing
//! wrong proves the forging is right.
//!
//! The refresh bucket of the attempt tracker refuses an address's refreshes (its own bucket, not
//! logins) after 20 forged or malformed refresh tokens in 15 minutes, on `/refresh` and
//! `/auto-refresh` alike; well-formed tokens of ended sessions (`token_revoked`, `token_expired`,
//! `refresh_token_reused`) do not count. Every request here comes from 127.0.0.1: each test
//! starts its own server and sends fewer than 20 forged or malformed refresh tokens.
#![cfg(feature = "axum")]

use crate::common;
mod forge;
mod harness;

mod claims;
mod exposure;
mod limits;
mod requests;
mod tokens;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::app::App;
use common::harness::Sendable;
use common::{Harness, SECRET, Server};
use forge::*;
use harness::*;
