//! The integration tests, in one binary: they run the real `spoolmq`
//! binary against real temporary spools (and, for the postgres store, a
//! real server) and check what a user sees.
//!
//! A shared suite (`push_pop.rs`, ...) is compiled once per store it runs on,
//! in a module that names the store: `push_pop::fs::...`,
//! `push_pop::sqlite::...` and `push_pop::postgres::...`, so
//! `cargo test --release sqlite::` runs the sqlite part. The helpers
//! (`common.rs`) are compiled once per store the same way (`env_fs`,
//! `env_sqlite`, `env_pg`), their `STORE` the store. Suites about one
//! store's files are plain modules.
//!
//! The postgres store's tests need a server: they are compiled only when
//! `SPOOLMQ_TEST_PG_URL` is set at build time (`build.rs` sets the
//! `pg_server` cfg; `.ci/run` starts a server and sets it). Without it one
//! test, `postgres_tests_skipped`, says they were skipped, and fails under
//! `CI=true`. (libtest has no way to skip a test at run time, and a binary
//! that exited early would end the other stores' tests too.)

// Each suite uses a part of the helpers.
#![allow(dead_code)]

/// The helpers for the store `$store`.
macro_rules! helpers {
    ($name:ident, $store:literal) => {
        mod $name {
            /// The store the suites using these helpers run on.
            pub const STORE: &str = $store;
            include!("common.rs");
        }
    };
}

/// Suite `$suite` (the file `$suite.rs`), once per store named after it.
macro_rules! suite {
    ($suite:ident: $($store:ident = $env:ident),+) => {
        mod $suite {
            $( store_suite!($suite, $store, $env); )+
        }
    };
}

/// One store's module of a suite; the postgres one only with a server.
macro_rules! store_suite {
    ($suite:ident, postgres, $env:ident) => {
        #[cfg(pg_server)]
        mod postgres {
            use crate::$env as common;
            include!(concat!(stringify!($suite), ".rs"));
        }
    };
    ($suite:ident, $store:ident, $env:ident) => {
        mod $store {
            use crate::$env as common;
            include!(concat!(stringify!($suite), ".rs"));
        }
    };
}

helpers!(env_fs, "fs");
helpers!(env_sqlite, "sqlite");
#[cfg(pg_server)]
helpers!(env_pg, "postgres");

/// Built without `SPOOLMQ_TEST_PG_URL`: the postgres store's tests were
/// left out. Says so; under `CI=true` that is a failure.
#[cfg(not(pg_server))]
#[test]
fn postgres_tests_skipped() {
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI=true but SPOOLMQ_TEST_PG_URL was not set when the tests were built: the PostgreSQL tests cannot be skipped in CI"
    );
    eprintln!(
        "skipped: the postgres store's tests (no PostgreSQL server: build and run with SPOOLMQ_TEST_PG_URL set, e.g. from `scripts/pg-server.sh start`)"
    );
}

suite!(ack_nack: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(bad_input: fs = env_fs, sqlite = env_sqlite);
suite!(bench: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(bounded_memory: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(concurrency: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(cookbook: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(doctor: fs = env_fs, sqlite = env_sqlite);
suite!(encryption: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(errors_and_files: fs = env_fs, sqlite = env_sqlite);
suite!(exec: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(export_import: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(failures: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(human_output: fs = env_fs, sqlite = env_sqlite);
suite!(kill9: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(migrate: fs = env_fs, sqlite = env_sqlite);
suite!(priority: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(groups: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(push_pop: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(restart: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(redrive: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(ttl: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(unique: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(secrets: fs = env_fs, postgres = env_pg);
suite!(security: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(stats_list_peek_purge: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(streaming: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);
suite!(worker: fs = env_fs, sqlite = env_sqlite, postgres = env_pg);

// The fs store's files: damage, crash points, a full disk, races.
mod corruption;
mod crash_points;
mod disk_full;
mod fsck;
mod fuzz_regressions;
mod generated_files;
mod mutants_index;
mod mutants_queue;
mod mutants_record;
mod mutants_segment;
mod races;
mod segments;
// The sqlite store's database.
mod sqlite_store;
// A spool of the previous release, opened and written by this one.
mod upgrade;
// The import rule of docs/ARCHITECTURE.md.
mod layers;
// The PostgreSQL store: many workers, leases on the server's clock, a
// server restarted mid-way (alone: `pg_server_alone`).
#[cfg(pg_server)]
mod pg_server_restart;
#[cfg(pg_server)]
mod pg_store;
