//! The push path (steps 1-4 of "push" in [`super`]'s write order):
//! records appended to the active segment (rolled at the segment limit),
//! their slots written past `next_seq`, the segment synced, and the live
//! header written last, which publishes the push.
//!
//! Invariants: until the live header is written the push can be undone,
//! and a push that fails is undone (appended bytes cut, segments it created
//! removed, the header as before): a push is either entirely visible or
//! not at all. Records and slots are written in chunks of [`PUSH_CHUNK`]
//! bytes, full ones by a helper thread, all before the segment is synced.
//!
//! What one push writes (record layout in [`super::record`], slot layout
//! in [`super::index`]):
//!
//! ```text
//! segment: | ... committed (active_len) | record n | record n+1 | ... |
//! slots:   | ... | slot n at n * 64 | slot n+1 | ... |     (past next_seq until step 4)
//! ```

use super::{FsStore, segment_limit};
use crate::base::error::{Error, IoContext, Result};
use crate::base::failpoint;
use crate::base::io::{self};
use crate::store::fs::index::{self, SLOT_LEN, SegmentEntry};
use crate::store::fs::record::{self, RECORD_HEADER_LEN};
use crate::store::fs::segment::{self, sync_dir};
use crate::store::{Loc, Meta, NewMessage, State};
use std::path::Path;
use std::sync::Arc;

/// Bytes of records buffered before a write during a push. Full chunks are
/// written by a helper thread (io::Appender) and the last one of a push by
/// the pushing thread, so smaller chunks share the work better: 2 MiB gave
/// a 1,000,000-line push a median of 0.22 s against 0.27 s with 4 MiB.
const PUSH_CHUNK: usize = 2 * 1024 * 1024;

impl FsStore {
    /// [`Store::push`]: steps 1-4 (see the module doc), undone if any fails.
    pub(super) fn push_or_undo(
        &mut self,
        msgs: &mut dyn Iterator<Item = Result<NewMessage<'_>>>,
    ) -> Result<Vec<u64>> {
        let saved = self.h.clone();
        let mut created: Vec<u64> = Vec::new();
        // Publishing is writing the live header; until it is written the push
        // can be undone.
        let published = self
            .push_inner(msgs, &mut created)
            .and_then(|(ids, rolled)| self.write_live().map(|_| (ids, rolled)));
        match published {
            Ok((ids, rolled)) => {
                // Done and visible: a checkpoint that fails now is only postponed.
                if rolled && let Err(e) = self.checkpoint() {
                    self.poisoned = true;
                    self.notices.push(format!(
                        "the messages are stored; a checkpoint failed and will be retried: {e}"
                    ));
                }
                Ok(ids)
            }
            Err(e) => {
                // Nothing was made visible: leave the queue exactly as before by
                // cutting what was appended and removing segments this push created.
                if !saved.segments.is_empty() {
                    let p = segment::path(&self.dir, saved.active);
                    if let Ok(f) = segment::open_rw(&*self.fs, &p) {
                        let _ = f.set_len(saved.active_len);
                        let _ = f.sync_data();
                    }
                }
                for base in created {
                    let _ = self.fs.remove_file(&segment::path(&self.dir, base));
                    self.files.remove(&base);
                }
                let _ = sync_dir(&*self.fs, &self.dir);
                self.h = saved;
                Err(match e {
                    Error::DiskFull { what, path } => Error::DiskFull {
                        what: format!("{what} (the push was undone: nothing was stored)"),
                        path,
                    },
                    e => e,
                })
            }
        }
    }

