//! Tests of the store rules: rotation decisions, purge times and admission.

use super::*;
use crate::config::SessionLimitPolicy;

fn lifetimes() -> Lifetimes {
    Lifetimes {
        refresh_ttl: 1_000,
        reuse_interval: 100,
        access_retention: 500,
    }
}

fn record() -> SessionRecord {
    SessionRecord {
        session_id: SessionId::random(),
        user_id: "u".into(),
        roles: vec![],
        created_at: 0,
        last_active_at: 0,
        expires_at: 10_000,
        generation: 5,
        rotated_at: 2_000,
        refresh_expires_at: 3_000,
        revoked_at: None,
        purge_at: 3_000,
        device: DeviceInfo::default(),
        claims: Default::default(),
        auth: Default::default(),
    }
}

fn req(r: &SessionRecord, generation: u64, now: u64) -> RotateRequest {
    RotateRequest {
        session_id: r.session_id,
        generation,
        now,
        lifetimes: lifetimes(),
        update: None,
        deadline: None,
    }
}

#[test]
fn rotation_rules() {
    let r = record();
    assert_eq!(
        decide_rotation(&r, &req(&r, 5, 2_050)),
        RotationDecision::Rotate {
            refresh_expires_at: 3_050,
            purge_at: 3_050
        }
    );
    assert_eq!(
        decide_rotation(&r, &req(&r, 4, 2_099)),
        RotationDecision::Grace
    );
    assert_eq!(
        decide_rotation(&r, &req(&r, 4, 2_100)),
        RotationDecision::Reuse(ReuseKind::RetiredAfterInterval)
    );
    assert_eq!(
        decide_rotation(&r, &req(&r, 3, 2_001)),
        RotationDecision::Reuse(ReuseKind::Ancestor)
    );
    assert_eq!(
        decide_rotation(&r, &req(&r, 0, 2_001)),
        RotationDecision::Reuse(ReuseKind::Ancestor)
    );
    assert_eq!(
        decide_rotation(&r, &req(&r, 6, 2_001)),
        RotationDecision::NotFound
    );
    assert_eq!(
        decide_rotation(&r, &req(&r, 5, 3_000)),
        RotationDecision::TokenExpired
    );
    assert_eq!(
        decide_rotation(&r, &req(&r, 5, 10_000)),
        RotationDecision::SessionExpired
    );
    let mut revoked = record();
    revoked.revoked_at = Some(1);
    assert_eq!(
        decide_rotation(&revoked, &req(&revoked, 5, 2_050)),
        RotationDecision::Revoked
    );
}

#[test]
fn refresh_expiry_is_capped_by_the_session_end() {
    let mut r = record();
    r.refresh_expires_at = 9_800;
    let RotationDecision::Rotate {
        refresh_expires_at, ..
    } = decide_rotation(&r, &req(&r, 5, 9_500))
    else {
        panic!("expected a rotation");
    };
    assert_eq!(refresh_expires_at, 10_000);
}

#[test]
fn admission_evicts_least_recently_active_or_denies() {
    let (a, b, c) = (
        SessionId::random(),
        SessionId::random(),
        SessionId::random(),
    );
    let live = [(a, 30), (b, 10), (c, 20)];
    let evict = SessionLimit {
        max: 3,
        policy: SessionLimitPolicy::Evict,
    };
    assert_eq!(plan_admission(&live, evict), Some(vec![b]));
    assert_eq!(
        plan_admission(&live, SessionLimit { max: 2, ..evict }),
        Some(vec![b, c])
    );
    assert_eq!(
        plan_admission(&live, SessionLimit { max: 4, ..evict }),
        Some(vec![])
    );
    let deny = SessionLimit {
        max: 3,
        policy: SessionLimitPolicy::Deny,
    };
    assert_eq!(plan_admission(&live, deny), None);
}
