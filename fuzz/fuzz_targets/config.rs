//! Configuration parsing: `config::parse_duration` and `SessionConfig::from_lookup`.
//!
//! The input is text. Its first line goes to `parse_duration`, checked against an independent
//! reading of the common forms (a whole number and one of `ms`, `s`, `m`, `h`, `d`, surrounding
//! whitespace allowed, no overflow: always read, and read exactly) and of the one refusal
//! beyond `humantime`'s grammar (months and years are never accepted). Each further line `NAME=VALUE`
//! sets one of `config::ENV_VARS` for `from_lookup`; a configuration it accepts must then build
//! a manager that logs in, verifies its own access token and refreshes once.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tower_jwt_session::config::ManualClock;
use tower_jwt_session::config::{ENV_VARS, StoreSettings, parse_duration};
use tower_jwt_session::{SessionConfig, SessionManager, response::AuthError};

use common::*;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(runtime);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    check_duration(lines.next().unwrap_or_default());

    let env: HashMap<&str, &str> = lines
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| ENV_VARS.contains(name))
        .collect();
    let Ok(config) = SessionConfig::from_lookup(|name| env.get(name).map(|v| (*v).to_owned()))
    else {
        return;
    };
    if !matches!(config.store(), StoreSettings::Memory) {
        // A Redis configuration needs a server; its parsing has been exercised.
        return;
    }
    check_config(config);
});

/// The common forms (`15m`), independently: `Some(None)` past what the parser can hold (it
/// counts a span in `u64` seconds, or in `u64` nanoseconds for milliseconds, and refuses an
/// overflow), `None` for anything else.
fn expected_duration(input: &str) -> Option<Option<Duration>> {
    let s = input.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 15 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let secs = match &s[digits..] {
        "ms" => {
            let fits = n.checked_mul(1_000_000).is_some();
            return Some(fits.then(|| Duration::from_millis(n)));
        }
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    Some(n.checked_mul(secs).map(Duration::from_secs))
}

fn check_duration(input: &str) {
    let parsed = parse_duration(input);
    match expected_duration(input) {
        Some(Some(expected)) => assert_eq!(parsed, Ok(expected), "{input:?}"),
        Some(None) => assert!(
            parsed.is_err(),
            "{input:?} is past any duration: {parsed:?}"
        ),
        None => {}
    }
    if parsed.is_ok() {
        let calendar = input.split(|c: char| !c.is_alphabetic()).any(|unit| {
            matches!(
                unit,
                "M" | "month" | "months" | "y" | "yr" | "yrs" | "year" | "years"
            )
        });
        assert!(!calendar, "months or years accepted: {input:?}");
    }
}

fn check_config(config: SessionConfig) {
    config
        .validate()
        .expect("from_lookup returns only valid configurations");
    let ttl = config.rules().access_token_ttl();
    let leeway = config.tokens().leeway();
    let manager = SessionManager::builder(config)
        .clock(ManualClock::new(NOW_MS))
        .build()
        .expect("a configuration from_lookup accepts builds a manager");
    RUNTIME.block_on(async {
        let pair = manager
            .create_session(
                tower_jwt_session::manager::NewSession::new("alice").roles(&["user".to_owned()]),
            )
            .await
            .expect("a login");
        match manager.codec().verify(&pair.access_token) {
            Ok(session) => assert_eq!(session.user_id(), "alice"),
            // `exp` is whole seconds: a lifetime under a second without leeway can be over at
            // once.
            Err(AuthError::Expired) if ttl + leeway < Duration::from_secs(1) => {}
            Err(error) => panic!("the manager's own access token is refused: {error:?}"),
        }
        manager
            .refresh(&pair.refresh_token)
            .await
            .expect("a fresh refresh token refreshes");
    });
}
