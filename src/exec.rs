//! Waiting for messages and the `exec` work loop.
//!
//! Waiting watches the queue's directory with inotify, so a message pushed
//! by another process wakes the waiter at once; it also looks again every
//! 250 ms, for delays and leases that run out (and, where inotify is not
//! available, for everything). Neither holds the queue lock while it waits or while the user's command
//! runs: each pop, extend, ack and nack opens the queue, does its short
//! critical section and closes it again.
//!
//! `exec` keeps the lease alive: every half lease it extends the lease to a
//! full lease from now, so a job that runs longer than `--lease` is never
//! delivered twice while its command is alive. If `exec` itself dies, the
//! extensions stop and the message is delivered again when the lease runs out.

use crate::error::{Error, Result};
use crate::queue::{Delivery, Queue, now_ms};
use crate::spool::{Spool, StoreKind};
use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often an empty queue is looked at again while waiting, when no file
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
enum Watch {
    Inotify(libc::c_int),
    Postgres(Box<postgres::Client>, String),
}

impl Watch {
    /// Watches the queue's directory, or the spool's while the queue does not
    /// exist yet, or nothing (`None`: poll).
    fn new(spool: &Spool, queue: &str) -> Option<Watch> {
        use std::os::unix::ffi::OsStrExt;
        if spool.kind == StoreKind::Postgres {
            let mut c = crate::pgstore::connect(spool.url().ok()?).ok()?;
            c.batch_execute(&format!("LISTEN {}", crate::pgstore::CHANNEL))
                .ok()?;
            return Some(Watch::Postgres(Box::new(c), queue.to_string()));
        }
        let dir = spool.queue_dir(queue);
        let bell = spool.root.join(crate::sqlstore::BELL_FILE);
        let (target, mask) = match spool.kind {
            StoreKind::Fs if dir.is_dir() => (dir, WRITES),
            // SQLite's own files change when a command only reads (its lock
            // and shared-memory files): a push rings the bell file instead.
            StoreKind::Sqlite if bell.is_file() => (bell, libc::IN_MODIFY),
            StoreKind::Sqlite => (spool.root.clone(), libc::IN_CREATE | libc::IN_MOVED_TO),
            StoreKind::Fs | StoreKind::Postgres => (spool.root.clone(), WRITES),
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
    fn wait(&mut self, timeout: Duration) {
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

/// A sink for lines meant for stderr (damage found and skipped, job failures).
pub type Warn<'a> = &'a mut dyn FnMut(String);

/// What `pop` was asked for.
#[derive(Debug, Clone)]
pub struct PopRequest {
    pub count: usize,
    pub lease: Duration,
    pub max_attempts: u32,
    /// `None`: do not wait. `Some(None)`: wait forever. `Some(Some(d))`: up to `d`.
    pub wait: Option<Option<Duration>>,
}

/// Pops, waiting as asked. An empty result means nothing came in time.
pub fn pop(spool: &Spool, queue: &str, req: &PopRequest, warn: Warn) -> Result<Vec<Delivery>> {
    let deadline = match req.wait {
        None => Some(Instant::now()),
        Some(None) => None,
        Some(Some(d)) => Some(Instant::now() + d),
    };
    // A PostgreSQL watch (a LISTENing connection) is kept; a file watch is
    // made again each time, since the queue's directory may appear meanwhile.
    let keep = spool.kind == StoreKind::Postgres;
    // Without a file to watch, the poll is the safety net; each poll of the
    // database costs a connection, so it polls less often.
    let poll = if keep { Duration::from_secs(1) } else { POLL };
    let mut watch: Option<Watch> = None;
    loop {
        // Watch first, then look: a push between the look and the wait still wakes us.
        if !keep || watch.is_none() {
            watch = req.wait.and_then(|_| Watch::new(spool, queue));
        }
        if let Some(mut q) = Queue::open(spool, queue, false)? {
            let got = q.pop(req.count, req.lease, req.max_attempts, now_ms());
            q.take_notices().into_iter().for_each(&mut *warn);
            let got = got?;
            if !got.is_empty() {
                return Ok(got);
            }
        }
        let pause = match deadline {
            None => poll,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Vec::new());
                }
                left.min(poll)
            }
        };
        match watch.as_mut() {
            Some(w) => w.wait(pause),
            None => std::thread::sleep(pause),
        }
    }
}

/// What `exec` was asked for.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub lease: Duration,
    pub max_attempts: u32,
    pub wait: Option<Option<Duration>>,
    pub repeat: bool,
    pub cmd: Vec<OsString>,
}

