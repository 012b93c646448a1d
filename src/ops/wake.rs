//! How a waiting `pop` learns that a message may have come, for each store:
//! an inotify watch on the queue's directory (fs: a push appends to a
//! segment) or on the spool's bell file (sqlite: SQLite's own files change
//! on reads too), or a connection that LISTENs for the NOTIFY every commit
//! sends (PostgreSQL). `crate::ops::exec` waits through it without knowing which
//! store it talks to.

use crate::spool::Spool;
use crate::spool::stores::WakeOn;
use std::time::{Duration, Instant};

/// How often an empty queue is looked at again while waiting, when no
/// event wakes the waiter first (delays and leases run out without one).
const POLL: Duration = Duration::from_millis(250);

/// What a watch on a directory waits for: a file in it written or created.
/// Not IN_CLOSE_WRITE: a pop that finds nothing opens the queue's files for
/// writing and closes them, and would wake itself (and every other waiter).
const WRITES: u32 = libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO;

/// What wakes a waiter as soon as a message may have come, so waiting costs
/// no CPU and no latency: an inotify watch on a directory or file (a push
/// appends to a segment, or rings the sqlite bell), or, for PostgreSQL, a
/// connection that LISTENs for the NOTIFY of each commit. Where neither is
/// available, waiting falls back to polling.
pub enum Watch {
    Inotify(libc::c_int),
    Postgres(Box<postgres::Client>, String),
}

impl Watch {
    /// Watches what [`Spool::wake_on`] names for queue `queue`, or nothing
    /// (`None`: poll).
    pub fn new(spool: &Spool, queue: &str) -> Option<Watch> {
        use std::os::unix::ffi::OsStrExt;
        let (target, mask) = match spool.wake_on(queue)? {
            WakeOn::Notify(c) => return Some(Watch::Postgres(c, queue.to_string())),
            WakeOn::Writes(dir) => (dir, WRITES),
            WakeOn::Modified(file) => (file, libc::IN_MODIFY),
            WakeOn::Appears(dir) => (dir, libc::IN_CREATE | libc::IN_MOVED_TO),
        };
        let path = std::ffi::CString::new(target.as_os_str().as_bytes()).ok()?;
        // SAFETY: plain syscalls on a descriptor we own; `path` is a valid C string.
        unsafe {
            let fd = libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK);
            if fd < 0 {
                return None;
            }
            if libc::inotify_add_watch(fd, path.as_ptr(), mask) < 0 {
                libc::close(fd);
                return None;
            }
            Some(Watch::Inotify(fd))
        }
    }

    /// Blocks until an event comes or `timeout` passes.
    pub fn wait(&mut self, timeout: Duration) {
        let fd = match self {
            Watch::Inotify(fd) => *fd,
            Watch::Postgres(c, queue) => {
                let until = Instant::now() + timeout;
                let mut notes = c.notifications();
                let mut it = notes.timeout_iter(timeout);
                // Other queues' notices do not count; the deadline still holds.
                use postgres::fallible_iterator::FallibleIterator;
                while let Ok(Some(n)) = it.next() {
                    if n.payload() == queue.as_str() || Instant::now() >= until {
                        return;
                    }
                }
                return;
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one pollfd on a descriptor we own.
        unsafe {
            libc::poll(&mut pfd, 1, ms);
        }
    }
}

impl Watch {
    /// How often a waiter on `spool` looks again without an event: each look
    /// at a PostgreSQL queue costs a connection, so it looks less often.
    pub fn poll_interval(spool: &Spool) -> Duration {
        spool.poll_interval(POLL)
    }

    /// Whether the watch serves the whole wait. A LISTENing connection does;
    /// a file watch is made again before each look, since the queue's
    /// directory (or the bell file) may appear meanwhile.
    pub fn lasts(&self) -> bool {
        matches!(self, Watch::Postgres(..))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Watch::Inotify(fd) = self {
            // SAFETY: closing the descriptor we opened.
            unsafe {
                libc::close(*fd);
            }
        }
    }
}
