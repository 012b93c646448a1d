//! The I/O seam: every read, write, fsync, create, rename, unlink, truncate
//! and directory sync of the file store goes through [`Fs`] and [`FileIo`].
//! The product uses [`RealFs`]; the power-loss tests plug in
//! `crate::base::simfs::SimFs` (test builds), which can lose power at any event.

use crate::base::lock::QueueLock;
use std::ffi::{CString, OsStr};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
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
pub trait FileIo: Send + Sync {
    /// Reads at `offset`; returns how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset` (not durable until [`FileIo::sync_data`]).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Asks the kernel to start writing `len` bytes at `offset` to the disk
    /// now, without waiting (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so
    /// that a later [`FileIo::sync_data`] finds less left to do. A hint:
    /// it makes nothing durable and its failure is ignored.
    fn start_writeback(&self, _offset: u64, _len: u64) {}
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

/// Finishes and writes buffers on a helper thread while the caller fills the
/// next ones: a bulk push encodes records on one core while the other fills
/// in their CRCs and the kernel copies them into the page cache (`perf` of a
/// 1,000,000-line push: the CRCs were 17% of its time and that copy 29%,
/// all of it on the pushing thread). The thread starts with the first [`Appender::write`];
/// a push that never fills a chunk never starts one. Writes land at the
/// offsets given, in any order; nothing is durable until the caller has
/// [`Appender::wait`]ed and then synced the files.
pub struct Appender {
    worker: Option<Worker>,
    in_flight: usize,
    spare: Vec<Vec<u8>>,
}

struct Worker {
    jobs: std::sync::mpsc::SyncSender<Job>,
    done: std::sync::mpsc::Receiver<(std::result::Result<(), Failed>, Vec<u8>)>,
    thread: std::thread::JoinHandle<()>,
}

struct Job {
    file: Arc<dyn FileIo>,
    path: Arc<Path>,
    at: u64,
    buf: Vec<u8>,
    finish: fn(&mut [u8]),
    writeback: bool,
}

/// A write that failed: the file and the error, for the caller's message.
pub struct Failed {
    pub path: Arc<Path>,
    pub error: io::Error,
}

/// Buffers handed to the helper and not yet back; more makes the caller wait.
const IN_FLIGHT: usize = 2;

impl Default for Appender {
    fn default() -> Self {
        Appender::new()
    }
}

impl Appender {
    pub fn new() -> Appender {
        Appender {
            worker: None,
            in_flight: 0,
            spare: Vec::new(),
        }
    }

    /// Queues `buf` to be finished by `finish` (which fills in its CRCs)
    /// and written at `at` in `file` (then, with `writeback`,
    /// [`FileIo::start_writeback`] of it), and returns an empty buffer to go
    /// on with: a used one when the helper has given one back. An error
    /// here is an earlier write's.
    pub fn write(
        &mut self,
        file: &Arc<dyn FileIo>,
        path: &Arc<Path>,
        at: u64,
        (buf, finish): (Vec<u8>, fn(&mut [u8])),
        writeback: bool,
    ) -> std::result::Result<Vec<u8>, Failed> {
        let capacity = buf.capacity();
        let job = Job {
            file: Arc::clone(file),
            path: Arc::clone(path),
            at,
            buf,
            finish,
            writeback,
        };
        let worker = self.worker.get_or_insert_with(Worker::start);
        if let Err(std::sync::mpsc::SendError(mut job)) = worker.jobs.send(job) {
            // The helper is gone (it cannot panic short of a bug): write here.
            job.run().map_err(|error| Failed {
                path: job.path.clone(),
                error,
            })?;
            return Ok(job.buf);
        }
        self.in_flight += 1;
        while self.in_flight > IN_FLIGHT {
            self.collect(true)?;
        }
        if self.spare.is_empty() {
            self.collect(false)?;
        }
        Ok(self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(capacity)))
    }

