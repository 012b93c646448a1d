//! The index formats: slots, the header and the write-ahead log. Pure
//! encode/decode with CRCs, no I/O ([`crate::store::fs`] owns the files and
//! the order in which they are written and synced).
//!
//! ## `slots`: one fixed 64-byte slot per message, at offset `seq * 64`
//!
//! ```text
//! +0     +1    +2        +4        +8    +16       +24     +28    +32        +40      +48       +60
//! | state| 0   | max_att | attempts| seq | segment | offset| len  | pushed_at | until  | receipt | crc |
//! | u8   | u8  | u16     | u32     | u64 | u64     | u32   | u32  | u64 ms    | u64 ms | 12 B    | u32 |
//! ```
//! A message whose record is long (it has a TTL, `crate::store::fs::record`)
//! has a slot of the long layout, marked by `layout` 1 where the short one
//! has 0; its segment is kept as the distance back from its seq (a segment
//! spans less than 2^32 seqs), which leaves room for its expiry in whole
//! seconds (0: none; when it expired, for an expired dead letter):
//!
//! ```text
//! +0     +1     +2        +4        +8    +16       +20       +24     +28    +32        +40      +48       +60
//! | state| 1    | max_att | attempts| seq | seq-seg | expires | offset| len  | pushed_at | until  | receipt | crc |
//! | u8   | u8   | u16     | u32     | u64 | u32     | u32 s   | u32   | u32  | u64 ms    | u64 ms | 12 B    | u32 |
//! ```
//!
//! A message with a unique key has the long layout with `layout` 3 (bits
//! 0 and 1: long, keyed): its record has the keyed header. A message
//! pushed with a priority (1 to 9) has the long layout with its priority
//! in the high four bits of `layout` (`0x11`, `0x13`, ... `0x93`): its
//! record has the ranked header (`SPM4`). A message pushed in a group has
//! the long layout with bit 2 of `layout` set (`0x05`, or `0x07` with a
//! key; its priority is 0): its record has the grouped header (`SPM5`),
//! and the group's key is kept beside the slots, in the `groups` cache
//! (`crate::store::fs::groups`), not in the slot.
//!
//! `state` 0 means "never written" (a hole in the file reads as zeros); the
//! CRC32 covers bytes `0..60`. `segment` is the base seq that names the
//! segment file, `offset` where the record starts in it. `until` is the
//! lease end (leased), the time it becomes ready (delayed), when it became
//! a dead letter (dead; 0 when not known: slots written before dead letters
//! kept it), else 0.
//!
//! Slot 0 (seq 0 is never a message) holds the file's *stamp*: the
//! generation of the last header written over these slots, twice, so that
//! a write torn in a machine crash leaves one whole copy:
//!
//! ```text
//! +0     +4          +12      +28     +32    +36         +44      +60
//! | SPST | generation| 0 x 16 | crc   | SPST | generation| 0 x 16 | crc |
//! ```
//! Each CRC32 covers the 28 bytes before it. A slots file whose stamp is
//! older than the header it is read with is a stale copy (see
//! [`crate::store::fs`], "Source of truth"); all zeros is a file from before
//! stamps (or one recreated empty). Readers of messages never look at slot 0.
//!
//! ## `index`: four 64 KiB regions holding a header each
//!
//! Regions 0 and 1 hold the *live* header, written (not synced) after every
//! change; regions 2 and 3 hold the *checkpoint* header, written and synced
//! at a checkpoint. Each pair is written alternately, so a torn write leaves
//! the other copy intact; the valid copy with the higher `generation` wins.
//!
//! ```text
//! +0        +8       +12     +16         +24   +32      +40      +56       +64     +72        +80
//! | SPMQIDX1| version| length| generation| lsn | wal_len| boot_id| next_seq| active| act_len  | scan_lo |
//! | magic   | u32    | u32   | u64       | u64 | u64    | 16 B   | u64     | u64   | u64      | u64     |
//! +88: counters, 9 x u64: ready delayed leased dead pushed acked purged corrupt bytes
//! +160 | punched u64 | salt u64 | expired u64 | nsegs u32 | nsegs x (base u64, live u64) | crc u32 over everything before it
//! ```
//! Version 3 adds, after `expired`, the lanes of priorities 1 to 9
//! (`crate::store::fs::lanes`): `lanes_epoch` u64 at +184 (what the lane
//! files must carry to be read), then 9 x (len u64, cursor u64) from +192:
//! how many entries each lane file holds, and the first that may be
//! pending; `nsegs` is then at +336. It is written only while a lane holds an entry, so a queue that
//! never had a priority keeps the version it had. Version 2 added the
//! `expired` counter (dead letters past their TTL). Version 1 has no `expired` (`nsegs` at +176); it is read as
//! 0. A header is written as version 1 while `expired` is 0, so that a
//! queue that never had a message expire stays readable by the releases
//! before (the slots and the WAL are the same in both); only a queue that
//! did needs this one, and its spool's `.store` then says so
//! (`crate::spool::RECORD_VERSION`).
//! `length` is the encoded length including the CRC. `lsn` is the last WAL
//! record applied, `wal_len` the WAL length that covers it. `active` is the
//! base of the segment being appended to and `act_len` its committed length.
//! `boot_id` is the kernel's boot id when the header was written.
//!
//! ## `wal`: one record per committed change set
//!
//! ```text
//! +0       +4         +8    +16   +20
//! | length | crc      | lsn | n   | n x (old_state u8, slot 64 B) |
//! | u32    | u32      | u64 | u32 |
//! ```
//! `length` counts the bytes after the CRC; the CRC covers them. A record is
//! applied by writing each slot and moving the counters from `old_state` to
//! the slot's state, so replaying a record twice from the same header gives
//! the same result.

