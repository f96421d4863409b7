//! placeholder docs
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
pub mod clock;
mod codec;
pub mod config;
mod cookie;
mod error;
pub mod layer;
mod manager;
mod revocation;
pub mod routes;
mod session;
pub mod store;

pub use cache::{RevocationCache, RevocationFuture};
pub use manager::{MAX_ROLES, MAX_USER_ID_LEN, SessionCounters, SessionError, SessionManager, SessionManagerBuilder, TokenPair};
pub use codec::{IssuedToken, MAX_TOKEN_LEN, TokenCodec};
pub use config::{ConfigError, SameSite, SessionConfig, SessionLimitPolicy};
pub use error::{AuthError, ErrorCode};
pub use jsonwebtoken::Algorithm;
pub use layer::{ErrorResponder, JsonResponder, SessionLayer};
pub use revocation::{Checked, NoRevocation, RevocationCheck, SessionStatus};
pub use routes::{RefreshService, MAX_BODY_BYTES};
pub use session::{ParseSessionIdError, Roles, Session, SessionId};

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
mod extract;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::MissingSessionLayer;
