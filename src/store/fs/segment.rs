//! Segment files: append-only files of message records
//! (format in [`crate::store::fs::record`]).
//!
//! A segment is named by the seq of its first message, zero-padded to 20
//! digits so that `ls` sorts segments in order: `00000000000000000001.seg`.
//!
//! Invariants:
//! * Bytes are only ever appended past the committed length recorded in the
//!   index header; committed bytes are never rewritten (only `fsck --repair`
//!   replaces a damaged segment, by a temporary file, fsync and rename).
//! * A new segment is created with `O_EXCL`, mode 0600, its 16-byte header
//!   written and fsynced, then the directory fsynced, before any record is
//!   appended to it.
//! * Reading never trusts the file: every record is checked by
//!   [`crate::store::fs::record::decode`], and a damaged one is reported with its offset.
//!   Nothing is sized from a length the file claims: scans, checks and
//!   repairs read a window at a time ([`scan_file`]) and never past
//!   [`MAX_SEGMENT_LEN`], and a record is read only if the file holds it.

use crate::base::error::{Error, IoContext, Result};
use crate::base::io::{FileIo, Fs, Open};
use crate::store::fs::record::{
    self, Damage, MAX_HEADER_LEN, RECORD_HEADER_LEN, RecordHeader, SEGMENT_HEADER_LEN,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file name of the segment whose first message has seq `base`.
pub fn file_name(base: u64) -> String {
    format!("{base:020}.seg")
}

/// The path of segment `base` in queue directory `dir`.
pub fn path(dir: &Path, base: u64) -> PathBuf {
    dir.join(file_name(base))
}

/// Parses a segment file name back into its base seq.
pub(super) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Opens `path` through `fs` (read-write, no symlinks, 0600 when created).
pub fn open_file(fs: &dyn Fs, path: &Path, how: Open) -> Result<Arc<dyn FileIo>> {
    fs.open(path, how).ctx(
        if how == Open::Existing {
            "open"
        } else {
            "create"
        },
        path,
    )
}

/// Opens an existing file read-write without following symlinks.
pub fn open_rw(fs: &dyn Fs, path: &Path) -> Result<Arc<dyn FileIo>> {
    open_file(fs, path, Open::Existing)
}

/// Fsyncs a directory, so that entries created, renamed or removed in it are durable.
pub fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).ctx("sync directory", dir)
}

/// Creates segment `base`: exclusive create (0600), header, fsync, directory fsync.
pub fn create(fs: &dyn Fs, dir: &Path, base: u64, salt: u64) -> Result<Arc<dyn FileIo>> {
    let p = path(dir, base);
    let f = open_file(fs, &p, Open::New)?;
    let written = f
        .write_all_at(&record::segment_header(salt), 0)
        .and_then(|_| f.sync_data());
    if let Err(e) = written {
        let _ = fs.remove_file(&p);
        return Err(Error::io("write segment header", &p, e));
    }
    if !crate::base::failpoint::planted("segment-dir-sync") {
        sync_dir(fs, dir)?;
    }
    Ok(f)
}

/// Bodies up to this long are read without a `stat` of the segment first:
/// one `statx` per message was a fifth of the system calls of a `pop`.
const UNCHECKED_READ: u32 = 64 * 1024;

/// Reads the record at `offset` of `file` and checks it: one with a body of
/// `expect_len` bytes and a header of `kind`. The outer error is
/// an I/O failure; the inner one says how the record is damaged.
pub fn read_record(
    file: &dyn FileIo,
    path: &Path,
    offset: u64,
    expect_len: u32,
    kind: record::Kind,
) -> Result<Result<(RecordHeader, Vec<u8>), Damage>> {
    if u64::from(expect_len) > record::MAX_BODY {
        return Ok(Err(Damage::TooLong));
    }
    let head = kind.head_len();
    // Nothing large is allocated for bytes the file does not hold (a damaged
    // slot may name a length up to MAX_BODY); a small record is read
    // without asking, and a short read is the same damage.
    let end = offset.saturating_add(head as u64 + u64::from(expect_len));
    if expect_len > UNCHECKED_READ && end > file.len().ctx("stat", path)? {
        return Ok(Err(Damage::Short));
    }
    let mut buf = vec![0u8; head + expect_len as usize];
    let n = read_at_most(file, path, &mut buf, offset)?;
    if n < buf.len() {
        return Ok(Err(Damage::Short));
    }
    Ok(check_record(&buf, expect_len, kind).map(|header| {
        buf.drain(..head);
        (header, buf)
    }))
}

