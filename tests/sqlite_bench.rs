//! `tests/bench.rs` run against the sqlite store (see `common::STORE`).
include!("bench.rs");
