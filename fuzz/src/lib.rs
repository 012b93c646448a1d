//! The checks behind spoolmq's fuzz targets. Each `pub fn` here is one
//! target's whole body; `fuzz_targets/*.rs` only hand it libFuzzer's bytes,
//! and `tests/it/fuzz_regressions.rs` in the root crate includes this file by
//! path to replay saved inputs through exactly the same code. So: depend on
//! nothing but `spoolmq`, `crc32fast` (a dependency of spoolmq itself) and std.
//!
//! A check fails by panicking. Besides "the decoder does not panic", every
//! target checks what a decoder's answer must mean, against a slow reference
//! written from the format docs (src/store/fs/record.rs, src/store/fs/index.rs, src/model/input.rs),
//! and that encoding what was decoded gives back the same bytes.
//!
//! Random bytes rarely pass a CRC, so the first input byte picks a *mode*:
//! the bytes as they are, the bytes with their CRCs fixed up, or bytes built
//! by the encoders from the input and then damaged by it (flips, cuts,
//! appended junk). All three reach the decoders as one plain `&[u8]`.

use spoolmq::model::input;
use spoolmq::store::fs::index::{
    self, Header, SegmentEntry, SlotDamage, WAL_ENTRY_LEN, WAL_HEAD_LEN,
};
use spoolmq::store::fs::record::{
    self, Damage, GROUPED_HEADER_LEN, GROUPED_RECORD_MAGIC, KEYED_HEADER_LEN, KEYED_RECORD_MAGIC,
    LONG_HEADER_LEN, LONG_RECORD_MAGIC, MAX_BODY, RANKED_RECORD_MAGIC, RECORD_HEADER_LEN,
    RECORD_MAGIC,
};
use spoolmq::store::fs::segment::{self, Found};
use spoolmq::store::{Counters, Loc, Meta, State};

const SLOT_LEN: usize = 64;
/// Bytes of the index header before its segment list (src/store/fs/index.rs).
const HEADER_FIXED: usize = 180;

/// Reads the fuzzer's input front to back; past its end, zeros.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Self {
        Cursor { b, at: 0 }
    }
    fn done(&self) -> bool {
        self.at >= self.b.len()
    }
    fn u8(&mut self) -> u8 {
        let v = self.b.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v
    }
    fn le<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        for x in &mut a {
            *x = self.u8();
        }
        a
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.le())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.le())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.le())
    }
    /// Up to `n` bytes (fewer at the end of the input).
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let from = self.at.min(self.b.len());
        let to = from.saturating_add(n).min(self.b.len());
        self.at = from.saturating_add(n);
        &self.b[from..to]
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Damages `buf` as the rest of the input says: flips, cuts, appended junk.
fn damage(buf: &mut Vec<u8>, c: &mut Cursor) {
    while !c.done() {
        match c.u8() % 4 {
            0 if !buf.is_empty() => {
                let at = usize::from(c.u16()) % buf.len();
                buf[at] ^= c.u8() | 1;
            }
            1 => {
                let cut = usize::from(c.u16()) % (buf.len() + 1);
                buf.truncate(buf.len() - cut);
            }
            2 => {
                let n = usize::from(c.u8());
                buf.extend_from_slice(c.bytes(n));
            }
            _ => return,
        }
    }
}

// ---------------------------------------------------------------- records

/// Target `record_decode`: `record::{decode_header, decode, check_body,
/// find_next, check_segment_header}` and `segment::scan`.
pub fn record_decode(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let buf = match mode % 3 {
        0 => rest.to_vec(),
        1 => fix_record_crcs(rest),
        _ => build_records(rest),
    };
    // scan's base offset is a file offset (16, or a committed length read
    // from the index header): small enough that base + buf.len() fits in u64.
    let base = match (mode / 3) % 4 {
        0 => 0,
        1 => record::SEGMENT_HEADER_LEN,
        2 => u64::from(u32::MAX) + 7,
        _ => u64::MAX / 2,
    };
    check_records(&buf, base);
}

/// Every check of `record_decode` on one buffer.
pub fn check_records(buf: &[u8], base: u64) {
    check_record_at(buf);
    if buf.len() > RECORD_HEADER_LEN {
        check_record_at(&buf[1..]);
    }
    check_segment_header(buf);
    for from in [0, 1, buf.len() / 2, buf.len(), buf.len() + 1] {
        assert_eq!(
            record::find_next(buf, from),
            next_header_slow(buf, from),
            "find_next(from {from}) disagrees with a byte-by-byte search"
        );
    }
    check_scan(buf, base);
}

