// `tests/export_import.rs` run against the PostgreSQL store (see `common::STORE`).
include!("export_import.rs");
