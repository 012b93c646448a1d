// `tests/cookbook.rs` run against the PostgreSQL store (see `common::STORE`).
include!("cookbook.rs");