/// Checks the record that is the whole of `buf` (its header of `kind` and
/// a body of `expect_len` bytes, as [`read_record`] reads it).
pub fn check_record(
    buf: &[u8],
    expect_len: u32,
    kind: record::Kind,
) -> Result<RecordHeader, Damage> {
    let head = kind.head_len();
    if buf.len() != head + expect_len as usize {
        return Err(Damage::Short);
    }
    let header = record::decode_header(buf)?;
    if header.body_len != expect_len || header.kind() != kind {
        return Err(Damage::BadHeaderCrc);
    }
    record::check_body(&header, &buf[head..])?;
    Ok(header)
}

/// Reads into `buf` from `offset` until it is full or the file ends; returns the bytes read.
pub fn read_at_most(file: &dyn FileIo, path: &Path, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    Ok(done)
}

/// The rule for a stray copy of a record (fsck reports it, a repair cuts
/// it out): a good record is in sequence when its seq is at least its
/// segment's `base` and above the `last` seq kept before it, in this
/// segment or an older one. Advances `last` when it is.
pub(super) fn in_sequence(seq: u64, base: u64, last: &mut Option<u64>) -> bool {
    let ok = seq >= base && last.is_none_or(|l| seq > l);
    if ok {
        *last = Some(seq);
    }
    ok
}

/// What a scan of a byte range found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A record whose header and body check out.
    Good { offset: u64, header: RecordHeader },
    /// A record whose header checks out but whose body does not.
    BadBody { offset: u64, header: RecordHeader },
    /// Bytes that are no record: `len` bytes from `offset`.
    Garbage {
        offset: u64,
        len: u64,
        damage: Damage,
    },
}

/// Bytes read at a time by the streaming scan and copies below: reading a
/// segment never holds more than this (plus one record's header), whatever
/// the file's length says.
const WINDOW: usize = 1 << 20;

/// The largest a segment file can be: a push rolls to a new segment before
/// it passes [`crate::store::fs::SEGMENT_LIMIT`] (64 MiB), unless a single
/// record is larger, and a record holds at most [`record::MAX_BODY`] after
/// the longest header. Bytes past this offset (a sparse file of 200 GB) are
/// damage, never read.
pub(super) const MAX_SEGMENT_LEN: u64 = FIRST_RECORD + MAX_HEADER_LEN as u64 + record::MAX_BODY;

/// Reads bytes at an offset until the buffer is full or the source ends;
/// returns how many.
type ReadAt<'a> = &'a mut dyn FnMut(&mut [u8], u64) -> Result<usize>;

/// Scans `buf`, which holds the file's bytes from `base_offset` on, record by
/// record. After damage it resynchronises on the next good record header.
/// Returns what it found and the offset just past the last record with a
/// good header (where a torn tail starts).
pub fn scan(buf: &[u8], base_offset: u64) -> (Vec<Found>, u64) {
    let mut read = |out: &mut [u8], at: u64| -> Result<usize> {
        let from = ((at - base_offset) as usize).min(buf.len());
        let n = out.len().min(buf.len() - from);
        out[..n].copy_from_slice(&buf[from..from + n]);
        Ok(n)
    };
    let to = base_offset + buf.len() as u64;
    // Reading memory cannot fail.
    scan_with(&mut read, base_offset, to).unwrap_or((Vec::new(), base_offset))
}

