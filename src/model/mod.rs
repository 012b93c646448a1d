//! Layer 1, the message model: ids and receipts as users see them, sealed
//! bodies and keys, the names and durations users type, the retry policy
//! (backoff), what a failed attempt was and when a TTL ends
//! (docs/ARCHITECTURE.md).

pub mod backoff;
pub mod crypt;
pub mod failure;
pub mod group;
pub mod ids;
pub mod input;
pub mod ttl;
pub mod unique;