use crate::store::fs::record::{u32_at, u64_at};
use crate::store::{Counters, Loc, Meta, ReceiptTag, State};

pub const SLOT_LEN: usize = 64;
/// The layout byte of a long slot (a TTL, no key).
const LAYOUT_LONG: u8 = 1;
/// The layout byte of a long slot whose record is keyed (`SPM3`).
const LAYOUT_KEYED: u8 = 3;
/// Where a slot's layout byte keeps the message's priority (its high bits).
const LAYOUT_PRIORITY_SHIFT: u8 = 4;
/// The layout bit of a long slot whose message is in a group: its record
/// is grouped (`SPM5`) and keeps the group's key, as the `groups` cache
/// does (`crate::store::fs::groups`).
const LAYOUT_GROUPED: u8 = 4;
/// What a slot decodes to for a message in a group: the key is not in the
/// slot, so the store reads it from the `groups` cache (or the record)
/// before it hands the message out. No group name hashes to it.
pub(super) const GROUP_UNREAD: crate::store::GroupKey = crate::store::GroupKey(u64::MAX);

/// Where the slot of message `seq` starts in `slots`: `seq * 64` (slot 0,
/// at offset 0, is the stamp). Every read and write of a slot, and every
/// offset reported for one, comes from here.
pub(super) fn slot_offset(seq: u64) -> u64 {
    seq * SLOT_LEN as u64
}

/// The seq of the first slot at or after byte `offset` of `slots`
/// (the inverse of [`slot_offset`] for a slot boundary).
pub(super) fn slot_at(offset: u64) -> u64 {
    offset / SLOT_LEN as u64
}

pub(super) const INDEX_MAGIC: [u8; 8] = *b"SPMQIDX1";
pub(super) const INDEX_VERSION: u32 = 2;
/// The version of a header with lanes.
pub(super) const INDEX_VERSION_LANES: u32 = 3;
/// Size of one header region in the `index` file.
pub const REGION_LEN: usize = 64 * 1024;
/// Regions in the `index` file: live A, live B, checkpoint A, checkpoint B.
pub(super) const REGIONS: usize = 4;
const HEADER_FIXED: usize = 188;
/// The fixed part of a version 1 header (no `expired` counter).
const HEADER_FIXED_V1: usize = 180;
/// The fixed part of a version 3 header (the lanes).
const HEADER_FIXED_V3: usize = HEADER_FIXED + 8 + LANES * 16;
/// Lanes a header keeps: priorities 1 to 9 (0 is the slots' own order).
pub const LANES: usize = crate::store::MAX_PRIORITY as usize;
/// Most segments one header can list (a version 3 header, with lanes,
/// [`MAX_SEGMENTS_WITH_LANES`]).
pub const MAX_SEGMENTS: usize = (REGION_LEN - HEADER_FIXED - 4) / 16;
/// Most segments a version 3 header can list.
pub const MAX_SEGMENTS_WITH_LANES: usize = (REGION_LEN - HEADER_FIXED_V3 - 4) / 16;
pub const WAL_HEAD_LEN: usize = 8;
pub const WAL_ENTRY_LEN: usize = 1 + SLOT_LEN;

/// A slot is a message's [`Meta`], location included.
pub type Slot = Meta;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Why a slot could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotDamage {
    /// All zeros: never written (or lost before it was synced).
    Empty,
    /// Checksum mismatch or impossible field.
    Bad,
}

