//! The message record: how one message is framed inside a segment file.
//! Pure encode/decode and CRC checks, no I/O.
//!
//! A segment file starts with a 16-byte file header, then holds records back to
//! back. All integers are little-endian.
//!
//! ```text
//! segment file header (16 bytes)
//! +0      +4                  +12        +16
//! | magic | salt              | crc      |
//! | SPQ1  | u64 (the queue's) | u32      |
//!
//! record (40-byte header + body)
//! +0      +4         +8     +16           +24            +32        +36        +40
//! | SPMR  | body_len | seq  | pushed_at   | not_before   | body_crc | head_crc | body ...
//! | magic | u32      | u64  | u64 ms UNIX | u64 ms UNIX  | u32      | u32      | body_len bytes
//!
//! long record (48-byte header + body): a message pushed with a TTL
//! +0      +4         +8     +16         +24          +32     +36       +40        +44        +48
//! | SPM2  | body_len | seq  | pushed_at | not_before | ttl_s | expires | body_crc | head_crc | body ...
//! | magic | u32      | u64  | u64 ms    | u64 ms     | u32   | u32 s   | u32      | u32      |
//!
//! keyed record (72-byte header + body): a message pushed with a unique key
//! +0      +4         +8     +16         +24          +32     +36       +40          +44  +48      +64        +68        +72
//! | SPM3  | body_len | seq  | pushed_at | not_before | ttl_s | expires | unique_for_s | 0  | key    | body_crc | head_crc | body ...
//! | magic | u32      | u64  | u64 ms    | u64 ms     | u32   | u32 s   | u32          | u32| 16 B   | u32      | u32      |
//!
//! ranked record (72-byte header + body): a message pushed with a priority
//! +0      +4         +8     +16         +24          +32     +36       +40          +44      +45   +46 +48      +64        +68        +72
//! | SPM4  | body_len | seq  | pushed_at | not_before | ttl_s | expires | unique_for_s | priority| flags| 0 | key    | body_crc | head_crc | body ...
//! | magic | u32      | u64  | u64 ms    | u64 ms     | u32   | u32 s   | u32          | u8 1-9  | u8   | u16| 16 B  | u32      | u32      |
//!
//! grouped record (80-byte header + body): a message pushed in a group
//! +0      +4         +8     +16         +24          +32     +36       +40          +44 +45   +46 +48      +64    +72        +76        +80
//! | SPM5  | body_len | seq  | pushed_at | not_before | ttl_s | expires | unique_for_s | 0 | flags| 0 | key    | group| body_crc | head_crc | body ...
//! | magic | u32      | u64  | u64 ms    | u64 ms     | u32   | u32 s   | u32          | u8| u8   | u16| 16 B  | u64  | u32      | u32      |
//! ```
//!
//! * A grouped record (format 5) is the ranked layout with priority 0 (a
//!   grouped message has none) and the group's key
//!   (`crate::model::group::GroupKey`, never 0) at +64; flag bit 0 at +45
//!   says it has a unique key. Only messages pushed with `--group` get it.
//!
//! * A ranked record (format 4) is the keyed layout with the message's
//!   `--priority` (1 to 9) at +44 and, at +45, flag bit 0: it has a unique
//!   key (else the key and its window are zeros). Only messages pushed
//!   with a priority above 0 get it, so every other record is what it was.
//!
//! * A keyed record (format 3) holds the key's hash
//!   (`crate::model::unique::UniqueKey`) and its `--unique-for` window in
//!   whole seconds; its TTL fields are 0 when it has no TTL (both, or
//!   neither); `head_crc` covers bytes `0..68`. Only keyed messages get
//!   it, so records without a key are what they were.
//!
//! * A record without a TTL is written short, as every release before the
//!   long one wrote all records, so a bulk push costs what it did. The long
//!   header (format 2) adds the TTL and when it ends (for a message moved
//!   by `retry --to`, counted from the move, not from `pushed_at`), both in
//!   whole seconds and never 0; its `head_crc` covers bytes `0..44`. The
//!   slot keeps the expiry a later `retry` in place gives; the record's is
//!   what a slot rebuilt from it gets.
//! * The file header's `crc` is the CRC32 of its bytes `0..12`; the `1` of
//!   the magic is the format version.
//! * `head_crc` is the CRC32 of bytes `0..36` of the header. A valid head means
//!   `body_len` can be trusted, so a record whose body is damaged is skipped
//!   exactly and the next record is found right after it.
//! * `body_crc` is the CRC32 of the body alone.
//! * `seq` is the message's sequence number in its queue; the id users see
//!   is made from the seq and the salt (crate::model::ids), and the salt is in every segment header so that ids
//!   survive even the loss of the whole index.
//! * `not_before` is 0 for a message that is ready at once.
//!
//! A record is only ever served if both CRCs match. A head that does not check
//! out (torn write, flipped bit) makes the reader resynchronise: it looks for
//! the next `SPMR` whose head checks out ([`find_next`]).

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"SPQ1";
/// Length of the segment file header; the first record starts here.
pub const SEGMENT_HEADER_LEN: u64 = 16;
/// Magic bytes at the start of every record.
pub const RECORD_MAGIC: [u8; 4] = *b"SPMR";
/// Magic bytes at the start of a long record (one with a TTL).
pub const LONG_RECORD_MAGIC: [u8; 4] = *b"SPM2";
/// Magic bytes at the start of a keyed record (one with a unique key).
pub const KEYED_RECORD_MAGIC: [u8; 4] = *b"SPM3";
/// Magic bytes at the start of a ranked record (one with a priority).
pub const RANKED_RECORD_MAGIC: [u8; 4] = *b"SPM4";
/// Magic bytes at the start of a grouped record (one in a group).
pub const GROUPED_RECORD_MAGIC: [u8; 4] = *b"SPM5";
/// The flag bit at +45 of a ranked or grouped record: it has a unique key.
const RANKED_KEYED: u8 = 1;
/// Length of a record header (the short one).
pub const RECORD_HEADER_LEN: usize = 40;
/// Length of a long record's header.
pub const LONG_HEADER_LEN: usize = 48;
/// Length of a keyed (or ranked) record's header.
pub const KEYED_HEADER_LEN: usize = 72;
/// Length of a grouped record's header: the most bytes a header takes.
pub const GROUPED_HEADER_LEN: usize = 80;
/// The most bytes a record header takes.
pub const MAX_HEADER_LEN: usize = GROUPED_HEADER_LEN;

