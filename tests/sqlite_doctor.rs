//! `tests/doctor.rs` run against the sqlite store (see `common::STORE`).
include!("doctor.rs");
