// `tests/security.rs` run against the PostgreSQL store (see `common::STORE`).
include!("security.rs");