/// Encodes a slot.
pub fn encode_slot(m: &Slot) -> [u8; SLOT_LEN] {
    let mut b = encode_slot_without_crc(m);
    fill_slot_crcs(&mut b);
    b
}

/// A slot whose CRC is still zero (not valid until [`fill_slot_crcs`]).
pub(super) fn encode_slot_without_crc(m: &Slot) -> [u8; SLOT_LEN] {
    let mut b = [0u8; SLOT_LEN];
    b[0] = m.state as u8;
    b[2..4].copy_from_slice(&(m.max_attempts.min(u32::from(u16::MAX)) as u16).to_le_bytes());
    b[4..8].copy_from_slice(&m.attempts.to_le_bytes());
    b[8..16].copy_from_slice(&m.seq.to_le_bytes());
    // A distance that does not fit (no push makes one: a segment spans
    // less than 2^32 seqs) keeps the short layout and its true segment; the
    // record is then read as damaged rather than looked for elsewhere.
    let back = m
        .seq
        .checked_sub(m.loc.segment)
        .and_then(|d| u32::try_from(d).ok());
    if let (true, Some(back)) = (m.loc.long, back) {
        let layout = if m.keyed { LAYOUT_KEYED } else { LAYOUT_LONG };
        let layout = if m.group.is_some() {
            layout | LAYOUT_GROUPED
        } else {
            layout
        };
        b[1] = layout | (m.priority.min(crate::store::MAX_PRIORITY) << LAYOUT_PRIORITY_SHIFT);
        b[16..20].copy_from_slice(&back.to_le_bytes());
        let expires = (m.expires_at_ms / 1000).min(u64::from(u32::MAX)) as u32;
        b[20..24].copy_from_slice(&expires.to_le_bytes());
    } else {
        b[16..24].copy_from_slice(&m.loc.segment.to_le_bytes());
    }
    b[24..28].copy_from_slice(&m.loc.offset.to_le_bytes());
    b[28..32].copy_from_slice(&m.len.to_le_bytes());
    b[32..40].copy_from_slice(&m.pushed_at_ms.to_le_bytes());
    b[40..48].copy_from_slice(&m.until_ms.to_le_bytes());
    b[48..60].copy_from_slice(&m.receipt);
    b
}

