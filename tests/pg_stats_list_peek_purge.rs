// `tests/stats_list_peek_purge.rs` run against the PostgreSQL store (see `common::STORE`).
include!("stats_list_peek_purge.rs");
