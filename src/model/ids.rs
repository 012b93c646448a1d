//! Message ids and receipts as users see them, and why they reveal nothing.
//!
//! Inside a queue a message is its `seq` (1, 2, 3, ...). Printing seqs would
//! tell anyone holding an id how many messages the queue has carried and
//! let them guess their neighbours' ids, so an id is the seq encrypted with
//! a 64-bit block cipher (Speck64/128) keyed by the queue's random salt:
//!
//! ```text
//! id      = hex16( Speck64/128[key = expand(salt)](seq) )            16 hex digits
//! receipt = id ++ hex24( tag )                                         40 hex digits
//!           tag: 96 random bits drawn for each delivery (crate::queue)
//! ```
//!
//! A block cipher is a permutation: every seq has one id and every id names
//! at most one seq, so `parse_id` is exact and ids of one queue never
//! collide; without the salt (kept in the spool, readable only by those who
//! can read the bodies anyway) ids look random and do not sort in push
//! order. Ids are not secrets: what protects a delivery is the receipt's
//! random tag, which the queue checks before `ack`, `nack` or `extend`.
//!
//! Speck is chosen for being small enough to write out and check against
//! its published test vector; it is not used for confidentiality here (the
//! bodies use XChaCha20-Poly1305, see [`crate::model::crypt`]).

const ROUNDS: usize = 27;

/// The id cipher of one queue: Speck64/128's round keys for its salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ids {
    salt: u64,
    rk: [u32; ROUNDS],
}

/// SplitMix64's output function: spreads a salt over the 128-bit key.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Random part of a receipt: 96 bits.
pub type ReceiptTag = [u8; 12];

/// A message's id as users see it.
pub fn format_id(seq: u64, salt: u64) -> String {
    Ids::new(salt).format(seq)
}

/// Parses an id printed by [`format_id`] back into a seq.
pub fn parse_id(id: &str, salt: u64) -> Option<u64> {
    Ids::new(salt).parse(id)
}

impl Ids {
    /// The cipher for a queue with this salt.
    pub fn new(salt: u64) -> Ids {
        let a = mix(salt);
        let b = mix(salt ^ 0x9e37_79b9_7f4a_7c15);
        Ids::with_key(
            salt,
            [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32],
        )
    }

    /// Speck64/128's key schedule; `key[0]` is the first round key.
    fn with_key(salt: u64, key: [u32; 4]) -> Ids {
        let mut rk = [0u32; ROUNDS];
        let mut k = key[0];
        let mut l = [key[1], key[2], key[3]];
        for (i, r) in rk.iter_mut().enumerate() {
            *r = k;
            let li = l[i % 3].rotate_right(8).wrapping_add(k) ^ i as u32;
            l[i % 3] = li;
            k = k.rotate_left(3) ^ li;
        }
        Ids { salt, rk }
    }

    /// The salt these ids were made for.
    pub fn salt(&self) -> u64 {
        self.salt
    }

    fn encrypt(&self, v: u64) -> u64 {
        let (mut x, mut y) = ((v >> 32) as u32, v as u32);
        for k in self.rk {
            x = x.rotate_right(8).wrapping_add(y) ^ k;
            y = y.rotate_left(3) ^ x;
        }
        (u64::from(x) << 32) | u64::from(y)
    }

    fn decrypt(&self, v: u64) -> u64 {
        let (mut x, mut y) = ((v >> 32) as u32, v as u32);
        for k in self.rk.iter().rev() {
            y = (y ^ x).rotate_right(3);
            x = ((x ^ k).wrapping_sub(y)).rotate_left(8);
        }
        (u64::from(x) << 32) | u64::from(y)
    }

    /// The id of message `seq`: 16 lowercase hex digits.
    pub fn format(&self, seq: u64) -> String {
        ascii(&self.format_into(seq))
    }

    /// [`Ids::format`] without an allocation: a push of a million lines
    /// prints a million ids.
    pub fn format_into(&self, seq: u64) -> [u8; 16] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let v = self.encrypt(seq);
        let mut id = [0u8; 16];
        for (i, d) in id.iter_mut().enumerate() {
            *d = HEX[((v >> ((15 - i) * 4)) & 0xf) as usize];
        }
        id
    }

    /// The seq of an id printed by [`Ids::format`]; `None` if it is not 16
    /// hex digits.
    pub fn parse(&self, id: &str) -> Option<u64> {
        let digits: &[u8; 16] = id.as_bytes().try_into().ok()?;
        hex_value(digits).map(|v| self.decrypt(v))
    }

    /// A receipt: the id and the random tag of one delivery (40 hex digits).
    pub fn format_receipt(&self, seq: u64, tag: &ReceiptTag) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut r = [0u8; 40];
        r[..16].copy_from_slice(&self.format_into(seq));
        for (pair, b) in r[16..].chunks_exact_mut(2).zip(tag) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 15)];
        }
        ascii(&r)
    }

    /// The id a receipt printed by [`Ids::format_receipt`] opens with (the
    /// whole text if it is shorter).
    pub fn id_of_receipt(r: &str) -> &str {
        r.get(..16).unwrap_or(r)
    }

    /// Parses a receipt printed by [`Ids::format_receipt`].
    pub fn parse_receipt(&self, r: &str) -> Option<(u64, ReceiptTag)> {
        let r: &[u8; 40] = r.as_bytes().try_into().ok()?;
        let (id, rest) = r.split_first_chunk::<16>()?;
        let mut tag = [0u8; 12];
        let mut bad = 0;
        for (t, pair) in tag.iter_mut().zip(rest.chunks_exact(2)) {
            let (hi, lo) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
            bad |= hi | lo;
            *t = hi << 4 | lo & 15;
        }
        let seq = hex_value(id).map(|v| self.decrypt(v))?;
        (bad & 0x10 == 0).then_some((seq, tag))
    }
}

