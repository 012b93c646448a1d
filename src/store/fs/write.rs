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
use crate::base::io::{self, FileIo};
use crate::store::fs::index::slot_offset;
use crate::store::fs::index::{self, SegmentEntry};
use crate::store::fs::record;
use crate::store::fs::segment::{self, sync_dir};
use crate::store::{Hold, Loc, NewMessage, State, UniqueKey};
use std::path::Path;
use std::sync::Arc;

/// Bytes of records buffered before a write during a push. Full chunks are
/// written by a helper thread (io::Appender) and the last one of a push by
/// the pushing thread, so smaller chunks share the work better: 2 MiB gave
/// a 1,000,000-line push a median of 0.22 s against 0.27 s with 4 MiB.
const PUSH_CHUNK: usize = 2 * 1024 * 1024;

/// The holds a push's keyed messages take, in seq order.
type Keyed = Vec<(UniqueKey, Hold)>;

/// What a push writes after its records are synced: the holds of its keyed
/// messages and the priority and seq of its prioritised ones, in seq order.
#[derive(Default)]
struct After {
    keyed: Keyed,
    ranked: Vec<(u8, u64)>,
    grouped: Vec<(u64, crate::store::GroupKey)>,
}

impl FsStore {
    /// [`crate::store::Store::push`]: steps 1-4 (see the module doc), undone if any fails.
    pub(super) fn push_or_undo(
        &mut self,
        msgs: &mut dyn Iterator<Item = Result<NewMessage<'_>>>,
    ) -> Result<Vec<u64>> {
        let saved = self.h.clone();
        let mut created: Vec<u64> = Vec::new();
        let mut undo = super::holds::Undo::default();
        // Publishing is writing the live header; until it is written the push
        // can be undone. The keys' holds are written just before it.
        let published = self
            .push_inner(msgs, &mut created)
            .and_then(|(ids, rolled, after)| {
                self.take_keys(&after.keyed, &mut undo)?;
                failpoint::hit("push.after-holds");
                self.put_lanes(&after.ranked)?;
                failpoint::hit("push.after-lanes");
                self.put_groups(&after.grouped)?;
                failpoint::hit("push.after-groups");
                self.write_live().map(|_| (ids, rolled))
            });
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
                // putting back the holds it wrote, cutting what was appended and
                // removing segments this push created.
                self.undo_keys(undo);
                self.forget_lanes();
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

    /// Steps 1-3 of a push (see the module doc). Returns the new seqs,
    /// whether a segment was rolled and the holds of the keyed messages;
    /// `created` lists segments it created.
    fn push_inner(
        &mut self,
        msgs: &mut dyn Iterator<Item = Result<NewMessage<'_>>>,
        created: &mut Vec<u64>,
    ) -> Result<(Vec<u64>, bool, After)> {
        let mut b = self.begin_push(created)?;
        let slots_path: Arc<Path> = self.slots_path().into();
        let mut after = After::default();
        for msg in msgs {
            let msg = msg?;
            msg.check_size()?;
            if msg.priority > 0 {
                after.ranked.push((msg.priority, b.next));
            }
            if let Some(g) = msg.group {
                after.grouped.push((b.next, g));
            }
            if let Some((key, window)) = msg.unique {
                let hold = Hold {
                    seq: b.next,
                    pushed_at_ms: msg.pushed_at_ms,
                    unique_for_ms: window,
                    free_at_ms: 0,
                };
                after.keyed.push((key, hold));
            }
            let kind = record::Kind::of(
                msg.ttl_ms,
                msg.unique.is_some(),
                msg.priority,
                msg.group.is_some(),
            );
            let rec_len = kind.head_len() as u64 + msg.body.len() as u64;
            if b.len + rec_len > segment_limit() && b.len > segment::FIRST_RECORD {
                self.roll(&mut b, created)?;
            }
            b.encode(&msg, rec_len);
            if b.buf.len() >= PUSH_CHUNK {
                self.write_chunk(&mut b, &slots_path)?;
            }
        }
        let (seqs, rolled) = self.finish_push(b)?;
        Ok((seqs, rolled, after))
    }

    /// The segment a push starts in: the active one, or (for a queue with
    /// none) a new one it creates.
    fn begin_push(&mut self, created: &mut Vec<u64>) -> Result<Batch> {
        let mut new_segments: Vec<SegmentEntry> = Vec::new();
        if self.h.segments.is_empty() {
            let base = self.h.next_seq;
            segment::create(&*self.fs, &self.dir, base, self.h.salt)?;
            created.push(base);
            new_segments.push(SegmentEntry { base, live: 0 });
        }
        let base = new_segments.last().map_or(self.h.active, |s| s.base);
        let path: Arc<Path> = segment::path(&self.dir, base).into();
        let file = segment::open_rw(&*self.fs, &path)?;
        let len = if new_segments.is_empty() {
            self.h.active_len
        } else {
            segment::FIRST_RECORD
        };
        let next = self.h.next_seq;
        Ok(Batch {
            base,
            path,
            file,
            len,
            next,
            out: io::Appender::new(),
            buf: Vec::new(),
            buf_at: len,
            slots: Vec::new(),
            slots_at: next,
            counted: Vec::new(),
            new_segments,
            rolled: false,
        })
    }

    /// Step 1: the active segment is full, so the push goes on in a new one.
    fn roll(&mut self, b: &mut Batch, created: &mut Vec<u64>) -> Result<()> {
        // Roll: what the old segment got so far is written and synced first.
        b.out.wait().map_err(failed)?;
        record::fill_crcs(&mut b.buf);
        b.file
            .write_all_at(&b.buf, b.buf_at)
            .ctx("append", &b.path)?;
        b.buf.clear();
        b.file.sync_data().ctx("sync", &b.path)?;
        self.flush_slots(&mut b.slots, b.slots_at)?;
        b.slots_at = b.next;
        b.base = b.next;
        b.path = segment::path(&self.dir, b.base).into();
        b.file = segment::create(&*self.fs, &self.dir, b.base, self.h.salt)?;
        created.push(b.base);
        failpoint::hit("roll.after-create");
        b.new_segments.push(SegmentEntry {
            base: b.base,
            live: 0,
        });
        b.len = segment::FIRST_RECORD;
        b.buf_at = b.len;
        b.rolled = true;
        Ok(())
    }

    /// Step 2 for a full chunk: its records and slots handed to the
    /// appender's thread.
    fn write_chunk(&self, b: &mut Batch, slots_path: &Arc<Path>) -> Result<()> {
        let at = b.buf_at;
        b.buf_at += b.buf.len() as u64;
        // The disk works on this chunk while the next is encoded,
        // and the fdatasync at the end waits for less.
        let buf = std::mem::take(&mut b.buf);
        b.buf = b
            .out
            .write(&b.file, &b.path, at, (buf, record::fill_crcs), true)
            .map_err(failed)?;
        let slots = std::mem::take(&mut b.slots);
        b.slots = b
            .out
            .write(
                &self.slots,
                slots_path,
                slot_offset(b.slots_at),
                (slots, index::fill_slot_crcs),
                true,
            )
            .map_err(failed)?;
        b.slots_at = b.next;
        Ok(())
    }

    /// Steps 2-3 for what is left, then the header in memory: the last
    /// records and slots written, the segment synced, the new messages
    /// counted (step 4, writing the header, is the caller's).
    fn finish_push(&mut self, b: Batch) -> Result<(Vec<u64>, bool)> {
        let Batch {
            base,
            path,
            file,
            len,
            next,
            mut out,
            mut buf,
            buf_at,
            mut slots,
            slots_at,
            counted,
            new_segments,
            rolled,
        } = b;
        out.wait().map_err(failed)?;
        record::fill_crcs(&mut buf);
        file.write_all_at(&buf, buf_at).ctx("append", &path)?;
        failpoint::hit("push.after-append");
        if !failpoint::planted("segment-sync") {
            file.sync_data().ctx("sync", &path)?;
        }
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
                .write_all_at(slots, slot_offset(first_seq))
                .ctx("write", &self.slots_path())?;
            slots.clear();
        }
        Ok(())
    }
}

