//! One command that `exec` runs: started in a process group of its own (so
//! a signal reaches every process it started), its body written to its
//! stdin, its stderr copied to ours as it comes while the last
//! [`STDERR_TAIL`] bytes are kept for the failure record, and its exit
//! reported by the thread that copies (watching a pidfd), or by one that
//! waits for it where the kernel has no pidfd.

use crate::model::failure::STDERR_TAIL;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What to start.
pub struct Spec<'a> {
    pub cmd: &'a [OsString],
    /// Where `cmd[0]` was found on `PATH` ([`find_on_path`]), if it was:
    /// started from there, with `cmd[0]` as its argv[0].
    pub path: Option<&'a Path>,
    pub env: Vec<(&'static str, OsString)>,
    pub remove: &'a [&'static str],
    pub body: Vec<u8>,
}

/// A started command.
pub struct Child {
    /// Its process id, which is also its process group's.
    pub pgid: i32,
    tail: Tail,
}

impl Child {
    /// Sends `sig` to the command's whole process group.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a negative pid signals a process group.
        // ESRCH (the group is gone) is fine.
        unsafe {
            libc::kill(-self.pgid, sig);
        }
    }

    /// The last bytes of the command's stderr. Waits up to `grace` for the
    /// pipe to close: a process the command left behind may hold it open.
    pub fn stderr_tail(&self, grace: Duration) -> Vec<u8> {
        self.tail.finish(grace)
    }
}

/// Starts `spec`; `on_exit` is called on another thread with its status.
pub fn spawn(
    spec: Spec,
    on_exit: impl FnOnce(std::io::Result<ExitStatus>) + Send + 'static,
) -> std::io::Result<Child> {
    let (program, args) = spec
        .cmd
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command given"))?;
    let mut command = match spec.path {
        Some(path) => {
            let mut c = Command::new(path);
            c.arg0(program);
            c
        }
        None => Command::new(program),
    };
    command.args(args);
    for k in spec.remove {
        command.env_remove(k);
    }
    let mut child = command
        .envs(spec.env)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pgid = child.id() as i32;
    if let Some(mut stdin) = child.stdin.take() {
        let body = spec.body;
        // What the pipe takes at once is written here (all of a body up to
        // its 64 KiB, usually), so most jobs need no writer thread: the
        // thread was a third of the clone(2)s `exec --loop` made per job.
        // The rest goes from a thread, which blocks until the command reads
        // it. A command that does not read its stdin is fine: EPIPE (and
        // any other error) only ends the writing.
        if let Some(n) = write_now(&mut stdin, &body).filter(|&n| n < body.len()) {
            std::thread::spawn(move || {
                let _ = stdin.write_all(&body[n..]);
            });
        }
    }
    let tail = Tail::default();
    let t = tail.clone();
    match (child.stderr.take(), PidFd::open(pgid)) {
        // One thread copies stderr and sees the exit (a thread per job
        // fewer: each clone(2) was about a twentieth of a job's time).
        (Some(stderr), Some(pidfd)) => {
            std::thread::spawn(move || {
                let mut on_exit = Some(on_exit);
                let mut report = || {
                    if let Some(f) = on_exit.take() {
                        f(child.wait());
                    }
                };
                t.copy(stderr, Some(pidfd), &mut report);
                // Stderr ended first, or poll(2) failed.
                report();
            });
        }
        (stderr, _) => {
            match stderr {
                Some(stderr) => {
                    std::thread::spawn(move || t.copy(stderr, None, &mut || {}));
                }
                None => t.close(),
            }
            std::thread::spawn(move || on_exit(child.wait()));
        }
    }
    Ok(Child { pgid, tail })
}

/// A descriptor that becomes readable when a child process ends
/// (pidfd_open(2), Linux 5.3 and later).
struct PidFd(std::os::fd::OwnedFd);

impl PidFd {
    /// `None` where the kernel has no pidfd_open: the caller waits on a
    /// thread of its own instead.
    fn open(pid: i32) -> Option<PidFd> {
        use std::os::fd::FromRawFd;
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new
        // descriptor or -1. The pid is our own child's, not yet waited for,
        // so it cannot have been reused.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = i32::try_from(fd).ok().filter(|&fd| fd >= 0)?;
        // SAFETY: a descriptor just returned to us, owned by nothing else.
        Some(PidFd(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }
}

/// Where a command named without a `/` is on `$PATH`, as execvp(3) would
/// find it: the first entry (an empty one is the working directory) that
/// holds an executable file of that name. `exec --loop` looks once, not for
/// each job: the search made eight execve(2)s per job of `true`, seven of
/// them failing. `None`: the name is a path, or not found (then starting
/// it by name fails as it would have).
pub fn find_on_path(name: &OsStr) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    if name.is_empty() || name.as_bytes().contains(&b'/') {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let file = dir.join(name);
        let meta = std::fs::metadata(&file).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(file)
    })
}