    /// Waits for every queued write; the first error, if any.
    pub fn wait(&mut self) -> std::result::Result<(), Failed> {
        let mut first = Ok(());
        while self.in_flight > 0 {
            if let Err(e) = self.collect(true)
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    /// Takes back one finished write's buffer (waiting for one with
    /// `block`), and reports its error.
    fn collect(&mut self, block: bool) -> std::result::Result<(), Failed> {
        use std::sync::mpsc::TryRecvError;
        let Some(worker) = &self.worker else {
            self.in_flight = 0;
            return Ok(());
        };
        let got = if block {
            worker.done.recv().map_err(|_| TryRecvError::Disconnected)
        } else {
            worker.done.try_recv()
        };
        match got {
            Ok((result, mut buf)) => {
                self.in_flight -= 1;
                buf.clear();
                self.spare.push(buf);
                result
            }
            Err(TryRecvError::Empty) => Ok(()),
            Err(TryRecvError::Disconnected) => {
                // Writes were queued and never reported: they may not have
                // happened, so nothing may be synced and called stored.
                self.in_flight = 0;
                Err(Failed {
                    path: Arc::from(Path::new("<writer thread>")),
                    error: io::Error::other("the writer thread stopped before finishing"),
                })
            }
        }
    }
}

impl Worker {
    fn start() -> Worker {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(IN_FLIGHT);
        let (tx, done) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            for mut job in rx {
                let result = job.run().map_err(|error| Failed {
                    path: job.path.clone(),
                    error,
                });
                if tx.send((result, job.buf)).is_err() {
                    return;
                }
            }
        });
        Worker { jobs, done, thread }
    }
}

impl Job {
    fn run(&mut self) -> io::Result<()> {
        (self.finish)(&mut self.buf);
        self.file.write_all_at(&self.buf, self.at)?;
        if self.writeback {
            self.file.start_writeback(self.at, self.buf.len() as u64);
        }
        Ok(())
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        let _ = self.wait();
        if let Some(w) = self.worker.take() {
            drop(w.jobs);
            let _ = w.thread.join();
        }
    }
}

/// A file system.
pub trait Fs: Send + Sync {
    /// Opens `path` read-write without following symlinks; a file it creates
    /// gets mode 0600 (see [`file_mode`]).
    fn open(&self, path: &Path, how: Open) -> io::Result<Arc<dyn FileIo>>;
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

/// The real file system, reached only beneath one directory held open.
///
/// Every path handed to it must lie under `root` (the spool), and is walked
/// from the descriptor of `root` one component at a time with `openat(2)`
/// and `O_NOFOLLOW`: a directory or file inside the spool that someone
/// swaps for a symlink (even between two calls, even with
/// `renameat2(RENAME_EXCHANGE)`) is refused with ELOOP, never followed, so
/// nothing outside the spool can be opened, created, renamed, unlinked or
/// chmodded through it. Renames and unlinks are `renameat`/`unlinkat`
/// relative to the directory the walk opened. Every file opened is checked
/// on its descriptor (`fstat`): it must be a regular file (a FIFO or device
/// planted in the spool would hang or mislead a reader; files are opened
/// `O_NONBLOCK` so the open itself cannot hang), have one link (a hard link
/// planted in the spool would make writes land in a file elsewhere), and
/// in a private spool be owned by the user running spoolmq. A file created
/// gets exactly [`file_mode`] by `fchmod`, whatever the umask.
///
/// The root itself is opened by its path and may be a symlink: the user
/// chose it.
#[derive(Debug)]
pub struct RealFs {
    root: PathBuf,
    dir: OwnedFd,
}

/// The I/O seam rooted at the spool `root`: every file and directory in
/// the spool is reached through it ([`RealFs`]).
pub fn root_fs(root: &Path) -> crate::base::error::Result<RealFs> {
    RealFs::beneath(root).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTDIR) => {
            crate::base::error::Error::Runtime(format!("{}: not a directory", root.display()))
        }
        _ => crate::base::error::Error::io("open spool", root, e),
    })
}

/// The real file system beneath `root` (the spool directory), shared.
pub fn real(root: &Path) -> io::Result<Arc<dyn Fs>> {
    Ok(Arc::new(RealFs::beneath(root)?))
}

/// A directory reached by [`RealFs::walk`]: the root's descriptor, or one
/// opened below it.
enum Dir<'a> {
    Root(BorrowedFd<'a>),
    Below(OwnedFd),
}

