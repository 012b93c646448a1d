//! `tests/errors_and_files.rs` run against the sqlite store (see `common::STORE`).
include!("errors_and_files.rs");
