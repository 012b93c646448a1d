//! cargo-fuzz target `duration_parse`: the checks are in `spoolmq_fuzz::duration_parse` (fuzz/src/lib.rs),
//! shared with tests/it/fuzz_regressions.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| spoolmq_fuzz::duration_parse(data));
