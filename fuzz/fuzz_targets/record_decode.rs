//! cargo-fuzz target `record_decode`: the checks are in `spoolmq_fuzz::record_decode` (fuzz/src/lib.rs),
//! shared with tests/it/fuzz_regressions.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spoolmq_fuzz::record_decode(data));