/// Computes and writes the CRC of every slot in `buf` (whole slots back to
/// back), as the writing thread of a bulk push does (see
/// crate::store::fs::record::fill_crcs).
pub(super) fn fill_slot_crcs(buf: &mut [u8]) {
    for b in buf.chunks_exact_mut(SLOT_LEN) {
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Decodes a slot; `Err(Empty)` for zeros, `Err(Bad)` for damage.
pub fn decode_slot(b: &[u8]) -> Result<Slot, SlotDamage> {
    {
        if b.len() < SLOT_LEN {
            return Err(SlotDamage::Bad);
        }
        if b[..SLOT_LEN].iter().all(|&x| x == 0) {
            return Err(SlotDamage::Empty);
        }
        // The layout byte is 0, 1 or 3 and, for 1 and 3, a priority of 0
        // to 9, or 5 or 7 (grouped) with priority 0, so that a slot decodes
        // only from the one encoding (found by fuzzing).
        let (layout, priority) = (b[1] & 0x0f, b[1] >> LAYOUT_PRIORITY_SHIFT);
        let grouped = layout & LAYOUT_GROUPED != 0;
        let layout = layout & !LAYOUT_GROUPED;
        let layout_known = matches!(layout, 0 | LAYOUT_LONG | LAYOUT_KEYED)
            && !(grouped && (layout == 0 || priority != 0))
            && (priority == 0 || (layout != 0 && priority <= crate::store::MAX_PRIORITY));
        if crc32fast::hash(&b[0..60]) != u32_at(b, 60) || !layout_known {
            return Err(SlotDamage::Bad);
        }
        let state = State::from_u8(b[0]).ok_or(SlotDamage::Bad)?;
        let mut receipt: ReceiptTag = [0; 12];
        receipt.copy_from_slice(&b[48..60]);
        let seq = u64_at(b, 8);
        let long = b[1] != 0;
        let (segment, expires_at_ms) = if long {
            let back = u64::from(u32_at(b, 16));
            let segment = seq.checked_sub(back).ok_or(SlotDamage::Bad)?;
            (segment, u64::from(u32_at(b, 20)) * 1000)
        } else {
            (u64_at(b, 16), 0)
        };
        Ok(Meta {
            seq,
            state,
            attempts: u32_at(b, 4),
            max_attempts: u32::from(u16_at(b, 2)),
            pushed_at_ms: u64_at(b, 32),
            until_ms: u64_at(b, 40),
            receipt,
            len: u32_at(b, 28),
            loc: Loc {
                segment,
                offset: u32_at(b, 24),
                long,
            },
            expires_at_ms,
            keyed: layout == LAYOUT_KEYED,
            priority,
            group: grouped.then_some(GROUP_UNREAD),
        })
    }
}

/// Decodes the slot that must hold message `seq`: a slot of another seq is damage.
pub(super) fn decode_slot_of(b: &[u8], seq: u64) -> Result<Slot, SlotDamage> {
    decode_slot(b).and_then(|m| {
        if m.seq == seq {
            Ok(m)
        } else {
            Err(SlotDamage::Bad)
        }
    })
}

/// The magic of each half of the stamp in slot 0.
pub(super) const STAMP_MAGIC: [u8; 4] = *b"SPST";

/// What slot 0 of a slots file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stamp {
    /// All zeros: a file from before stamps, or one recreated empty.
    Absent,
    /// Neither copy checks out.
    Damaged,
    /// The newer of the valid copies.
    Generation(u64),
}

/// Encodes the stamp of slot 0 for header generation `generation`.
pub(super) fn encode_stamp(generation: u64) -> [u8; SLOT_LEN] {
    let mut b = [0u8; SLOT_LEN];
    for half in b.chunks_exact_mut(SLOT_LEN / 2) {
        half[0..4].copy_from_slice(&STAMP_MAGIC);
        half[4..12].copy_from_slice(&generation.to_le_bytes());
        let crc = crc32fast::hash(&half[..28]);
        half[28..32].copy_from_slice(&crc.to_le_bytes());
    }
    b
}

/// Decodes slot 0 (fewer than 64 bytes, as in a short file, is absent).
pub(super) fn decode_stamp(b: &[u8]) -> Stamp {
    if b.len() < SLOT_LEN || b[..SLOT_LEN].iter().all(|&x| x == 0) {
        return Stamp::Absent;
    }
    b[..SLOT_LEN]
        .chunks_exact(SLOT_LEN / 2)
        .filter(|h| h[0..4] == STAMP_MAGIC && crc32fast::hash(&h[..28]) == u32_at(h, 28))
        .map(|h| u64_at(h, 4))
        .max()
        .map_or(Stamp::Damaged, Stamp::Generation)
}

/// One segment's entry in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentEntry {
    /// Seq of its first message; names the file.
    pub base: u64,
    /// Messages in it that still hold a body.
    pub live: u64,
}

/// The index header.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Header {
    pub generation: u64,
    pub lsn: u64,
    pub wal_len: u64,
    pub boot_id: [u8; 16],
    pub next_seq: u64,
    pub active: u64,
    pub active_len: u64,
    pub scan_lo: u64,
    pub counters: Counters,
    /// Slots below this seq have been punched out of the `slots` file.
    pub punched: u64,
    /// Random, fixed when the queue is created: ids are made from it and the seq (crate::model::ids), so ids
    /// of different queues do not collide.
    pub salt: u64,
    pub segments: Vec<SegmentEntry>,
    /// The lane of each priority 1 to 9 (index 0 is priority 1).
    pub lanes: [Lane; LANES],
    /// The epoch the lane files carry: new each time they are made again.
    pub lanes_epoch: u64,
}

/// A lane in the header: its file holds `len` seqs, and those before
/// `cursor` are known not to be pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Lane {
    pub len: u64,
    pub cursor: u64,
}

