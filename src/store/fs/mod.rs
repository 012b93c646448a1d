//! The file store: one queue as segment files plus an index, and the order in
//! which every byte is written and synced. This is the one place to read to
//! know why an acknowledged change survives a crash.
//!
//! Files (formats: [`crate::store::fs::record`] for segments, [`crate::store::fs::index`] for the rest):
//!
//! ```text
//! QUEUE/lock      flock held for the whole critical section (crate::base::lock)
//! QUEUE/index     live header (regions 0/1) + checkpoint header (regions 2/3)
//! QUEUE/slots     64-byte slot per message at seq * 64: its state
//! QUEUE/wal       write-ahead log of state changes since the last checkpoint
//! QUEUE/<base>.seg  message records, append-only, rolled at 64 MiB
//! QUEUE/key       only in an encrypted queue: the id of its key (crate::model::crypt)
//! QUEUE/reserve   RESERVE_LEN bytes kept allocated for draining a full disk
//! QUEUE/failures  once a message failed: the last failure of each message (failures.rs)
//! QUEUE/holds     once a keyed message was pushed: the hold of each unique key (holds.rs)
//! QUEUE/lane-P    once a message was pushed with priority P (1-9): their seqs in order (lanes.rs)
//! ```
//!
//! `key` is written once and never changes: its layout and write order
//! are in [`key`].
//!
//! ## Source of truth
//! The segments are the truth for *which messages exist*; the WAL (replayed
//! over the checkpointed slots) is the truth for *what state each is in*. The
//! live header and the slots written since the last checkpoint are a cache
//! that is exact while the machine stays up: after a process crash the page
//! cache still holds them; after a machine crash (a different kernel boot id
//! in the live header) they are rebuilt from the checkpoint.
//!
//! The slots file is stamped (slot 0, [`crate::store::fs::index`]) with the generation
//! of each header written over it, the checkpoint's synced with the slots
//! before the checkpoint header. A slots file stamped older than the header
//! it is opened with (a copy put back), shorter than its messages (lost,
//! cut), or a damaged slot met while the queue is open for writing, makes
//! that command rebuild every slot ([`FsStore::reconcile`], [`resolve`])
//! from the WAL, the slots it can still trust, the segments and the
//! header's counters, then checkpoint. A handle that may not write reports
//! it instead.
//!
//! ## Write order
//! **push** (durable at return):
//! 1. if the active segment is full: fsync it, create the next one
//!    (`O_EXCL`, header, fsync, fsync the directory);
//! 2. append the records; write their slots (past `next_seq`, so no reader
//!    trusts them yet);
//! 3. `fdatasync` the segment(s); write the holds of keyed messages
//!    ([`holds`]: not synced, redone by adoption) and the lane entries of
//!    prioritised ones ([`lanes`]: likewise);
//! 4. write the live header: new `next_seq`, counters, committed length.
//!
//! A crash before 4 leaves records past the committed length: the next
//! command *adopts* every whole record there (and truncates a torn tail),
//! so a push is either entirely visible or (if it never reached step 3 for
//! a record) that record is gone; nothing half-written is ever served.
//!
//! **pop, ack, nack, extend, retry, purge** (a set of state changes):
//! 1. append one CRC'd WAL record holding every new slot and each old state;
//! 2. `fdatasync` the WAL: a slot may only be overwritten once the record
//!    that can redo it is durable, or a torn slot write in a machine crash
//!    could not be repaired (the power-loss tests found this for `pop`,
//!    which once skipped the sync);
//! 3. write the slots in place (and the holds of keyed messages that are
//!    done, [`holds`]: redone by WAL replay);
//! 4. write the live header (counters, lsn, WAL length).
//!
//! A crash after 1 and before 4 is repaired by replaying the WAL records past
//! the header's lsn; a torn WAL record (crash during 1) was never reported
//! done and is cut off.
//!
//! **checkpoint** (when the WAL passes 1 MiB, a segment rolls, or a segment
//! has nothing live left):
//! 1. `fdatasync` the slots (and the holds and lane files);
//! 2. write the checkpoint header into the older checkpoint region, `fdatasync`;
//! 3. truncate the WAL to 0, `fdatasync`;
//! 4. unlink segments with nothing live (and strays), fsync the directory;
//! 5. punch the slots of reclaimed segments out of `slots`.
//!
//! **repair** (`fsck --repair`, [`rebuild()`]): a `repairing` marker is made
//! durable first; damaged records are copied to `quarantine/` and each
//! damaged segment is rewritten (temporary file, fsync, rename, directory
//! fsync); the slots and headers are rebuilt and synced, the WAL emptied;
//! then the marker is removed. An open that finds the marker finishes the
//! repair before anything else.
//!
//! ## Recovery (every open, under the lock)
//! * Live header valid, written in this boot and after the newest
//!   checkpoint: trust it; replay WAL records past its `wal_len`; adopt
//!   records past the committed length.
//! * Otherwise (machine crash): start from the checkpoint header, adopt every
//!   record past its committed length (READY), then replay the whole WAL
//!   (records with lsn above the checkpoint's), then checkpoint.
//! * Never append after bytes that may end in half a record: an active
//!   segment found shorter than its committed length is left as it is and
//!   pushes continue in a new segment; adoption cuts everything after the
//!   last whole record it adopts.
//! * A lost `wal` file is recreated empty (and reported), a lost or stale
//!   `slots` file rebuilt (see "Source of truth"); a lost `index` with
//!   segments left is an error until `fsck --repair`.
//! * Only a handle opened to write ([`FsStore::open_access`]) cuts a torn
//!   WAL tail, rebuilds slots or checkpoints; the WAL is read in bounded
//!   chunks ([`read_wal`](wal::read_wal)) whatever its length.
//!
//! ## A full disk
//! `reserve` holds [`RESERVE_LEN`](reserve::RESERVE_LEN) allocated bytes that pushes cannot use.
//! A WAL append that fails for want of space checkpoints (truncating the
//! WAL, after the checkpoint header is durable, as always), then truncates
//! the reserve, and tries again; the reserve is filled again by a later
//! command that finds room. Its contents never matter, so it needs no sync.
//! A queue with nothing live while its reserve is short gives back its
//! active segment at the checkpoint (reclaim, after the checkpoint header
//! that still names it with nothing live; recovery takes a missing segment
//! with nothing live for one reclaimed).
//!
//! ## Where each part is
//! | File | What it does |
//! |---|---|
//! | `mod.rs` | [`FsStore`], the seam's calls ([`Store`]), the files' paths |
//! | `open.rs` | opening (and creating) a queue: lock, lost files, an interrupted repair |
//! | `recover.rs` | recovery: the header to trust, adopting records past the committed length, WAL replay |
//! | `wal.rs` | reading the WAL in bounded chunks |
//! | `write.rs` | push (steps 1-4 above) |
//! | `commit.rs` | a set of state changes (steps 1-4 above) |
//! | `checkpoint.rs` | header writes and the checkpoint |
//! | `reclaim.rs` | unlinking segments with nothing live, punching their slots |
//! | `reserve.rs` | the space kept for a full disk |
//! | `read.rs` | scans, slots, bodies |
//! | `reconcile.rs` | rebuilding lost or stale slots on open |
//! | `resolve.rs` | the state of each message whose slot is lost (for reconcile and rebuild) |
//! | `rebuild.rs` | `fsck --repair` |
//! | `restore.rs` | `migrate` into a new queue |
//! | `key.rs` | the key id file |
//! | `failures.rs` | the failures file: its format, reading, appending, compacting |
//! | `holds.rs` | the holds file: the unique keys' hash table, its format and writes |
//! | `lanes.rs` | the lane files: the seqs of each priority, so a pop reaches the most urgent at once |
//! | `moves.rs` | `retry --to`: moving messages into another queue, its journal `SPOOL/.moving` |
//! | `check.rs` | `fsck` (reads only) |
//! | `record.rs`, `segment.rs`, `index.rs` | the formats |