/// [`scan`] of the bytes `from..len` of `file`, a window at a time, never
/// reading past [`MAX_SEGMENT_LEN`]: bytes past it are one
/// [`Damage::PastLimit`] garbage range.
pub(super) fn scan_file(
    file: &dyn FileIo,
    path: &Path,
    from: u64,
    len: u64,
) -> Result<(Vec<Found>, u64)> {
    let to = len.min(MAX_SEGMENT_LEN).max(from);
    let mut read = |out: &mut [u8], at: u64| read_at_most(file, path, out, at);
    let (mut found, end) = scan_with(&mut read, from, to)?;
    if len > to {
        found.push(Found::Garbage {
            offset: to,
            len: len - to,
            damage: Damage::PastLimit,
        });
    }
    Ok((found, end))
}

/// The scan behind [`scan`] and [`scan_file`], over `from..to` of `read`.
fn scan_with(read: ReadAt, from: u64, to: u64) -> Result<(Vec<Found>, u64)> {
    let mut found = Vec::new();
    let mut window = Vec::new();
    let mut head = [0u8; MAX_HEADER_LEN];
    let mut at = from;
    let mut end = from;
    while at < to {
        let want = (to - at).min(MAX_HEADER_LEN as u64) as usize;
        let n = read(&mut head[..want], at)?;
        match record::decode_header(&head[..n]) {
            Ok(h) if to - at >= h.record_len() => {
                let body_at = at + h.head_len() as u64;
                if body_matches(read, &mut window, body_at, &h)? {
                    found.push(Found::Good {
                        offset: at,
                        header: h,
                    });
                } else {
                    found.push(Found::BadBody {
                        offset: at,
                        header: h,
                    });
                }
                at += h.record_len();
                end = at;
            }
            first => {
                let damage = match first {
                    Ok(_) => Damage::Short,
                    Err(d) => d,
                };
                let next = find_next_with(read, &mut window, at + 1, to)?.unwrap_or(to);
                found.push(Found::Garbage {
                    offset: at,
                    len: next - at,
                    damage,
                });
                at = next;
            }
        }
    }
    Ok((found, end))
}

/// Whether the body of `h` at `at` matches its CRC, read a window at a time.
fn body_matches(read: ReadAt, window: &mut Vec<u8>, at: u64, h: &RecordHeader) -> Result<bool> {
    let mut crc = crc32fast::Hasher::new();
    let mut left = u64::from(h.body_len);
    let mut pos = at;
    while left > 0 {
        let n = left.min(WINDOW as u64) as usize;
        window.resize(n, 0);
        if read(&mut window[..n], pos)? < n {
            return Ok(false);
        }
        crc.update(&window[..n]);
        left -= n as u64;
        pos += n as u64;
    }
    Ok(crc.finalize() == h.body_crc)
}

/// The offset of the next plausible record header (as [`record::find_next`]
/// finds it) at or after `from` whose header lies before `to`, reading
/// windows that grow from 4 KiB to [`WINDOW`] and overlap by the longest
/// header's length.
fn find_next_with(read: ReadAt, window: &mut Vec<u8>, from: u64, to: u64) -> Result<Option<u64>> {
    let overlap = MAX_HEADER_LEN - 1;
    let mut size = 4096;
    let mut pos = from;
    while pos.saturating_add(RECORD_HEADER_LEN as u64) <= to {
        let span = (to - pos).min((size + overlap) as u64) as usize;
        window.resize(span, 0);
        let n = read(&mut window[..span], pos)?;
        let buf = &window[..n];
        for rel in memchr::memmem::find_iter(buf, &record::MAGIC_PREFIX) {
            if rel + RECORD_HEADER_LEN > n {
                break;
            }
            if record::decode_header(&buf[rel..]).is_ok() {
                return Ok(Some(pos + rel as u64));
            }
        }
        if n < span || n <= overlap {
            return Ok(None);
        }
        pos += (n - overlap) as u64;
        size = (size * 2).min(WINDOW);
    }
    Ok(None)
}

