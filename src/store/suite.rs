//! The shared store test suite (feature `test-util`): the rules of [`SessionStore`] as tests,
//! which the crate's own stores (memory, Redis, Redis Cluster, PostgreSQL, plain and sealed)
//! pass, and which a store written elsewhere runs with one line:
//!
//! ```text
//! // tests/store.rs of your crate, with `tower-jwt-session = { features = ["test-util"] }`
//! // among its dev-dependencies:
//! tower_jwt_session::store_suite!(MyStore::connect("…").await);
//! ```
//!
//! [`store_suite!`](crate::store_suite) expands to one `#[test]` per rule, each on a runtime
//! of its own (the races on four worker threads); the expression making the store is evaluated
//! in each, in an async context. `tests/kit_store.rs` in this crate's repository is a
//! `HashMap` store written against the public API alone that passes it. The rules themselves
//! ([`decide_rotation`], [`apply_rotation`], [`plan_admission`], [`purge_at`]) are public in
//! [`store`](crate::store), so a store need not re-derive them from prose.

use std::sync::Arc;

use super::*;
use crate::config::SessionLimitPolicy;

/// The lifetimes the suite runs with: refresh tokens of 30 s, a 1 s reuse interval, access
/// tokens kept 10 s.
pub fn lifetimes() -> Lifetimes {
    Lifetimes {
        refresh_ttl: 30_000,
        reuse_interval: 1_000,
        access_retention: 10_000,
    }
}

/// A per-user limit of `max` sessions, evicting.
pub fn limit(max: usize) -> SessionLimit {
    SessionLimit {
        max,
        policy: SessionLimitPolicy::Evict,
    }
}

/// A fresh record for `user` created at `now`, ending 100 s later.
pub fn record(user: &str, now: u64, l: &Lifetimes) -> SessionRecord {
    let expires_at = now + 100_000;
    let refresh_expires_at = now + l.refresh_ttl;
    SessionRecord {
        session_id: SessionId::random(),
        user_id: user.to_owned(),
        roles: vec!["user".to_owned()],
        created_at: now,
        last_active_at: now,
        expires_at,
        generation: 0,
        rotated_at: now,
        refresh_expires_at,
        revoked_at: None,
        purge_at: purge_at(expires_at, refresh_expires_at, now, l),
        device: DeviceInfo::new("Firefox on Linux", Some("203.0.113.0/24")),
        claims: crate::session::CustomClaims::from_json(r#"{"tenant":"acme"}"#).unwrap(),
        auth: AuthContext {
            auth_time: now.saturating_sub(1_000),
            amr: vec!["pwd".to_owned()],
            acr: Some("urn:example:aal1".to_owned()),
            // Bound to a DPoP key: every store keeps the binding (RFC 7638's example).
            jkt: Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".to_owned()),
        },
    }
}

/// As [`record`], with an id made by `store` (the Redis store routes by it).
pub fn record_for<S: SessionStore + ?Sized>(
    store: &S,
    user: &str,
    now: u64,
    l: &Lifetimes,
) -> SessionRecord {
    let mut r = record(user, now, l);
    r.session_id = store.new_session_id(user);
    r
}

fn rotate_req(sid: SessionId, generation: u64, now: u64) -> RotateRequest {
    RotateRequest {
        session_id: sid,
        generation,
        now,
        lifetimes: lifetimes(),
        update: None,
        deadline: None,
    }
}

async fn created<S: SessionStore + ?Sized>(store: &S, user: &str, now: u64) -> SessionRecord {
    let r = record_for(store, user, now, &lifetimes());
    let out = store
        .create(r.clone(), limit(10), &lifetimes(), now)
        .await
        .unwrap();
    assert_eq!(out, CreateOutcome::Created { evicted: vec![] });
    r
}

/// Suite times are offsets from one base an hour ahead of the moment the suite first ran:
/// stores that hand expiry to their backend (Redis `PEXPIREAT`) must keep the records however
/// late in a slow test run a test starts (a base of "now" let Redis expire a late test's
/// records before it read them).
fn at(offset_ms: u64) -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            + 3_600_000
    }) + offset_ms
}

/// Records are equal; the purge time may be read back from a key's remaining lifetime, so it
/// may differ by a few milliseconds.
fn assert_same(got: &SessionRecord, want: &SessionRecord) {
    let mut normalized = got.clone();
    assert!(
        got.purge_at.abs_diff(want.purge_at) <= 5,
        "purge {} vs {}",
        got.purge_at,
        want.purge_at
    );
    normalized.purge_at = want.purge_at;
    assert_eq!(&normalized, want);
}

fn unique(user: &str) -> String {
    format!("{user}-{}", SessionId::random())
}