/// Which header a record has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No TTL, no key: `SPMR`.
    Short,
    /// A TTL: `SPM2`.
    Long,
    /// A unique key (and maybe a TTL): `SPM3`.
    Keyed,
    /// A priority above 0 (and maybe a key and a TTL): `SPM4`.
    Ranked,
    /// A group (and maybe a key and a TTL; no priority): `SPM5`.
    Grouped,
}

impl Kind {
    /// The kind of a record with a TTL of `ttl_ms` (0: none), `keyed` or
    /// not, of `priority`, `grouped` or not.
    pub fn of(ttl_ms: u64, keyed: bool, priority: u8, grouped: bool) -> Kind {
        if grouped {
            Kind::Grouped
        } else if priority > 0 {
            Kind::Ranked
        } else if keyed {
            Kind::Keyed
        } else if ttl_ms > 0 {
            Kind::Long
        } else {
            Kind::Short
        }
    }

    /// The kind of the record of a message, as its slot says.
    pub fn of_meta(m: &crate::store::Meta) -> Kind {
        if m.group.is_some() {
            Kind::Grouped
        } else if m.priority > 0 {
            Kind::Ranked
        } else if m.keyed {
            Kind::Keyed
        } else if m.loc.long {
            Kind::Long
        } else {
            Kind::Short
        }
    }

    /// Its header's length: where the body starts.
    pub fn head_len(self) -> usize {
        match self {
            Kind::Short => RECORD_HEADER_LEN,
            Kind::Long => LONG_HEADER_LEN,
            Kind::Keyed | Kind::Ranked => KEYED_HEADER_LEN,
            Kind::Grouped => GROUPED_HEADER_LEN,
        }
    }
}
/// What both magics start with: where a search for the next record looks.
pub const MAGIC_PREFIX: [u8; 3] = *b"SPM";
use crate::model::unique::UniqueKey;
/// The largest body accepted (1 GiB), the message model's limit.
pub use crate::store::MAX_BODY;