/// Copies `len` bytes at `from` of `src` to `dst` at `at`, a window at a
/// time. With `sparse`, windows of zero bytes are left as holes (the caller
/// sets the length). Returns the bytes copied (fewer if `src` ends first).
fn copy_range(
    (src, src_path): (&dyn FileIo, &Path),
    (dst, dst_path): (&dyn FileIo, &Path),
    from: u64,
    len: u64,
    at: u64,
    sparse: bool,
) -> Result<u64> {
    let mut buf = vec![0u8; (len.min(WINDOW as u64)) as usize];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(WINDOW as u64) as usize;
        let n = read_at_most(src, src_path, &mut buf[..want], from + done)?;
        if !(sparse && buf[..n].iter().all(|&b| b == 0)) {
            dst.write_all_at(&buf[..n], at + done)
                .ctx("write", dst_path)?;
        }
        done += n as u64;
        if n < want {
            break;
        }
    }
    Ok(done)
}

/// The offset of the first record in a segment.
pub const FIRST_RECORD: u64 = SEGMENT_HEADER_LEN;

/// Rewrites segment `path` keeping only its good records (and a fresh file
/// header): write `<name>.tmp`, fsync, rename over, fsync the directory.
/// The damaged byte ranges are first copied to `quarantine/<name>-<offset>.bad`
/// (runs of zero bytes as holes; bytes past [`MAX_SEGMENT_LEN`] are not
/// copied: nothing of a message can lie there). Everything is copied from
/// `file` (the segment, open) a window at a time. Returns the good records
/// with their new offsets.
pub fn rewrite_good(
    fs: &dyn Fs,
    salt: u64,
    dir: &Path,
    path: &Path,
    file: &Arc<dyn FileIo>,
    found: &[Found],
) -> Result<Vec<(u64, RecordHeader)>> {
    let file = &**file;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let qdir = dir.join("quarantine");
    let mut quarantined = false;
    let file_len = file.len().ctx("stat", path)?.min(MAX_SEGMENT_LEN);
    for f in found {
        let (offset, len) = match f {
            Found::BadBody { offset, header } => (*offset, header.record_len()),
            Found::Garbage {
                damage: Damage::PastLimit,
                ..
            } => continue,
            Found::Garbage { offset, len, .. } => (*offset, *len),
            Found::Good { .. } => continue,
        };
        if !quarantined {
            fs.mkdir(&qdir).ctx("create directory", &qdir)?;
            sync_dir(fs, dir)?;
            quarantined = true;
        }
        let to = offset.saturating_add(len).min(file_len);
        let len = to.saturating_sub(offset);
        let qpath = qdir.join(format!("{name}-{offset}.bad"));
        let _ = fs.remove_file(&qpath);
        let q = open_file(fs, &qpath, Open::New)?;
        let copied = copy_range((file, path), (&*q, &qpath), offset, len, 0, true)?;
        q.set_len(copied).ctx("write", &qpath)?;
        q.sync_data().ctx("sync", &qpath)?;
    }
    if quarantined {
        sync_dir(fs, &qdir)?;
    }
    let tmp = dir.join(format!("{name}.tmp"));
    let _ = fs.remove_file(&tmp);
    let t = open_file(fs, &tmp, Open::New)?;
    t.write_all_at(&record::segment_header(salt), 0)
        .ctx("write", &tmp)?;
    let mut at = SEGMENT_HEADER_LEN;
    let mut good = Vec::new();
    for f in found {
        if let Found::Good { offset, header } = f {
            let len = header.record_len();
            if copy_range((file, path), (&*t, &tmp), *offset, len, at, false)? < len {
                return Err(Error::corrupt(
                    path,
                    format!("offset {offset}: the file changed during the repair"),
                ));
            }
            good.push((at, *header));
            at += len;
        }
    }
    t.sync_data().ctx("sync", &tmp)?;
    fs.rename(&tmp, path).ctx("rename", &tmp)?;
    sync_dir(fs, dir)?;
    Ok(good)
}