/// The slow truth of `find_next`: the first offset at or after `from` where
/// a header checks out.
fn next_header_slow(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find(|&p| record::decode_header(&buf[p..]).is_ok())
}

/// `decode_header` and `decode` on the record at the start of `buf`: each
/// answer must be the one the format doc gives, and an accepted record must
/// re-encode to the same bytes.
fn check_record_at(buf: &[u8]) {
    let head = record::decode_header(buf);
    // The header's length by its magic: short (`SPMR`), long (`SPM2`) or
    // keyed (`SPM3`).
    let len = match buf.get(..4) {
        Some(m) if m == RECORD_MAGIC => Some(RECORD_HEADER_LEN),
        Some(m) if m == LONG_RECORD_MAGIC => Some(LONG_HEADER_LEN),
        Some(m) if m == KEYED_RECORD_MAGIC || m == RANKED_RECORD_MAGIC => Some(KEYED_HEADER_LEN),
        Some(m) if m == GROUPED_RECORD_MAGIC => Some(GROUPED_HEADER_LEN),
        _ => None,
    };
    let ranked = buf.get(..4) == Some(&RANKED_RECORD_MAGIC[..]);
    let grouped = buf.get(..4) == Some(&GROUPED_RECORD_MAGIC[..]);
    let crc_at = len.map_or(0, |l| l - 8);
    let crc_ok = |l: usize| crc32fast::hash(&buf[..l - 4]) == u32_at(buf, l - 4);
    // A long header has a TTL and an expiry; a keyed one both or neither,
    // and zeros in its reserved word; a ranked one a priority of 1 to 9 and
    // flag bit 0 alone there, and without that flag no window and no key;
    // a grouped one the same with priority 0 and a group neither 0 nor
    // all ones at +64.
    let one_encoding = |l: usize| match l {
        RECORD_HEADER_LEN => true,
        _ if grouped => {
            (u32_at(buf, 32) == 0) == (u32_at(buf, 36) == 0)
                && buf[44] == 0
                && buf[45] <= 1
                && buf[46..48] == [0, 0]
                && (buf[45] == 1 || (u32_at(buf, 40) == 0 && buf[48..64] == [0; 16]))
                && u64_at(buf, 64) != 0
                && u64_at(buf, 64) != u64::MAX
        }
        LONG_HEADER_LEN => u32_at(buf, 32) != 0 && u32_at(buf, 36) != 0,
        _ if ranked => {
            (u32_at(buf, 32) == 0) == (u32_at(buf, 36) == 0)
                && (1..=9).contains(&buf[44])
                && buf[45] <= 1
                && buf[46..48] == [0, 0]
                && (buf[45] == 1 || (u32_at(buf, 40) == 0 && buf[48..64] == [0; 16]))
        }
        _ => (u32_at(buf, 32) == 0) == (u32_at(buf, 36) == 0) && u32_at(buf, 44) == 0,
    };
    match head {
        Err(Damage::Short) => {
            assert!(buf.len() < RECORD_HEADER_LEN || len.is_some_and(|l| buf.len() < l))
        }
        Err(Damage::BadMagic) => assert!(buf.len() >= RECORD_HEADER_LEN && len.is_none()),
        Err(Damage::BadHeaderCrc) => {
            let l = len.expect("a magic");
            assert!(buf.len() >= l);
            assert!(!crc_ok(l) || !one_encoding(l));
        }
        Err(Damage::TooLong) => {
            let l = len.expect("a magic");
            assert!(crc_ok(l) && one_encoding(l));
            assert!(u64::from(u32_at(buf, 4)) > MAX_BODY);
        }
        Err(d) => panic!("decode_header cannot find {d:?}: it only reads the header"),
        Ok(h) => {
            let l = len.expect("a magic");
            assert!(buf.len() >= l && crc_ok(l) && one_encoding(l));
            assert!(u64::from(h.body_len) <= MAX_BODY);
            assert_eq!(h.body_len, u32_at(buf, 4));
            assert_eq!(h.seq, u64_at(buf, 8));
            assert_eq!(h.pushed_at_ms, u64_at(buf, 16));
            assert_eq!(h.not_before_ms, u64_at(buf, 24));
            assert_eq!(h.body_crc, u32_at(buf, crc_at));
            let ttl = if l != RECORD_HEADER_LEN {
                u64::from(u32_at(buf, 32)) * 1000
            } else {
                0
            };
            assert_eq!(h.ttl_ms, ttl);
            let expires = if l != RECORD_HEADER_LEN {
                u64::from(u32_at(buf, 36)) * 1000
            } else {
                0
            };
            assert_eq!(h.expires_at_ms, expires);
            let keyed =
                (l == KEYED_HEADER_LEN && (!ranked || buf[45] == 1)) || (grouped && buf[45] == 1);
            assert_eq!(h.priority, if ranked { buf[44] } else { 0 });
            let group = grouped.then(|| spoolmq::store::GroupKey(u64_at(buf, 64)));
            assert_eq!(h.group, group);
            let unique = keyed.then(|| {
                let key: [u8; 16] = buf[48..64].try_into().unwrap();
                let window = u64::from(u32_at(buf, 40)) * 1000;
                (spoolmq::model::unique::UniqueKey(key), window)
            });
            assert_eq!(h.unique, unique);
            assert_eq!(h.head_len(), l);
            assert_eq!(h.record_len(), l as u64 + u64::from(h.body_len));
        }
    }
    let whole = record::decode(buf);
    match (head, whole) {
        (Err(d), r) => assert_eq!(r, Err(d), "decode and decode_header disagree"),
        (Ok(h), Err(Damage::Short)) => {
            assert!((buf.len() as u64) < h.record_len());
            assert_eq!(
                record::check_body(&h, &buf[h.head_len()..]),
                Err(Damage::Short)
            );
        }
        (Ok(h), Err(Damage::BadBodyCrc)) => {
            assert!(buf.len() as u64 >= h.record_len());
            let body = &buf[h.head_len()..h.record_len() as usize];
            assert_ne!(crc32fast::hash(body), h.body_crc);
        }
        (Ok(_), Err(d)) => panic!("decode found {d:?} in a header decode_header accepted"),
        (Ok(h), Ok((h2, body))) => {
            assert_eq!(h, h2);
            assert_eq!(body.len(), h.body_len as usize);
            let mut again = Vec::new();
            let f = record::Fields {
                seq: h.seq,
                pushed_at_ms: h.pushed_at_ms,
                not_before_ms: h.not_before_ms,
                ttl_ms: h.ttl_ms,
                expires_at_ms: h.expires_at_ms,
                unique: h.unique,
                priority: h.priority,
                group: h.group,
            };
            record::encode_fields(f, body, &mut again);
            assert_eq!(again.len() as u64, h.record_len());
            assert_eq!(
                &again[..],
                &buf[..again.len()],
                "a decoded record re-encodes differently"
            );
        }
    }
}

