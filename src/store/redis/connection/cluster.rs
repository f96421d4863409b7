//! What a Redis Cluster is made of: node URLs, slot ranges as `CLUSTER SLOTS` reports them, the
//! slot of a key, and a client for one node.

use std::time::Duration;

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Client, FromRedisValue, Value};

use super::unavailable;
use crate::store::StoreError;

/// `url` with its host and port replaced (scheme, credentials, database and query kept), for
/// a node the cluster reported.
pub(crate) fn with_address(url: &str, host: &str, port: u16) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let userinfo = authority.rfind('@').map_or("", |at| &authority[..=at]);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Some(format!(
        "{}{userinfo}{host}:{port}{}",
        &url[..scheme_end],
        &rest[authority_end..]
    ))
}

/// The `host:port` of a node URL, without its scheme, credentials or database: for logs.
pub(crate) fn node_of(url: &str) -> &str {
    let rest = url.find("://").map_or(url, |i| &url[i + 3..]);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    authority
        .rfind('@')
        .map_or(authority, |at| &authority[at + 1..])
}

/// One slot range of a cluster, its master first, as `CLUSTER SLOTS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) first_slot: u16,
    pub(crate) last_slot: u16,
    /// `(host, port)` of its nodes, the master first.
    pub(crate) nodes: Vec<(String, u16)>,
}

/// The slot ranges of the cluster, as a node `conn` picks reports them.
pub(super) async fn cluster_nodes(
    mut conn: ClusterConnection,
    timeout: Duration,
) -> Result<Vec<Shard>, StoreError> {
    let call = conn.route_command(
        redis::cmd("CLUSTER").arg("SLOTS").clone(),
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
    );
    let value = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| StoreError::Timeout)?
        .map_err(unavailable)?;
    parse_cluster_slots(&value)
}

/// Reads a `CLUSTER SLOTS` answer: `[[start, end, [host, port, id, …], replicas…], …]`.
pub(crate) fn parse_cluster_slots(value: &Value) -> Result<Vec<Shard>, StoreError> {
    let corrupt = || StoreError::Corrupt("CLUSTER SLOTS answer".to_owned());
    let Value::Array(ranges) = value else {
        return Err(corrupt());
    };
    let mut shards = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(corrupt());
        };
        let slot = |i: usize| {
            fields
                .get(i)
                .and_then(|v| i64::from_redis_value(v.clone()).ok())
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(corrupt)
        };
        let (first_slot, last_slot) = (slot(0)?, slot(1)?);
        let mut nodes = Vec::new();
        for node in fields.iter().skip(2) {
            let Value::Array(node) = node else {
                return Err(corrupt());
            };
            let host = node
                .first()
                .and_then(|v| String::from_redis_value(v.clone()).ok())
                .ok_or_else(corrupt)?;
            let port = node
                .get(1)
                .and_then(|v| i64::from_redis_value(v.clone()).ok())
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(corrupt)?;
            nodes.push((host, port));
        }
        if nodes.is_empty() {
            return Err(corrupt());
        }
        shards.push(Shard {
            first_slot,
            last_slot,
            nodes,
        });
    }
    Ok(shards)
}

/// The cluster slot of `key`: CRC16/XMODEM of its hash tag (the part between the first `{`
/// and the next `}`, when not empty) or of the whole key, modulo 16384. Written out because
/// `redis::cluster_routing::Slot` keeps its number private, and health must pick a key in each
/// slot range; a test holds it to the client's own routing.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for byte in hashed {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// A client for one node, trusting `ca_cert` (PEM) for `rediss://` when given.
pub(crate) fn client_for(url: &str, ca_cert: Option<&[u8]>) -> Result<Client, StoreError> {
    match ca_cert {
        Some(pem) if url.starts_with("rediss://") => Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        )
        .map_err(unavailable),
        _ => Client::open(url).map_err(unavailable),
    }
}
