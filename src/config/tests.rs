use super::secret::PLACEHOLDER_SECRET;
use super::*;
use std::collections::HashMap;
use std::time::Duration;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn from(vars: &[(&str, &str)]) -> Result<SessionConfig, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    SessionConfig::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults_match_the_spec() {
    let c = from(&[("JWT_SECRET", SECRET)]).unwrap();
    assert_eq!(c.rules().access_token_ttl(), Duration::from_secs(7200));
    assert_eq!(
        c.rules().refresh_token_ttl(),
        Duration::from_secs(30 * 86400)
    );
    assert_eq!(c.rules().session_ttl(), Duration::from_secs(90 * 86400));
    assert_eq!(c.rules().max_sessions(), 10);
    assert_eq!(c.rules().limit_policy(), SessionLimitPolicy::Evict);
    assert_eq!(c.rules().refresh_threshold(), Duration::from_secs(900));
    assert_eq!(c.rules().reuse_interval(), Duration::from_secs(10));
    assert_eq!(c.tokens().leeway(), Duration::from_secs(30));
    assert!(c.cookies().secure() && c.cookies().http_only());
    assert_eq!(c.cookies().same_site(), SameSite::Strict);
    assert_eq!(c.redis().key_prefix(), "tjs");
    assert!(c.redis().urls().is_empty() && c.tokens().issuer().is_none());
    assert!(c.tokens().audience().is_none() && matches!(c.store(), StoreSettings::Memory));
}

#[test]
fn every_variable_is_read() {
    let mut vars = vec![
        ("JWT_SECRET", SECRET),
        (
            "JWT_PREVIOUS_SECRETS",
            "old-secret-old-secret-old-secret-1, old-secret-old-secret-old-secret-2",
        ),
        ("JWT_ACCESS_TOKEN_EXPIRY", "30m"),
        ("JWT_REFRESH_TOKEN_EXPIRY", "7d"),
        ("JWT_SESSION_EXPIRY", "14d"),
        ("JWT_MAX_CONCURRENT_SESSIONS", "3"),
        ("JWT_SESSION_LIMIT_POLICY", "deny"),
        ("JWT_AUTO_REFRESH_THRESHOLD", "90s"),
        ("JWT_REFRESH_REUSE_INTERVAL", "500ms"),
        ("JWT_ISSUER", "https://issuer.example"),
        ("JWT_AUDIENCE", "my-api"),
        ("JWT_LEEWAY", "5s"),
        ("SESSION_COOKIE_SECURE", "false"),
        ("SESSION_COOKIE_HTTP_ONLY", "false"),
        ("SESSION_COOKIE_SAME_SITE", "lax"),
        ("REDIS_KEY_PREFIX", "app1"),
        (
            "ALLOWED_ORIGINS",
            "https://app.example.com, http://localhost:5173/",
        ),
    ];
    // Without the feature a Redis URL is refused (see a_redis_url_without_the_redis_feature_...).
    if cfg!(feature = "redis") {
        vars.push(("REDIS_URL", "redis://a:7000,redis://b:7001"));
    }
    let c = from(&vars).unwrap();
    assert_eq!(
        c.cookies().allowed_origins(),
        vec!["https://app.example.com", "http://localhost:5173"]
    );
    assert_eq!(c.tokens().previous_secrets().len(), 2);
    assert_eq!(c.rules().access_token_ttl(), Duration::from_secs(1800));
    assert_eq!(
        c.rules().refresh_token_ttl(),
        Duration::from_secs(7 * 86400)
    );
    assert_eq!(c.rules().session_ttl(), Duration::from_secs(14 * 86400));
    assert_eq!(c.rules().max_sessions(), 3);
    assert_eq!(c.rules().limit_policy(), SessionLimitPolicy::Deny);
    assert_eq!(c.rules().refresh_threshold(), Duration::from_secs(90));
    assert_eq!(c.rules().reuse_interval(), Duration::from_millis(500));
    assert_eq!(c.tokens().issuer(), Some("https://issuer.example"));
    assert_eq!(c.tokens().audience(), Some("my-api"));
    assert_eq!(c.tokens().leeway(), Duration::from_secs(5));
    assert!(!c.cookies().secure() && !c.cookies().http_only());
    assert_eq!(c.cookies().same_site(), SameSite::Lax);
    if cfg!(feature = "redis") {
        assert_eq!(c.redis().urls(), vec!["redis://a:7000", "redis://b:7001"]);
    }
    assert_eq!(c.redis().key_prefix(), "app1");
}

