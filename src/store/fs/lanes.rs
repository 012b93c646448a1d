//! The lanes: what lets `pop` reach the most urgent message at once. A
//! message pushed with `--priority P` (1 to 9) has its seq appended to the
//! lane file of P, `QUEUE/lane-P`; plain messages (priority 0) have none, their
//! order is the slots' own. A delivery scan ([`crate::store::Scan::Delivery`])
//! reads lanes 9 to 1 from their cursors, then the slots from the pending
//! cursor, so a pop reads the entries and slots of the messages it looks at
//! and no others, however many wait in the other lanes.
//!
//! ```text
//! lane-P: | SPLN | P u8 | 0 x 3 | epoch u64 | seq u64 | seq u64 | ... |
//!         +0     +4     +5      +8          +16       +24
//! ```
//! Entry `k` is at `16 + 8k`; the header keeps how many entries each lane
//! holds (`len`) and the first that may be pending (`cursor`), and the
//! epoch every lane file must carry (`crate::store::fs::index`, header
//! version 3).
//!
//! Invariants:
//! * A lane's entries are strictly increasing seqs of messages of its
//!   priority, in push order; entries before the cursor are of messages
//!   that are not pending (a `retry` that makes one pending again moves the
//!   cursor back to it).
//! * The lanes only order delivery, they never decide it: the slots' scan
//!   that follows them visits every pending message the lanes did not, so
//!   a message missing from its lane (a lane lost, or made again while
//!   its message was on the way) is served in seq order, never lost.
//! * Written like the slots: entries after the records they name are
//!   synced and before the live header that counts them (push step 3),
//!   synced at every checkpoint before the checkpoint header, appended
//!   again by adoption (recovery), made again from the slots by
//!   `fsck --repair` and whenever a lane file does not carry the header's
//!   epoch or holds an entry that does not fit (a handle that may not
//!   write reads the slots instead, in priority order, and says so).

use super::FsStore;
use crate::base::error::{Error, IoContext, Result};
use crate::base::io::{FileIo, Open};
use crate::store::fs::index::{LANES, Lane};
use crate::store::fs::record::u64_at;
use crate::store::fs::segment::{self, sync_dir};
use crate::store::{Meta, State, Step};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

const LANE_MAGIC: [u8; 4] = *b"SPLN";
/// Length of a lane file's header: where its first entry is.
const LANE_HEAD: u64 = 16;
/// Entries read at a time by a scan.
const LANE_CHUNK: usize = 512;

/// Where entry `k` of a lane file is.
fn entry_offset(k: u64) -> u64 {
    LANE_HEAD + 8 * k
}

/// The header of the lane file of priority `p` for `epoch`.
fn lane_head(p: u8, epoch: u64) -> [u8; LANE_HEAD as usize] {
    let mut h = [0u8; LANE_HEAD as usize];
    h[0..4].copy_from_slice(&LANE_MAGIC);
    h[4] = p;
    h[8..16].copy_from_slice(&epoch.to_le_bytes());
    h
}

/// The lane files a store has opened, and whether each was checked
/// against the header by this handle.
#[derive(Default)]
pub(super) struct LaneFiles {
    files: [Option<Arc<dyn FileIo>>; LANES],
    checked: [bool; LANES],
    /// The lanes were found damaged on a handle that may not write: a
    /// delivery scan reads the slots instead.
    untrusted: bool,
}

/// Why a lane cannot be read as the header says.
struct Damaged(String);

/// What [`FsStore::append_lane`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Appended {
    Appended,
    /// Made every lane again instead (or, on a handle that may not write,
    /// marked them untrusted).
    Remade,
}

impl FsStore {
    fn lane_path(&self, p: u8) -> PathBuf {
        self.dir.join(format!("lane-{p}"))
    }

    fn lane_of(&self, p: u8) -> Lane {
        self.h.lanes[usize::from(p) - 1]
    }

    /// The lane file of `p`, opened on first use (made with `create`: its
    /// directory entry synced, so a checkpoint that syncs it keeps it).
    fn lane_io(&mut self, p: u8, create: bool) -> Result<Option<Arc<dyn FileIo>>> {
        let i = usize::from(p) - 1;
        if let Some(f) = &self.lanes.files[i] {
            return Ok(Some(Arc::clone(f)));
        }
        let path = self.lane_path(p);
        let f = match self.fs.open(&path, Open::Existing) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let f = segment::open_file(&*self.fs, &path, Open::OrCreate)?;
                sync_dir(&*self.fs, &self.dir)?;
                f
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        self.lanes.files[i] = Some(Arc::clone(&f));
        Ok(Some(f))
    }

