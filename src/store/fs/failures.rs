//! The failures file `QUEUE/failures`: the last failure of each message
//! ([`Failure`]), appended by `nack` (through `exec` or `nack --reason`)
//! before the commit that settles the message. Made by the first failure a
//! queue records: a queue without one (all queues made before it existed)
//! has no failures and opens as it always did.
//!
//! ```text
//! header (16 bytes, at 0):
//! +0        +8              +12                        +16
//! | SPMQFAIL| version u32 LE| crc32 of bytes 0..12 (LE) |
//!
//! then frames, back to back (all integers little-endian):
//! +0          +4                  +8          +8+len
//! | len u32   | crc32 of bytes 0..4| payload  | crc32 of the payload u32 |
//!
//! payload (len = 40 + text_len + stderr_len bytes, at most MAX_PAYLOAD):
//! +0 seq u64 | +8 at_ms u64 | +16 attempt u32 | +20 kind u8 | +21 zero 3 B
//! +24 code i64 | +32 text_len u32 | +36 stderr_len u32 | +40 text | stderr
//! ```
//!
//! `kind`, `code` and `text` are [`How::parts`]: 1 exit status (`code`),
//! 2 signal (`code`), 3 timed out (`code` = ms), 4 could not start (`text`),
//! 5 a nack's reason (`text`).
//!
//! Write order: the file is created as `failures.tmp` holding the header,
//! fsynced, renamed into place and the directory fsynced; each
//! [`crate::store::Store::record_failures`] appends its frames after the
//! last whole frame (cutting a torn tail first) and `fdatasync`s before
//! it returns. Each time the count of frames passes a power of two above
//! [`COMPACT_MIN`] (128, 256, ...: so the look, a slot read per message in
//! the file, costs O(1) per frame appended), a record checks how many are
//! dead (superseded, or of a message acked or purged since); when more
//! than half are, the file is rewritten with the live ones the same way
//! the first header was written (temporary file, fsync, rename, directory fsync).
//!
//! Reading: the latest whole frame for a seq wins. A frame whose payload
//! fails its CRC is skipped with a notice naming the file and offset; one
//! whose length fails its CRC (or is over [`MAX_PAYLOAD`]) ends the file
//! there, with a notice (what follows cannot be framed), unless all that
//! follows is zeros. A torn last frame or a tail of zeros (a crash during
//! an append that never returned) is cut silently. A damaged
//! header makes every failure unknown (reported) and the next record
//! rewrites the file. None of it is ever a reason to refuse the queue.

use crate::base::error::{Error, IoContext, Result};
use crate::base::failpoint;
use crate::base::io::{FileIo, Fs, Open};
use crate::model::failure::{Failure, How};
use crate::store::fs::record::{u32_at, u64_at};
use crate::store::fs::segment::{self, sync_dir};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(super) const FILE: &str = "failures";
const MAGIC: &[u8; 8] = b"SPMQFAIL";
/// The format version in the header.
pub(super) const VERSION: u32 = 1;
pub(super) const HEADER_LEN: u64 = 16;
/// Bytes of a frame around its payload.
const FRAME_OVERHEAD: usize = 12;
/// The fixed part of a payload.
const PAYLOAD_FIXED: usize = 40;
/// No payload is longer (the texts are cut far below this when kept).
pub(super) const MAX_PAYLOAD: usize = 64 * 1024;
/// Below this many frames the file is never rewritten.
pub(crate) const COMPACT_MIN: u64 = 64;

#[cfg(test)]
thread_local! {
    /// The model test lowers [`COMPACT_MIN`] so that compaction happens often.
    pub(crate) static TEST_COMPACT_MIN: std::cell::Cell<u64> = const { std::cell::Cell::new(COMPACT_MIN) };
}

fn compact_min() -> u64 {
    #[cfg(test)]
    {
        TEST_COMPACT_MIN.with(|l| l.get())
    }
    #[cfg(not(test))]
    {
        COMPACT_MIN
    }
}

