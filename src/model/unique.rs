//! Unique keys (`push --key`, `--key-from-line`, `--unique-for`): what a
//! key is as every store keeps it, and when it is held. Decided here, once,
//! so that every store gives the same answer.
//!
//! Invariants:
//! * A key is 1 to [`MAX_KEY`] bytes as the user gives it; a store keeps
//!   only its [`UniqueKey`], a 128-bit SipHash-1-3 of the bytes under a
//!   fixed, public key ([`HASH_KEY`]). The same bytes give the same hash in
//!   every queue, store and release, so `migrate` and `export`/`import`
//!   copy the hash as it is. Two keys taking one hash is as likely as
//!   guessing a 128-bit value; the hash is no secret (see docs/SECURITY.md).
//! * A key is held by at most one message of a queue at a time: while that
//!   message is pending (ready, delayed or leased) and, once it is acked,
//!   for its `--unique-for` window. A dead letter (failed or expired) or a
//!   purged message lets go of its key at once; `retry` brings a message
//!   back without it.
//! * Windows are whole seconds (rounded up), at most [`MAX_UNIQUE_FOR_MS`].

use crate::base::error::{Error, Result};
use std::hash::Hasher;
use std::time::Duration;

/// The longest key accepted, in bytes.
pub const MAX_KEY: usize = 256;

/// The longest `--unique-for`: what 32 bits of seconds hold (about 136
/// years), as the fs store keeps it.
pub const MAX_UNIQUE_FOR_MS: u64 = u32::MAX as u64 * 1000;

/// The SipHash key: fixed and public, so that a key's hash is the same
/// everywhere (a secret one would tie it to one queue).
const HASH_KEY: [u8; 16] = *b"spoolmq unique 1";

/// A unique key as stores keep it: the 128-bit hash of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UniqueKey(pub [u8; 16]);

impl UniqueKey {
    /// The hash of key bytes (any length; the CLI checks [`MAX_KEY`]).
    pub fn of(key: &[u8]) -> UniqueKey {
        let mut h = siphasher::sip128::SipHasher13::new_with_key(&HASH_KEY);
        h.write(key);
        use siphasher::sip128::Hasher128;
        UniqueKey(h.finish128().as_bytes())
    }

    /// The hash as 32 lower-case hex digits (`inspect`, `export`).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`UniqueKey::hex`]'s form.
    pub fn from_hex(s: &str) -> Option<UniqueKey> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(UniqueKey(out))
    }
}

/// Key bytes a user gave, checked: a usage error if empty or longer than
/// [`MAX_KEY`] (`what` names where they came from).
pub fn key(bytes: &[u8], what: &str) -> Result<UniqueKey> {
    if bytes.is_empty() {
        return Err(Error::usage(format!("{what}: a key cannot be empty")));
    }
    if bytes.len() > MAX_KEY {
        return Err(Error::usage(format!(
            "{what}: a key of {} bytes is longer than the limit of {MAX_KEY} bytes",
            bytes.len()
        )));
    }
    Ok(UniqueKey::of(bytes))
}

/// A `--unique-for` as stores keep it: whole seconds, rounded up (ms).
pub fn unique_for_ms(d: Duration) -> Result<u64> {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let kept = crate::model::ttl::whole_second(ms);
    if kept > MAX_UNIQUE_FOR_MS {
        return Err(Error::usage(format!(
            "--unique-for of {}s is longer than the longest kept, {}s",
            kept / 1000,
            MAX_UNIQUE_FOR_MS / 1000
        )));
    }
    Ok(kept)
}

/// What a store keeps of a key: the message that holds (or held) it, and
/// until when it is held once that message is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    /// The message that took the key.
    pub seq: u64,
    /// Its push time, so that a hold is never taken for another message's.
    pub pushed_at_ms: u64,
    /// Its `--unique-for` (ms, whole seconds; 0: none).
    pub unique_for_ms: u64,
    /// 0 while the message is pending; once it is done, when the key is
    /// free: acked, [`free_at`] of the ack; dead or purged, at once (1).
    pub free_at_ms: u64,
}

/// When a key becomes free once its message is done: `window_ms` after an
/// ack at `acked_at_ms` (rounded up to a whole second), or at once (1) for
/// a message acked with no window or done without being acked. Stores
/// write what this says.
pub fn free_at(acked_at_ms: Option<u64>, window_ms: u64) -> u64 {
    match acked_at_ms {
        Some(at) if window_ms > 0 => crate::model::ttl::whole_second(at.saturating_add(window_ms)),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_hashes_the_same_everywhere() {
        // Pinned: stores and exports keep this value, so it must never change.
        assert_eq!(
            UniqueKey::of(b"report-2026-12-01.csv").hex(),
            "190bc4186ee8a86c9183aaf2565fc5dd"
        );
        let h = UniqueKey::of(b"a");
        assert_eq!(UniqueKey::from_hex(&h.hex()), Some(h));
        assert_ne!(UniqueKey::of(b"a"), UniqueKey::of(b"b"));
        assert_eq!(UniqueKey::from_hex("zz"), None);
        assert!(key(b"", "--key").is_err());
        assert!(key(&[b'x'; MAX_KEY], "--key").is_ok());
        assert!(key(&[b'x'; MAX_KEY + 1], "--key").is_err());
    }

    #[test]
    fn a_key_is_free_after_its_window() {
        assert_eq!(free_at(None, 60_000), 1);
        assert_eq!(free_at(Some(1_500), 0), 1);
        assert_eq!(free_at(Some(1_500), 1_000), 3_000);
        assert_eq!(free_at(Some(1_000), 60_000), 61_000);
        assert_eq!(unique_for_ms(Duration::from_millis(1)).unwrap(), 1_000);
        assert_eq!(unique_for_ms(Duration::ZERO).unwrap(), 0);
    }
}
