//! The queue lock: an exclusive `flock` (via fs2) on `QUEUE/lock`.
//!
//! Every command holds it for its short critical section only: from opening
//! the queue's files to the last write of the operation. It is never held
//! while `pop --wait` sleeps or while `exec` runs the user's command. The
//! kernel drops a flock when its holder dies, so `kill -9` never leaves a
//! queue locked.

use crate::error::{Error, IoContext, Result};
use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
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
        QueueLock::acquire_mode(path, create, true)
    }

    /// [`QueueLock::acquire`], shared (many holders) unless `exclusive`.
    pub fn acquire_mode(path: &Path, create: bool, exclusive: bool) -> Result<Option<QueueLock>> {
        // Read-only when it exists: closing a file opened for writing is an
        // inotify event in its directory, which would wake `pop --wait`ers
        // watching it (the waiter itself included) for nothing.
        let open = |write: bool| {
            OpenOptions::new()
                .read(true)
                .write(write)
                .create(write)
                .truncate(false)
                .mode(crate::io::file_mode())
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
        };
        let file = match open(false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                open(true).map_err(|e| Error::io("create lock file", path, e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open lock file", path, e)),
        };
        if exclusive {
            file.lock_exclusive().ctx("lock", path)?;
        } else {
            file.lock_shared().ctx("lock", path)?;
        }
        Ok(Some(QueueLock { file }))
    }
}

impl Drop for QueueLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}