    /// Steps 1-4 of a push (see the module doc). Returns the new seqs and
    /// whether a segment was rolled; `created` lists segments it created.
    fn push_inner(
        &mut self,
        msgs: &mut dyn Iterator<Item = Result<NewMessage<'_>>>,
        created: &mut Vec<u64>,
    ) -> Result<(Vec<u64>, bool)> {
        let mut new_segments: Vec<SegmentEntry> = Vec::new();
        if self.h.segments.is_empty() {
            let base = self.h.next_seq;
            segment::create(&*self.fs, &self.dir, base, self.h.salt)?;
            created.push(base);
            new_segments.push(SegmentEntry { base, live: 0 });
        }
        let mut base = new_segments.last().map_or(self.h.active, |s| s.base);
        let mut path: Arc<Path> = segment::path(&self.dir, base).into();
        let mut file = segment::open_rw(&*self.fs, &path)?;
        let mut len = if new_segments.is_empty() {
            self.h.active_len
        } else {
            segment::FIRST_RECORD
        };
        let mut next = self.h.next_seq;
        // Full chunks are written by the appender's thread while the next
        // are encoded; the last (partial) ones here. All are written before
        // the segment is synced.
        let mut out = io::Appender::new();
        let slots_path: Arc<Path> = self.slots_path().into();
        let failed = |f: io::Failed| Error::io("write", &f.path, f.error);
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_at = len;
        let mut slots: Vec<u8> = Vec::new();
        let mut slots_at = next;
        let mut counted: Vec<(State, u32, u64)> = Vec::new();
        let mut rolled = false;
        for msg in msgs {
            let msg = msg?;
            msg.check_size()?;
            let rec_len = RECORD_HEADER_LEN as u64 + msg.body.len() as u64;
            if len + rec_len > segment_limit() && len > segment::FIRST_RECORD {
                // Roll: what the old segment got so far is written and synced first.
                out.wait().map_err(failed)?;
                record::fill_crcs(&mut buf);
                file.write_all_at(&buf, buf_at).ctx("append", &path)?;
                buf.clear();
                file.sync_data().ctx("sync", &path)?;
                self.flush_slots(&mut slots, slots_at)?;
                slots_at = next;
                base = next;
                path = segment::path(&self.dir, base).into();
                file = segment::create(&*self.fs, &self.dir, base, self.h.salt)?;
                created.push(base);
                failpoint::hit("roll.after-create");
                new_segments.push(SegmentEntry { base, live: 0 });
                len = segment::FIRST_RECORD;
                buf_at = len;
                rolled = true;
            }
            let state = if msg.not_before_ms > 0 {
                State::Delayed
            } else {
                State::Ready
            };
            let m = Meta {
                seq: next,
                state,
                attempts: 0,
                max_attempts: 0,
                pushed_at_ms: msg.pushed_at_ms,
                until_ms: msg.not_before_ms,
                receipt: [0; 12],
                len: msg.body.len() as u32,
                loc: Loc {
                    segment: base,
                    offset: len as u32,
                },
            };
            // The CRCs are filled in just before each write.
            record::encode_without_crcs(
                m.seq,
                msg.pushed_at_ms,
                msg.not_before_ms,
                &msg.body,
                &mut buf,
            );
            slots.extend_from_slice(&index::encode_slot_without_crc(&m));
            counted.push((state, m.len, base));
            len += rec_len;
            next += 1;
            if buf.len() >= PUSH_CHUNK {
                let at = buf_at;
                buf_at += buf.len() as u64;
                // The disk works on this chunk while the next is encoded,
                // and the fdatasync at the end waits for less.
                buf = out
                    .write(&file, &path, at, (buf, record::fill_crcs), true)
                    .map_err(failed)?;
                slots = out
                    .write(
                        &self.slots,
                        &slots_path,
                        slots_at * SLOT_LEN as u64,
                        (slots, index::fill_slot_crcs),
                        true,
                    )
                    .map_err(failed)?;
                slots_at = next;
            }
        }
        out.wait().map_err(failed)?;
        record::fill_crcs(&mut buf);
        file.write_all_at(&buf, buf_at).ctx("append", &path)?;
        failpoint::hit("push.after-append");
        file.sync_data().ctx("sync", &path)?;
        self.flush_slots(&mut slots, slots_at)?;
        failpoint::hit("push.after-sync");
        // Durable: now make it visible.
        let first = self.h.next_seq;
        self.h.segments.extend(new_segments);
        for (state, body_len, seg) in counted {
            self.h.counters.add(state, body_len);
            if let Some(s) = self.h.segments.iter_mut().rev().find(|s| s.base == seg) {
                s.live += 1;
            }
        }
        self.h.active = base;
        self.h.active_len = len;
        self.h.next_seq = next;
        self.files.insert(base, file);
        Ok(((first..next).collect(), rolled))
    }

    /// Writes the slots a push encoded (CRCs not yet filled) from `first_seq` on.
    fn flush_slots(&mut self, slots: &mut Vec<u8>, first_seq: u64) -> Result<()> {
        if !slots.is_empty() {
            index::fill_slot_crcs(slots);
            self.slots
                .write_all_at(slots, first_seq * SLOT_LEN as u64)
                .ctx("write", &self.slots_path())?;
            slots.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::testing::*;

    #[test]
    fn a_push_that_fails_leaves_the_queue_as_it_was() {
        let (_t, dir) = queue_dir();
        let mut s = open(&dir);
        push(&mut s, &["a"]);
        let seg_len = std::fs::metadata(segment::path(&dir, 1)).unwrap().len();
        let before = s.counters();
        let mut failing = vec![msg("b"), Err(Error::Runtime("stdin broke".into()))].into_iter();
        assert!(s.push(&mut failing).is_err());
        assert_eq!(s.counters(), before);
        assert_eq!(
            std::fs::metadata(segment::path(&dir, 1)).unwrap().len(),
            seg_len
        );
        assert_eq!(push(&mut s, &["c"]), vec![2]);
        drop(s);
        let s = open(&dir);
        assert_eq!(s.counters().pushed, 2);
    }
}