/// The decoded header of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub body_len: u32,
    pub seq: u64,
    pub pushed_at_ms: u64,
    pub not_before_ms: u64,
    pub body_crc: u32,
    /// The TTL it was pushed with, in ms (whole seconds; 0: none, a short record).
    pub ttl_ms: u64,
    /// When that TTL ends, as pushed (ms, whole seconds; 0 with no TTL).
    pub expires_at_ms: u64,
    /// Its unique key and window (ms, whole seconds): a keyed record.
    pub unique: Option<(UniqueKey, u64)>,
    /// Its priority (0: not a ranked record).
    pub priority: u8,
    /// Its group: a grouped record.
    pub group: Option<crate::model::group::GroupKey>,
}

impl RecordHeader {
    /// Length of the whole record (header and body) on disk.
    pub fn record_len(&self) -> u64 {
        self.head_len() as u64 + u64::from(self.body_len)
    }

    /// Whether its slot has the long layout (it has a TTL or a key).
    pub fn long(&self) -> bool {
        self.kind() != Kind::Short
    }

    /// Which header it has.
    pub fn kind(&self) -> Kind {
        Kind::of(
            self.ttl_ms,
            self.unique.is_some(),
            self.priority,
            self.group.is_some(),
        )
    }

    /// Length of its header: where its body starts.
    pub fn head_len(&self) -> usize {
        self.kind().head_len()
    }

    /// Where it is, as a slot keeps it: at `offset` of segment `segment`.
    pub fn loc(&self, segment: u64, offset: u64) -> crate::store::Loc {
        crate::store::Loc {
            segment,
            offset: offset as u32,
            long: self.long(),
        }
    }
}

/// Why bytes at some offset are not a good record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Fewer bytes than a header, or than the header's body length: a torn tail.
    Short,
    /// The first four bytes are not `SPMR`.
    BadMagic,
    /// The header's CRC does not match: its fields cannot be trusted.
    BadHeaderCrc,
    /// The header claims a body larger than [`MAX_BODY`].
    TooLong,
    /// The header is fine, the body's CRC does not match.
    BadBodyCrc,
    /// A whole record whose seq does not belong here (a stray copy).
    OutOfSequence,
    /// Bytes past the largest size a segment file can have
    /// (`crate::store::fs::segment::MAX_SEGMENT_LEN`): no record lies there.
    PastLimit,
}

impl Damage {
    pub fn describe(self) -> &'static str {
        match self {
            Damage::Short => "record cut short (torn write)",
            Damage::BadMagic => "no record header here",
            Damage::BadHeaderCrc => "record header checksum mismatch",
            Damage::TooLong => "record header claims an impossible length",
            Damage::BadBodyCrc => "message body checksum mismatch",
            Damage::OutOfSequence => "record out of sequence (a stray copy)",
            Damage::PastLimit => "bytes past the largest size a segment file can have",
        }
    }
}

