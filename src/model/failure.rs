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

impl How {
    /// The parts every store keeps: a kind (1 exit, 2 signal, 3 timed out,
    /// 4 could not start, 5 a nack's reason), a number (the status, the
    /// signal, the timeout in ms; else 0) and a text (else empty).
    pub fn parts(&self) -> (u8, i64, &str) {
        match self {
            How::Exit(c) => (1, i64::from(*c), ""),
            How::Signal(s) => (2, i64::from(*s), ""),
            How::TimedOut { after_ms } => (3, *after_ms as i64, ""),
            How::NotStarted(e) => (4, 0, e),
            How::Reason(r) => (5, 0, r),
        }
    }

    /// The inverse of [`How::parts`]; `None` for a kind this build does not know.
    pub fn from_parts(kind: u8, code: i64, text: String) -> Option<How> {
        Some(match kind {
            1 => How::Exit(i32::try_from(code).ok()?),
            2 => How::Signal(i32::try_from(code).ok()?),
            3 => How::TimedOut {
                after_ms: code as u64,
            },
            4 => How::NotStarted(text),
            5 => How::Reason(text),
            _ => return None,
        })
    }

    /// The kind's name in `export` (`"exit"`, `"signal"`, `"timeout"`,
    /// `"not_started"`, `"reason"`), and back.
    pub fn kind_name(kind: u8) -> &'static str {
        match kind {
            1 => "exit",
            2 => "signal",
            3 => "timeout",
            4 => "not_started",
            _ => "reason",
        }
    }

    pub fn kind_of_name(name: &str) -> Option<u8> {
        (1..=5).find(|&k| How::kind_name(k) == name)
    }
}

/// At most this many bytes of a `nack --reason` or a could-not-start error
/// are kept (the first ones).
pub const TEXT_MAX: usize = 2048;

impl Failure {
    /// The failure as kept: attempt 0 replaced by `attempts` (the message's
    /// own count), the text cut to [`TEXT_MAX`] bytes (on a char boundary)
    /// and the stderr to its last [`STDERR_TAIL`] bytes.
    pub fn kept(&self, attempts: u32) -> Failure {
        let cut = |t: &str| {
            let mut n = t.len().min(TEXT_MAX);
            while !t.is_char_boundary(n) {
                n -= 1;
            }
            t[..n].to_string()
        };
        let how = match &self.how {
            How::NotStarted(e) => How::NotStarted(cut(e)),
            How::Reason(r) => How::Reason(cut(r)),
            h => h.clone(),
        };
        let from = self.stderr.len().saturating_sub(STDERR_TAIL);
        Failure {
            at_ms: self.at_ms,
            attempt: if self.attempt == 0 {
                attempts
            } else {
                self.attempt
            },
            how,
            stderr: self.stderr[from..].to_vec(),
        }
    }
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
    fn every_way_of_failing_round_trips_through_its_parts() {
        for h in [
            How::Exit(-3),
            How::Signal(9),
            How::TimedOut { after_ms: 1500 },
            How::NotStarted("no such file".into()),
            How::Reason("503".into()),
        ] {
            let (k, c, t) = h.parts();
            assert_eq!(How::from_parts(k, c, t.to_string()), Some(h.clone()));
            assert_eq!(How::kind_of_name(How::kind_name(k)), Some(k));
        }
        assert_eq!(How::from_parts(9, 0, String::new()), None);
    }

    #[test]
    fn a_kept_failure_has_its_attempt_and_bounded_texts() {
        let f = Failure {
            at_ms: 1,
            attempt: 0,
            how: How::Reason("é".repeat(TEXT_MAX)),
            stderr: vec![b'x'; STDERR_TAIL + 10],
        };
        let k = f.kept(4);
        assert_eq!(k.attempt, 4);
        assert_eq!(k.stderr.len(), STDERR_TAIL);
        let How::Reason(r) = k.how else { panic!() };
        assert!(r.len() <= TEXT_MAX && r.len() >= TEXT_MAX - 1);
    }

    #[test]
    fn a_zero_duration_is_in_milliseconds() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(86_400_000), "1d");
        assert_eq!(duration(7_200_000), "2h");
    }
}
