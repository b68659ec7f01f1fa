//! Fuzzes request path normalization.
//!
//! Bounded run (stable toolchain): `.ci/fuzz` (every target), or
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run normalize_path -- -max_total_time=60`.
//! The property check is `fuzz/check/normalize_path.rs`; `cargo test --test
//! fuzz_corpus` replays the committed corpus through it.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../check/normalize_path.rs");

fuzz_target!(|data: &[u8]| {
    check(data);
});
