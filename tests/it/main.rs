//! The integration tests for the fs and sqlite stores, in one binary: they
//! run the real `spoolmq` binary against real temporary spools and check
//! what a user sees. (PostgreSQL has its own binary, `tests/pg/main.rs`,
//! which skips as a whole when no server is given.)
//!
//! A shared suite (`push_pop.rs`, ...) is compiled once per store it runs on,
//! in a module that names the store: `push_pop::fs::...` and
//! `push_pop::sqlite::...`, so `cargo test --release sqlite::` runs the
//! sqlite half. The helpers (`common.rs`) are compiled once per store the
//! same way (`env_fs`, `env_sqlite`), their `STORE` the store. Suites about
//! one store's files are plain modules.

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
            $(
                mod $store {
                    use crate::$env as common;
                    include!(concat!(stringify!($suite), ".rs"));
                }
            )+
        }
    };
}

helpers!(env_fs, "fs");
helpers!(env_sqlite, "sqlite");

suite!(ack_nack: fs = env_fs, sqlite = env_sqlite);
suite!(bad_input: fs = env_fs, sqlite = env_sqlite);
suite!(bench: fs = env_fs, sqlite = env_sqlite);
suite!(bounded_memory: fs = env_fs, sqlite = env_sqlite);
suite!(concurrency: fs = env_fs, sqlite = env_sqlite);
suite!(cookbook: fs = env_fs, sqlite = env_sqlite);
suite!(doctor: fs = env_fs, sqlite = env_sqlite);
suite!(encryption: fs = env_fs, sqlite = env_sqlite);
suite!(errors_and_files: fs = env_fs, sqlite = env_sqlite);
suite!(exec: fs = env_fs, sqlite = env_sqlite);
suite!(export_import: fs = env_fs, sqlite = env_sqlite);
suite!(failures: fs = env_fs, sqlite = env_sqlite);
suite!(human_output: fs = env_fs, sqlite = env_sqlite);
suite!(kill9: fs = env_fs, sqlite = env_sqlite);
suite!(migrate: fs = env_fs, sqlite = env_sqlite);
suite!(push_pop: fs = env_fs, sqlite = env_sqlite);
suite!(restart: fs = env_fs, sqlite = env_sqlite);
suite!(secrets: fs = env_fs);
suite!(security: fs = env_fs, sqlite = env_sqlite);
suite!(stats_list_peek_purge: fs = env_fs, sqlite = env_sqlite);
suite!(streaming: fs = env_fs, sqlite = env_sqlite);
suite!(worker: fs = env_fs, sqlite = env_sqlite);

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
// The import rule of docs/ARCHITECTURE.md.
mod layers;
