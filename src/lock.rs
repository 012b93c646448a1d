//! The queue lock: an exclusive `flock` (via fs2) on `QUEUE/lock`.
//!
//! Every command holds it for its short critical section only: from opening
//! the queue's files to the last write of the operation. It is never held
//! while `pop --wait` sleeps or while `exec` runs the user's command. The
//! kernel drops a flock when its holder dies, so `kill -9` never leaves a
//! queue locked.

use crate::error::{Error, IoContext, Result};
use crate::segment::{Open, open_file};
use fs2::FileExt;
use std::fs::File;
use std::path::Path;

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct QueueLock {
    file: File,
}

impl QueueLock {
    /// Locks `path`, creating the lock file (0600) if `create` and it is missing.
    /// Returns `None` if it is missing and `create` is false.
    pub fn acquire(path: &Path, create: bool) -> Result<Option<QueueLock>> {
        let how = if create {
            Open::OrCreate
        } else {
            Open::Existing
        };
        let file = match open_file(path, how) {
            Ok(f) => f,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        file.lock_exclusive().ctx("lock", path)?;
        Ok(Some(QueueLock { file }))
    }
}

impl Drop for QueueLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}
