//! A set of state changes (pop, ack, nack, extend, retry, purge): steps 1-4
//! of their write order in [`super`]: one WAL record appended and synced,
//! then the slots written in place, then the live header (or a checkpoint).
//!
//! Invariants: a slot is only overwritten once the WAL record that can redo
//! it is durable; once it is, the change is done whatever fails after (the
//! handle is poisoned and the next command replays the record). On a full
//! disk the WAL append checkpoints first, then frees the reserve, and tries
//! again.
//!
//! What one commit appends to `QUEUE/wal` at the committed length (record
//! layout in [`super::index`]), then the slots it names:
//!
//! ```text
//! wal:   | record lsn k | ... | record lsn k+1: n x (old state, new slot) |
//! slots: slot of each changed message, in place at seq * 64
//! ```

use super::reserve::no_space;
use super::{FsStore, SCAN_CHUNK};
use crate::base::error::{Error, IoContext, Result};
use crate::base::failpoint;
use crate::store::fs::index::slot_offset;
use crate::store::fs::index::{self, encode_slot};
use crate::store::{Change, Meta, State, Step};

/// The most bytes of slots one `pwrite` of a commit carries: 1 MiB is
/// 16,384 slots, so a commit's buffer stays small whatever its size.
const SLOT_RUN: usize = 1 << 20;

impl FsStore {
    /// [`crate::store::Store::commit`].
    pub(super) fn commit_changes(&mut self, changes: &[Change]) -> Result<()> {
        if changes.is_empty() {
            if self.dirty {
                self.write_live()?;
            }
            return Ok(());
        }
        let lsn = self.h.lsn + 1;
        let rec = index::encode_wal(lsn, changes.iter().map(|c| (c.old, &c.new)));
        let path = self.wal_path();
        let mut written = self.append_wal(&rec);
        // A full disk must still drain (docs/DURABILITY.md): give back the
        // WAL's own space with a checkpoint, then the reserve, and try again.
        if written.as_ref().is_err_and(no_space) && self.h.wal_len > 0 {
            if let Err(e) = self.checkpoint() {
                self.poisoned = true;
                return Err(e);
            }
            written = self.append_wal(&rec);
        }
        if written.as_ref().is_err_and(no_space) && self.release_reserve() {
            written = self.append_wal(&rec);
        }
        if let Err(e) = written {
            return Err(Error::io("append", &path, e));
        }
        failpoint::hit("commit.after-wal");
        // The change is durable: it is done, whatever happens below.
        let applied = (|| {
            let slot = |(i, c): (usize, &Change)| (c.new.seq, index::wal_slot(&rec, i));
            let half = changes.len() / 2;
            self.write_slots(changes[..half].iter().enumerate().map(slot))?;
            failpoint::hit("commit.mid-slots");
            let second = changes[half..].iter().enumerate();
            self.write_slots(second.map(|(i, c)| slot((half + i, c))))?;
            for c in changes {
                self.account(c.old, &c.new, false)?;
            }
            self.h.lsn = lsn;
            self.h.wal_len += rec.len() as u64;
            if changes
                .iter()
                .any(|Change { new: m, .. }| m.seq == self.h.scan_lo && !m.state.is_pending())
            {
                self.advance_scan_lo()?;
            }
            self.checkpoint_or_write_live(false)
        })();
        if let Err(e) = applied {
            // Leave the index as it was on disk: the next command replays
            // the WAL record and finishes the job.
            self.poisoned = true;
            self.notices.push(format!(
                "the change is recorded; updating the index failed and the next command will finish it: {e}"
            ));
        }
        Ok(())
    }

    /// Appends one WAL record at the committed end and syncs it; on failure
    /// nothing of it is left.
    fn append_wal(&self, rec: &[u8]) -> std::io::Result<()> {
        let written = failpoint::write_at("wal.torn", &*self.wal, rec, self.h.wal_len)
            .and_then(|_| self.wal.sync_data());
        if written.is_err() {
            let _ = self.wal.set_len(self.h.wal_len);
        }
        written
    }

    /// Applies one committed change to the slots and the header
    /// (`replaying`: a WAL record, by recovery).
    pub(super) fn apply(&mut self, old: State, new: &Meta, replaying: bool) -> Result<()> {
        self.write_slot(new)?;
        self.account(old, new, replaying)
    }

    /// What a committed change does beyond its slot: the key it releases,
    /// the counters, its segment's live count, the pending cursor, its lane.
    fn account(&mut self, old: State, new: &Meta, replaying: bool) -> Result<()> {
        let change = crate::store::Change { old, new: *new };
        if crate::store::releases(&change) {
            self.release_hold(&change, replaying)?;
        }
        self.h.counters.apply(old, new.state, new.len);
        if old.is_live() != new.state.is_live()
            && let Some(s) = self
                .h
                .segments
                .iter_mut()
                .find(|s| s.base == new.loc.segment)
        {
            if new.state.is_live() {
                s.live += 1;
            } else {
                s.live = s.live.saturating_sub(1);
            }
        }
        if new.state.is_pending() && new.seq < self.h.scan_lo {
            self.h.scan_lo = new.seq;
        }
        if new.priority > 0 && new.state.is_pending() && !old.is_pending() {
            self.reopen_lane(new.priority, new.seq)?;
        }
        Ok(())
    }

    /// Writes the encoded slots of `slots` (seq, its 64 bytes) in place,
    /// in their order, one `pwrite` per run of consecutive seqs (up to
    /// [`SLOT_RUN`] bytes): a pop or ack of 100,000 messages was 100,000
    /// `pwrite`s of 64 bytes.
    fn write_slots<'b>(&self, slots: impl Iterator<Item = (u64, &'b [u8])>) -> Result<()> {
        let mut run: Vec<u8> = Vec::new();
        let mut first = 0;
        let flush = |run: &mut Vec<u8>, first: u64| {
            let done = self.slots.write_all_at(run, slot_offset(first));
            run.clear();
            done.ctx("write", &self.slots_path())
        };
        for (seq, bytes) in slots {
            let next = first + (run.len() / index::SLOT_LEN) as u64;
            if !run.is_empty() && (seq != next || run.len() >= SLOT_RUN) {
                flush(&mut run, first)?;
            }
            if run.is_empty() {
                first = seq;
            }
            run.extend_from_slice(bytes);
        }
        if !run.is_empty() {
            flush(&mut run, first)?;
        }
        Ok(())
    }

    pub(super) fn write_slot(&self, m: &Meta) -> Result<()> {
        self.slots
            .write_all_at(&encode_slot(m), slot_offset(m.seq))
            .ctx("write", &self.slots_path())
    }

    /// Moves the pending cursor past finished messages at its front (at
    /// most one chunk of slots): besides sparing the next scan, a tight
    /// cursor is what tells, should the slots be lost, that the messages
    /// below it are not pending (see [`super::resolve`]).
    fn advance_scan_lo(&mut self) -> Result<()> {
        let mut cursor = self.h.scan_lo;
        let mut steps = 0;
        self.all_slots(cursor, &mut |s, slot| match slot {
            Ok(m) if s == cursor && !m.state.is_pending() && steps < SCAN_CHUNK => {
                cursor += 1;
                steps += 1;
                Step::Continue
            }
            _ => Step::Stop,
        })?;
        self.h.scan_lo = cursor;
        Ok(())
    }
}