/// Written against what every version of the segment file header has: a
/// fixed length and a magic at +0 (so this file keeps compiling while the
/// fields after the magic change).
fn check_segment_header(buf: &[u8]) {
    let len = record::SEGMENT_HEADER_LEN as usize;
    if record::check_segment_header(buf).is_err() {
        return;
    }
    assert!(buf.len() >= len && buf.starts_with(&record::SEGMENT_MAGIC));
    assert!(
        record::check_segment_header(&buf[..len - 1]).is_err(),
        "a cut header accepted"
    );
    let mut bad = buf[..len].to_vec();
    bad[0] ^= 0x20;
    assert!(
        record::check_segment_header(&bad).is_err(),
        "a header with a bad magic accepted"
    );
}

/// `segment::scan` must cut `buf` into back-to-back pieces, each one what a
/// byte-by-byte reading of the format says it is.
fn check_scan(buf: &[u8], base: u64) {
    let (found, end) = segment::scan(buf, base);
    let mut at = 0usize; // relative to buf
    let mut good_end = 0usize;
    for f in &found {
        match *f {
            Found::Good { offset, header } | Found::BadBody { offset, header } => {
                assert_eq!(offset, base + at as u64, "scan left a gap or overlap");
                assert_eq!(record::decode_header(&buf[at..]), Ok(header));
                let len = header.record_len() as usize;
                assert!(at + len <= buf.len(), "scan reported a record past the end");
                let decoded = record::decode(&buf[at..at + len]);
                assert_eq!(
                    matches!(f, Found::Good { .. }),
                    decoded.is_ok(),
                    "scan called a record {f:?}, decode says {decoded:?}"
                );
                at += len;
                good_end = at;
            }
            Found::Garbage {
                offset,
                len,
                damage,
            } => {
                assert_eq!(offset, base + at as u64, "scan left a gap or overlap");
                assert!(len >= 1);
                let len = len as usize;
                assert!(at + len <= buf.len());
                match record::decode_header(&buf[at..]) {
                    Ok(h) => {
                        assert_eq!(damage, Damage::Short);
                        assert!(h.record_len() > (buf.len() - at) as u64);
                    }
                    Err(d) => assert_eq!(d, damage),
                }
                // Resync: the garbage runs to the next good header or the end.
                assert_eq!(
                    next_header_slow(buf, at + 1).unwrap_or(buf.len()),
                    at + len,
                    "scan resynced somewhere else than the next good header"
                );
                at += len;
            }
        }
    }
    assert_eq!(at, buf.len(), "scan stopped before the end");
    assert_eq!(
        end,
        base + good_end as u64,
        "scan's end is not past the last good header"
    );
}

