// `tests/encryption.rs` run against the PostgreSQL store (see `common::STORE`).
include!("encryption.rs");
