//! Layer 1, the message model: ids and receipts as users see them, sealed
//! bodies and keys, the names and durations users type, the retry policy
//! (backoff) and what a failed attempt was (docs/ARCHITECTURE.md).

pub mod backoff;
pub mod crypt;
pub mod failure;
pub mod ids;
pub mod input;
