//! The spool: the directory that holds one sub-directory per queue.
//!
//! ```text
//! SPOOL/                      mode 0700, created on first write
//!   QUEUE/                    mode 0700, one per queue
//!     lock                    flock target (crate::lock)
//!     index                   headers (crate::index)
//!     slots                   one 64-byte slot per message (crate::index)
//!     wal                     write-ahead log of state changes (crate::index)
//!     00000000000000000001.seg  segment files (crate::segment, crate::record)
//! ```
//!
//! Where the spool is: `--dir` > `SPOOLMQ_DIR` > `$XDG_DATA_HOME/spoolmq` >
//! `$HOME/.local/share/spoolmq`. Read-only commands never create anything.
//! A directory created here is fsynced into its parent before it is used.

use crate::error::{Error, IoContext, Result};
use crate::input;
use crate::segment::sync_dir;
use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Resolves the spool directory from the flag and the environment.
pub fn resolve(flag: Option<PathBuf>, env: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf> {
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = flag {
        if d.as_os_str().is_empty() {
            return Err(Error::usage("--dir: the spool directory must not be empty"));
        }
        return Ok(d);
    }
    if let Some(d) = nonempty("SPOOLMQ_DIR") {
        return Ok(d);
    }
    if let Some(d) = nonempty("XDG_DATA_HOME") {
        return Ok(d.join("spoolmq"));
    }
    if let Some(h) = nonempty("HOME") {
        return Ok(h.join(".local/share/spoolmq"));
    }
    Err(Error::usage(
        "cannot tell where the spool is: pass --dir DIR or set SPOOLMQ_DIR",
    ))
}

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    pub root: PathBuf,
}

impl Spool {
    pub fn new(root: PathBuf) -> Spool {
        Spool { root }
    }

    /// The directory of queue `name` (already validated).
    pub fn queue_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Checks the spool for reading: it is absent (`Ok(false)`) or a directory.
    pub fn exists(&self) -> Result<bool> {
        match std::fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(true),
            Ok(_) => Err(not_a_dir(&self.root)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("open spool", &self.root, e)),
        }
    }

    /// Creates the spool (0700) and the queue directory (0700) if missing,
    /// fsyncing each new entry into its parent.
    pub fn create_queue_dir(&self, name: &str) -> Result<PathBuf> {
        mkdir_durable(&self.root, true)?;
        let dir = self.queue_dir(name);
        mkdir_durable(&dir, false)?;
        Ok(dir)
    }

    /// The queue directories in the spool (damaged ones included), sorted by name.
    pub fn queues(&self) -> Result<Vec<String>> {
        if !self.exists()? {
            return Ok(Vec::new());
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.root).ctx("list spool", &self.root)? {
            let entry = entry.ctx("list spool", &self.root)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if input::queue_name(&name).is_ok()
                && crate::fsstore::FsStore::is_queue(&crate::io::RealFs, &entry.path())?
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

fn not_a_dir(p: &Path) -> Error {
    Error::Runtime(format!("{}: not a directory", p.display()))
}

/// Creates `dir` with mode 0700 if it is missing and fsyncs its parent.
/// `parents`: create missing ancestors too (with default modes).
fn mkdir_durable(dir: &Path, parents: bool) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => return Err(not_a_dir(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(not_a_dir(dir)),
        Err(e) => return Err(Error::io("open directory", dir, e)),
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if parents {
        std::fs::create_dir_all(parent).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTDIR) | Some(libc::EEXIST) => not_a_dir(parent),
            _ => Error::io("create directory", parent, e),
        })?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(not_a_dir(parent)),
        Err(e) => return Err(Error::io("create directory", dir, e)),
    }
    // The umask may have taken bits away; the contract wants exactly 0700.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).ctx("chmod", dir)?;
    sync_dir(&crate::io::RealFs, parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn the_flag_beats_the_environment() {
        let all = [
            ("SPOOLMQ_DIR", "/s"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(
            resolve(Some("/f".into()), env(&all)).unwrap(),
            PathBuf::from("/f")
        );
        assert_eq!(resolve(None, env(&all)).unwrap(), PathBuf::from("/s"));
        assert_eq!(
            resolve(None, env(&all[1..])).unwrap(),
            PathBuf::from("/x/spoolmq")
        );
        assert_eq!(
            resolve(None, env(&all[2..])).unwrap(),
            PathBuf::from("/h/.local/share/spoolmq")
        );
        assert_eq!(resolve(None, env(&[])).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let e = [("SPOOLMQ_DIR", ""), ("HOME", "/h")];
        assert_eq!(
            resolve(None, env(&e)).unwrap(),
            PathBuf::from("/h/.local/share/spoolmq")
        );
    }
}
