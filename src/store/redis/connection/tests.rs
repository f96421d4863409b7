//! Tests of the Redis connection: node URLs, key slots, the confirmation marker, log names,
//! stale errors and cluster slots.

use super::supervisor::stale;
use super::*;
use redis::Value;

#[test]
fn a_reported_node_keeps_the_scheme_credentials_and_database_of_the_configured_url() {
    assert_eq!(
        with_address(
            "rediss://app:s3cret@seed.example:6379/0?x=1",
            "10.0.0.7",
            7001
        )
        .as_deref(),
        Some("rediss://app:s3cret@10.0.0.7:7001/0?x=1")
    );
    assert_eq!(
        with_address("redis://seed:6379", "::1", 7002).as_deref(),
        Some("redis://[::1]:7002")
    );
}

#[test]
fn key_slots_are_the_ones_the_cluster_client_routes_by() {
    for key in [
        &b"foo"[..],
        b"{user1000}.following",
        b"{}abc",
        b"a{}{b}",
        b"tjs:{81b637d8}:s:gbY32NjUse1Xv5futiCCEQ",
        b"",
    ] {
        assert_eq!(
            Route::with_key(key, SlotAddr::Master),
            Route::new(key_slot(key), SlotAddr::Master),
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    // The example of the cluster specification.
    assert_eq!(key_slot(b"123456789"), 0x31C3);
}

#[test]
fn the_confirmation_marker_shares_the_scripts_slot() {
    let key = "tjs:{81b637d8}:s:gbY32NjUse1Xv5futiCCEQ";
    assert_eq!(marker_key(key), "tjs:{81b637d8}:w");
    assert_eq!(
        key_slot(marker_key(key).as_bytes()),
        key_slot(key.as_bytes())
    );
    assert_eq!(marker_key("plain"), "plain:w");
}

#[test]
fn logs_name_a_node_without_its_credentials() {
    assert_eq!(
        node_of("rediss://app:s3cret@10.0.0.7:7001/0"),
        "10.0.0.7:7001"
    );
    assert_eq!(node_of("redis://seed:6379"), "seed:6379");
}

#[test]
fn what_a_stale_connection_answers_rebuilds_it_and_a_scripts_own_error_does_not() {
    let server = |code: &str, detail: &str| {
        redis::RedisError::from((
            redis::ErrorKind::Extension,
            "server",
            format!("{code} {detail}"),
        ))
    };
    let timeout = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
    assert!(stale(&timeout));
    let refused =
        redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    assert!(stale(&refused));
    assert!(stale(&server(
        "ERR",
        "Error running script: -READONLY You can't write against a read only replica."
    )));
    assert!(!stale(&server("ERR", "user_script:1: bad argument")));
    assert!(!stale(&redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "not a string"
    ))));
}

#[test]
fn cluster_slots_are_read_master_first() {
    let node = |host: &str, port: i64| {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    };
    let answer = Value::Array(vec![Value::Array(vec![
        Value::Int(0),
        Value::Int(5460),
        node("10.0.0.1", 7000),
        node("10.0.0.2", 7003),
    ])]);
    assert_eq!(
        parse_cluster_slots(&answer).unwrap(),
        vec![Shard {
            first_slot: 0,
            last_slot: 5460,
            nodes: vec![("10.0.0.1".to_owned(), 7000), ("10.0.0.2".to_owned(), 7003)],
        }]
    );
    assert!(parse_cluster_slots(&Value::Int(1)).is_err());
}
