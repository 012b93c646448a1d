//! The space kept for a full disk ("A full disk" in [`super`]):
//! `QUEUE/reserve` holds [`RESERVE_LEN`] allocated bytes that pushes cannot
//! use, given back when a change meets a full disk and filled again by a
//! later command that finds room.
//!
//! Invariants: its contents are never read, so it needs no sync; filling it
//! is best effort. The first time, the index's header regions are written
//! over with what they hold, so no later header write needs a new block.
//!
//! ```text
//! reserve: | RESERVE_LEN (64 KiB) zero bytes |
//! ```

use super::FsStore;
use crate::base::io::Open;
use crate::store::fs::index::{self, REGION_LEN};
use crate::store::fs::segment::{self};

/// Space kept allocated in `QUEUE/reserve` for consuming a queue whose
/// pushes filled the disk: one WAL record of up to 1,000 changes (a
/// `pop --count 1000` or an ack of as many). Pushes cannot use it; a state
/// change that meets a full disk first checkpoints (freeing the WAL), then
/// frees the reserve; a queue drained on a short reserve gives back its
/// last segment too. Refilled by the next command that finds room.
pub(super) const RESERVE_LEN: u64 = 64 * 1024;

/// The reserve's file name in a queue directory.
pub(super) const RESERVE: &str = "reserve";

/// Whether a write failed for want of space (not a file size limit, which
/// freeing space elsewhere does not lift).
pub(super) fn no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
}

impl FsStore {
    /// Makes `reserve` hold [`RESERVE_LEN`] bytes of allocated space (best
    /// effort: on a full disk it stays as it is). The first time, the
    /// index's header regions are written over with what they hold, so
    /// that no header write needs a new block later.
    pub(super) fn ensure_reserve(&mut self) {
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
    pub(super) fn release_reserve(&mut self) -> bool {
        self.reserve_short = true;
        let p = self.dir.join(RESERVE);
        match segment::open_file(&*self.fs, &p, Open::Existing) {
            Ok(f) if f.len().unwrap_or(0) > 0 => f.set_len(0).is_ok(),
            _ => false,
        }
    }
}
