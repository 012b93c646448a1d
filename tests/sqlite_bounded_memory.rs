//! `tests/bounded_memory.rs` run against the sqlite store (see `common::STORE`).
include!("bounded_memory.rs");
