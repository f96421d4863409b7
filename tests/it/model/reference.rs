//! SPEC §4 written again, plainly, as the reference the stores are checked against.
//!
//! Nothing here calls the crate's own rule functions (`decide_rotation`, `plan_admission`,
//! `purge_at`): a model that shared the code under test would agree with every bug in it.
//! Times are milliseconds on the test's manual clock. Sessions are numbered in creation order
//! (the harness maps each number to the real session id).
//!
//! Sealed runs also change records behind the crate's back ([`Model::tamper`]). A tampered
//! record is no session to every reader that opens its seal (lookup, listing, refresh): it is
//! `deleted` here, though never revoked here, so this instance's cache may still answer
//! "active" from before, as for a session ended by another instance. The scripts that walk a
//! user's index (admission, logout, logout-all) cannot open a seal: they read the clear times,
//! so there the record counts by what its clear fields say ([`Tampered`]) until one of them
//! deletes it.

/// What a login beyond the per-user limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Evict,
    Deny,
}

/// The settings the rules depend on, in milliseconds. `leeway` is whole seconds (the codec
/// checks `exp` in seconds).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub access: u64,
    pub leeway: u64,
    pub refresh: u64,
    pub session: u64,
    pub reuse: u64,
    pub max: usize,
    pub policy: Policy,
}

/// Why an operation was refused: one per `SessionError` variant the model can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    InvalidToken,
    TokenExpired,
    Revoked,
    SessionExpired,
    ReusedRetired,
    ReusedAncestor,
    LimitReached,
}

/// A successful refresh: the generation handed out and its refresh-token expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The presented token was current: a new generation.
    Rotated {
        generation: u64,
        refresh_expires_at: u64,
    },
    /// The immediate parent within the reuse interval: the current generation again.
    Grace {
        generation: u64,
        refresh_expires_at: u64,
    },
}

/// What `verify_access_token` must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Expired,
    Revoked,
    /// The token is in time and the session was not ended here, but it is no longer live
    /// (past its end or purge): the instance may still hold a fresh "active" answer in its
    /// revocation cache (real-time lifetime), or ask the store and hear "gone".
    OkOrRevoked,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user: usize,
    pub created_at: u64,
    pub last_active_at: u64,
    pub expires_at: u64,
    pub generation: u64,
    pub rotated_at: u64,
    pub refresh_expires_at: u64,
    /// The expiry written into the refresh token of each generation.
    pub token_expiry: Vec<u64>,
    /// Ended by logout, logout-all, eviction or reuse detection.
    pub ended: bool,
    /// Deleted from the store (every ended session, and an expired one that was logged out),
    /// or tampered with: no session to any reader that opens the seal.
    pub deleted: bool,
    /// Changed outside the crate (sealed runs), and what the index scripts still see of it.
    pub tampered: Option<Tampered>,
}

/// A record changed outside the crate: the clear times the index scripts read (they cannot
/// check them against the seal), and whether a script has deleted it yet.
#[derive(Debug, Clone, Copy)]
pub struct Tampered {
    pub clear_expires_at: u64,
    pub clear_purge_at: u64,
    /// Not deleted by an eviction, logout or logout-all yet.
    pub in_store: bool,
}

impl Session {
    /// The last instant the store keeps the record: while a refresh token or an access token
    /// issued at the last activity can be presented, never beyond the end plus that retention.
    pub fn purge_at(&self, l: &Limits) -> u64 {
        let retention = l.access + l.leeway;
        self.refresh_expires_at
            .max(self.last_active_at + retention)
            .min(self.expires_at + retention)
    }

    pub fn present(&self, now: u64, l: &Limits) -> bool {
        !self.deleted && now <= self.purge_at(l)
    }

