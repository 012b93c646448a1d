// `tests/encryption.rs` run against the sqlite store (see `common::STORE`).
include!("encryption.rs");
