//! `tests/push_pop.rs` run against the sqlite store (see `common::STORE`).
include!("push_pop.rs");