/// The input with every `SPMR`-started record's CRCs fixed up in place.
fn fix_record_crcs(rest: &[u8]) -> Vec<u8> {
    let mut b = rest.to_vec();
    let mut p = 0;
    while p + RECORD_HEADER_LEN <= b.len() {
        if b[p..p + 4] != RECORD_MAGIC {
            p += 1;
            continue;
        }
        let body_end = p + RECORD_HEADER_LEN + u32_at(&b, p + 4) as usize;
        if body_end <= b.len() {
            let crc = crc32fast::hash(&b[p + RECORD_HEADER_LEN..body_end]);
            put_u32(&mut b, p + 32, crc);
        }
        let crc = crc32fast::hash(&b[p..p + 36]);
        put_u32(&mut b, p + 36, crc);
        p = if body_end <= b.len() {
            body_end
        } else {
            p + RECORD_HEADER_LEN
        };
    }
    b
}

/// Records made by `record::encode` (and headers claiming any length), then damaged.
fn build_records(rest: &[u8]) -> Vec<u8> {
    let mut c = Cursor::new(rest);
    let mut b = Vec::new();
    let count = c.u8() % 8;
    for _ in 0..count {
        match c.u8() % 3 {
            0 | 1 => {
                let seq = u64::from(c.u8());
                let not_before = u64::from(c.u8());
                let n = usize::from(c.u8());
                let body = c.bytes(n).to_vec();
                // Long records (with a TTL) and keyed ones as well as short ones.
                let ttl_ms = u64::from(c.u8() % 3) * 1000 * u64::from(c.u8());
                let unique = c.u8().is_multiple_of(3).then(|| {
                    let key = spoolmq::model::unique::UniqueKey(c.le());
                    (key, u64::from(c.u16()) * 1000)
                });
                let f = record::Fields {
                    seq,
                    pushed_at_ms: 1_700_000_000_000,
                    not_before_ms: not_before,
                    ttl_ms,
                    expires_at_ms: if ttl_ms > 0 {
                        u64::from(c.u32()) * 1000
                    } else {
                        0
                    },
                    unique,
                    // Ranked records (a priority) a third of the time.
                    priority: if c.u8().is_multiple_of(3) {
                        1 + c.u8() % 9
                    } else {
                        0
                    },
                    group: None,
                };
                // And grouped ones (no priority) a quarter of the time.
                let f = if c.u8().is_multiple_of(4) {
                    record::Fields {
                        priority: 0,
                        group: Some(spoolmq::model::group::GroupKey::of(&c.u8().to_le_bytes())),
                        ..f
                    }
                } else {
                    f
                };
                record::encode_fields(f, &body, &mut b);
            }
            _ => {
                // A header whose CRC checks out, claiming `body_len`, with no body.
                let start = b.len();
                b.extend_from_slice(&RECORD_MAGIC);
                b.extend_from_slice(&c.u32().to_le_bytes());
                b.extend_from_slice(&[0; 28]);
                let crc = crc32fast::hash(&b[start..start + 36]);
                b.extend_from_slice(&crc.to_le_bytes());
            }
        }
    }
    damage(&mut b, &mut c);
    b
}

// ------------------------------------------------------------------ holds

