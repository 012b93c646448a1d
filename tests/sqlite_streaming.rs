//! `tests/streaming.rs` run against the sqlite store (see `common::STORE`).
include!("streaming.rs");
