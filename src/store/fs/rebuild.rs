//! `fsck --repair` ("repair" in [`super`]'s write order): a queue's
//! segments checked and their damaged records quarantined, its slots and
//! headers rebuilt from the segments and whatever slots and WAL records are
//! still readable.
//!
//! Invariants: the `repairing` marker is durable before the first segment
//! is rewritten and removed only after the index is synced, so a repair cut
//! short is finished by the next open; slots are synced before the WAL is
//! emptied and the header written.
//!
//! What it writes, in order (layouts in [`super::record`], [`super::index`]):
//!
//! ```text
//! QUEUE/repairing   empty file, synced, directory synced
//! QUEUE/<base>.seg  a damaged one rewritten: | header | good records in sequence |
//! QUEUE/slots       | stamp (new generation) | ... | slot lo at lo * 64 | ... | slot end-1 |
//! QUEUE/wal         emptied
//! QUEUE/index       one header, generation above any old one, in all four regions
//! QUEUE/failures    only if damaged: rewritten with the frames still readable
//!                   (tmp, fsync, rename, dir fsync: `failures.rs`)
//! QUEUE/holds       only if damaged: made again from the slots and the
//!                   entries still readable (tmp, fsync, rename, dir fsync: `holds.rs`)
//! ```

use super::recover::read_header;
use super::resolve::{is_final, merge_wal, resolve};
use super::{FsStore, create_file};
use crate::base::error::{Error, IoContext, Result};
use crate::base::failpoint;
use crate::base::io::{FileIo, Fs};
use crate::store::fs::index::slot_offset;
use crate::store::fs::index::{
    self, Header, REGION_LEN, SLOT_LEN, SegmentEntry, decode_slot_of, encode_slot,
};
use crate::store::fs::record::{self};
use crate::store::fs::segment::{self, Found, sync_dir};
use crate::store::{Loc, Meta, Store, new_salt};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rebuilds a queue's index from its segments and whatever slots and WAL
/// records are still readable, for `fsck --repair`. Damaged records are
/// quarantined and cut out of their segments. Returns a line per thing done.
///
/// Rules, per message seq between the oldest segment and the end:
/// * a good record and a good slot: the slot's state is kept (a live
///   message's location updated to where the record now is; a finished
///   one's slot kept as it was, since its body is never read again);
/// * a good record and no good slot: ready, attempts 0 (at-least-once: a
///   message is never lost for want of its slot); delayed if the record
///   says so, or the state of a stale slot if that was live; unless the old
///   header's counters say it was finished (then acked) or cannot say
///   (then a dead letter: see [`super::resolve::resolve`]). A
///   corrupt slot whose record is intact again counts as no good slot;
/// * no good record: an acked or purged slot stays so; anything else is
///   marked corrupt (lost) and never served.
///
/// The decision for one message is `resolve::decide`.
///
/// Everything is written and synced, then the WAL is emptied and the new
/// header written to all four regions with a generation above any old one.
pub(crate) fn rebuild(fs: Arc<dyn Fs>, dir: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    // Let ordinary recovery replay what it can first.
    match FsStore::open_with(Arc::clone(&fs), dir, false) {
        Ok(Some(mut s)) => {
            notes.extend(s.take_notices());
            // What its recovery wrote to the holds file is redone by
            // nothing once the rebuild empties the WAL: synced first.
            s.sync_holds()?;
        }
        Ok(None) => {}
        Err(e) => notes.push(format!(
            "index unreadable ({e}); rebuilding it from the segments"
        )),
    }
    {
        let _lock = fs
            .lock(&dir.join("lock"), true)
            .ctx("lock", &dir.join("lock"))?;
        notes.extend(rebuild_locked(&*fs, dir)?);
        notes.extend(super::failures::repair(&*fs, dir)?);
    }
    // The holds and lanes last, from the slots as rebuilt.
    if let Some(mut s) = FsStore::open_with(Arc::clone(&fs), dir, false)? {
        notes.extend(s.repair_holds()?);
        s.repair_lanes()?;
        notes.extend(s.take_notices());
    }
    Ok(notes)
}

/// The marker of a repair under way: while it exists, the next open of the
/// queue finishes the repair before anything else.
pub(super) const REPAIRING: &str = "repairing";