/// A push under way: the segment its records go to, and what it has
/// encoded and not yet written.
struct Batch {
    /// The segment appended to: its base, path, file and length so far.
    base: u64,
    path: Arc<Path>,
    file: Arc<dyn FileIo>,
    len: u64,
    /// The seq of the next message.
    next: u64,
    // Full chunks are written by the appender's thread while the next
    // are encoded; the last (partial) ones here. All are written before
    // the segment is synced.
    out: io::Appender,
    /// Records encoded, CRCs not yet filled, to be written at `buf_at`.
    buf: Vec<u8>,
    buf_at: u64,
    /// Their slots, CRCs not yet filled, from seq `slots_at` on.
    slots: Vec<u8>,
    slots_at: u64,
    /// Each message's state, body length and segment: counted once durable.
    counted: Vec<(State, u32, u64)>,
    /// The segments this push created: listed once durable.
    new_segments: Vec<SegmentEntry>,
    rolled: bool,
}

impl Batch {
    /// Step 2 for one message: its record and slot encoded (the CRCs are
    /// filled in just before each write), where the segment ends now.
    fn encode(&mut self, msg: &NewMessage<'_>, rec_len: u64) {
        let m = msg.meta(
            self.next,
            Loc {
                segment: self.base,
                offset: self.len as u32,
                long: msg.ttl_ms > 0
                    || msg.unique.is_some()
                    || msg.priority > 0
                    || msg.group.is_some(),
            },
        );
        let state = m.state;
        // The CRCs are filled in just before each write.
        let fields = record::Fields {
            seq: m.seq,
            pushed_at_ms: msg.pushed_at_ms,
            not_before_ms: msg.not_before_ms,
            ttl_ms: msg.ttl_ms,
            expires_at_ms: msg.expires_at_ms,
            unique: msg.unique,
            priority: msg.priority,
            group: msg.group,
        };
        record::encode_without_crcs(fields, &msg.body, &mut self.buf);
        self.slots
            .extend_from_slice(&index::encode_slot_without_crc(&m));
        self.counted.push((state, m.len, self.base));
        self.len += rec_len;
        self.next += 1;
    }
}

/// The error of a write the appender's thread made.
fn failed(f: io::Failed) -> Error {
    Error::io("write", &f.path, f.error)
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
