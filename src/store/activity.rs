//! The security activity trail: what happened to a user's sessions ([`SecurityEvent`]), as
//! the manager hands it to the app's hook and as stores keep it, the last
//! [`ActivityBounds::max`] events per user for [`ActivityBounds::retention`].
//!
//! An event carries no secret: no token, no password, no key. The device label and the
//! address are those the devices list shows (the address kept as `SESSION_DEVICE_IP` says).

use std::collections::VecDeque;
use std::time::SystemTime;

use crate::clock::{system_time, unix_ms};
use crate::session::SessionId;

/// Why a session ended, in a [`EventKind::SessionEnded`] event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndReason {
    /// The session's own logout.
    Logout,
    /// Ended from another of the user's devices (the devices list, "sign out all other
    /// devices").
    OtherDevice,
    /// Ended by the app ([`SessionManager::revoke`](crate::SessionManager::revoke) of a
    /// session or of a user) or by an administrator's request.
    Admin,
    /// Evicted to make room for a new login at the per-user session limit.
    Evicted,
}

impl EndReason {
    /// The wire name: `logout`, `other_device`, `admin`, `evicted`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::OtherDevice => "other_device",
            EndReason::Admin => "admin",
            EndReason::Evicted => "evicted",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "logout" => EndReason::Logout,
            "other_device" => EndReason::OtherDevice,
            "admin" => EndReason::Admin,
            "evicted" => EndReason::Evicted,
            _ => return None,
        })
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A login started a session.
    Login,
    /// The user proved who they are again on a live session (step-up).
    Reauthenticate,
    /// A retired refresh token was presented: the session was revoked as stolen. In the trail
    /// of the session's owner (the victim), whoever presented it.
    RefreshReuseDetected,
    /// A session ended early, and why.
    SessionEnded(EndReason),
    /// Every session of the user was ended at their request (logout everywhere).
    LogoutAll,
    /// Too many failed logins locked a client out of the account. Filed under the name the
    /// login named (the lock-out counts names as typed, before any credential check).
    Lockout,
}

impl EventKind {
    /// The wire name of the type: `login`, `reauthenticate`, `refresh_reuse_detected`,
    /// `session_ended`, `logout_all`, `lockout`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Login => "login",
            EventKind::Reauthenticate => "reauthenticate",
            EventKind::RefreshReuseDetected => "refresh_reuse_detected",
            EventKind::SessionEnded(_) => "session_ended",
            EventKind::LogoutAll => "logout_all",
            EventKind::Lockout => "lockout",
        }
    }

    /// Why the session ended, for [`EventKind::SessionEnded`].
    pub fn reason(self) -> Option<EndReason> {
        match self {
            EventKind::SessionEnded(reason) => Some(reason),
            _ => None,
        }
    }

    fn parse(kind: &str, reason: Option<&str>) -> Option<Self> {
        Some(match kind {
            "login" => EventKind::Login,
            "reauthenticate" => EventKind::Reauthenticate,
            "refresh_reuse_detected" => EventKind::RefreshReuseDetected,
            "session_ended" => EventKind::SessionEnded(EndReason::parse(reason?)?),
            "logout_all" => EventKind::LogoutAll,
            "lockout" => EventKind::Lockout,
            _ => return None,
        })
    }
}

/// One entry of a user's security activity: what happened, when, to which session, from
/// which device. Holds no secret (no token, no password), so its `Debug` shows everything.
///
/// ```
/// use std::time::SystemTime;
/// use tower_jwt_session::store::{DeviceInfo, EventKind, SecurityEvent};
///
/// let event = SecurityEvent::new(EventKind::Login, "alice", SystemTime::now())
///     .with_device(&DeviceInfo::new("Firefox on Linux", Some("203.0.113.0/24")));
/// assert_eq!(event.kind.as_str(), "login");
/// assert_eq!(event.device.as_deref(), Some("Firefox on Linux"));
/// assert_eq!(event.ip.as_deref(), Some("203.0.113.0/24"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecurityEvent {
    /// What happened.
    pub kind: EventKind,
    /// Whose trail it belongs to.
    pub user_id: String,
    /// When (millisecond precision once stored).
    pub at: SystemTime,
    /// The session concerned, where there is one (none for `logout_all` and `lockout`).
    pub session_id: Option<SessionId>,
    /// The device label, as the devices list shows it.
    pub device: Option<String>,
    /// The client address, as the devices list shows it (kept as `SESSION_DEVICE_IP` says).
    pub ip: Option<String>,
}

