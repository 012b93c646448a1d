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
//! ```
//!
//! `key` is written once, by the queue's first push, before its records
//! (temporary file, fsync, rename, directory fsync), and never changes:
//!
//! ```text
//! +0        +8            +24
//! | SPMQKEY1| key id 16 B | crc32 of bytes 0..24 (u32 LE) |
//! ```
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
//! 3. `fdatasync` the segment(s);
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
//! 3. write the slots in place;
//! 4. write the live header (counters, lsn, WAL length).
//!
//! A crash after 1 and before 4 is repaired by replaying the WAL records past
//! the header's lsn; a torn WAL record (crash during 1) was never reported
//! done and is cut off.
//!
//! **checkpoint** (when the WAL passes 1 MiB, a segment rolls, or a segment
//! has nothing live left):
//! 1. `fdatasync` the slots;
//! 2. write the checkpoint header into the older checkpoint region, `fdatasync`;
//! 3. truncate the WAL to 0, `fdatasync`;
//! 4. unlink segments with nothing live (and strays), fsync the directory;
//! 5. punch the slots of reclaimed segments out of `slots`.
//!
//! **repair** (`fsck --repair`, [`rebuild`]): a `repairing` marker is made
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
//!   chunks ([`read_wal`]) whatever its length.
//!
//! ## A full disk
//! `reserve` holds [`RESERVE_LEN`] allocated bytes that pushes cannot use.
//! A WAL append that fails for want of space checkpoints (truncating the
//! WAL, after the checkpoint header is durable, as always), then truncates
//! the reserve, and tries again; the reserve is filled again by a later
//! command that finds room. Its contents never matter, so it needs no sync.
//! A queue with nothing live while its reserve is short gives back its
//! active segment at the checkpoint (reclaim, after the checkpoint header
//! that still names it with nothing live; recovery takes a missing segment
//! with nothing live for one reclaimed).

pub mod check;
pub mod index;
pub mod record;
pub mod segment;

use crate::base::error::{Error, IoContext, Result};
use crate::base::failpoint;
use crate::base::io::{self, FileIo, Fs, Open};
use crate::model::crypt::KeyId;
use crate::store::fs::index::{
    Header, REGION_LEN, SLOT_LEN, SegmentEntry, SlotDamage, decode_slot_of, encode_slot,
};
use crate::store::fs::record::RECORD_HEADER_LEN;
use crate::store::fs::segment::{Found, sync_dir};
use crate::store::{Change, Counters, Loc, Meta, NewMessage, Scan, State, Step, Store, new_salt};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Space kept allocated in `QUEUE/reserve` for consuming a queue whose
/// pushes filled the disk: one WAL record of up to 1,000 changes (a
/// `pop --count 1000` or an ack of as many). Pushes cannot use it; a state
/// change that meets a full disk first checkpoints (freeing the WAL), then
/// frees the reserve; a queue drained on a short reserve gives back its
/// last segment too. Refilled by the next command that finds room.
pub const RESERVE_LEN: u64 = 64 * 1024;
/// The reserve's file name in a queue directory.
const RESERVE: &str = "reserve";

/// Whether a write failed for want of space (not a file size limit, which
/// freeing space elsewhere does not lift).
fn no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
}

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
        SEGMENT_LIMIT
    }
}
/// Checkpoint when the WAL grows past this.
const WAL_LIMIT: u64 = 1024 * 1024;
/// Bytes of records buffered before a write during a push. Full chunks are
/// written by a helper thread (io::Appender) and the last one of a push by
/// the pushing thread, so smaller chunks share the work better: 2 MiB gave
/// a 1,000,000-line push a median of 0.22 s against 0.27 s with 4 MiB.
const PUSH_CHUNK: usize = 2 * 1024 * 1024;
/// Slots read per pread during a scan.
const SCAN_CHUNK: u64 = 256;

/// The header in region `i` of the index file, if it is valid. Reads 4 KiB,
/// and the rest of the region only when the header says it is longer.
fn read_header(index: &dyn FileIo, path: &Path, i: usize) -> Result<Option<Header>> {
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

/// The spool a queue directory is in: the directory the I/O seam is rooted at.
pub fn spool_of(dir: &Path) -> &Path {
    dir.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// What [`read_wal`] hands each record to: its offset, its lsn, its entries.
pub type WalVisitor<'a> = dyn FnMut(u64, u64, &[(State, Meta)]) -> Result<()> + 'a;

/// Bytes of the WAL read at a time: memory stays bounded whatever its length.
const WAL_CHUNK: usize = 1 << 20;

/// Reads the WAL from offset `from` to its end in chunks of at most
/// [`WAL_CHUNK`] bytes and hands each whole record to `visit` (its offset,
/// its lsn and its entries; a record longer than a chunk comes in several
/// calls, all made after its CRC and every entry were checked). Returns the
/// offset just past the last whole record and the file's length: whatever
/// lies between them (a record cut by a crash, the zeros of a sparse file,
/// garbage) is a torn tail. Never writes.
pub fn read_wal(
    wal: &dyn FileIo,
    path: &Path,
    from: u64,
    visit: &mut WalVisitor<'_>,
) -> Result<(u64, u64)> {
    use index::{WAL_ENTRY_LEN, WAL_HEAD_LEN};
    let size = wal.len().ctx("stat", path)?;
    let per_chunk = WAL_CHUNK / WAL_ENTRY_LEN;
    let mut buf = Vec::new();
    let mut entries = Vec::new();
    let mut pos = from;
    'records: while pos.saturating_add(WAL_HEAD_LEN as u64 + 12) <= size {
        let mut head = [0u8; WAL_HEAD_LEN + 12];
        if segment::read_at_most(wal, path, &mut head, pos)? < head.len() {
            break;
        }
        let payload_len = u64::from(record::u32_at(&head, 0));
        let total = WAL_HEAD_LEN as u64 + payload_len;
        let lsn = record::u64_at(&head, WAL_HEAD_LEN);
        let n = u64::from(record::u32_at(&head, WAL_HEAD_LEN + 8));
        if payload_len < 12 || pos + total > size || 12 + n * WAL_ENTRY_LEN as u64 != payload_len {
            break;
        }
        // Pass 1: the CRC and every entry, in chunks of whole entries.
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head[WAL_HEAD_LEN..]);
        let fits = n as usize <= per_chunk;
        entries.clear();
        let mut done = 0u64;
        while done < n {
            let k = (n - done).min(per_chunk as u64) as usize;
            buf.resize(k * WAL_ENTRY_LEN, 0);
            let at = pos + (WAL_HEAD_LEN + 12) as u64 + done * WAL_ENTRY_LEN as u64;
            if segment::read_at_most(wal, path, &mut buf, at)? < buf.len() {
                break 'records;
            }
            crc.update(&buf);
            for e in buf.chunks_exact(WAL_ENTRY_LEN) {
                match index::decode_wal_entry(e) {
                    Some(entry) if fits => entries.push(entry),
                    Some(_) => {}
                    None => break 'records,
                }
            }
            done += k as u64;
        }
        if crc.finalize() != record::u32_at(&head, 4) {
            break;
        }
        if fits {
            visit(pos, lsn, &entries)?;
        } else {
            // Pass 2 for a record too long to hold: the same bytes, checked.
            let mut done = 0u64;
            while done < n {
                let k = (n - done).min(per_chunk as u64) as usize;
                buf.resize(k * WAL_ENTRY_LEN, 0);
                let at = pos + (WAL_HEAD_LEN + 12) as u64 + done * WAL_ENTRY_LEN as u64;
                segment::read_at_most(wal, path, &mut buf, at)?;
                entries.clear();
                entries.extend(
                    buf.chunks_exact(WAL_ENTRY_LEN)
                        .filter_map(index::decode_wal_entry),
                );
                visit(pos, lsn, &entries)?;
                done += k as u64;
            }
        }
        pos += total;
    }
    Ok((pos.max(from), size))
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
    /// The reserve (see [`RESERVE_LEN`]) is not whole: the disk is or was full.
    reserve_short: bool,
    // Held last: dropped after everything above is written.
    _lock: Box<dyn Send>,
}

