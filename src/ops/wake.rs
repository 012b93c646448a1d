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
///
/// One watch serves a waiter for its whole life (a worker's every pop):
/// closing an inotify descriptor waits for the kernel's RCU grace period,
/// about 6.5 ms here, and a watch made and dropped per pop made `exec
/// --loop --wait` 8.5 times slower than `exec --loop`. So the descriptor
/// (or the LISTENing connection) is made once, and before each look
/// [`Watch::arm`] forgets the events already seen (our own writes among
/// them) and points the watch at what now wakes the queue: its directory
/// may have appeared since, or been made anew.
pub enum Watch {
    Inotify(libc::c_int),
    Postgres(Box<postgres::Client>, String),
}

impl Watch {
    /// A watch for queue `queue`, armed; or nothing (`None`: poll).
    pub fn new(spool: &Spool, queue: &str) -> Option<Watch> {
        let mut w = match spool.wake_on(queue)? {
            WakeOn::Notify(c) => return Some(Watch::Postgres(c, queue.to_string())),
            _ => {
                // SAFETY: a plain syscall; the descriptor is ours to close (Drop).
                let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
                if fd < 0 {
                    return None;
                }
                Watch::Inotify(fd)
            }
        };
        w.arm(spool, queue).then_some(w)
    }

    /// Before a look: drops the events that came since the last one and
    /// watches what now wakes the queue (adding a watch on a path already
    /// watched only updates it). False if nothing can be watched.
    pub fn arm(&mut self, spool: &Spool, queue: &str) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let fd = match self {
            Watch::Inotify(fd) => *fd,
            Watch::Postgres(c, _) => {
                // Notices of commits already made (ours too) are not news.
                use postgres::fallible_iterator::FallibleIterator;
                let mut notes = c.notifications();
                let mut pending = notes.iter();
                while let Ok(Some(_)) = pending.next() {}
                return true;
            }
        };
        let mut events = [0u8; 4096];
        // SAFETY: reads into a buffer we own from a non-blocking descriptor we own.
        while unsafe { libc::read(fd, events.as_mut_ptr().cast(), events.len()) } > 0 {}
        let (target, mask) = match spool.wake_on(queue) {
            Some(WakeOn::Writes(dir)) => (dir, WRITES),
            Some(WakeOn::Modified(file)) => (file, libc::IN_MODIFY),
            Some(WakeOn::Appears(dir)) => (dir, libc::IN_CREATE | libc::IN_MOVED_TO),
            Some(WakeOn::Notify(_)) | None => return false,
        };
        let Ok(path) = std::ffi::CString::new(target.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: a plain syscall on a descriptor we own; `path` is a valid C string.
        unsafe { libc::inotify_add_watch(fd, path.as_ptr(), mask) >= 0 }
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
}

/// The watch of one waiter, made when it first waits and kept for its life
/// (see [`Watch`]); one that could not be made is tried again at the next
/// look.
#[derive(Default)]
pub struct Waiter {
    watch: Option<Watch>,
}

impl Waiter {
    /// Readies the watch before a look; false if there is none (poll).
    pub fn arm(&mut self, spool: &Spool, queue: &str) -> bool {
        if let Some(w) = &mut self.watch
            && w.arm(spool, queue)
        {
            return true;
        }
        self.watch = Watch::new(spool, queue);
        self.watch.is_some()
    }

    /// Blocks until an event comes or `timeout` passes (sleeps without a watch).
    pub fn wait(&mut self, timeout: Duration) {
        match self.watch.as_mut() {
            Some(w) => w.wait(timeout),
            None => std::thread::sleep(timeout),
        }
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
