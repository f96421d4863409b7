//! Memory of the cache of verified tokens under a flood of distinct valid tokens.
//!
//! ```text
//! token_flood [tokens] [capacity]      (defaults: 1 000 000 tokens, the default capacity)
//! ```
//!
//! Issues `tokens` distinct valid access tokens (one session each, so every token is new),
//! verifies each through `TokenCodec::verify` (the cached path), and prints the resident set
//! at checkpoints, with the cache's capacity and the time per verification. The tokens are
//! made one at a time and dropped after their verification, so the growth of the resident set
//! is the cache's alone: it must level off at the capacity, whatever the number of tokens.
//!
//! Prints `tokens rss_mib verify_us` (tab-separated) per checkpoint.

use std::time::Instant;

use tower_jwt_session::config::{SessionRules, TokenCacheSettings, TokenSettings};
use tower_jwt_session::session::SessionId;
use tower_jwt_session::token::TokenCodec;

fn main() {
    let mut args = std::env::args().skip(1);
    let tokens: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut settings = TokenSettings::new(tjs_bench::SECRET).unwrap();
    if let Some(capacity) = args.next().and_then(|a| a.parse().ok()) {
        settings =
            settings.with_verified_cache(TokenCacheSettings::default().with_capacity(capacity));
    }
    let capacity = settings.verified_cache().capacity();
    let codec = TokenCodec::new(&settings, &SessionRules::default()).unwrap();
    let roles = ["user".to_owned(), "admin".to_owned()];
    println!(
        "# capacity {capacity}, rss before {:.1} MiB",
        tjs_bench::rss_bytes() as f64 / 1048576.0
    );
    println!("tokens\trss_mib\tverify_us");
    let mut checkpoint = 1_000u64;
    let mut spent = std::time::Duration::ZERO;
    let mut since = 0u64;
    for n in 1..=tokens {
        let token = codec.issue("flood", SessionId::random(), &roles).token;
        let start = Instant::now();
        codec.verify(&token).expect("a fresh token verifies");
        spent += start.elapsed();
        since += 1;
        if n == checkpoint || n == tokens {
            println!(
                "{n}\t{:.1}\t{:.2}",
                tjs_bench::rss_bytes() as f64 / 1048576.0,
                spent.as_secs_f64() * 1e6 / since as f64
            );
            spent = std::time::Duration::ZERO;
            since = 0;
            checkpoint *= 10;
        }
    }
}
