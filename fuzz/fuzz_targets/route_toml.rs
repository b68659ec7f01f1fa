//! Fuzzes route files through the config loader.
//!
//! Bounded run (stable toolchain): `.ci/fuzz` (every target), or
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run route_toml -- -max_total_time=60`.
//! The property check is `fuzz/check/route_toml.rs`; `cargo test --test
//! fuzz_corpus` replays the committed corpus through it.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../check/route_toml.rs");

fuzz_target!(|data: &[u8]| {
    check(data);
});