/// Runs `exec`. Returns how many messages were handled; `Err(Empty)` when
/// there was nothing to do, an exit-1 error when a command failed.
pub fn exec(spool: &Spool, queue: &str, req: &ExecRequest, warn: Warn) -> Result<u64> {
    let pop_req = PopRequest {
        count: 1,
        lease: req.lease,
        max_attempts: req.max_attempts,
        wait: req.wait,
    };
    let mut ran = 0u64;
    let mut failed = 0u64;
    let mut stale = 0u64;
    while let Some(d) = pop(spool, queue, &pop_req, warn)?.into_iter().next() {
        ran += 1;
        match run_one(spool, queue, req, &d, warn)? {
            Handled::Acked => {}
            Handled::Nacked => failed += 1,
            Handled::LostLease => stale += 1,
        }
        if !req.repeat {
            break;
        }
    }
    if ran == 0 {
        return Err(Error::Empty(format!(
            "{queue}: nothing to do: no ready message"
        )));
    }
    if stale > 0 {
        return Err(Error::Stale(format!(
            "{queue}: {stale} of {ran} messages lost their lease before the command finished; they may be delivered again"
        )));
    }
    if failed > 0 {
        return Err(Error::Runtime(format!(
            "{queue}: {failed} of {ran} commands failed; their messages were nacked"
        )));
    }
    Ok(ran)
}

enum Handled {
    Acked,
    Nacked,
    LostLease,
}

fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".into(),
    }
}

fn settle(spool: &Spool, queue: &str, receipt: &str, ok: bool, req: &ExecRequest) -> Result<usize> {
    let mut q = Queue::open_existing(spool, queue)?;
    let receipts = [receipt.to_string()];
    let s = if ok {
        q.ack(&receipts, now_ms())?
    } else {
        q.nack(&receipts, Duration::ZERO, req.max_attempts, now_ms())?
    };
    s.into_result()
}

fn run_one(
    spool: &Spool,
    queue: &str,
    req: &ExecRequest,
    d: &Delivery,
    warn: Warn,
) -> Result<Handled> {
    let (program, args) = req
        .cmd
        .split_first()
        .ok_or_else(|| Error::usage("exec: no command given after --"))?;
    let spawned = Command::new(program)
        .args(args)
        .env("SPOOLMQ_ID", &d.id)
        .env("SPOOLMQ_RECEIPT", &d.receipt)
        .env("SPOOLMQ_ATTEMPT", d.attempt.to_string())
        .env("SPOOLMQ_QUEUE", queue)
        .env("SPOOLMQ_DIR", &spool.root)
        .stdin(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            // Give the message back at once rather than hold it for a whole lease.
            let _ = settle(spool, queue, &d.receipt, false, req);
            return Err(Error::Runtime(format!(
                "cannot run {}: {e}; message {} was nacked",
                program.to_string_lossy(),
                d.id
            )));
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let body = d.body.clone();
        // A command that does not read its stdin is fine: ignore EPIPE.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let half = (req.lease / 2).max(Duration::from_millis(50));
    let mut lease_ok = true;
    let status = loop {
        match rx.recv_timeout(half) {
            Ok(status) => break status,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if lease_ok {
                    let extended = Queue::open_existing(spool, queue).and_then(|mut q| {
                        q.extend(std::slice::from_ref(&d.receipt), req.lease, now_ms())?
                            .into_result()
                    });
                    if let Err(e) = extended {
                        lease_ok = false;
                        warn(format!(
                            "{queue}: message {}: cannot extend the lease: {e}",
                            d.id
                        ));
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Runtime("lost track of the command".into()));
            }
        }
    };
    let status = status.map_err(|e| Error::Runtime(format!("waiting for the command: {e}")))?;
    let ok = status.success();
    if !ok {
        let fate = if d.attempt >= req.max_attempts {
            format!("it is now a dead letter after {} attempts", d.attempt)
        } else {
            format!("nacked (attempt {} of {})", d.attempt, req.max_attempts)
        };
        warn(format!(
            "{queue}: message {}: command {}; {fate}",
            d.id,
            describe(&status)
        ));
    }
    match settle(spool, queue, &d.receipt, ok, req) {
        Ok(_) if ok => Ok(Handled::Acked),
        Ok(_) => Ok(Handled::Nacked),
        Err(Error::Stale(m)) => {
            warn(m);
            Ok(Handled::LostLease)
        }
        Err(e) => Err(e),
    }
}