#[test]
fn missing_secret_names_the_variable_and_the_fix() {
    let err = from(&[]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(
        err,
        ConfigError::Missing {
            name: "JWT_SECRET",
            ..
        }
    ));
    assert!(
        text.contains("JWT_SECRET") && text.contains("32 bytes"),
        "{text}"
    );
}

#[test]
fn short_and_placeholder_secrets_are_refused_without_echoing_them() {
    let err = from(&[("JWT_SECRET", "short-secret")]).unwrap_err();
    assert!(matches!(
        err,
        ConfigError::WeakSecret {
            name: "JWT_SECRET",
            ..
        }
    ));
    assert!(!err.to_string().contains("short-secret"));

    let err = from(&[("JWT_SECRET", PLACEHOLDER_SECRET)]).unwrap_err();
    assert!(err.to_string().contains("placeholder"), "{err}");
    assert!(!err.to_string().contains(PLACEHOLDER_SECRET));

    let err = from(&[("JWT_SECRET", SECRET), ("JWT_PREVIOUS_SECRETS", "tiny")]).unwrap_err();
    assert!(matches!(
        err,
        ConfigError::WeakSecret {
            name: "JWT_PREVIOUS_SECRETS",
            ..
        }
    ));
}

#[test]
fn bad_values_name_variable_value_and_form() {
    let cases = [
        ("JWT_ACCESS_TOKEN_EXPIRY", "2 fortnights"),
        ("JWT_REFRESH_TOKEN_EXPIRY", "-1d"),
        ("JWT_SESSION_EXPIRY", "1,5d"),
        ("JWT_SESSION_EXPIRY", "3M"),
        ("JWT_AUTO_REFRESH_THRESHOLD", "15"),
        ("JWT_REFRESH_REUSE_INTERVAL", "10x"),
        ("JWT_LEEWAY", "99999999999999999999s"),
        ("JWT_MAX_CONCURRENT_SESSIONS", "0"),
        ("JWT_MAX_CONCURRENT_SESSIONS", "ten"),
        ("JWT_SESSION_LIMIT_POLICY", "oldest"),
        ("SESSION_ACTIVITY_MAX", "0"),
        ("SESSION_ACTIVITY_MAX", "1001"),
        ("SESSION_ACTIVITY_MAX", "many"),
        ("SESSION_ACTIVITY_RETENTION", "30s"),
        ("SESSION_ACTIVITY_RETENTION", "401d"),
        ("SESSION_ACTIVITY_RETENTION", "a month"),
        ("SESSION_COOKIE_SECURE", "maybe"),
        ("SESSION_COOKIE_HTTP_ONLY", "2"),
        ("SESSION_COOKIE_SAME_SITE", "relaxed"),
        ("REDIS_URL", "localhost:6379"),
        ("ALLOWED_ORIGINS", "app.example.com"),
        ("ALLOWED_ORIGINS", "https://app.example.com/path"),
    ];
    for (name, value) in cases {
        let err = from(&[("JWT_SECRET", SECRET), (name, value)]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(name), "{name}: {text}");
        assert!(text.contains(value), "{name}: {text}");
        assert!(text.contains("expected"), "{name}: {text}");
    }
}

