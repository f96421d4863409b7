//! DPoP proofs (`token::dpop`): arbitrary bytes as the `DPoP` header of
//! `POST https://server.example.com/token`, checked by a verifier whose clock stands at the
//! `iat` of RFC 9449's example proof (a seed), so the fuzzer can mutate around a proof that
//! verifies.
//!
//! The input is up to two header values separated by `\n` (values `http` refuses are
//! skipped). Checked: no panic; the verdict is the same for the same input on a second
//! verifier; and on one verifier, a proof accepted once is refused as a replay the second time,
//! while a refused one is refused again for the same reason.

#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::{HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use tower_jwt_session::config::ManualClock;
use tower_jwt_session::token::dpop::{
    DpopError, DpopSettings, DpopVerifier, ProofRequest, PublicOrigin,
};

/// The `iat` of RFC 9449 figure 2's proof, in milliseconds.
const IAT_MS: u64 = 1_562_262_616_000;

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the memory replay cache never waits"),
    }
}

fuzz_target!(|data: &[u8]| {
    let values: Vec<HeaderValue> = data
        .split(|&b| b == b'\n')
        .take(2)
        .filter_map(|v| HeaderValue::from_bytes(v).ok())
        .collect();
    let origin = PublicOrigin::parse("https://server.example.com").unwrap();
    let uri: Uri = "/token".parse().unwrap();
    let request = ProofRequest::new(&Method::POST, &origin, &uri);
    let verifier = || DpopVerifier::new(DpopSettings::new()).with_clock(ManualClock::new(IAT_MS));

    let one = verifier();
    let first = ready(one.verify(&values, &request));
    let again = ready(one.verify(&values, &request));
    let other = ready(verifier().verify(&values, &request));
    assert_eq!(first, other, "the same input, another verifier");
    match &first {
        Ok(proof) => {
            assert_eq!(proof.jkt().len(), 43);
            assert_eq!(
                again,
                Err(DpopError::Replayed),
                "an accepted proof replayed"
            );
        }
        Err(e) => assert_eq!(again.as_ref(), Err(e), "a refusal is stable"),
    }
});