pub(crate) mod check;
mod checkpoint;
mod commit;
mod failures;
mod groups;
pub mod holds;
mod lanes;
#[cfg(test)]
pub(crate) use failures::{COMPACT_MIN as FAILURES_COMPACT_MIN, TEST_COMPACT_MIN};
#[cfg(test)]
pub(crate) use holds::TEST_MIN_BITS;
pub mod index;
mod key;
pub mod moves;
mod open;
mod read;
mod rebuild;
mod reclaim;
mod reconcile;
pub mod record;
mod recover;
mod reserve;
mod resolve;
mod restore;
pub mod segment;
mod wal;
mod write;

pub(crate) use key::{bodies_opening_with, key_record, restore_key_record};
pub(crate) use rebuild::rebuild;

use crate::base::error::Result;
use crate::base::io::{FileIo, Fs, Open};
use crate::model::crypt::KeyId;
use crate::model::failure::Failure;
use crate::store::fs::index::Header;
use crate::store::{
    Change, Counters, Hold, Incoming, Meta, NewMessage, Scan, Step, Store, Target, UniqueKey,
};
use key::write_key_id;
use reserve::RESERVE;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Segments roll over past this size (docs/FORMAT.md says why 64 MiB).
pub const SEGMENT_LIMIT: u64 = 64 * 1024 * 1024;

