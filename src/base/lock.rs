//! The queue and spool locks: `flock` (via fs2) on an open lock file.
//!
//! Every command holds a queue's lock (`QUEUE/lock`, exclusive) for its
//! short critical section only: from opening the queue's files to the last
//! write of the operation. It is never held while `pop --wait` sleeps or
//! while `exec` runs the user's command. The spool lock (`.spool.lock`) is
//! shared by fs commands and exclusive for the sqlite store and `migrate`.
//! The kernel drops a flock when its holder dies, so `kill -9` never leaves
//! a queue locked. The lock file is opened by the I/O seam
//! ([`crate::base::io::RealFs::lock_file`]), never by path here.

use fs2::FileExt;
use std::fs::File;
use std::io;

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct QueueLock {
    file: File,
}

impl QueueLock {
    /// Locks the open lock file: exclusive, or shared (many holders).
    pub fn hold(file: File, exclusive: bool) -> io::Result<QueueLock> {
        if exclusive {
            file.lock_exclusive()?;
        } else {
            file.lock_shared()?;
        }
        Ok(QueueLock { file })
    }
}

impl Drop for QueueLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}
