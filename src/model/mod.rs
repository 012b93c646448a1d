//! Layer 1, the message model: ids and receipts as users see them, sealed
//! bodies and keys, and the names and durations users type
//! (docs/ARCHITECTURE.md).

pub mod crypt;
pub mod ids;
pub mod input;
