//! Rebuilding every slot when the slots file is lost, short, a stale copy
//! or damaged (see "Source of truth" in [`super`]): from the WAL, the slots
//! that can be trusted, the records in the segments and the header's
//! counters ([`super::resolve`]), on a handle that may write, at most once
//! per command.
//!
//! Invariants: the new slots are written and synced before the checkpoint
//! that makes them the truth; records are read a window at a time, bodies
//! skipped.
//!
//! ```text
//! slots: | stamp | ... | slot lo at lo * 64 | ... | slot end-1 |   (written in chunks of SCAN_CHUNK slots)
//! ```

use super::resolve::{is_final, merge_wal, resolve};
use super::wal::WAL_CHUNK;
use super::{FsStore, SCAN_CHUNK};
use crate::base::error::{Error, IoContext, Result};
use crate::base::failpoint;
use crate::store::fs::index::slot_offset;
use crate::store::fs::index::{SLOT_LEN, encode_slot};
use crate::store::fs::record::{self, MAX_HEADER_LEN, RECORD_HEADER_LEN};
use crate::store::fs::segment::{self};
use crate::store::{Loc, Meta, Step};
use std::collections::HashMap;
use std::sync::Arc;

impl FsStore {
    /// Rebuilds the slot of every message from the oldest segment to the end
    /// when the slots file is lost, short, a stale copy or damaged (`why`),
    /// from what is durable: the WAL (every change since the checkpoint,
    /// exact), the slots that can be trusted (all valid ones if `trust`,
    /// else only those of finished messages: a stale copy is right about
    /// those), the records in the segments and the header's counters (see
    /// [`resolve`]). Writes the slots, syncs them and checkpoints; reported
    /// in one notice. Only on a handle that may write.
    pub(super) fn reconcile(&mut self, why: &str, trust: bool) -> Result<()> {
        debug_assert!(self.writable);
        self.reconciled = true;
        let lo = self
            .h
            .segments
            .first()
            .map_or(self.h.next_seq, |s| s.base)
            .max(1);
        let end = self.h.next_seq.max(lo);
        let n = (end - lo) as usize;
        let mut exact: Vec<Option<Meta>> = vec![None; n];
        let mut hint: Vec<Option<Meta>> = vec![None; n];
        self.all_slots(lo, &mut |seq, slot| {
            if let Ok(m) = slot {
                let i = (seq - lo) as usize;
                if trust || is_final(m.state) {
                    exact[i] = Some(m);
                } else {
                    hint[i] = Some(m);
                }
            }
            Step::Continue
        })?;
        // Every WAL record was applied to the slots by recovery: its images
        // only matter where a slot is lost or stale.
        let wal_path = self.wal_path();
        merge_wal(
            &*self.wal,
            &wal_path,
            lo,
            &mut exact,
            &mut hint,
            self.ckpt_lsn,
            self.h.lsn,
        )?;
        let mut records = HashMap::new();
        let unknown = |seq: u64| seq >= lo && seq < end && exact[(seq - lo) as usize].is_none();
        self.locate_records(&unknown, &mut records)?;
        let old = self.h.clone();
        let r = resolve(
            lo,
            end,
            exact,
            hint,
            &|seq| records.get(&seq).copied(),
            Some(&old),
            false,
        );
        // Write the new slots in chunks, then sync, then checkpoint.
        let mut buf = Vec::with_capacity(SCAN_CHUNK as usize * SLOT_LEN);
        for (k, chunk) in r.metas.chunks(SCAN_CHUNK as usize).enumerate() {
            buf.clear();
            for m in chunk {
                buf.extend_from_slice(&encode_slot(m));
            }
            let at = slot_offset(lo + (k * SCAN_CHUNK as usize) as u64);
            self.slots
                .write_all_at(&buf, at)
                .ctx("write", &self.slots_path())?;
        }
        failpoint::hit("reconcile.after-slots");
        self.h.counters = r.counters;
        for s in self.h.segments.iter_mut() {
            s.live = r.live.get(&s.base).copied().unwrap_or(0);
        }
        self.h.scan_lo = r.scan_lo;
        // A message may be pending again anywhere in its lane.
        for l in self.h.lanes.iter_mut() {
            l.cursor = 0;
        }
        self.checkpoint()?;
        self.suspect = None;
        let mut line = format!(
            "{}: {why}; rebuilt the state of {} messages from the segments and the WAL",
            self.slots_path().display(),
            r.metas.len()
        );
        for note in r.notes {
            line.push_str("; ");
            line.push_str(&note);
        }
        self.notices.push(line);
        Ok(())
    }