fn header() -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    let crc = crc32fast::hash(&b[..12]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

/// One frame holding `f` for message `seq`.
pub(super) fn encode(seq: u64, f: &Failure) -> Vec<u8> {
    let (kind, code, text) = f.how.parts();
    let mut p = Vec::with_capacity(PAYLOAD_FIXED + text.len() + f.stderr.len());
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&f.at_ms.to_le_bytes());
    p.extend_from_slice(&f.attempt.to_le_bytes());
    p.extend_from_slice(&[kind, 0, 0, 0]);
    p.extend_from_slice(&code.to_le_bytes());
    p.extend_from_slice(&(text.len() as u32).to_le_bytes());
    p.extend_from_slice(&(f.stderr.len() as u32).to_le_bytes());
    p.extend_from_slice(text.as_bytes());
    p.extend_from_slice(&f.stderr);
    let len = (p.len() as u32).to_le_bytes();
    let mut out = Vec::with_capacity(p.len() + FRAME_OVERHEAD);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc32fast::hash(&len).to_le_bytes());
    out.extend_from_slice(&p);
    out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    out
}

/// `items` as frames appended to `bytes`, which will be written at file
/// offset `at`; returns where each seq's frame starts in the file.
fn frames_into(bytes: &mut Vec<u8>, at: u64, items: &[(u64, Failure)]) -> Vec<(u64, u64)> {
    let start = at - bytes.len() as u64;
    items
        .iter()
        .map(|(seq, f)| {
            let off = start + bytes.len() as u64;
            bytes.extend_from_slice(&encode(*seq, f));
            (*seq, off)
        })
        .collect()
}

/// The (seq, failure) a payload that passed its CRC holds; `None` if its
/// fields do not add up (a kind this build does not know, lengths past it).
pub(super) fn decode(p: &[u8]) -> Option<(u64, Failure)> {
    if p.len() < PAYLOAD_FIXED {
        return None;
    }
    let text_len = u32_at(p, 32) as usize;
    let stderr_len = u32_at(p, 36) as usize;
    if PAYLOAD_FIXED + text_len + stderr_len != p.len() {
        return None;
    }
    let text = std::str::from_utf8(&p[PAYLOAD_FIXED..PAYLOAD_FIXED + text_len]).ok()?;
    let code = u64_at(p, 24) as i64;
    let how = How::from_parts(p[20], code, text.to_string())?;
    Some((
        u64_at(p, 0),
        Failure {
            at_ms: u64_at(p, 8),
            attempt: u32_at(p, 16),
            how,
            stderr: p[PAYLOAD_FIXED + text_len..].to_vec(),
        },
    ))
}

/// Whether every byte of `file` from `off` to `len` is zero (read in
/// bounded chunks): a file extended by an append the crash cut short.
fn zeros_from(file: &dyn FileIo, path: &Path, mut off: u64, len: u64) -> Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    while off < len {
        let n = segment::read_at_most(file, path, &mut buf, off)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        off += n as u64;
    }
    Ok(true)
}

/// The failures file of one queue, as read.
pub(super) struct FailLog {
    path: PathBuf,
    /// `None`: there is no file (or its header is damaged): the next record
    /// writes a new one.
    file: Option<Arc<dyn FileIo>>,
    /// Where the next frame goes: the end of the last frame that could be framed.
    end: u64,
    /// The offset of the latest whole frame of each seq.
    latest: HashMap<u64, u64>,
    /// Whole frames in the file (superseded ones included).
    frames: u64,
    /// Damage found when it was read: (offset, what), for notices and `fsck`.
    pub(super) damage: Vec<(u64, String)>,
}