/// Each byte's value as a hex digit (either case), or 0x10 if it is not
/// one: a receipt is checked and decoded in one pass, without a branch
/// per byte (the two passes were a fifth of an `ack` of 100,000).
const NIBBLE: [u8; 256] = {
    let mut t = [0x10u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Hex digits as a string (they are ASCII, so the check cannot fail).
fn ascii(digits: &[u8]) -> String {
    std::str::from_utf8(digits)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The value of 16 hex digits, or `None` if one is not a hex digit.
fn hex_value(digits: &[u8; 16]) -> Option<u64> {
    let mut v = 0u64;
    let mut bad = 0;
    for &d in digits {
        let n = NIBBLE[usize::from(d)];
        bad |= n;
        v = v << 4 | u64::from(n & 15);
    }
    (bad & 0x10 == 0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speck_matches_the_published_test_vector() {
        // Speck64/128 from "The SIMON and SPECK Families of Lightweight Block
        // Ciphers" (Beaulieu et al., 2013), appendix C: key 1b1a1918 13121110
        // 0b0a0908 03020100, plaintext 3b726574 7475432d, ciphertext
        // 8c6fa548 454e028b.
        let ids = Ids::with_key(0, [0x0302_0100, 0x0b0a_0908, 0x1312_1110, 0x1b1a_1918]);
        assert_eq!(ids.encrypt(0x3b72_6574_7475_432d), 0x8c6f_a548_454e_028b);
        assert_eq!(ids.decrypt(0x8c6f_a548_454e_028b), 0x3b72_6574_7475_432d);
    }

    #[test]
    fn ids_round_trip_and_do_not_show_the_sequence() {
        let ids = Ids::new(42);
        let printed: Vec<String> = (1..=1000).map(|s| ids.format(s)).collect();
        for (seq, id) in (1..=1000).zip(&printed) {
            assert_eq!(ids.parse(id), Some(seq));
        }
        // Neither in push order nor close together.
        let mut sorted = printed.clone();
        sorted.sort();
        assert_ne!(sorted, printed);
        let a = u64::from_str_radix(&printed[0], 16).unwrap();
        let b = u64::from_str_radix(&printed[1], 16).unwrap();
        assert!(a.abs_diff(b) > 1 << 20, "{a:x} {b:x}");
        // Another queue's salt gives other ids.
        assert_ne!(Ids::new(43).format(1), printed[0]);
    }

    #[test]
    fn receipts_round_trip_and_reject_bad_text() {
        let ids = Ids::new(7);
        let tag = [0xab; 12];
        let r = ids.format_receipt(3, &tag);
        assert_eq!(r.len(), 40);
        // A receipt opens with the id (`Delivery::id` takes it from there).
        assert_eq!(Ids::id_of_receipt(&r), ids.format(3));
        assert_eq!(ids.parse_receipt(&r), Some((3, tag)));
        assert_eq!(ids.parse_receipt(&r[..39]), None);
        assert_eq!(ids.parse_receipt(&format!("{}g", &r[..39])), None);
        assert_eq!(ids.parse("+123456789abcdef"), None);
        // A wrong byte anywhere is refused; capitals read as small letters.
        for at in 0..40 {
            for bad in ["g", "G", " ", "/", ":", "@", "`", "\u{e9}"] {
                // A two-byte character stands in for two digits.
                let skip = (at + bad.len()).min(40);
                let wrong = format!("{}{bad}{}", &r[..at], &r[skip..]);
                let what = (at, bad);
                if wrong.len() == 40 {
                    assert_eq!(ids.parse_receipt(&wrong), None, "{what:?}");
                }
                if let Some(id) = wrong.get(..16).filter(|_| at < 16) {
                    assert_eq!(ids.parse(id), None, "{what:?}");
                }
            }
        }
        assert_eq!(ids.parse_receipt(&r.to_uppercase()), Some((3, tag)));
        assert_eq!(ids.parse(&r[..16].to_uppercase()), Some(3));
    }
}
