//! Opening a queue of the fs store: its lock, the files of a new queue,
//! finishing a repair a crash cut short, recreating a lost `slots` or `wal`
//! file, then recovery ([`super::recover`]) and the reserve
//! ([`super::reserve`]).
//!
//! Invariants:
//! * Everything happens under the queue's lock, taken first and held by the
//!   [`FsStore`] until it is dropped.
//! * A queue either has a valid index or is not a queue yet: a new queue's
//!   `slots` and `wal` are durable directory entries before its `index` is
//!   renamed into place (`init`).
//! * A lost `index` with segments left is an error until `fsck --repair`.
//! * A handle opened without `writable` leaves on disk what recovery finds.
//!
//! What `init` writes (header layout in [`super::index`]): the `slots`
//! stamp at generation 2 in slot 0, and the four regions of `index.tmp`
//! before it becomes `index`:
//!
//! ```text
//! +0            +64 KiB        +128 KiB           +192 KiB        +256 KiB
//! | live, gen 2 | (zeros)      | checkpoint, gen 1 | (zeros)       |
//! ```

use super::key::read_key_id;
use super::rebuild::{REPAIRING, rebuild_locked};
use super::{FsStore, create_file, spool_of};
use crate::base::error::{Error, IoContext, Result};
use crate::base::io::{self, Fs, Open};
use crate::store::fs::index::{self, Header, REGION_LEN};
use crate::store::fs::segment::{self, sync_dir};
use crate::store::new_salt;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

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
    pub(crate) fn open_read_only(dir: &Path) -> Result<Option<FsStore>> {
        let root = spool_of(dir);
        let real = io::RealFs::beneath(root).ctx("open spool", root)?;
        FsStore::open_with(
            Arc::new(crate::base::overlay::ReadOnlyFs::new(real)),
            dir,
            false,
        )
    }

    /// [`FsStore::open`] on the file system `fs`.
    pub(crate) fn open_with(fs: Arc<dyn Fs>, dir: &Path, create: bool) -> Result<Option<FsStore>> {
        FsStore::open_access(fs, dir, create, true)
    }

    /// [`FsStore::open_with`], saying whether the command may write: with
    /// `writable` false, what recovery would repair on disk (a torn WAL
    /// tail, a lost or stale `slots` file) is left as it is and reported.
    pub(super) fn open_access(
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
        let repaired = fs.exists(&marker).ctx("open", &marker)?;
        if repaired {
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
            failures: None,
            hold_table: None,
            lanes: Default::default(),
            group_cache: None,
            target: None,
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
        if repaired && store.writable {
            // The repair's header has no lanes: made again from its slots.
            store.repair_lanes()?;
        }
        if store.writable {
            store.ensure_reserve();
        }
        Ok(Some(store))
    }

    /// Whether `dir` holds a queue: an index, or segments whose index was lost.
    pub(crate) fn is_queue(fs: &dyn Fs, dir: &Path) -> Result<bool> {
        let index = dir.join("index");
        if fs.exists(&index).ctx("open", &index)? {
            return Ok(true);
        }
        if !fs.exists(dir).ctx("open", dir)? {
            return Ok(false);
        }
        Ok(!segment::list(fs, dir)?.is_empty())
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
}