    /// Checks once per handle that lane `p`'s file carries the header's
    /// epoch and holds `len` entries.
    fn check_lane(&mut self, p: u8) -> Result<std::result::Result<(), Damaged>> {
        let i = usize::from(p) - 1;
        let lane = self.lane_of(p);
        if self.lanes.checked[i] || lane.len == 0 {
            return Ok(Ok(()));
        }
        let path = self.lane_path(p);
        let Some(f) = self.lane_io(p, false)? else {
            return Ok(Err(Damaged(format!("{}: missing", path.display()))));
        };
        if let Some((offset, what)) = mismatch(&*f, &path, p, self.h.lanes_epoch, lane)? {
            let at = path.display();
            return Ok(Err(Damaged(format!("{at}: offset {offset}: {what}"))));
        }
        self.lanes.checked[i] = true;
        Ok(Ok(()))
    }

    /// Push step 3: appends the seqs of the messages pushed with a priority
    /// (`ranked`: priority and seq, in seq order) to their lanes, and counts
    /// them in the header (in memory; the live header that follows
    /// publishes them).
    pub(super) fn put_lanes(&mut self, ranked: &[(u8, u64)]) -> Result<()> {
        for p in 1..=crate::store::MAX_PRIORITY {
            let seqs: Vec<u64> = ranked
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, s)| *s)
                .collect();
            if seqs.is_empty() {
                continue;
            }
            if self.append_lane(p, &seqs)? == Appended::Remade {
                break;
            }
        }
        Ok(())
    }

    /// Appends `seqs` to lane `p`, or, if that lane does not match the
    /// header, makes every lane again from the slots instead: those of the
    /// messages being pushed (or adopted) are written by then, so the lanes
    /// made again hold them already.
    fn append_lane(&mut self, p: u8, seqs: &[u64]) -> Result<Appended> {
        if let Err(Damaged(why)) = self.check_lane(p)? {
            // A handle that may not write leaves the file as it found it.
            self.remake_lanes(&why)?;
            return Ok(Appended::Remade);
        }
        let i = usize::from(p) - 1;
        if self.h.lanes_epoch == 0 {
            self.h.lanes_epoch = crate::store::new_salt()?;
        }
        let f = self
            .lane_io(p, true)?
            .ok_or_else(|| Error::Runtime("lane file".into()))?;
        let path = self.lane_path(p);
        let lane = self.lane_of(p);
        let mut buf = Vec::with_capacity(LANE_HEAD as usize + 8 * seqs.len());
        let at = if lane.len == 0 {
            // A lane that starts (again) takes the header's epoch.
            buf.extend_from_slice(&lane_head(p, self.h.lanes_epoch));
            0
        } else {
            entry_offset(lane.len)
        };
        for s in seqs {
            buf.extend_from_slice(&s.to_le_bytes());
        }
        f.write_all_at(&buf, at).ctx("write", &path)?;
        self.lanes.checked[i] = true;
        self.h.lanes[i].len += seqs.len() as u64;
        Ok(Appended::Appended)
    }

    /// A message of priority `p` pushed as `seq`, found by recovery past
    /// the committed length: appended to its lane unless already there.
    pub(super) fn adopt_lane(&mut self, p: u8, seq: u64) -> Result<()> {
        let lane = self.lane_of(p);
        if lane.len > 0 && self.lane_entry(p, lane.len - 1)? >= Some(seq) {
            return Ok(());
        }
        self.append_lane(p, &[seq]).map(|_| ())
    }

    /// Forgets what this handle learnt of the lane files (a push undone
    /// puts the header back as it was).
    pub(super) fn forget_lanes(&mut self) {
        self.lanes = LaneFiles::default();
    }

    /// Entry `k` of lane `p` (`None` past the file's end).
    fn lane_entry(&mut self, p: u8, k: u64) -> Result<Option<u64>> {
        let Some(f) = self.lane_io(p, false)? else {
            return Ok(None);
        };
        let mut b = [0u8; 8];
        let n = segment::read_at_most(&*f, &self.lane_path(p), &mut b, entry_offset(k))?;
        Ok((n == 8).then(|| u64::from_le_bytes(b)))
    }

    /// A message of priority `p` made pending again (`retry`): its lane's
    /// cursor moves back to it (found by bisection among the entries before
    /// the cursor; one at or after the cursor needs no move; to the lane's
    /// start if an entry cannot be read, which is never wrong, only slower).
    pub(super) fn reopen_lane(&mut self, p: u8, seq: u64) -> Result<()> {
        let lane = self.lane_of(p);
        let (mut lo, mut hi) = (0, lane.cursor.min(lane.len));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.lane_entry(p, mid)? {
                Some(s) if s < seq => lo = mid + 1,
                Some(_) => hi = mid,
                None => {
                    self.h.lanes[usize::from(p) - 1].cursor = 0;
                    return Ok(());
                }
            }
        }
        // `lo` is the first entry before the cursor not below `seq`: the
        // message's own, or the cursor itself if it is not among them.
        let i = usize::from(p) - 1;
        self.h.lanes[i].cursor = lo.min(lane.cursor);
        Ok(())
    }

    /// Syncs the lane files that hold entries (a checkpoint, before its
    /// header).
    pub(super) fn sync_lanes(&mut self) -> Result<()> {
        for p in 1..=crate::store::MAX_PRIORITY {
            if self.lane_of(p).len == 0 {
                continue;
            }
            if let Some(f) = self.lane_io(p, false)? {
                f.sync_data().ctx("sync", &self.lane_path(p))?;
            }
        }
        Ok(())
    }

    /// Makes every lane again from the slots (a new epoch), said in a
    /// notice with `why`; on a handle that may not write, the delivery
    /// scans of this handle read the slots instead.
    pub(super) fn remake_lanes(&mut self, why: &str) -> Result<()> {
        if !self.writable {
            if !self.lanes.untrusted {
                self.notices.push(format!(
                    "{why}; pops read the messages' priorities from the index slots until `spoolmq fsck --repair` or the next command that writes"
                ));
            }
            self.lanes.untrusted = true;
            return Ok(());
        }
        let from = self.h.segments.first().map_or(self.h.next_seq, |s| s.base);
        let by_lane = self.slots_by_lane(from, State::is_live)?;
        let had = self.h.lanes.iter().any(|l| l.len > 0);
        if !had && by_lane.iter().all(Vec::is_empty) {
            // No priority anywhere: nothing to make, nothing to say.
            return Ok(());
        }
        let epoch = crate::store::new_salt()?;
        for (i, seqs) in by_lane.iter().enumerate() {
            let p = i as u8 + 1;
            let path = self.lane_path(p);
            let f = match self.lane_io(p, !seqs.is_empty())? {
                Some(f) => f,
                None => {
                    self.h.lanes[i] = Lane::default();
                    continue;
                }
            };
            let mut buf = lane_head(p, epoch).to_vec();
            for s in seqs {
                buf.extend_from_slice(&s.to_le_bytes());
            }
            f.set_len(0).ctx("truncate", &path)?;
            f.write_all_at(&buf, 0).ctx("write", &path)?;
            f.sync_data().ctx("sync", &path)?;
            self.h.lanes[i] = Lane {
                len: seqs.len() as u64,
                cursor: 0,
            };
            self.lanes.checked[i] = true;
        }
        self.h.lanes_epoch = epoch;
        self.dirty = true;
        self.notices.push(format!(
            "{why}; made the lanes of priorities 1-9 again from the index slots"
        ));
        Ok(())
    }

    /// The seqs of the messages of each priority 1 to 9 from `from` on
    /// whose state is `wanted`, in seq order, as the slots say.
    fn slots_by_lane(&self, from: u64, wanted: fn(State) -> bool) -> Result<Vec<Vec<u64>>> {
        let mut by_lane: Vec<Vec<u64>> = vec![Vec::new(); LANES];
        self.all_slots(from, &mut |_, slot| {
            if let Ok(m) = slot
                && m.priority > 0
                && wanted(m.state)
            {
                by_lane[usize::from(m.priority) - 1].push(m.seq);
            }
            Step::Continue
        })?;
        Ok(by_lane)
    }

    /// `fsck --repair`, after the slots are rebuilt (with a header that
    /// has no lanes): the lanes made again from them, and checkpointed.
    pub(super) fn repair_lanes(&mut self) -> Result<()> {
        self.remake_lanes("the index was rebuilt")?;
        if self.dirty {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// The first part of a delivery scan: lanes 9 to 1 from their cursors,
    /// each message's slot visited if it is pending, each cursor moved past
    /// the finished messages at its front. Returns the seqs visited (the
    /// slots' scan that follows skips them), or `None` if `visit` said stop.
    pub(super) fn scan_lanes(
        &mut self,
        visit: &mut dyn FnMut(&Meta) -> Step,
    ) -> Result<Option<HashSet<u64>>> {
        let mut seen = HashSet::new();
        if self.lanes.untrusted {
            return self.scan_lanes_from_slots(visit, seen);
        }
        for p in (1..=crate::store::MAX_PRIORITY).rev() {
            if let Err(Damaged(why)) = self.check_lane(p)? {
                self.remake_lanes(&why)?;
                if self.lanes.untrusted {
                    return self.scan_lanes_from_slots(visit, seen);
                }
            }
            match self.scan_lane(p, visit, &mut seen)? {
                Ok(Step::Stop) => return Ok(None),
                Ok(Step::Continue) => {}
                Err(Damaged(why)) => {
                    // Made again; this lane is read once more from its start
                    // (`seen` keeps what was visited from being visited twice).
                    self.remake_lanes(&why)?;
                    if self.lanes.untrusted {
                        return self.scan_lanes_from_slots(visit, seen);
                    }
                    if let Ok(Step::Stop) = self.scan_lane(p, visit, &mut seen)? {
                        return Ok(None);
                    }
                }
            }
        }
        Ok(Some(seen))
    }

    fn scan_lane(
        &mut self,
        p: u8,
        visit: &mut dyn FnMut(&Meta) -> Step,
        seen: &mut HashSet<u64>,
    ) -> Result<std::result::Result<Step, Damaged>> {
        let i = usize::from(p) - 1;
        let lane = self.lane_of(p);
        if lane.cursor >= lane.len {
            return Ok(Ok(Step::Continue));
        }
        let Some(f) = self.lane_io(p, false)? else {
            return Ok(Err(Damaged(format!(
                "{}: missing",
                self.lane_path(p).display()
            ))));
        };
        let path = self.lane_path(p);
        let mut k = lane.cursor;
        let mut cursor = lane.cursor;
        let mut front = true;
        let mut prev = 0;
        let mut buf = vec![0u8; LANE_CHUNK * 8];
        let mut step = Step::Continue;
        'read: while k < lane.len {
            let want = ((lane.len - k) as usize).min(LANE_CHUNK) * 8;
            let n = segment::read_at_most(&*f, &path, &mut buf[..want], entry_offset(k))?;
            if n < want {
                return Ok(Err(Damaged(format!(
                    "{}: offset {}: cut short",
                    path.display(),
                    entry_offset(k) + n as u64
                ))));
            }
            for e in buf[..want].chunks_exact(8) {
                let seq = u64_at(e, 0);
                let at = entry_offset(k);
                if seq <= prev || seq >= self.h.next_seq {
                    return Ok(Err(Damaged(format!(
                        "{}: offset {at}: entry {seq} is out of order",
                        path.display()
                    ))));
                }
                prev = seq;
                let m = match self.get_slot(seq)? {
                    Some(m) if m.priority != p => {
                        return Ok(Err(Damaged(format!(
                            "{}: offset {at}: message {seq} is not of priority {p}",
                            path.display()
                        ))));
                    }
                    Some(m) => m,
                    // Its slot punched (reclaimed) or damaged: not served here.
                    None => {
                        k += 1;
                        if front {
                            cursor = k;
                        }
                        continue;
                    }
                };
                k += 1;
                if !m.state.is_pending() {
                    if front {
                        cursor = k;
                    }
                    continue;
                }
                front = false;
                if seen.insert(m.seq) && visit(&m) == Step::Stop {
                    step = Step::Stop;
                    break 'read;
                }
            }
        }
        if cursor != lane.cursor {
            self.h.lanes[i].cursor = cursor;
            self.dirty = true;
        }
        Ok(Ok(step))
    }

    /// A delivery scan's lanes read from the slots (a handle that may not
    /// write, whose lanes are damaged): priorities 9 to 1, each a walk of
    /// the pending slots.
    fn scan_lanes_from_slots(
        &mut self,
        visit: &mut dyn FnMut(&Meta) -> Step,
        mut seen: HashSet<u64>,
    ) -> Result<Option<HashSet<u64>>> {
        for p in (1..=crate::store::MAX_PRIORITY).rev() {
            let mut stop = false;
            self.all_slots(self.h.scan_lo, &mut |_, slot| {
                if let Ok(m) = slot
                    && m.priority == p
                    && m.state.is_pending()
                    && seen.insert(m.seq)
                    && visit(&m) == Step::Stop
                {
                    stop = true;
                    return Step::Stop;
                }
                Step::Continue
            })?;
            if stop {
                return Ok(None);
            }
        }
        Ok(Some(seen))
    }
}