#[cfg(test)]
thread_local! {
    /// Unit tests shrink segments to exercise roll-over and reclaim cheaply.
    pub(crate) static TEST_SEGMENT_LIMIT: std::cell::Cell<u64> = const { std::cell::Cell::new(SEGMENT_LIMIT) };
}

fn segment_limit() -> u64 {
    #[cfg(test)]
    {
        TEST_SEGMENT_LIMIT.with(|l| l.get())
    }
    #[cfg(not(test))]
    {
        static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        *LIMIT.get_or_init(|| crate::base::failpoint::segment_bytes().unwrap_or(SEGMENT_LIMIT))
    }
}

/// Slots read per pread during a scan.
const SCAN_CHUNK: u64 = 256;

/// The spool a queue directory is in: the directory the I/O seam is rooted at.
fn spool_of(dir: &Path) -> &Path {
    dir.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn create_file(fs: &dyn Fs, path: &Path) -> Result<Arc<dyn FileIo>> {
    segment::open_file(fs, path, Open::OrCreate)
}

/// One queue in the file store, open and locked.
pub struct FsStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    index: Arc<dyn FileIo>,
    slots: Arc<dyn FileIo>,
    wal: Arc<dyn FileIo>,
    h: Header,
    boot: [u8; 16],
    /// The checkpoint region (2 or 3) the next checkpoint goes to.
    next_ckpt_region: usize,
    /// Segment files opened so far (base → file).
    files: HashMap<u64, Arc<dyn FileIo>>,
    /// The header changed in memory (cursor moved) and is not yet written.
    dirty: bool,
    /// A write failed after the change was durable: the in-memory header may
    /// be ahead of the files, so nothing more is written by this handle.
    poisoned: bool,
    notices: Vec<String>,
    /// Files that were missing when the queue was opened (recreated empty).
    missing: Vec<PathBuf>,
    /// What `key` holds (see the top of this file).
    key_id: Option<KeyId>,
    /// Whether this handle may write (a command that changes the queue).
    /// One that only reads never writes what recovery finds (a torn WAL
    /// tail, slots to rebuild): it works from memory and reports.
    writable: bool,
    /// The lsn of the newest checkpoint: WAL records above it are newer
    /// than anything the checkpointed slots hold.
    ckpt_lsn: u64,
    /// The slots were rebuilt by this handle ([`FsStore::reconcile`]):
    /// done at most once per command.
    reconciled: bool,
    /// Why the slots file cannot be trusted, while it is not rebuilt (only
    /// on a handle that may not write).
    suspect: Option<String>,
    /// See [`FsStore::committed_wal_len`].
    wal_committed: u64,
    /// The reserve (see [`reserve::RESERVE_LEN`]) is not whole: the disk is or was full.
    reserve_short: bool,
    /// The failures file ([`failures`]), read on first use.
    failures: Option<failures::FailLog>,
    /// The holds file ([`holds`]), opened on first use.
    hold_table: Option<holds::HoldTable>,
    /// The lane files ([`lanes`]), opened on first use.
    lanes: lanes::LaneFiles,
    /// The groups cache ([`groups`]), opened on first use.
    group_cache: Option<Arc<dyn FileIo>>,
    /// The target of a move ([`moves`]), open and locked.
    target: Option<Box<FsStore>>,
    // Held last: dropped after everything above is written.
    _lock: Box<dyn Send>,
}

