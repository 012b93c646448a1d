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
    #[cfg(target_os = "linux")]
    fn start_writeback(&self, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
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
    fn open(&self, path: &Path, how: Open) -> io::Result<Arc<dyn FileIo>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(how == Open::OrCreate)
            .create_new(how == Open::New)
            .mode(file_mode())
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        Ok(Arc::new(RealFile(f)))
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
