// `tests/ack_nack.rs` run against the PostgreSQL store (see `common::STORE`).
include!("ack_nack.rs");
