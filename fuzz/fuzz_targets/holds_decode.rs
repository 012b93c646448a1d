//! cargo-fuzz target `holds_decode`: the checks are in `spoolmq_fuzz::holds_decode` (fuzz/src/lib.rs),
//! shared with tests/it/fuzz_regressions.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spoolmq_fuzz::holds_decode(data));
