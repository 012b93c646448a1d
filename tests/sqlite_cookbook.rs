//! `tests/cookbook.rs` run against the sqlite store (see `common::STORE`).
include!("cookbook.rs");
