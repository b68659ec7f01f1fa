//! Fuzzes the field filter over (body bytes × rule set).
//!
//! Bounded run (stable toolchain): `.ci/fuzz` (default 60 s), or
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run field_filter -- -max_total_time=60`.
//! The property check is `fuzz/check/field_filter.rs`; `cargo test --test
//! fields_gateway` replays the committed corpus through it.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../check/field_filter.rs");

fuzz_target!(|data: &[u8]| check(data));
