// `tests/secrets.rs` against the PostgreSQL test server (see `common::STORE`).
include!("secrets.rs");
