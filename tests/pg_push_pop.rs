// `tests/push_pop.rs` run against the PostgreSQL store (see `common::STORE`).
include!("push_pop.rs");