impl FailLog {
    /// Reads `dir/failures`; what it found damaged is in [`FailLog::damage`].
    pub(super) fn load(fs: &dyn Fs, dir: &Path) -> Result<FailLog> {
        let path = dir.join(FILE);
        let mut log = FailLog {
            path: path.clone(),
            file: None,
            end: HEADER_LEN,
            latest: HashMap::new(),
            frames: 0,
            damage: Vec::new(),
        };
        let file = match fs.open(&path, Open::Existing) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(log),
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let mut h = [0u8; 16];
        let n = segment::read_at_most(&*file, &path, &mut h, 0)?;
        if n != 16 || h != header() {
            log.damage.push((
                0,
                "damaged header; the messages' last failures are not known (the next failure recorded rewrites the file)".into(),
            ));
            return Ok(log);
        }
        let len = file.len().ctx("stat", &path)?;
        let mut off = HEADER_LEN;
        let mut buf = Vec::new();
        while off < len {
            let mut fh = [0u8; 8];
            if segment::read_at_most(&*file, &path, &mut fh, off)? < 8 {
                break; // a torn last frame
            }
            let plen = u32_at(&fh, 0) as usize;
            if crc32fast::hash(&fh[..4]) != u32_at(&fh, 4) || plen > MAX_PAYLOAD {
                if zeros_from(&*file, &path, off, len)? {
                    break; // the zeros of an append that never reached the disk
                }
                log.damage.push((
                    off,
                    format!(
                        "damaged failure record length; the {} bytes from here are skipped",
                        len - off
                    ),
                ));
                break;
            }
            buf.resize(plen + 4, 0);
            if segment::read_at_most(&*file, &path, &mut buf, off + 8)? < plen + 4 {
                break; // a torn last frame
            }
            let next = off + (plen + FRAME_OVERHEAD) as u64;
            let good = crc32fast::hash(&buf[..plen]) == u32_at(&buf, plen);
            match decode(&buf[..plen]).filter(|_| good) {
                Some((seq, _)) => {
                    log.latest.insert(seq, off);
                    log.frames += 1;
                }
                None => log
                    .damage
                    .push((off, "damaged failure record skipped".into())),
            }
            off = next;
        }
        log.end = off;
        log.file = Some(file);
        Ok(log)
    }

    /// The latest failure of `seq`, if the file holds one.
    pub(super) fn get(&self, seq: u64) -> Result<Option<Failure>> {
        let (Some(&off), Some(file)) = (self.latest.get(&seq), &self.file) else {
            return Ok(None);
        };
        let mut fh = [0u8; 8];
        segment::read_at_most(&**file, &self.path, &mut fh, off)?;
        let plen = u32_at(&fh, 0) as usize;
        let mut buf = vec![0u8; plen + 4];
        let n = segment::read_at_most(&**file, &self.path, &mut buf, off + 8)?;
        if n < plen + 4 || crc32fast::hash(&buf[..plen]) != u32_at(&buf, plen) {
            return Err(Error::corrupt(
                &self.path,
                format!("offset {off}: failure record changed since it was read"),
            ));
        }
        Ok(decode(&buf[..plen]).map(|(_, f)| f))
    }