/// The segment file header of a queue with this salt.
pub fn segment_header(salt: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..4].copy_from_slice(&SEGMENT_MAGIC);
    h[4..12].copy_from_slice(&salt.to_le_bytes());
    let crc = crc32fast::hash(&h[0..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment file header; returns the queue's salt.
pub fn check_segment_header(buf: &[u8]) -> Result<u64, String> {
    if buf.len() < SEGMENT_HEADER_LEN as usize {
        return Err("segment header cut short".into());
    }
    if buf[0..3] != SEGMENT_MAGIC[0..3] {
        return Err("not a spoolmq segment (bad magic)".into());
    }
    if buf[3] != SEGMENT_MAGIC[3] {
        return Err(format!("unsupported segment version {:?}", buf[3] as char));
    }
    if crc32fast::hash(&buf[0..12]) != u32_at(buf, 12) {
        return Err("segment header checksum mismatch".into());
    }
    Ok(u64_at(buf, 4))
}

/// The fields of a record other than its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields {
    pub seq: u64,
    pub pushed_at_ms: u64,
    pub not_before_ms: u64,
    /// Whole seconds, in ms (0: none, a short record).
    pub ttl_ms: u64,
    /// When the TTL ends, a whole second in ms (with a TTL, never 0).
    pub expires_at_ms: u64,
    /// The unique key and window (ms, whole seconds): a keyed record.
    pub unique: Option<(UniqueKey, u64)>,
    /// 1 to 9: a ranked record; 0: none.
    pub priority: u8,
    /// Its group: a grouped record (its priority is then 0).
    pub group: Option<crate::model::group::GroupKey>,
}

/// Appends one encoded record to `out`.
pub fn encode_fields(f: Fields, body: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    encode_without_crcs(f, body, out);
    fill_crcs(&mut out[start..]);
}

/// Appends one encoded record without a TTL (a short record) to `out`.
pub fn encode(seq: u64, pushed_at_ms: u64, not_before_ms: u64, body: &[u8], out: &mut Vec<u8>) {
    let f = Fields {
        seq,
        pushed_at_ms,
        not_before_ms,
        ttl_ms: 0,
        expires_at_ms: 0,
        unique: None,
        priority: 0,
        group: None,
    };
    encode_fields(f, body, out);
}

/// Appends a record whose `body_crc` and `head_crc` are still zero: such a
/// record is not valid until [`fill_crcs`] has run over it. A bulk push
/// encodes on one thread and has the CRCs filled on the thread that writes
/// the chunk (crate::base::io::Appender), since they were its largest cost.
pub(super) fn encode_without_crcs(f: Fields, body: &[u8], out: &mut Vec<u8>) {
    debug_assert!(body.len() as u64 <= MAX_BODY);
    let ttl_s = f.ttl_ms.div_ceil(1000).min(u64::from(u32::MAX)) as u32;
    let kind = Kind::of(
        u64::from(ttl_s),
        f.unique.is_some(),
        f.priority,
        f.group.is_some(),
    );
    out.extend_from_slice(match kind {
        Kind::Grouped => &GROUPED_RECORD_MAGIC,
        Kind::Ranked => &RANKED_RECORD_MAGIC,
        Kind::Keyed => &KEYED_RECORD_MAGIC,
        Kind::Short => &RECORD_MAGIC,
        Kind::Long => &LONG_RECORD_MAGIC,
    });
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&f.seq.to_le_bytes());
    out.extend_from_slice(&f.pushed_at_ms.to_le_bytes());
    out.extend_from_slice(&f.not_before_ms.to_le_bytes());
    let expires = if ttl_s > 0 {
        (f.expires_at_ms / 1000).clamp(1, u64::from(u32::MAX)) as u32
    } else {
        0
    };
    if kind != Kind::Short {
        out.extend_from_slice(&ttl_s.to_le_bytes());
        out.extend_from_slice(&expires.to_le_bytes());
    }
    if matches!(kind, Kind::Keyed | Kind::Ranked | Kind::Grouped) {
        let (key, window_ms) = f.unique.unwrap_or((UniqueKey([0; 16]), 0));
        let window_s = window_ms.div_ceil(1000).min(u64::from(u32::MAX)) as u32;
        out.extend_from_slice(&window_s.to_le_bytes());
        let flags = if f.unique.is_some() { RANKED_KEYED } else { 0 };
        let (rank, flags) = match kind {
            Kind::Ranked => (f.priority.min(crate::store::MAX_PRIORITY), flags),
            Kind::Grouped => (0, flags),
            _ => (0, 0),
        };
        out.extend_from_slice(&[rank, flags, 0, 0]);
        out.extend_from_slice(&key.0);
    }
    if let (Kind::Grouped, Some(g)) = (kind, f.group) {
        out.extend_from_slice(&g.0.to_le_bytes());
    }
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(body);
}

/// The header length a record starting with `magic` has, if it is one.
fn head_len_of(magic: &[u8]) -> Option<usize> {
    match magic {
        m if m == RECORD_MAGIC => Some(RECORD_HEADER_LEN),
        m if m == LONG_RECORD_MAGIC => Some(LONG_HEADER_LEN),
        m if m == KEYED_RECORD_MAGIC || m == RANKED_RECORD_MAGIC => Some(KEYED_HEADER_LEN),
        m if m == GROUPED_RECORD_MAGIC => Some(GROUPED_HEADER_LEN),
        _ => None,
    }
}

