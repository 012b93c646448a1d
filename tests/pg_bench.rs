// `tests/bench.rs` run against the PostgreSQL store (see `common::STORE`).
include!("bench.rs");
