//! Every integration test of the crate, in one binary: one link after an edit instead of one
//! per file. Two binaries stay apart: `tests/verified_cache.rs` counts allocations with a
//! global allocator, which the other tests' threads would disturb, and `tests/failover.rs`
//! fails Redis Cluster masters over and times the recovery, which needs the machine to itself
//! (cargo runs test binaries one after another).
//!
//! - `common`: the harnesses: the library's router in process (`common::app::App`), the
//!   example servers as child processes (`common::Server`), and the Redis and PostgreSQL
//!   servers the tests start or share (`common::redis_server`, `common::pg_server`).
//! - one module per subject; `adversarial` and `model` are groups of their own.

#[path = "../common/mod.rs"]
mod common;

mod activity;
mod adversarial;
mod app;
mod assembly;
mod dpop;
mod example;
mod example_app;
mod example_jwks;
mod key_rotation;
mod kit_store;
mod login;
mod model;
mod outage;
mod postgres;
mod rate_limit;
mod redis;
mod stepup;
