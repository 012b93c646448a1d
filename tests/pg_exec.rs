// `tests/exec.rs` run against the PostgreSQL store (see `common::STORE`).
include!("exec.rs");
