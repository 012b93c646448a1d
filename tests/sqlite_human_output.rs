//! `tests/human_output.rs` run against the sqlite store (see `common::STORE`).
include!("human_output.rs");