/// [`rebuild`], with the queue's lock held. The marker is made durable before
/// the first segment is rewritten and removed after the index is synced, so a
/// repair cut short by a crash is finished by the next command.
pub(super) fn rebuild_locked(fs: &dyn Fs, dir: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let marker = dir.join(REPAIRING);
    create_file(fs, &marker)?.sync_data().ctx("sync", &marker)?;
    sync_dir(fs, dir)?;
    let files = Files::open(fs, dir)?;
    let old = files.newest_header()?;

    // The salt is in every segment header: ids survive the loss of the index.
    let bases = segment::list(fs, dir)?;
    let salt = match (segment::find_salt(fs, dir)?, &old) {
        (Some(s), _) => s,
        (None, Some(h)) => h.salt,
        (None, None) => new_salt()?,
    };
    let Salvaged { records, segs } = salvage_segments(fs, dir, salt, bases, &mut notes)?;

    failpoint::hit("repair.after-segments");
    let (lo, end) = span(&records, &segs, old.as_ref());
    let (exact, hint) = files.known_states(lo, end, old.as_ref())?;
    let by_seq: HashMap<u64, (Loc, record::RecordHeader)> = records
        .iter()
        .map(|(base, offset, h)| (h.seq, (h.loc(*base, *offset), *h)))
        .collect();
    let r = resolve(
        lo,
        end,
        exact,
        hint,
        &|seq| by_seq.get(&seq).copied(),
        old.as_ref(),
        true,
    );
    notes.extend(r.notes);
    let generation = old.as_ref().map_or(0, |h| h.generation) + 1;
    files.write_slots(lo, &r.metas, generation)?;
    let (counters, live, scan_lo) = (r.counters, r.live, r.scan_lo);

    let (active, active_len) = segs.last().copied().unwrap_or((end, 0));
    let h = Header {
        generation,
        lsn: old.as_ref().map_or(0, |h| h.lsn),
        wal_len: 0,
        boot_id: fs.boot_id(),
        next_seq: end,
        active,
        active_len,
        scan_lo,
        counters,
        punched: old.as_ref().map_or(0, |h| h.punched).min(lo),
        salt,
        segments: segs
            .iter()
            .map(|(base, _)| SegmentEntry {
                base: *base,
                live: live.get(base).copied().unwrap_or(0),
            })
            .collect(),
        // Made again from the slots once they are whole (`repair_lanes`).
        lanes: Default::default(),
        lanes_epoch: 0,
    };
    files.empty_wal_and_write_index(dir, &h)?;
    sync_dir(fs, dir)?;
    fs.remove_file(&marker).ctx("remove", &marker)?;
    sync_dir(fs, dir)?;
    Ok(notes)
}

/// A good record kept by [`salvage_segments`]: its segment's base, its
/// offset there, its header.
type Kept = (u64, u64, record::RecordHeader);

/// What [`salvage_segments`] kept.
struct Salvaged {
    /// The good records in sequence.
    records: Vec<Kept>,
    /// Each segment's base and file length.
    segs: Vec<(u64, u64)>,
}

/// A state per message from `lo`, where one is known (see [`resolve`]).
type States = Vec<Option<Meta>>;

/// Phase 1: the segments in `bases`, each checked whole. The good records
/// in sequence are kept; the others (damaged, or out of sequence: a seq
/// below the segment's base or not above the last one kept) are moved to
/// `quarantine/` and the segment rewritten without them.
fn salvage_segments(
    fs: &dyn Fs,
    dir: &Path,
    salt: u64,
    bases: Vec<u64>,
    notes: &mut Vec<String>,
) -> Result<Salvaged> {
    // Segments: keep the good records in sequence, quarantine the rest.
    let mut records: Vec<Kept> = Vec::new(); // (base, offset, header)
    let mut segs: Vec<(u64, u64)> = Vec::new(); // (base, file length)
    for base in bases {
        let path = segment::path(dir, base);
        let (bytes, mut found, head) = segment::check(fs, &path)?;
        let mut last = records.last().map(|r| r.2.seq);
        for f in found.iter_mut() {
            if let Found::Good { offset, header } = *f
                && !segment::in_sequence(header.seq, base, &mut last)
            {
                *f = Found::Garbage {
                    offset,
                    len: header.record_len(),
                    damage: record::Damage::OutOfSequence,
                };
            }
        }
        let damaged = head.is_err() || found.iter().any(|f| !matches!(f, Found::Good { .. }));
        let good: Vec<(u64, record::RecordHeader)> = if damaged {
            let g = segment::rewrite_good(fs, salt, dir, &path, &bytes, &found)?;
            notes.push(format!(
                "{}: kept {} good records; damaged bytes moved to quarantine/",
                path.display(),
                g.len()
            ));
            g
        } else {
            found
                .iter()
                .filter_map(|f| match f {
                    Found::Good { offset, header } => Some((*offset, *header)),
                    _ => None,
                })
                .collect()
        };
        let len = segment::open_rw(fs, &path)?.len().ctx("stat", &path)?;
        records.extend(good.into_iter().map(|(offset, h)| (base, offset, h)));
        segs.push((base, len));
    }
    Ok(Salvaged { records, segs })
}

/// Phase 2: the seqs to rebuild, `lo..end`: up to past the last record
/// kept, or the old header's `next_seq` if higher.
fn span(records: &[Kept], segs: &[(u64, u64)], old: Option<&Header>) -> (u64, u64) {
    let first = segs.first().map(|s| s.0);
    let end = records
        .last()
        .map(|r| r.2.seq + 1)
        .into_iter()
        .chain(old.map(|h| h.next_seq))
        .chain(first)
        .max()
        .unwrap_or(1);
    // From the oldest segment on disk or named by the old header: messages
    // of a named segment that has gone missing are lost, and counted so.
    let lo = first
        .into_iter()
        .chain(old.and_then(|h| h.segments.first().map(|s| s.base)))
        .min()
        .unwrap_or(end)
        .min(end);
    (lo, end)
}

