//! [`ClientRateLimitLayer`]: requests per client IP, in front of any tower service. The
//! counting itself (backends, the client's address) is in [`rate_limit`](crate::rate_limit).

pub(crate) mod future;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub use future::RateLimitWait;
pub use layer::ClientRateLimitLayer;
pub use service::{ClientRateLimit, RateLimitCheck};
