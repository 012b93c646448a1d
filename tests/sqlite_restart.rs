//! `tests/restart.rs` run against the sqlite store (see `common::STORE`).
include!("restart.rs");
