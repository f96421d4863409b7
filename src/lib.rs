//! placeholder docs
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
mod codec;
pub mod config;
mod error;
pub mod layer;
mod revocation;
mod session;

pub use codec::{IssuedToken, MAX_TOKEN_LEN, TokenCodec};
pub use config::{ConfigError, SameSite, SessionConfig, SessionLimitPolicy};
pub use error::{AuthError, ErrorCode};
pub use jsonwebtoken::Algorithm;
pub use layer::{ErrorResponder, JsonResponder, SessionLayer};
pub use revocation::{Checked, NoRevocation, RevocationCheck, SessionStatus};
pub use session::{ParseSessionIdError, Roles, Session, SessionId};
