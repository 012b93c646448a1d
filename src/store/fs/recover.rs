//! Recovery, run by every open under the lock (see "Recovery" in
//! [`super`]): which header to start from, whether the slots file can be
//! read with it, adopting the whole records a push left past the committed
//! length, and replaying the WAL records past the header's lsn.
//!
//! Invariants:
//! * The live header is trusted only if it was written in this boot and
//!   after the newest checkpoint; otherwise recovery starts from the
//!   checkpoint and replays the whole WAL.
//! * Nothing half-written is ever served: adoption takes whole records in
//!   sequence and cuts everything after the last one it adopts.
//! * Never append after bytes that may end in half a record: an active
//!   segment found shorter than its committed length is left as it is and
//!   pushes continue in a new segment.
//! * Only a handle that may write cuts a torn WAL tail or rebuilds slots.
//!
//! It writes no format of its own: the slots of adopted records (slot
//! layout in [`super::index`]), a segment file header a crashed roll left
//! short (layout in [`super::record`]), and cuts of torn tails:
//!
//! ```text
//! segment: | header | committed records | adopted records | torn tail (cut) |
//!                                        ^ active_len        ^ new active_len
//! ```

use super::{FsStore, wal::read_wal};
use crate::base::error::{Error, IoContext, Result};
use crate::base::io::FileIo;
use crate::store::fs::index::slot_offset;
use crate::store::fs::index::{self, Header, REGION_LEN, SLOT_LEN, SegmentEntry};
use crate::store::fs::record::{self, RECORD_HEADER_LEN};
use crate::store::fs::segment::{self, Found};
use crate::store::{Loc, Meta, State};
use std::path::Path;
use std::sync::Arc;

/// The header in region `i` of the index file, if it is valid. Reads 4 KiB,
/// and the rest of the region only when the header says it is longer.
pub(super) fn read_header(index: &dyn FileIo, path: &Path, i: usize) -> Result<Option<Header>> {
    let mut buf = vec![0u8; 4096];
    let at = (i * REGION_LEN) as u64;
    let n = segment::read_at_most(index, path, &mut buf, at)?;
    buf.truncate(n);
    if buf.len() >= 16 {
        let len = u32::from_le_bytes([buf[12], buf[13], buf[14], buf[15]]) as usize;
        if len > buf.len() && len <= REGION_LEN {
            buf.resize(len, 0);
            let n = segment::read_at_most(index, path, &mut buf, at)?;
            buf.truncate(n);
        }
    }
    Ok(Header::decode(&buf))
}

impl FsStore {
    fn segment_exists(&self, base: u64) -> Result<bool> {
        let p = segment::path(&self.dir, base);
        self.fs.exists(&p).ctx("open", &p)
    }

    fn read_region(&self, i: usize) -> Result<Option<Header>> {
        read_header(&*self.index, &self.index_path(), i)
    }

