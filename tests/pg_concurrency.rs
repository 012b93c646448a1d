// `tests/concurrency.rs` run against the PostgreSQL store (see `common::STORE`).
include!("concurrency.rs");
