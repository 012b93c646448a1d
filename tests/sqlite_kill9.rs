//! `tests/kill9.rs` run against the sqlite store (see `common::STORE`).
include!("kill9.rs");