    /// Finds the records of the messages `want` asks for in the segments
    /// the header names, reading record headers in bounded chunks (bodies
    /// are skipped: their CRC is checked when they are read).
    fn locate_records(
        &mut self,
        want: &dyn Fn(u64) -> bool,
        out: &mut HashMap<u64, (Loc, record::RecordHeader)>,
    ) -> Result<()> {
        let bases: Vec<u64> = self.h.segments.iter().map(|s| s.base).collect();
        for (i, &base) in bases.iter().enumerate() {
            let next = bases.get(i + 1).copied().unwrap_or(self.h.next_seq);
            if !(base..next).any(want) {
                continue;
            }
            let path = segment::path(&self.dir, base);
            let file = match self.segment_file(base) {
                Ok(_) => match self.files.get(&base) {
                    Some(f) => Arc::clone(f),
                    None => continue,
                },
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut len = file.len().ctx("stat", &path)?;
            if base == self.h.active {
                len = len.min(self.h.active_len);
            }
            let mut win: Vec<u8> = Vec::new();
            let mut win_at = 0u64;
            let mut at = segment::FIRST_RECORD;
            while at + RECORD_HEADER_LEN as u64 <= len {
                if at < win_at || at + MAX_HEADER_LEN as u64 > win_at + win.len() as u64 {
                    win.resize((len - at).min(WAL_CHUNK as u64) as usize, 0);
                    let n = segment::read_at_most(&*file, &path, &mut win, at)?;
                    win.truncate(n);
                    win_at = at;
                    if n < RECORD_HEADER_LEN {
                        break;
                    }
                }
                let rel = (at - win_at) as usize;
                match record::decode_header(&win[rel..]) {
                    Ok(h) if at + h.record_len() <= len => {
                        if (base..next).contains(&h.seq) && want(h.seq) {
                            out.entry(h.seq).or_insert((h.loc(base, at), h));
                        }
                        at += h.record_len();
                    }
                    _ => match record::find_next(&win, rel + 1) {
                        Some(p) => at = win_at + p as u64,
                        None if win_at + win.len() as u64 >= len => break,
                        // A header may straddle the window's end: look again from just before it.
                        None => {
                            at =
                                (win_at + win.len() as u64 - MAX_HEADER_LEN as u64 + 1).max(at + 1);
                            win.clear();
                        }
                    },
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::fs::testing::*;

    #[test]
    fn a_stale_copy_of_slots_is_rebuilt_from_the_wal_without_undoing_an_ack() {
        let (_t, dir) = queue_dir();
        let mut s = open(&dir);
        push(&mut s, &["a", "b", "c"]);
        drop(s);
        let old = std::fs::read(dir.join("slots")).unwrap();
        let mut s = open(&dir);
        lease_and_ack(&mut s, 2);
        drop(s);
        std::fs::write(dir.join("slots"), &old).unwrap();
        let mut s = open(&dir);
        let notices = s.take_notices();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].contains("stale"), "{notices:?}");
        assert_eq!(s.get(2).unwrap().unwrap().state, State::Acked);
        let c = s.counters();
        assert_eq!((c.ready, c.acked, c.pushed), (2, 1, 3));
    }
}