impl Header {
    /// Encodes the header; `None` when it would not fit in a region.
    pub fn encode(&self) -> Option<Vec<u8>> {
        if self.segments.len() > MAX_SEGMENTS {
            return None;
        }
        let (version, fixed) = if self.lanes.iter().any(|l| l.len > 0) {
            (INDEX_VERSION_LANES, HEADER_FIXED_V3)
        } else if self.counters.expired > 0 {
            (INDEX_VERSION, HEADER_FIXED)
        } else {
            (1, HEADER_FIXED_V1)
        };
        let len = fixed + self.segments.len() * 16 + 4;
        if len > REGION_LEN {
            return None;
        }
        let mut b = Vec::with_capacity(len);
        b.extend_from_slice(&INDEX_MAGIC);
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&(len as u32).to_le_bytes());
        for v in [self.generation, self.lsn, self.wal_len] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.boot_id);
        let c = &self.counters;
        for v in [
            self.next_seq,
            self.active,
            self.active_len,
            self.scan_lo,
            c.ready,
            c.delayed,
            c.leased,
            c.dead,
            c.pushed,
            c.acked,
            c.purged,
            c.corrupt,
            c.bytes,
            self.punched,
            self.salt,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        if version >= INDEX_VERSION {
            b.extend_from_slice(&c.expired.to_le_bytes());
        }
        if version == INDEX_VERSION_LANES {
            b.extend_from_slice(&self.lanes_epoch.to_le_bytes());
            for l in &self.lanes {
                b.extend_from_slice(&l.len.to_le_bytes());
                b.extend_from_slice(&l.cursor.to_le_bytes());
            }
        }
        b.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        debug_assert_eq!(b.len(), fixed);
        for s in &self.segments {
            b.extend_from_slice(&s.base.to_le_bytes());
            b.extend_from_slice(&s.live.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        Some(b)
    }

    /// Decodes a header region; `None` if it is not a valid header.
    pub fn decode(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_FIXED_V1 + 4 || b[0..8] != INDEX_MAGIC {
            return None;
        }
        let fixed = match u32_at(b, 8) {
            1 => HEADER_FIXED_V1,
            INDEX_VERSION => HEADER_FIXED,
            INDEX_VERSION_LANES => HEADER_FIXED_V3,
            _ => return None,
        };
        let len = u32_at(b, 12) as usize;
        if !(fixed + 4..=b.len().min(REGION_LEN)).contains(&len) {
            return None;
        }
        if crc32fast::hash(&b[..len - 4]) != u32_at(b, len - 4) {
            return None;
        }
        let nsegs = u32_at(b, fixed - 4) as usize;
        if fixed + nsegs * 16 + 4 != len {
            return None;
        }
        let mut boot_id = [0u8; 16];
        boot_id.copy_from_slice(&b[40..56]);
        let v = |i: usize| u64_at(b, 56 + i * 8);
        let segments = (0..nsegs)
            .map(|i| {
                let at = fixed + i * 16;
                SegmentEntry {
                    base: u64_at(b, at),
                    live: u64_at(b, at + 8),
                }
            })
            .collect();
        Some(Header {
            generation: u64_at(b, 16),
            lsn: u64_at(b, 24),
            wal_len: u64_at(b, 32),
            boot_id,
            next_seq: v(0),
            active: v(1),
            active_len: v(2),
            scan_lo: v(3),
            counters: Counters {
                ready: v(4),
                delayed: v(5),
                leased: v(6),
                dead: v(7),
                pushed: v(8),
                acked: v(9),
                purged: v(10),
                corrupt: v(11),
                bytes: v(12),
                expired: if fixed >= HEADER_FIXED { v(15) } else { 0 },
            },
            punched: v(13),
            salt: v(14),
            segments,
            lanes: std::array::from_fn(|i| {
                if fixed == HEADER_FIXED_V3 {
                    Lane {
                        len: v(17 + 2 * i),
                        cursor: v(18 + 2 * i),
                    }
                } else {
                    Lane::default()
                }
            }),
            lanes_epoch: if fixed == HEADER_FIXED_V3 { v(16) } else { 0 },
        })
    }
}

/// Encodes one WAL record for `entries` (old state, new slot).
pub fn encode_wal<'a>(
    lsn: u64,
    entries: impl ExactSizeIterator<Item = (State, &'a Slot)>,
) -> Vec<u8> {
    let payload_len = 12 + entries.len() * WAL_ENTRY_LEN;
    let mut b = Vec::with_capacity(WAL_HEAD_LEN + payload_len);
    b.extend_from_slice(&(payload_len as u32).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&lsn.to_le_bytes());
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (old, slot) in entries {
        b.push(old as u8);
        b.extend_from_slice(&encode_slot(slot));
    }
    let crc = crc32fast::hash(&b[WAL_HEAD_LEN..]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The encoded new slot of entry `i` of a record [`encode_wal`] made: a
/// commit writes these bytes to `slots` as they are, never encoding a
/// slot twice.
pub(super) fn wal_slot(rec: &[u8], i: usize) -> &[u8] {
    let at = WAL_HEAD_LEN + 12 + i * WAL_ENTRY_LEN + 1;
    &rec[at..at + SLOT_LEN]
}

/// Decodes one entry of a WAL record (old state, new slot): the
/// [`WAL_ENTRY_LEN`] bytes at the start of `b`.
pub(super) fn decode_wal_entry(b: &[u8]) -> Option<(State, Slot)> {
    if b.len() < WAL_ENTRY_LEN {
        return None;
    }
    let old = State::from_u8(b[0])?;
    let slot = decode_slot(&b[1..WAL_ENTRY_LEN]).ok()?;
    Some((old, slot))
}

/// A decoded WAL record.
#[derive(Debug, PartialEq, Eq)]
pub struct WalRecord {
    pub lsn: u64,
    pub entries: Vec<(State, Slot)>,
    /// Bytes this record takes in the WAL.
    pub len: usize,
}

/// Decodes the WAL record at the start of `b`; `None` if it is torn or damaged.
pub fn decode_wal(b: &[u8]) -> Option<WalRecord> {
    if b.len() < WAL_HEAD_LEN {
        return None;
    }
    let payload_len = u32_at(b, 0) as usize;
    let total = WAL_HEAD_LEN.checked_add(payload_len)?;
    if payload_len < 12 || b.len() < total {
        return None;
    }
    let payload = &b[WAL_HEAD_LEN..total];
    if crc32fast::hash(payload) != u32_at(b, 4) {
        return None;
    }
    let lsn = u64_at(payload, 0);
    let n = u32_at(payload, 8) as usize;
    if 12 + n.checked_mul(WAL_ENTRY_LEN)? != payload_len {
        return None;
    }
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let at = 12 + i * WAL_ENTRY_LEN;
        entries.push(decode_wal_entry(&payload[at..at + WAL_ENTRY_LEN])?);
    }
    Some(WalRecord {
        lsn,
        entries,
        len: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_of_seq_is_at_seq_times_64() {
        assert_eq!(slot_offset(0), 0);
        assert_eq!(slot_offset(1), 64);
        assert_eq!(slot_offset(3), 192);
        assert_eq!(slot_offset(1 << 40), 64 << 40);
        assert_eq!(slot_at(4096), 64);
        assert_eq!(slot_at(slot_offset(12345)), 12345);
    }

    fn slot(seq: u64, state: State) -> Slot {
        Meta {
            seq,
            state,
            attempts: 3,
            max_attempts: 5,
            pushed_at_ms: 1_700_000_000_123,
            until_ms: 1_700_000_300_000,
            receipt: [7; 12],
            len: 99,
            loc: Loc {
                segment: 1,
                offset: 16,
                long: false,
            },
            expires_at_ms: 0,
            keyed: false,
            priority: 0,
            group: None,
        }
    }

    fn long_slot(seq: u64, state: State) -> Slot {
        Meta {
            loc: Loc {
                segment: seq - 3,
                offset: 16,
                long: true,
            },
            expires_at_ms: 1_700_000_600_000,
            ..slot(seq, state)
        }
    }

    #[test]
    fn a_slot_round_trips_at_the_documented_offsets() {
        let s = slot(42, State::Leased);
        let b = encode_slot(&s);
        assert_eq!(b[0], State::Leased as u8);
        assert_eq!(u16_at(&b, 2), 5);
        assert_eq!(u32_at(&b, 4), 3);
        assert_eq!(u64_at(&b, 8), 42);
        assert_eq!(u64_at(&b, 16), 1);
        assert_eq!(u32_at(&b, 24), 16);
        assert_eq!(u32_at(&b, 28), 99);
        assert_eq!(u64_at(&b, 32), 1_700_000_000_123);
        assert_eq!(u64_at(&b, 40), 1_700_000_300_000);
        assert_eq!(&b[48..60], &[7; 12]);
        assert_eq!(u32_at(&b, 60), crc32fast::hash(&b[..60]));
        assert_eq!(decode_slot(&b), Ok(s));
        assert_eq!(b[1], 0);
        // The long layout: the segment as the distance back, then the expiry.
        let l = long_slot(42, State::Leased);
        let b = encode_slot(&l);
        assert_eq!(b[1], 1);
        assert_eq!(u64_at(&b, 8), 42);
        assert_eq!(u32_at(&b, 16), 3);
        assert_eq!(u32_at(&b, 20), 1_700_000_600);
        assert_eq!(u32_at(&b, 24), 16);
        assert_eq!(u64_at(&b, 32), 1_700_000_000_123);
        assert_eq!(decode_slot(&b), Ok(l));
        // A priority in the layout byte's high bits, keyed or not.
        for (keyed, layout) in [(false, 0x71), (true, 0x73)] {
            let r = Meta {
                priority: 7,
                keyed,
                ..l
            };
            let rb = encode_slot(&r);
            assert_eq!(rb[1], layout);
            assert_eq!(decode_slot(&rb), Ok(r));
        }
        // Priorities over 9, or on the short layout, are damage.
        for layout in [0xa1, 0xf3, 0x10] {
            let mut bad = b;
            bad[1] = layout;
            let crc = crc32fast::hash(&bad[..60]);
            bad[60..64].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(decode_slot(&bad), Err(SlotDamage::Bad), "{layout:#x}");
        }
        // A distance back past seq 0 is damage, not a wrap.
        let mut bad = b;
        bad[16..20].copy_from_slice(&43u32.to_le_bytes());
        let crc = crc32fast::hash(&bad[..60]);
        bad[60..64].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_slot(&bad), Err(SlotDamage::Bad));
    }

    #[test]
    fn damaged_and_empty_slots_are_told_apart() {
        assert_eq!(decode_slot(&[0; 64]), Err(SlotDamage::Empty));
        for good in [
            encode_slot(&slot(1, State::Ready)),
            encode_slot(&long_slot(5, State::Expired)),
        ] {
            for i in 0..64 {
                let mut bad = good;
                bad[i] ^= 0x10;
                assert_eq!(decode_slot(&bad), Err(SlotDamage::Bad), "byte {i}");
            }
            assert_eq!(decode_slot(&good[..10]), Err(SlotDamage::Bad));
        }
    }

    fn header() -> Header {
        Header {
            generation: 9,
            lsn: 8,
            wal_len: 7,
            boot_id: [3; 16],
            next_seq: 100,
            active: 50,
            active_len: 4096,
            scan_lo: 60,
            counters: Counters {
                ready: 1,
                delayed: 2,
                leased: 3,
                dead: 4,
                pushed: 5,
                acked: 6,
                purged: 7,
                corrupt: 8,
                bytes: 9,
                expired: 12,
            },
            punched: 10,
            salt: 11,
            segments: vec![
                SegmentEntry { base: 1, live: 2 },
                SegmentEntry { base: 50, live: 40 },
            ],
            lanes: Default::default(),
            lanes_epoch: 0,
        }
    }

    #[test]
    fn a_header_round_trips_at_the_documented_offsets() {
        let h = header();
        let b = h.encode().unwrap();
        assert_eq!(&b[0..8], b"SPMQIDX1");
        assert_eq!(u32_at(&b, 12) as usize, b.len());
        assert_eq!(u64_at(&b, 16), 9);
        assert_eq!(u64_at(&b, 24), 8);
        assert_eq!(u64_at(&b, 32), 7);
        assert_eq!(&b[40..56], &[3; 16]);
        assert_eq!(u64_at(&b, 56), 100);
        assert_eq!(u64_at(&b, 64), 50);
        assert_eq!(u64_at(&b, 72), 4096);
        assert_eq!(u64_at(&b, 80), 60);
        assert_eq!(u64_at(&b, 88), 1); // ready
        assert_eq!(u64_at(&b, 152), 9); // bytes
        assert_eq!(u64_at(&b, 160), 10); // punched
        assert_eq!(u64_at(&b, 168), 11); // salt
        assert_eq!(u64_at(&b, 176), 12); // expired
        assert_eq!(u32_at(&b, 184), 2);
        assert_eq!(u64_at(&b, 188), 1);
        assert_eq!(u64_at(&b, 204), 50);
        assert_eq!(u32_at(&b, 8), 2);
        assert_eq!(Header::decode(&b), Some(h.clone()));
        // With nothing expired it is version 1, as the releases before
        // wrote it: no `expired`, `nsegs` at +176.
        let mut want = h;
        want.counters.expired = 0;
        let v1 = want.encode().unwrap();
        assert_eq!(u32_at(&v1, 8), 1);
        assert_eq!(v1.len(), b.len() - 8);
        assert_eq!(
            &v1[..176],
            &{
                let mut p = b[..176].to_vec();
                p[8..16].copy_from_slice(&v1[8..16]);
                p
            }[..]
        );
        assert_eq!(u32_at(&v1, 176), 2);
        assert_eq!(u64_at(&v1, 180), 1);
        assert_eq!(Header::decode(&v1), Some(want.clone()));
        // With a lane it is version 3: the lanes after `expired`, `nsegs`
        // at +328.
        let mut ranked = want;
        ranked.lanes[8] = Lane { len: 5, cursor: 2 };
        ranked.lanes[0] = Lane { len: 1, cursor: 0 };
        ranked.lanes_epoch = 77;
        let v3 = ranked.encode().unwrap();
        assert_eq!(u32_at(&v3, 8), 3);
        assert_eq!(u64_at(&v3, 176), 0); // expired
        assert_eq!(u64_at(&v3, 184), 77); // lanes_epoch
        assert_eq!((u64_at(&v3, 192), u64_at(&v3, 200)), (1, 0)); // priority 1
        assert_eq!((u64_at(&v3, 320), u64_at(&v3, 328)), (5, 2)); // priority 9
        assert_eq!(u32_at(&v3, 336), 2);
        assert_eq!(u64_at(&v3, 340), 1);
        assert_eq!(v3.len(), b.len() + 152);
        assert_eq!(Header::decode(&v3), Some(ranked));
    }

    #[test]
    fn a_header_with_no_segments_decodes_from_its_own_bytes_in_both_versions() {
        for expired in [0, 5] {
            let mut h = header();
            h.segments.clear();
            h.counters.expired = expired;
            let b = h.encode().unwrap();
            assert_eq!(b.len(), if expired == 0 { 184 } else { 192 });
            assert_eq!(Header::decode(&b), Some(h));
        }
    }

    #[test]
    fn a_damaged_header_is_rejected() {
        let b = header().encode().unwrap();
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert_eq!(Header::decode(&bad), None, "byte {i}");
        }
        for cut in 0..b.len() {
            assert_eq!(Header::decode(&b[..cut]), None);
        }
        assert_eq!(Header::decode(&vec![0; REGION_LEN]), None);
    }

    #[test]
    fn too_many_segments_do_not_encode() {
        let mut h = header();
        h.segments = vec![SegmentEntry { base: 1, live: 1 }; MAX_SEGMENTS];
        assert!(h.encode().unwrap().len() <= REGION_LEN);
        h.segments.push(SegmentEntry { base: 1, live: 1 });
        assert!(h.encode().is_none());
    }

    #[test]
    fn a_stamp_round_trips_and_survives_one_torn_half() {
        let b = encode_stamp(77);
        assert_eq!(&b[0..4], b"SPST");
        assert_eq!(u64_at(&b, 4), 77);
        assert_eq!(u32_at(&b, 28), crc32fast::hash(&b[..28]));
        assert_eq!(&b[32..36], b"SPST");
        assert_eq!(u64_at(&b, 36), 77);
        assert_eq!(decode_stamp(&b), Stamp::Generation(77));
        assert_eq!(decode_stamp(&[0; 64]), Stamp::Absent);
        assert_eq!(decode_stamp(&b[..63]), Stamp::Absent);
        // A write of generation 78 torn anywhere over one of 77 leaves 77 or 78.
        let new = encode_stamp(78);
        for cut in 0..=64 {
            let mut t = b;
            t[..cut].copy_from_slice(&new[..cut]);
            let got = decode_stamp(&t);
            assert!(
                got == Stamp::Generation(77) || got == Stamp::Generation(78),
                "cut {cut}: {got:?}"
            );
        }
        let mut bad = b;
        bad[5] ^= 1;
        bad[37] ^= 1;
        assert_eq!(decode_stamp(&bad), Stamp::Damaged);
        // A stamp is never taken for a message's slot.
        assert_eq!(decode_slot(&b), Err(SlotDamage::Bad));
    }

    #[test]
    fn a_wal_record_round_trips_and_a_torn_one_is_rejected() {
        let entries = vec![
            (State::Ready, slot(1, State::Leased)),
            (State::Leased, slot(2, State::Acked)),
        ];
        let b = encode_wal(77, entries.iter().map(|(old, m)| (*old, m)));
        let r = decode_wal(&b).unwrap();
        assert_eq!(r.lsn, 77);
        assert_eq!(r.entries, entries);
        assert_eq!(r.len, b.len());
        // Pinned: 8-byte head, lsn and count, then 1 + 64 bytes per entry.
        assert_eq!(b.len(), 8 + 12 + 2 * 65);
        for (i, (_, m)) in entries.iter().enumerate() {
            assert_eq!(wal_slot(&b, i), encode_slot(m));
            assert_eq!(wal_slot(&b, i).as_ptr(), b[8 + 12 + i * 65 + 1..].as_ptr());
        }
        for cut in 0..b.len() {
            assert_eq!(decode_wal(&b[..cut]), None);
        }
        let mut bad = b.clone();
        bad[30] ^= 4;
        assert_eq!(decode_wal(&bad), None);
        assert_eq!(decode_wal(&[0xff; 64]), None);
    }
}
