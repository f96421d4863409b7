//! Random operation sequences on one instance, checked step by step against the model.
//!
//! On sealed Redis the steps also tamper with live records straight in Redis ([`Tampering`]):
//! each tampered session must be no session from then on (a fresh instance refuses its access
//! token, refresh refuses it, listings skip it), no answer may carry forged data, and every
//! other session goes on as the model says.
//!
//! On every store some refreshes run while the store stalls ([`Op::Stall`]): each is answered
//! 503 and the rotation that reaches the store late must not take effect, so no retry of the
//! token the client kept is ever judged reuse, however long the stall.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use tower_jwt_session::config::{Clock as _, ManualClock};
use tower_jwt_session::store::{ReuseKind, RotateOutcome, StoreError};
use tower_jwt_session::{SessionError, SessionManager, response::AuthError, session::SessionId};

use crate::model::reference::{Limits, Model, Policy, Refreshed, Refusal, Verdict};
use crate::model::stall::Stalled;
use crate::model::{Backend, StoreKind, env_number, unix_ms, unix_secs};

const USERS: usize = 3;

thread_local! {
    /// How often each answer came up in this thread's runs: shows the sequences reach every
    /// rule (printed with the case count).
    static SEEN: std::cell::RefCell<std::collections::BTreeMap<String, u64>> = Default::default();
}

fn seen(what: impl std::fmt::Display) {
    SEEN.with(|s| *s.borrow_mut().entry(what.to_string()).or_default() += 1);
}

/// Settings a case runs under. Lifetimes are small so the clock crosses them often; each
/// profile stresses another corner.
const PROFILES: [Limits; 5] = [
    // The usual shape: refresh longer than access, session longer than refresh.
    Limits {
        access: 2_000,
        leeway: 1_000,
        refresh: 6_000,
        session: 15_000,
        reuse: 500,
        max: 2,
        policy: Policy::Evict,
    },
    // No leeway, a larger limit.
    Limits {
        access: 1_000,
        leeway: 0,
        refresh: 3_000,
        session: 5_000,
        reuse: 300,
        max: 3,
        policy: Policy::Evict,
    },
    // A refresh token shorter than access plus leeway: records are kept for the access tokens.
    Limits {
        access: 3_000,
        leeway: 1_000,
        refresh: 1_500,
        session: 10_000,
        reuse: 400,
        max: 2,
        policy: Policy::Evict,
    },
    // No grace window, one session per user.
    Limits {
        access: 2_000,
        leeway: 1_000,
        refresh: 5_000,
        session: 8_000,
        reuse: 0,
        max: 1,
        policy: Policy::Evict,
    },
    // Access tokens outliving the session: records are kept past the session's end, where a
    // refresh answers `session_expired`, and access tokens are cut at the end.
    Limits {
        access: 4_000,
        leeway: 1_000,
        refresh: 3_000,
        session: 4_500,
        reuse: 400,
        max: 2,
        policy: Policy::Evict,
    },
];

/// One step. Session and user numbers are taken modulo what exists when the step runs, so any
/// sequence is meaningful and shrinking keeps it so.
#[derive(Debug, Clone)]
pub enum Op {
    /// Login of user `n % 3` (the clock moves 1 ms first, so creation times are distinct).
    Login(usize),
    /// Refresh with the newest refresh token the client holds for session `n`.
    Refresh(usize),
    /// Present the refresh token `back` generations older than the newest (parent, ancestor).
    Replay(usize, u64),
    /// Present a forged or misspelt form of the newest refresh token of session `n`.
    Forged(usize, Forgery),
    /// Logout of session `n`.
    Logout(usize),
    /// Logout everywhere of user `n % 3`.
    LogoutAll(usize),
    /// Verify the access token `back` tokens older than the newest of session `n`.
    Verify(usize, usize),
    /// Refresh with the newest refresh token of session `n` while the store stalls: the
    /// request times out (503), and the rotation reaches the store after its deadline, which
    /// must not apply it, however long the stall; the client keeps its token.
    Stall(usize),
    /// Move the clock.
    Wait(Wait),
    /// Change the record of live session `n` in Redis, outside the crate (sealed runs only).
    #[cfg(feature = "redis")]
    Tamper(usize, Tampering),
}

/// How a record is changed behind the crate's back: what an attacker (or an operator) with
/// write access to Redis can do without the sealing key.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, Copy)]
pub enum Tampering {
    /// `e`, the session's end, moved later.
    LaterEnd,
    /// `x`, the refresh token's end, moved later.
    LaterRefreshEnd,
    /// `p`, the purge time, moved later.
    LaterPurge,
    /// `g` set to another generation: one back (1 from 0).
    OtherGeneration,
    /// The seal deleted and a user id (another user's) and roles (`admin`) written in clear.
    ForgedUser,
    /// One sealed part (`n` modulo their number) deleted.
    DropPart(usize),
    /// The sealed parts of another live session (`n` modulo their number) copied over.
    SwapSeal(usize),
}

