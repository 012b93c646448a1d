//! Expiry (`push --ttl`): when a message's time to live ends. Decided here,
//! once, so that every store keeps the same instants.
//!
//! Invariants: a TTL is a whole number of seconds, at least 1 and at most
//! [`MAX_TTL_MS`]; an expiry is a whole second after the epoch (the fs store
//! keeps it in 32 bits of seconds, `crate::store::fs::index`), rounded up so
//! that a message never expires before its TTL has passed, and 0 means none.

use crate::base::error::{Error, Result};
use std::time::Duration;

/// The longest TTL: about 136 years, what 32 bits of seconds hold.
pub const MAX_TTL_MS: u64 = u32::MAX as u64 * 1000;

/// The latest expiry a store can keep (the last second 32 bits hold, in
/// 2106): later ones are kept as this.
pub const MAX_EXPIRY_MS: u64 = u32::MAX as u64 * 1000;

/// `ms` rounded up to a whole second (in ms): how every TTL and expiry is
/// kept.
pub fn whole_second(ms: u64) -> u64 {
    ms.div_ceil(1000).saturating_mul(1000)
}

/// A `--ttl` as a store keeps it: rounded up to whole seconds (ms). A usage
/// error for zero or more than [`MAX_TTL_MS`].
pub fn ttl_ms(d: Duration) -> Result<u64> {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Err(Error::usage("--ttl must be at least 1s"));
    }
    let kept = whole_second(ms);
    if kept > MAX_TTL_MS {
        return Err(Error::usage(format!(
            "--ttl of {}s is longer than the longest kept, {}s",
            kept / 1000,
            MAX_TTL_MS / 1000
        )));
    }
    Ok(kept)
}

/// When a TTL of `ttl_ms` counted from `from_ms` ends: 0 for no TTL, else
/// the next whole second at or after, at most [`MAX_EXPIRY_MS`].
pub fn expiry(from_ms: u64, ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
        return 0;
    }
    whole_second(from_ms.saturating_add(ttl_ms)).min(MAX_EXPIRY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(ttl_ms(Duration::from_millis(1)).unwrap(), 1000);
        assert_eq!(ttl_ms(Duration::from_millis(1500)).unwrap(), 2000);
        assert_eq!(ttl_ms(Duration::from_secs(3600)).unwrap(), 3_600_000);
        assert!(ttl_ms(Duration::ZERO).is_err());
        assert!(ttl_ms(Duration::from_secs(u64::from(u32::MAX) + 1)).is_err());
        assert_eq!(
            ttl_ms(Duration::from_secs(u64::from(u32::MAX))).unwrap(),
            MAX_TTL_MS
        );
    }

    #[test]
    fn an_expiry_is_a_whole_second_never_early() {
        assert_eq!(expiry(5, 0), 0);
        assert_eq!(expiry(1_000, 1_000), 2_000);
        assert_eq!(expiry(1_001, 1_000), 3_000);
        assert_eq!(expiry(u64::MAX, 1_000), MAX_EXPIRY_MS);
        for from in [0, 1, 999, 1_000, 123_456_789] {
            let e = expiry(from, 2_000);
            assert!(e >= from + 2_000 && e.is_multiple_of(1000) && e < from + 3_000);
        }
    }
}
