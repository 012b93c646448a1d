//! Ordered groups (`push --group G`): what a group is as every store keeps
//! it, and which of a group's messages may be delivered. Decided here,
//! once, so that every store gives the same answer.
//!
//! Invariants:
//! * A group name is 1 to [`MAX_GROUP`] bytes as the user gives it; a store
//!   keeps only its [`GroupKey`], a 64-bit SipHash-1-3 of the bytes under a
//!   fixed, public key ([`HASH_KEY`]), never 0 (no group) nor `u64::MAX`
//!   (kept by the fs store for "grouped, not yet read"). The same bytes
//!   give the same key in every queue, store and release, so `migrate` and
//!   `export`/`import` copy it as it is.
//! * Two names that take one key are one group to spoolmq: their messages
//!   are delivered one at a time, in push order, together. That costs
//!   parallelism, never order (at 100,000 groups, about one chance in 3.7
//!   billion that some pair shares a key).
//! * Of a group's pending messages (ready, delayed, leased) only the oldest
//!   may be delivered, and only when it is ready (or its lease ran out): the
//!   next is not ready while an earlier one is leased or waiting for a
//!   retry. A dead letter (failed or expired), an acked or a purged message
//!   no longer holds its group ([`Order`]).

use crate::base::error::{Error, Result};
use std::collections::HashSet;
use std::hash::Hasher;

/// The longest group name accepted, in bytes.
pub const MAX_GROUP: usize = 256;

/// The SipHash key: fixed and public, so that a group's key is the same
/// everywhere.
const HASH_KEY: [u8; 16] = *b"spoolmq group 1.";

/// A group as stores keep it: the 64-bit hash of its name, never 0 or
/// `u64::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey(pub u64);

impl GroupKey {
    /// The key of a group name (any length; the CLI checks [`MAX_GROUP`]).
    pub fn of(name: &[u8]) -> GroupKey {
        let mut h = siphasher::sip::SipHasher13::new_with_key(&HASH_KEY);
        h.write(name);
        GroupKey(h.finish().clamp(1, u64::MAX - 1))
    }

    /// A key as a store read it back: `None` for 0 and `u64::MAX`, which no
    /// name gives.
    pub fn from_stored(v: u64) -> Option<GroupKey> {
        (v != 0 && v != u64::MAX).then_some(GroupKey(v))
    }

    /// The key as 16 lower-case hex digits (`inspect`, `export`).
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }

    /// Parses [`GroupKey::hex`]'s form.
    pub fn from_hex(s: &str) -> Option<GroupKey> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16)
            .ok()
            .and_then(GroupKey::from_stored)
    }
}

/// A group name a user gave, checked: a usage error if empty or longer than
/// [`MAX_GROUP`].
pub fn group(name: &[u8]) -> Result<GroupKey> {
    if name.is_empty() {
        return Err(Error::usage("--group: a group name cannot be empty"));
    }
    if name.len() > MAX_GROUP {
        return Err(Error::usage(format!(
            "--group: a group name of {} bytes is longer than the limit of {MAX_GROUP} bytes",
            name.len()
        )));
    }
    Ok(GroupKey::of(name))
}

/// How a pending message stands, as far as its group goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Not in a group, or the oldest pending message of its group: it may
    /// be delivered if it is ready.
    Free,
    /// An older message of its group is pending: it waits.
    Behind,
}

/// The group rule over pending messages met oldest first (a store's
/// delivery scan visits a group's messages in push order, since a grouped
/// message has no priority): the first met of a group is its head, every
/// later one is behind it.
#[derive(Debug, Default)]
pub struct Order {
    met: HashSet<GroupKey>,
}

impl Order {
    /// Where a pending message of `group` stands, met after those passed
    /// to this `Order` before.
    pub fn turn(&mut self, group: Option<GroupKey>) -> Turn {
        match group {
            Some(g) if !self.met.insert(g) => Turn::Behind,
            _ => Turn::Free,
        }
    }
}

/// Counts the groups that are blocked: whose oldest pending message is
/// leased or waiting for its time while at least one more waits behind
/// it. Fed each pending grouped message oldest first; holds two bits per
/// group, not the messages.
#[derive(Debug, Default)]
pub struct Blocked {
    /// Per group: whether its head is free to go (not leased, not
    /// delayed), and whether a message waits behind it.
    heads: std::collections::HashMap<GroupKey, (bool, bool)>,
}

impl Blocked {
    /// The next pending message of `group`, `free` to go or not.
    pub fn add(&mut self, group: GroupKey, free: bool) {
        self.heads
            .entry(group)
            .and_modify(|(_, behind)| *behind = true)
            .or_insert((free, false));
    }

    /// How many groups are blocked.
    pub fn count(&self) -> u64 {
        self.heads
            .values()
            .filter(|(free, behind)| !free && *behind)
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_hashes_the_same_everywhere() {
        // Pinned: stores and exports keep this value, so it must never change.
        assert_eq!(GroupKey::of(b"customer-42").hex(), "daac899f5fb96753");
        let g = GroupKey::of(b"a");
        assert_eq!(GroupKey::from_hex(&g.hex()), Some(g));
        assert_ne!(GroupKey::of(b"a"), GroupKey::of(b"b"));
        assert_eq!(GroupKey::from_hex("zz"), None);
        assert_eq!(GroupKey::from_hex("0000000000000000"), None);
        assert_eq!(GroupKey::from_hex("ffffffffffffffff"), None);
        assert!(group(b"").is_err());
        assert!(group(&[b'x'; MAX_GROUP]).is_ok());
        assert!(group(&[b'x'; MAX_GROUP + 1]).is_err());
    }

    #[test]
    fn only_the_oldest_of_a_group_has_its_turn() {
        let (a, b) = (Some(GroupKey(1)), Some(GroupKey(2)));
        let mut o = Order::default();
        let turns: Vec<Turn> = [a, None, a, b, None, b, a]
            .into_iter()
            .map(|g| o.turn(g))
            .collect();
        use Turn::*;
        assert_eq!(turns, [Free, Free, Behind, Free, Free, Behind, Behind]);
    }

    #[test]
    fn a_group_is_blocked_when_its_head_cannot_go_and_another_waits() {
        let (a, b, c) = (GroupKey(1), GroupKey(2), GroupKey(3));
        // a: head leased, one behind (blocked); b: head ready, one behind;
        // c: head leased alone.
        let mut got = Blocked::default();
        for (g, free) in [(a, false), (b, true), (a, true), (c, false), (b, true)] {
            got.add(g, free);
        }
        assert_eq!(got.count(), 1);
    }
}