    pub fn live(&self, now: u64, l: &Limits) -> bool {
        self.present(now, l) && now < self.expires_at
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub limits: Limits,
    pub sessions: Vec<Session>,
    /// Sessions this instance's revocation cache has been told are revoked.
    pub revoked_here: Vec<bool>,
}

impl Model {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            sessions: Vec::new(),
            revoked_here: Vec::new(),
        }
    }

    fn refresh_expiry(&self, issued: u64, expires_at: u64) -> u64 {
        (issued + self.limits.refresh).min(expires_at)
    }

    /// The `exp` (seconds) of an access token issued at `now` for a session ending at
    /// `expires_at`: the access lifetime, cut at the session's end, never before `iat`.
    pub fn access_exp(&self, now: u64, expires_at: u64) -> u64 {
        ((now + self.limits.access) / 1000)
            .min(expires_at / 1000)
            .max(now / 1000)
    }

    /// A user's live sessions, in creation order.
    pub fn live_of(&self, user: usize, now: u64) -> Vec<usize> {
        (0..self.sessions.len())
            .filter(|&i| self.sessions[i].user == user && self.sessions[i].live(now, &self.limits))
            .collect()
    }

    /// Whether the scripts that walk a user's index count session `i` as live: by the model's
    /// times, or for a tampered record by its clear times.
    fn counted(&self, i: usize, now: u64) -> bool {
        let s = &self.sessions[i];
        match s.tampered {
            None => s.live(now, &self.limits),
            Some(t) => t.in_store && now < t.clear_expires_at && now <= t.clear_purge_at,
        }
    }

    /// The sessions of `user` the index scripts count as live, in creation order.
    fn counted_of(&self, user: usize, now: u64) -> Vec<usize> {
        (0..self.sessions.len())
            .filter(|&i| self.sessions[i].user == user && self.counted(i, now))
            .collect()
    }

    /// Deletes the record of session `i`, tampered with or not.
    fn forget(&mut self, i: usize) {
        let s = &mut self.sessions[i];
        s.deleted = true;
        if let Some(t) = &mut s.tampered {
            t.in_store = false;
        }
    }

    fn end(&mut self, i: usize) {
        self.sessions[i].ended = true;
        self.forget(i);
        self.revoked_here[i] = true;
    }

    /// Session `i`'s record was changed outside the crate (it was live): from now on it is no
    /// session to every reader that opens the seal, and this instance was told nothing. The
    /// index scripts see `clear_expires_at` and `clear_purge_at`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn tamper(&mut self, i: usize, clear_expires_at: u64, clear_purge_at: u64) {
        let s = &mut self.sessions[i];
        assert!(
            !s.deleted && s.tampered.is_none(),
            "only a live record is tampered with"
        );
        s.deleted = true;
        s.tampered = Some(Tampered {
            clear_expires_at,
            clear_purge_at,
            in_store: true,
        });
    }

    /// The sessions whose tampered records are still in the store.
    pub fn tampered_held(&self) -> usize {
        self.sessions
            .iter()
            .filter(|s| s.tampered.is_some_and(|t| t.in_store))
            .count()
    }

    /// Login. On success the new session's number and the sessions evicted for it.
    pub fn create(&mut self, user: usize, now: u64) -> Result<(usize, Vec<usize>), Refusal> {
        let mut live = self.counted_of(user, now);
        let mut evicted = Vec::new();
        if live.len() >= self.limits.max {
            if self.limits.policy == Policy::Deny {
                return Err(Refusal::LimitReached);
            }
            // Least recently active first; the earlier created first on a tie.
            live.sort_by_key(|&i| {
                (
                    self.sessions[i].last_active_at,
                    self.sessions[i].created_at,
                    i,
                )
            });
            evicted = live[..live.len() + 1 - self.limits.max].to_vec();
            for &i in &evicted {
                self.end(i);
            }
        }
        let expires_at = now + self.limits.session;
        let refresh_expires_at = self.refresh_expiry(now, expires_at);
        self.sessions.push(Session {
            user,
            created_at: now,
            last_active_at: now,
            expires_at,
            generation: 0,
            rotated_at: now,
            refresh_expires_at,
            token_expiry: vec![refresh_expires_at],
            ended: false,
            deleted: false,
            tampered: None,
        });
        self.revoked_here.push(false);
        Ok((self.sessions.len() - 1, evicted))
    }

    /// Presents the refresh token of generation `generation` of session `i`.
    pub fn refresh(&mut self, i: usize, generation: u64, now: u64) -> Result<Refreshed, Refusal> {
        let l = self.limits;
        let s = &self.sessions[i];
        let token_expiry = s.token_expiry[generation as usize];
        if !s.present(now, &l) {
            return Err(if now >= token_expiry {
                Refusal::TokenExpired
            } else {
                Refusal::Revoked
            });
        }
        if now >= s.expires_at {
            return Err(Refusal::SessionExpired);
        }
        if generation == s.generation {
            if now >= s.refresh_expires_at {
                return Err(Refusal::TokenExpired);
            }
            let refresh_expires_at = self.refresh_expiry(now, s.expires_at);
            let s = &mut self.sessions[i];
            s.generation += 1;
            s.rotated_at = now;
            s.last_active_at = now;
            s.refresh_expires_at = refresh_expires_at;
            s.token_expiry.push(refresh_expires_at);
            return Ok(Refreshed::Rotated {
                generation: s.generation,
                refresh_expires_at,
            });
        }
        assert!(
            generation < s.generation,
            "the harness only holds issued tokens"
        );
        if generation + 1 == s.generation {
            if now < s.rotated_at + l.reuse {
                return Ok(Refreshed::Grace {
                    generation: s.generation,
                    refresh_expires_at: s.refresh_expires_at,
                });
            }
            self.end(i);
            return Err(Refusal::ReusedRetired);
        }
        self.end(i);
        Err(Refusal::ReusedAncestor)
    }

    /// Logout of one session: whether it was live. The manager tells its cache in any case.
    pub fn revoke(&mut self, i: usize, now: u64) -> bool {
        let live = self.counted(i, now);
        if live {
            self.end(i);
        }
        self.forget(i);
        self.revoked_here[i] = true;
        live
    }

    /// Logout everywhere: how many sessions were live. Every record of the user goes.
    pub fn revoke_all(&mut self, user: usize, now: u64) -> usize {
        let live = self.counted_of(user, now);
        for &i in &live {
            self.end(i);
        }
        for i in 0..self.sessions.len() {
            if self.sessions[i].user == user {
                self.forget(i);
            }
        }
        live.len()
    }

    /// What verifying an access token with `exp` (seconds) of session `i` must answer.
    pub fn verify(&self, i: usize, exp: u64, now: u64) -> Verdict {
        if now / 1000 >= exp + self.limits.leeway / 1000 {
            return Verdict::Expired;
        }
        if self.revoked_here[i] {
            return Verdict::Revoked;
        }
        if self.sessions[i].live(now, &self.limits) {
            Verdict::Ok
        } else {
            Verdict::OkOrRevoked
        }
    }
}