#[cfg(feature = "redis")]
impl Tampering {
    fn name(self) -> &'static str {
        match self {
            Tampering::LaterEnd => "later e",
            Tampering::LaterRefreshEnd => "later x",
            Tampering::LaterPurge => "later p",
            Tampering::OtherGeneration => "other g",
            Tampering::ForgedUser => "forged u/r",
            Tampering::DropPart(_) => "part dropped",
            Tampering::SwapSeal(_) => "seal swapped",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Wait {
    Ms(u64),
    PastAccess,
    PastRefresh,
    PastSession,
    /// To a boundary of session `n`, plus `delta` ms (-1, 0, +1).
    Edge(usize, Edge, i64),
}

#[derive(Debug, Clone, Copy)]
pub enum Forgery {
    /// One character of the MAC changed.
    Mac,
    /// The generation written with a leading zero: the same claims, another spelling.
    LeadingZero,
    /// The generation raised by one, MAC unchanged.
    NextGeneration,
    /// The last character cut off.
    Truncated,
}

impl Forgery {
    fn apply(self, token: &str) -> String {
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        match self {
            Forgery::Mac => {
                let mac = parts.last_mut().expect("parts");
                let first = if mac.starts_with('A') { "B" } else { "A" };
                mac.replace_range(0..1, first);
            }
            Forgery::LeadingZero if parts.len() > 2 => parts[2].insert(0, '0'),
            Forgery::NextGeneration if parts.len() > 2 => {
                parts[2] = parts[2]
                    .parse::<u64>()
                    .map_or_else(|_| "x".into(), |g| (g + 1).to_string());
            }
            _ => {
                let mut t = token.to_owned();
                t.pop();
                return t;
            }
        }
        parts.join(".")
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Edge {
    GraceEnd,
    RefreshExpiry,
    SessionEnd,
    Purge,
    AccessExpiry,
}

fn op() -> impl Strategy<Value = Op> {
    let session = 0..64usize;
    let wait = prop_oneof![
        6 => (0..1_500u64).prop_map(Wait::Ms),
        1 => Just(Wait::PastAccess),
        1 => Just(Wait::PastRefresh),
        1 => Just(Wait::PastSession),
        4 => (
            0..64usize,
            prop_oneof![
                Just(Edge::GraceEnd),
                Just(Edge::RefreshExpiry),
                Just(Edge::SessionEnd),
                Just(Edge::Purge),
                Just(Edge::AccessExpiry),
            ],
            -1..=1i64
        )
            .prop_map(|(s, e, d)| Wait::Edge(s, e, d)),
    ];
    prop_oneof![
        5 => (0..USERS).prop_map(Op::Login),
        6 => session.clone().prop_map(Op::Refresh),
        3 => (session.clone(), 1..4u64).prop_map(|(s, b)| Op::Replay(s, b)),
        1 => (
            session.clone(),
            prop_oneof![
                Just(Forgery::Mac),
                Just(Forgery::LeadingZero),
                Just(Forgery::NextGeneration),
                Just(Forgery::Truncated),
            ]
        )
            .prop_map(|(s, f)| Op::Forged(s, f)),
        2 => session.clone().prop_map(Op::Logout),
        1 => (0..USERS).prop_map(Op::LogoutAll),
        2 => (session.clone(), 0..3usize).prop_map(|(s, b)| Op::Verify(s, b)),
        1 => session.prop_map(Op::Stall),
        5 => wait.prop_map(Op::Wait),
    ]
}

/// The steps of a run on `kind`: tampering too on sealed Redis.
fn steps_on(kind: StoreKind) -> BoxedStrategy<Op> {
    #[cfg(feature = "redis")]
    if kind == StoreKind::Sealed {
        let tampering = prop_oneof![
            Just(Tampering::LaterEnd),
            Just(Tampering::LaterRefreshEnd),
            Just(Tampering::LaterPurge),
            Just(Tampering::OtherGeneration),
            Just(Tampering::ForgedUser),
            (0..8usize).prop_map(Tampering::DropPart),
            (0..64usize).prop_map(Tampering::SwapSeal),
        ];
        return prop_oneof![
            25 => op(),
            3 => (0..64usize, tampering).prop_map(|(n, t)| Op::Tamper(n, t)),
        ]
        .boxed();
    }
    let _ = kind;
    op().boxed()
}

/// A generated case: settings and steps.
#[derive(Debug, Clone)]
pub struct Case {
    pub profile: usize,
    pub ops: Vec<Op>,
}

fn case(kind: StoreKind, steps: usize) -> impl Strategy<Value = Case> {
    (
        0..PROFILES.len(),
        prop::collection::vec(steps_on(kind), 1..=steps),
    )
        .prop_map(|(profile, ops)| Case { profile, ops })
}

/// What the client holds of one session.
struct Client {
    sid: SessionId,
    /// Refresh tokens by generation.
    refresh: Vec<String>,
    /// Access tokens and their `exp`, oldest first.
    access: Vec<(String, u64)>,
}

fn user_name(u: usize) -> String {
    format!("user-{u}")
}

fn refusal(e: &SessionError) -> Result<Refusal, String> {
    Ok(match e {
        SessionError::InvalidToken => Refusal::InvalidToken,
        SessionError::TokenExpired => Refusal::TokenExpired,
        SessionError::Revoked => Refusal::Revoked,
        SessionError::SessionExpired => Refusal::SessionExpired,
        SessionError::TokenReused(ReuseKind::RetiredAfterInterval) => Refusal::ReusedRetired,
        SessionError::TokenReused(ReuseKind::Ancestor) => Refusal::ReusedAncestor,
        SessionError::LimitReached => Refusal::LimitReached,
        other => return Err(format!("unexpected error {other:?}")),
    })
}

/// One case against one store.
struct Run {
    backend: Backend,
    manager: SessionManager,
    clock: ManualClock,
    start: u64,
    model: Model,
    clients: Vec<Client>,
    /// Every refresh answered: presented token -> the successor handed out.
    successors: HashMap<String, String>,
    /// A second instance on the same store, made at the first tampering: its cache holds no
    /// answer from before, so it must refuse a tampered session at once.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    observer: Option<SessionManager>,
    /// A manager on the same store behind a stall, made at the first stalled refresh.
    stalled: Option<(Arc<Stalled>, SessionManager)>,
    log: String,
}

impl Run {
    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn advance_to(&mut self, target: u64) {
        let now = self.now();
        if target > now {
            self.clock.advance(Duration::from_millis(target - now));
        }
    }

    fn pick(&self, n: usize) -> Option<usize> {
        (!self.clients.is_empty()).then(|| n % self.clients.len())
    }

    async fn step(&mut self, op: &Op) -> Result<(), String> {
        let l = self.model.limits;
        match *op {
            Op::Login(u) => {
                self.clock.advance(Duration::from_millis(1));
                let now = self.now();
                let expected = self.model.create(u, now);
                let real = self
                    .manager
                    .create_session(
                        tower_jwt_session::manager::NewSession::new(user_name(u))
                            .roles(&["user".to_owned()]),
                    )
                    .await;
                match (expected, real) {
                    (Ok((i, evicted)), Ok(pair)) => {
                        let _ = write!(self.log, " -> s{i}, evicted {evicted:?}");
                        seen(if evicted.is_empty() {
                            "login"
                        } else {
                            "login evicting"
                        });
                        let s = &self.model.sessions[i];
                        if self.clients.iter().any(|c| c.sid == pair.session_id) {
                            return Err("a session id was handed out twice".into());
                        }
                        check_eq(
                            "refresh_expires_at",
                            unix_ms(pair.refresh_expires_at),
                            s.refresh_expires_at,
                        )?;
                        check_eq(
                            "access_expires_at",
                            unix_secs(pair.access_expires_at),
                            self.model.access_exp(now, s.expires_at),
                        )?;
                        check_eq("user_id", pair.user_id.as_str(), user_name(u).as_str())?;
                        self.clients.push(Client {
                            sid: pair.session_id,
                            refresh: vec![pair.refresh_token],
                            access: vec![(pair.access_token, unix_secs(pair.access_expires_at))],
                        });
                    }
                    (Err(e), Err(r)) if Ok(e) == refusal(&r) => {
                        let _ = write!(self.log, " -> {e:?}");
                        seen(format_args!("login {e:?}"));
                    }
                    (e, r) => {
                        return Err(format!(
                            "login: model {e:?}, store {:?}",
                            r.map(|p| p.session_id)
                        ));
                    }
                }
            }
            Op::Refresh(n) | Op::Replay(n, _) => {
                let Some(i) = self.pick(n) else { return Ok(()) };
                let newest = self.clients[i].refresh.len() as u64 - 1;
                let generation = match *op {
                    Op::Replay(_, back) => newest.saturating_sub(back),
                    _ => newest,
                };
                self.refresh(i, generation).await?;
            }
            Op::Forged(n, forgery) => {
                let Some(i) = self.pick(n) else { return Ok(()) };
                let forged = forgery.apply(self.clients[i].refresh.last().expect("one at least"));
                let real = self.manager.refresh(&forged).await;
                seen(format_args!("refresh forged {forgery:?}"));
                match real {
                    Err(SessionError::InvalidToken) => {}
                    other => {
                        return Err(format!(
                            "a forged refresh token ({forgery:?}) answered {:?}, not InvalidToken",
                            other.map(|p| p.session_id)
                        ));
                    }
                }
            }
            Op::Logout(n) => {
                let Some(i) = self.pick(n) else { return Ok(()) };
                let now = self.now();
                let expected = self.model.revoke(i, now);
                let real = self
                    .manager
                    .revoke(self.clients[i].sid)
                    .await
                    .map_err(|e| format!("logout: {e:?}"))?
                    == 1;
                let _ = write!(self.log, " s{i} -> {real}");
                check_eq("logout (was live)", real, expected)?;
                seen(format_args!("logout live={real}"));
            }
            Op::LogoutAll(u) => {
                let now = self.now();
                let expected = self.model.revoke_all(u, now);
                let real = self
                    .manager
                    .revoke(tower_jwt_session::manager::Revoke::User(&user_name(u)))
                    .await
                    .map_err(|e| format!("logout-all: {e:?}"))?;
                let _ = write!(self.log, " -> {real}");
                check_eq("logout-all (how many were live)", real, expected)?;
                seen(format_args!(
                    "logout-all {}",
                    if real > 0 { "some" } else { "none" }
                ));
            }
            Op::Verify(n, back) => {
                let Some(i) = self.pick(n) else { return Ok(()) };
                let tokens = &self.clients[i].access;
                let k = tokens.len() - 1 - back.min(tokens.len() - 1);
                self.verify(i, k).await?;
            }
            Op::Stall(n) => {
                let Some(i) = self.pick(n) else { return Ok(()) };
                self.stalled_refresh(i).await?;
            }
            Op::Wait(ref wait) => {
                let now = self.now();
                let target = match *wait {
                    Wait::Ms(ms) => now + ms,
                    Wait::PastAccess => now + l.access + l.leeway + 1,
                    Wait::PastRefresh => now + l.refresh + 1,
                    Wait::PastSession => now + l.session + 1,
                    Wait::Edge(n, edge, delta) => {
                        let Some(i) = self.pick(n) else { return Ok(()) };
                        let s = &self.model.sessions[i];
                        let at = match edge {
                            Edge::GraceEnd => s.rotated_at + l.reuse,
                            Edge::RefreshExpiry => s.refresh_expires_at,
                            Edge::SessionEnd => s.expires_at,
                            Edge::Purge => s.purge_at(&l),
                            Edge::AccessExpiry => {
                                let exp = self.clients[i].access.last().expect("one at least").1;
                                (exp + l.leeway / 1000) * 1000
                            }
                        };
                        at.saturating_add_signed(delta)
                    }
                };
                self.advance_to(target);
            }
            #[cfg(feature = "redis")]
            Op::Tamper(n, how) => self.tamper(n, how).await?,
        }
        Ok(())
    }

    /// Changes the record of a live session in Redis as `how` says, then checks it is no
    /// session.
    #[cfg(feature = "redis")]
    async fn tamper(&mut self, n: usize, how: Tampering) -> Result<(), String> {
        let now = self.now();
        let l = self.model.limits;
        let live: Vec<usize> = (0..self.clients.len())
            .filter(|&i| self.model.sessions[i].live(now, &l))
            .collect();
        if live.is_empty() {
            let _ = write!(self.log, " -> no live session");
            return Ok(());
        }
        let i = live[n % live.len()];
        let record = self
            .backend
            .raw_record(self.clients[i].sid)
            .await
            .ok_or_else(|| format!("live s{i} has no record in Redis"))?;
        let clear = |name: &str| {
            record
                .number(name)
                .ok_or_else(|| format!("s{i}: clear field {name} missing"))
        };
        let (e, p, g, x) = (clear("e")?, clear("p")?, clear("g")?, clear("x")?);
        let s = &self.model.sessions[i];
        check_eq(&format!("s{i} clear e"), e, s.expires_at)?;
        check_eq(&format!("s{i} clear p"), p, s.purge_at(&l))?;
        let other_user = user_name((s.user + 1) % USERS);
        let parts = record.sealed_parts();
        if parts.is_empty() {
            return Err(format!("s{i}: a sealed record without sealed parts"));
        }
        let hset = |fields: &[(String, String)]| {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&record.key);
            for (k, v) in fields {
                cmd.arg(k).arg(v);
            }
            cmd
        };
        let hdel = |fields: &[(String, String)]| {
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(&record.key);
            for (k, _) in fields {
                cmd.arg(k);
            }
            cmd
        };
        let field = |k: &str, v: u64| [(k.to_owned(), v.to_string())];
        let later = l.session;
        let (mut clear_e, mut clear_p) = (e, p);
        let commands = match how {
            Tampering::LaterEnd => {
                clear_e = e + later;
                vec![hset(&field("e", clear_e))]
            }
            Tampering::LaterRefreshEnd => vec![hset(&field("x", x + later))],
            Tampering::LaterPurge => {
                clear_p = p + later;
                vec![hset(&field("p", clear_p))]
            }
            Tampering::OtherGeneration => {
                vec![hset(&field("g", if g > 0 { g - 1 } else { 1 }))]
            }
            Tampering::ForgedUser => vec![
                hdel(&parts),
                hset(&[
                    ("u".to_owned(), other_user),
                    ("r".to_owned(), r#"["admin"]"#.to_owned()),
                ]),
            ],
            Tampering::DropPart(k) => vec![hdel(&parts[k % parts.len()..][..1])],
            Tampering::SwapSeal(m) => {
                let others: Vec<usize> = live.iter().copied().filter(|&j| j != i).collect();
                if others.is_empty() {
                    let _ = write!(self.log, " -> no other live session");
                    return Ok(());
                }
                let j = others[m % others.len()];
                let source = self
                    .backend
                    .raw_record(self.clients[j].sid)
                    .await
                    .ok_or_else(|| format!("live s{j} has no record in Redis"))?;
                let _ = write!(self.log, " (seal of s{j})");
                vec![hdel(&parts), hset(&source.sealed_parts())]
            }
        };
        for command in &commands {
            self.backend.raw_command(&record, command).await;
        }
        let _ = write!(self.log, " s{i} -> tampered");
        seen(format_args!("tamper {}", how.name()));
        self.model.tamper(i, clear_e, clear_p);
        self.check_tampered(i).await
    }

    /// A tampered session is no session: a fresh instance refuses its newest access token at
    /// once (this instance may answer from its cache until the entry's lifetime ends, as after
    /// a revocation elsewhere), and its newest refresh token is refused, never answered with a
    /// pair for anyone.
    #[cfg(feature = "redis")]
    async fn check_tampered(&mut self, i: usize) -> Result<(), String> {
        let now = self.now();
        if self.observer.is_none() {
            let store = self.backend.second_instance().await;
            self.observer = Some(
                SessionManager::builder(self.backend.config.clone())
                    .shared_store(store)
                    .clock(self.clock.clone())
                    .build()
                    .map_err(|e| format!("config: {e}"))?,
            );
        }
        let observer = self.observer.as_ref().expect("just made");
        let (token, exp) = self.clients[i].access.last().expect("one at least").clone();
        let expected = match self.model.verify(i, exp, now) {
            Verdict::Expired => Verdict::Expired,
            _ => Verdict::Revoked,
        };
        let answer = match observer.verify_access_token(&token).await {
            Ok(session) => {
                return Err(format!(
                    "tampered s{i}: a fresh instance accepted its access token (user {})",
                    session.user_id()
                ));
            }
            Err(AuthError::Expired) => Verdict::Expired,
            Err(AuthError::Revoked) => Verdict::Revoked,
            Err(other) => return Err(format!("tampered s{i}: verify answered {other:?}")),
        };
        seen(format_args!("tampered verify {answer:?}"));
        check_eq(
            &format!("tampered s{i}: a fresh instance's verify"),
            answer,
            expected,
        )?;
        let generation = self.clients[i].refresh.len() as u64 - 1;
        let expected = self.model.refresh(i, generation, now);
        let token = self.clients[i].refresh[generation as usize].clone();
        match (expected, self.manager.refresh(&token).await) {
            (Err(e), Err(r)) if Ok(e) == refusal(&r) => {
                seen(format_args!("tampered refresh {e:?}"));
                Ok(())
            }
            (e, r) => Err(format!(
                "tampered s{i}: refresh: model {e:?}, store {:?}",
                r.map(|p| (p.session_id, p.user_id))
            )),
        }
    }

    async fn refresh(&mut self, i: usize, generation: u64) -> Result<(), String> {
        let now = self.now();
        let token = self.clients[i].refresh[generation as usize].clone();
        let expected = self.model.refresh(i, generation, now);
        let real = self.manager.refresh(&token).await;
        let _ = write!(self.log, " s{i} g{generation} -> {expected:?}");
        seen(match &expected {
            Ok(Refreshed::Rotated { .. }) => "refresh rotated".to_owned(),
            Ok(Refreshed::Grace { .. }) => "refresh grace".to_owned(),
            Err(e) => format!("refresh {e:?}"),
        });
        match (expected, real) {
            (Ok(answer), Ok(pair)) => {
                let (generation, refresh_expires_at) = match answer {
                    Refreshed::Rotated {
                        generation,
                        refresh_expires_at,
                    }
                    | Refreshed::Grace {
                        generation,
                        refresh_expires_at,
                    } => (generation, refresh_expires_at),
                };
                check_eq(
                    "user of the refreshed pair",
                    pair.user_id.as_str(),
                    user_name(self.model.sessions[i].user).as_str(),
                )?;
                let client = &mut self.clients[i];
                check_eq("session of the refreshed pair", pair.session_id, client.sid)?;
                check_eq(
                    "refresh_expires_at",
                    unix_ms(pair.refresh_expires_at),
                    refresh_expires_at,
                )?;
                let expires_at = self.model.sessions[i].expires_at;
                check_eq(
                    "access_expires_at",
                    unix_secs(pair.access_expires_at),
                    self.model.access_exp(now, expires_at),
                )?;
                match answer {
                    Refreshed::Rotated { .. } => {
                        if self
                            .clients
                            .iter()
                            .any(|c| c.refresh.contains(&pair.refresh_token))
                        {
                            return Err("a rotation handed out a refresh token seen before".into());
                        }
                        let client = &mut self.clients[i];
                        check_eq("generation", client.refresh.len() as u64, generation)?;
                        client.refresh.push(pair.refresh_token.clone());
                    }
                    Refreshed::Grace { .. } => {
                        if pair.refresh_token != client.refresh[generation as usize] {
                            return Err(
                                "a grace answer is not the current refresh token: two successors"
                                    .into(),
                            );
                        }
                    }
                }
                if let Some(before) = self.successors.insert(token, pair.refresh_token.clone())
                    && before != pair.refresh_token
                {
                    return Err("one refresh token got two different successors".into());
                }
                self.clients[i]
                    .access
                    .push((pair.access_token, unix_secs(pair.access_expires_at)));
            }
            (Err(e), Err(r)) if Ok(e) == refusal(&r) => {
                if matches!(e, Refusal::ReusedRetired | Refusal::ReusedAncestor) {
                    // Reuse always revokes: the newest refresh token and access token are
                    // refused at once.
                    let newest = self.clients[i]
                        .refresh
                        .last()
                        .expect("one at least")
                        .clone();
                    match self.manager.refresh(&newest).await {
                        Err(SessionError::Revoked | SessionError::TokenExpired) => {}
                        other => {
                            return Err(format!(
                                "after reuse detection the newest refresh token answers {:?}",
                                other.map(|p| p.session_id)
                            ));
                        }
                    }
                    let k = self.clients[i].access.len() - 1;
                    self.verify(i, k).await?;
                }
            }
            (e, r) => {
                return Err(format!(
                    "refresh: model {e:?}, store {:?}",
                    r.map(|p| (p.session_id, unix_ms(p.refresh_expires_at)))
                ));
            }
        }
        Ok(())
    }

    /// A refresh of session `i`'s newest token during a store stall: answered 503, and not
    /// applied when the store gets to it after the deadline. Nothing changes in the model: the
    /// client's retry with the same token, at any later time, is judged as if this never was.
    async fn stalled_refresh(&mut self, i: usize) -> Result<(), String> {
        if self.stalled.is_none() {
            let store = Arc::new(Stalled::new(self.backend.store.clone()));
            let manager = SessionManager::builder(self.backend.config.clone())
                .shared_store(store.clone())
                .clock(self.clock.clone())
                .store_timeout(Duration::from_millis(50))
                .build()
                .map_err(|e| format!("config: {e}"))?;
            self.stalled = Some((store, manager));
        }
        let (store, manager) = self.stalled.as_ref().expect("just made");
        let token = self.clients[i]
            .refresh
            .last()
            .expect("one at least")
            .clone();
        match manager.refresh(&token).await {
            Err(SessionError::Unavailable(_)) => {}
            other => {
                return Err(format!(
                    "a refresh during a stall answered {:?}, not 503",
                    other.map(|p| p.session_id)
                ));
            }
        }
        let late = store.late_answer().await;
        let _ = write!(self.log, " s{i} -> 503, late: {late:?}");
        match late {
            // No rotation reached the store: the token was refused before (forged, ended).
            None => seen("refresh stalled before the store"),
            Some(Err(StoreError::DeadlinePassed)) => seen("refresh stalled, not applied"),
            // What changes nothing may still be answered (an expired or ended session, the
            // grace answer): the caller is gone, and the state checks below see no change.
            Some(Ok(
                RotateOutcome::TokenExpired
                | RotateOutcome::SessionExpired
                | RotateOutcome::Revoked
                | RotateOutcome::NotFound
                | RotateOutcome::Grace(_),
            )) => seen("refresh stalled, answered without a change"),
            Some(other) => {
                return Err(format!(
                    "a rotation that reached the store after its deadline answered {other:?}: it must not be applied"
                ));
            }
        }
        Ok(())
    }

    /// Verifies access token `k` of session `i` and compares with the model.
    async fn verify(&mut self, i: usize, k: usize) -> Result<(), String> {
        let now = self.now();
        let (token, exp) = self.clients[i].access[k].clone();
        let verdict = self.model.verify(i, exp, now);
        let real = self.manager.verify_access_token(&token).await;
        let answer = match &real {
            Ok(session) => {
                check_eq(
                    "verified session id",
                    session.session_id(),
                    self.clients[i].sid,
                )?;
                check_eq(
                    "verified user",
                    session.user_id(),
                    user_name(self.model.sessions[i].user).as_str(),
                )?;
                Verdict::Ok
            }
            Err(AuthError::Expired) => Verdict::Expired,
            Err(AuthError::Revoked) => Verdict::Revoked,
            Err(other) => return Err(format!("verify s{i} token {k}: unexpected {other:?}")),
        };
        seen(format_args!("verify {verdict:?} -> {answer:?}"));
        if answer == Verdict::Ok && self.model.sessions[i].ended {
            return Err(format!(
                "ended session s{i} answered active to an access token"
            ));
        }
        let fine = answer == verdict
            || (verdict == Verdict::OkOrRevoked
                && matches!(answer, Verdict::Ok | Verdict::Revoked));
        if !fine {
            return Err(format!(
                "verify s{i} token {k} (exp {exp}s, now {now}ms): model {verdict:?}, store {answer:?}"
            ));
        }
        Ok(())
    }

    /// After every step: each user's sessions, each session's newest access token, the bound on
    /// records held.
    async fn check_state(&mut self) -> Result<(), String> {
        let now = self.now();
        let l = self.model.limits;
        for u in 0..USERS {
            let listed = self
                .manager
                .sessions(&user_name(u))
                .await
                .map_err(|e| format!("sessions: {e:?}"))?;
            let expected = self.model.live_of(u, now);
            let listed_ids: Vec<SessionId> = listed.iter().map(|r| r.session_id).collect();
            let expected_ids: Vec<SessionId> =
                expected.iter().map(|&i| self.clients[i].sid).collect();
            if listed_ids != expected_ids {
                let name = |sid: &SessionId| {
                    self.clients
                        .iter()
                        .position(|c| c.sid == *sid)
                        .map_or_else(|| format!("{sid}"), |i| format!("s{i}"))
                };
                return Err(format!(
                    "sessions of user {u}: model {:?}, store {:?}",
                    expected.iter().map(|i| format!("s{i}")).collect::<Vec<_>>(),
                    listed_ids.iter().map(name).collect::<Vec<_>>()
                ));
            }
            for (record, &i) in listed.iter().zip(&expected) {
                let s = &self.model.sessions[i];
                let what = |field: &str| format!("s{i}.{field}");
                check_eq(
                    &what("user_id"),
                    record.user_id.as_str(),
                    user_name(u).as_str(),
                )?;
                check_eq(&what("created_at"), record.created_at, s.created_at)?;
                check_eq(
                    &what("last_active_at"),
                    record.last_active_at,
                    s.last_active_at,
                )?;
                check_eq(&what("expires_at"), record.expires_at, s.expires_at)?;
                check_eq(&what("generation"), record.generation, s.generation)?;
                check_eq(&what("rotated_at"), record.rotated_at, s.rotated_at)?;
                check_eq(
                    &what("refresh_expires_at"),
                    record.refresh_expires_at,
                    s.refresh_expires_at,
                )?;
                check_eq(&what("revoked_at"), record.revoked_at, None)?;
                check_eq(&what("purge_at"), record.purge_at, s.purge_at(&l))?;
            }
            if listed.len() > l.max {
                return Err(format!(
                    "user {u} has {} live sessions, over {}",
                    listed.len(),
                    l.max
                ));
            }
        }
        for i in 0..self.clients.len() {
            let k = self.clients[i].access.len() - 1;
            self.verify(i, k).await?;
            #[cfg(feature = "redis")]
            if self.model.sessions[i].tampered.is_some() {
                self.check_tampered(i).await?;
            }
        }
        // Tampered records stay until a script deletes them or their (clear) purge time.
        let slack = self.model.tampered_held();
        let bound = 2 * l.max + slack;
        let users: Vec<String> = (0..USERS).map(user_name).collect();
        let held = self.backend.held(&users).await;
        if held.total_records > USERS * 2 * l.max + slack {
            return Err(format!(
                "the store holds {} records for {USERS} users, over {USERS} x 2 x {} + {slack} tampered (held {:?})",
                held.total_records, l.max, held.per_user
            ));
        }
        for (tag, records, members) in &held.per_user {
            if *records > bound || *members > bound {
                return Err(format!(
                    "user {tag} holds {records} records and {members} index members, over 2 x {} + {slack} tampered",
                    l.max
                ));
            }
        }
        Ok(())
    }
}

fn check_eq<T: PartialEq + std::fmt::Debug>(what: &str, store: T, model: T) -> Result<(), String> {
    if store == model {
        Ok(())
    } else {
        Err(format!("{what}: store {store:?}, model {model:?}"))
    }
}

async fn run_case(kind: StoreKind, policy: Policy, case: &Case) -> Result<(), String> {
    let limits = Limits {
        policy,
        ..PROFILES[case.profile]
    };
    let start = kind.clock_start();
    let clock = ManualClock::new(start);
    let backend = Backend::open(kind, &limits).await;
    let manager = SessionManager::builder(backend.config.clone())
        .shared_store(backend.store.clone())
        .clock(clock.clone())
        .build()
        .map_err(|e| format!("config: {e}"))?;
    let mut run = Run {
        backend,
        manager,
        clock,
        start,
        model: Model::new(limits),
        clients: Vec::new(),
        successors: HashMap::new(),
        observer: None,
        stalled: None,
        log: String::new(),
    };
    let mut result = Ok(());
    for (n, op) in case.ops.iter().enumerate() {
        let _ = write!(run.log, "\n  {n:>3} t+{:>6} {op:?}", run.now() - run.start);
        let outcome = match run.step(op).await {
            Ok(()) => run.check_state().await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            result = Err(format!(
                "{} store, {limits:?}\nstep {n} ({op:?}) at t+{} ms: {e}\ntrace:{}",
                kind.name(),
                run.now() - run.start,
                run.log
            ));
            break;
        }
    }
    run.backend.cleanup().await;
    result
}

/// Runs the model cases for one store and policy; panics with the shrunk sequence on failure.
pub fn run(kind: StoreKind, policy: Policy, default_cases: u64) {
    let cases = env_number("TJS_MODEL_CASES", default_cases) as u32;
    let steps = env_number("TJS_MODEL_STEPS", 40) as usize;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // One database for all the cases of a PostgreSQL run, dropped when the run ends.
    #[cfg(feature = "postgres")]
    let _db = matches!(kind, StoreKind::Postgres | StoreKind::SealedPostgres)
        .then(|| crate::model::PgRun::start(&runtime));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4_096,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let ran = std::cell::Cell::new(0u64);
    let outcome = runner.run(&case(kind, steps), |case| {
        ran.set(ran.get() + 1);
        runtime
            .block_on(run_case(kind, policy, &case))
            .map_err(TestCaseError::fail)
    });
    eprintln!(
        "model [{} store, {policy:?} policy]: {cases} cases of up to {steps} steps passed{} in {:.1?} ({ran} runs with shrinking)",
        kind.name(),
        if outcome.is_ok() { "" } else { " NOT all" },
        started.elapsed(),
        ran = ran.get()
    );
    SEEN.with(|s| {
        let s = std::mem::take(&mut *s.borrow_mut());
        let line: Vec<String> = s.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        eprintln!(
            "  answers seen [{} {policy:?}]: {}",
            kind.name(),
            line.join(", ")
        );
    });
    match outcome {
        Ok(()) => {}
        Err(TestError::Fail(reason, case)) => {
            panic!(
                "minimal failing case: profile {} {:#?}\n{reason}",
                case.profile, case.ops
            )
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn model_memory_evict() {
    run(StoreKind::Memory, Policy::Evict, 512);
}

#[test]
fn model_memory_deny() {
    run(StoreKind::Memory, Policy::Deny, 128);
}

#[cfg(feature = "redis")]
#[test]
fn model_redis_evict() {
    run(StoreKind::Redis, Policy::Evict, 192);
}

#[cfg(feature = "redis")]
#[test]
fn model_redis_deny() {
    run(StoreKind::Redis, Policy::Deny, 64);
}

#[cfg(feature = "redis")]
#[test]
fn model_cluster_evict() {
    run(StoreKind::Cluster, Policy::Evict, 128);
}

#[cfg(feature = "redis")]
#[test]
fn model_sealed_redis_evict() {
    run(StoreKind::Sealed, Policy::Evict, 128);
}

/// Tampered records still count towards the limit by their clear times where a script decides
/// (admission): under `deny` that decides whether a login is refused.
#[cfg(feature = "redis")]
#[test]
fn model_sealed_redis_deny() {
    run(StoreKind::Sealed, Policy::Deny, 32);
}

#[cfg(feature = "postgres")]
#[test]
fn model_postgres_evict() {
    run(StoreKind::Postgres, Policy::Evict, 64);
}

#[cfg(feature = "postgres")]
#[test]
fn model_postgres_deny() {
    run(StoreKind::Postgres, Policy::Deny, 32);
}

#[cfg(feature = "postgres")]
#[test]
fn model_sealed_postgres_evict() {
    run(StoreKind::SealedPostgres, Policy::Evict, 32);
}
