//! Reclaim, the end of a checkpoint (steps 4-5 of "checkpoint" in
//! [`super`]'s write order): segments with nothing live (and strays no
//! header lists) are unlinked and the directory synced, then the slots of
//! reclaimed segments are punched out of `QUEUE/slots`.
//!
//! Invariants: runs only after the checkpoint header that still names the
//! segments is durable; the active segment is kept unless nothing is live
//! and the disk is (or was) full; the first page of `slots` (the stamp in
//! slot 0) is never punched; punching is best effort.
//!
//! ```text
//! slots: | page 0: stamp ... | hole (punched) ................ | slots of live segments |
//!        0                 4096 (or punched * 64)            oldest * 64, rounded down to 4 KiB
//! ```

use super::FsStore;
use crate::base::error::{Error, Result};
use crate::base::failpoint;
use crate::store::fs::index::{slot_at, slot_offset};
use crate::store::fs::segment::{self, sync_dir};

impl FsStore {
    /// Whether nothing is live and the disk is (or was) full: then even the
    /// active segment is given back (a push starts a new one).
    pub(super) fn drained_on_a_full_disk(&self) -> bool {
        self.reserve_short
            && self.h.active_len > segment::FIRST_RECORD
            && self.h.segments.iter().all(|s| s.live == 0)
    }

    /// Unlinks segments with nothing live, and punches their slots out.
    pub(super) fn reclaim(&mut self) -> Result<()> {
        let active = self.h.active;
        let all = self.drained_on_a_full_disk();
        if all {
            self.h.active = self.h.next_seq;
            self.h.active_len = 0;
        }
        let mut removed = false;
        let mut keep = Vec::with_capacity(self.h.segments.len());
        for s in std::mem::take(&mut self.h.segments) {
            if s.live == 0 && (s.base != active || all) {
                removed |= self.remove_segment(s.base)?;
                failpoint::hit("reclaim.after-unlink");
                self.files.remove(&s.base);
            } else {
                keep.push(s);
            }
        }
        self.h.segments = keep;
        // Strays: segments below the active one that no header lists
        // (an unlink lost in a machine crash).
        for base in segment::list(&*self.fs, &self.dir)? {
            if base < active && !self.h.segments.iter().any(|s| s.base == base) {
                removed |= self.remove_segment(base)?;
            }
        }
        if removed {
            sync_dir(&*self.fs, &self.dir)?;
        }
        let oldest = self.h.segments.first().map_or(self.h.next_seq, |s| s.base);
        if self.h.scan_lo < oldest {
            self.h.scan_lo = oldest;
        }
        // The first page, with the stamp in slot 0, is never punched.
        let from = slot_offset(self.h.punched).max(4096);
        let to = slot_offset(oldest) & !4095;
        // Best effort: a file system without hole punching keeps the bytes.
        if to > from && self.slots.punch_hole(from, to - from).unwrap_or(false) {
            self.h.punched = slot_at(to);
            // And the groups cache's entries of those seqs with them.
            self.punch_groups(self.h.punched)?;
        }
        Ok(())
    }

    /// Unlinks segment `base`; `false` if it was already gone.
    fn remove_segment(&self, base: u64) -> Result<bool> {
        let p = segment::path(&self.dir, base);
        match self.fs.remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove segment", &p, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::testing::*;

    #[test]
    fn segments_roll_over_and_are_reclaimed_when_nothing_in_them_is_live() {
        TEST_SEGMENT_LIMIT.with(|l| l.set(200));
        let (_t, dir) = queue_dir();
        let mut s = open(&dir);
        // 100-byte bodies make 140-byte records: one per segment.
        let body = "x".repeat(100);
        let seqs = push(&mut s, &[&body, &body, &body, &body]);
        assert_eq!(s.segments(), 4);
        assert_eq!(
            segment::list(&io::RealFs::beneath(spool_of(&dir)).unwrap(), &dir).unwrap(),
            vec![1, 2, 3, 4]
        );
        for seq in &seqs[..3] {
            lease_and_ack(&mut s, *seq);
        }
        // Nothing is live in 1..=3; 4 is active and holds a message.
        assert_eq!(
            segment::list(&io::RealFs::beneath(spool_of(&dir)).unwrap(), &dir).unwrap(),
            vec![4]
        );
        assert_eq!(s.segments(), 1);
        drop(s);
        simulate_reboot(&dir).unwrap();
        let mut s = open(&dir);
        assert_eq!(s.counters().ready, 1);
        assert_eq!(s.counters().acked, 3);
        let m = s.get(4).unwrap().unwrap();
        assert_eq!(s.body(&m).unwrap(), body.as_bytes());
        TEST_SEGMENT_LIMIT.with(|l| l.set(SEGMENT_LIMIT));
    }
}
