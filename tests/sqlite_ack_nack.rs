//! `tests/ack_nack.rs` run against the sqlite store (see `common::STORE`).
include!("ack_nack.rs");
