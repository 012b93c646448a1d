//! `tests/export_import.rs` run against the sqlite store (see `common::STORE`).
include!("export_import.rs");
