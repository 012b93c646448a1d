//! `tests/concurrency.rs` run against the sqlite store (see `common::STORE`).
include!("concurrency.rs");
