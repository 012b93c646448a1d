//! Layer 5, operations: what commands do beyond one queue call (checking
//! and repairing, converting a spool, the worker loop and waiting, bulk
//! push, receipts read from stdin, the doctor and the benchmark). They use the spool and the queues
//! below them (docs/ARCHITECTURE.md).

pub mod bench;
pub mod doctor;
pub mod exec;
pub mod fsck;
pub mod ingest;
pub mod migrate;
pub mod receipts;
pub mod wake;