    pub(super) fn best(a: Option<Header>, b: Option<Header>) -> Option<Header> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if a.generation >= b.generation { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn recover(&mut self) -> Result<()> {
        let live = FsStore::best(self.read_region(0)?, self.read_region(1)?);
        let c2 = self.read_region(2)?;
        let c3 = self.read_region(3)?;
        let g = |h: &Option<Header>| h.as_ref().map_or(0, |h| h.generation);
        self.next_ckpt_region = if g(&c2) <= g(&c3) { 2 } else { 3 };
        let ckpt = FsStore::best(c2, c3);
        let boot_known = self.boot != [0; 16];
        // The live header is exact if it was written in this boot and after
        // the last checkpoint (a crash between a checkpoint, which empties
        // the WAL, and the next live header write leaves an older one).
        let newest_ckpt = ckpt.as_ref().map_or(0, |c| c.generation);
        self.ckpt_lsn = ckpt.as_ref().map_or(0, |c| c.lsn);
        let (h, fast) = match live {
            Some(h) if boot_known && h.boot_id == self.boot && h.generation > newest_ckpt => {
                (h, true)
            }
            _ => match ckpt {
                Some(h) => (h, false),
                None => {
                    return Err(Error::corrupt(
                        &self.index_path(),
                        "no valid header: run `spoolmq fsck --repair`",
                    ));
                }
            },
        };
        self.h = h;
        // The slots must be at least as new as the header they are read with.
        let slots_doubt = self.check_slots(if fast { self.h.generation } else { newest_ckpt })?;
        let mut changed = self.adopt()?;
        let from = if fast { self.h.wal_len } else { 0 };
        self.wal_committed = from;
        changed |= self.replay_wal(from)?;
        if let Some((why, trust)) = slots_doubt {
            if self.writable {
                return self.reconcile(&why, trust);
            }
            self.notices.push(format!(
                "{}: {why}; messages whose slot is lost are skipped until the next command that writes rebuilds the file from the segments and the WAL",
                self.slots_path().display()
            ));
            self.suspect = Some(why);
            return Ok(());
        }
        if !fast && self.writable {
            self.checkpoint()?;
        } else if changed && self.writable {
            self.write_live()?;
        }
        Ok(())
    }

    /// Whether the slots file can be read as it is, with a header of
    /// generation `min_gen`: `Some((why, trust))` if it must be rebuilt,
    /// where `trust` says its valid slots are current (the file is only
    /// short), not a stale copy.
    fn check_slots(&self, min_gen: u64) -> Result<Option<(String, bool)>> {
        let path = self.slots_path();
        let len = self.slots.len().ctx("stat", &path)?;
        let mut b = [0u8; SLOT_LEN];
        let n = segment::read_at_most(&*self.slots, &path, &mut b, 0)?;
        let stamp = index::decode_stamp(&b[..n]);
        let need = if self.h.next_seq > 1 {
            slot_offset(self.h.next_seq)
        } else {
            0
        };
        Ok(match stamp {
            index::Stamp::Generation(g) if g < min_gen => Some((
                format!(
                    "older than the index (written at generation {g}, the index is at {min_gen}): a stale copy"
                ),
                false,
            )),
            index::Stamp::Damaged => Some(("its stamp (slot 0) is damaged".to_string(), false)),
            _ if len < need => Some((
                format!(
                    "{len} bytes long where {} messages need {need}: slots are missing",
                    self.h.next_seq - 1
                ),
                stamp != index::Stamp::Absent,
            )),
            _ => None,
        })
    }

    /// Adopts whole records past the committed length of the active segment
    /// and in segments created after it (by a roll, or the first push, that
    /// crashed before its header was written); truncates torn tails.
    pub(super) fn adopt(&mut self) -> Result<bool> {
        let mut changed = false;
        if self.h.segments.is_empty() {
            if !self.segment_exists(self.h.next_seq)? {
                return Ok(false);
            }
            self.start_segment(self.h.next_seq);
            changed = true;
        }
        loop {
            let base = self.h.active;
            let path = segment::path(&self.dir, base);
            let file = match segment::open_rw(&*self.fs, &path) {
                Ok(f) => f,
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    if self.h.segments.iter().all(|s| s.live == 0) {
                        // A drained queue gave back its last segment (see
                        // `reclaim`): a push starts the next one.
                        self.h.segments.clear();
                        self.h.active = self.h.next_seq;
                        self.h.active_len = 0;
                        if self.segment_exists(self.h.next_seq)? {
                            self.start_segment(self.h.next_seq);
                            continue;
                        }
                        return Ok(true);
                    }
                    if self.h.active_len > segment::FIRST_RECORD {
                        self.notices.push(format!(
                            "{}: segment missing; its messages are lost",
                            path.display()
                        ));
                    }
                    return Ok(changed);
                }
                Err(e) => return Err(e),
            };
            let len = file.len().ctx("stat", &path)?;
            if self.h.active_len < segment::FIRST_RECORD {
                // A segment no header has named yet: check (or rewrite) its file header.
                let mut head = [0u8; record::SEGMENT_HEADER_LEN as usize];
                let n = segment::read_at_most(&*file, &path, &mut head, 0)?;
                if n < head.len() || record::check_segment_header(&head).is_err() {
                    file.set_len(0).ctx("truncate", &path)?;
                    file.write_all_at(&record::segment_header(self.h.salt), 0)
                        .ctx("write segment header", &path)?;
                    file.sync_data().ctx("sync", &path)?;
                    self.h.active_len = segment::FIRST_RECORD;
                    self.files.insert(base, file);
                    return Ok(true);
                }
                self.h.active_len = segment::FIRST_RECORD;
                changed = true;
            }
            if len < self.h.active_len {
                self.notices.push(format!(
                    "{}: file is {} bytes shorter than recorded; messages past offset {} are lost",
                    path.display(),
                    self.h.active_len - len,
                    len
                ));
                changed = true;
                self.files.insert(base, file);
                if self.h.next_seq == base {
                    // Nothing was committed in it: start it again.
                    self.h.active_len = 0;
                    continue;
                }
                // Never append after bytes that may end in half a record:
                // later pushes go to a new segment.
                self.h.active_len = len;
                if !self.segment_exists(self.h.next_seq)? {
                    segment::create(&*self.fs, &self.dir, self.h.next_seq, self.h.salt)?;
                }
                self.start_segment(self.h.next_seq);
                continue;
            } else if len > self.h.active_len {
                self.adopt_tail(&*file, &path, base, len)?;
                changed = true;
            }
            self.files.insert(base, file);
            if self.h.next_seq != base && self.segment_exists(self.h.next_seq)? {
                self.start_segment(self.h.next_seq);
                changed = true;
                continue;
            }
            return Ok(changed);
        }
    }

