// `tests/streaming.rs` run against the PostgreSQL store (see `common::STORE`).
include!("streaming.rs");
