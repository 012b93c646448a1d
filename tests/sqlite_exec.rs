//! `tests/exec.rs` run against the sqlite store (see `common::STORE`).
include!("exec.rs");