    /// Makes segment `base` the active one, with nothing committed yet.
    fn start_segment(&mut self, base: u64) {
        self.h.segments.push(SegmentEntry { base, live: 0 });
        self.h.active = base;
        self.h.active_len = 0;
    }

    fn adopt_tail(&mut self, file: &dyn FileIo, path: &Path, base: u64, len: u64) -> Result<()> {
        let from = self.h.active_len;
        // A window at a time, never past the largest segment (a sparse file).
        let (found, _) = segment::scan_file(file, path, from, len)?;
        let mut adopted = 0u64;
        // The new committed end: just past the last record adopted. Anything
        // after it (a torn record, garbage, a stray copy) is cut off.
        let end = adoption_end(&found, from, self.h.next_seq);
        let mut prev_end = from;
        for f in found {
            match f {
                Found::Good { offset, header } | Found::BadBody { offset, header }
                    if offset < end
                        && in_sequence(header.seq, self.h.next_seq, offset, prev_end) =>
                {
                    prev_end = offset + header.record_len();
                    let good = matches!(f, Found::Good { .. });
                    self.adopt_record(path, base, offset, &header, good)?;
                    adopted += 1;
                }
                Found::Good { offset, .. } | Found::BadBody { offset, .. } if offset < end => {
                    self.notices.push(format!(
                        "{}: offset {offset}: record out of sequence; skipped",
                        path.display()
                    ));
                }
                Found::Garbage {
                    offset,
                    len,
                    damage,
                } if offset < end => {
                    self.notices.push(format!(
                        "{}: offset {offset}: {} ({len} bytes); skipped",
                        path.display(),
                        damage.describe()
                    ));
                }
                Found::Good { .. } | Found::BadBody { .. } | Found::Garbage { .. } => {}
            }
        }
        self.cut_tail(file, path, end, len, adopted)?;
        self.h.active_len = end;
        Ok(())
    }

    /// Adopts the record at `offset` of segment `base` (`good`: its body
    /// checks too): the seqs damage skipped before it are lost messages, it
    /// is ready, delayed, or (a damaged body) corrupt.
    fn adopt_record(
        &mut self,
        path: &Path,
        base: u64,
        offset: u64,
        header: &record::RecordHeader,
        good: bool,
    ) -> Result<()> {
        // Seqs skipped by damage before this record are lost messages.
        while self.h.next_seq < header.seq {
            let lost = self.h.next_seq;
            self.put_new(
                Meta {
                    seq: lost,
                    state: State::Corrupt,
                    attempts: 0,
                    max_attempts: 0,
                    pushed_at_ms: 0,
                    until_ms: 0,
                    receipt: [0; 12],
                    len: 0,
                    loc: Loc::default(),
                    expires_at_ms: 0,
                    keyed: false,
                    priority: 0,
                    group: None,
                },
                base,
            )?;
        }
        let state = if !good {
            self.notices.push(format!(
                "{}: offset {offset}: {}; skipped",
                path.display(),
                record::Damage::BadBodyCrc.describe()
            ));
            State::Corrupt
        } else if header.not_before_ms > 0 {
            State::Delayed
        } else {
            State::Ready
        };
        self.put_new(
            Meta {
                seq: header.seq,
                state,
                attempts: 0,
                max_attempts: 0,
                pushed_at_ms: header.pushed_at_ms,
                until_ms: header.not_before_ms,
                receipt: [0; 12],
                len: header.body_len,
                loc: header.loc(base, offset),
                expires_at_ms: header.expires_at_ms,
                keyed: header.unique.is_some(),
                priority: header.priority,
                group: header.group,
            },
            base,
        )?;
        // A keyed message found here takes its key again (its push may
        // have ended before it wrote the hold): as the push did, in seq order.
        if let (Some((key, window)), true) = (header.unique, state.is_pending()) {
            self.put_hold(&key, header.seq, header.pushed_at_ms, window)?;
        }
        // And one with a priority its place in its lane.
        if header.priority > 0 && state.is_live() {
            self.adopt_lane(header.priority, header.seq)?;
        }
        // And one in a group its entry in the groups cache.
        if let Some(g) = header.group {
            self.put_groups(&[(header.seq, g)])?;
        }
        Ok(())
    }

