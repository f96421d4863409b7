//! The cache of verified tokens, measured with a counting allocator: a hit allocates nothing of
//! its own, and a flood of distinct valid tokens keeps its memory within the capacity's bound.
//!
//! One test function: the allocator's counters are process-wide, and tests of one binary run in
//! parallel threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use http::{HeaderValue, header};
use tower_jwt_session::config::{SessionRules, TokenCacheSettings, TokenSettings};
use tower_jwt_session::{SessionLayer, session::SessionId, token::TokenCodec};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// Polls a future that must be ready at once.
fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("verification without revocation never waits"),
    }
}

fn bearer(token: &str) -> http::Request<()> {
    let mut request = http::Request::new(());
    let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    request.headers_mut().insert(header::AUTHORIZATION, value);
    request
}

/// A token of a typical size: a user id of an e-mail's length and two roles.
fn issue(codec: &TokenCodec, i: usize) -> String {
    let roles = ["user".to_owned(), "billing-admin".to_owned()];
    let user = format!("user-{i:08}@example.com");
    codec.issue(&user, SessionId::random(), &roles).token
}

#[test]
fn a_hit_allocates_nothing_and_a_flood_stays_within_the_bound() {
    // A hit allocates nothing: no upkeep runs on the request's thread.
    let layer = SessionLayer::new(
        TokenCodec::new(
            &TokenSettings::new(SECRET).unwrap(),
            &SessionRules::default(),
        )
        .unwrap(),
    );
    let token = issue(layer.codec(), 0);
    let headers = bearer(&token);
    let first = now(layer.authenticate(&headers)).unwrap();
    const HITS: usize = 10_000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..HITS {
        let session = now(layer.authenticate(&headers)).unwrap();
        assert_eq!(session.session_id(), first.session_id());
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!("verified-token cache: {allocations} allocations in {HITS} hits");
    assert_eq!(allocations, 0, "allocations in {HITS} cache hits");

    // The same with the cache off allocates on every request: the comparison above means
    // something.
    let tokens = TokenSettings::new(SECRET)
        .unwrap()
        .with_verified_cache(TokenCacheSettings::off());
    let uncached = SessionLayer::new(TokenCodec::new(&tokens, &SessionRules::default()).unwrap());
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..100 {
        now(uncached.authenticate(&headers)).unwrap();
    }
    let uncached_allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(uncached_allocations >= 100, "{uncached_allocations}");

    // A flood: 5 times the capacity in distinct valid tokens, twice over.
    const CAPACITY: usize = 2_000;
    let cache = TokenCacheSettings::default().with_capacity(CAPACITY as u64);
    let tokens = TokenSettings::new(SECRET)
        .unwrap()
        .with_verified_cache(cache);
    let layer = SessionLayer::new(TokenCodec::new(&tokens, &SessionRules::default()).unwrap());
    let token_len = issue(layer.codec(), 0).len();
    let base = LIVE_BYTES.load(Ordering::Relaxed);
    let flood = |from: usize| {
        for i in from..from + 5 * CAPACITY {
            let headers = bearer(&issue(layer.codec(), i));
            now(layer.authenticate(&headers)).unwrap();
        }
        LIVE_BYTES.load(Ordering::Relaxed) - base
    };
    let after_one = flood(0);
    let after_two = flood(5 * CAPACITY);
    let per_entry = after_one as usize / CAPACITY;
    println!(
        "verified-token cache: {after_one} bytes for {CAPACITY} entries of {token_len}-byte tokens \
         ({per_entry} bytes per entry); after a second flood {after_two} bytes"
    );
    assert!(
        per_entry <= 2 * 1024,
        "{per_entry} bytes per entry of a {token_len}-byte token"
    );
    assert!(
        after_two <= after_one + after_one / 10,
        "memory grew from {after_one} to {after_two} bytes under a second flood"
    );
}
