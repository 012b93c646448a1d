// `tests/kill9.rs` run against the PostgreSQL store (see `common::STORE`).
include!("kill9.rs");