/// Target `holds_decode`: `holds::{decode_header, decode_entry}` and their
/// round trips. The first byte picks: even, a header; odd, an entry; and
/// (its bit 1) whether the CRC is fixed first, so that the fields behind it
/// are reached.
pub fn holds_decode(data: &[u8]) {
    use spoolmq::store::fs::holds::{self, Entry};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fix = mode & 2 != 0;
    if mode % 2 == 0 {
        let mut b = rest.to_vec();
        if fix && b.len() >= 32 {
            let crc = crc32fast::hash(&b[..28]);
            put_u32(&mut b, 28, crc);
        }
        if let Some(bits) = holds::decode_header(&b) {
            assert_eq!(
                &holds::header(bits)[..],
                &b[..32],
                "a header re-encodes differently"
            );
        }
        return;
    }
    let mut b = rest.to_vec();
    if fix && b.len() >= holds::ENTRY_LEN {
        let crc = crc32fast::hash(&b[..44]);
        put_u32(&mut b, 44, crc);
    }
    match holds::decode_entry(&b) {
        Entry::Empty => {
            assert!(b.len() >= holds::ENTRY_LEN && b[..holds::ENTRY_LEN].iter().all(|&x| x == 0))
        }
        Entry::Damaged => assert!(
            b.len() < holds::ENTRY_LEN
                || crc32fast::hash(&b[..44]) != u32_at(&b, 44)
                || u32_at(&b, 40) != 0,
            "decode_entry rejected a whole entry"
        ),
        Entry::Full(k, h) => {
            assert_eq!(
                &holds::encode_entry(&k, &h)[..],
                &b[..holds::ENTRY_LEN],
                "an entry re-encodes differently: {h:?}"
            );
        }
    }
}

// ------------------------------------------------------------------ index

/// Target `index_decode`: `index::{decode_slot, Header::decode, decode_wal}`
/// and their round trips through `encode_slot`, `Header::encode`, `encode_wal`.
pub fn index_decode(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let how = (mode / 3) % 3;
    match mode % 3 {
        0 => {
            let b = match how {
                0 => rest.to_vec(),
                1 => fix_slot_crc(rest),
                _ => build_slot(rest),
            };
            check_slot(&b);
        }
        1 => {
            let b = match how {
                0 => rest.to_vec(),
                1 => fix_header_crc(rest),
                _ => build_header(rest),
            };
            check_header(&b);
        }
        _ => {
            let b = match how {
                0 => rest.to_vec(),
                1 => fix_wal_crcs(rest),
                _ => build_wal(rest),
            };
            check_wal(&b);
        }
    }
}

/// `decode_slot` on `b`: a slot it accepts must encode back to the same 64 bytes.
pub fn check_slot(b: &[u8]) {
    let r = index::decode_slot(b);
    if b.len() < SLOT_LEN {
        assert_eq!(r, Err(SlotDamage::Bad), "a short slot");
        return;
    }
    let s = &b[..SLOT_LEN];
    let zeros = s.iter().all(|&x| x == 0);
    match r {
        Err(SlotDamage::Empty) => assert!(zeros),
        Err(SlotDamage::Bad) => assert!(
            !zeros
                && (crc32fast::hash(&s[..60]) != u32_at(s, 60)
                    || State::from_u8(s[0]).is_none()
                    || (STRICT_SLOT_RESERVED && s[1] != 0)),
            "decode_slot rejected a slot whose CRC and state are fine"
        ),
        Ok(m) => {
            assert!(!zeros);
            let mut want = s.to_vec();
            if !STRICT_SLOT_RESERVED {
                zero_slot_reserved(&mut want);
            }
            assert_eq!(
                &index::encode_slot(&m)[..],
                &want[..],
                "decode_slot accepted bytes that encode_slot does not give back: {m:?}"
            );
        }
    }
}

/// Finding (fuzz/README.md, "Findings"): `decode_slot` did not check that the
/// reserved byte at +1 is 0, so it accepted a slot (with a good CRC) that
/// `encode_slot` cannot give back. Fixed: it now rejects such a slot, and the
/// round trips are strict.
pub const STRICT_SLOT_RESERVED: bool = true;

/// Sets the reserved byte of a 64-byte slot to 0 and redoes its CRC.
fn zero_slot_reserved(slot: &mut [u8]) {
    if slot[1] != 0 {
        slot[1] = 0;
        let crc = crc32fast::hash(&slot[..60]);
        put_u32(slot, 60, crc);
    }
}

