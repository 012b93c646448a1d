// `tests/security.rs` run against the sqlite store (see `common::STORE`).
include!("security.rs");