impl Dir<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Dir::Root(fd) => *fd,
            Dir::Below(fd) => fd.as_fd(),
        }
    }
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Retries a libc call interrupted by a signal; -1 becomes the OS error.
fn retry(mut call: impl FnMut() -> libc::c_int) -> io::Result<libc::c_int> {
    loop {
        let rc = call();
        if rc != -1 {
            return Ok(rc);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode)`.
pub fn open_at(
    dir: BorrowedFd,
    name: &OsStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    // SAFETY: openat with a live descriptor and a NUL-terminated name; the
    // descriptor returned is ours alone.
    let fd = retry(|| unsafe {
        libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint)
    })?;
    // SAFETY: fd was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstat` of an open descriptor.
pub fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the buffer it is given, which is large enough.
    retry(|| unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so the buffer is initialised.
    Ok(unsafe { st.assume_init() })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: the entry itself, never
/// what a link points at.
pub fn lstat_at(dir: BorrowedFd, name: &OsStr) -> io::Result<libc::stat> {
    let c = c_name(name)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: as in fstat, with a NUL-terminated name.
    retry(|| unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat returned 0.
    Ok(unsafe { st.assume_init() })
}

fn file_type(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

/// What a file of the spool may not be: the reason it is refused, if any.
pub fn refuse_file(st: &libc::stat) -> Option<String> {
    let kind = match file_type(st) {
        libc::S_IFREG => None,
        libc::S_IFDIR => Some("a directory"),
        libc::S_IFIFO => Some("a FIFO"),
        libc::S_IFSOCK => Some("a socket"),
        libc::S_IFCHR | libc::S_IFBLK => Some("a device"),
        libc::S_IFLNK => Some("a symbolic link"),
        _ => Some("not a regular file"),
    };
    if let Some(kind) = kind {
        return Some(format!(
            "is {kind}, not a regular file; refused (someone may have planted it: remove it)"
        ));
    }
    if st.st_nlink > 1 {
        return Some(format!(
            "has {} hard links; refused: a file of a spool has exactly one name (another name elsewhere would receive spoolmq's writes: remove this one)",
            st.st_nlink
        ));
    }
    refuse_owner(st)
}

/// In a private spool every entry belongs to the user running spoolmq.
fn refuse_owner(st: &libc::stat) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    (!shared() && st.st_uid != me).then(|| {
        format!(
            "belongs to uid {}, not to you (uid {me}), in a private spool; refused",
            st.st_uid
        )
    })
}

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why)
}

/// An entry met where a directory was expected: a symlink is ELOOP (named
/// as a planted link), anything else ENOTDIR.
fn not_dir(dir: BorrowedFd, name: &OsStr) -> io::Error {
    match lstat_at(dir, name) {
        Ok(st) if file_type(&st) == libc::S_IFLNK => io::Error::from_raw_os_error(libc::ELOOP),
        _ => io::Error::from_raw_os_error(libc::ENOTDIR),
    }
}

/// Opens directory `name` in `dir`, never through a link.
pub fn open_dir_at(dir: BorrowedFd, name: &OsStr) -> io::Result<OwnedFd> {
    match open_at(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
            Err(not_dir(dir, name))
        }
        Err(e) => Err(e),
        Ok(fd) => {
            if let Some(why) = refuse_owner(&fstat(fd.as_fd())?) {
                return Err(refused(why));
            }
            Ok(fd)
        }
    }
}

impl RealFs {
    /// Opens `root` (following a link the user chose) and serves paths beneath it.
    pub fn beneath(root: &Path) -> io::Result<RealFs> {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(root)?;
        Ok(RealFs {
            root: root.to_path_buf(),
            dir: f.into(),
        })
    }

    /// The root's descriptor.
    pub fn root_fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// The components of `path` below the root; a path elsewhere (or with
    /// `..`) is refused: the seam reaches nothing outside the spool.
    fn components<'p>(&self, path: &'p Path) -> io::Result<Vec<&'p OsStr>> {
        let outside = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("outside the spool {}", self.root.display()),
            )
        };
        let rel = match path.strip_prefix(&self.root) {
            Ok(rel) => rel,
            // A queue directory named relative to the working directory.
            Err(_) if self.root == Path::new(".") && path.is_relative() => path,
            Err(_) => return Err(outside()),
        };
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => parts.push(n),
                Component::CurDir => {}
                _ => return Err(outside()),
            }
        }
        Ok(parts)
    }

    /// Walks to the directory `parts` names, from the root.
    fn walk(&self, parts: &[&OsStr]) -> io::Result<Dir<'_>> {
        let mut dir = Dir::Root(self.dir.as_fd());
        for name in parts {
            dir = Dir::Below(open_dir_at(dir.fd(), name)?);
        }
        Ok(dir)
    }

    /// The directory holding `path`'s last component, and that component.
    fn parent<'p>(&self, path: &'p Path) -> io::Result<(Dir<'_>, &'p OsStr)> {
        let parts = self.components(path)?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the spool directory itself is not a file",
            ));
        };
        Ok((self.walk(dirs)?, name))
    }

    /// The directory at `path` (the root itself included).
    fn dir_at(&self, path: &Path) -> io::Result<Dir<'_>> {
        self.walk(&self.components(path)?)
    }

    /// Opens a regular file of the spool for reading (`write` false) or
    /// reading and writing, creating it as `how` says; checked as the
    /// type's doc says.
    pub fn open_file(&self, path: &Path, how: Open, write: bool) -> io::Result<File> {
        let (dir, name) = self.parent(path)?;
        let access = if write { libc::O_RDWR } else { libc::O_RDONLY };
        let create = |extra| {
            open_at(
                dir.fd(),
                name,
                access | libc::O_CREAT | libc::O_EXCL | extra,
                file_mode(),
            )
        };
        let (fd, created) = match how {
            Open::Existing => (open_at(dir.fd(), name, access, 0)?, false),
            Open::New => (create(0)?, true),
            Open::OrCreate => match create(0) {
                Ok(fd) => (fd, true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    (open_at(dir.fd(), name, access, 0)?, false)
                }
                Err(e) => return Err(e),
            },
        };
        let st = fstat(fd.as_fd())?;
        if let Some(why) = refuse_file(&st) {
            return Err(refused(why));
        }
        let file = File::from(fd);
        if created && st.st_mode & 0o7777 != file_mode() {
            // The umask took bits away (or a shared spool's group bits):
            // the contract says 0600 (0660 shared) whatever the umask.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(file_mode()))?;
        }
        Ok(file)
    }

    /// Creates directory `path` with exactly [`dir_mode`] if missing and
    /// returns it open; an existing one must be a real directory.
    pub fn make_dir(&self, path: &Path) -> io::Result<OwnedFd> {
        let (dir, name) = self.parent(path)?;
        let c = c_name(name)?;
        // SAFETY: mkdirat with a live descriptor and a NUL-terminated name.
        let made = retry(|| unsafe {
            libc::mkdirat(dir.fd().as_raw_fd(), c.as_ptr(), dir_mode() as libc::mode_t)
        });
        match made {
            Ok(_) => {
                let fd = open_dir_at(dir.fd(), name)?;
                // The umask, and mkdir's dropping of setgid on some systems:
                // set exactly the mode wanted, on the directory opened.
                // SAFETY: fchmod on a descriptor we own.
                retry(|| unsafe { libc::fchmod(fd.as_raw_fd(), dir_mode() as libc::mode_t) })?;
                Ok(fd)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open_dir_at(dir.fd(), name),
            Err(e) => Err(e),
        }
    }
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
    #[cfg(target_os = "linux")]
    fn start_writeback(&self, offset: u64, len: u64) {
        // SAFETY: sync_file_range on a descriptor we own, with plain integer
        // arguments; it touches no memory of ours.
        unsafe {
            libc::sync_file_range(
                self.0.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<bool> {
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
    fn open(&self, path: &Path, how: Open) -> io::Result<Arc<dyn FileIo>> {
        Ok(Arc::new(RealFile(self.open_file(path, how, true)?)))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        let c = c_name(name)?;
        // SAFETY: unlinkat with a live descriptor and a NUL-terminated name.
        retry(|| unsafe { libc::unlinkat(dir.fd().as_raw_fd(), c.as_ptr(), 0) }).map(drop)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_dir, from_name) = self.parent(from)?;
        let (to_dir, to_name) = self.parent(to)?;
        let (a, b) = (c_name(from_name)?, c_name(to_name)?);
        // SAFETY: renameat with live descriptors and NUL-terminated names.
        retry(|| unsafe {
            libc::renameat(
                from_dir.fd().as_raw_fd(),
                a.as_ptr(),
                to_dir.fd().as_raw_fd(),
                b.as_ptr(),
            )
        })
        .map(drop)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let d = self.dir_at(dir)?;
        // SAFETY: fsync on a live descriptor.
        retry(|| unsafe { libc::fsync(d.fd().as_raw_fd()) }).map(drop)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        let parts = self.components(path)?;
        let Some((name, dirs)) = parts.split_last() else {
            return Ok(true);
        };
        let dir = match self.walk(dirs) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match lstat_at(dir.fd(), name) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let d = self.dir_at(dir)?;
        list_dir(d.fd())
    }
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        self.make_dir(dir).map(drop)
    }
    fn lock(&self, path: &Path, create: bool) -> io::Result<Option<Box<dyn Send>>> {
        Ok(self
            .lock_file(path, create, true)?
            .map(|g| Box::new(g) as Box<dyn Send>))
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

impl RealFs {
    /// Takes the lock on `path` (exclusive or shared), creating the lock
    /// file with `create`; `None` if it is missing. Opened read-only when
    /// it exists: closing a file opened for writing is an inotify event in
    /// its directory, which would wake `pop --wait`ers for nothing.
    pub fn lock_file(
        &self,
        path: &Path,
        create: bool,
        exclusive: bool,
    ) -> io::Result<Option<QueueLock>> {
        let file = match self.open_file(path, Open::Existing, false) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                self.open_file(path, Open::OrCreate, true)?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        QueueLock::hold(file, exclusive).map(Some)
    }
}

/// The names of the entries of the open directory `dir` (not `.`, `..`,
/// nor names that are not UTF-8, which spoolmq never writes).
pub fn list_dir(dir: BorrowedFd) -> io::Result<Vec<String>> {
    // fdopendir takes the descriptor over: give it a duplicate.
    let dup = dir.try_clone_to_owned()?;
    // SAFETY: fdopendir on a descriptor we own; on success the DIR owns it.
    let d = unsafe { libc::fdopendir(dup.as_raw_fd()) };
    if d.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(dup);
    // The duplicate shares the original's position: start from the top.
    // SAFETY: rewinddir on the DIR opened above.
    unsafe { libc::rewinddir(d) };
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: readdir on the DIR opened above; errno is cleared first
        // so that the end of the directory can be told from an error.
        unsafe { *libc::__errno_location() = 0 };
        let entry = unsafe { libc::readdir(d) };
        if entry.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: d_name is a NUL-terminated name inside the entry.
        let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) };
        if let Ok(name) = name.to_str()
            && name != "."
            && name != ".."
        {
            names.push(name.to_string());
        }
    };
    // SAFETY: closedir on the DIR opened above, once.
    unsafe { libc::closedir(d) };
    result.map(|()| names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A file in memory that fails every write at or past `fail_at`.
    struct Mem {
        data: Mutex<Vec<u8>>,
        fail_at: u64,
    }

    impl FileIo for Mem {
        fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<usize> {
            Ok(0)
        }
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            if offset + buf.len() as u64 > self.fail_at {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let mut d = self.data.lock().unwrap();
            let end = offset as usize + buf.len();
            if d.len() < end {
                d.resize(end, 0);
            }
            d[offset as usize..end].copy_from_slice(buf);
            Ok(())
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(self.data.lock().unwrap().len() as u64)
        }
        fn punch_hole(&self, _: u64, _: u64) -> io::Result<bool> {
            Ok(false)
        }
    }

    fn mem(fail_at: u64) -> (Arc<Mem>, Arc<dyn FileIo>) {
        let m = Arc::new(Mem {
            data: Mutex::new(Vec::new()),
            fail_at,
        });
        (m.clone(), m)
    }

    fn double(buf: &mut [u8]) {
        buf.iter_mut().for_each(|b| *b *= 2);
    }

    #[test]
    fn every_buffer_is_finished_and_lands_at_its_offset() {
        let (m, file) = mem(u64::MAX);
        let path: Arc<Path> = Path::new("f").into();
        let mut out = Appender::new();
        let mut want = Vec::new();
        let mut at = 0u64;
        for i in 0..20u8 {
            let len = 1 + usize::from(i) * 37;
            let mut buf = out
                .write(&file, &path, at, (vec![i; len], double), i % 2 == 0)
                .unwrap_or_else(|f| panic!("{}", f.error));
            assert!(buf.is_empty(), "handed back empty");
            buf.push(0);
            want.extend(std::iter::repeat_n(i * 2, len));
            at += len as u64;
        }
        assert!(out.wait().is_ok());
        assert_eq!(*m.data.lock().unwrap(), want);
    }

    #[test]
    fn a_failed_write_is_reported_by_wait_or_the_next_write() {
        let (_m, file) = mem(100);
        let path: Arc<Path> = Path::new("full").into();
        let mut out = Appender::new();
        let mut failed = None;
        for i in 0..10u64 {
            if let Err(f) = out.write(&file, &path, i * 40, (vec![1; 40], double), false) {
                failed = Some(f);
                break;
            }
        }
        let f = failed
            .or_else(|| out.wait().err())
            .expect("the failure is reported");
        assert_eq!(f.error.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(&*f.path, Path::new("full"));
    }
}