/// The stored form: short names, times in milliseconds. The user is the key it is stored
/// under, not part of it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored<'a> {
    t: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    r: Option<&'a str>,
    at: u64,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    s: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    d: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    ip: Option<std::borrow::Cow<'a, str>>,
}

impl SecurityEvent {
    /// An event of `kind` for `user_id` at `at`, with no session, device or address.
    pub fn new(kind: EventKind, user_id: impl Into<String>, at: SystemTime) -> Self {
        Self {
            kind,
            user_id: user_id.into(),
            at,
            session_id: None,
            device: None,
            ip: None,
        }
    }

    /// The event with its session.
    pub fn with_session(mut self, session_id: SessionId) -> Self {
        self.session_id = Some(session_id);
        self
    }

    /// The event with the device label and address of `device` (an empty label is none).
    pub fn with_device(mut self, device: &super::DeviceInfo) -> Self {
        self.device = Some(device.label().to_owned()).filter(|l| !l.is_empty());
        self.ip = device.ip().map(str::to_owned);
        self
    }

    /// When, in milliseconds since the Unix epoch.
    pub fn at_ms(&self) -> u64 {
        unix_ms(self.at)
    }

    /// The event as a store keeps it: compact JSON without the user id (the key it is kept
    /// under). [`from_stored`](Self::from_stored) reads it back.
    pub fn to_stored(&self) -> String {
        let stored = Stored {
            t: self.kind.as_str(),
            r: self.kind.reason().map(EndReason::as_str),
            at: self.at_ms(),
            s: self.session_id.map(|s| s.to_string().into()),
            d: self.device.as_deref().map(Into::into),
            ip: self.ip.as_deref().map(Into::into),
        };
        serde_json::to_string(&stored).unwrap_or_default()
    }

    /// Reads back what [`to_stored`](Self::to_stored) wrote for `user_id`; `None` when it
    /// does not decode (an event type of a newer release, or damaged data).
    pub fn from_stored(user_id: &str, stored: &str) -> Option<Self> {
        let s: Stored<'_> = serde_json::from_str(stored).ok()?;
        Some(Self {
            kind: EventKind::parse(s.t, s.r)?,
            user_id: user_id.to_owned(),
            at: system_time(s.at),
            session_id: match s.s {
                Some(sid) => Some(sid.parse().ok()?),
                None => None,
            },
            device: s.d.map(std::borrow::Cow::into_owned),
            ip: s.ip.map(std::borrow::Cow::into_owned),
        })
    }

    /// Whether the event is older than `bounds` keep at `now` (milliseconds).
    pub fn expired(&self, bounds: ActivityBounds, now: u64) -> bool {
        self.at_ms().saturating_add(bounds.retention) < now
    }
}

/// How much of each user's activity a store keeps: the newest `max` events, none older than
/// `retention`. From the session rules (`SESSION_ACTIVITY_MAX`, `SESSION_ACTIVITY_RETENTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityBounds {
    /// Events kept per user (at least 1).
    pub max: usize,
    /// How long an event is kept, in milliseconds.
    pub retention: u64,
}

impl ActivityBounds {
    /// Appends `event` to a user's trail held newest first, then trims it to the bounds: what
    /// a store that keeps the trail in memory does in its one atomic step.
    pub fn push(self, trail: &mut VecDeque<SecurityEvent>, event: SecurityEvent, now: u64) {
        trail.push_front(event);
        trail.truncate(self.max.max(1));
        while trail.back().is_some_and(|e| e.expired(self, now)) {
            trail.pop_back();
        }
    }
}