impl FsStore {
    fn index_path(&self) -> PathBuf {
        self.dir.join("index")
    }

    fn slots_path(&self) -> PathBuf {
        self.dir.join("slots")
    }

    fn wal_path(&self) -> PathBuf {
        self.dir.join("wal")
    }

    // What fsck (`check.rs`) reads of an open store: private to this
    // module, which its child `check` sees.

    /// The header as of now (for fsck).
    fn header(&self) -> &Header {
        &self.h
    }

    /// Why the slots file cannot be trusted as it is, on a handle that may
    /// not write and so did not rebuild it (for fsck).
    fn slots_suspect(&self) -> Option<&str> {
        self.suspect.as_deref()
    }

    /// The WAL length the header says was committed when the queue was
    /// opened (0 after a machine crash): damage below it is damage to
    /// changes reported done, past it a change that never finished.
    fn committed_wal_len(&self) -> u64 {
        self.wal_committed
    }

    /// Files that were missing when the queue was opened (for fsck).
    fn missing_files(&self) -> &[PathBuf] {
        &self.missing
    }
}

/// The seam's calls; each is done in the file of its concern (see the
/// module doc), the small ones here.
impl Store for FsStore {
    fn restore(
        &mut self,
        salt: u64,
        next_seq: u64,
        counters: Counters,
        metas: &[Meta],
        body: &mut dyn FnMut(&Meta) -> Result<crate::store::Restored>,
        holds: &[(UniqueKey, Hold)],
    ) -> Result<()> {
        self.restore_messages(salt, next_seq, counters, metas, body)?;
        if !holds.is_empty() {
            self.set_holds(holds)?;
            self.checkpoint()?;
        }
        Ok(())
    }

    fn push(&mut self, msgs: &mut dyn Iterator<Item = Result<NewMessage<'_>>>) -> Result<Vec<u64>> {
        self.push_or_undo(msgs)
    }

    fn scan(&mut self, from: Scan, visit: &mut dyn FnMut(&Meta) -> Step) -> Result<()> {
        self.scan_slots(from, visit)
    }

    fn get(&mut self, seq: u64) -> Result<Option<Meta>> {
        self.get_meta(seq)
    }

    fn get_each(&mut self, seqs: &[u64]) -> Result<Vec<Option<Meta>>> {
        self.get_metas(seqs)
    }

    fn body(&mut self, meta: &Meta) -> Result<Vec<u8>> {
        self.read_body(meta)
    }

    fn bodies(&mut self, metas: &[Meta]) -> Vec<Result<Vec<u8>>> {
        self.read_bodies(metas)
    }

    fn ttl_ms(&mut self, meta: &Meta) -> Result<u64> {
        if !meta.loc.long {
            return Ok(0);
        }
        Ok(self.read_header(meta)?.ttl_ms)
    }