    /// Cuts what lies past `end`, the last whole record adopted, in a
    /// segment file of `len` bytes, and syncs the file if anything changed.
    fn cut_tail(
        &mut self,
        file: &dyn FileIo,
        path: &Path,
        end: u64,
        len: u64,
        adopted: u64,
    ) -> Result<()> {
        if len > segment::MAX_SEGMENT_LEN {
            self.notices.push(format!(
                "{}: offset {end}: dropped {} bytes after the last whole record: the file is {len} bytes, longer than a segment can be ({})",
                path.display(),
                len - end,
                segment::MAX_SEGMENT_LEN
            ));
            file.set_len(end).ctx("truncate torn tail", path)?;
        } else if end < len {
            self.notices.push(format!(
                "{}: offset {end}: dropped a torn tail of {} bytes after the last whole record (an unfinished push)",
                path.display(),
                len - end
            ));
            file.set_len(end).ctx("truncate torn tail", path)?;
        }
        if adopted > 0 || end < len {
            file.sync_data().ctx("sync", path)?;
        }
        Ok(())
    }

    /// Writes the slot of a message new to the index and counts it.
    fn put_new(&mut self, m: Meta, base: u64) -> Result<()> {
        self.write_slot(&m)?;
        self.h.counters.add(m.state, m.len);
        if m.state.is_live()
            && let Some(s) = self.h.segments.iter_mut().find(|s| s.base == base)
        {
            s.live += 1;
        }
        self.h.next_seq = m.seq + 1;
        Ok(())
    }

    fn replay_wal(&mut self, from: u64) -> Result<bool> {
        let path = self.wal_path();
        let wal = Arc::clone(&self.wal);
        let mut changed = false;
        // The record being applied: a long one comes in several calls.
        let mut current = None;
        let (end, size) = read_wal(&*wal, &path, from, &mut |offset, lsn, entries| {
            changed = true;
            if current == Some(offset) || lsn > self.h.lsn {
                current = Some(offset);
                self.h.lsn = lsn;
                for (old, slot) in entries {
                    if slot.seq == 0 || slot.seq >= self.h.next_seq {
                        self.notices.push(format!(
                            "{}: offset {offset}: change to unknown message {}; skipped",
                            path.display(),
                            slot.seq
                        ));
                        continue;
                    }
                    self.apply(*old, slot, true)?;
                }
            }
            Ok(())
        })?;
        if size < from {
            self.h.wal_len = size;
            return Ok(true);
        }
        if end < size {
            if self.writable {
                self.notices.push(format!(
                    "{}: offset {end}: dropped {} bytes of an unfinished change",
                    path.display(),
                    size - end
                ));
                self.wal.set_len(end).ctx("truncate", &path)?;
                self.wal.sync_data().ctx("sync", &path)?;
            } else {
                // A command that only reads leaves the tail for one that writes.
                self.notices.push(format!(
                    "{}: offset {end}: {} bytes of an unfinished change (not applied; the next command that writes cuts them)",
                    path.display(),
                    size - end
                ));
            }
            changed = true;
        }
        self.h.wal_len = end;
        Ok(changed)
    }
}

/// A record is the next one in sequence if its seq is at least the
/// expected one and no further ahead than the damaged bytes before it
/// could have held records (a foreign or crafted seq is not followed).
fn in_sequence(seq: u64, expect: u64, offset: u64, prev_end: u64) -> bool {
    let room = (offset - prev_end) / RECORD_HEADER_LEN as u64;
    seq >= expect && seq - expect <= room && seq < u64::MAX
}

