//! Header writes and checkpoints ("checkpoint" in [`super`]'s write
//! order): the live header after every change, and the checkpoint when the
//! WAL passes [`WAL_LIMIT`], a segment rolls, or a segment has nothing live
//! left.
//!
//! Invariants: the slots stamp names the generation of the header about to
//! be written; at a checkpoint the slots (and the active segment) are
//! synced before the checkpoint header, which is synced before the WAL is
//! emptied; the live header is never synced (see "Source of truth").
//!
//! Where the headers go in `QUEUE/index` (header layout in
//! [`super::index`]): each pair alternates, so a torn write leaves the
//! other copy whole.
//!
//! ```text
//! +0              +64 KiB          +128 KiB              +192 KiB
//! | live, even gen | live, odd gen | checkpoint A (2)    | checkpoint B (3) |
//! ```

use super::FsStore;
use crate::base::error::{Error, IoContext, Result};
use crate::base::failpoint;
use crate::store::fs::index::{self, Header, REGION_LEN};
use crate::store::fs::segment::{self};

/// Checkpoint when the WAL grows past this.
const WAL_LIMIT: u64 = 1024 * 1024;

impl FsStore {
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
    pub(super) fn write_live(&mut self) -> Result<()> {
        self.h.generation += 1;
        self.h.boot_id = self.boot;
        self.write_stamp()?;
        self.write_header_at((self.h.generation % 2) as usize, &self.h)?;
        self.dirty = false;
        Ok(())
    }

    /// Writes the stamp (slot 0) for the header generation about to be
    /// written: these slots are as new as that header (see crate::store::fs::index).
    fn write_stamp(&self) -> Result<()> {
        self.slots
            .write_all_at(&index::encode_stamp(self.h.generation), 0)
            .ctx("write", &self.slots_path())
    }

    pub(super) fn checkpoint(&mut self) -> Result<()> {
        // The stamp names the checkpoint's generation and is synced with the
        // slots, before the checkpoint header that it vouches for.
        self.h.generation += 1;
        self.write_stamp()?;
        self.slots.sync_data().ctx("sync", &self.slots_path())?;
        self.sync_holds()?;
        self.sync_lanes()?;
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

    /// Checkpoints if `force`, if a segment has nothing live left, or if the
    /// WAL is large; else writes the live header.
    pub(super) fn checkpoint_or_write_live(&mut self, force: bool) -> Result<()> {
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
}