    fn hold(&mut self, key: &UniqueKey) -> Result<Option<Hold>> {
        self.find_hold(key)
    }

    fn grouped(&mut self) -> Result<bool> {
        self.had_groups()
    }

    fn unique(&mut self, meta: &Meta) -> Result<Option<(UniqueKey, u64)>> {
        if !meta.keyed {
            return Ok(None);
        }
        Ok(self.read_header(meta)?.unique)
    }

    fn holds(&mut self, visit: &mut dyn FnMut(&UniqueKey, &Hold)) -> Result<()> {
        self.every_hold(visit)
    }

    fn commit(&mut self, changes: &[Change]) -> Result<()> {
        self.commit_changes(changes)
    }

    fn counters(&self) -> Counters {
        self.h.counters
    }

    fn salt(&self) -> u64 {
        self.h.salt
    }

    fn next_seq(&self) -> u64 {
        self.h.next_seq
    }

    fn key_id(&self) -> Option<KeyId> {
        self.key_id
    }

    fn set_key_id(&mut self, id: Option<KeyId>) -> Result<()> {
        write_key_id(&*self.fs, &self.dir, id)?;
        self.key_id = id;
        Ok(())
    }

    fn segments(&self) -> u64 {
        self.h.segments.len() as u64
    }

    fn disk_bytes(&mut self) -> Result<u64> {
        let mut total = 0;
        let mut paths = vec![
            self.index_path(),
            self.slots_path(),
            self.wal_path(),
            self.dir.join(RESERVE),
            self.dir.join(failures::FILE),
            self.dir.join(holds::FILE),
        ];
        paths.extend(
            self.h
                .segments
                .iter()
                .map(|s| segment::path(&self.dir, s.base)),
        );
        for p in paths {
            if let Ok(m) = std::fs::metadata(&p) {
                use std::os::unix::fs::MetadataExt;
                total += m.blocks() * 512;
            }
        }
        Ok(total)
    }

    fn record_failures(&mut self, items: &[(u64, Failure)]) -> Result<()> {
        self.record_failures_fs(items)
    }

    fn failure(&mut self, seq: u64) -> Result<Option<Failure>> {
        self.fail_log()?.get(seq)
    }

    fn move_target(&mut self, to: &str) -> Result<Target> {
        self.open_move_target(to)
    }

