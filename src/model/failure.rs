//! What went wrong with one attempt at a message: how it failed and the end
//! of what the command wrote on stderr. `exec` makes one for every failed
//! attempt and `nack --reason` one for its reason; the queue hands it on to
//! be kept with the message.

use std::fmt;

/// At most this many bytes of a command's stderr are kept with a failure
/// (the last ones: where the error usually is).
pub const STDERR_TAIL: usize = 2048;

/// How an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// The command exited with this non-zero status.
    Exit(i32),
    /// The command was killed by this signal.
    Signal(i32),
    /// The command ran past `--timeout` and was killed.
    TimedOut { after_ms: u64 },
    /// The command could not be started (the error, as the system said it).
    NotStarted(String),
    /// `nack --reason`: the text as given.
    Reason(String),
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// When it failed, milliseconds since the UNIX epoch.
    pub at_ms: u64,
    /// The delivery that failed (1 for the first); 0 when the caller does
    /// not know it (`nack --reason` of receipts): the message's own count
    /// of attempts is the one.
    pub attempt: u32,
    pub how: How,
    /// The last [`STDERR_TAIL`] bytes (at most) the command wrote on stderr.
    pub stderr: Vec<u8>,
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            How::Exit(c) => write!(f, "exit status {c}"),
            How::Signal(s) => match signal_name(*s) {
                Some(name) => write!(f, "signal {name}"),
                None => write!(f, "signal {s}"),
            },
            How::TimedOut { after_ms } => write!(f, "timed out after {}", duration(*after_ms)),
            How::NotStarted(e) => write!(f, "could not start: {e}"),
            How::Reason(r) => f.write_str(r),
        }
    }
}

/// `2s`, `500ms`, `5m`, `2h`, `1d`, `1500ms`: the largest unit that is whole,
/// in the form `--timeout` takes.
fn duration(ms: u64) -> String {
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= per && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// The name of signal `s` (`SIGKILL`), for the signals Linux numbers alike
/// on every architecture spoolmq builds for.
pub fn signal_name(s: i32) -> Option<&'static str> {
    let names = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGCHLD, "SIGCHLD"),
        (libc::SIGCONT, "SIGCONT"),
        (libc::SIGSTOP, "SIGSTOP"),
        (libc::SIGTSTP, "SIGTSTP"),
        (libc::SIGTTIN, "SIGTTIN"),
        (libc::SIGTTOU, "SIGTTOU"),
        (libc::SIGURG, "SIGURG"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGWINCH, "SIGWINCH"),
        (libc::SIGIO, "SIGIO"),
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    names.iter().find(|(n, _)| *n == s).map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_way_of_failing_reads_as_one_phrase() {
        assert_eq!(How::Exit(3).to_string(), "exit status 3");
        assert_eq!(How::Signal(9).to_string(), "signal SIGKILL");
        assert_eq!(How::Signal(15).to_string(), "signal SIGTERM");
        assert_eq!(How::Signal(77).to_string(), "signal 77");
        assert_eq!(
            How::TimedOut { after_ms: 2000 }.to_string(),
            "timed out after 2s"
        );
        assert_eq!(
            How::TimedOut { after_ms: 1500 }.to_string(),
            "timed out after 1500ms"
        );
        assert_eq!(
            How::TimedOut { after_ms: 300_000 }.to_string(),
            "timed out after 5m"
        );
        let enoent = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            How::NotStarted(enoent.to_string()).to_string(),
            "could not start: No such file or directory (os error 2)"
        );
        assert_eq!(
            How::Reason("upstream said 503".into()).to_string(),
            "upstream said 503"
        );
    }

    #[test]
    fn a_zero_duration_is_in_milliseconds() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(86_400_000), "1d");
        assert_eq!(duration(7_200_000), "2h");
    }
}