/// The index files of the queue being repaired, opened (created if lost).
struct Files {
    index: Arc<dyn FileIo>,
    slots: Arc<dyn FileIo>,
    wal: Arc<dyn FileIo>,
    index_path: PathBuf,
    slots_path: PathBuf,
    wal_path: PathBuf,
}

impl Files {
    fn open(fs: &dyn Fs, dir: &Path) -> Result<Files> {
        Ok(Files {
            index: create_file(fs, &dir.join("index"))?,
            slots: create_file(fs, &dir.join("slots"))?,
            wal: create_file(fs, &dir.join("wal"))?,
            index_path: dir.join("index"),
            slots_path: dir.join("slots"),
            wal_path: dir.join("wal"),
        })
    }

    /// The valid header of the highest generation in any region.
    fn newest_header(&self) -> Result<Option<Header>> {
        let mut old: Option<Header> = None;
        for i in 0..index::REGIONS {
            if let Some(h) = read_header(&*self.index, &self.index_path, i)?
                && old.as_ref().is_none_or(|o| h.generation > o.generation)
            {
                old = Some(h);
            }
        }
        Ok(old)
    }

    /// Phase 3: what is still known of the state of each message `lo..end`,
    /// as `exact` and `hint` for [`resolve`].
    fn known_states(&self, lo: u64, end: u64, old: Option<&Header>) -> Result<(States, States)> {
        let (slots, slots_path) = (&*self.slots, &self.slots_path);
        // Slots as they are (all of them if the file is as new as the header,
        // else only the finished ones), the WAL's images since the checkpoint
        // on top, the rest inferred (see resolve).
        let mut stamp = [0u8; SLOT_LEN];
        let n = segment::read_at_most(slots, slots_path, &mut stamp, 0)?;
        let trust = match (index::decode_stamp(&stamp[..n]), old) {
            (index::Stamp::Generation(g), Some(h)) => g >= h.generation,
            (index::Stamp::Damaged, Some(_)) => false,
            _ => true,
        };
        let count = (end - lo) as usize;
        let mut exact: Vec<Option<Meta>> = vec![None; count];
        let mut hint: Vec<Option<Meta>> = vec![None; count];
        let mut buf = vec![0u8; SLOT_LEN];
        for seq in lo..end {
            let n = segment::read_at_most(slots, slots_path, &mut buf, slot_offset(seq))?;
            if n == SLOT_LEN
                && let Ok(m) = decode_slot_of(&buf, seq)
            {
                let i = (seq - lo) as usize;
                if trust || is_final(m.state) {
                    exact[i] = Some(m);
                } else {
                    hint[i] = Some(m);
                }
            }
        }
        // The WAL holds every change since the newest checkpoint (whose lsn is
        // below every record written after it).
        let ckpt_lsn = [2, 3]
            .iter()
            .filter_map(|&i| {
                read_header(&*self.index, &self.index_path, i)
                    .ok()
                    .flatten()
            })
            .max_by_key(|h| h.generation)
            .map_or(0, |h| h.lsn);
        let applied = if trust {
            old.map_or(ckpt_lsn, |h| h.lsn)
        } else {
            ckpt_lsn
        };
        merge_wal(
            &*self.wal,
            &self.wal_path,
            lo,
            &mut exact,
            &mut hint,
            ckpt_lsn,
            applied,
        )?;
        Ok((exact, hint))
    }

    /// Phase 4: the slots of messages `lo..` and the stamp of `generation`,
    /// written and synced.
    fn write_slots(&self, lo: u64, metas: &[Meta], generation: u64) -> Result<()> {
        let (slots, slots_path) = (&self.slots, &self.slots_path);
        let mut out = Vec::with_capacity(metas.len() * SLOT_LEN);
        for m in metas {
            out.extend_from_slice(&encode_slot(m));
        }
        slots
            .write_all_at(&out, slot_offset(lo))
            .ctx("write", slots_path)?;
        slots
            .write_all_at(&index::encode_stamp(generation), 0)
            .ctx("write", slots_path)?;
        slots.sync_data().ctx("sync", slots_path)?;
        Ok(())
    }

    /// Phase 5: the WAL emptied, then header `h` written to all four
    /// regions and synced.
    fn empty_wal_and_write_index(&self, dir: &Path, h: &Header) -> Result<()> {
        let (index, index_path) = (&self.index, &self.index_path);
        let (wal, wal_path) = (&self.wal, &self.wal_path);
        wal.set_len(0).ctx("truncate", wal_path)?;
        wal.sync_data().ctx("sync", wal_path)?;
        let bytes = h
            .encode()
            .ok_or_else(|| Error::Runtime(format!("{}: too many segments", dir.display())))?;
        for i in 0..index::REGIONS {
            index
                .write_all_at(&bytes, (i * REGION_LEN) as u64)
                .ctx("write", index_path)?;
        }
        index.sync_data().ctx("sync", index_path)?;
        Ok(())
    }
}