/// Computes and writes the two CRCs of every record in `buf`, which holds
/// whole records back to back as [`encode_without_crcs`] wrote them. Stops
/// at anything that is not such a record (which the encoder never leaves).
pub(super) fn fill_crcs(buf: &mut [u8]) {
    let mut at = 0;
    while let Some(head) = buf.get(at..at + 4).and_then(head_len_of) {
        if buf.len() - at < head {
            return;
        }
        let body_len = u32_at(buf, at + 4) as usize;
        let body_at = at + head;
        let Some(body) = buf.get(body_at..body_at.saturating_add(body_len)) else {
            return;
        };
        let body_crc = crc32fast::hash(body);
        let crc_at = at + head - 8;
        buf[crc_at..crc_at + 4].copy_from_slice(&body_crc.to_le_bytes());
        let head_crc = crc32fast::hash(&buf[at..crc_at + 4]);
        buf[crc_at + 4..crc_at + 8].copy_from_slice(&head_crc.to_le_bytes());
        at = body_at + body_len;
    }
}

/// The little-endian u32 at `b[at..at + 4]` (the caller checks the length).
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// The little-endian u64 at `b[at..at + 8]` (the caller checks the length).
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decodes and checks a record header from the start of `buf`.
pub fn decode_header(buf: &[u8]) -> Result<RecordHeader, Damage> {
    if buf.len() < RECORD_HEADER_LEN {
        return Err(Damage::Short);
    }
    let head = head_len_of(&buf[0..4]).ok_or(Damage::BadMagic)?;
    if buf.len() < head {
        return Err(Damage::Short);
    }
    let crc_at = head - 8;
    if crc32fast::hash(&buf[0..crc_at + 4]) != u32_at(buf, crc_at + 4) {
        return Err(Damage::BadHeaderCrc);
    }
    let grouped = buf[0..4] == GROUPED_RECORD_MAGIC;
    let ranked = buf[0..4] == RANKED_RECORD_MAGIC;
    let (priority, keyed) = if ranked || grouped {
        (buf[44], buf[45] == RANKED_KEYED)
    } else {
        (0, head == KEYED_HEADER_LEN)
    };
    let group = if grouped {
        Some(
            crate::model::group::GroupKey::from_stored(u64_at(buf, 64))
                .ok_or(Damage::BadHeaderCrc)?,
        )
    } else {
        None
    };
    let (ttl_s, expires_s) = if head == RECORD_HEADER_LEN {
        (0, 0)
    } else {
        let (ttl_s, expires_s) = (u32_at(buf, 32), u32_at(buf, 36));
        // One encoding only: a long header has a TTL and an expiry, a
        // keyed one both or neither, and zeros where it keeps nothing; a
        // ranked one a priority of 1 to 9, a known flag, and without a
        // key a zero window and key.
        let odd = (ttl_s == 0) != (expires_s == 0)
            || (head == LONG_HEADER_LEN && ttl_s == 0)
            || (head == KEYED_HEADER_LEN && !ranked && u32_at(buf, 44) != 0)
            || (ranked && !(1..=crate::store::MAX_PRIORITY).contains(&priority))
            || (grouped && priority != 0)
            || ((ranked || grouped)
                && (buf[45] & !RANKED_KEYED != 0
                    || buf[46..48] != [0, 0]
                    || (!keyed && (u32_at(buf, 40) != 0 || buf[48..64] != [0; 16]))));
        if odd {
            return Err(Damage::BadHeaderCrc);
        }
        (ttl_s, expires_s)
    };
    let unique = keyed.then(|| {
        let mut key = [0u8; 16];
        key.copy_from_slice(&buf[48..64]);
        (UniqueKey(key), u64::from(u32_at(buf, 40)) * 1000)
    });
    let header = RecordHeader {
        body_len: u32_at(buf, 4),
        seq: u64_at(buf, 8),
        pushed_at_ms: u64_at(buf, 16),
        not_before_ms: u64_at(buf, 24),
        body_crc: u32_at(buf, crc_at),
        ttl_ms: u64::from(ttl_s) * 1000,
        expires_at_ms: u64::from(expires_s) * 1000,
        unique,
        priority,
        group,
    };
    if u64::from(header.body_len) > MAX_BODY {
        return Err(Damage::TooLong);
    }
    Ok(header)
}

/// Checks a body against its header.
pub fn check_body(header: &RecordHeader, body: &[u8]) -> Result<(), Damage> {
    if body.len() < header.body_len as usize {
        return Err(Damage::Short);
    }
    if crc32fast::hash(&body[..header.body_len as usize]) != header.body_crc {
        return Err(Damage::BadBodyCrc);
    }
    Ok(())
}

