//! Layer 0, the basic pieces: user and group names (account), errors and exit codes, locks, notices for the user, the I/O seam
//! every file of a spool is reached through, the read-only overlay, crash
//! points, and (for tests) the simulated file system. They import nothing
//! from the layers above (docs/ARCHITECTURE.md).

pub(crate) mod account;
pub mod error;
pub(crate) mod failpoint;
pub mod io;
pub(crate) mod lock;
pub mod notice;
pub(crate) mod overlay;
#[cfg(test)]
pub mod simfs;
