// `tests/restart.rs` run against the PostgreSQL store (see `common::STORE`).
include!("restart.rs");