/// Decodes a whole record from the start of `buf`: its header and its body.
pub fn decode(buf: &[u8]) -> Result<(RecordHeader, &[u8]), Damage> {
    let header = decode_header(buf)?;
    let body = &buf[header.head_len()..];
    check_body(&header, body)?;
    Ok((header, &body[..header.body_len as usize]))
}

/// The offset (relative to `buf`) of the next plausible record header at or
/// after `from`: `SPMR`, `SPM2` or `SPM3` followed by a header whose CRC checks out.
pub fn find_next(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at.saturating_add(RECORD_HEADER_LEN) <= buf.len() {
        let rest = &buf[at..];
        let rel = rest.windows(4).position(|w| head_len_of(w).is_some())?;
        let pos = at + rel;
        if decode_header(&buf[pos..]).is_ok() {
            return Some(pos);
        }
        at = pos + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(seq: u64, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode(seq, 1_700_000_000_000, 0, body, &mut v);
        v
    }

    #[test]
    fn a_record_round_trips() {
        let buf = one(42, b"hello");
        assert_eq!(buf.len(), RECORD_HEADER_LEN + 5);
        let (h, body) = decode(&buf).unwrap();
        assert_eq!(h.seq, 42);
        assert_eq!(h.pushed_at_ms, 1_700_000_000_000);
        assert_eq!(h.not_before_ms, 0);
        assert_eq!(body, b"hello");
        assert_eq!(h.record_len(), buf.len() as u64);
    }

    #[test]
    fn records_encoded_without_crcs_are_whole_once_filled() {
        let mut want = Vec::new();
        let mut got = Vec::new();
        for (seq, body) in [(1, &b"a"[..]), (2, b""), (3, &[7u8; 300][..])] {
            let ttl_ms = seq * 1000 % 2000;
            let f = Fields {
                seq,
                pushed_at_ms: 10,
                not_before_ms: 20,
                ttl_ms,
                expires_at_ms: ttl_ms * 7,
                unique: (seq == 2).then_some((UniqueKey::of(b"k"), 60_000)),
                priority: (seq == 3) as u8 * 7,
                group: None,
            };
            encode_fields(f, body, &mut want);
            encode_without_crcs(f, body, &mut got);
        }
        assert!(
            decode(&got).is_err(),
            "not valid before the CRCs are filled"
        );
        fill_crcs(&mut got);
        assert_eq!(got, want);
        // A buffer cut short, or garbage, is left alone without a panic.
        let mut short = want[..want.len() - 1].to_vec();
        fill_crcs(&mut short);
        fill_crcs(&mut [b'S', b'P', b'M', b'R', 255, 255, 255, 255][..].to_vec());
    }

    #[test]
    fn an_empty_body_round_trips() {
        let buf = one(1, b"");
        assert_eq!(decode(&buf).unwrap().1, b"");
    }

    #[test]
    fn the_documented_offsets_match_the_encoder() {
        let mut buf = Vec::new();
        encode(0x0102, 0x0304, 0x0506, b"xyz", &mut buf);
        assert_eq!(&buf[0..4], b"SPMR");
        assert_eq!(u32_at(&buf, 4), 3);
        assert_eq!(u64_at(&buf, 8), 0x0102);
        assert_eq!(u64_at(&buf, 16), 0x0304);
        assert_eq!(u64_at(&buf, 24), 0x0506);
        assert_eq!(u32_at(&buf, 32), crc32fast::hash(b"xyz"));
        assert_eq!(u32_at(&buf, 36), crc32fast::hash(&buf[0..36]));
        assert_eq!(&buf[40..], b"xyz");
        let h = segment_header(0xabcd);
        assert_eq!(&h[0..4], b"SPQ1");
        assert_eq!(u64_at(&h, 4), 0xabcd);
        assert_eq!(u32_at(&h, 12), crc32fast::hash(&h[0..12]));
        assert_eq!(check_segment_header(&h), Ok(0xabcd));
        for i in 0..16 {
            let mut bad = h;
            bad[i] ^= 0x20;
            assert!(check_segment_header(&bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn a_long_record_has_its_fields_at_the_documented_offsets() {
        let f = Fields {
            seq: 0x0102,
            pushed_at_ms: 0x0304,
            not_before_ms: 0x0506,
            ttl_ms: 7_000,
            expires_at_ms: 1_700_000_009_000,
            unique: None,
            priority: 0,
            group: None,
        };
        let mut buf = Vec::new();
        encode_fields(f, b"xyz", &mut buf);
        assert_eq!(&buf[0..4], b"SPM2");
        assert_eq!(u32_at(&buf, 4), 3);
        assert_eq!(u64_at(&buf, 8), 0x0102);
        assert_eq!(u64_at(&buf, 16), 0x0304);
        assert_eq!(u64_at(&buf, 24), 0x0506);
        assert_eq!(u32_at(&buf, 32), 7);
        assert_eq!(u32_at(&buf, 36), 1_700_000_009);
        assert_eq!(u32_at(&buf, 40), crc32fast::hash(b"xyz"));
        assert_eq!(u32_at(&buf, 44), crc32fast::hash(&buf[0..44]));
        assert_eq!(&buf[48..], b"xyz");
        let (h, body) = decode(&buf).unwrap();
        assert_eq!(
            (h.ttl_ms, h.expires_at_ms, h.head_len()),
            (7_000, 1_700_000_009_000, 48)
        );
        assert_eq!((body, h.record_len()), (&b"xyz"[..], 51));
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
        // A long header without a TTL or without an expiry is not one.
        for at in [32, 36] {
            let mut bad = buf.clone();
            bad[at..at + 4].copy_from_slice(&[0; 4]);
            let crc = crc32fast::hash(&bad[0..44]);
            bad[44..48].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(
                decode_header(&bad),
                Err(Damage::BadHeaderCrc),
                "zero at {at}"
            );
        }
    }

    /// The fields the offset tests encode: a TTL of `ttl_ms` (or none),
    /// `unique` and `priority`.
    fn wide(ttl_ms: u64, unique: Option<(UniqueKey, u64)>, priority: u8) -> Fields {
        Fields {
            seq: 0x0102,
            pushed_at_ms: 0x0304,
            not_before_ms: 0x0506,
            ttl_ms,
            expires_at_ms: if ttl_ms > 0 { 1_700_000_009_000 } else { 0 },
            unique,
            priority,
            group: None,
        }
    }

    #[test]
    fn a_ranked_record_has_its_fields_at_the_documented_offsets() {
        let key = UniqueKey([0xcd; 16]);
        for (ttl_ms, unique) in [(0, None), (7_000, Some((key, 60_000)))] {
            let f = wide(ttl_ms, unique, 9);
            let mut buf = Vec::new();
            encode_fields(f, b"xyz", &mut buf);
            assert_eq!(&buf[0..4], b"SPM4");
            assert_eq!(u64_at(&buf, 8), 0x0102);
            assert_eq!(u32_at(&buf, 32), (ttl_ms / 1000) as u32);
            assert_eq!(u32_at(&buf, 40), if unique.is_some() { 60 } else { 0 });
            assert_eq!(buf[44], 9);
            assert_eq!(buf[45], u8::from(unique.is_some()));
            assert_eq!(&buf[46..48], &[0, 0]);
            let k = if unique.is_some() {
                [0xcd; 16]
            } else {
                [0; 16]
            };
            assert_eq!(&buf[48..64], &k);
            assert_eq!(u32_at(&buf, 64), crc32fast::hash(b"xyz"));
            assert_eq!(u32_at(&buf, 68), crc32fast::hash(&buf[0..68]));
            assert_eq!(&buf[72..], b"xyz");
            let (h, body) = decode(&buf).unwrap();
            assert_eq!((h.priority, h.unique, h.kind()), (9, unique, Kind::Ranked));
            assert_eq!((body, h.record_len()), (&b"xyz"[..], 75));
            for i in 0..buf.len() {
                let mut bad = buf.clone();
                bad[i] ^= 0x01;
                assert!(decode(&bad).is_err(), "flip at byte {i} went unnoticed");
            }
            // A priority of 0 or over 9, an unknown flag, or a key without
            // its flag is not a ranked header.
            for (at, v) in [(44, 0u8), (44, 10), (45, 2), (46, 1), (50, 1)] {
                let mut bad = buf.clone();
                bad[at] = v;
                let crc = crc32fast::hash(&bad[0..68]);
                bad[68..72].copy_from_slice(&crc.to_le_bytes());
                let want = if at == 50 && unique.is_some() {
                    Ok(())
                } else {
                    Err(Damage::BadHeaderCrc)
                };
                assert_eq!(decode_header(&bad).map(|_| ()), want, "{v} at {at}");
            }
        }
    }

    #[test]
    fn a_keyed_record_has_its_fields_at_the_documented_offsets() {
        let key = UniqueKey([0xab; 16]);
        for ttl_ms in [0, 7_000] {
            let f = wide(ttl_ms, Some((key, 3_600_000)), 0);
            let mut buf = Vec::new();
            encode_fields(f, b"xyz", &mut buf);
            assert_eq!(&buf[0..4], b"SPM3");
            assert_eq!(u32_at(&buf, 4), 3);
            assert_eq!(u64_at(&buf, 8), 0x0102);
            assert_eq!(u64_at(&buf, 16), 0x0304);
            assert_eq!(u64_at(&buf, 24), 0x0506);
            assert_eq!(u32_at(&buf, 32), (ttl_ms / 1000) as u32);
            let expires = if ttl_ms > 0 { 1_700_000_009 } else { 0 };
            assert_eq!(u32_at(&buf, 36), expires);
            assert_eq!(u32_at(&buf, 40), 3600);
            assert_eq!(u32_at(&buf, 44), 0);
            assert_eq!(&buf[48..64], &[0xab; 16]);
            assert_eq!(u32_at(&buf, 64), crc32fast::hash(b"xyz"));
            assert_eq!(u32_at(&buf, 68), crc32fast::hash(&buf[0..68]));
            assert_eq!(&buf[72..], b"xyz");
            let (h, body) = decode(&buf).unwrap();
            assert_eq!(h.unique, Some((key, 3_600_000)));
            assert_eq!(
                (h.ttl_ms, h.head_len(), h.kind()),
                (ttl_ms, 72, Kind::Keyed)
            );
            assert_eq!((body, h.record_len()), (&b"xyz"[..], 75));
            for i in 0..buf.len() {
                let mut bad = buf.clone();
                bad[i] ^= 0x01;
                assert!(decode(&bad).is_err(), "flip at byte {i} went unnoticed");
            }
            // A TTL without an expiry (or the reverse), or a nonzero
            // reserved word, is not a keyed header.
            for at in [32, 36, 44] {
                let mut bad = buf.clone();
                let v = if u32_at(&bad, at) == 0 { 5u32 } else { 0 };
                bad[at..at + 4].copy_from_slice(&v.to_le_bytes());
                let crc = crc32fast::hash(&bad[0..68]);
                bad[68..72].copy_from_slice(&crc.to_le_bytes());
                assert_eq!(decode_header(&bad), Err(Damage::BadHeaderCrc), "at {at}");
            }
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let good = one(7, b"some body bytes");
        for i in 0..good.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= bit;
                assert!(decode(&bad).is_err(), "flip at byte {i} went unnoticed");
            }
        }
    }

    #[test]
    fn a_short_tail_is_detected() {
        let good = one(7, b"0123456789");
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode_header(&good[..10]), Err(Damage::Short));
        assert_eq!(decode(&good[..good.len() - 1]), Err(Damage::Short));
    }

    #[test]
    fn a_damaged_body_keeps_its_extent() {
        let mut buf = one(1, b"aaaa");
        buf[RECORD_HEADER_LEN] ^= 0xff;
        let h = decode_header(&buf).unwrap();
        assert_eq!(
            check_body(&h, &buf[RECORD_HEADER_LEN..]),
            Err(Damage::BadBodyCrc)
        );
        assert_eq!(h.record_len(), buf.len() as u64);
    }

    #[test]
    fn resync_finds_the_next_good_header() {
        let mut buf = one(1, b"first");
        let second_at = buf.len();
        buf.extend(one(2, b"second"));
        buf[0] ^= 0xff; // break the first header
        assert_eq!(find_next(&buf, 0), Some(second_at));
        assert_eq!(find_next(&buf, second_at + 1), None);
        assert_eq!(find_next(b"SPMRgarbage", 0), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 12345;
        for len in 0..200 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = decode(&buf);
            let _ = find_next(&buf, 0);
            let _ = check_segment_header(&buf);
        }
    }
}
