//! Typed errors and the exit codes of the command-line contract.
//!
//! Every failure the library can report is an [`Error`]; its [`Error::exit_code`]
//! is the contract's code. `main` prints the error once, as one line
//! (`spoolmq: <message>`), and exits with that code.
//!
//! | code | kind |
//! |---|---|
//! | 1 | [`Error::Io`], [`Error::Corrupt`], [`Error::Runtime`], [`Error::NoSuchQueue`], [`Error::DiskFull`] |
//! | 2 | [`Error::Usage`] |
//! | 3 | [`Error::Empty`] |
//! | 4 | [`Error::Stale`] |

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong, sorted by what the caller can do about it.
#[derive(Debug)]
pub enum Error {
    /// Bad flag, queue name, duration or count (exit 2).
    Usage(String),
    /// An I/O call failed on `path` while doing `what` (exit 1).
    Io {
        what: String,
        path: PathBuf,
        source: io::Error,
    },
    /// A write failed because the file system is full (exit 1).
    DiskFull { what: String, path: PathBuf },
    /// Data on disk is damaged in a way that cannot be skipped (exit 1).
    Corrupt { path: PathBuf, detail: String },
    /// The queue does not exist (exit 1).
    NoSuchQueue(String),
    /// Any other runtime failure (exit 1).
    Runtime(String),
    /// Nothing to pop: no ready message (exit 3).
    Empty(String),
    /// A receipt is stale or unknown (exit 4).
    Stale(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The contract's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Empty(_) => 3,
            Error::Stale(_) => 4,
            _ => 1,
        }
    }

    /// An I/O error on `path`; a full disk (ENOSPC, EDQUOT, EFBIG) becomes [`Error::DiskFull`].
    pub fn io(what: impl Into<String>, path: &Path, source: io::Error) -> Error {
        let full = matches!(
            source.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
        ) || source.kind() == io::ErrorKind::StorageFull;
        if source.raw_os_error() == Some(libc::ELOOP) {
            // O_NOFOLLOW met a symlink (see Error::symlink).
            return Error::symlink(path);
        }
        if full {
            Error::DiskFull {
                what: what.into(),
                path: path.to_path_buf(),
            }
        } else {
            Error::Io {
                what: what.into(),
                path: path.to_path_buf(),
                source,
            }
        }
    }

    /// A symlink found where a spool keeps a file or a directory: refused,
    /// never followed (someone may have planted it to make spoolmq read or
    /// write elsewhere).
    pub fn symlink(path: &Path) -> Error {
        Error::Runtime(format!(
            "{}: is a symbolic link; spoolmq does not follow links inside a spool (remove it, and check who could create it)",
            path.display()
        ))
    }

    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Runtime(m) | Error::Empty(m) | Error::Stale(m) => {
                f.write_str(m)
            }
            Error::Io { what, path, source } => {
                write!(f, "{}: {what}: {source}", path.display())
            }
            Error::DiskFull { what, path } => {
                write!(
                    f,
                    "{}: {what}: disk full (no space left on the device, or the file size limit reached)",
                    path.display()
                )
            }
            Error::Corrupt { path, detail } => write!(f, "{}: {detail}", path.display()),
            Error::NoSuchQueue(q) => write!(f, "no such queue: {q}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Attach a description and a path to an `io::Result`.
pub trait IoContext<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(what, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Error::usage("x").exit_code(), 2);
        assert_eq!(Error::Empty("x".into()).exit_code(), 3);
        assert_eq!(Error::Stale("x".into()).exit_code(), 4);
        assert_eq!(Error::NoSuchQueue("q".into()).exit_code(), 1);
    }

    #[test]
    fn a_full_disk_is_named_as_such() {
        let e = Error::io(
            "append",
            Path::new("/s/q/x.seg"),
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert!(matches!(e, Error::DiskFull { .. }));
        assert!(e.to_string().contains("disk full"));
        assert!(e.to_string().contains("/s/q/x.seg"));
    }

    #[test]
    fn a_symlink_met_by_o_nofollow_is_named_as_such() {
        let e = Error::io(
            "open",
            Path::new("/s/q/index"),
            io::Error::from_raw_os_error(libc::ELOOP),
        );
        assert!(
            e.to_string().contains("/s/q/index: is a symbolic link"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 1);
    }
}
