//! The integration tests for the PostgreSQL store, in one binary: the shared
//! suites of `tests/it` (`push_pop::...`), compiled here for PostgreSQL, and
//! what only this store has. Without a server (`SPOOLMQ_TEST_PG_URL`) the
//! binary says it is skipped and exits 0, except under `CI=true`; that is
//! why these are not in `tests/it`, whose tests need nothing but the binary.
//! A test that restarts the server runs alone (`common::pg_server_alone`).

// Each suite uses a part of the helpers.
#![allow(dead_code)]

/// The helpers, for PostgreSQL.
mod common {
    /// The store the suites run on.
    pub const STORE: &str = "postgres";
    include!("../it/common.rs");
}

/// Suite `$suite` of `tests/it`, for PostgreSQL.
macro_rules! suite {
    ($($suite:ident),+ $(,)?) => {
        $(
            mod $suite {
                use crate::common;
                include!(concat!("../it/", stringify!($suite), ".rs"));
            }
        )+
    };
}

suite!(
    ack_nack,
    bench,
    bounded_memory,
    concurrency,
    cookbook,
    encryption,
    exec,
    export_import,
    failures,
    kill9,
    push_pop,
    restart,
    secrets,
    security,
    stats_list_peek_purge,
    streaming,
    worker,
);

mod server_restart;
mod store;
