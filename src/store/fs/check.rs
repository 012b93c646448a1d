//! `fsck` of one queue of the fs store: every record of every segment (its
//! CRCs, its place against the index), every slot (against its record and
//! the counters), the WAL (damage before the committed length), the
//! header's counters against the slots, the failures file's frames, the
//! holds file and the lanes. It only reads: problems are
//! reported with their file and offset, and repairs are
//! [`crate::store::fs::rebuild()`]'s. `ops::fsck` runs it for each queue.
//!
//! Invariants: it sees an open store only through accessors private to
//! `store::fs` (`header`, `slots_suspect`, `committed_wal_len`,
//! `missing_files`, `all_slots`); the queue is opened as a command that only
//! reads, so nothing on disk changes. Writes nothing.

use super::FsStore;
use super::wal::read_wal;
use crate::base::error::{Error, Result};
use crate::base::io::Fs;
use crate::store::fs::index::slot_offset;
use crate::store::fs::index::{Header, SlotDamage};
use crate::store::fs::segment::{self, Found};
use crate::store::{Counters, Problem, QueueReport, Step};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// A problem found in queue `name`: in `file`, at `offset` if known.
type ProblemFn<'a> = dyn Fn(&Path, Option<u64>, String) -> Problem + 'a;

/// Checks queue `name` in directory `dir`.
pub fn check(fs: &Arc<dyn Fs>, name: &str, dir: &Path) -> Result<QueueReport> {
    let mut r = QueueReport::default();
    let problem = |file: &Path, offset: Option<u64>, what: String| Problem {
        queue: name.to_string(),
        file: file.to_path_buf(),
        offset,
        what,
    };
    // The index first: opening it runs recovery (adopting whole records past
    // the committed end), which is not a problem. Opened as a command that
    // only reads: a torn WAL tail or slots to rebuild are reported, not fixed.
    let mut store = match FsStore::open_access(Arc::clone(fs), dir, false, false) {
        Ok(Some(s)) => Some(s),
        Ok(None) => return Err(Error::NoSuchQueue(name.to_string())),
        Err(Error::Corrupt { path, detail }) => {
            r.problems.push(problem(&path, None, detail));
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(s) = store.as_mut() {
        r.notes.extend(
            crate::store::Store::take_notices(s)
                .into_iter()
                .map(|n| format!("{name}: {n}")),
        );
    }
    let segs = check_segments(&**fs, dir, &mut r, &problem)?;
    let Some(store) = store else {
        return Ok(r);
    };
    check_wal(&**fs, dir, store.committed_wal_len(), &mut r, &problem)?;
    let h = store.header().clone();
    check_files(&store, &h, dir, &segs.on_disk, &mut r, &problem);
    let (counted, live) = check_slots(&store, &h, dir, &segs, &mut r, &problem)?;
    check_counters(&h, &counted, &live, dir, &mut r, &problem);
    let failures = dir.join(super::failures::FILE);
    for (offset, what) in super::failures::check(&**fs, dir)? {
        r.problems.push(problem(&failures, Some(offset), what));
    }
    let holds = dir.join(super::holds::FILE);
    for (offset, what) in super::holds::check(&**fs, dir)? {
        r.problems.push(problem(&holds, Some(offset), what));
    }
    for (path, offset, what) in super::lanes::check(&store)? {
        r.problems.push(problem(&path, Some(offset), what));
    }
    Ok(r)
}

/// What [`check_segments`] found in the segment files.
struct Segments {
    /// The good records in sequence: seq -> (base, offset).
    good: HashMap<u64, (u64, u64)>,
    /// Seqs of records whose body is damaged.
    bad_seqs: HashSet<u64>,
    /// The segment files on disk, by base.
    on_disk: Vec<u64>,
}

/// Every record of every segment file, read whole: its CRCs, and its seq
/// in sequence.
fn check_segments(
    fs: &dyn Fs,
    dir: &Path,
    r: &mut QueueReport,
    problem: &ProblemFn<'_>,
) -> Result<Segments> {
    // Segments, read whole.
    let mut good: HashMap<u64, (u64, u64)> = HashMap::new(); // seq -> (base, offset)
    let mut bad_seqs = HashSet::new();
    let on_disk = segment::list(fs, dir)?;
    let mut last: Option<u64> = None;
    for &base in &on_disk {
        let path = segment::path(dir, base);
        let (_, found, head) = segment::check(fs, &path)?;
        if let Err(h) = head {
            r.problems.push(problem(&path, Some(0), h));
        }
        for f in found {
            match f {
                Found::Good { offset, header } => {
                    r.records += 1;
                    if segment::in_sequence(header.seq, base, &mut last) {
                        good.insert(header.seq, (base, offset));
                    } else {
                        r.problems.push(problem(
                            &path,
                            Some(offset),
                            crate::store::fs::record::Damage::OutOfSequence
                                .describe()
                                .to_string(),
                        ));
                    }
                }
                Found::BadBody { offset, header } => {
                    r.records += 1;
                    bad_seqs.insert(header.seq);
                    r.problems.push(problem(
                        &path,
                        Some(offset),
                        "message body checksum mismatch".to_string(),
                    ));
                }
                Found::Garbage {
                    offset,
                    len,
                    damage,
                } => {
                    r.problems.push(problem(
                        &path,
                        Some(offset),
                        format!("{} ({len} bytes)", damage.describe()),
                    ));
                }
            }
        }
    }
    Ok(Segments {
        good,
        bad_seqs,
        on_disk,
    })
}

/// The files against the index: slots to rebuild, files recreated empty,
/// segment files the header does not name and named ones that are missing.
fn check_files(
    store: &FsStore,
    h: &Header,
    dir: &Path,
    on_disk: &[u64],
    r: &mut QueueReport,
    problem: &ProblemFn<'_>,
) {
    if let Some(why) = store.slots_suspect() {
        r.problems.push(problem(
            &dir.join("slots"),
            None,
            format!("{why}: the states of messages must be rebuilt (any command that writes, or `fsck --repair`, does it)"),
        ));
    }
    for p in store.missing_files() {
        r.problems.push(problem(
            p,
            None,
            "file was missing (recreated empty)".into(),
        ));
    }
    for &base in on_disk {
        if !h.segments.iter().any(|s| s.base == base) {
            r.problems.push(problem(
                &segment::path(dir, base),
                None,
                "segment file not named in the index".into(),
            ));
        }
    }
    for s in &h.segments {
        // One with nothing live is a reclaim a crash cut short (the next
        // command that writes drops it from the index).
        if !on_disk.contains(&s.base) && s.live > 0 {
            r.problems.push(problem(
                &segment::path(dir, s.base),
                None,
                format!("segment missing ({} live messages)", s.live),
            ));
        }
    }
}

/// Every slot from the oldest segment on, against its record. Returns the
/// slots' counters and their live messages per segment base.
fn check_slots(
    store: &FsStore,
    h: &Header,
    dir: &Path,
    segs: &Segments,
    r: &mut QueueReport,
    problem: &ProblemFn<'_>,
) -> Result<(Counters, HashMap<u64, u64>)> {
    let (good, bad_seqs) = (&segs.good, &segs.bad_seqs);
    let slots_path = dir.join("slots");
    let first = h.segments.first().map_or(h.next_seq, |s| s.base);
    let mut counted = Counters::default();
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut slot_problems = Vec::new();
    let id = |seq: u64| crate::model::ids::format_id(seq, h.salt);
    store.all_slots(first, &mut |seq, slot| {
        match slot {
            Ok(m) => {
                counted.add(m.state, m.len);
                if m.state.is_live() {
                    *live.entry(m.loc.segment).or_default() += 1;
                    let at = good.get(&seq).copied();
                    let ok = at == Some((m.loc.segment, u64::from(m.loc.offset)));
                    if !ok && !bad_seqs.contains(&seq) {
                        slot_problems.push((
                            seq,
                            format!(
                                "message {} is {} but its record is missing or damaged",
                                id(seq),
                                m.state.name()
                            ),
                        ));
                    }
                }
            }
            Err(SlotDamage::Empty) if !good.contains_key(&seq) => {}
            Err(d) => {
                let what = if d == SlotDamage::Empty {
                    "missing"
                } else {
                    "damaged"
                };
                slot_problems.push((seq, format!("index slot of message {} is {what}", id(seq))));
            }
        }
        Step::Continue
    })?;
    for (seq, what) in slot_problems {
        r.problems
            .push(problem(&slots_path, Some(slot_offset(seq)), what));
    }
    Ok((counted, live))
}

/// The header's counters against the slots' (`counted`, `live` per
/// segment), and against each other.
fn check_counters(
    h: &Header,
    counted: &Counters,
    live: &HashMap<u64, u64>,
    dir: &Path,
    r: &mut QueueReport,
    problem: &ProblemFn<'_>,
) {
    let c = h.counters;
    let pairs = [
        ("ready", c.ready, counted.ready),
        ("delayed", c.delayed, counted.delayed),
        ("leased", c.leased, counted.leased),
        ("dead", c.dead, counted.dead),
        ("expired", c.expired, counted.expired),
        ("bytes", c.bytes, counted.bytes),
    ];
    for (what, stored, seen) in pairs {
        if stored != seen {
            r.problems.push(problem(
                &dir.join("index"),
                None,
                format!("counter {what} is {stored} but the slots say {seen}"),
            ));
        }
    }
    // Every message ever pushed is in exactly one state.
    let sum = c.ready + c.delayed + c.leased + c.dead + c.expired + c.acked + c.purged + c.corrupt;
    if sum != c.pushed {
        r.problems.push(problem(
            &dir.join("index"),
            None,
            format!(
                "counters do not add up: ready {} + delayed {} + leased {} + dead {} + expired {} + acked {} + purged {} + corrupt {} = {sum}, but pushed is {}",
                c.ready, c.delayed, c.leased, c.dead, c.expired, c.acked, c.purged, c.corrupt, c.pushed
            ),
        ));
    }
    for (what, stored, seen) in [
        ("acked", c.acked, counted.acked),
        ("purged", c.purged, counted.purged),
        ("corrupt", c.corrupt, counted.corrupt),
    ] {
        // These are totals: the slots of reclaimed segments count too.
        if seen > stored {
            r.problems.push(problem(
                &dir.join("index"),
                None,
                format!("counter {what} is {stored} but the slots hold {seen}"),
            ));
        }
    }
    for s in &h.segments {
        let seen = live.get(&s.base).copied().unwrap_or(0);
        if s.live != seen {
            r.problems.push(problem(
                &segment::path(dir, s.base),
                None,
                format!("index says {} live messages, the slots say {seen}", s.live),
            ));
        }
    }
}

/// Every WAL record up to the committed length must decode (read in
/// bounded chunks). Bytes past the last whole record beyond that length are
/// a change that never finished (recovery cuts them): a note, not damage.
fn check_wal(
    fs: &dyn Fs,
    dir: &Path,
    committed: u64,
    r: &mut QueueReport,
    problem: &ProblemFn<'_>,
) -> Result<()> {
    let path = dir.join("wal");
    let wal = segment::open_file(fs, &path, crate::base::io::Open::Existing)?;
    let (end, size) = read_wal(&*wal, &path, 0, &mut |_, _, _| Ok(()))?;
    if end < size && end < committed {
        r.problems.push(problem(
            &path,
            Some(end),
            format!(
                "damaged change record ({} bytes to the end; the header says {committed} bytes were committed)",
                size - end
            ),
        ));
    }
    Ok(())
}