#[test]
#[cfg(feature = "redis")]
fn debug_hides_redis_passwords_and_keeps_the_rest() {
    let dir = std::env::temp_dir().join(format!("tjs-debug-ca-{}", std::process::id()));
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBnotreallyacert\n-----END CERTIFICATE-----\n";
    std::fs::write(&dir, pem).unwrap();
    let c = from(&[
        ("JWT_SECRET", SECRET),
        (
            "REDIS_URL",
            "redis://user:hunter2@h:6379,rediss://:s3cret@h2:6380",
        ),
        ("REDIS_CA_CERT", dir.to_str().unwrap()),
        (
            "SESSION_ENCRYPTION_KEY",
            "c2VhbGluZy1rZXktc2VhbGluZy1rZXktc2VhbGluZy0=",
        ),
        ("JWT_ISSUER", "https://issuer.example"),
    ])
    .unwrap();
    std::fs::remove_file(&dir).unwrap();
    assert_eq!(
        c.redis().urls().len(),
        2,
        "the URLs themselves are untouched"
    );
    assert!(c.redis().urls()[0].contains("hunter2"));
    for text in [format!("{c:?}"), format!("{c:#?}")] {
        for secret in ["hunter2", "s3cret", SECRET, "c2Vh", "sealing", "MIIB"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for kept in [
            "redis://user:[redacted]@h:6379",
            "rediss://:[redacted]@h2:6380",
            &format!("[{} bytes of PEM]", pem.len()),
            "https://issuer.example",
            "max_sessions: 10",
            "key_prefix: \"tjs\"",
            "secret: [redacted]",
        ] {
            assert!(text.contains(kept), "{kept} missing in {text}");
        }
    }
    // A memory store given explicitly: the manager refuses to ignore the Redis URL otherwise.
    let manager = crate::SessionManager::builder(c)
        .store(crate::store::MemoryStore::new())
        .build()
        .unwrap();
    let text = format!("{manager:?}");
    assert!(text.contains("rediss://:[redacted]@h2:6380"), "{text}");
    for secret in ["hunter2", "s3cret"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[test]
fn redis_passwords_stay_out_of_errors() {
    let err = from(&[
        ("JWT_SECRET", SECRET),
        ("REDIS_URL", "http://user:hunter2@host:6379"),
    ])
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn contradictions_are_refused() {
    let c = || SessionConfig::new(SECRET).unwrap();
    let rules = SessionRules::default;
    let with_rules = |r: SessionRules| c().with_rules(r).validate();
    assert!(with_rules(rules().with_refresh_threshold(Duration::from_secs(3 * 3600))).is_err());
    let cookies = CookieSettings::default()
        .with_same_site(SameSite::None)
        .with_secure(false);
    assert!(c().with_cookies(cookies).validate().is_err());
    let tokens = TokenSettings::new(SECRET)
        .unwrap()
        .with_allowed_algorithms([]);
    assert!(c().with_tokens(tokens).validate().is_err());
    assert!(with_rules(rules().with_access_token_ttl(Duration::ZERO)).is_err());
    assert!(with_rules(rules().with_max_sessions(0)).is_err());
    assert!(c().validate().is_ok());
}

#[test]
fn encryption_keys_are_checked_and_never_echoed() {
    let key = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
    let c = from(&[("JWT_SECRET", SECRET), ("SESSION_ENCRYPTION_KEY", key)]).unwrap();
    assert_eq!(c.redis().encryption_keys().len(), 1);
    assert!(!format!("{c:?}").contains(key));
    for bad in ["short", "not base64 at all!!", "q83vEjRWeJCrze8SNFZ4kA=="] {
        let err = from(&[("JWT_SECRET", SECRET), ("SESSION_ENCRYPTION_KEY", bad)]).unwrap_err();
        assert!(err.to_string().contains("SESSION_ENCRYPTION_KEY"), "{err}");
        assert!(!err.to_string().contains(bad), "{err}");
    }
    let err = from(&[
        ("JWT_SECRET", SECRET),
        ("SESSION_ENCRYPTION_PREVIOUS_KEYS", key),
    ])
    .unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Missing {
            name: "SESSION_ENCRYPTION_KEY",
            ..
        }
    ));
    let c = from(&[
        ("JWT_SECRET", SECRET),
        ("SESSION_ENCRYPTION_KEY", key),
        (
            "SESSION_ENCRYPTION_PREVIOUS_KEYS",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
    ])
    .unwrap();
    assert_eq!(c.redis().encryption_keys().len(), 2);
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
    assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
    assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("15min"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(7 * 86400)));
    assert_eq!(parse_duration("15M"), Err(DurationError::CalendarUnit));
    for bad in [
        "",
        "s",
        "15",
        "-1s",
        "15M",
        "2 months",
        "1y",
        "1e3s",
        "15 parsecs",
        "18446744073709551615d",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn debug_never_prints_secrets() {
    let c = SessionConfig::from_tokens(
        TokenSettings::new(SECRET)
            .unwrap()
            .with_previous_secret("previous-previous-previous-previous")
            .unwrap(),
    );
    let text = format!("{c:?}");
    assert!(
        !text.contains(SECRET) && !text.contains("previous-previous"),
        "{text}"
    );
    assert!(text.contains("[redacted]"));
    // Not even as the byte values of the secret.
    let bytes = format!("{:?}", SECRET.as_bytes());
    assert!(!text.contains(&bytes[1..20]));
}

#[test]
fn kid_is_stable_and_short() {
    let a = key_id(Algorithm::HS256, b"k1");
    assert_eq!(a, key_id(Algorithm::HS256, b"k1"));
    assert_ne!(a, key_id(Algorithm::HS256, b"k2"));
    assert_ne!(a, key_id(Algorithm::HS512, b"k1"));
    assert_eq!(a.len(), 12);
}

// --- Startup rules (issue 13) ---

#[test]
fn a_short_access_token_alone_starts_and_the_default_threshold_adapts() {
    for (access, threshold) in [
        ("10m", Duration::from_secs(150)),
        ("15m", Duration::from_secs(225)),
        ("5s", Duration::from_millis(1250)),
    ] {
        // The leeway must be shorter than the token (a 30s default would accept a 5s token for
        // seven times its life).
        let c = from(&[
            ("JWT_SECRET", SECRET),
            ("JWT_ACCESS_TOKEN_EXPIRY", access),
            ("JWT_LEEWAY", "1s"),
        ])
        .unwrap_or_else(|e| panic!("JWT_ACCESS_TOKEN_EXPIRY={access}: {e}"));
        assert_eq!(c.rules().refresh_threshold(), threshold, "{access}");
    }
    // Longer access tokens keep the documented 15 minutes.
    for access in ["16m", "2h"] {
        let c = from(&[("JWT_SECRET", SECRET), ("JWT_ACCESS_TOKEN_EXPIRY", access)]).unwrap();
        assert_eq!(c.rules().refresh_threshold(), DEFAULT_REFRESH_THRESHOLD);
    }
    // So does the builder.
    let c = SessionConfig::new(SECRET)
        .unwrap()
        .with_rules(SessionRules::default().with_access_token_ttl(Duration::from_secs(600)));
    assert!(c.validate().is_ok());
    assert_eq!(c.rules().refresh_threshold(), Duration::from_secs(150));
}

#[test]
fn a_threshold_that_is_set_is_kept_or_refused_with_the_values_and_the_fix() {
    let c = from(&[
        ("JWT_SECRET", SECRET),
        ("JWT_ACCESS_TOKEN_EXPIRY", "10m"),
        ("JWT_AUTO_REFRESH_THRESHOLD", "1m"),
    ])
    .unwrap();
    assert_eq!(c.rules().refresh_threshold(), Duration::from_secs(60));
    let err = from(&[
        ("JWT_SECRET", SECRET),
        ("JWT_ACCESS_TOKEN_EXPIRY", "10m"),
        ("JWT_AUTO_REFRESH_THRESHOLD", "20m"),
    ])
    .unwrap_err();
    assert!(matches!(err, ConfigError::Conflict { .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        "JWT_AUTO_REFRESH_THRESHOLD is 20m",
        "JWT_ACCESS_TOKEN_EXPIRY is 10m",
        "lower JWT_AUTO_REFRESH_THRESHOLD",
        "refresh_threshold",
        "unset it",
    ] {
        assert!(text.contains(part), "{part} missing in {text}");
    }
}

#[test]
fn a_refresh_lifetime_longer_than_the_session_is_capped() {
    let c = from(&[
        ("JWT_SECRET", SECRET),
        ("JWT_REFRESH_TOKEN_EXPIRY", "30d"),
        ("JWT_SESSION_EXPIRY", "7d"),
    ])
    .unwrap();
    assert_eq!(
        c.rules().refresh_token_ttl(),
        Duration::from_secs(7 * 86400)
    );
    assert_eq!(c.rules().session_ttl(), Duration::from_secs(7 * 86400));
    let c = SessionConfig::new(SECRET).unwrap().with_rules(
        SessionRules::default().with_refresh_token_ttl(Duration::from_secs(100 * 86400)),
    );
    assert!(c.validate().is_ok());
    assert_eq!(
        c.rules().refresh_token_ttl(),
        Duration::from_secs(90 * 86400)
    );
}

#[test]
fn every_duration_variable_takes_the_same_forms() {
    // Compound forms, each within its variable's bounds.
    for (name, value, expected) in [
        ("JWT_ACCESS_TOKEN_EXPIRY", "1h 30m", 5400),
        ("JWT_REFRESH_TOKEN_EXPIRY", "1h 30m", 5400),
        ("JWT_SESSION_EXPIRY", "1h 30m", 5400),
        ("JWT_AUTO_REFRESH_THRESHOLD", "1h 30m", 5400),
        ("JWT_REFRESH_REUSE_INTERVAL", "0m 45s", 45),
        ("JWT_LEEWAY", "1m 30s", 90),
    ] {
        let vars = [
            ("JWT_SECRET", SECRET),
            ("JWT_ACCESS_TOKEN_EXPIRY", "3h"),
            (name, value),
        ];
        let c = from(&vars).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = match name {
            "JWT_ACCESS_TOKEN_EXPIRY" => c.rules().access_token_ttl(),
            "JWT_REFRESH_TOKEN_EXPIRY" => c.rules().refresh_token_ttl(),
            "JWT_SESSION_EXPIRY" => c.rules().session_ttl(),
            "JWT_AUTO_REFRESH_THRESHOLD" => c.rules().refresh_threshold(),
            "JWT_REFRESH_REUSE_INTERVAL" => c.rules().reuse_interval(),
            _ => c.tokens().leeway(),
        };
        assert_eq!(got, Duration::from_secs(expected), "{name}");
    }
}

/// A reuse interval long enough to turn theft detection off is refused, naming the variable
/// and the bound; the bound itself starts, from the environment and from the builder.
#[test]
fn a_reuse_interval_above_a_minute_is_refused() {
    for long in ["61s", "2m", "90d"] {
        let err = from(&[("JWT_SECRET", SECRET), ("JWT_REFRESH_REUSE_INTERVAL", long)])
            .expect_err(long)
            .to_string();
        assert!(err.starts_with("JWT_REFRESH_REUSE_INTERVAL="), "{err}");
        assert!(err.contains("at most 1m") && err.contains("theft"), "{err}");
    }
    for fine in ["0s", "10s", "1m"] {
        assert!(from(&[("JWT_SECRET", SECRET), ("JWT_REFRESH_REUSE_INTERVAL", fine)]).is_ok());
    }
    let config = SessionConfig::new(SECRET)
        .unwrap()
        .with_rules(SessionRules::default().with_reuse_interval(Duration::from_secs(3600)));
    assert!(config.validate().is_err());
    assert!(crate::SessionManager::new(config).is_err());
}

/// A leeway of more than a few minutes, or as long as the access token, accepts expired
/// tokens: refused, naming the variables.
/// Found by the `config` fuzz target: an issuer of NUL bytes escapes to six bytes each in
/// every token, so every login failed with "token too large". Issuer and audience are bounded
/// and printable; at the bound a login still works.
#[test]
fn an_issuer_or_audience_no_token_could_carry_is_refused() {
    let long = "a".repeat(513);
    for name in ["JWT_ISSUER", "JWT_AUDIENCE"] {
        for bad in [long.as_str(), "https://auth.example.com\0", "tab\there"] {
            let err = from(&[("JWT_SECRET", SECRET), (name, bad)])
                .expect_err(bad)
                .to_string();
            assert!(err.starts_with(&format!("{name}=")), "{err}");
            assert!(err.contains("without control characters"), "{err}");
        }
    }
    let longest = "i".repeat(512);
    let config = from(&[
        ("JWT_SECRET", SECRET),
        ("JWT_ISSUER", &longest),
        ("JWT_AUDIENCE", &longest),
    ])
    .unwrap();
    let manager = crate::SessionManager::new(config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let pair = runtime
        .block_on(manager.create_session(crate::manager::NewSession::new("alice").roles(&["user"])))
        .unwrap();
    assert_eq!(
        manager
            .codec()
            .verify(&pair.access_token)
            .unwrap()
            .user_id(),
        "alice"
    );
}

#[test]
fn a_leeway_above_five_minutes_or_the_token_lifetime_is_refused() {
    for long in ["5m 1s", "1h", "365d"] {
        let err = from(&[("JWT_SECRET", SECRET), ("JWT_LEEWAY", long)])
            .expect_err(long)
            .to_string();
        assert!(err.starts_with("JWT_LEEWAY="), "{err}");
        assert!(err.contains("at most 5m"), "{err}");
    }
    assert!(from(&[("JWT_SECRET", SECRET), ("JWT_LEEWAY", "5m")]).is_ok());
    let err = from(&[
        ("JWT_SECRET", SECRET),
        ("JWT_LEEWAY", "2m"),
        ("JWT_ACCESS_TOKEN_EXPIRY", "2m"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("JWT_LEEWAY is 2m but JWT_ACCESS_TOKEN_EXPIRY is 2m"),
        "{err}"
    );
    let config = SessionConfig::new(SECRET).unwrap().with_tokens(
        TokenSettings::new(SECRET)
            .unwrap()
            .with_leeway(Duration::from_secs(86_400)),
    );
    assert!(crate::SessionManager::new(config).is_err());
}

#[test]
fn the_adjustments_are_logged_once() {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        let _config = from(&[
            ("JWT_SECRET", SECRET),
            ("JWT_ACCESS_TOKEN_EXPIRY", "10m"),
            ("JWT_REFRESH_TOKEN_EXPIRY", "30d"),
            ("JWT_SESSION_EXPIRY", "7d"),
        ])
        .unwrap();
        let _config = from(&[
            ("JWT_SECRET", SECRET),
            ("JWT_ACCESS_TOKEN_EXPIRY", "30d"),
            ("JWT_SESSION_EXPIRY", "1d"),
        ])
        .unwrap();
    });
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("JWT_AUTO_REFRESH_THRESHOLD is unset").count(),
        1,
        "{text}"
    );
    assert_eq!(
        text.matches("JWT_REFRESH_TOKEN_EXPIRY=30d is longer than JWT_SESSION_EXPIRY=7d")
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains("threshold=2m 30s"), "{text}");
    // The caps are warnings, in the units the variables take (never months).
    assert!(
        text.contains("WARN")
            && text.contains("JWT_REFRESH_TOKEN_EXPIRY=30d is longer than JWT_SESSION_EXPIRY=7d"),
        "{text}"
    );
    assert!(
        text.contains("JWT_ACCESS_TOKEN_EXPIRY=30d is longer than JWT_SESSION_EXPIRY=1d"),
        "{text}"
    );
    assert!(!text.contains("month"), "{text}");
}

// --- The store the settings name ---

#[test]
#[cfg(not(feature = "redis"))]
fn a_redis_url_without_the_redis_feature_is_refused() {
    let err = from(&[
        ("JWT_SECRET", SECRET),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ])
    .unwrap_err();
    assert_eq!(
        err,
        ConfigError::StoreNotBuilt {
            name: "REDIS_URL",
            feature: "redis"
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("REDIS_URL") && text.contains("`redis` feature"),
        "{text}"
    );
}

#[test]
#[cfg(feature = "redis")]
fn a_redis_url_names_the_redis_store() {
    let c = from(&[
        ("JWT_SECRET", SECRET),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("REDIS_KEY_PREFIX", "app1"),
    ])
    .unwrap();
    match c.store() {
        StoreSettings::Redis(redis) => {
            assert_eq!(redis.urls(), ["redis://127.0.0.1:6379"]);
            assert_eq!(redis.key_prefix(), "app1");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.store().kind(), "redis");
}

#[test]
fn without_a_store_url_the_store_is_memory() {
    let c = from(&[("JWT_SECRET", SECRET), ("REDIS_KEY_PREFIX", "app1")]).unwrap();
    assert!(matches!(c.store(), StoreSettings::Memory));
    assert_eq!(c.store().kind(), "memory");
}

#[test]
fn components_read_their_own_variables() {
    let vars: HashMap<&str, &str> = HashMap::from([
        ("JWT_SECRET", SECRET),
        ("JWT_ISSUER", "https://issuer.example"),
        ("JWT_MAX_CONCURRENT_SESSIONS", "3"),
        ("SESSION_COOKIE_SAME_SITE", "lax"),
        ("REDIS_KEY_PREFIX", "app1"),
    ]);
    let lookup = |k: &str| vars.get(k).map(|v| (*v).to_owned());
    assert_eq!(
        TokenSettings::from_lookup(lookup).unwrap().issuer(),
        Some("https://issuer.example")
    );
    assert_eq!(SessionRules::from_lookup(lookup).unwrap().max_sessions(), 3);
    assert_eq!(
        CookieSettings::from_lookup(lookup).unwrap().same_site(),
        SameSite::Lax
    );
    assert_eq!(
        RedisSettings::from_lookup(lookup).unwrap().key_prefix(),
        "app1"
    );
    assert!(matches!(
        TokenSettings::from_lookup(|_| None),
        Err(ConfigError::Missing {
            name: "JWT_SECRET",
            ..
        })
    ));
}

#[test]
fn algorithms_by_name() {
    for name in [
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
        "ES384", "EdDSA",
    ] {
        let alg: Algorithm = name.parse().unwrap();
        assert_eq!(alg.to_string(), name);
        assert_eq!(
            format!("{:?}", alg.to_jwt()),
            name,
            "same name in jsonwebtoken"
        );
    }
    for bad in ["none", "hs256", "HS1", ""] {
        assert!(bad.parse::<Algorithm>().is_err(), "{bad}");
    }
    assert!(Algorithm::HS512.is_hmac() && !Algorithm::EdDSA.is_hmac());
}

#[test]
fn the_verified_token_cache_is_on_by_default_and_read_from_the_environment() {
    let c = from(&[("JWT_SECRET", SECRET)]).unwrap();
    assert_eq!(c.tokens().verified_cache(), &TokenCacheSettings::default());
    assert_eq!(c.tokens().verified_cache().capacity(), 10_000);
    assert!(c.tokens().verified_cache().is_enabled());

    let c = from(&[
        ("JWT_SECRET", SECRET),
        ("JWT_VERIFIED_CACHE_CAPACITY", " 250 "),
    ])
    .unwrap();
    assert_eq!(c.tokens().verified_cache().capacity(), 250);

    let c = from(&[("JWT_SECRET", SECRET), ("JWT_VERIFIED_CACHE_CAPACITY", "0")]).unwrap();
    assert!(!c.tokens().verified_cache().is_enabled());

    for bad in ["-1", "lots", "1e4", "10k"] {
        let err =
            from(&[("JWT_SECRET", SECRET), ("JWT_VERIFIED_CACHE_CAPACITY", bad)]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { name: "JWT_VERIFIED_CACHE_CAPACITY", value, .. } if value == bad),
            "{err}"
        );
        assert!(err.to_string().contains("whole number"), "{err}");
    }
    assert!(ENV_VARS.contains(&"JWT_VERIFIED_CACHE_CAPACITY"));

    let tokens = TokenSettings::new(SECRET)
        .unwrap()
        .with_verified_cache(TokenCacheSettings::default().with_capacity(0));
    assert_eq!(tokens.verified_cache(), &TokenCacheSettings::off());
    let tokens = tokens.with_verified_cache(TokenCacheSettings::default().with_capacity(7));
    assert_eq!(tokens.verified_cache().capacity(), 7);
}

const PG_URL: &str = "postgres://app:hunter2@127.0.0.1:5432/app";

#[test]
#[cfg(feature = "postgres")]
fn a_database_url_names_the_postgres_store() {
    let c = from(&[
        ("JWT_SECRET", SECRET),
        ("DATABASE_URL", PG_URL),
        ("DATABASE_MAX_CONNECTIONS", "25"),
        ("DATABASE_STATEMENT_TIMEOUT", "250ms"),
        ("DATABASE_TABLE_PREFIX", "auth_1"),
        ("DATABASE_MIGRATE", "off"),
    ])
    .unwrap();
    match c.store() {
        StoreSettings::Postgres(pg) => {
            assert_eq!(pg.url(), Some(PG_URL));
            assert_eq!(pg.max_connections(), 25);
            assert_eq!(pg.timeout(), Duration::from_millis(250));
            assert_eq!(pg.table_prefix(), "auth_1");
            assert_eq!(pg.migrate(), crate::config::MigrateMode::Off);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.store().kind(), "postgres");
    let defaults = from(&[("JWT_SECRET", SECRET), ("DATABASE_URL", PG_URL)]).unwrap();
    assert_eq!(defaults.postgres().max_connections(), 10);
    assert_eq!(defaults.postgres().timeout(), Duration::from_secs(1));
    assert_eq!(defaults.postgres().table_prefix(), "tjs");
    assert_eq!(
        defaults.postgres().migrate(),
        crate::config::MigrateMode::Auto
    );
}

/// A build without the `postgres` feature never keeps sessions in memory when DATABASE_URL
/// asks for PostgreSQL, and says how to keep the URL for the application's own data.
#[test]
#[cfg(not(feature = "postgres"))]
fn a_database_url_without_the_postgres_feature_is_refused() {
    let err = from(&[("JWT_SECRET", SECRET), ("DATABASE_URL", PG_URL)]).unwrap_err();
    assert_eq!(
        err,
        ConfigError::StoreNotBuilt {
            name: "DATABASE_URL",
            feature: "postgres"
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("`postgres` feature") && text.contains("SESSION_STORE"),
        "{text}"
    );
}

/// An application that sets DATABASE_URL (or REDIS_URL) for its own data keeps sessions in
/// memory with SESSION_STORE=memory, in any build.
#[test]
fn session_store_memory_leaves_the_urls_to_the_application() {
    let c = from(&[
        ("JWT_SECRET", SECRET),
        ("DATABASE_URL", PG_URL),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("SESSION_STORE", "memory"),
    ])
    .unwrap();
    assert!(matches!(c.store(), StoreSettings::Memory));
    assert_eq!(c.store_choice(), Some(StoreChoice::Memory));
}

#[test]
#[cfg(feature = "redis")]
fn both_store_urls_without_a_choice_are_a_conflict() {
    let err = from(&[
        ("JWT_SECRET", SECRET),
        ("DATABASE_URL", PG_URL),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ])
    .unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError::Conflict {
                name: "SESSION_STORE",
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("REDIS_URL") && text.contains("DATABASE_URL"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let redis = from(&[
        ("JWT_SECRET", SECRET),
        ("DATABASE_URL", PG_URL),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("SESSION_STORE", "redis"),
    ])
    .unwrap();
    assert_eq!(redis.store().kind(), "redis");
    // The same conflict through the builders.
    let built = SessionConfig::new(SECRET)
        .unwrap()
        .with_redis(RedisSettings::new(["redis://127.0.0.1:6379"]))
        .with_postgres(PostgresSettings::new(PG_URL));
    assert!(built.validate().is_err());
    assert!(
        built
            .with_store_choice(StoreChoice::Postgres)
            .validate()
            .is_ok()
    );
}

#[test]
fn a_store_choice_needs_its_url() {
    let err = from(&[("JWT_SECRET", SECRET), ("SESSION_STORE", "postgres")]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Missing {
                name: "DATABASE_URL",
                ..
            }
        ),
        "{err:?}"
    );
    let err = from(&[("JWT_SECRET", SECRET), ("SESSION_STORE", "redis")]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Missing {
                name: "REDIS_URL",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn bad_database_settings_are_named() {
    for (name, value) in [
        ("DATABASE_URL", "mysql://app:hunter2@db/app"),
        ("DATABASE_MAX_CONNECTIONS", "0"),
        ("DATABASE_MAX_CONNECTIONS", "many"),
        ("DATABASE_STATEMENT_TIMEOUT", "soon"),
        ("DATABASE_STATEMENT_TIMEOUT", "0s"),
        ("DATABASE_TABLE_PREFIX", "Bad-Prefix"),
        ("DATABASE_TABLE_PREFIX", "1abc"),
        ("DATABASE_MIGRATE", "sometimes"),
        (
            "DATABASE_URL",
            "postgres://app:hunter2@db/app?application_name=x&sslmode=requird",
        ),
        ("SESSION_STORE", "mongo"),
    ] {
        let err = from(&[("JWT_SECRET", SECRET), (name, value)]).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, ConfigError::Invalid { name: n, .. } if *n == name),
            "{name}={value}: {err:?}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[test]
fn database_passwords_stay_out_of_debug_output() {
    for url in [
        PG_URL,
        "postgres://app@127.0.0.1/app?sslmode=require&password=hunter2",
    ] {
        let text = format!("{:?}", PostgresSettings::new(url));
        assert!(
            !text.contains("hunter2") && text.contains("[redacted]"),
            "{text}"
        );
        let config = SessionConfig::new(SECRET)
            .unwrap()
            .with_postgres(PostgresSettings::new(url));
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}

#[test]
fn the_sealing_key_seals_postgres_records_too() {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let c = from(&[
        ("JWT_SECRET", SECRET),
        ("SESSION_ENCRYPTION_KEY", &key),
        ("SESSION_STORE", "memory"),
    ])
    .unwrap();
    assert!(c.postgres().seals_records() && c.redis().seals_records());
    let built = PostgresSettings::default()
        .with_encryption_key(&[7; 32])
        .unwrap();
    assert!(built.seals_records());
}

#[test]
fn the_activity_trail_is_bounded_by_default_and_configurable() {
    let c = from(&[("JWT_SECRET", SECRET)]).unwrap();
    assert_eq!(c.rules().activity_max(), 50);
    assert_eq!(
        c.rules().activity_retention(),
        Duration::from_secs(30 * 86400)
    );
    let c = from(&[
        ("JWT_SECRET", SECRET),
        ("SESSION_ACTIVITY_MAX", "200"),
        ("SESSION_ACTIVITY_RETENTION", "90d"),
    ])
    .unwrap();
    assert_eq!(c.rules().activity_max(), 200);
    assert_eq!(
        c.rules().activity_retention(),
        Duration::from_secs(90 * 86400)
    );
}
