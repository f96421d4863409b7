//! One deadline per request for all the store I/O it causes.
//!
//! A request to the token or login routes may ask several backends in turn: the rate limiter,
//! the attempt tracker, the session store (twice for a refresh with a hook). Each has a timeout
//! of its own, and during an outage they used to add up (a refresh answered 503 after three
//! timeouts). Here the request gets one deadline, the store's timeout from when it arrived,
//! and every backend call inside it ends there at the latest, so an outage answers 503 within
//! one timeout.
//!
//! The deadline travels as a tokio task-local set by [`within`] around the request's work, so
//! the manager's public methods keep their signatures: called outside a request (from an app's
//! own handler, say), a manager method opens a deadline of its own. Time spent in the app's
//! refresh hook is not the crate's I/O and is given back ([`excluding`]); the hook has its own
//! timeout.
//!
//! The deadline also has a wall-clock form ([`wall_ms`]) that stores compare against their own
//! clock (Redis `TIME`, PostgreSQL `clock_timestamp()`) before they write a rotation: a write
//! that reaches a stalled store after the caller was told 503 must not take effect then.

use std::cell::Cell;
use std::future::Future;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Cell<Instant>;
}

/// Marks when a request reached the crate (put into the request's extensions by the first
/// layer that sees it, the rate limiter), so its deadline counts from there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestStart(pub(crate) Instant);

impl RequestStart {
    pub(crate) fn now() -> Self {
        Self(Instant::now())
    }

    /// The start recorded in `extensions`, or now.
    pub(crate) fn of(extensions: &http::Extensions) -> Instant {
        extensions
            .get::<RequestStart>()
            .map_or_else(Instant::now, |start| start.0)
    }
}

/// Runs `work` under the deadline `at`, unless it already runs under one (a request's
/// deadline is set once, by whoever sees the request first).
pub(crate) async fn within<F: Future>(at: Instant, work: F) -> F::Output {
    if current().is_some() {
        work.await
    } else {
        DEADLINE.scope(Cell::new(at), work).await
    }
}

/// The deadline of the work now running, if any.
pub(crate) fn current() -> Option<Instant> {
    DEADLINE.try_with(Cell::get).ok()
}

/// Runs `io` until the current deadline, if there is one: `Err(Elapsed)` when it passes first.
/// A future that is ready at once is ready, whatever the time (a memory store never waits).
/// The first poll comes before any timer is armed, so an answer that is ready at once costs
/// no timer entry and needs no time driver in the runtime.
pub(crate) async fn bound<F: Future>(io: F) -> Result<F::Output, Elapsed> {
    let Some(at) = current() else {
        return Ok(io.await);
    };
    let mut io = std::pin::pin!(io);
    let first = std::future::poll_fn(|cx| Poll::Ready(io.as_mut().poll(cx))).await;
    if let Poll::Ready(out) = first {
        return Ok(out);
    }
    tokio::time::timeout_at(at, io).await.map_err(|_| Elapsed)
}

/// Runs `work` (the app's own code, such as its refresh hook) and moves the deadline on by the
/// time it took: the request's budget is for the crate's store I/O.
pub(crate) async fn excluding<F: Future>(work: F) -> F::Output {
    let start = Instant::now();
    let out = work.await;
    let spent = start.elapsed();
    let _ = DEADLINE.try_with(|at| at.set(at.get() + spent));
    out
}

/// The current deadline as milliseconds since the Unix epoch on this machine's clock, for a
/// store to compare with its own; `None` outside a deadline.
pub(crate) fn wall_ms() -> Option<u64> {
    let at = current()?;
    let left = at.saturating_duration_since(Instant::now());
    Some(crate::clock::unix_ms(SystemTime::now() + left))
}

/// The deadline passed before the I/O finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// How long a request's store I/O may take when nothing else says: the default timeout of
/// the Redis and PostgreSQL stores.
pub(crate) const DEFAULT_BUDGET: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    /// A runtime built without a time driver (as the fuzz targets build theirs): an answer
    /// that is ready at once needs no timer, so nothing panics.
    #[test]
    fn a_ready_answer_needs_no_timer() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let out = runtime.block_on(within(Instant::now() + Duration::from_secs(1), async {
            bound(async { 7 }).await
        }));
        assert_eq!(out, Ok(7));
    }

    #[tokio::test]
    async fn io_under_a_deadline_ends_there_and_hooks_are_given_back() {
        let ms = Duration::from_millis;
        let at = Instant::now() + ms(50);
        within(at, async {
            tokio::time::sleep(ms(60)).await;
            // Ready at once: ready, even past the deadline.
            assert_eq!(bound(async { 7 }).await, Ok(7));
            assert_eq!(bound(tokio::time::sleep(ms(10))).await, Err(Elapsed));
        })
        .await;
        let at = Instant::now() + ms(1000);
        within(at, async {
            let before = current().unwrap();
            excluding(tokio::time::sleep(ms(30))).await;
            // The hook's time is given back: the deadline moved by at least that.
            assert!(current().unwrap() >= before + ms(30));
            // A nested `within` keeps the outer deadline.
            let outer = current();
            within(Instant::now(), async {
                assert_eq!(current(), outer);
            })
            .await;
            let wall = wall_ms().unwrap();
            let now = crate::clock::SystemClock.now_ms();
            assert!(wall > now && wall <= now + 1100, "{wall} vs {now}");
        })
        .await;
        assert_eq!(current(), None);
        assert_eq!(wall_ms(), None);
    }
}