/// Where adoption of the records `found` past `from` ends: just past the
/// last record in sequence from `next_seq` (see [`in_sequence`]).
fn adoption_end(found: &[Found], from: u64, next_seq: u64) -> u64 {
    let mut end = from;
    let mut expect = next_seq;
    for f in found {
        if let Found::Good { offset, header } | Found::BadBody { offset, header } = f
            && in_sequence(header.seq, expect, *offset, end)
        {
            expect = header.seq + 1;
            end = offset + header.record_len();
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::testing::*;

    #[test]
    fn records_appended_by_a_push_that_died_before_its_header_are_adopted() {
        let (_t, dir) = queue_dir();
        let mut s = open(&dir);
        assert_eq!(push(&mut s, &["a", "b"]), vec![1, 2]);
        drop(s);
        let mut rec = Vec::new();
        record::encode(3, 1000, 0, b"c", &mut rec);
        append(&segment::path(&dir, 1), &rec);
        let mut s = open(&dir);
        assert_eq!(s.counters().pushed, 3);
        assert_eq!(s.counters().ready, 3);
        let m = s.get(3).unwrap().unwrap();
        assert_eq!(s.body(&m).unwrap(), b"c");
        assert!(s.take_notices().is_empty());
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_reported() {
        let (_t, dir) = queue_dir();
        let mut s = open(&dir);
        push(&mut s, &["a", "b"]);
        drop(s);
        let seg = segment::path(&dir, 1);
        let good_len = std::fs::metadata(&seg).unwrap().len();
        let mut rec = Vec::new();
        record::encode(3, 1000, 0, b"never finished", &mut rec);
        append(&seg, &rec[..rec.len() - 4]);
        let mut s = open(&dir);
        assert_eq!(s.counters().pushed, 2);
        let notices = s.take_notices();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].contains(&format!("offset {good_len}")),
            "{notices:?}"
        );
        assert!(notices[0].contains("torn tail"), "{notices:?}");
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len);
        // The next push goes right after the last good record.
        assert_eq!(push(&mut s, &["c"]), vec![3]);
        let m = s.get(3).unwrap().unwrap();
        assert_eq!(s.body(&m).unwrap(), b"c");
    }

    #[test]
    fn a_change_whose_header_write_was_lost_is_replayed_from_the_wal() {
        let (_t, dir) = queue_dir();
        let mut s = open(&dir);
        push(&mut s, &["a", "b", "c"]);
        drop(s);
        let before = std::fs::read(dir.join("index")).unwrap();
        let mut s = open(&dir);
        lease_and_ack(&mut s, 2);
        drop(s);
        // Put back the headers as they were before the ack: as if the process
        // died after the WAL write and before the header write.
        std::fs::write(dir.join("index"), &before).unwrap();
        let mut s = open(&dir);
        let c = s.counters();
        assert_eq!((c.ready, c.leased, c.acked, c.pushed), (2, 0, 1, 3));
        assert_eq!(s.get(2).unwrap().unwrap().state, State::Acked);
        assert!(s.take_notices().is_empty());
    }

    #[test]
    fn a_torn_wal_record_is_dropped_and_reported() {
        let (_t, dir) = queue_dir();
        let mut s = open(&dir);
        push(&mut s, &["a"]);
        lease_and_ack(&mut s, 1);
        drop(s);
        let wal_len = std::fs::metadata(dir.join("wal")).unwrap().len();
        append(&dir.join("wal"), &[0x55; 30]);
        let mut s = open(&dir);
        assert_eq!(s.counters().acked, 1);
        assert_eq!(s.take_notices().len(), 1);
        assert_eq!(std::fs::metadata(dir.join("wal")).unwrap().len(), wal_len);
    }

    #[test]
    fn after_a_machine_crash_the_checkpoint_and_wal_give_the_same_state() {
        let (_t, dir) = queue_dir();
        let mut s = open(&dir);
        push(&mut s, &["a", "b", "c"]);
        lease_and_ack(&mut s, 1);
        let expect = s.counters();
        drop(s);
        simulate_reboot(&dir).unwrap();
        let mut s = open(&dir);
        assert_eq!(s.counters(), expect);
        assert_eq!(s.get(1).unwrap().unwrap().state, State::Acked);
        assert!(s.take_notices().is_empty());
    }

    #[test]
    fn a_slots_file_from_before_stamps_is_trusted_and_stamped_by_the_next_write() {
        let (_t, dir) = queue_dir();
        let mut s = open(&dir);
        push(&mut s, &["a", "b", "c"]);
        lease_and_ack(&mut s, 1);
        drop(s);
        // As an older spoolmq left it: slot 0 never written.
        let slots = dir.join("slots");
        let mut bytes = std::fs::read(&slots).unwrap();
        bytes[..SLOT_LEN].fill(0);
        std::fs::write(&slots, &bytes).unwrap();
        let mut s = open(&dir);
        assert!(s.take_notices().is_empty(), "nothing to rebuild");
        assert_eq!(s.get(1).unwrap().unwrap().state, State::Acked);
        let m = s.get(2).unwrap().unwrap();
        assert_eq!(m.state, State::Ready);
        lease_and_ack(&mut s, 2);
        let g = s.header().generation;
        drop(s);
        let bytes = std::fs::read(&slots).unwrap();
        assert_eq!(
            index::decode_stamp(&bytes[..SLOT_LEN]),
            index::Stamp::Generation(g)
        );
    }
}