    fn move_out(
        &mut self,
        key_id: Option<Option<KeyId>>,
        msgs: Vec<Incoming<'_>>,
        changes: &[Change],
    ) -> Result<Vec<u64>> {
        self.move_messages(key_id, msgs, changes)
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

impl FsStore {
    /// The failures file, read on first use.
    fn fail_log(&mut self) -> Result<&mut failures::FailLog> {
        let log = match self.failures.take() {
            Some(log) => log,
            None => {
                let log = failures::FailLog::load(&*self.fs, &self.dir)?;
                self.notices.extend(log.notices());
                log
            }
        };
        Ok(self.failures.insert(log))
    }

    /// [`Store::record_failures`]: appended, or, when it is time to look
    /// and most of the file is dead, the live failures and these written as
    /// a new file.
    fn record_failures_fs(&mut self, items: &[(u64, Failure)]) -> Result<()> {
        let mut keep = Vec::new();
        for (seq, f) in items {
            if self.get_slot(*seq)?.is_some_and(|m| m.state.is_live()) {
                keep.push((*seq, f.clone()));
            }
        }
        if keep.is_empty() {
            return Ok(());
        }
        let (fs, dir) = (self.fs.clone(), self.dir.clone());
        if !self.fail_log()?.due_for_a_look(keep.len() as u64) {
            return self.fail_log()?.append(&*fs, &dir, &keep);
        }
        let seqs: Vec<u64> = self.fail_log()?.seqs().collect();
        let mut live = Vec::new();
        for seq in seqs {
            if self.get_slot(seq)?.is_some_and(|m| m.state.is_live()) {
                live.push(seq);
            }
        }
        let log = self.fail_log()?;
        if !log.worth_compacting(live.len() as u64) {
            return log.append(&*fs, &dir, &keep);
        }
        let mut all = Vec::new();
        for seq in live {
            if keep.iter().any(|(s, _)| *s == seq) {
                continue;
            }
            if let Some(f) = log.get(seq)? {
                all.push((seq, f));
            }
        }
        all.extend(keep);
        log.rewrite(&*fs, &dir, &all)
    }
}

impl Drop for FsStore {
    fn drop(&mut self) {
        if self.dirty && !self.poisoned {
            let _ = self.write_live();
        }
    }
}

/// What the unit tests of this module's files share (each takes it with
/// `use crate::store::fs::testing::*`): the helpers, and re-exported names.
#[cfg(test)]
mod testing {
    pub(super) use super::{FsStore, SEGMENT_LIMIT, TEST_SEGMENT_LIMIT, spool_of};
    pub(super) use crate::base::error::{IoContext, Result};
    pub(super) use crate::base::io;
    pub(super) use crate::store::fs::index::{Header, REGION_LEN};
    pub(super) use crate::store::fs::segment;
    pub(super) use crate::store::{Change, Meta, NewMessage, State, Store};
    pub(super) use std::borrow::Cow;
    pub(super) use std::path::{Path, PathBuf};

    pub(super) fn msg(body: &str) -> Result<NewMessage<'_>> {
        Ok(NewMessage {
            body: Cow::Borrowed(body.as_bytes()),
            pushed_at_ms: 1000,
            not_before_ms: 0,
            ttl_ms: 0,
            expires_at_ms: 0,
            unique: None,
            priority: 0,
            group: None,
        })
    }

    pub(super) fn queue_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("q");
        std::fs::create_dir(&dir).unwrap();
        (tmp, dir)
    }

    pub(super) fn open(dir: &Path) -> FsStore {
        FsStore::open(dir, true).unwrap().unwrap()
    }

    pub(super) fn push(s: &mut FsStore, bodies: &[&str]) -> Vec<u64> {
        s.push(&mut bodies.iter().map(|b| msg(b))).unwrap()
    }

    pub(super) fn lease_and_ack(s: &mut FsStore, seq: u64) {
        let m = s.get(seq).unwrap().unwrap();
        let leased = Meta {
            state: State::Leased,
            attempts: 1,
            until_ms: u64::MAX,
            ..m
        };
        s.commit(&[Change {
            old: State::Ready,
            new: leased,
        }])
        .unwrap();
        let acked = Meta {
            state: State::Acked,
            ..leased
        };
        s.commit(&[Change {
            old: State::Leased,
            new: acked,
        }])
        .unwrap();
    }

    pub(super) fn append(path: &Path, bytes: &[u8]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
    }

    /// Test support: makes the live header look as if written before a reboot,
    /// so the next open recovers from the checkpoint, as after a machine crash.
    #[cfg(test)]
    pub(super) fn simulate_reboot(dir: &Path) -> Result<()> {
        let path = dir.join("index");
        let fs = io::RealFs::beneath(spool_of(dir)).ctx("open spool", dir)?;
        let index = segment::open_rw(&fs, &path)?;
        for region in 0..2 {
            let mut buf = vec![0u8; REGION_LEN];
            let n = segment::read_at_most(&*index, &path, &mut buf, (region * REGION_LEN) as u64)?;
            buf.truncate(n);
            if let Some(mut h) = Header::decode(&buf) {
                h.boot_id = [0xee; 16];
                if let Some(bytes) = h.encode() {
                    index
                        .write_all_at(&bytes, (region * REGION_LEN) as u64)
                        .ctx("write", &path)?;
                }
            }
        }
        Ok(())
    }
}
