//! `tests/bounded_memory.rs` run against the PostgreSQL store (see `common::STORE`).
include!("bounded_memory.rs");