/// `Header::decode` on a region: an accepted header encodes back to the same
/// bytes, which decode to an equal header.
pub fn check_header(b: &[u8]) {
    let Some(h) = Header::decode(b) else {
        return;
    };
    let len = u32_at(b, 12) as usize;
    assert!(len <= b.len() && len <= index::REGION_LEN);
    assert!(h.segments.len() <= index::MAX_SEGMENTS);
    let e = h.encode().expect("a decoded header does not encode");
    assert_eq!(e.len(), len);
    assert_eq!(&e[..], &b[..len], "a decoded header re-encodes differently");
    assert_eq!(Header::decode(&e).as_ref(), Some(&h));
}

/// `decode_wal` walked over `b` as recovery walks the WAL: each record it
/// accepts has the documented length and encodes back to the same bytes.
pub fn check_wal(b: &[u8]) {
    let mut pos = 0;
    while let Some(r) = index::decode_wal(&b[pos..]) {
        assert_eq!(r.len, WAL_HEAD_LEN + 12 + r.entries.len() * WAL_ENTRY_LEN);
        assert!(pos + r.len <= b.len());
        let again = index::encode_wal(r.lsn, r.entries.iter().map(|(o, m)| (*o, m)));
        let mut want = b[pos..pos + r.len].to_vec();
        if !STRICT_SLOT_RESERVED {
            // See STRICT_SLOT_RESERVED: slots in the WAL are decoded by decode_slot.
            for at in (WAL_HEAD_LEN + 12..want.len()).step_by(WAL_ENTRY_LEN) {
                zero_slot_reserved(&mut want[at + 1..at + WAL_ENTRY_LEN]);
            }
            let crc = crc32fast::hash(&want[WAL_HEAD_LEN..]);
            put_u32(&mut want, 4, crc);
        }
        assert_eq!(again, want, "a decoded WAL record re-encodes differently");
        assert_eq!(index::decode_wal(&again).as_ref(), Some(&r));
        for (_, slot) in &r.entries {
            check_slot(&index::encode_slot(slot));
        }
        pos += r.len;
    }
}

fn fix_slot_crc(rest: &[u8]) -> Vec<u8> {
    let mut b = rest.to_vec();
    if b.len() >= SLOT_LEN {
        let crc = crc32fast::hash(&b[..60]);
        put_u32(&mut b, 60, crc);
    }
    b
}

/// Fixes the CRC where the header's own `length` field puts it.
fn fix_header_crc(rest: &[u8]) -> Vec<u8> {
    let mut b = rest.to_vec();
    if b.len() >= 16 {
        let len = u32_at(&b, 12) as usize;
        if (HEADER_FIXED + 4..=b.len()).contains(&len) {
            let crc = crc32fast::hash(&b[..len - 4]);
            put_u32(&mut b, len - 4, crc);
        }
    }
    b
}

/// Fixes every slot CRC and the payload CRC of each WAL record in turn.
fn fix_wal_crcs(rest: &[u8]) -> Vec<u8> {
    let mut b = rest.to_vec();
    let mut pos = 0;
    while pos + WAL_HEAD_LEN + 12 <= b.len() {
        let payload_len = u32_at(&b, pos) as usize;
        let Some(end) = (pos + WAL_HEAD_LEN).checked_add(payload_len) else {
            break;
        };
        if end > b.len() || payload_len < 12 {
            break;
        }
        let mut at = pos + WAL_HEAD_LEN + 12;
        while at + WAL_ENTRY_LEN <= end {
            let crc = crc32fast::hash(&b[at + 1..at + 61]);
            put_u32(&mut b, at + 61, crc);
            at += WAL_ENTRY_LEN;
        }
        let crc = crc32fast::hash(&b[pos + WAL_HEAD_LEN..end]);
        put_u32(&mut b, pos + 4, crc);
        pos = end;
    }
    b
}

fn state(c: &mut Cursor) -> State {
    State::from_u8(c.u8() % 8 + 1).unwrap()
}

