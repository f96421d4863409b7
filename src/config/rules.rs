//! [`SessionRules`]: lifetimes, the per-user session limit, the refresh-advice threshold and
//! the reuse grace window, with the startup rules that make common settings fit together.

use std::time::Duration;

use super::duration::show;
use super::env::Env;
use super::{ConfigError, SessionLimitPolicy};

/// The refresh-advice threshold when none is set: 15 minutes, or a quarter of the
/// access-token lifetime when that lifetime is 15 minutes or less.
pub const DEFAULT_REFRESH_THRESHOLD: Duration = Duration::from_secs(15 * 60);

/// The longest refresh-token reuse interval (`JWT_REFRESH_REUSE_INTERVAL`) a configuration may
/// set: one minute. Within the interval a just-rotated refresh token still yields the current
/// one, which is what racing tabs and lost responses need (a few seconds); a thief replaying a
/// retired token within it gets the victim's current token too, so a long interval is theft
/// detection off. SuperTokens allows 30 seconds.
pub const MAX_REUSE_INTERVAL: Duration = Duration::from_secs(60);

/// How long sessions and their tokens live, and how many a user may hold.
///
/// Two startup rules make the settings people commonly write start:
/// - a refresh threshold left unset is [`DEFAULT_REFRESH_THRESHOLD`] (15 minutes) when the
///   access token lives longer than that, and a quarter of the access-token lifetime otherwise
///   (`JWT_ACCESS_TOKEN_EXPIRY=10m` alone advises a refresh in the last 2m 30s);
/// - a refresh-token lifetime longer than the session's absolute lifetime is capped to it, as
///   every refresh token is capped by the session's end anyway.
///
/// [`SessionConfig::from_env`](super::SessionConfig::from_env) logs each adjustment once: the
/// threshold's at `info` (nothing is lost), the caps at `warn` (a setting does not do what it
/// says), in the units the variables take. The getters return the values in force.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_session::config::SessionRules;
///
/// let rules = SessionRules::default()
///     .with_access_token_ttl(Duration::from_secs(10 * 60))
///     .with_refresh_token_ttl(Duration::from_secs(30 * 86400))
///     .with_session_ttl(Duration::from_secs(7 * 86400));
/// assert_eq!(rules.refresh_threshold(), Duration::from_secs(150)); // a quarter of 10m
/// assert_eq!(rules.refresh_token_ttl(), Duration::from_secs(7 * 86400)); // capped
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct SessionRules {
    access_token_ttl: Duration,
    refresh_token_ttl: Duration,
    session_ttl: Duration,
    max_sessions: usize,
    limit_policy: SessionLimitPolicy,
    /// `None`: the default, which adapts to the access-token lifetime.
    refresh_threshold: Option<Duration>,
    reuse_interval: Duration,
    activity_max: usize,
    activity_retention: Duration,
}

/// Most security events kept per user that the settings accept.
pub(crate) const MAX_ACTIVITY_EVENTS: usize = 1000;
/// Longest retention of security events the settings accept (400 days).
pub(crate) const MAX_ACTIVITY_RETENTION: Duration = Duration::from_secs(400 * 86400);
/// Events of the security activity trail kept per user by default.
const DEFAULT_ACTIVITY_MAX: usize = 50;
/// How long the security activity trail keeps an event by default (30 days).
const DEFAULT_ACTIVITY_RETENTION: Duration = Duration::from_secs(30 * 86400);

impl Default for SessionRules {
    /// The defaults of [the configuration](crate::routes#configuration): 2 h access tokens, 30 d refresh tokens, 90 d sessions, 10
    /// sessions per user (evict), 15 min threshold, 10 s reuse interval.
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(2 * 3600),
            refresh_token_ttl: Duration::from_secs(30 * 86400),
            session_ttl: Duration::from_secs(90 * 86400),
            max_sessions: 10,
            limit_policy: SessionLimitPolicy::Evict,
            refresh_threshold: None,
            reuse_interval: Duration::from_secs(10),
            activity_max: DEFAULT_ACTIVITY_MAX,
            activity_retention: DEFAULT_ACTIVITY_RETENTION,
        }
    }
}