/// The rule that create get and list.
pub async fn create_get_and_list<S: SessionStore + ?Sized>(store: &S) {
    let user = unique("alice");
    let a = created(store, &user, at(1_000)).await;
    let b = created(store, &user, at(2_000)).await;
    assert_same(&store.get(a.session_id).await.unwrap().expect("stored"), &a);
    let list = store.list(&user, at(2_500)).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_same(&list[0], &a);
    assert_same(&list[1], &b);
    assert!(
        store
            .list(&unique("nobody"), at(2_500))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get(SessionId::random()).await.unwrap(), None);
    store.ping().await.unwrap();
}

/// The rule that rotation follows the rules.
pub async fn rotation_follows_the_rules<S: SessionStore + ?Sized>(store: &S) {
    let r = created(store, &unique("bob"), at(1_000)).await;
    let sid = r.session_id;

    let RotateOutcome::Rotated(after) = store.rotate(rotate_req(sid, 0, at(2_000))).await.unwrap()
    else {
        panic!("current token rotates");
    };
    assert_eq!(
        (after.generation, after.rotated_at, after.last_active_at),
        (1, at(2_000), at(2_000))
    );
    assert_eq!(after.refresh_expires_at, at(32_000));

    // The immediate parent within the grace interval yields the current generation, unchanged.
    let RotateOutcome::Grace(same) = store.rotate(rotate_req(sid, 0, at(2_999))).await.unwrap()
    else {
        panic!("grace");
    };
    assert_eq!(same.generation, 1);

    // A generation never issued.
    assert_eq!(
        store.rotate(rotate_req(sid, 7, at(3_000))).await.unwrap(),
        RotateOutcome::NotFound
    );
    assert_eq!(
        store
            .rotate(rotate_req(SessionId::random(), 0, at(3_000)))
            .await
            .unwrap(),
        RotateOutcome::NotFound
    );

    // Rotate again, then the grandparent is theft and revokes the session.
    assert!(matches!(
        store.rotate(rotate_req(sid, 1, at(3_000))).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
    let RotateOutcome::Reused(revoked, kind) =
        store.rotate(rotate_req(sid, 0, at(3_001))).await.unwrap()
    else {
        panic!("grandparent is reuse");
    };
    assert_eq!(kind, ReuseKind::Ancestor);
    assert_eq!(revoked.revoked_at, Some(at(3_001)));
    // The session is gone at once: the current token no longer works either.
    assert_eq!(store.get(sid).await.unwrap(), None);
    assert_eq!(
        store.rotate(rotate_req(sid, 2, at(3_002))).await.unwrap(),
        RotateOutcome::NotFound
    );
    assert!(store.list(&r.user_id, at(3_002)).await.unwrap().is_empty());
}

/// The rule that parent after the interval is theft.
pub async fn parent_after_the_interval_is_theft<S: SessionStore + ?Sized>(store: &S) {
    let r = created(store, &unique("carol"), at(1_000)).await;
    assert!(matches!(
        store
            .rotate(rotate_req(r.session_id, 0, at(2_000)))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    let out = store
        .rotate(rotate_req(r.session_id, 0, at(3_000)))
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            RotateOutcome::Reused(_, ReuseKind::RetiredAfterInterval)
        ),
        "{out:?}"
    );
    assert_eq!(
        store.get(r.session_id).await.unwrap(),
        None,
        "deleted at once"
    );
}

/// A rotation that reaches the store after its caller's deadline, by the store's own clock,
/// changes nothing (every outcome, the reuse that would revoke included): the caller has
/// answered 503 and its client still holds the token, which must keep working.
pub async fn a_rotation_past_its_deadline_changes_nothing<S: SessionStore + ?Sized>(store: &S) {
    let real_now = crate::clock::unix_ms(std::time::SystemTime::now());
    let r = created(store, &unique("stalled"), at(1_000)).await;
    let sid = r.session_id;
    let late = |generation, now| RotateRequest {
        deadline: Some(real_now - 1_000),
        ..rotate_req(sid, generation, now)
    };
    // The current token, late: refused, not rotated.
    let out = store.rotate(late(0, at(2_000))).await;
    assert!(matches!(out, Err(StoreError::DeadlinePassed)), "{out:?}");
    let kept = store.get(sid).await.unwrap().expect("still there");
    assert_eq!((kept.generation, kept.rotated_at), (0, at(1_000)));
    // Long after the grace interval, the client's retry with the token it holds rotates.
    let in_time = RotateRequest {
        deadline: Some(real_now + 60_000),
        ..rotate_req(sid, 0, at(5_000))
    };
    assert!(matches!(
        store.rotate(in_time).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
    // A retired token, late: the reuse is not acted on either (it is, in time).
    let out = store.rotate(late(0, at(7_000))).await;
    assert!(matches!(out, Err(StoreError::DeadlinePassed)), "{out:?}");
    assert_eq!(store.get(sid).await.unwrap().map(|r| r.generation), Some(1));
    let out = store.rotate(rotate_req(sid, 0, at(7_000))).await.unwrap();
    assert!(matches!(out, RotateOutcome::Reused(..)), "{out:?}");
}

/// The rule that expiries.
pub async fn expiries<S: SessionStore + ?Sized>(store: &S) {
    let r = created(store, &unique("dave"), at(1_000)).await;
    // The refresh token expires 30 s after login.
    assert_eq!(
        store
            .rotate(rotate_req(r.session_id, 0, at(31_000)))
            .await
            .unwrap(),
        RotateOutcome::TokenExpired
    );

    let r = created(store, &unique("erin"), at(1_000)).await;
    let mut now = at(1_000);
    let mut generation = 0;
    // Refreshing keeps it alive, but never past the absolute end (101 s).
    while now < at(100_000) {
        now += 20_000;
        let out = store
            .rotate(rotate_req(r.session_id, generation, now.min(at(100_999))))
            .await
            .unwrap();
        match out {
            RotateOutcome::Rotated(after) => {
                assert!(after.refresh_expires_at <= r.expires_at);
                generation += 1;
            }
            RotateOutcome::SessionExpired => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        store
            .rotate(rotate_req(r.session_id, generation, at(101_000)))
            .await
            .unwrap(),
        RotateOutcome::SessionExpired
    );
}

/// The rule that revoke and revoke all.
pub async fn revoke_and_revoke_all<S: SessionStore + ?Sized>(store: &S) {
    let user = unique("frank");
    let a = created(store, &user, at(1_000)).await;
    let b = created(store, &user, at(1_100)).await;
    let c = created(store, &user, at(1_200)).await;
    assert!(store.revoke(a.session_id, at(2_000)).await.unwrap());
    assert!(
        !store.revoke(a.session_id, at(2_001)).await.unwrap(),
        "already revoked"
    );
    assert!(!store.revoke(SessionId::random(), at(2_001)).await.unwrap());
    assert_eq!(
        store
            .rotate(rotate_req(a.session_id, 0, at(2_002)))
            .await
            .unwrap(),
        RotateOutcome::NotFound
    );
    assert_eq!(store.get(a.session_id).await.unwrap(), None);
    let mut all = store.revoke_all(&user, at(3_000)).await.unwrap();
    all.sort();
    let mut expected = vec![b.session_id, c.session_id];
    expected.sort();
    assert_eq!(all, expected);
    assert!(store.list(&user, at(3_000)).await.unwrap().is_empty());
    assert_eq!(store.get(b.session_id).await.unwrap(), None);
    assert_eq!(store.get(c.session_id).await.unwrap(), None);
    assert!(store.revoke_all(&user, at(3_001)).await.unwrap().is_empty());
}

/// The device metadata is kept as created through rotation, reads and listing; a record
/// without any reads back as no device.
pub async fn device_metadata_round_trips<S: SessionStore + ?Sized>(store: &S) {
    let user = unique("dora");
    let r = created(store, &user, at(1_000)).await;
    assert_eq!(r.device.label(), "Firefox on Linux");
    let Ok(RotateOutcome::Rotated(after)) =
        store.rotate(rotate_req(r.session_id, 0, at(1_500))).await
    else {
        panic!("rotation refused");
    };
    assert_eq!(after.device, r.device);
    assert_eq!(
        after.last_active_at,
        at(1_500),
        "a refresh stamps the last activity"
    );
    let stored = store.get(r.session_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.device, stored.last_active_at),
        (r.device.clone(), at(1_500))
    );
    let mut bare = record_for(store, &user, at(1_600), &lifetimes());
    bare.device = DeviceInfo::default();
    store
        .create(bare.clone(), limit(10), &lifetimes(), at(1_600))
        .await
        .unwrap();
    let long = DeviceInfo::new(&"é".repeat(40), Some("2001:db8:abcd::/48"));
    let mut wide = record_for(store, &user, at(1_700), &lifetimes());
    wide.device = long.clone();
    store
        .create(wide.clone(), limit(10), &lifetimes(), at(1_700))
        .await
        .unwrap();
    let list = store.list(&user, at(1_800)).await.unwrap();
    let devices: Vec<&DeviceInfo> = list.iter().map(|r| &r.device).collect();
    assert_eq!(devices, [&r.device, &DeviceInfo::default(), &long]);
}

/// Custom claims are kept through creation, reads, listing and a plain rotation; a rotation
/// with an update stores its roles and claims in the same step (a grace answer for the retired
/// token hands out the same ones, and ignores an update of its own); claims longer than one
/// clear hash field, with multi-byte characters, come back whole; emptied claims read as none.
pub async fn claims_round_trip_and_rotation_updates<S: SessionStore + ?Sized>(store: &S) {
    use crate::session::CustomClaims;
    use crate::store::SessionUpdate;
    let user = unique("cleo");
    let big = CustomClaims::new(&serde_json::json!({
        "tenant": "acme",
        "note": "é".repeat(60),
        "perms": ["read", "write", "admin", "billing"],
        "n": 12345,
    }))
    .unwrap();
    assert!(big.len() > 150, "{}", big.len());
    let mut r = record_for(store, &user, at(1_000), &lifetimes());
    r.claims = big.clone();
    store
        .create(r.clone(), limit(10), &lifetimes(), at(1_000))
        .await
        .unwrap();
    assert_eq!(store.get(r.session_id).await.unwrap().unwrap().claims, big);
    assert_eq!(store.list(&user, at(1_000)).await.unwrap()[0].claims, big);
    let Ok(RotateOutcome::Rotated(kept)) =
        store.rotate(rotate_req(r.session_id, 0, at(1_100))).await
    else {
        panic!("rotation refused");
    };
    assert_eq!((&kept.claims, &kept.roles), (&big, &r.roles));
    let fresh = CustomClaims::new(&serde_json::json!({ "tenant": "globex" })).unwrap();
    let update = SessionUpdate {
        roles: vec!["viewer".to_owned()],
        claims: fresh.clone(),
        auth: None,
    };
    let mut req = rotate_req(r.session_id, 1, at(1_200));
    req.update = Some(update.clone());
    let Ok(RotateOutcome::Rotated(updated)) = store.rotate(req).await else {
        panic!("rotation refused");
    };
    assert_eq!((&updated.claims, &updated.roles), (&fresh, &update.roles));
    let stored = store.get(r.session_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.claims, stored.roles, stored.generation),
        (fresh.clone(), update.roles.clone(), 2)
    );
    // The retired token within the interval: the successor as stored, whatever it asks.
    let mut racing = rotate_req(r.session_id, 1, at(1_300));
    racing.update = Some(SessionUpdate {
        roles: vec!["admin".to_owned()],
        claims: big.clone(),
        auth: None,
    });
    let Ok(RotateOutcome::Grace(grace)) = store.rotate(racing).await else {
        panic!("no grace");
    };
    assert_eq!(
        (&grace.claims, &grace.roles, grace.generation),
        (&fresh, &update.roles, 2)
    );
    let stored = store.get(r.session_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.claims, stored.roles),
        (fresh.clone(), update.roles.clone())
    );
    // Emptied: no claims left over from before (a shorter text drops the old parts too).
    let mut req = rotate_req(r.session_id, 2, at(1_400));
    req.update = Some(SessionUpdate {
        roles: Vec::new(),
        claims: CustomClaims::default(),
        auth: None,
    });
    assert!(matches!(
        store.rotate(req).await,
        Ok(RotateOutcome::Rotated(_))
    ));
    let stored = store.get(r.session_id).await.unwrap().unwrap();
    assert!(
        stored.claims.is_empty() && stored.roles.is_empty(),
        "{stored:?}"
    );
    // Long again after short: every part is the new text's.
    let mut req = rotate_req(r.session_id, 3, at(1_500));
    req.update = Some(SessionUpdate {
        roles: Vec::new(),
        claims: big.clone(),
        auth: None,
    });
    assert!(matches!(
        store.rotate(req).await,
        Ok(RotateOutcome::Rotated(_))
    ));
    assert_eq!(store.get(r.session_id).await.unwrap().unwrap().claims, big);
}

/// The authentication context round-trips, survives a refresh (with or without an update of
/// roles and claims), and is replaced only by a rotation that carries a new one; such a
/// rotation at a stale generation is a lost race: `NotFound`, nothing changed, never a grace
/// answer or a reuse revocation.
pub async fn auth_context_round_trips_and_moves_only_by_reauthentication<
    S: SessionStore + ?Sized,
>(
    store: &S,
) {
    let user = unique("sudo");
    let r = created(store, &user, at(1_000)).await;
    let sid = r.session_id;
    assert_eq!(store.get(sid).await.unwrap().unwrap().auth, r.auth);
    assert_eq!(store.list(&user, at(1_000)).await.unwrap()[0].auth, r.auth);
    // A refresh keeps it, with or without a hook's update.
    let Ok(RotateOutcome::Rotated(kept)) = store.rotate(rotate_req(sid, 0, at(1_100))).await else {
        panic!("rotation refused");
    };
    assert_eq!(kept.auth, r.auth);
    let mut req = rotate_req(sid, 1, at(1_200));
    req.update = Some(SessionUpdate {
        roles: r.roles.clone(),
        claims: r.claims.clone(),
        auth: None,
    });
    let Ok(RotateOutcome::Rotated(kept)) = store.rotate(req).await else {
        panic!("rotation refused");
    };
    assert_eq!(kept.auth, r.auth);
    assert_eq!(store.get(sid).await.unwrap().unwrap().auth, r.auth);
    // A re-authentication replaces it.
    let stronger = AuthContext {
        auth_time: at(1_300),
        amr: vec!["pwd".to_owned(), "otp".to_owned()],
        acr: Some("urn:example:aal2".to_owned()),
        jkt: r.auth.jkt.clone(),
    };
    let reauth = |generation, now, auth: &AuthContext| {
        let mut req = rotate_req(sid, generation, now);
        req.update = Some(SessionUpdate {
            roles: r.roles.clone(),
            claims: r.claims.clone(),
            auth: Some(auth.clone()),
        });
        req
    };
    let Ok(RotateOutcome::Rotated(moved)) = store.rotate(reauth(2, at(1_300), &stronger)).await
    else {
        panic!("re-authentication refused");
    };
    assert_eq!(
        (moved.auth.clone(), moved.generation),
        (stronger.clone(), 3)
    );
    let stored = store.get(sid).await.unwrap().unwrap();
    assert_eq!((stored.auth, stored.generation), (stronger.clone(), 3));
    // Stale: the parent within the interval and an ancestor long after change nothing.
    let weaker = AuthContext::at(at(1_400));
    for (generation, now) in [(2, at(1_400)), (0, at(9_000))] {
        assert_eq!(
            store
                .rotate(reauth(generation, now, &weaker))
                .await
                .unwrap(),
            RotateOutcome::NotFound
        );
        let stored = store.get(sid).await.unwrap().unwrap();
        assert_eq!(
            (stored.auth, stored.generation, stored.revoked_at),
            (stronger.clone(), 3, None)
        );
    }
    // Emptied methods and class: none left over.
    let plain = AuthContext::at(at(9_100));
    assert!(matches!(
        store.rotate(reauth(3, at(9_100), &plain)).await,
        Ok(RotateOutcome::Rotated(_))
    ));
    assert_eq!(store.get(sid).await.unwrap().unwrap().auth, plain);
}

/// Revoking all of a user's sessions but one leaves that one, and other users', alone.
pub async fn revoke_all_except_keeps_one<S: SessionStore + ?Sized>(store: &S) {
    let user = unique("olga");
    let a = created(store, &user, at(1_000)).await;
    let b = created(store, &user, at(1_100)).await;
    let c = created(store, &user, at(1_200)).await;
    let other = created(store, &unique("petra"), at(1_300)).await;
    let mut revoked = store
        .revoke_all_except(&user, b.session_id, at(2_000))
        .await
        .unwrap();
    revoked.sort();
    let mut expected = vec![a.session_id, c.session_id];
    expected.sort();
    assert_eq!(revoked, expected);
    let list = store.list(&user, at(2_001)).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].session_id, b.session_id);
    assert!(matches!(
        store
            .rotate(rotate_req(b.session_id, 0, at(2_002)))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    for ended in [a.session_id, c.session_id] {
        assert_eq!(store.get(ended).await.unwrap(), None);
        assert_eq!(
            store.rotate(rotate_req(ended, 0, at(2_003))).await.unwrap(),
            RotateOutcome::NotFound
        );
    }
    assert!(store.get(other.session_id).await.unwrap().is_some());
    assert!(
        store
            .revoke_all_except(&user, b.session_id, at(2_004))
            .await
            .unwrap()
            .is_empty()
    );
    // The kept session is still indexed: logout-all finds it.
    assert_eq!(
        store.revoke_all(&user, at(2_005)).await.unwrap(),
        vec![b.session_id]
    );
}

/// The rule that limit evicts the least recently active.
pub async fn limit_evicts_the_least_recently_active<S: SessionStore + ?Sized>(store: &S) {
    let user = unique("grace");
    let l = lifetimes();
    let first = record_for(store, &user, at(1_000), &l);
    let second = record_for(store, &user, at(1_100), &l);
    let third = record_for(store, &user, at(1_200), &l);
    for r in [&first, &second, &third] {
        assert!(matches!(
            store
                .create(r.clone(), limit(3), &lifetimes(), r.created_at)
                .await
                .unwrap(),
            CreateOutcome::Created { .. }
        ));
    }
    // Refreshing the first makes the second the least recently active.
    assert!(matches!(
        store
            .rotate(rotate_req(first.session_id, 0, at(1_500)))
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    let fourth = record_for(store, &user, at(2_000), &l);
    let out = store
        .create(fourth.clone(), limit(3), &lifetimes(), at(2_000))
        .await
        .unwrap();
    assert_eq!(
        out,
        CreateOutcome::Created {
            evicted: vec![second.session_id]
        }
    );
    let live: Vec<SessionId> = store
        .list(&user, at(2_000))
        .await
        .unwrap()
        .iter()
        .map(|r| r.session_id)
        .collect();
    assert_eq!(
        live,
        vec![first.session_id, third.session_id, fourth.session_id]
    );
    assert_eq!(
        store
            .rotate(rotate_req(second.session_id, 0, at(2_001)))
            .await
            .unwrap(),
        RotateOutcome::NotFound
    );
    assert_eq!(store.get(second.session_id).await.unwrap(), None);
}

/// Every way a session ends deletes it at once, so a user with a long history holds no more
/// than a user with a short one (bounded by the limit plus a small tail).
pub async fn ended_sessions_are_deleted_at_once<S: SessionStore + ?Sized>(store: &S) {
    let user = unique("judy");
    let l = lifetimes();
    let mut ended = Vec::new();
    let mut now = at(1_000);
    for i in 0..60u64 {
        now += 1;
        let r = record_for(store, &user, now, &l);
        let CreateOutcome::Created { evicted } =
            store.create(r.clone(), limit(3), &l, now).await.unwrap()
        else {
            panic!("evict policy");
        };
        ended.extend(evicted);
        match i % 4 {
            0 => {
                assert!(store.revoke(r.session_id, now).await.unwrap());
                ended.push(r.session_id);
            }
            1 => {
                // Rotate twice, then present the grandparent: reuse ends it.
                for generation in 0..2 {
                    assert!(matches!(
                        store
                            .rotate(rotate_req(r.session_id, generation, now))
                            .await
                            .unwrap(),
                        RotateOutcome::Rotated(_)
                    ));
                }
                assert!(matches!(
                    store
                        .rotate(rotate_req(r.session_id, 0, now))
                        .await
                        .unwrap(),
                    RotateOutcome::Reused(..)
                ));
                ended.push(r.session_id);
            }
            _ => {}
        }
        assert!(store.list(&user, now).await.unwrap().len() <= 3);
    }
    for sid in &ended {
        assert_eq!(
            store.get(*sid).await.unwrap(),
            None,
            "ended session {sid} kept"
        );
    }
    let all = store.revoke_all(&user, now).await.unwrap();
    assert!(all.len() <= 3);
    for sid in all {
        assert_eq!(store.get(sid).await.unwrap(), None);
    }
}

/// The rule that limit denies.
pub async fn limit_denies<S: SessionStore + ?Sized>(store: &S) {
    let user = unique("heidi");
    let l = lifetimes();
    let deny = SessionLimit {
        max: 2,
        policy: SessionLimitPolicy::Deny,
    };
    for now in [at(1_000), at(1_100)] {
        assert!(matches!(
            store
                .create(record_for(store, &user, now, &l), deny, &lifetimes(), now)
                .await
                .unwrap(),
            CreateOutcome::Created { .. }
        ));
    }
    let denied = record_for(store, &user, at(1_200), &l);
    assert_eq!(
        store
            .create(denied.clone(), deny, &lifetimes(), at(1_200))
            .await
            .unwrap(),
        CreateOutcome::LimitReached
    );
    assert_eq!(
        store.get(denied.session_id).await.unwrap(),
        None,
        "nothing stored on deny"
    );
    assert_eq!(store.list(&user, at(1_200)).await.unwrap().len(), 2);
    // Revoking one makes room.
    let one = store.list(&user, at(1_300)).await.unwrap()[0].session_id;
    store.revoke(one, at(1_300)).await.unwrap();
    assert!(matches!(
        store
            .create(
                record_for(store, &user, at(1_400), &l),
                deny,
                &lifetimes(),
                at(1_400)
            )
            .await
            .unwrap(),
        CreateOutcome::Created { .. }
    ));
}

/// 64 concurrent refreshes of one token agree on one successor.
pub async fn concurrent_rotations_agree<S: SessionStore + ?Sized>(store: Arc<S>) {
    let r = created(&*store, &unique("ivan"), at(1_000)).await;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = store.clone();
        let sid = r.session_id;
        tasks.push(tokio::spawn(async move {
            store.rotate(rotate_req(sid, 0, at(1_500))).await.unwrap()
        }));
    }
    let (mut rotated, mut grace) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            RotateOutcome::Rotated(after) => {
                rotated += 1;
                assert_eq!(after.generation, 1);
            }
            RotateOutcome::Grace(after) => {
                grace += 1;
                assert_eq!(after.generation, 1);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((rotated, grace), (1, 63));
    let after = store.get(r.session_id).await.unwrap().unwrap();
    assert_eq!((after.generation, after.revoked_at), (1, None));
}

/// A revocation racing a refresh of the same session: whichever runs first, the session ends
/// and stays ended (the refresh never brings it back).
pub async fn revoke_racing_rotation_never_resurrects<S: SessionStore + ?Sized>(store: Arc<S>) {
    let user = unique("rita");
    for round in 0..16u64 {
        let r = created(&*store, &user, at(1_000 + round)).await;
        let sid = r.session_id;
        let rotating = {
            let store = store.clone();
            tokio::spawn(async move { store.rotate(rotate_req(sid, 0, at(1_500))).await })
        };
        // Even rounds end it alone (DELETE sessions/{id}), odd ones with the user's others.
        let revoking = {
            let (store, user) = (store.clone(), user.clone());
            tokio::spawn(async move {
                if round % 2 == 0 {
                    let live = store.revoke(sid, at(1_500)).await?;
                    Ok(if live { vec![sid] } else { vec![] })
                } else {
                    store
                        .revoke_all_except(&user, SessionId::random(), at(1_500))
                        .await
                }
            })
        };
        let (rotated, revoked) = (rotating.await.unwrap().unwrap(), revoking.await.unwrap());
        let revoked = revoked.unwrap();
        assert!(
            matches!(rotated, RotateOutcome::Rotated(_) | RotateOutcome::NotFound),
            "{rotated:?}"
        );
        assert!(revoked.is_empty() || revoked == [sid], "{revoked:?}");
        assert_eq!(store.get(sid).await.unwrap(), None, "round {round}");
        for generation in [0, 1] {
            assert_eq!(
                store
                    .rotate(rotate_req(sid, generation, at(1_600)))
                    .await
                    .unwrap(),
                RotateOutcome::NotFound
            );
        }
        assert!(store.list(&user, at(1_600)).await.unwrap().is_empty());
    }
}

/// Runs a suite test's future on a runtime of its own: current-thread, or four workers for the
/// races. Used by [`store_suite!`](crate::store_suite).
pub fn run<F: std::future::Future<Output = ()>>(workers: usize, test: F) {
    let mut runtime = if workers > 1 {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    runtime
        .enable_all()
        .build()
        .expect("a tokio runtime for the store suite")
        .block_on(test);
}

/// An event of `kind` for `user` at `now`, with a session and the suite's device.
pub fn event(kind: EventKind, user: &str, now: u64) -> SecurityEvent {
    SecurityEvent::new(kind, user, crate::clock::system_time(now))
        .with_session(SessionId::random())
        .with_device(&DeviceInfo::new("Firefox on Linux", Some("203.0.113.0/24")))
}

/// Whether `store` keeps the activity trail; when it does not, its methods must say so with
/// [`StoreError::Unsupported`] (the trait's defaults).
async fn keeps_activity<S: SessionStore + ?Sized>(store: &S) -> bool {
    if store.keeps_activity() {
        return true;
    }
    let bounds = ActivityBounds {
        max: 5,
        retention: 60_000,
    };
    let e = event(EventKind::Login, "nobody", at(0));
    assert!(matches!(
        store.record_activity(&e, bounds, at(0)).await,
        Err(StoreError::Unsupported(_))
    ));
    assert!(matches!(
        store.activity("nobody", bounds, at(0)).await,
        Err(StoreError::Unsupported(_))
    ));
    false
}

/// The rule that a user's trail holds the newest `max` events, newest first, every field as
/// it was recorded.
pub async fn activity_keeps_the_newest_in_order<S: SessionStore + ?Sized>(store: &S) {
    if !keeps_activity(store).await {
        return;
    }
    let user = unique("alice");
    let bounds = ActivityBounds {
        max: 5,
        retention: 3_600_000,
    };
    let kinds = [
        EventKind::Login,
        EventKind::Reauthenticate,
        EventKind::RefreshReuseDetected,
        EventKind::SessionEnded(EndReason::Logout),
        EventKind::SessionEnded(EndReason::OtherDevice),
        EventKind::SessionEnded(EndReason::Admin),
        EventKind::SessionEnded(EndReason::Evicted),
        EventKind::LogoutAll,
        EventKind::Lockout,
    ];
    let mut recorded = Vec::new();
    for (i, kind) in kinds.into_iter().enumerate() {
        let now = at(1_000 + i as u64);
        let e = event(kind, &user, now);
        store.record_activity(&e, bounds, now).await.unwrap();
        recorded.push(e);
    }
    let trail = store.activity(&user, bounds, at(2_000)).await.unwrap();
    let newest: Vec<SecurityEvent> = recorded.iter().rev().take(5).cloned().collect();
    assert_eq!(trail, newest);
    // A smaller bound at reading reads fewer.
    let two = ActivityBounds { max: 2, ..bounds };
    assert_eq!(
        store.activity(&user, two, at(2_000)).await.unwrap(),
        newest[..2]
    );
}

/// The rule that one user's trail never shows another's events.
pub async fn activity_is_per_user<S: SessionStore + ?Sized>(store: &S) {
    if !keeps_activity(store).await {
        return;
    }
    let (alice, bob) = (unique("alice"), unique("bob"));
    let bounds = ActivityBounds {
        max: 10,
        retention: 3_600_000,
    };
    let a = event(EventKind::Login, &alice, at(1_000));
    let b = event(EventKind::Lockout, &bob, at(1_001));
    store.record_activity(&a, bounds, at(1_000)).await.unwrap();
    store.record_activity(&b, bounds, at(1_001)).await.unwrap();
    assert_eq!(
        store.activity(&alice, bounds, at(1_002)).await.unwrap(),
        [a]
    );
    assert_eq!(store.activity(&bob, bounds, at(1_002)).await.unwrap(), [b]);
    assert!(
        store
            .activity(&unique("carol"), bounds, at(1_002))
            .await
            .unwrap()
            .is_empty()
    );
}

/// The rule that events older than the retention are not shown, and are trimmed by the next
/// write.
pub async fn activity_forgets_past_retention<S: SessionStore + ?Sized>(store: &S) {
    if !keeps_activity(store).await {
        return;
    }
    let user = unique("alice");
    let bounds = ActivityBounds {
        max: 10,
        retention: 10_000,
    };
    let old = event(EventKind::Login, &user, at(1_000));
    store
        .record_activity(&old, bounds, at(1_000))
        .await
        .unwrap();
    assert_eq!(
        store.activity(&user, bounds, at(5_000)).await.unwrap(),
        [old]
    );
    assert!(
        store
            .activity(&user, bounds, at(11_001))
            .await
            .unwrap()
            .is_empty()
    );
    let new = event(EventKind::Reauthenticate, &user, at(20_000));
    store
        .record_activity(&new, bounds, at(20_000))
        .await
        .unwrap();
    assert_eq!(
        store.activity(&user, bounds, at(20_001)).await.unwrap(),
        [new]
    );
}

/// The rule that a trail stays bounded whatever the history: 300 events with a bound of 7.
pub async fn activity_stays_bounded<S: SessionStore + ?Sized>(store: &S) {
    if !keeps_activity(store).await {
        return;
    }
    let user = unique("flood");
    let bounds = ActivityBounds {
        max: 7,
        retention: 3_600_000,
    };
    let mut last = Vec::new();
    for i in 0..300u64 {
        let e = event(EventKind::Login, &user, at(1_000 + i));
        store
            .record_activity(&e, bounds, at(1_000 + i))
            .await
            .unwrap();
        last.push(e);
    }
    let wide = ActivityBounds {
        max: 1000,
        ..bounds
    };
    let trail = store.activity(&user, wide, at(2_000)).await.unwrap();
    let want: Vec<SecurityEvent> = last.iter().rev().take(7).cloned().collect();
    assert_eq!(trail, want);
}

/// Runs the whole store suite against the store made by `$make` (an expression evaluated in an
/// async context, so it may `.await`): one `#[test]` per rule. Feature `test-util`; see
/// [`store::suite`](crate::store::suite).
#[macro_export]
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store_suite!(@tests $make;
            create_get_and_list,
            rotation_follows_the_rules,
            parent_after_the_interval_is_theft,
            a_rotation_past_its_deadline_changes_nothing,
            expiries,
            revoke_and_revoke_all,
            limit_evicts_the_least_recently_active,
            limit_denies,
            ended_sessions_are_deleted_at_once,
            device_metadata_round_trips,
            claims_round_trip_and_rotation_updates,
            revoke_all_except_keeps_one,
            auth_context_round_trips_and_moves_only_by_reauthentication,
            activity_keeps_the_newest_in_order,
            activity_is_per_user,
            activity_forgets_past_retention,
            activity_stays_bounded,
        );

        #[test]
        fn revoke_racing_rotation_never_resurrects() {
            $crate::store::suite::run(4, async {
                let store = ::std::sync::Arc::new($make);
                $crate::store::suite::revoke_racing_rotation_never_resurrects(store).await;
            });
        }

        #[test]
        fn concurrent_rotations_agree() {
            $crate::store::suite::run(4, async {
                let store = ::std::sync::Arc::new($make);
                $crate::store::suite::concurrent_rotations_agree(store).await;
            });
        }
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::store::suite::run(1, async {
                    let store = $make;
                    $crate::store::suite::$name(&store).await;
                });
            }
        )*
    };
}