fn meta(c: &mut Cursor) -> Meta {
    let mut m = Meta {
        seq: c.u64(),
        state: state(c),
        attempts: c.u32(),
        max_attempts: u32::from(c.u16()),
        pushed_at_ms: c.u64(),
        until_ms: c.u64(),
        receipt: c.le(),
        len: c.u32(),
        loc: Loc {
            segment: c.u64(),
            offset: c.u32(),
            long: false,
        },
        expires_at_ms: 0,
        keyed: false,
        priority: 0,
        group: None,
    };
    // The long layout: a segment less than 2^32 seqs back, an expiry in
    // whole seconds.
    if c.u8() % 2 == 1 {
        m.loc.long = true;
        m.loc.segment = m.seq.saturating_sub(u64::from(c.u32()));
        m.expires_at_ms = u64::from(c.u32()) * 1000;
        // A keyed record's slot (layout 3), and a ranked one's (a
        // priority in the layout's high bits).
        m.keyed = c.u8() % 2 == 1;
        m.priority = c.u8() % 10;
        // A grouped record's slot (layout bit 2, priority 0): it decodes to
        // "in a group, not read yet".
        if m.priority == 0 && c.u8().is_multiple_of(3) {
            m.group = Some(spoolmq::store::GroupKey(u64::MAX));
        }
    }
    m
}

fn build_slot(rest: &[u8]) -> Vec<u8> {
    let mut c = Cursor::new(rest);
    let m = meta(&mut c);
    let mut b = index::encode_slot(&m).to_vec();
    assert_eq!(
        index::decode_slot(&b),
        Ok(m),
        "an encoded slot does not decode"
    );
    damage(&mut b, &mut c);
    b
}

fn build_header(rest: &[u8]) -> Vec<u8> {
    let mut c = Cursor::new(rest);
    let h = Header {
        generation: c.u64(),
        lsn: c.u64(),
        wal_len: c.u64(),
        boot_id: c.le(),
        next_seq: c.u64(),
        active: c.u64(),
        active_len: c.u64(),
        scan_lo: c.u64(),
        counters: Counters {
            ready: c.u64(),
            delayed: c.u64(),
            leased: c.u64(),
            dead: c.u64(),
            pushed: c.u64(),
            acked: c.u64(),
            purged: c.u64(),
            corrupt: c.u64(),
            bytes: c.u64(),
            // Both versions: 0 writes version 1.
            expired: if c.u8().is_multiple_of(2) { 0 } else { c.u64() },
        },
        punched: c.u64(),
        salt: c.u64(),
        segments: {
            // Up to one more than fits, to reach the refusal.
            let n = usize::from(c.u16()) % (index::MAX_SEGMENTS + 2);
            let fill = c.u64();
            (0..n as u64)
                .map(|i| SegmentEntry {
                    base: fill.wrapping_add(i),
                    live: i,
                })
                .collect()
        },
        // Version 3 (lanes) a third of the time.
        lanes: if c.u8().is_multiple_of(3) {
            std::array::from_fn(|_| index::Lane {
                len: c.u64(),
                cursor: c.u64(),
            })
        } else {
            Default::default()
        },
        lanes_epoch: c.u64(),
    };
    // Only a header with a lane keeps the epoch.
    let h = if h.lanes.iter().all(|l| l.len == 0) {
        Header {
            lanes: Default::default(),
            lanes_epoch: 0,
            ..h
        }
    } else {
        h
    };
    let Some(mut b) = h.encode() else {
        let lanes = h.lanes.iter().any(|l| l.len > 0);
        assert!(
            h.segments.len() > index::MAX_SEGMENTS
                || (lanes && h.segments.len() > index::MAX_SEGMENTS_WITH_LANES),
            "a header that fits did not encode"
        );
        return Vec::new();
    };
    assert!(b.len() <= index::REGION_LEN);
    assert_eq!(
        Header::decode(&b).as_ref(),
        Some(&h),
        "an encoded header does not decode"
    );
    damage(&mut b, &mut c);
    b
}

fn build_wal(rest: &[u8]) -> Vec<u8> {
    let mut c = Cursor::new(rest);
    let mut b = Vec::new();
    for _ in 0..c.u8() % 4 {
        let lsn = c.u64();
        let entries: Vec<(State, Meta)> = (0..c.u8() % 6)
            .map(|_| (state(&mut c), meta(&mut c)))
            .collect();
        let rec = index::encode_wal(lsn, entries.iter().map(|(o, m)| (*o, m)));
        let r = index::decode_wal(&rec).expect("an encoded WAL record does not decode");
        assert_eq!((r.lsn, &r.entries, r.len), (lsn, &entries, rec.len()));
        b.extend_from_slice(&rec);
    }
    damage(&mut b, &mut c);
    b
}

// ------------------------------------------------------------------ input