    /// The file's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The damage found, one notice per place ("FILE: offset N: what").
    pub(super) fn notices(&self) -> impl Iterator<Item = String> + '_ {
        self.damage
            .iter()
            .map(|(off, what)| format!("{}: offset {off}: {what}", self.path.display()))
    }

    /// Every failure that could be read (the latest of each seq), by seq.
    pub(super) fn readable(&self) -> Result<Vec<(u64, Failure)>> {
        let mut seqs: Vec<u64> = self.seqs().collect();
        seqs.sort_unstable();
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(f) = self.get(seq)? {
                out.push((seq, f));
            }
        }
        Ok(out)
    }

    /// The seqs the file holds a failure for.
    pub(super) fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.latest.keys().copied()
    }

    /// Whether appending `adding` frames is the moment to look at how many
    /// are dead: when the count of frames passes a power of two above
    /// [`COMPACT_MIN`]. Looking reads a slot per message in the file, so
    /// doing it at 128, 256, 512, ... frames costs O(1) per frame appended
    /// (amortised), where doing it at every record would cost O(frames).
    pub(super) fn due_for_a_look(&self, adding: u64) -> bool {
        let bits = |n: u64| u64::BITS - n.leading_zeros();
        let after = self.frames + adding;
        after > compact_min() && bits(after) > bits(self.frames)
    }

    /// Whether rewriting would pay: fewer than half of the frames `live`.
    pub(super) fn worth_compacting(&self, live: u64) -> bool {
        live * 2 < self.frames
    }

    /// Appends `items` and syncs (durable on return).
    pub(super) fn append(
        &mut self,
        fs: &dyn Fs,
        dir: &Path,
        items: &[(u64, Failure)],
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                self.rewrite(fs, dir, &[])?;
                self.file.clone().ok_or_else(|| {
                    Error::Runtime(format!(
                        "{}: not open after it was made",
                        self.path.display()
                    ))
                })?
            }
        };
        if file.len().ctx("stat", &self.path)? > self.end {
            file.set_len(self.end).ctx("truncate", &self.path)?;
        }
        let mut bytes = Vec::new();
        let at = frames_into(&mut bytes, self.end, items);
        failpoint::write_at("failures.torn", &*file, &bytes, self.end).ctx("write", &self.path)?;
        file.sync_data().ctx("sync", &self.path)?;
        failpoint::hit("failures.after-sync");
        self.end += bytes.len() as u64;
        self.frames += items.len() as u64;
        self.latest.extend(at);
        Ok(())
    }

    /// Writes a new file holding only `items` (temporary file, fsync,
    /// rename, directory fsync) and reads it as this log.
    pub(super) fn rewrite(
        &mut self,
        fs: &dyn Fs,
        dir: &Path,
        items: &[(u64, Failure)],
    ) -> Result<()> {
        let tmp = dir.join("failures.tmp");
        let _ = fs.remove_file(&tmp);
        let mut bytes = header().to_vec();
        let latest = frames_into(&mut bytes, HEADER_LEN, items)
            .into_iter()
            .collect();
        let f = segment::open_file(fs, &tmp, Open::New)?;
        f.write_all_at(&bytes, 0).ctx("write", &tmp)?;
        f.sync_data().ctx("sync", &tmp)?;
        failpoint::hit("failures.before-rename");
        fs.rename(&tmp, &self.path).ctx("rename", &self.path)?;
        failpoint::hit("failures.after-rename");
        sync_dir(fs, dir)?;
        self.file = Some(f);
        self.end = bytes.len() as u64;
        self.frames = items.len() as u64;
        self.latest = latest;
        self.damage.clear();
        Ok(())
    }
}

/// `fsck`: a problem (offset, what) for each damaged place of `dir/failures`.
pub(super) fn check(fs: &dyn Fs, dir: &Path) -> Result<Vec<(u64, String)>> {
    Ok(FailLog::load(fs, dir)?.damage)
}

