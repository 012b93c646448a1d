//! spoolmq: a durable message queue that lives in a directory.
//!
//! The binary (`src/main.rs`) only parses arguments and prints; everything
//! else is here. Map of the engine:
//!
//! | module | concern |
//! |---|---|
//! | [`input`] | queue names and durations as typed by users |
//! | [`record`] | a message record's bytes and CRCs (no I/O) |
//! | [`segment`] | segment files: create, append, read, scan |
//! | [`index`] | slots, headers and WAL records (no I/O) |
//! | [`fsstore`] | the file store: write order, fsyncs, recovery |
//! | [`sqlstore`] | the SQLite store: one database per spool, a row per message |
//! | [`pgstore`] | the PostgreSQL store: queues shared by many hosts |
//! | [`pgconn`] | reaching PostgreSQL: libpq's settings, TLS first, no clear-text password |
//! | [`io`] | the I/O seam: the spool reached beneath a held directory, no links followed (or [`simfs`] in tests) |
//! | [`overlay`] | read-only commands: reads from the spool, writes kept in memory |
//! | [`store`] | the seam between queue logic and storage |
//! | [`queue`] | delivery: leases, attempts, dead letters, receipts |
//! | [`ids`] | message ids and receipts: unguessable, parsed back exactly |
//! | [`crypt`] | keys and encrypted bodies (XChaCha20-Poly1305) |
//! | [`lock`] | the per-queue and per-spool flocks |
//! | [`spool`] | where the spool is, which store it uses, its queues |
//! | [`migrate`] | converting a spool to another store |
//! | [`fsck`] | checking and repairing a spool |
//! | [`exec`] | waiting for messages, and the `exec` work loop |
//! | [`wake`] | how a waiter is woken, per store (inotify, LISTEN) |
//! | [`ingest`] | `push --lines`: stdin in batches |
//! | [`bench`] | `spoolmq bench`: throughput and latency |
//! | [`cli`] | clap definitions |
//! | [`doctor`] | does the file system keep the promises? |
//! | [`output`] | plain and JSON output |
//! | [`error`] | typed errors and exit codes |
//! | [`failpoint`] | crash points for tests (feature `failpoints`) |

pub mod bench;
pub mod cli;
pub mod crypt;
pub mod doctor;
pub mod error;
pub mod exec;
pub mod failpoint;
pub mod fsck;
pub mod fsstore;
pub mod ids;
pub mod index;
pub mod ingest;
pub mod input;
pub mod io;
pub mod lock;
pub mod migrate;
#[cfg(test)]
mod model_test;
pub mod output;
pub mod overlay;
pub mod pgconn;
pub mod pgstore;
#[cfg(test)]
mod power_loss;
pub mod queue;
pub mod record;
pub mod segment;
pub mod simfs;
pub mod spool;
pub mod sqlstore;
pub mod store;
pub mod wake;

pub use error::{Error, Result};
pub use queue::Queue;
pub use spool::Spool;