/// Target `duration_parse`: `input::duration` (and `input::queue_name`, the
/// other user-input parser) on any string, against the documented rules.
/// Target `journal_decode`: the move journal (src/store/fs/moves.rs). Mode
/// byte 0: the bytes as they are; 1: with the trailing CRC fixed up; 2: a
/// journal built from the input, then cut or flipped by it. An accepted
/// journal re-encodes to exactly the bytes given and names two valid
/// queues; anything else is refused without a panic.
pub fn journal_decode(data: &[u8]) {
    use spoolmq::store::fs::moves::Journal;
    let mut c = Cursor::new(data);
    let mode = c.u8() % 3;
    let mut b: Vec<u8> = match mode {
        0 => c.bytes(usize::MAX).to_vec(),
        1 => {
            let mut b = c.bytes(usize::MAX).to_vec();
            if b.len() >= 4 {
                let n = b.len() - 4;
                let crc = crc32fast::hash(&b[..n]);
                put_u32(&mut b, n, crc);
            }
            b
        }
        _ => {
            let name = |c: &mut Cursor| {
                let n = usize::from(c.u8() % 61) + 1; // with "-to", at most 64
                (0..n)
                    .map(|_| char::from(b'a' + c.u8() % 26))
                    .collect::<String>()
            };
            let from = name(&mut c);
            // Two queues (a journal naming one twice is refused).
            let to = name(&mut c) + "-to";
            let j = Journal {
                from,
                to,
                start: c.u64(),
                seqs: (0..c.u8() % 20).map(|_| c.u64()).collect(),
            };
            let mut b = j.encode();
            assert_eq!(
                Journal::decode(&b).as_ref(),
                Some(&j),
                "an encoded journal decodes"
            );
            match c.u8() % 3 {
                0 => b.truncate(usize::from(c.u16()) % (b.len() + 1)),
                1 => {
                    let at = usize::from(c.u16()) % b.len();
                    b[at] ^= c.u8() | 1;
                }
                _ => b.extend_from_slice(c.bytes(8)),
            }
            b
        }
    };
    if let Some(j) = Journal::decode(&b) {
        assert_eq!(j.encode(), b, "an accepted journal is exactly its encoding");
        assert!(j.from != j.to, "{j:?}");
        for n in [&j.from, &j.to] {
            assert!(input::queue_name(n).is_ok(), "{j:?}");
        }
    }
    // Never a panic on any prefix.
    b.truncate(b.len() / 2);
    let _ = Journal::decode(&b);
}

pub fn duration_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_duration(&text);
    check_queue_name(&text);
}

/// `duration`'s cap: 100 years of 365 days (src/model/input.rs).
const MAX_MS: u128 = 100 * 365 * 86_400_000;

/// The documented forms, `<digits>[ms|s|m|h|d]`, as milliseconds (u128, so
/// no number of digits overflows it: it saturates); `None` if not of that form.
fn duration_slow(text: &str) -> Option<u128> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let unit: u128 = match &text[digits..] {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    let n = text[..digits].bytes().fold(0u128, |n, d| {
        n.saturating_mul(10).saturating_add(u128::from(d - b'0'))
    });
    Some(n.saturating_mul(unit))
}

fn check_duration(text: &str) {
    match (input::duration(text), duration_slow(text)) {
        (Ok(d), Some(ms)) => {
            assert!(ms <= MAX_MS, "{text:?} accepted beyond 100 years");
            assert_eq!(d.as_millis(), ms, "{text:?} parsed to the wrong length");
        }
        (Ok(d), None) => panic!("{text:?} is no documented duration form but parsed as {d:?}"),
        (Err(e), slow) => {
            assert_eq!(e.exit_code(), 2, "{text:?}: not a usage error");
            assert!(e.to_string().contains("invalid duration"), "{text:?}: {e}");
            if let Some(ms) = slow {
                assert!(
                    ms > MAX_MS,
                    "{text:?} is a documented duration but was refused: {e}"
                );
            }
        }
    }
}

fn check_queue_name(text: &str) {
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    let valid = (1..=input::MAX_QUEUE_NAME).contains(&text.len())
        && text.bytes().all(ok_char)
        && !text.starts_with(['.', '-']);
    match input::queue_name(text) {
        Ok(n) => {
            assert!(
                valid,
                "{text:?} breaks the queue-name rule but was accepted"
            );
            assert_eq!(n, text);
        }
        Err(e) => {
            assert!(
                !valid,
                "{text:?} follows the queue-name rule but was refused: {e}"
            );
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("queue name"));
        }
    }
}
