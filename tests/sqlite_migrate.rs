// `tests/migrate.rs` run against the sqlite store (see `common::STORE`).
include!("migrate.rs");