/// `fsck --repair`: a damaged failures file is rewritten with every failure
/// that can still be read (the messages themselves are never touched: a
/// lost record only makes a last failure unknown). Returns what was done.
pub(super) fn repair(fs: &dyn Fs, dir: &Path) -> Result<Option<String>> {
    let mut log = FailLog::load(fs, dir)?;
    if log.damage.is_empty() {
        return Ok(None);
    }
    let kept = log.readable()?;
    let places = log.damage.len();
    log.rewrite(fs, dir, &kept)?;
    Ok(Some(format!(
        "{}: rewritten with the {} failure records that could be read ({places} damaged places dropped)",
        log.path().display(),
        kept.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Failure {
        Failure {
            at_ms: 0x1122_3344_5566_7788,
            attempt: 3,
            how: How::Reason("ab".into()),
            stderr: b"xyz".to_vec(),
        }
    }

    #[test]
    fn the_header_is_as_documented() {
        let h = header();
        assert_eq!(&h[0..8], b"SPMQFAIL");
        assert_eq!(u32_at(&h, 8), VERSION);
        assert_eq!(u32_at(&h, 12), crc32fast::hash(&h[..12]));
        assert_eq!(h.len() as u64, HEADER_LEN);
    }

    #[test]
    fn a_frame_has_the_documented_offsets() {
        let b = encode(7, &failure());
        let plen = PAYLOAD_FIXED + 2 + 3;
        assert_eq!(b.len(), plen + FRAME_OVERHEAD);
        assert_eq!(u32_at(&b, 0) as usize, plen);
        assert_eq!(u32_at(&b, 4), crc32fast::hash(&b[0..4]));
        let p = &b[8..8 + plen];
        assert_eq!(u32_at(&b, 8 + plen), crc32fast::hash(p));
        assert_eq!(u64_at(p, 0), 7);
        assert_eq!(u64_at(p, 8), 0x1122_3344_5566_7788);
        assert_eq!(u32_at(p, 16), 3);
        assert_eq!(p[20], 5);
        assert_eq!(&p[21..24], &[0, 0, 0]);
        assert_eq!(u64_at(p, 24), 0);
        assert_eq!(u32_at(p, 32), 2);
        assert_eq!(u32_at(p, 36), 3);
        assert_eq!(&p[40..42], b"ab");
        assert_eq!(&p[42..45], b"xyz");
        assert_eq!(decode(p), Some((7, failure())));
    }

    /// A temporary directory holding an empty queue directory `q`, and the
    /// file system to reach it through.
    fn queue_dir() -> (tempfile::TempDir, PathBuf, Arc<dyn Fs>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("q");
        std::fs::create_dir(&dir).unwrap();
        let fs = crate::base::io::real(tmp.path()).unwrap();
        (tmp, dir, fs)
    }

    #[test]
    fn the_latest_frame_wins_and_a_damaged_one_is_skipped_with_its_offset() {
        let (_tmp, dir, fs) = queue_dir();
        let mut log = FailLog::load(&*fs, &dir).unwrap();
        assert!(log.get(1).unwrap().is_none());
        let second = Failure {
            attempt: 4,
            ..failure()
        };
        log.append(&*fs, &dir, &[(1, failure()), (2, failure())])
            .unwrap();
        log.append(&*fs, &dir, &[(1, second.clone())]).unwrap();
        let log = FailLog::load(&*fs, &dir).unwrap();
        assert!(log.damage.is_empty());
        assert_eq!(log.get(1).unwrap(), Some(second));
        // Damage the payload of seq 2's frame (the second one).
        let path = dir.join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let frame = encode(1, &failure()).len();
        let second_at = HEADER_LEN as usize + frame;
        bytes[second_at + 8 + 41] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let log = FailLog::load(&*fs, &dir).unwrap();
        let notes: Vec<String> = log.notices().collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with(&format!("{}: ", path.display())));
        assert!(
            notes[0].contains(&format!("offset {second_at}")),
            "{notes:?}"
        );
        assert!(log.get(2).unwrap().is_none());
        assert_eq!(log.get(1).unwrap().unwrap().attempt, 4);
    }

    #[test]
    fn a_tail_of_zeros_is_cut_silently_and_written_over() {
        let (_tmp, dir, fs) = queue_dir();
        let mut log = FailLog::load(&*fs, &dir).unwrap();
        log.append(&*fs, &dir, &[(1, failure())]).unwrap();
        let path = dir.join(FILE);
        let whole = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(whole + 300).unwrap();
        let mut log = FailLog::load(&*fs, &dir).unwrap();
        assert!(log.damage.is_empty(), "{:?}", log.damage);
        log.append(&*fs, &dir, &[(2, failure())]).unwrap();
        let log = FailLog::load(&*fs, &dir).unwrap();
        assert!(log.damage.is_empty(), "{:?}", log.damage);
        assert!(log.get(1).unwrap().is_some() && log.get(2).unwrap().is_some());
        // One byte that is not zero in that tail is damage, reported.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 7]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(FailLog::load(&*fs, &dir).unwrap().damage.len(), 1);
    }

    #[test]
    fn the_file_is_looked_at_when_its_frames_pass_a_power_of_two_above_compact_min() {
        let at = |frames: u64, adding: u64| {
            let log = FailLog {
                path: PathBuf::new(),
                file: None,
                end: HEADER_LEN,
                latest: HashMap::new(),
                frames,
                damage: Vec::new(),
            };
            log.due_for_a_look(adding)
        };
        assert_eq!(COMPACT_MIN, 64);
        assert!(!at(0, 1) && !at(63, 1) && !at(64, 1) && !at(100, 27));
        assert!(at(127, 1) && at(100, 28) && at(255, 1) && at(1000, 100));
        assert!(!at(128, 1) && !at(128, 127));
        // A batch that jumps past 64 in one record is looked at too.
        assert!(at(10, 60));
    }
}