impl FsStore {
    /// Opens (and with `create`, creates) the queue in directory `dir`, takes
    /// its lock and recovers. `Ok(None)`: the queue does not exist.
    pub fn open(dir: &Path, create: bool) -> Result<Option<FsStore>> {
        FsStore::open_with(
            io::real(spool_of(dir)).ctx("open spool", spool_of(dir))?,
            dir,
            create,
        )
    }

    /// Opens the existing queue in `dir` for reading only: recovery runs as
    /// usual but writes nothing to disk ([`crate::base::overlay::ReadOnlyFs`]).
    pub fn open_read_only(dir: &Path) -> Result<Option<FsStore>> {
        let root = spool_of(dir);
        let real = io::RealFs::beneath(root).ctx("open spool", root)?;
        FsStore::open_with(
            Arc::new(crate::base::overlay::ReadOnlyFs::new(real)),
            dir,
            false,
        )
    }

    /// [`FsStore::open`] on the file system `fs`.
    pub fn open_with(fs: Arc<dyn Fs>, dir: &Path, create: bool) -> Result<Option<FsStore>> {
        FsStore::open_access(fs, dir, create, true)
    }

    /// [`FsStore::open_with`], saying whether the command may write: with
    /// `writable` false, what recovery would repair on disk (a torn WAL
    /// tail, a lost or stale `slots` file) is left as it is and reported.
    pub fn open_access(
        fs: Arc<dyn Fs>,
        dir: &Path,
        create: bool,
        writable: bool,
    ) -> Result<Option<FsStore>> {
        let index_path = dir.join("index");
        if !create && !FsStore::is_queue(&*fs, dir)? {
            return Ok(None);
        }
        let lock_path = dir.join("lock");
        // A queue whose lock file went missing is still a queue.
        let lock = match fs.lock(&lock_path, create).ctx("lock", &lock_path)? {
            Some(l) => l,
            None => fs
                .lock(&lock_path, true)
                .ctx("lock", &lock_path)?
                .ok_or_else(|| Error::Runtime(format!("{}: cannot lock", lock_path.display())))?,
        };
        let boot = fs.boot_id();
        let marker = dir.join(REPAIRING);
        let mut finished_repair = Vec::new();
        if fs.exists(&marker).ctx("open", &marker)? {
            finished_repair.push(format!(
                "{}: a repair was interrupted; finishing it",
                marker.display()
            ));
            finished_repair.extend(rebuild_locked(&*fs, dir)?);
        }
        if !fs.exists(&index_path).ctx("open", &index_path)? {
            if !segment::list(&*fs, dir)?.is_empty() {
                return Err(Error::corrupt(
                    &index_path,
                    "index missing while segments remain: run `spoolmq fsck --repair`",
                ));
            }
            FsStore::init(&*fs, dir, boot)?;
        }
        // A lost slots or wal file is recreated empty: recovery, a checkpoint
        // and fsck take it from there.
        let mut missing = Vec::new();
        for name in ["slots", "wal"] {
            let p = dir.join(name);
            if !fs.exists(&p).ctx("open", &p)? {
                missing.push(p);
            }
        }
        let mut store = FsStore {
            index: segment::open_rw(&*fs, &index_path)?,
            slots: create_file(&*fs, &dir.join("slots"))?,
            wal: create_file(&*fs, &dir.join("wal"))?,
            fs,
            dir: dir.to_path_buf(),
            h: Header::default(),
            boot,
            next_ckpt_region: 2,
            files: HashMap::new(),
            dirty: false,
            poisoned: false,
            notices: finished_repair,
            missing: Vec::new(),
            key_id: None,
            writable,
            ckpt_lsn: 0,
            reconciled: false,
            suspect: None,
            wal_committed: 0,
            reserve_short: false,
            _lock: lock,
        };
        store.key_id = read_key_id(&*store.fs, dir)?;
        if !missing.is_empty() && store.writable {
            // The recreated files must be durable entries before a
            // checkpoint (in recovery) empties the WAL that rebuilds them.
            sync_dir(&*store.fs, dir)?;
        }
        store.recover()?;
        if !missing.is_empty() {
            for p in &missing {
                if store.reconciled && *p == store.slots_path() {
                    // Said once, by the rebuild.
                    continue;
                }
                store
                    .notices
                    .push(format!("{}: file missing; recreated it empty", p.display()));
            }
            if store.writable {
                // What the lost WAL held is in the slots of this boot: make it
                // the checkpoint before a machine crash could need the WAL.
                store.checkpoint()?;
            }
            store.missing = missing;
        }
        if store.writable {
            store.ensure_reserve();
        }
        Ok(Some(store))
    }

    /// Whether `dir` holds a queue: an index, or segments whose index was lost.
    pub fn is_queue(fs: &dyn Fs, dir: &Path) -> Result<bool> {
        let index = dir.join("index");
        if fs.exists(&index).ctx("open", &index)? {
            return Ok(true);
        }
        if !fs.exists(dir).ctx("open", dir)? {
            return Ok(false);
        }
        Ok(!segment::list(fs, dir)?.is_empty())
    }

    fn segment_exists(&self, base: u64) -> Result<bool> {
        let p = segment::path(&self.dir, base);
        self.fs.exists(&p).ctx("open", &p)
    }

