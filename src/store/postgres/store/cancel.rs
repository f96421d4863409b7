//! [`Held`]: a pooled connection that is thrown away, never handed back, when the work on it is
//! cancelled mid-statement.
//!
//! A statement whose future is dropped (the store's timeout) may still sit in the connection's
//! write buffer, unsent. Handed back to the pool, the connection is pinged, and the ping sends
//! the buffer first: the statement would run after the caller was told the call timed out (a
//! refresh answered 503 whose rotation lands anyway). Detached and dropped instead, the socket
//! closes with the buffer unsent; a statement already sent ran while the caller still waited.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

use super::db_error;
use crate::store::StoreError;

/// A connection of the pool for one call's writes: back to the pool with [`done`](Self::done),
/// closed without a word to the server if dropped before.
pub(super) struct Held(Option<PoolConnection<Postgres>>);

impl Held {
    pub(super) async fn acquire(pool: &PgPool) -> Result<Self, StoreError> {
        Ok(Self(Some(pool.acquire().await.map_err(db_error)?)))
    }

    /// The call finished (well or not): nothing is left in the buffer, the pool may reuse it.
    pub(super) fn done(mut self) {
        drop(self.0.take());
    }
}

impl Deref for Held {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.0.as_ref().expect("held until done or dropped")
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.0.as_mut().expect("held until done or dropped")
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            // Cancelled: whatever the buffer holds must never be sent.
            drop(conn.detach());
        }
    }
}
