//! Fuzzes signed snapshot bundles (open, then apply).
//!
//! Bounded run (stable toolchain): `.ci/fuzz` (every target), or
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run snapshot_bundle -- -max_total_time=60`.
//! The property check is `fuzz/check/snapshot_bundle.rs`; `cargo test --test
//! fuzz_corpus` replays the committed corpus through it.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../check/snapshot_bundle.rs");

fuzz_target!(|data: &[u8]| {
    check(data);
});
