//! The I/O seam: every read, write, fsync, create, rename, unlink, truncate
//! and directory sync of the file store goes through [`Fs`] and [`FileIo`].
//! The product uses [`RealFs`]; the power-loss tests plug in
//! [`crate::simfs::SimFs`], which can lose power at any event.

use crate::lock::QueueLock;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static SHARED: AtomicBool = AtomicBool::new(false);
/// The umask before [`set_shared`] changed it (`u32::MAX`: unchanged).
static OLD_UMASK: AtomicU32 = AtomicU32::new(u32::MAX);

/// Makes this process create files and directories for a spool shared with
/// its group (`spoolmq init --group`): files 0660, directories 2770, and a
/// umask of 007 so that the group bits survive; `false` goes back to
/// private modes and the umask the process started with (for a new spool
/// made from a shared one, as `migrate --into` does). Called before any
/// thread starts.
pub fn set_shared(shared: bool) {
    SHARED.store(shared, Ordering::Relaxed);
    // SAFETY: umask has no preconditions; no other thread creates files now.
    unsafe {
        if shared {
            let old = libc::umask(0o007);
            let _ = OLD_UMASK.compare_exchange(
                u32::MAX,
                old as u32,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        } else {
            let old = OLD_UMASK.swap(u32::MAX, Ordering::Relaxed);
            if old != u32::MAX {
                libc::umask(old as libc::mode_t);
            }
        }
    }
}

/// Whether [`set_shared`] made this process create group-shared files.
pub fn shared() -> bool {
    SHARED.load(Ordering::Relaxed)
}

/// The mode of every file spoolmq creates in a spool: 0600 (0660 shared).
pub fn file_mode() -> u32 {
    if shared() { 0o660 } else { 0o600 }
}

/// The mode of every directory spoolmq creates: 0700 (2770 shared: setgid,
/// so that what is created in it keeps the spool's group).
pub fn dir_mode() -> u32 {
    if shared() { 0o2770 } else { 0o700 }
}

/// Creates directory `dir` with [`dir_mode`] if missing; an existing one
/// must be a real directory, not a symlink to one.
pub fn mkdir_nofollow(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(dir_mode()).create(dir) {
        Ok(()) => {
            if shared() {
                // mkdir's mode drops the setgid bit on some systems.
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode()))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if std::fs::symlink_metadata(dir)?.file_type().is_dir() {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::ELOOP))
            }
        }
        Err(e) => Err(e),
    }
}

/// What [`Fs::open`] does when the file is missing (or present).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// It must exist.
    Existing,
    /// Create it if missing.
    OrCreate,
    /// Create it; it must not exist (`O_EXCL`).
    New,
}

/// An open file.
pub trait FileIo: Send {
    /// Reads at `offset`; returns how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset` (not durable until [`FileIo::sync_data`]).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Gives back the space of `len` bytes at `offset` (they read as zeros).
    /// Best effort: `Ok(false)` where the file system cannot.
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<bool>;
}

/// A file system.
pub trait Fs: Send + Sync {
    /// Opens `path` read-write without following symlinks; a file it creates
    /// gets mode 0600 (see [`file_mode`]).
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn FileIo>>;
    /// Unlinks a file (durable after [`Fs::sync_dir`] of its directory).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Renames a file (durable after [`Fs::sync_dir`]).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether a file exists at `path` (an error, such as a directory that
    /// cannot be searched, is not "no").
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// The names of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates directory `dir` (0700, see [`dir_mode`]) if missing; an
    /// existing symlink is an error (ELOOP), not followed.
    fn mkdir(&self, dir: &Path) -> io::Result<()>;
    /// Takes the exclusive lock on `path` (creating it with `create`);
    /// `None` if it is missing. Released when the guard is dropped.
    fn lock(&self, path: &Path, create: bool) -> io::Result<Option<Box<dyn Send>>>;
    /// The id of the running kernel's boot (zeros where unknown).
    fn boot_id(&self) -> [u8; 16];
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

/// The real file system, shared.
pub fn real() -> Arc<dyn Fs> {
    Arc::new(RealFs)
}

struct RealFile(File);

impl FileIo for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        // SAFETY: fallocate on a descriptor we own, with plain integer arguments.
        let rc = unsafe {
            libc::fallocate(
                self.0.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset as libc::off_t,
                len as libc::off_t,
            )
        };
        Ok(rc == 0)
    }
}

impl Fs for RealFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn FileIo>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(how == Open::OrCreate)
            .create_new(how == Open::New)
            .mode(file_mode())
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        Ok(Box::new(RealFile(f)))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        mkdir_nofollow(dir)
    }
    fn lock(&self, path: &Path, create: bool) -> io::Result<Option<Box<dyn Send>>> {
        let guard = QueueLock::acquire(path, create).map_err(io::Error::other)?;
        Ok(guard.map(|g| Box::new(g) as Box<dyn Send>))
    }
    fn boot_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        if let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
            let hex: Vec<u8> = text
                .bytes()
                .filter(u8::is_ascii_hexdigit)
                .map(|c| (c as char).to_digit(16).unwrap_or(0) as u8)
                .collect();
            for (i, pair) in hex.chunks(2).take(16).enumerate() {
                id[i] = (pair[0] << 4) | pair.get(1).copied().unwrap_or(0);
            }
        }
        id
    }
}