impl SessionRules {
    /// Reads `JWT_ACCESS_TOKEN_EXPIRY`, `JWT_REFRESH_TOKEN_EXPIRY`, `JWT_SESSION_EXPIRY`,
    /// `JWT_MAX_CONCURRENT_SESSIONS`, `JWT_SESSION_LIMIT_POLICY`, `JWT_AUTO_REFRESH_THRESHOLD`
    /// `JWT_REFRESH_REUSE_INTERVAL`, `SESSION_ACTIVITY_MAX` and `SESSION_ACTIVITY_RETENTION`
    /// from the process environment, and logs the startup
    /// rules' adjustments.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable that is malformed, or the settings that conflict.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(super::process_env)
    }

    /// As [`from_env`](Self::from_env), through `lookup`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let rules = Self::read(&Env::new(&lookup))?;
        rules.validate()?;
        rules.log_adjustments();
        Ok(rules)
    }

    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mut rules = Self::default();
        let durations: [(&'static str, &mut Duration); 5] = [
            ("SESSION_ACTIVITY_RETENTION", &mut rules.activity_retention),
            ("JWT_ACCESS_TOKEN_EXPIRY", &mut rules.access_token_ttl),
            ("JWT_REFRESH_TOKEN_EXPIRY", &mut rules.refresh_token_ttl),
            ("JWT_SESSION_EXPIRY", &mut rules.session_ttl),
            ("JWT_REFRESH_REUSE_INTERVAL", &mut rules.reuse_interval),
        ];
        for (name, into) in durations {
            if let Some(d) = env.duration(name)? {
                *into = d;
            }
        }
        rules.refresh_threshold = env.duration("JWT_AUTO_REFRESH_THRESHOLD")?;
        if let Some(max) = env.positive("JWT_MAX_CONCURRENT_SESSIONS")? {
            rules.max_sessions = max;
        }
        if let Some(max) = env.positive("SESSION_ACTIVITY_MAX")? {
            rules.activity_max = max;
        }
        let policies = [
            ("evict", SessionLimitPolicy::Evict),
            ("deny", SessionLimitPolicy::Deny),
        ];
        if let Some(policy) =
            env.choice("JWT_SESSION_LIMIT_POLICY", &policies, "`evict` or `deny`")?
        {
            rules.limit_policy = policy;
        }
        Ok(rules)
    }

    /// Says once which values the startup rules changed: the threshold's adaptation at `info`,
    /// the caps of lifetimes longer than the session at `warn`.
    pub(crate) fn log_adjustments(&self) {
        if self.refresh_threshold.is_none() && self.access_token_ttl <= DEFAULT_REFRESH_THRESHOLD {
            tracing::info!(
                threshold = %show(self.refresh_threshold()),
                access_token_ttl = %show(self.access_token_ttl),
                "JWT_AUTO_REFRESH_THRESHOLD is unset and the access token lives no longer than its 15m default: refresh is advised in the last quarter of the access token's life instead"
            );
        }
        for (name, ttl, what) in [
            (
                "JWT_REFRESH_TOKEN_EXPIRY",
                self.refresh_token_ttl,
                "refresh tokens",
            ),
            (
                "JWT_ACCESS_TOKEN_EXPIRY",
                self.access_token_ttl,
                "access tokens",
            ),
        ] {
            if ttl > self.session_ttl {
                tracing::warn!(
                    "{name}={} is longer than JWT_SESSION_EXPIRY={}: {what} end with the session, at {} at most; lower {name} or raise JWT_SESSION_EXPIRY",
                    show(ttl),
                    show(self.session_ttl),
                    show(self.session_ttl),
                );
            }
        }
    }

    /// Access token lifetime (`JWT_ACCESS_TOKEN_EXPIRY`). The default is 2 hours.
    pub fn with_access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }

    /// Refresh token lifetime (`JWT_REFRESH_TOKEN_EXPIRY`); each rotation issues a fresh one,
    /// capped by the session's end. The default is 30 days.
    pub fn with_refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_token_ttl = ttl;
        self
    }

    /// Absolute session lifetime from login (`JWT_SESSION_EXPIRY`); no refresh extends it.
    /// The default is 90 days.
    pub fn with_session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Concurrent sessions per user (`JWT_MAX_CONCURRENT_SESSIONS`). The default is 10.
    pub fn with_max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max;
        self
    }

    /// What a login beyond the session limit does (`JWT_SESSION_LIMIT_POLICY`). The default
    /// is [`SessionLimitPolicy::Evict`].
    pub fn with_limit_policy(mut self, policy: SessionLimitPolicy) -> Self {
        self.limit_policy = policy;
        self
    }

    /// Remaining lifetime at or under which responses advise a refresh
    /// (`JWT_AUTO_REFRESH_THRESHOLD`). Unset, it is [`DEFAULT_REFRESH_THRESHOLD`], shrunk for
    /// short access tokens (see the type's docs). A threshold set here must be shorter than
    /// the access-token lifetime.
    pub fn with_refresh_threshold(mut self, threshold: Duration) -> Self {
        self.refresh_threshold = Some(threshold);
        self
    }

    /// Grace window in which a just-rotated refresh token still yields its successor
    /// (`JWT_REFRESH_REUSE_INTERVAL`), for racing tabs and lost responses. The default is 10
    /// seconds; zero turns the grace off (any replay is then treated as theft). At most
    /// [`MAX_REUSE_INTERVAL`] (one minute): validation refuses more, since a thief replaying a
    /// retired token within the interval gets the current one.
    pub fn with_reuse_interval(mut self, interval: Duration) -> Self {
        self.reuse_interval = interval;
        self
    }

    /// The access token lifetime.
    pub fn access_token_ttl(&self) -> Duration {
        self.access_token_ttl
    }

    /// The refresh token lifetime in force: as set, capped by the session lifetime.
    pub fn refresh_token_ttl(&self) -> Duration {
        self.refresh_token_ttl.min(self.session_ttl)
    }

    /// The absolute session lifetime.
    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    /// The per-user session limit.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// What a login beyond the limit does.
    pub fn limit_policy(&self) -> SessionLimitPolicy {
        self.limit_policy
    }

    /// The refresh-advice threshold in force: as set, or the default adapted to the
    /// access-token lifetime.
    pub fn refresh_threshold(&self) -> Duration {
        match self.refresh_threshold {
            Some(threshold) => threshold,
            None if self.access_token_ttl > DEFAULT_REFRESH_THRESHOLD => DEFAULT_REFRESH_THRESHOLD,
            None => self.access_token_ttl / 4,
        }
    }

    /// The refresh-token reuse grace interval.
    pub fn reuse_interval(&self) -> Duration {
        self.reuse_interval
    }

    /// How many security events are kept per user, newest first (`SESSION_ACTIVITY_MAX`, 1 to
    /// 1000). The default is 50.
    pub fn with_activity_max(mut self, max: usize) -> Self {
        self.activity_max = max;
        self
    }

    /// How long a security event is kept (`SESSION_ACTIVITY_RETENTION`, 1 minute to 400
    /// days). The default is 30 days.
    pub fn with_activity_retention(mut self, retention: Duration) -> Self {
        self.activity_retention = retention;
        self
    }

    /// How many security events are kept per user.
    pub fn activity_max(&self) -> usize {
        self.activity_max
    }

    /// How long a security event is kept.
    pub fn activity_retention(&self) -> Duration {
        self.activity_retention
    }

    // Size: one check per startup rule, each refusing with the setting that fixes it.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.activity_max == 0 || self.activity_max > MAX_ACTIVITY_EVENTS {
            return Err(ConfigError::Invalid {
                name: "SESSION_ACTIVITY_MAX",
                value: self.activity_max.to_string(),
                expected: "a whole number from 1 to 1000 (the default is 50)",
            });
        }
        if self.activity_retention < Duration::from_secs(60)
            || self.activity_retention > MAX_ACTIVITY_RETENTION
        {
            return Err(ConfigError::Invalid {
                name: "SESSION_ACTIVITY_RETENTION",
                value: show(self.activity_retention),
                expected: "a duration from 1m to 400d (the default is 30d)",
            });
        }
        for (name, ttl) in [
            ("JWT_ACCESS_TOKEN_EXPIRY", self.access_token_ttl),
            ("JWT_REFRESH_TOKEN_EXPIRY", self.refresh_token_ttl),
            ("JWT_SESSION_EXPIRY", self.session_ttl),
        ] {
            if ttl.is_zero() {
                return Err(ConfigError::Invalid {
                    name,
                    value: "0".to_owned(),
                    expected: "a duration above zero, such as 15m",
                });
            }
        }
        if self.max_sessions == 0 {
            return Err(ConfigError::Invalid {
                name: "JWT_MAX_CONCURRENT_SESSIONS",
                value: "0".to_owned(),
                expected: "a whole number of at least 1",
            });
        }
        if self.reuse_interval > MAX_REUSE_INTERVAL {
            return Err(ConfigError::Invalid {
                name: "JWT_REFRESH_REUSE_INTERVAL",
                value: show(self.reuse_interval),
                expected: "at most 1m (the default is 10s): within this interval a replayed, already rotated refresh token still gets the current one, so a long interval turns theft detection off",
            });
        }
        if self.reuse_interval > MAX_REUSE_INTERVAL {
            return Err(ConfigError::Invalid {
                name: "JWT_REFRESH_REUSE_INTERVAL",
                value: show(self.reuse_interval),
                expected: "at most 1m (the default is 10s): within this interval a replayed, already rotated refresh token still gets the current one, so a long interval turns theft detection off",
            });
        }
        match self.refresh_threshold {
            Some(threshold) if threshold >= self.access_token_ttl => Err(ConfigError::Conflict {
                name: "JWT_AUTO_REFRESH_THRESHOLD / JWT_ACCESS_TOKEN_EXPIRY",
                reason: format!(
                    "JWT_AUTO_REFRESH_THRESHOLD is {} but JWT_ACCESS_TOKEN_EXPIRY is {}: the threshold must be shorter, or every response would advise a refresh",
                    show(threshold),
                    show(self.access_token_ttl)
                ),
                fix: "lower JWT_AUTO_REFRESH_THRESHOLD (SessionRules::with_refresh_threshold) or unset it to get a quarter of the access-token lifetime".to_owned(),
            }),
            _ => Ok(()),
        }
    }
}
