//! `tests/bad_input.rs` run against the sqlite store (see `common::STORE`).
include!("bad_input.rs");