    /// Creates the files of a new queue. The index appears last, by rename,
    /// so a queue either has a valid index or is not a queue yet.
    fn init(fs: &dyn Fs, dir: &Path, boot: [u8; 16]) -> Result<()> {
        let slots = create_file(fs, &dir.join("slots"))?;
        // Stamped with the generation of the first live header (below).
        slots
            .write_all_at(&index::encode_stamp(2), 0)
            .ctx("write", &dir.join("slots"))?;
        slots.sync_data().ctx("sync", &dir.join("slots"))?;
        create_file(fs, &dir.join("wal"))?
            .sync_data()
            .ctx("sync", &dir.join("wal"))?;
        let h = Header {
            generation: 1,
            boot_id: boot,
            next_seq: 1,
            scan_lo: 1,
            punched: 0,
            // A queue whose index was lost keeps the ids its segments imply.
            salt: match segment::find_salt(fs, dir)? {
                Some(s) => s,
                None => new_salt()?,
            },
            ..Header::default()
        };
        let bytes = h
            .encode()
            .ok_or_else(|| Error::Runtime("header too large".into()))?;
        let tmp = dir.join("index.tmp");
        let _ = fs.remove_file(&tmp);
        let f = segment::open_file(fs, &tmp, Open::New)?;
        f.set_len((REGION_LEN * index::REGIONS) as u64)
            .ctx("write", &tmp)?;
        // The checkpoint (region 2) at generation 1, the live header (region 0)
        // at generation 2: a new queue opens on the fast path.
        f.write_all_at(&bytes, (2 * REGION_LEN) as u64)
            .ctx("write", &tmp)?;
        let live = Header { generation: 2, ..h }
            .encode()
            .ok_or_else(|| Error::Runtime("header too large".into()))?;
        f.write_all_at(&live, 0).ctx("write", &tmp)?;
        f.sync_data().ctx("sync", &tmp)?;
        // slots and wal must be durable entries before the index appears.
        sync_dir(fs, dir)?;
        fs.rename(&tmp, &dir.join("index")).ctx("rename", &tmp)?;
        sync_dir(fs, dir)
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index")
    }
    fn slots_path(&self) -> PathBuf {
        self.dir.join("slots")
    }
    fn wal_path(&self) -> PathBuf {
        self.dir.join("wal")
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The header as of now (for fsck).
    pub fn header(&self) -> &Header {
        &self.h
    }

    /// Why the slots file cannot be trusted as it is, on a handle that may
    /// not write and so did not rebuild it (for fsck).
    pub fn slots_suspect(&self) -> Option<&str> {
        self.suspect.as_deref()
    }

    /// The WAL length the header says was committed when the queue was
    /// opened (0 after a machine crash): damage below it is damage to
    /// changes reported done, past it a change that never finished.
    pub fn committed_wal_len(&self) -> u64 {
        self.wal_committed
    }

    /// Files that were missing when the queue was opened (for fsck).
    pub fn missing_files(&self) -> &[PathBuf] {
        &self.missing
    }

    fn read_region(&self, i: usize) -> Result<Option<Header>> {
        read_header(&*self.index, &self.index_path(), i)
    }

    fn best(a: Option<Header>, b: Option<Header>) -> Option<Header> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if a.generation >= b.generation { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    fn recover(&mut self) -> Result<()> {
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
            self.h.next_seq * SLOT_LEN as u64
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
    fn adopt(&mut self) -> Result<bool> {
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

    /// Rebuilds the slot of every message from the oldest segment to the end
    /// when the slots file is lost, short, a stale copy or damaged (`why`),
    /// from what is durable: the WAL (every change since the checkpoint,
    /// exact), the slots that can be trusted (all valid ones if `trust`,
    /// else only those of finished messages: a stale copy is right about
    /// those), the records in the segments and the header's counters (see
    /// [`resolve`]). Writes the slots, syncs them and checkpoints; reported
    /// in one notice. Only on a handle that may write.
    fn reconcile(&mut self, why: &str, trust: bool) -> Result<()> {
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
            let at = (lo + (k * SCAN_CHUNK as usize) as u64) * SLOT_LEN as u64;
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
                if at < win_at || at + RECORD_HEADER_LEN as u64 > win_at + win.len() as u64 {
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
                            out.entry(h.seq).or_insert((
                                Loc {
                                    segment: base,
                                    offset: at as u32,
                                },
                                h,
                            ));
                        }
                        at += h.record_len();
                    }
                    _ => match record::find_next(&win, rel + 1) {
                        Some(p) => at = win_at + p as u64,
                        None if win_at + win.len() as u64 >= len => break,
                        // A header may straddle the window's end: look again from just before it.
                        None => {
                            at = (win_at + win.len() as u64 - RECORD_HEADER_LEN as u64 + 1)
                                .max(at + 1);
                            win.clear();
                        }
                    },
                }
            }
        }
        Ok(())
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
        let mut end = from;
        // A record is the next one in sequence if its seq is at least the
        // expected one and no further ahead than the damaged bytes before it
        // could have held records (a foreign or crafted seq is not followed).
        let in_sequence = |seq: u64, expect: u64, offset: u64, prev_end: u64| {
            let room = (offset - prev_end) / RECORD_HEADER_LEN as u64;
            seq >= expect && seq - expect <= room && seq < u64::MAX
        };
        let mut expect = self.h.next_seq;
        for f in &found {
            if let Found::Good { offset, header } | Found::BadBody { offset, header } = f
                && in_sequence(header.seq, expect, *offset, end)
            {
                expect = header.seq + 1;
                end = offset + header.record_len();
            }
        }
        let mut prev_end = from;
        for f in found {
            match f {
                Found::Good { offset, header } | Found::BadBody { offset, header }
                    if offset < end
                        && in_sequence(header.seq, self.h.next_seq, offset, prev_end) =>
                {
                    prev_end = offset + header.record_len();
                    let good = matches!(f, Found::Good { .. });
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
                            loc: Loc {
                                segment: base,
                                offset: offset as u32,
                            },
                        },
                        base,
                    )?;
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
        self.h.active_len = end;
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

    fn write_slot(&self, m: &Meta) -> Result<()> {
        self.slots
            .write_all_at(&encode_slot(m), m.seq * SLOT_LEN as u64)
            .ctx("write", &self.slots_path())
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
                    self.apply(*old, slot)?;
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

    /// Applies one committed change to the slots and the header.
    fn apply(&mut self, old: State, new: &Meta) -> Result<()> {
        self.write_slot(new)?;
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
        Ok(())
    }

    fn write_header_at(&self, region: usize, h: &Header) -> Result<()> {
        let crash_point = if region < 2 {
            "header.torn"
        } else {
            "checkpoint.torn"
        };
        let bytes = h.encode().ok_or_else(|| {
            Error::Runtime(format!(
                "{}: the queue has more than {} segments; ack or purge messages first",
                self.dir.display(),
                index::MAX_SEGMENTS
            ))
        })?;
        failpoint::write_at(
            crash_point,
            &*self.index,
            &bytes,
            (region * REGION_LEN) as u64,
        )
        .ctx("write", &self.index_path())
    }

    /// Writes the live header (not synced: see the module doc).
    fn write_live(&mut self) -> Result<()> {
        self.h.generation += 1;
        self.h.boot_id = self.boot;
        self.write_stamp()?;
        self.write_header_at((self.h.generation % 2) as usize, &self.h)?;
        self.dirty = false;
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<()> {
        // The stamp names the checkpoint's generation and is synced with the
        // slots, before the checkpoint header that it vouches for.
        self.h.generation += 1;
        self.write_stamp()?;
        self.slots.sync_data().ctx("sync", &self.slots_path())?;
        if let Some(f) = self.files.get(&self.h.active) {
            f.sync_data()
                .ctx("sync", &segment::path(&self.dir, self.h.active))?;
        }
        let mut ck = self.h.clone();
        ck.wal_len = 0;
        let region = self.next_ckpt_region;
        self.write_header_at(region, &ck)?;
        self.index.sync_data().ctx("sync", &self.index_path())?;
        self.ckpt_lsn = ck.lsn;
        failpoint::hit("checkpoint.after-header");
        self.next_ckpt_region = if region == 2 { 3 } else { 2 };
        self.wal.set_len(0).ctx("truncate", &self.wal_path())?;
        self.wal.sync_data().ctx("sync", &self.wal_path())?;
        self.h.wal_len = 0;
        self.reclaim()?;
        self.write_live()
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

    /// Makes `reserve` hold [`RESERVE_LEN`] bytes of allocated space (best
    /// effort: on a full disk it stays as it is). The first time, the
    /// index's header regions are written over with what they hold, so
    /// that no header write needs a new block later.
    fn ensure_reserve(&mut self) {
        let p = self.dir.join(RESERVE);
        let existed = self.fs.exists(&p).unwrap_or(false);
        let Ok(f) = segment::open_file(&*self.fs, &p, Open::OrCreate) else {
            self.reserve_short = true;
            return;
        };
        let len = f.len().unwrap_or(0);
        if !existed {
            let mut page = vec![0u8; 4096];
            for region in 0..index::REGIONS {
                let at = (region * REGION_LEN) as u64;
                if let Ok(n) =
                    segment::read_at_most(&*self.index, &self.index_path(), &mut page, at)
                {
                    let _ = self.index.write_all_at(&page[..n.max(1)], at);
                }
            }
        }
        if len >= RESERVE_LEN {
            self.reserve_short = false;
            return;
        }
        let zeros = vec![0u8; (RESERVE_LEN - len) as usize];
        self.reserve_short = match f.write_all_at(&zeros, len) {
            Ok(()) => false,
            Err(_) => {
                let _ = f.set_len(len);
                true
            }
        };
    }

    /// Gives the reserve's space back for a change that met a full disk;
    /// `false` if there was none left.
    fn release_reserve(&mut self) -> bool {
        self.reserve_short = true;
        let p = self.dir.join(RESERVE);
        match segment::open_file(&*self.fs, &p, Open::Existing) {
            Ok(f) if f.len().unwrap_or(0) > 0 => f.set_len(0).is_ok(),
            _ => false,
        }
    }

    /// Moves the pending cursor past finished messages at its front (at
    /// most one chunk of slots): besides sparing the next scan, a tight
    /// cursor is what tells, should the slots be lost, that the messages
    /// below it are not pending (see [`resolve`]).
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

    /// Writes the stamp (slot 0) for the header generation about to be
    /// written: these slots are as new as that header (see crate::store::fs::index).
    fn write_stamp(&self) -> Result<()> {
        self.slots
            .write_all_at(&index::encode_stamp(self.h.generation), 0)
            .ctx("write", &self.slots_path())
    }

    /// Whether nothing is live and the disk is (or was) full: then even the
    /// active segment is given back (a push starts a new one).
    fn drained_on_a_full_disk(&self) -> bool {
        self.reserve_short
            && self.h.active_len > segment::FIRST_RECORD
            && self.h.segments.iter().all(|s| s.live == 0)
    }

    /// Unlinks segments with nothing live, and punches their slots out.
    fn reclaim(&mut self) -> Result<()> {
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
        let from = (self.h.punched * SLOT_LEN as u64).max(4096);
        let to = (oldest * SLOT_LEN as u64) & !4095;
        // Best effort: a file system without hole punching keeps the bytes.
        if to > from && self.slots.punch_hole(from, to - from).unwrap_or(false) {
            self.h.punched = to / SLOT_LEN as u64;
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

    /// Checkpoints if `force`, if a segment has nothing live left, or if the
    /// WAL is large; else writes the live header.
    fn checkpoint_or_write_live(&mut self, force: bool) -> Result<()> {
        let empty_segment = self
            .h
            .segments
            .iter()
            .any(|s| s.live == 0 && s.base != self.h.active);
        if force || empty_segment || self.h.wal_len > WAL_LIMIT || self.drained_on_a_full_disk() {
            self.checkpoint()
        } else {
            self.write_live()
        }
    }

    fn segment_file(&mut self, base: u64) -> Result<&dyn FileIo> {
        if !self.files.contains_key(&base) {
            let p = segment::path(&self.dir, base);
            let f = segment::open_rw(&*self.fs, &p)?;
            self.files.insert(base, f);
        }
        self.files
            .get(&base)
            .map(|f| &**f)
            .ok_or_else(|| Error::Runtime("segment cache".into()))
    }

    /// Reads the slot of `seq`.
    fn read_slot(&self, seq: u64) -> Result<std::result::Result<Meta, SlotDamage>> {
        let mut b = [0u8; SLOT_LEN];
        let n = segment::read_at_most(
            &*self.slots,
            &self.slots_path(),
            &mut b,
            seq * SLOT_LEN as u64,
        )?;
        if n < SLOT_LEN {
            return Ok(Err(SlotDamage::Empty));
        }
        Ok(decode_slot_of(&b, seq))
    }

    /// Visits every slot from `from` (inclusive) to `next_seq`, decoded, in
    /// chunks of [`SCAN_CHUNK`] slots per read, until `visit` says stop.
    pub fn all_slots(
        &self,
        from: u64,
        visit: &mut dyn FnMut(u64, std::result::Result<Meta, SlotDamage>) -> Step,
    ) -> Result<()> {
        let mut seq = from.max(self.h.punched);
        let mut buf = vec![0u8; (SCAN_CHUNK as usize) * SLOT_LEN];
        while seq < self.h.next_seq {
            let n = segment::read_at_most(
                &*self.slots,
                &self.slots_path(),
                &mut buf,
                seq * SLOT_LEN as u64,
            )?;
            let count = ((self.h.next_seq - seq).min(SCAN_CHUNK)) as usize;
            for i in 0..count {
                let at = i * SLOT_LEN;
                let s = seq + i as u64;
                let r = if at + SLOT_LEN > n {
                    Err(SlotDamage::Empty)
                } else {
                    decode_slot_of(&buf[at..at + SLOT_LEN], s)
                };
                if visit(s, r) == Step::Stop {
                    return Ok(());
                }
            }
            seq += count as u64;
        }
        Ok(())
    }
}

const KEY_MAGIC: &[u8; 8] = b"SPMQKEY1";
const KEY_FILE_LEN: usize = 28;

/// The key id in `dir/key`, if the queue is encrypted.
fn read_key_id(fs: &dyn Fs, dir: &Path) -> Result<Option<KeyId>> {
    let p = dir.join("key");
    // Opened, not tested with exists(): a link planted as `key`, even one
    // that points nowhere, is an error rather than "not encrypted".
    let f = match fs.open(&p, Open::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", &p, e)),
    };
    // One byte more than the record: a longer file is damaged too.
    let mut b = [0u8; KEY_FILE_LEN + 1];
    let n = segment::read_at_most(&*f, &p, &mut b, 0)?;
    if n != KEY_FILE_LEN
        || &b[..8] != KEY_MAGIC
        || crc32fast::hash(&b[..24]) != record::u32_at(&b, 24)
    {
        return Err(Error::corrupt(
            &p,
            "damaged key id: this queue's encryption key cannot be checked (`spoolmq --key-file KEY fsck --repair` rewrites it)",
        ));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[8..24]);
    Ok(Some(id))
}

/// Makes `dir/key` hold `id` (or removes it for `None`), durably.
fn write_key_id(fs: &dyn Fs, dir: &Path, id: Option<KeyId>) -> Result<()> {
    let p = dir.join("key");
    match id {
        None => match fs.remove_file(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            r => r.ctx("remove", &p)?,
        },
        Some(id) => {
            let mut b = Vec::with_capacity(KEY_FILE_LEN);
            b.extend_from_slice(KEY_MAGIC);
            b.extend_from_slice(&id);
            b.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
            let tmp = dir.join("key.tmp");
            let _ = fs.remove_file(&tmp);
            let f = segment::open_file(fs, &tmp, Open::New)?;
            f.write_all_at(&b, 0).ctx("write", &tmp)?;
            f.sync_data().ctx("sync", &tmp)?;
            fs.rename(&tmp, &p).ctx("rename", &p)?;
        }
    }
    sync_dir(fs, dir)
}

/// The key id recorded in queue directory `dir`, for `fsck` (`Err` if
/// its file is damaged).
pub fn key_record(fs: &dyn Fs, dir: &Path) -> Result<Option<KeyId>> {
    read_key_id(fs, dir)
}

/// For `fsck` of a queue whose key id file is damaged or missing: of the
/// intact records in the segments of queue `name` (in `dir`), how many
/// bodies open with `key` and how many do not. Any that opens proves the
/// queue was encrypted with it (the tag covers the queue and the message id).
pub fn bodies_opening_with(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    key: &crate::model::crypt::Key,
) -> Result<(u64, u64)> {
    let Some(salt) = segment::find_salt(fs, dir)? else {
        return Ok((0, 0));
    };
    let sealer = crate::model::crypt::Sealer::new(name, Some(key));
    let (mut open, mut not) = (0, 0);
    for base in segment::list(fs, dir)? {
        let path = segment::path(dir, base);
        let (file, found, _) = segment::check(fs, &path)?;
        for f in found {
            let Found::Good { offset, header } = f else {
                continue;
            };
            let Ok((_, body)) = segment::read_record(&*file, &path, offset, header.body_len)?
            else {
                continue;
            };
            match sealer.open(Some(key.id()), salt, header.seq, body) {
                Ok(_) => open += 1,
                Err(_) => not += 1,
            }
        }
    }
    Ok((open, not))
}

/// `fsck --repair`: records `id` as the key of the queue in `dir`, under
/// the queue's lock (a temporary file, fsynced, renamed into place).
pub fn restore_key_record(fs: &dyn Fs, dir: &Path, id: KeyId) -> Result<()> {
    let _lock = fs
        .lock(&dir.join("lock"), true)
        .ctx("lock", &dir.join("lock"))?;
    write_key_id(fs, dir, Some(id))
}

impl Store for FsStore {
    fn restore(
        &mut self,
        salt: u64,
        next_seq: u64,
        counters: Counters,
        metas: &[Meta],
        body: &mut dyn FnMut(&Meta) -> Result<Vec<u8>>,
    ) -> Result<()> {
        if self.h.counters.pushed != 0 || !self.h.segments.is_empty() {
            return Err(Error::Runtime(format!(
                "{}: cannot restore into a queue that is not new",
                self.dir.display()
            )));
        }
        let first = metas.first().map_or(next_seq, |m| m.seq);
        self.h.salt = salt;
        self.h.next_seq = first;
        self.h.scan_lo = first;
        let mut want = metas.iter().peekable();
        let mut seq = first;
        while seq < next_seq {
            // A batch of up to 8 MiB of bodies per push (one fsync each).
            let mut batch: Vec<(Option<&Meta>, Vec<u8>)> = Vec::new();
            let mut bytes = 0;
            while seq < next_seq && bytes < 8 << 20 {
                match want.next_if(|m| m.seq == seq) {
                    Some(m) => {
                        let b = body(m)?;
                        bytes += b.len();
                        batch.push((Some(m), b));
                    }
                    None => batch.push((None, Vec::new())),
                }
                seq += 1;
            }
            let mut news = batch.iter().map(|(m, b)| {
                Ok(NewMessage {
                    body: Cow::Borrowed(&b[..]),
                    pushed_at_ms: m.map_or(0, |m| m.pushed_at_ms),
                    not_before_ms: match m {
                        Some(m) if m.state == State::Delayed => m.until_ms.max(1),
                        _ => 0,
                    },
                })
            });
            self.push(&mut news)?;
        }
        if let Some(m) = want.next() {
            return Err(Error::Runtime(format!(
                "message {} is not below the next seq {next_seq}",
                m.seq
            )));
        }
        // Now the delivery state of each message, and the fillers acked.
        let mut want = metas.iter().peekable();
        let mut changes = Vec::new();
        for seq in first..next_seq {
            let Some(got) = self.get(seq)? else {
                return Err(Error::Runtime(format!("message {seq} was not restored")));
            };
            let new = match want.next_if(|m| m.seq == seq) {
                Some(m) => Meta { loc: got.loc, ..*m },
                None => Meta {
                    state: State::Acked,
                    ..got
                },
            };
            if new != got {
                changes.push(Change {
                    old: got.state,
                    new,
                });
            }
            if changes.len() >= 4096 {
                self.commit(&changes)?;
                changes.clear();
            }
        }
        self.commit(&changes)?;
        self.h.counters = counters;
        self.h.next_seq = next_seq;
        self.checkpoint()
    }

    fn push(&mut self, msgs: &mut dyn Iterator<Item = Result<NewMessage<'_>>>) -> Result<Vec<u64>> {
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

    fn scan(&mut self, from: Scan, visit: &mut dyn FnMut(&Meta) -> Step) -> Result<()> {
        let start = match from {
            Scan::Pending => self.h.scan_lo,
            Scan::Live => self.h.segments.first().map_or(self.h.next_seq, |s| s.base),
        };
        // The pending cursor moves past finished messages at its front.
        let mut cursor = self.h.scan_lo;
        let mut contiguous = matches!(from, Scan::Pending);
        let mut damaged = Vec::new();
        let mut start = start;
        loop {
            // A handle that may write rebuilds the slots at the first damaged
            // one (once), then goes on from there.
            let fix = self.writable && !self.reconciled;
            let mut found = None;
            self.all_slots(start, &mut |s, slot| match slot {
                Ok(m) => {
                    let wanted = match from {
                        Scan::Pending => m.state.is_pending(),
                        Scan::Live => m.state.is_live(),
                    };
                    if !wanted {
                        if contiguous && s == cursor {
                            cursor = s + 1;
                        }
                        return Step::Continue;
                    }
                    contiguous = false;
                    visit(&m)
                }
                Err(_) if fix => {
                    found = Some(s);
                    Step::Stop
                }
                Err(_) => {
                    contiguous = false;
                    damaged.push(s);
                    Step::Continue
                }
            })?;
            let Some(s) = found else { break };
            contiguous = false;
            let why = format!(
                "offset {}: index slot of message {} is damaged",
                s * SLOT_LEN as u64,
                crate::model::ids::format_id(s, self.h.salt)
            );
            self.reconcile(&why, true)?;
            start = s;
        }
        if cursor != self.h.scan_lo {
            self.h.scan_lo = cursor;
            self.dirty = true;
        }
        for s in damaged {
            self.notices.push(format!(
                "{}: offset {}: index slot of message {} is damaged; skipped (run `spoolmq fsck --repair`)",
                self.slots_path().display(),
                s * SLOT_LEN as u64,
                crate::model::ids::format_id(s, self.h.salt)
            ));
        }
        Ok(())
    }

    fn get(&mut self, seq: u64) -> Result<Option<Meta>> {
        if seq < self.h.punched || seq >= self.h.next_seq || seq == 0 {
            return Ok(None);
        }
        match self.read_slot(seq)? {
            Ok(m) => Ok(Some(m)),
            Err(_) if self.writable && !self.reconciled => {
                let why = format!(
                    "offset {}: index slot of message {} is damaged",
                    seq * SLOT_LEN as u64,
                    crate::model::ids::format_id(seq, self.h.salt)
                );
                self.reconcile(&why, true)?;
                Ok(self.read_slot(seq)?.ok())
            }
            Err(_) => Ok(None),
        }
    }

    fn body(&mut self, meta: &Meta) -> Result<Vec<u8>> {
        let path = segment::path(&self.dir, meta.loc.segment);
        let file = match self.segment_file(meta.loc.segment) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::corrupt(&path, "segment file missing"));
            }
            r => r?,
        };
        match segment::read_record(file, &path, u64::from(meta.loc.offset), meta.len)? {
            Ok((h, body)) if h.seq == meta.seq => Ok(body),
            Ok(_) => Err(Error::corrupt(
                &path,
                format!(
                    "offset {}: record belongs to another message",
                    meta.loc.offset
                ),
            )),
            Err(d) => Err(Error::corrupt(
                &path,
                format!("offset {}: {}", meta.loc.offset, d.describe()),
            )),
        }
    }

    fn commit(&mut self, changes: &[Change]) -> Result<()> {
        if changes.is_empty() {
            if self.dirty {
                self.write_live()?;
            }
            return Ok(());
        }
        let lsn = self.h.lsn + 1;
        let entries: Vec<(State, Meta)> = changes.iter().map(|c| (c.old, c.new)).collect();
        let rec = index::encode_wal(lsn, &entries);
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
            for (i, (old, m)) in entries.iter().enumerate() {
                if i == entries.len() / 2 {
                    failpoint::hit("commit.mid-slots");
                }
                self.apply(*old, m)?;
            }
            self.h.lsn = lsn;
            self.h.wal_len += rec.len() as u64;
            if entries
                .iter()
                .any(|(_, m)| m.seq == self.h.scan_lo && !m.state.is_pending())
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

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

impl FsStore {
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

impl Drop for FsStore {
    fn drop(&mut self) {
        if self.dirty && !self.poisoned {
            let _ = self.write_live();
        }
    }
}

/// Whether a message in `state` is finished for good: nothing but a
/// `retry` of a dead letter (which is live) moves a message again, so a
/// stale copy of its slot is still right.
fn is_final(state: State) -> bool {
    matches!(state, State::Acked | State::Purged | State::Corrupt)
}

/// Puts the WAL's slot images on top of what the slots say, for messages
/// `lo ..` (`exact` and `hint` as in [`resolve`]; `exact` holds only slots
/// that are trusted). A record with lsn above `applied` (what the trusted
/// slots already hold) is newer than any slot; for a message with no
/// trusted slot, the last image above `ckpt_lsn` is its state (the WAL holds
/// every change since the checkpoint), an older one is a hint, and a
/// finished state is final whatever its age.
fn merge_wal(
    wal: &dyn FileIo,
    path: &Path,
    lo: u64,
    exact: &mut [Option<Meta>],
    hint: &mut [Option<Meta>],
    ckpt_lsn: u64,
    applied: u64,
) -> Result<()> {
    let had_slot: Vec<bool> = exact.iter().map(Option::is_some).collect();
    read_wal(wal, path, 0, &mut |_, lsn, entries| {
        for (_, m) in entries {
            let Some(i) = m.seq.checked_sub(lo).map(|i| i as usize) else {
                continue;
            };
            if i >= exact.len() {
                continue;
            }
            if had_slot[i] {
                if lsn > applied {
                    exact[i] = Some(*m);
                }
            } else if lsn > ckpt_lsn || is_final(m.state) {
                exact[i] = Some(*m);
            } else if exact[i].is_none() {
                hint[i] = Some(*m);
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// What [`resolve`] decided for the messages from `lo` to `end`.
struct Resolved {
    /// The slot of each message, in seq order from `lo`.
    metas: Vec<Meta>,
    counters: Counters,
    /// Live messages per segment base.
    live: HashMap<u64, u64>,
    scan_lo: u64,
    notes: Vec<String>,
}

/// Decides the slot of every message from `lo` to `end` when some slots
/// were lost or cannot be trusted. `exact[i]` is the state of message
/// `lo + i` where something durable says it (the WAL since the checkpoint,
/// a trusted slot, a finished state); `hint[i]` a state it had once (a
/// stale copy); `record(seq)` its good record in a segment. With `relocate`
/// (a repair that rewrote segments) every live message takes its location
/// from its record, and one without a record is lost.
///
/// A message with no exact state and a good record is inferred from the
/// header `old`: its counters say how many messages are in each live
/// state, so those with no exact state need `old.ready - known ready` and
/// so on, and the rest of them are finished (acked or purged). Every
/// message below `old.scan_lo` is known not to be pending. When all of them
/// must be live they are given their stale state, or ready (delayed if
/// their record says so); when all of them must be finished they stay
/// acked; when the counters cannot say which are which, they are kept as
/// dead letters, so that no acked message is delivered again and nothing
/// is lost (`retry` delivers them again). Without a header: ready.
///
/// The counters come out adding up: the live ones counted, `pushed` and
/// `purged` from `old`, `corrupt` from `old` plus the messages lost now,
/// and `acked` the rest.
fn resolve(
    lo: u64,
    end: u64,
    exact: Vec<Option<Meta>>,
    hint: Vec<Option<Meta>>,
    record: &dyn Fn(u64) -> Option<(Loc, record::RecordHeader)>,
    old: Option<&Header>,
    relocate: bool,
) -> Resolved {
    const LIVE: [State; 4] = [State::Ready, State::Delayed, State::Leased, State::Dead];
    let idx = |s: State| LIVE.iter().position(|l| *l == s);
    let mut known = [0u64; 4];
    let mut unknown_all = 0u64;
    let mut u_lo: Vec<u64> = Vec::new();
    let mut u_hi: Vec<u64> = Vec::new();
    let scan_lo_old = old.map_or(lo, |h| h.scan_lo);
    // The header's counters cover the messages below its next_seq; later
    // ones were never counted (records a crash left past its end): those
    // are adopted, as recovery does.
    let counted_below = old.map_or(lo, |h| h.next_seq);
    for (i, e) in exact.iter().enumerate() {
        let seq = lo + i as u64;
        if seq >= counted_below {
            break;
        }
        match e {
            Some(m) => {
                if let Some(k) = idx(m.state) {
                    known[k] += 1;
                }
            }
            None => {
                unknown_all += 1;
                if record(seq).is_some() {
                    if seq < scan_lo_old {
                        u_lo.push(seq);
                    } else {
                        u_hi.push(seq);
                    }
                }
            }
        }
    }
    // How the messages with no exact state split: live, finished, or unknown.
    #[derive(Clone, Copy, PartialEq)]
    enum Fate {
        Live,
        Finished,
        Held,
    }
    let (fate_lo, fate_hi) = match old {
        None => (Fate::Live, Fate::Live),
        Some(h) => {
            let c = &h.counters;
            let need: Vec<u64> = [c.ready, c.delayed, c.leased, c.dead]
                .iter()
                .zip(known)
                .map(|(have, k)| have.saturating_sub(k))
                .collect();
            let n_live: u64 = need.iter().sum();
            let n_lo = u_lo.len() as u64;
            let n_hi = u_hi.len() as u64;
            let n_rec = n_lo + n_hi;
            // At most this many of them are finished, at least that many.
            let fin_max = n_rec.min(unknown_all.saturating_sub(n_live));
            let fin_min = n_rec.saturating_sub(n_live);
            if fin_max == 0 {
                (Fate::Live, Fate::Live)
            } else if fin_min == n_rec {
                (Fate::Finished, Fate::Finished)
            } else {
                // Below scan_lo a message is dead or finished.
                let need_dead = need[3];
                let (lo_fate, fin_lo_min) = if need_dead == 0 {
                    (Fate::Finished, n_lo)
                } else {
                    (Fate::Held, n_lo.saturating_sub(need_dead))
                };
                let fin_hi_max = fin_max.saturating_sub(fin_lo_min);
                let hi_fate = if fin_hi_max == 0 {
                    Fate::Live
                } else if n_hi.saturating_sub(n_live) == n_hi {
                    Fate::Finished
                } else {
                    Fate::Held
                };
                (lo_fate, hi_fate)
            }
        }
    };
    let mut metas = Vec::with_capacity(exact.len());
    let mut counters = Counters::default();
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut scan_lo = end;
    let (mut lost, mut inferred_live, mut inferred_done, mut held) = (0u64, 0u64, 0u64, 0u64);
    for (i, (e, h)) in exact.into_iter().zip(hint).enumerate() {
        let seq = lo + i as u64;
        let rec = record(seq);
        let lost_meta = |pushed_at_ms: u64| Meta {
            seq,
            state: State::Corrupt,
            attempts: 0,
            max_attempts: 0,
            pushed_at_ms,
            until_ms: 0,
            receipt: [0; 12],
            len: 0,
            loc: Loc::default(),
        };
        let m = match (e, rec) {
            (Some(m), _) if !relocate || (is_final(m.state) && m.state != State::Corrupt) => m,
            (Some(m), Some((loc, r))) if m.state != State::Corrupt => Meta {
                loc,
                len: r.body_len,
                ..m
            },
            (Some(m), None) if m.state == State::Corrupt => m,
            (Some(m), None) => {
                lost += 1;
                lost_meta(m.pushed_at_ms)
            }
            (e, Some((loc, r))) => {
                let fate = if e.is_some() || seq >= counted_below {
                    // A corrupt slot whose record is intact again (repair),
                    // or a record the header never counted.
                    Fate::Live
                } else if seq < scan_lo_old {
                    fate_lo
                } else {
                    fate_hi
                };
                let base = Meta {
                    seq,
                    state: State::Ready,
                    attempts: 0,
                    max_attempts: 0,
                    pushed_at_ms: r.pushed_at_ms,
                    until_ms: 0,
                    receipt: [0; 12],
                    len: r.body_len,
                    loc,
                };
                match fate {
                    Fate::Live => {
                        inferred_live += 1;
                        match h {
                            Some(h) if h.state.is_live() => Meta {
                                loc,
                                len: r.body_len,
                                ..h
                            },
                            _ if r.not_before_ms > 0 => Meta {
                                state: State::Delayed,
                                until_ms: r.not_before_ms,
                                ..base
                            },
                            _ => base,
                        }
                    }
                    Fate::Finished => {
                        inferred_done += 1;
                        Meta {
                            state: State::Acked,
                            ..base
                        }
                    }
                    Fate::Held => {
                        held += 1;
                        Meta {
                            state: State::Dead,
                            attempts: h.map_or(0, |h| h.attempts),
                            ..base
                        }
                    }
                }
            }
            (None, None) => {
                if h.is_some_and(|h| h.state.is_live()) {
                    lost += 1;
                }
                lost_meta(h.map_or(0, |h| h.pushed_at_ms))
            }
        };
        counters.add(m.state, m.len);
        if m.state.is_live() {
            *live.entry(m.loc.segment).or_default() += 1;
        }
        if m.state.is_pending() && scan_lo == end {
            scan_lo = seq;
        }
        metas.push(m);
    }
    let mut notes = Vec::new();
    if lost > 0 {
        notes.push(format!(
            "{lost} messages had no intact record left and are marked lost"
        ));
    }
    if inferred_live > 0 {
        notes.push(format!(
            "{inferred_live} messages whose state was lost are pending again (from their records)"
        ));
    }
    if inferred_done > 0 {
        notes.push(format!(
            "{inferred_done} messages whose state was lost are finished (the counters say so) and stay so"
        ));
    }
    if held > 0 {
        notes.push(format!(
            "{held} messages whose state was lost may each have been acked (the counters cannot say which): \
             they are kept as dead letters so that none is delivered again; `spoolmq retry` delivers them, \
             acked ones included, `spoolmq purge --dead` drops them"
        ));
    }
    if let Some(h) = old {
        // Live states are counted; the totals come from the header and add up.
        let live_total = counters.ready + counters.delayed + counters.leased + counters.dead;
        // Seqs are given out from 1: every one below `end` was pushed.
        let pushed = h.counters.pushed.max(end.saturating_sub(1)).max(live_total);
        let finished = pushed - live_total;
        let purged = h.counters.purged.min(finished);
        let corrupt = (h.counters.corrupt + lost)
            .max(counters.corrupt)
            .min(finished - purged);
        counters.pushed = pushed;
        counters.purged = purged;
        counters.corrupt = corrupt;
        counters.acked = finished - purged - corrupt;
    }
    Resolved {
        metas,
        counters,
        live,
        scan_lo,
        notes,
    }
}

/// Rebuilds a queue's index from its segments and whatever slots and WAL
/// records are still readable, for `fsck --repair`. Damaged records are
/// quarantined and cut out of their segments. Returns a line per thing done.
///
/// Rules, per message seq between the oldest segment and the end:
/// * a good record and a good slot: the slot's state is kept (its location
///   updated to where the record now is);
/// * a good record and no good slot: ready, attempts 0 (at-least-once: a
///   message is never lost for want of its slot);
/// * no good record: an acked or purged slot stays so; anything else is
///   marked corrupt (lost) and never served.
///
/// Everything is written and synced, then the WAL is emptied and the new
/// header written to all four regions with a generation above any old one.
pub fn rebuild(fs: Arc<dyn Fs>, dir: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    // Let ordinary recovery replay what it can first.
    match FsStore::open_with(Arc::clone(&fs), dir, false) {
        Ok(Some(mut s)) => notes.extend(s.take_notices()),
        Ok(None) => {}
        Err(e) => notes.push(format!(
            "index unreadable ({e}); rebuilding it from the segments"
        )),
    }
    let _lock = fs
        .lock(&dir.join("lock"), true)
        .ctx("lock", &dir.join("lock"))?;
    notes.extend(rebuild_locked(&*fs, dir)?);
    Ok(notes)
}

/// The marker of a repair under way: while it exists, the next open of the
/// queue finishes the repair before anything else.
const REPAIRING: &str = "repairing";

/// [`rebuild`], with the queue's lock held. The marker is made durable before
/// the first segment is rewritten and removed after the index is synced, so a
/// repair cut short by a crash is finished by the next command.
fn rebuild_locked(fs: &dyn Fs, dir: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let marker = dir.join(REPAIRING);
    create_file(fs, &marker)?.sync_data().ctx("sync", &marker)?;
    sync_dir(fs, dir)?;
    let index = create_file(fs, &dir.join("index"))?;
    let slots = create_file(fs, &dir.join("slots"))?;
    let wal = create_file(fs, &dir.join("wal"))?;
    let index_path = dir.join("index");
    let slots_path = dir.join("slots");
    let wal_path = dir.join("wal");

    let mut old: Option<Header> = None;
    for i in 0..index::REGIONS {
        if let Some(h) = read_header(&*index, &index_path, i)?
            && old.as_ref().is_none_or(|o| h.generation > o.generation)
        {
            old = Some(h);
        }
    }

    // The salt is in every segment header: ids survive the loss of the index.
    let bases = segment::list(fs, dir)?;
    let salt = match (segment::find_salt(fs, dir)?, &old) {
        (Some(s), _) => s,
        (None, Some(h)) => h.salt,
        (None, None) => new_salt()?,
    };

    // Segments: keep the good records in sequence, quarantine the rest.
    let mut records: Vec<(u64, u64, record::RecordHeader)> = Vec::new(); // (base, offset, header)
    let mut segs: Vec<(u64, u64)> = Vec::new(); // (base, file length)
    for base in bases {
        let path = segment::path(dir, base);
        let (bytes, mut found, head) = segment::check(fs, &path)?;
        let mut last = records.last().map(|r| r.2.seq);
        for f in found.iter_mut() {
            if let Found::Good { offset, header } = *f {
                if header.seq < base || last.is_some_and(|l| header.seq <= l) {
                    *f = Found::Garbage {
                        offset,
                        len: header.record_len(),
                        damage: record::Damage::OutOfSequence,
                    };
                } else {
                    last = Some(header.seq);
                }
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

    failpoint::hit("repair.after-segments");
    let first = segs.first().map(|s| s.0);
    let end = records
        .last()
        .map(|r| r.2.seq + 1)
        .into_iter()
        .chain(old.as_ref().map(|h| h.next_seq))
        .chain(first)
        .max()
        .unwrap_or(1);
    // From the oldest segment on disk or named by the old header: messages
    // of a named segment that has gone missing are lost, and counted so.
    let lo = first
        .into_iter()
        .chain(
            old.as_ref()
                .and_then(|h| h.segments.first().map(|s| s.base)),
        )
        .min()
        .unwrap_or(end)
        .min(end);

    // Slots as they are (all of them if the file is as new as the header,
    // else only the finished ones), the WAL's images since the checkpoint
    // on top, the rest inferred (see resolve).
    let mut stamp = [0u8; SLOT_LEN];
    let n = segment::read_at_most(&*slots, &slots_path, &mut stamp, 0)?;
    let trust = match (index::decode_stamp(&stamp[..n]), &old) {
        (index::Stamp::Generation(g), Some(h)) => g >= h.generation,
        (index::Stamp::Damaged, Some(_)) => false,
        _ => true,
    };
    let count = (end - lo) as usize;
    let mut exact: Vec<Option<Meta>> = vec![None; count];
    let mut hint: Vec<Option<Meta>> = vec![None; count];
    let mut buf = vec![0u8; SLOT_LEN];
    for seq in lo..end {
        let n = segment::read_at_most(&*slots, &slots_path, &mut buf, seq * SLOT_LEN as u64)?;
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
        .filter_map(|&i| read_header(&*index, &index_path, i).ok().flatten())
        .max_by_key(|h| h.generation)
        .map_or(0, |h| h.lsn);
    let applied = if trust {
        old.as_ref().map_or(ckpt_lsn, |h| h.lsn)
    } else {
        ckpt_lsn
    };
    merge_wal(
        &*wal, &wal_path, lo, &mut exact, &mut hint, ckpt_lsn, applied,
    )?;

    let by_seq: HashMap<u64, (Loc, record::RecordHeader)> = records
        .iter()
        .map(|(base, offset, h)| {
            (
                h.seq,
                (
                    Loc {
                        segment: *base,
                        offset: *offset as u32,
                    },
                    *h,
                ),
            )
        })
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
    let mut out = Vec::with_capacity(r.metas.len() * SLOT_LEN);
    for m in &r.metas {
        out.extend_from_slice(&encode_slot(m));
    }
    slots
        .write_all_at(&out, lo * SLOT_LEN as u64)
        .ctx("write", &slots_path)?;
    slots
        .write_all_at(&index::encode_stamp(generation), 0)
        .ctx("write", &slots_path)?;
    slots.sync_data().ctx("sync", &slots_path)?;
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
    };
    wal.set_len(0).ctx("truncate", &wal_path)?;
    wal.sync_data().ctx("sync", &wal_path)?;
    let bytes = h
        .encode()
        .ok_or_else(|| Error::Runtime(format!("{}: too many segments", dir.display())))?;
    for i in 0..index::REGIONS {
        index
            .write_all_at(&bytes, (i * REGION_LEN) as u64)
            .ctx("write", &index_path)?;
    }
    index.sync_data().ctx("sync", &index_path)?;
    sync_dir(fs, dir)?;
    fs.remove_file(&marker).ctx("remove", &marker)?;
    sync_dir(fs, dir)?;
    Ok(notes)
}

/// Test support: makes the live header look as if written before a reboot,
/// so the next open recovers from the checkpoint, as after a machine crash.
#[cfg(test)]
pub(crate) fn simulate_reboot(dir: &Path) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> Result<NewMessage<'_>> {
        Ok(NewMessage {
            body: Cow::Borrowed(body.as_bytes()),
            pushed_at_ms: 1000,
            not_before_ms: 0,
        })
    }

    fn queue_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("q");
        std::fs::create_dir(&dir).unwrap();
        (tmp, dir)
    }

    fn open(dir: &Path) -> FsStore {
        FsStore::open(dir, true).unwrap().unwrap()
    }

    fn push(s: &mut FsStore, bodies: &[&str]) -> Vec<u64> {
        s.push(&mut bodies.iter().map(|b| msg(b))).unwrap()
    }

    fn lease_and_ack(s: &mut FsStore, seq: u64) {
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

    fn append(path: &Path, bytes: &[u8]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
    }

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
