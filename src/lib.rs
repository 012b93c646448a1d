//! spoolmq: a durable message queue that lives in a directory.
//!
//! The binary (`src/main.rs`) only calls [`cli::app::main`]; everything is
//! here.
//!
//! The folders are the layers of `docs/ARCHITECTURE.md`; a module imports
//! only from its own layer and the ones below (a test checks it):
//!
//! | layer | modules | concern |
//! |---|---|---|
//! | 0 | [`base`]: [`base::error`], [`base::lock`], [`base::io`], [`base::overlay`], [`base::failpoint`] | errors and exit codes, flocks, the I/O seam (the spool reached beneath a held directory, no links followed), read-only commands, crash points |
//! | 1 | [`model`]: [`model::ids`], [`model::crypt`], [`model::input`] | ids and receipts, sealed bodies, what users type |
//! | 2 | [`store`] | the seam between queue logic and storage |
//! | 3 | [`store::fs`] ([`store::fs::record`], [`store::fs::segment`], [`store::fs::index`]), [`store::sqlite`], [`store::postgres`], [`queue`] | the three stores; delivery (leases, attempts, dead letters, receipts) |
//! | 4 | [`spool`] | where the spool is, which store it uses, its queues |
//! | 5 | [`ops`]: fsck, migrate, exec, wake, ingest, doctor, bench | what commands do |
//! | 6 | [`cli`], [`cli::app`], [`cli::output`] | clap definitions, one function per command, plain and JSON output |
//!
//! Visibility says what is the library's API: [`Spool`], [`Queue`],
//! [`Error`] and [`Result`] (re-exported here), the store seam
//! ([`store`]), the fs store and its formats (which the fuzz and format
//! tests read), the I/O seam ([`base::io`]), notices ([`base::notice`]) and
//! the message model ([`model`]). The operations, the command line's
//! output, the sqlite and PostgreSQL stores, locks, the read-only overlay
//! and crash points are `pub(crate)`: reached through [`Spool`] and
//! [`Queue`], never named by a user of the library.
//!
//! The library is what the binary uses; another Rust program may use it too:
//!
//! ```
//! use spoolmq::Spool;
//! use spoolmq::queue::now_ms;
//! use std::time::Duration;
//!
//! # fn main() -> spoolmq::Result<()> {
//! # let tmp = tempfile::tempdir().unwrap();
//! let spool = Spool::open(tmp.path().join("spool"), None)?;
//! let mut q = spool.open_queue("jobs", true)?.expect("made with create");
//! q.push(&mut [&b"resize img1.png"[..]].into_iter(), Duration::ZERO, now_ms())?;
//! let got = q.pop(1, Duration::from_secs(60), 5, now_ms())?;
//! assert_eq!(got[0].body, b"resize img1.png");
//! q.ack(&[got[0].receipt.clone()], now_ms())?;
//! # Ok(())
//! # }
//! ```
//!
//! These docs are written for the people who work on spoolmq as much as for
//! those who use the library: read them with `cargo doc --document-private-items`,
//! which resolves the links to private items (each file's notes on format,
//! write order and invariants point at the private functions that keep them).

// Links to private items are meant (see above); a plain `cargo doc` would
// warn about each.
#![allow(rustdoc::private_intra_doc_links)]

pub mod base;
pub mod cli;
pub mod model;
#[cfg(test)]
mod model_test;
pub(crate) mod ops;
#[cfg(test)]
mod power_loss;
pub mod queue;
pub mod spool;
pub mod store;

pub use base::error::{Error, Result};
pub use queue::Queue;
pub use spool::Spool;