/// Writes what `pipe` takes of `body` without blocking, and leaves the pipe
/// blocking again: how many bytes went, or `None` after an error.
fn write_now(pipe: &mut std::process::ChildStdin, body: &[u8]) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let fd = pipe.as_raw_fd();
    let set = |on: bool| {
        // SAFETY: fcntl(2) on a descriptor this process owns (the write end
        // of the command's stdin, which nothing else shares).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            let flags = if on {
                flags | libc::O_NONBLOCK
            } else {
                flags & !libc::O_NONBLOCK
            };
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags) == 0
        }
    };
    if !set(true) {
        return Some(0);
    }
    let mut done = 0;
    let got = loop {
        if done == body.len() {
            break Some(done);
        }
        match pipe.write(&body[done..]) {
            Ok(0) => break None,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break Some(done),
            Err(_) => break None,
        }
    };
    if got.is_some_and(|n| n < body.len()) && !set(false) {
        // Cannot block again: the thread would spin on EAGAIN; give up the
        // rest, as for a command that stopped reading.
        return None;
    }
    got
}

/// The end of a command's stderr, shared with the thread that copies it.
#[derive(Clone, Default)]
struct Tail(Arc<(Mutex<TailState>, Condvar)>);

#[derive(Default)]
struct TailState {
    bytes: VecDeque<u8>,
    closed: bool,
}

impl Tail {
    /// Copies `from` to our stderr until it ends, keeping its last bytes;
    /// with `child`, calls `exited` as soon as it says the process ended
    /// (stderr may stay open after that: a process it left behind may hold
    /// it), else never.
    fn copy(
        &self,
        mut from: std::process::ChildStderr,
        child: Option<PidFd>,
        exited: &mut dyn FnMut(),
    ) {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 8192];
        let mut watching = child.is_some();
        loop {
            if watching {
                let mut fds = [
                    from.as_raw_fd(),
                    child.as_ref().map_or(-1, |c| c.0.as_raw_fd()),
                ]
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
                // SAFETY: poll(2) over an array we own, whose descriptors
                // stay open for the call.
                let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
                if r < 0 {
                    if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    // Cannot poll: only copy (the caller then waits).
                    watching = false;
                    continue;
                }
                if fds[1].revents != 0 {
                    watching = false;
                    exited();
                }
                if fds[0].revents == 0 {
                    continue;
                }
            }
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    // A stderr we cannot write to must not stop the command.
                    let _ = std::io::stderr().write_all(&buf[..n]);
                    self.keep(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.close();
    }

    fn keep(&self, chunk: &[u8]) {
        let (lock, _) = &*self.0;
        let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
        let chunk = &chunk[chunk.len().saturating_sub(STDERR_TAIL)..];
        let excess = (s.bytes.len() + chunk.len()).saturating_sub(STDERR_TAIL);
        s.bytes.drain(..excess);
        s.bytes.extend(chunk);
    }

    fn close(&self) {
        let (lock, cv) = &*self.0;
        lock.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        cv.notify_all();
    }

    fn finish(&self, grace: Duration) -> Vec<u8> {
        let (lock, cv) = &*self.0;
        let s = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (s, _) = cv
            .wait_timeout_while(s, grace, |s| !s.closed)
            .unwrap_or_else(|p| p.into_inner());
        s.bytes.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_only_the_last_bytes() {
        let t = Tail::default();
        for i in 0..1000u32 {
            t.keep(format!("line {i}\n").as_bytes());
        }
        t.keep(&[b'x'; 10]);
        t.close();
        let got = t.finish(Duration::ZERO);
        assert_eq!(got.len(), STDERR_TAIL);
        assert!(got.ends_with(b"line 999\nxxxxxxxxxx"));
        let big = Tail::default();
        big.keep(&vec![b'y'; 3 * STDERR_TAIL]);
        assert_eq!(big.finish(Duration::ZERO).len(), STDERR_TAIL);
    }
}
