//! One command that `exec` runs: started in a process group of its own (so
//! a signal reaches every process it started), its body written to its
//! stdin, its stderr copied to ours as it comes while the last
//! [`STDERR_TAIL`] bytes are kept for the failure record, and its exit
//! reported by a thread that waits for it.

use crate::model::failure::STDERR_TAIL;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What to start.
pub struct Spec<'a> {
    pub cmd: &'a [OsString],
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
    let mut command = Command::new(program);
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
        // A command that does not read its stdin is fine: EPIPE is ignored.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
    }
    let tail = Tail::default();
    if let Some(stderr) = child.stderr.take() {
        let t = tail.clone();
        std::thread::spawn(move || t.copy(stderr));
    } else {
        tail.close();
    }
    std::thread::spawn(move || on_exit(child.wait()));
    Ok(Child { pgid, tail })
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
    /// Copies `from` to our stderr until it ends, keeping its last bytes.
    fn copy(&self, mut from: impl Read) {
        let mut buf = [0u8; 8192];
        loop {
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
