//! Fuzzes JWT verification (header, claims, signature; HS256 tokens signed by the check).
//!
//! Bounded run (stable toolchain): `.ci/fuzz` (every target), or
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run jwt -- -max_total_time=60`.
//! The property check is `fuzz/check/jwt.rs`; `cargo test --test
//! fuzz_corpus` replays the committed corpus through it.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../check/jwt.rs");

fuzz_target!(|data: &[u8]| {
    check(data);
});