/// The salt recorded in the first segment of `dir` whose header checks out.
pub fn find_salt(fs: &dyn Fs, dir: &Path) -> Result<Option<u64>> {
    for base in list(fs, dir)? {
        let p = path(dir, base);
        if let Ok(f) = open_rw(fs, &p) {
            let mut head = [0u8; SEGMENT_HEADER_LEN as usize];
            let n = read_at_most(&*f, &p, &mut head, 0)?;
            if let Ok(salt) = record::check_segment_header(&head[..n]) {
                return Ok(Some(salt));
            }
        }
    }
    Ok(None)
}

/// The segment files in `dir`, sorted by base.
pub fn list(fs: &dyn Fs, dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    for name in fs.list(dir).ctx("list", dir)? {
        if let Some(base) = parse_name(&name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// A whole segment scanned: the open file, the records found after the file
/// header, and the file header's salt (or what is wrong with it).
pub type Checked = (
    Arc<dyn FileIo>,
    Vec<Found>,
    std::result::Result<u64, String>,
);

/// Scans a whole segment, a window at a time ([`scan_file`]).
pub fn check(fs: &dyn Fs, path: &Path) -> Result<Checked> {
    let f = open_rw(fs, path)?;
    let len = f.len().ctx("stat", path)?;
    let mut head = [0u8; SEGMENT_HEADER_LEN as usize];
    let n = read_at_most(&*f, path, &mut head, 0)?;
    let head_problem = record::check_segment_header(&head[..n]);
    let (found, _) = scan_file(&*f, path, FIRST_RECORD, len.max(FIRST_RECORD))?;
    Ok((f, found, head_problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_segment_holds_one_long_record_of_the_largest_body() {
        assert_eq!(
            MAX_SEGMENT_LEN,
            FIRST_RECORD + record::MAX_HEADER_LEN as u64 + record::MAX_BODY
        );
    }

    #[test]
    fn a_record_is_in_sequence_at_or_past_its_base_and_past_the_last_kept() {
        let mut last = None;
        assert!(!in_sequence(4, 5, &mut last), "below its segment's base");
        assert!(in_sequence(5, 5, &mut last) && last == Some(5));
        assert!(!in_sequence(5, 5, &mut last), "a second copy");
        assert!(!in_sequence(3, 1, &mut last), "older than one kept");
        assert!(in_sequence(9, 8, &mut last) && last == Some(9));
    }

    #[test]
    fn names_sort_and_parse_back() {
        assert_eq!(file_name(1), "00000000000000000001.seg");
        assert_eq!(parse_name(&file_name(123_456)), Some(123_456));
        assert_eq!(parse_name("1.seg"), None);
        assert_eq!(parse_name("0000000000000000000x.seg"), None);
        assert!(file_name(9) < file_name(10));
    }

    fn rec(seq: u64, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        record::encode(seq, 5, 0, body, &mut v);
        v
    }

    #[test]
    fn a_scan_skips_a_damaged_record_and_finds_its_neighbours() {
        let mut buf = rec(1, b"one");
        let second = buf.len();
        buf.extend(rec(2, b"two"));
        let third = buf.len();
        buf.extend(rec(3, b"three"));
        buf[second + RECORD_HEADER_LEN] ^= 0xff; // body of 2
        let (found, end) = scan(&buf, 16);
        assert_eq!(found.len(), 3);
        assert!(matches!(found[0], Found::Good { offset: 16, .. }));
        assert!(matches!(found[1], Found::BadBody { offset, .. } if offset == 16 + second as u64));
        assert!(matches!(found[2], Found::Good { offset, .. } if offset == 16 + third as u64));
        assert_eq!(end, 16 + buf.len() as u64);
    }

    #[test]
    fn a_torn_tail_is_reported_as_garbage_past_the_end() {
        let mut buf = rec(1, b"one");
        let good_end = buf.len();
        let second = rec(2, b"two two two");
        buf.extend_from_slice(&second[..second.len() - 3]);
        let (found, end) = scan(&buf, 0);
        assert_eq!(end, good_end as u64);
        assert!(matches!(
            found.last(),
            Some(Found::Garbage {
                damage: Damage::Short,
                ..
            })
        ));
    }

    /// The scan as it was before it streamed: the whole range in memory.
    fn scan_reference(buf: &[u8], base_offset: u64) -> (Vec<Found>, u64) {
        let mut found = Vec::new();
        let mut at = 0usize;
        let mut end = base_offset;
        while at < buf.len() {
            match record::decode_header(&buf[at..]) {
                Ok(h) if (buf.len() - at) as u64 >= h.record_len() => {
                    let offset = base_offset + at as u64;
                    let body = &buf[at + h.head_len()..at + h.record_len() as usize];
                    if record::check_body(&h, body).is_ok() {
                        found.push(Found::Good { offset, header: h });
                    } else {
                        found.push(Found::BadBody { offset, header: h });
                    }
                    at += h.record_len() as usize;
                    end = base_offset + at as u64;
                }
                first => {
                    let damage = match first {
                        Ok(_) => Damage::Short,
                        Err(d) => d,
                    };
                    let next = record::find_next(buf, at + 1).unwrap_or(buf.len());
                    found.push(Found::Garbage {
                        offset: base_offset + at as u64,
                        len: (next - at) as u64,
                        damage,
                    });
                    at = next;
                }
            }
        }
        (found, end)
    }

    #[test]
    fn a_scan_a_window_at_a_time_finds_what_a_scan_of_the_whole_file_finds() {
        let mut rng = crate::base::simfs::XorShift(5);
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::base::io::real(dir.path()).unwrap();
        for round in 0..12 {
            // Records small and past a window, garbage short and past the
            // first windows of a resync, flipped headers and bodies, a torn end.
            let mut buf = record::segment_header(9).to_vec();
            let mut seq = 1;
            while buf.len() < 3 * WINDOW {
                let len = match rng.below(6) {
                    0 => WINDOW + rng.below(WINDOW as u64) as usize,
                    1 => rng.below(9000) as usize,
                    _ => rng.below(100) as usize,
                };
                let at = buf.len();
                buf.extend(rec(seq, &vec![b'a' + (seq % 26) as u8; len]));
                seq += 1;
                match rng.below(8) {
                    0 => buf[at + rng.below(RECORD_HEADER_LEN as u64) as usize] ^= 0x10,
                    1 if len > 0 => buf[at + RECORD_HEADER_LEN] ^= 1,
                    2 => {
                        let junk = [0, 7, 4095, 4096, 5000, WINDOW + 3][rng.below(6) as usize];
                        buf.extend(std::iter::repeat_n(b'S', junk));
                    }
                    _ => {}
                }
            }
            if round % 2 == 1 {
                buf.truncate(buf.len() - 7);
            }
            let p = dir.path().join(format!("{round}.seg"));
            std::fs::write(&p, &buf).unwrap();
            let f = open_rw(&*fs, &p).unwrap();
            let want = scan_reference(&buf[16..], 16);
            let got = scan_file(&*f, &p, 16, buf.len() as u64).unwrap();
            assert_eq!(got, want, "round {round}");
            assert_eq!(scan(&buf[16..], 16), want, "round {round}, in memory");
            let (_, found, head) = check(&*fs, &p).unwrap();
            assert_eq!((found, head), (want.0, Ok(9)));
        }
    }

    #[test]
    fn a_broken_header_resyncs_on_the_next_record() {
        let mut buf = rec(1, b"one");
        let second = buf.len();
        buf.extend(rec(2, b"two"));
        buf[5] ^= 1; // header of 1
        let (found, _) = scan(&buf, 0);
        assert!(matches!(found[0], Found::Garbage { offset: 0, len, .. } if len == second as u64));
        assert!(matches!(found[1], Found::Good { header, .. } if header.seq == 2));
    }
}