/// Where and why lane file `f` of priority `p` is not the one a header
/// with `epoch` and `lane` names: its head must carry the epoch, and the
/// file hold `lane.len` entries. `None`: it is.
fn mismatch(
    f: &dyn FileIo,
    path: &std::path::Path,
    p: u8,
    epoch: u64,
    lane: Lane,
) -> Result<Option<(u64, String)>> {
    let mut head = [0u8; LANE_HEAD as usize];
    let n = segment::read_at_most(f, path, &mut head, 0)?;
    if n < head.len() || head != lane_head(p, epoch) {
        return Ok(Some((0, "not the lane file this index names".into())));
    }
    let size = f.len().ctx("stat", path)?;
    if size < entry_offset(lane.len) {
        let held = size.saturating_sub(LANE_HEAD) / 8;
        let what = format!("cut short ({held} entries of {})", lane.len);
        return Ok(Some((size, what)));
    }
    Ok(None)
}

/// `fsck`: what is wrong with the lanes of `store` (file, offset, what),
/// read without changing anything: each lane file must carry the header's
/// epoch and hold its `len` entries, in order, each of a message of its
/// priority, and every pending message of a priority must be in its lane
/// at or after the cursor. (A message its lane misses is still served,
/// after the lanes: a problem of order, which `fsck --repair` mends.)
pub(super) fn check(store: &FsStore) -> Result<Vec<(PathBuf, u64, String)>> {
    let h = store.header();
    let mut problems = Vec::new();
    let pending: Vec<HashSet<u64>> = (store.slots_by_lane(h.scan_lo, State::is_pending)?)
        .into_iter()
        .map(|seqs| seqs.into_iter().collect())
        .collect();
    for p in 1..=crate::store::MAX_PRIORITY {
        let i = usize::from(p) - 1;
        let lane = h.lanes[i];
        let path = store.lane_path(p);
        let mut listed = HashSet::new();
        if lane.len > 0 {
            match lane_entries(store, p, &path)? {
                Err((offset, what)) => problems.push((path.clone(), offset, what)),
                Ok(entries) => {
                    let mut prev = 0;
                    for (j, &seq) in entries.iter().enumerate() {
                        let k = lane.cursor + j as u64;
                        let at = entry_offset(k);
                        let wrong = if seq <= prev || seq >= h.next_seq {
                            Some(format!("entry {seq} is out of order"))
                        } else {
                            match store.read_slot(seq)? {
                                Ok(m) if m.priority != p => {
                                    Some(format!("message {seq} is not of priority {p}"))
                                }
                                _ => None,
                            }
                        };
                        prev = seq;
                        if let Some(what) = wrong {
                            problems.push((path.clone(), at, what));
                            break;
                        }
                        listed.insert(seq);
                    }
                }
            }
        }
        let mut missing: Vec<u64> = pending[i].difference(&listed).copied().collect();
        missing.sort_unstable();
        if let Some(first) = missing.first() {
            problems.push((
                path.clone(),
                entry_offset(lane.len),
                format!(
                    "{} pending message(s) of priority {p} are not in this lane (the first: {}); they are served after the lanes",
                    missing.len(),
                    crate::model::ids::format_id(*first, h.salt)
                ),
            ));
        }
    }
    Ok(problems)
}

/// The entries of lane `p` from its cursor to its `len`, or where and why
/// its file does not hold them.
fn lane_entries(
    store: &FsStore,
    p: u8,
    path: &std::path::Path,
) -> Result<std::result::Result<Vec<u64>, (u64, String)>> {
    let lane = store.header().lanes[usize::from(p) - 1];
    let f = match store.fs.open(path, Open::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err((0, "missing".into())));
        }
        Err(e) => return Err(Error::io("open", path, e)),
    };
    if let Some(fault) = mismatch(&*f, path, p, store.header().lanes_epoch, lane)? {
        return Ok(Err(fault));
    }
    let mut entries = Vec::new();
    let mut buf = vec![0u8; LANE_CHUNK * 8];
    let mut k = lane.cursor.min(lane.len);
    while k < lane.len {
        let want = ((lane.len - k) as usize).min(LANE_CHUNK) * 8;
        segment::read_at_most(&*f, path, &mut buf[..want], entry_offset(k))?;
        entries.extend(buf[..want].chunks_exact(8).map(|e| u64_at(e, 0)));
        k += (want / 8) as u64;
    }
    Ok(Ok(entries))
}
