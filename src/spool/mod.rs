//! The spool: the directory that holds one sub-directory per queue.
//!
//! ```text
//! SPOOL/                      mode 0700, created on first write
//!   .store                    which store the spool uses (see below)
//!   .spool.lock               flock: shared by fs commands, exclusive for the
//!                             sqlite store and for `migrate`
//!   .spool.db                 the sqlite store's database (crate::store::sqlite)
//!   .spool.bell               written to wake sqlite waiters (crate::store::sqlite)
//!   QUEUE/                    fs store: mode 0700, one per queue
//!     lock                    flock target (crate::base::lock)
//!     index                   headers (crate::store::fs::index)
//!     slots                   one 64-byte slot per message (crate::store::fs::index)
//!     wal                     write-ahead log of state changes (crate::store::fs::index)
//!     reserve                 space kept for consuming on a full disk
//!     key                     the key id of an encrypted queue
//!     00000000000000000001.seg  segment files (crate::store::fs::segment, crate::store::fs::record)
//! ```
//!
//! Where the spool is: `--dir` > `SPOOLMQ_DIR` > `$XDG_DATA_HOME/spoolmq` >
//! `$HOME/.local/share/spoolmq`. Read-only commands never create anything.
//! A directory created here is fsynced into its parent before it is used.
//!
//! Which store: `--store` > `SPOOLMQ_STORE` > `fs`, used when the spool is
//! created and recorded in `.store` (written to a temporary file, fsynced,
//! then linked into place, so it is whole or absent and the first writer
//! wins). Later commands use the recorded store; naming another one is a
//! usage error. Names starting with `.` are never queue names, so these
//! files cannot collide with a queue.
//!
//! `.store` holds one line, `spoolmq-store 1 fs 89abcdef\n` ([`encode_record`]):
//! a magic word, the record's version, the store, and the CRC-32 of the text
//! before it in 8 lower-case hex digits. A later version keeps the magic word,
//! the version field and the trailing CRC, so any record can be checked
//! before it is called newer. The unversioned form written before (`fs\n`,
//! `sqlite\n`) still opens. Anything else is damaged, and says so
//! ([`decode_record`]); only a record whose CRC matches and that names a
//! higher version or an unknown store is "written by a newer spoolmq".
//!
//! When `.store` is missing or damaged the store is told from the files on
//! disk ([`decide`]): fs queue directories mean fs (a spool with queues and
//! no `.store` predates the marker), `.spool.db` means sqlite. With both on
//! disk and no record, commands refuse rather than guess (the messages of
//! the other store would be hidden, and a write would record the guess);
//! `--store S fsck --repair` records the store named. A damaged record is
//! rewritten by `fsck --repair` (crate::ops::fsck::check_spool), or by the first
//! write to a spool that holds nothing yet.
//!
//! Who may use it ([`check_access`], before any command but `doctor` and
//! `init`): the spool must not be writable by others, nor by its group
//! unless it was made shared, and must be owned by the user running the
//! command unless it is shared and the user is in its group. A shared spool
//! (`spoolmq init --group GROUP`) is mode 2770 with everything in it of
//! that group; its files are 0660 and its directories 2770
//! ([`crate::base::io::file_mode`]). Inside a spool no symlink is followed and
//! nothing is reached by path: every file and directory is opened through
//! [`crate::base::io::root_fs`] ([`crate::base::io::RealFs`]), walking from the spool's descriptor
//! with `O_NOFOLLOW` ([`Error::symlink`] names a link met on the way).

pub(crate) mod stores;

use crate::base::error::{Error, IoContext, Result};
use crate::base::io::root_fs;
use crate::base::notice::Notices;
use crate::model::input;
use crate::queue::Queue;
use crate::store::Store;
use crate::store::fs::FsStore;
use crate::store::fs::segment::sync_dir;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
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
    // The XDG Base Directory spec: a relative path in XDG_DATA_HOME is
    // invalid and must be ignored (it would name a different spool in
    // every working directory).
    if let Some(d) = nonempty("XDG_DATA_HOME").filter(|d| d.is_absolute()) {
        return Ok(d.join("spoolmq"));
    }
    if let Some(h) = nonempty("HOME") {
        return Ok(h.join(".local/share/spoolmq"));
    }
    Err(Error::usage(
        "cannot tell where the spool is: pass --dir DIR or set SPOOLMQ_DIR",
    ))
}

/// The ways a spool can store its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Segment files and an index per queue (crate::store::fs).
    Fs,
    /// One SQLite database for the spool (crate::store::sqlite).
    Sqlite,
    /// Tables in a PostgreSQL database, shared by many hosts
    /// (crate::store::postgres); chosen by `--url`, not recorded in a directory.
    Postgres,
}

impl StoreKind {
    pub const ALL: [StoreKind; 3] = [StoreKind::Fs, StoreKind::Sqlite, StoreKind::Postgres];

    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Fs => "fs",
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }

    /// Parses a store name as typed by a user (a usage error if unknown).
    pub fn parse(text: &str) -> Result<StoreKind> {
        StoreKind::ALL
            .into_iter()
            .find(|k| k.name() == text)
            .ok_or_else(|| {
                Error::usage(format!(
                    "unknown store {text:?}: use fs, sqlite or postgres"
                ))
            })
    }
}

/// The marker file recording the spool's store.
pub const STORE_FILE: &str = ".store";
/// The spool-wide lock file.
pub const LOCK_FILE: &str = ".spool.lock";

/// The file a sqlite spool's push writes to wake waiters.
pub const BELL_FILE: &str = crate::store::sqlite::BELL_FILE;

/// The spool directory and the store its queues are kept in.
#[derive(Debug, Clone)]
pub struct Spool {
    pub root: PathBuf,
    pub kind: StoreKind,
    /// The PostgreSQL connection string, for [`StoreKind::Postgres`].
    pub url: Option<String>,
    /// The key from `--key-file`, given to every queue opened (crate::model::crypt).
    pub key: Option<crate::model::crypt::Key>,
    /// Where the spool and every queue it opens send their notices (stderr
    /// unless set otherwise; see [`crate::base::notice`]).
    pub notices: Notices,
}

impl Spool {
    /// A spool with the fs store (for library users and tests).
    pub fn new(root: PathBuf) -> Spool {
        Spool {
            root,
            kind: StoreKind::Fs,
            url: None,
            key: None,
            notices: Notices::stderr(),
        }
    }

    /// The queues in the PostgreSQL database at `url` (the directory is unused).
    pub fn postgres(url: String) -> Spool {
        Spool {
            root: PathBuf::from(crate::store::postgres::describe(&url)),
            kind: StoreKind::Postgres,
            url: Some(url),
            key: None,
            notices: Notices::stderr(),
        }
    }

    /// The connection string of a PostgreSQL spool.
    pub fn url(&self) -> Result<&str> {
        self.url
            .as_deref()
            .ok_or_else(|| Error::usage("the postgres store needs --url or SPOOLMQ_URL"))
    }

    /// The spool at `root`, with its recorded store, or `requested` (else
    /// fs) for a spool not created yet. A `requested` store other than the
    /// recorded one is a usage error that names the recorded one. A
    /// missing or damaged `.store` is read from the files on disk (see
    /// [`recorded_kind`]); a damaged one is a notice on stderr (see
    /// [`Spool::open_reporting`] to send it elsewhere).
    pub fn open(root: PathBuf, requested: Option<StoreKind>) -> Result<Spool> {
        Spool::open_with(root, requested, false, Notices::stderr())
    }

    /// As [`Spool::open`], with the spool's and its queues' notices sent to
    /// `notices`.
    pub fn open_reporting(
        root: PathBuf,
        requested: Option<StoreKind>,
        notices: Notices,
    ) -> Result<Spool> {
        Spool::open_with(root, requested, false, notices)
    }

    /// As [`Spool::open`], for `fsck --repair`: where both stores' files
    /// are on disk and `.store` cannot say which one is in use, the
    /// `requested` store is taken (and the repair records it).
    pub fn open_to_repair(root: PathBuf, requested: Option<StoreKind>) -> Result<Spool> {
        Spool::open_with(root, requested, true, Notices::stderr())
    }

    fn open_with(
        root: PathBuf,
        requested: Option<StoreKind>,
        choose: bool,
        notices: Notices,
    ) -> Result<Spool> {
        if requested == Some(StoreKind::Postgres) {
            return Err(Error::usage(
                "the postgres store is chosen with --url postgres://... (or SPOOLMQ_URL)",
            ));
        }
        let record = read_record(&root)?;
        let found = match decide(&root, &record) {
            Err(_) if choose && requested.is_some() => requested,
            found => found?,
        };
        let kind = match (found, requested) {
            (Some(have), Some(want)) if have != want => {
                return Err(Error::usage(format!(
                    "{}: this spool uses the {} store, not {} (drop --store and SPOOLMQ_STORE, or convert it with `spoolmq migrate --to {}`)",
                    root.display(),
                    have.name(),
                    want.name(),
                    want.name()
                )));
            }
            (Some(have), _) => have,
            (None, want) => want.unwrap_or(StoreKind::Fs),
        };
        match &record {
            Record::Damaged(_) if found.is_some() => notices.send(&format!(
                "{}; using the {} store, as {}; run `spoolmq fsck --repair` to rewrite it",
                record_trouble(&root, &record),
                kind.name(),
                OnDisk::of(&root)?.evidence(kind)
            )),
            Record::Missing if found == Some(StoreKind::Sqlite) => notices.send(&format!(
                "{}; using the sqlite store, as {}",
                record_trouble(&root, &record),
                OnDisk::of(&root)?.evidence(kind)
            )),
            _ => {}
        }
        Ok(Spool {
            root,
            kind,
            url: None,
            key: None,
            notices,
        })
    }

    /// Creates the spool directory if missing and records its store if no
    /// store is recorded yet. Fails if another process recorded another
    /// store first.
    pub fn create(&self) -> Result<()> {
        if self.kind == StoreKind::Postgres {
            return Ok(());
        }
        mkdir_durable(&self.root, true)?;
        let other = |k: StoreKind| {
            Err(Error::usage(format!(
                "{}: this spool uses the {} store, not {}",
                self.root.display(),
                k.name(),
                self.kind.name()
            )))
        };
        let (record, older) = read_record_and_age(&self.root)?;
        match (&record, decide(&self.root, &record)?) {
            (_, Some(k)) if k != self.kind => other(k),
            // Made by an earlier release: what is pushed now may be in a
            // format only this one reads (RECORD_VERSION).
            (Record::Store(k), _) if older => replace_kind(&self.root, *k),
            (Record::Store(_), _) => Ok(()),
            (Record::Missing, _) => write_kind(&self.root, self.kind),
            // Nothing stored yet: the damaged record holds nothing to keep.
            (Record::Damaged(_), None) => replace_kind(&self.root, self.kind),
            // Told from the files on disk, and said so; `fsck --repair`
            // rewrites it.
            (Record::Damaged(_), Some(_)) => Ok(()),
        }
    }

    /// Takes the spool lock: exclusive for the sqlite store (one command at
    /// a time uses the database) and for `migrate`, shared for the fs store
    /// (whose queues have locks of their own). With `create`, the lock file
    /// is made if missing; without, `Ok(None)` if it is missing. Once held,
    /// the recorded store is checked again: a `migrate` may have finished
    /// while this process waited.
    pub fn lock(
        &self,
        create: bool,
        exclusive: bool,
    ) -> Result<Option<crate::base::lock::QueueLock>> {
        let (lock, trouble) = self.lock_finishing(create, exclusive)?;
        if let Some(why) = trouble {
            self.notices.send(&why);
        }
        Ok(lock)
    }

    /// [`Spool::lock`], and why a `retry --to` cut short could not be
    /// finished (it is left as it is: only the two queues it names refuse
    /// to write, [`Spool::check_no_move_pending`], until it can be).
    fn lock_finishing(
        &self,
        create: bool,
        exclusive: bool,
    ) -> Result<(Option<crate::base::lock::QueueLock>, Option<String>)> {
        if self.kind != StoreKind::Fs {
            return Ok((self.lock_reading(create, exclusive)?, None));
        }
        // A `retry --to` cut short is finished before anything else, with
        // the lock held exclusive (crate::store::fs::moves); then the lock
        // is taken again and looked under again, since another move may
        // have begun (and been cut short) in between.
        let fs: std::sync::Arc<dyn crate::base::io::Fs> = std::sync::Arc::new(root_fs(&self.root)?);
        let mut create = create;
        loop {
            let Some(lock) = self.lock_reading(create, exclusive)? else {
                if crate::store::fs::moves::pending(&*fs, &self.root)? {
                    // Finishing it needs the lock file: make it.
                    create = true;
                    continue;
                }
                return Ok((None, None));
            };
            if !crate::store::fs::moves::pending(&*fs, &self.root)? {
                return Ok((Some(lock), None));
            }
            let held = if exclusive {
                lock
            } else {
                drop(lock);
                match self.lock_reading(true, true)? {
                    Some(l) => l,
                    None => continue,
                }
            };
            let finished = crate::store::fs::moves::finish(&fs, &self.root);
            match finished {
                Ok(lines) => lines.iter().for_each(|l| self.notices.send(l)),
                Err(e) => {
                    let why = format!(
                        "{}: a `retry --to` cut short cannot be finished yet: {e}",
                        self.root.join(crate::store::fs::moves::JOURNAL).display()
                    );
                    if exclusive {
                        return Ok((Some(held), Some(why)));
                    }
                    drop(held);
                    return Ok((self.lock_reading(create, false)?, Some(why)));
                }
            }
            if exclusive {
                return Ok((Some(held), None));
            }
        }
    }

    /// [`Spool::lock`] for a command that only reads: a `retry --to` cut
    /// short is left for the next command that writes (and `fsck` reports it).
    pub fn lock_reading(
        &self,
        create: bool,
        exclusive: bool,
    ) -> Result<Option<crate::base::lock::QueueLock>> {
        if self.kind == StoreKind::Postgres {
            // The database's row locks do this work across hosts.
            return Ok(None);
        }
        let path = self.root.join(LOCK_FILE);
        let fs = root_fs(&self.root)?;
        let Some(lock) = fs.lock_file(&path, create, exclusive).ctx("lock", &path)? else {
            return Ok(None);
        };
        match recorded_kind(&self.root)? {
            Some(k) if k != self.kind => Err(Error::Runtime(format!(
                "{}: the spool was converted to the {} store while this command waited; run it again",
                self.root.display(),
                k.name()
            ))),
            _ => Ok(Some(lock)),
        }
    }

    /// Opens queue `name` (already validated). With `create`, the spool and
    /// the queue are created if missing; without, `Ok(None)` if it does not exist.
    pub fn open_queue(&self, name: &str, create: bool) -> Result<Option<Queue>> {
        self.open_queue_as(name, create, false)
    }

    /// Opens an existing queue or fails with "no such queue".
    pub fn open_existing_queue(&self, name: &str) -> Result<Queue> {
        self.open_queue(name, false)?
            .ok_or_else(|| Error::NoSuchQueue(name.to_string()))
    }

    /// Opens queue `name` for a command that only reads (`stats`, `peek`,
    /// `list`, `export`): the fs store is opened through
    /// [`crate::base::overlay::ReadOnlyFs`], so nothing on disk is written, even by
    /// recovery, and a spool on a read-only mount can be read; the sqlite
    /// store reads an older schema as it is.
    pub fn open_queue_read_only(&self, name: &str) -> Result<Option<Queue>> {
        self.open_queue_as(name, false, true)
    }

    /// For `migrate`, under the lock: an error if a `retry --to` cut short
    /// is still there (the lock could not finish it), whose messages a copy
    /// would take from both queues.
    pub fn no_move_pending(&self) -> Result<()> {
        if self.kind != StoreKind::Fs
            || !crate::store::fs::moves::pending(&root_fs(&self.root)?, &self.root)?
        {
            return Ok(());
        }
        Err(Error::Runtime(format!(
            "{}: a `retry --to` cut short is not finished (see above): `spoolmq fsck --repair`, then migrate",
            self.root.join(crate::store::fs::moves::JOURNAL).display()
        )))
    }

    /// A `retry --to` cut short that the lock could not finish
    /// ([`Spool::lock`]): the two queues it names refuse to write until it
    /// is (a push into its target would make it miscount what arrived); a
    /// command that only reads is told its messages may show in both.
    fn check_no_move_pending(
        &self,
        name: &str,
        move_to: Option<&str>,
        trouble: Option<String>,
        read_only: bool,
    ) -> Result<()> {
        let fs = root_fs(&self.root)?;
        if !crate::store::fs::moves::pending(&fs, &self.root)? {
            return Ok(());
        }
        let journal = self.root.join(crate::store::fs::moves::JOURNAL);
        let names = crate::store::fs::moves::queues_named(&fs, &self.root);
        let named = |q: &str| names.as_ref().is_none_or(|(a, b)| a == q || b == q);
        if read_only {
            if named(name) {
                self.notices.send(&format!(
                    "{}: a `retry --to` was cut short; until a command that writes finishes it, its messages may show in both queues",
                    journal.display()
                ));
            }
            return Ok(());
        }
        if named(name) || move_to.is_some_and(named) {
            let why = trouble.unwrap_or_else(|| format!("{}: not finished", journal.display()));
            return Err(Error::Runtime(format!(
                "{why}; this queue changes only once it is (`spoolmq fsck --repair` repairs what stops it)"
            )));
        }
        // Other queues go on; the line says why the move waits.
        if let Some(why) = trouble {
            self.notices.send(&why);
        }
        Ok(())
    }

    /// Opens the existing queue `name` for `retry --to`, which moves its
    /// dead letters into queue `to` (made if missing): with the spool lock
    /// held exclusive, so that the fs store may take the second queue's
    /// lock (see [`crate::store::fs::moves`]).
    pub fn open_queue_to_move(&self, name: &str, to: &str) -> Result<Queue> {
        let q = self.open_queue_with(name, false, false, true, Some(to))?;
        q.ok_or_else(|| Error::NoSuchQueue(name.to_string()))
    }

    fn open_queue_as(&self, name: &str, create: bool, read_only: bool) -> Result<Option<Queue>> {
        let exclusive = self.kind.needs_exclusive_lock();
        self.open_queue_with(name, create, read_only, exclusive, None)
    }

    fn open_queue_with(
        &self,
        name: &str,
        create: bool,
        read_only: bool,
        exclusive: bool,
        move_to: Option<&str>,
    ) -> Result<Option<Queue>> {
        if create {
            self.create()?;
        } else if !self.exists()? {
            return Ok(None);
        }
        // The sqlite store relies on the spool lock (its pop reads, then
        // commits), so even a read-only command makes a missing lock file.
        // A move takes the lock, even in an fs spool made before the
        // lock file was: its second queue lock relies on it.
        let make = create || move_to.is_some() || (self.kind.needs_exclusive_lock() && !read_only);
        let (lock, trouble) = if read_only {
            (self.lock_reading(make, exclusive)?, None)
        } else {
            self.lock_finishing(make, exclusive)?
        };
        // A command that writes has a move left only if finishing it failed
        // (under the lock no new one can begin: a move takes it exclusive).
        if self.kind == StoreKind::Fs && (read_only || trouble.is_some()) {
            self.check_no_move_pending(name, move_to, trouble, read_only)?;
        }
        let Some(store) = self.open_store(name, create, read_only)? else {
            return Ok(None);
        };
        // A queue exists once something was pushed to it (a first push that
        // failed leaves files, not a queue).
        if !create && store.counters().pushed == 0 {
            return Ok(None);
        }
        let mut q = Queue::with_store(name, store, self.notices.clone());
        q.hold(lock);
        q.set_key(self.key.clone());
        Ok(Some(q))
    }

    /// Opens the store of queue `name` (already validated) in this spool,
    /// which exists: the one place a concrete store is chosen. The caller
    /// holds the spool lock where the store needs it. `read_only`: for a
    /// command that only reads (see [`Spool::open_queue_read_only`]).
    pub fn open_store(
        &self,
        name: &str,
        create: bool,
        read_only: bool,
    ) -> Result<Option<Box<dyn Store>>> {
        fn boxed(s: impl Store + 'static) -> Box<dyn Store> {
            Box::new(s)
        }
        Ok(match self.kind {
            StoreKind::Fs => {
                let dir = if create {
                    self.create_queue_dir(name)?
                } else {
                    self.existing_queue_dir(name)?
                };
                if read_only {
                    FsStore::open_read_only(&dir)?.map(boxed)
                } else {
                    FsStore::open(&dir, create)?.map(boxed)
                }
            }
            StoreKind::Postgres => PgStore::open(self.url()?, name, create)?.map(boxed),
            StoreKind::Sqlite => {
                SqliteStore::open(&self.root, name, create, !read_only)?.map(boxed)
            }
        })
    }

    /// The directory of queue `name` (already validated).
    pub fn queue_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The directory of an existing queue `name`: refused if it is a symlink.
    pub fn existing_queue_dir(&self, name: &str) -> Result<PathBuf> {
        // Only a first check, for the message: every file in the queue is
        // reached through crate::base::io::RealFs, which refuses a link whenever
        // it meets one.
        let dir = self.queue_dir(name);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => Err(Error::symlink(&dir)),
            _ => Ok(dir),
        }
    }

    /// Checks the spool for reading: it is absent (`Ok(false)`) or a directory.
    pub fn exists(&self) -> Result<bool> {
        if self.kind == StoreKind::Postgres {
            return Ok(true);
        }
        match std::fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(true),
            Ok(_) => Err(not_a_dir(&self.root)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("open spool", &self.root, e)),
        }
    }

    /// Creates the queue directory (0700) if missing, fsyncing it into the
    /// spool, which [`Spool::create`] made first.
    pub fn create_queue_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.queue_dir(name);
        mkdir_durable(&dir, false)?;
        Ok(dir)
    }

    /// The queues in the spool (for fs, damaged ones included), sorted by name.
    /// In a sqlite spool the database is read under the spool lock, taken
    /// here (another command may be closing its connection, which SQLite
    /// does under an exclusive lock: `fsck` listing queues beside a worker
    /// once failed on that); a caller that holds it uses [`Spool::queues_held`].
    pub fn queues(&self) -> Result<Vec<String>> {
        let _lock = if self.kind.needs_exclusive_lock() && self.exists()? {
            self.lock(false, true)?
        } else {
            None
        };
        self.queues_held()
    }

    /// [`Spool::queues`] for a caller that holds the spool lock.
    pub fn queues_held(&self) -> Result<Vec<String>> {
        if !self.exists()? {
            return Ok(Vec::new());
        }
        match self.kind {
            StoreKind::Sqlite => return crate::store::sqlite::queue_names(&self.root),
            StoreKind::Postgres => return crate::store::postgres::queue_names(self.url()?),
            StoreKind::Fs => {}
        }
        self.queue_dirs()
    }

    /// The fs queue directories in the spool, sorted by name.
    pub fn queue_dirs(&self) -> Result<Vec<String>> {
        if !self.exists()? {
            return Ok(Vec::new());
        }
        use crate::base::io::Fs;
        let fs = root_fs(&self.root)?;
        let mut names = Vec::new();
        for name in fs.list(&self.root).ctx("list spool", &self.root)? {
            if input::queue_name(&name).is_err() {
                continue;
            }
            let dir = self.root.join(&name);
            if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Error::symlink(&dir));
            }
            if crate::store::fs::FsStore::is_queue(&fs, &dir)? {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

/// The first field of a store record in the versioned form.
const RECORD_MAGIC: &str = "spoolmq-store";
/// The version of the store record this build writes. Version 2 says the
/// spool may hold what only releases from the one with `--ttl` read (long
/// records and version 2 index headers of the fs store, sqlite schema 5);
/// version 3, what only releases from the one with unique keys read
/// (keyed records, slots of layout 3 and the holds file of the fs store,
/// sqlite schema 6); version 4, what only releases from the one with
/// priorities read (ranked records, slots with a priority, version 3 index
/// headers and the lane files of the fs store, sqlite schema 7); version
/// 5, what only releases from the one with ordered groups read (grouped
/// records, slots with the group bit and the groups cache of the fs store,
/// sqlite schema 8): a release that knows an older version refuses the
/// spool instead of taking them for damage.
pub const RECORD_VERSION: u32 = 5;
/// The longest `.store` read: anything longer is damaged.
const RECORD_MAX: usize = 256;

/// What `SPOOL/.store` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A well-formed record (this build's form or the unversioned one).
    Store(StoreKind),
    /// No `.store`.
    Missing,
    /// A `.store` that is no record: what is wrong with it.
    Damaged(String),
}

/// The text of `.store` recording `kind`: `spoolmq-store 1 KIND CRC\n`,
/// where CRC is the CRC-32 (8 lower-case hex digits) of the text before
/// the space that precedes it.
pub fn encode_record(kind: StoreKind) -> String {
    let body = format!("{RECORD_MAGIC} {RECORD_VERSION} {}", kind.name());
    format!("{body} {:08x}\n", crc32fast::hash(body.as_bytes()))
}

/// Decodes the bytes of `.store` (at `path`, for messages). `Err` only for
/// a well-formed record this build cannot use (a newer version, an unknown
/// store): that is no damage, and guessing would be wrong.
pub fn decode_record(bytes: &[u8], path: &Path) -> Result<Record> {
    let shown = |b: &[u8]| {
        let cut = &b[..b.len().min(40)];
        let more = if b.len() > cut.len() { "..." } else { "" };
        format!("\"{}\"{more}", cut.escape_ascii())
    };
    let damaged = |what: String| Ok(Record::Damaged(what));
    if bytes.is_empty() {
        return damaged("the file is empty".into());
    }
    if bytes.len() > RECORD_MAX {
        return damaged(format!(
            "longer than any store record ({} bytes or more)",
            bytes.len()
        ));
    }
    // The unversioned form written before version 1: the name and a newline.
    for kind in [StoreKind::Fs, StoreKind::Sqlite] {
        let name = kind.name().as_bytes();
        if bytes == name
            || (bytes.len() == name.len() + 1 && bytes.starts_with(name) && bytes.ends_with(b"\n"))
        {
            return Ok(Record::Store(kind));
        }
    }
    let Some(line) = bytes
        .strip_suffix(b"\n")
        .filter(|l| l.starts_with(format!("{RECORD_MAGIC} ").as_bytes()))
        .filter(|l| l.iter().all(|&b| b.is_ascii_graphic() || b == b' '))
        .and_then(|l| std::str::from_utf8(l).ok())
    else {
        return damaged(format!("holds {}, which is no store record", shown(bytes)));
    };
    let crc_ok = line.rsplit_once(' ').is_some_and(|(body, crc)| {
        crc.len() == 8
            && crc
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && u32::from_str_radix(crc, 16).ok() == Some(crc32fast::hash(body.as_bytes()))
    });
    if !crc_ok {
        return damaged(format!(
            "holds {}, whose checksum does not match",
            shown(bytes)
        ));
    }
    // Checked, so what follows is what a spoolmq wrote.
    let fields: Vec<&str> = line.split(' ').collect();
    let version = match fields.get(1).and_then(|v| v.parse::<u32>().ok()) {
        Some(v) if v >= 1 => v,
        _ => return damaged(format!("holds {}, which is no store record", shown(bytes))),
    };
    if version > RECORD_VERSION {
        return Err(Error::Runtime(format!(
            "{}: the store record has version {version}, written by a newer spoolmq (this one reads version {RECORD_VERSION}); use a newer spoolmq",
            path.display()
        )));
    }
    if fields.len() != 4 {
        return damaged(format!("holds {}, which is no store record", shown(bytes)));
    }
    match [StoreKind::Fs, StoreKind::Sqlite]
        .into_iter()
        .find(|k| k.name() == fields[2])
    {
        Some(kind) => Ok(Record::Store(kind)),
        None => Err(Error::Runtime(format!(
            "{}: unknown store {:?} (written by a newer spoolmq?)",
            path.display(),
            fields[2]
        ))),
    }
}

/// Reads `SPOOL/.store`: opened without following a link or blocking (a
/// planted FIFO), and only a regular file is read, at most
/// [`RECORD_MAX`] + 1 bytes of it.
pub fn read_record(root: &Path) -> Result<Record> {
    Ok(read_record_and_age(root)?.0)
}

/// [`read_record`], and whether the record is older than this build's
/// (version 1, or unversioned): the first write brings it up to date.
fn read_record_and_age(root: &Path) -> Result<(Record, bool)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.join(STORE_FILE);
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Record::Missing, false)),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(not_a_dir(root)),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Error::symlink(&path)),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    let meta = f.metadata().ctx("stat", &path)?;
    if !meta.is_file() {
        return Ok((Record::Damaged("not a regular file".into()), false));
    }
    let mut bytes = Vec::new();
    f.take(RECORD_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .ctx("read", &path)?;
    let record = decode_record(&bytes, &path)?;
    let older = matches!(record, Record::Store(k) if bytes != encode_record(k).as_bytes());
    Ok((record, older))
}

/// What of each store is in the spool at `root`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnDisk {
    /// The fs store's queue directories.
    pub fs_queues: Vec<String>,
    /// Whether the sqlite store's database is there.
    pub db: bool,
}

impl OnDisk {
    /// The spool at `root` (missing: nothing).
    pub fn of(root: &Path) -> Result<OnDisk> {
        let fs_queues = Spool::new(root.to_path_buf()).queue_dirs()?;
        let db = match std::fs::symlink_metadata(root.join(crate::store::sqlite::DB_FILE)) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => false,
            Err(e) => {
                return Err(Error::io(
                    "stat",
                    &root.join(crate::store::sqlite::DB_FILE),
                    e,
                ));
            }
        };
        Ok(OnDisk { fs_queues, db })
    }

    /// The one store whose files are here; `Err` if both are.
    fn store(&self) -> std::result::Result<Option<StoreKind>, ()> {
        match (!self.fs_queues.is_empty(), self.db) {
            (true, true) => Err(()),
            (true, false) => Ok(Some(StoreKind::Fs)),
            (false, true) => Ok(Some(StoreKind::Sqlite)),
            (false, false) => Ok(None),
        }
    }

    /// Which files say it is `kind`, for messages.
    pub fn evidence(&self, kind: StoreKind) -> String {
        if self.store().is_err() {
            return format!(
                "--store says (both stores' files are here: {} and queue directories {})",
                crate::store::sqlite::DB_FILE,
                self.fs_queues.join(", ")
            );
        }
        match kind {
            StoreKind::Sqlite => format!("its database {} is here", crate::store::sqlite::DB_FILE),
            _ => format!(
                "its queue director{} {} {} here",
                if self.fs_queues.len() == 1 {
                    "y"
                } else {
                    "ies"
                },
                self.fs_queues.join(", "),
                if self.fs_queues.len() == 1 {
                    "is"
                } else {
                    "are"
                }
            ),
        }
    }
}

/// What is wrong with a record that is not [`Record::Store`], for messages.
fn record_trouble(root: &Path, record: &Record) -> String {
    let path = root.join(STORE_FILE);
    match record {
        Record::Damaged(why) => format!("{} is damaged ({why})", path.display()),
        _ => format!("{} is missing", path.display()),
    }
}

/// The store of the spool at `root`, told from the files on disk when
/// `record` (what `.store` holds) is missing or damaged: queue directories
/// mean fs, `.spool.db` means sqlite, nothing means none yet. Both there
/// is refused: the store is never guessed while the other one's files are
/// on disk.
fn decide(root: &Path, record: &Record) -> Result<Option<StoreKind>> {
    if let Record::Store(k) = record {
        return Ok(Some(*k));
    }
    let disk = OnDisk::of(root)?;
    disk.store().map_err(|()| ambiguous(root, record, &disk))
}

fn ambiguous(root: &Path, record: &Record, disk: &OnDisk) -> Error {
    let d = root.display();
    Error::Runtime(format!(
        "{}, and both stores' files are here: fs queue directories ({}) and the sqlite database {}; refused, to not hide the messages of either. Nothing was changed. Record the store that holds the messages with `spoolmq --dir {d} --store fs fsck --repair` (or --store sqlite)",
        record_trouble(root, record),
        disk.fs_queues.join(", "),
        crate::store::sqlite::DB_FILE,
    ))
}

/// The store recorded in the spool at `root`, or told from its files when
/// `.store` is missing or damaged (see [`decide`]): `None` if the spool
/// does not exist, holds no store's files yet, or holds both stores' files
/// with no record to choose ([`Spool::open`] refuses that). A spool with
/// queue directories and no `.store` is an fs spool from before the marker.
pub fn recorded_kind(root: &Path) -> Result<Option<StoreKind>> {
    match read_record(root)? {
        Record::Store(k) => Ok(Some(k)),
        _ => Ok(OnDisk::of(root)?.store().unwrap_or(None)),
    }
}

/// A fresh temporary name next to `.store`.
fn tmp_record_path(root: &Path) -> Result<PathBuf> {
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(|e| Error::Runtime(format!("random: {e}")))?;
    Ok(root.join(format!(".store.{:016x}.tmp", u64::from_le_bytes(tag))))
}

/// Records `kind` in the spool at `root`: a temporary file, fsynced, linked
/// to `.store` (which fails if another process got there first) and the
/// directory fsynced.
fn write_kind(root: &Path, kind: StoreKind) -> Result<()> {
    let tmp = tmp_record_path(root)?;
    let path = root.join(STORE_FILE);
    let written =
        write_kind_file(&tmp, kind).and_then(|()| match std::fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(Error::io("create", &path, e)),
        });
    let _ = std::fs::remove_file(&tmp);
    written?;
    sync_dir(&root_fs(root)?, root)?;
    match read_record(root)? {
        Record::Store(k) if k == kind => Ok(()),
        Record::Store(k) => Err(Error::usage(format!(
            "{}: this spool uses the {} store, not {}",
            root.display(),
            k.name(),
            kind.name()
        ))),
        r => Err(Error::Runtime(format!(
            "cannot record the store: {}",
            record_trouble(root, &r)
        ))),
    }
}

/// Writes `kind` to the new file `tmp` (0600, not following a symlink) and
/// fsyncs it, before it is linked or renamed into place.
fn write_kind_file(tmp: &Path, kind: StoreKind) -> Result<()> {
    let root = tmp.parent().unwrap_or(Path::new("."));
    let fs = root_fs(root)?;
    let f = crate::store::fs::segment::open_file(&fs, tmp, crate::base::io::Open::New)?;
    f.write_all_at(encode_record(kind).as_bytes(), 0)
        .ctx("write", tmp)?;
    f.sync_data().ctx("sync", tmp)
}

/// Replaces the spool's recorded store (for `migrate`, and `fsck --repair`
/// of a damaged record): a temporary file, fsynced, renamed over `.store`,
/// and the directory fsynced.
pub fn replace_kind(root: &Path, kind: StoreKind) -> Result<()> {
    let tmp = tmp_record_path(root)?;
    let path = root.join(STORE_FILE);
    use crate::base::io::Fs;
    let fs = root_fs(root)?;
    let done =
        write_kind_file(&tmp, kind).and_then(|()| fs.rename(&tmp, &path).ctx("rename", &path));
    if done.is_err() {
        let _ = fs.remove_file(&tmp);
    }
    done?;
    sync_dir(&fs, root)
}

fn not_a_dir(p: &Path) -> Error {
    Error::Runtime(format!("{}: not a directory", p.display()))
}

/// Creates `dir` (mode 0700, or 2770 in a shared spool, whatever the
/// umask) if it is missing and fsyncs its parent. `parents`: `dir` is the
/// spool, whose missing ancestors are created too (with default modes) and
/// which may be reached through a symlink the user chose; without, `dir` is
/// a queue directory, made through the spool's [`crate::base::io::root_fs`], so that a link
/// planted in its place is refused and never followed.
fn mkdir_durable(dir: &Path, parents: bool) -> Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parents {
        use crate::base::io::Fs;
        let fs = root_fs(parent)?;
        if fs.exists(dir).ctx("open directory", dir)? {
            fs.make_dir(dir).ctx("open directory", dir)?;
            return Ok(());
        }
        fs.make_dir(dir).ctx("create directory", dir)?;
        return sync_dir(&fs, parent);
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => return Err(not_a_dir(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(not_a_dir(dir)),
        Err(e) => return Err(Error::io("open directory", dir, e)),
    }
    std::fs::create_dir_all(parent).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTDIR) | Some(libc::EEXIST) => not_a_dir(parent),
        _ => Error::io("create directory", parent, e),
    })?;
    let mode = crate::base::io::dir_mode();
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(not_a_dir(parent)),
        Err(e) => return Err(Error::io("create directory", dir, e)),
    }
    // The umask may have taken bits away; the contract wants exactly 0700.
    // Changed on the directory just made, opened without following a link.
    let made = root_fs(dir)?;
    // SAFETY: fchmod on a descriptor the RealFs holds.
    let rc = unsafe {
        use std::os::fd::AsRawFd;
        libc::fchmod(made.root_fd().as_raw_fd(), mode as libc::mode_t)
    };
    if rc != 0 {
        return Err(Error::io("chmod", dir, std::io::Error::last_os_error()));
    }
    sync_dir(&root_fs(parent)?, parent)
}

/// Who may use a spool directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not created yet.
    Missing,
    /// Its owner's alone (no group or other write bits).
    Private,
    /// Shared with its group by `spoolmq init --group` (setgid, group rwx).
    Shared,
}

fn user_name(uid: u32) -> String {
    match crate::base::account::user_name(uid) {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

fn group_name(gid: u32) -> String {
    crate::base::account::group_name(gid).unwrap_or_else(|| gid.to_string())
}

/// Whether this process is in group `gid` (primary or supplementary).
fn in_group(gid: u32) -> bool {
    // SAFETY: getegid has no preconditions; getgroups writes at most `n`
    // entries into a buffer of that size.
    unsafe {
        if libc::getegid() == gid {
            return true;
        }
        let n = libc::getgroups(0, std::ptr::null_mut());
        if n <= 0 {
            return false;
        }
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let n = libc::getgroups(n, groups.as_mut_ptr());
        n > 0 && groups[..n as usize].contains(&gid)
    }
}

/// Checks, in the spirit of OpenSSH's StrictModes, that only the spool's
/// users can change it: refused (exit 1, one line naming the problem and
/// the fix) are a spool writable by every user, one writable by its group
/// that was not made shared, and one owned by another user that is not a
/// shared spool of a group this process is in. The spool itself may be
/// reached through a symlink the user chose.
pub fn check_access(root: &Path) -> Result<Access> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return Err(not_a_dir(root)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Access::Missing),
        // Unreadable or unreachable: the command's own error says so.
        Err(_) => return Ok(Access::Private),
    };
    let d = root.display();
    let mode = meta.mode() & 0o7777;
    let shared = mode & 0o2070 == 0o2070;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if mode & 0o002 != 0 {
        let fix = if shared {
            format!("chmod o-rwx {d}")
        } else {
            format!("chmod 700 {d}")
        };
        return Err(Error::Runtime(format!(
            "spool {d} has mode {mode:04o}: every user can write to it, so anyone could plant or change messages; refused. Fix: {fix}"
        )));
    }
    if mode & 0o020 != 0 && !shared {
        return Err(Error::Runtime(format!(
            "spool {d} has mode {mode:04o}: its group can write to it, but it was not made shared; refused. Fix: chmod 700 {d}, or share it with its group: spoolmq --dir {d} init --group GROUP"
        )));
    }
    if meta.uid() != me {
        if !shared {
            return Err(Error::Runtime(format!(
                "spool {d} belongs to {}, not to you ({}); refused. Fix: use a spool of your own, or have its owner share it: spoolmq --dir {d} init --group GROUP",
                user_name(meta.uid()),
                user_name(me)
            )));
        }
        if me != 0 && !in_group(meta.gid()) {
            return Err(Error::Runtime(format!(
                "spool {d} is shared with group {}, and you ({}) are not in it. Fix: ask an administrator to add you to that group",
                group_name(meta.gid()),
                user_name(me)
            )));
        }
    }
    Ok(if shared {
        Access::Shared
    } else {
        Access::Private
    })
}

/// `spoolmq init`: creates the spool (mode 0700) or, with `group`, makes
/// it (new or existing, and everything in it) shared with that group:
/// directories 2770 (setgid, so new files keep the group), files 0660.
/// Returns what it did, for the user.
pub fn init(spool: &Spool, group: Option<&str>) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let root = &spool.root;
    let d = root.display();
    let Some(group) = group else {
        match check_access(root)? {
            Access::Shared => {
                return Ok(format!(
                    "spool {d} exists, shared with group {}",
                    group_name(std::fs::metadata(root).ctx("open spool", root)?.gid())
                ));
            }
            _ => {
                spool.create()?;
                return Ok(format!(
                    "spool {d} is ready: mode 0700, {} store",
                    spool.kind.name()
                ));
            }
        }
    };
    if group.contains('\0') {
        return Err(Error::usage(format!(
            "--group: not a group name: {group:?}"
        )));
    }
    let gid = match crate::base::account::group_id(group) {
        Some(gid) => gid,
        None => match group.parse::<u32>() {
            Ok(gid) => gid,
            // The static build knows only /etc/group (base::account).
            Err(_) if crate::base::account::FILES_ONLY => {
                return Err(Error::usage(format!(
                    "--group: no such group in /etc/group: {group} (this static build reads only /etc/group; give the numeric gid of a group from a directory service)"
                )));
            }
            Err(_) => {
                return Err(Error::usage(format!(
                    "--group: no such group: {group} (give a group name or a numeric gid)"
                )));
            }
        },
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if me != 0 && !in_group(gid) {
        return Err(Error::Runtime(format!(
            "you are not in group {group}: only a member (or root) can share a spool with it"
        )));
    }
    if let Ok(m) = std::fs::metadata(root)
        && m.uid() != me
        && me != 0
    {
        return Err(Error::Runtime(format!(
            "spool {d} belongs to {}: only its owner can share it",
            user_name(m.uid())
        )));
    }
    crate::base::io::set_shared(true);
    mkdir_durable(root, true)?;
    // The spool first (so what follows is created with its group), then
    // everything in it, walked through directory descriptors: links are
    // refused, never followed (see share_tree). Every entry is checked
    // before any is changed; one already shared is left alone, so a run cut
    // short is finished by running it again.
    let fs = root_fs(root)?;
    share_tree(fs.root_fd(), root, gid, me, false)?;
    share_tree(fs.root_fd(), root, gid, me, true)?;
    spool.create()?;
    sync_dir(&fs, root)?;
    let group = group_name(gid);
    Ok(format!(
        "spool {d} is shared with group {group}: directories 2770, files 0660; every member of {group} can push and pop, nobody else can"
    ))
}

/// Shares the directory `dir` (at `path`, for messages) and everything
/// beneath it with group `gid`: directories 2770, files 0660, each changed
/// through a descriptor opened relative to its directory's descriptor with
/// `O_NOFOLLOW` and checked to be the entry the listing saw (device and
/// inode), so that swapping a directory for a link during the walk, even
/// with `renameat2(RENAME_EXCHANGE)`, reaches nothing outside the spool.
/// Refused (the whole command, before anything is changed when `apply` is
/// false): a symlink, a FIFO, socket or device, a file with more than one
/// link (its other name may be anywhere), and an entry that `me` may not
/// change (another user's, unless `me` is root) that is not shared already.
fn share_tree(
    dir: std::os::fd::BorrowedFd,
    path: &Path,
    gid: u32,
    me: u32,
    apply: bool,
) -> Result<()> {
    use crate::base::io::{fstat, open_dir_at, refuse_file};
    use std::os::fd::AsFd;
    let st = fstat(dir).ctx("stat", path)?;
    share_entry(dir, &st, path, gid, me, true, apply)?;
    for name in crate::base::io::list_dir(dir).ctx("list", path)? {
        let p = path.join(&name);
        let name = std::ffi::OsStr::new(&name);
        let seen = crate::base::io::lstat_at(dir, name).ctx("stat", &p)?;
        match seen.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let sub = open_dir_at(dir, name).ctx("open", &p)?;
                let now = fstat(sub.as_fd()).ctx("stat", &p)?;
                if (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino) {
                    return Err(Error::Runtime(format!(
                        "{}: replaced while being shared; refused (someone is changing the spool: run init again)",
                        p.display()
                    )));
                }
                share_tree(sub.as_fd(), &p, gid, me, apply)?;
            }
            libc::S_IFLNK => return Err(Error::symlink(&p)),
            _ => {
                if !needs_sharing(&seen, gid, false) {
                    continue;
                }
                if let Some(why) = refuse_file(&seen) {
                    return Err(Error::Runtime(format!("{}: {why}", p.display())));
                }
                let f = crate::base::io::open_at(dir, name, libc::O_RDONLY, 0).ctx("open", &p)?;
                let now = fstat(f.as_fd()).ctx("stat", &p)?;
                if let Some(why) = refuse_file(&now) {
                    return Err(Error::Runtime(format!("{}: {why}", p.display())));
                }
                if (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino) {
                    return Err(Error::Runtime(format!(
                        "{}: replaced while being shared; refused (someone is changing the spool: run init again)",
                        p.display()
                    )));
                }
                share_entry(f.as_fd(), &now, &p, gid, me, false, apply)?;
            }
        }
    }
    Ok(())
}

/// Whether an entry is not yet of group `gid` with the shared mode.
fn needs_sharing(st: &libc::stat, gid: u32, is_dir: bool) -> bool {
    let mode = if is_dir { 0o2770 } else { 0o660 };
    st.st_gid != gid || st.st_mode & 0o7777 != mode
}

/// Checks (and with `apply`, makes) one open entry shared with `gid`.
fn share_entry(
    fd: std::os::fd::BorrowedFd,
    st: &libc::stat,
    path: &Path,
    gid: u32,
    me: u32,
    is_dir: bool,
    apply: bool,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mode = if is_dir { 0o2770 } else { 0o660 };
    if !needs_sharing(st, gid, is_dir) {
        return Ok(());
    }
    if me != 0 && st.st_uid != me {
        return Err(Error::Runtime(format!(
            "{}: belongs to {} and is not shared yet; only its owner or root can change it, so nothing was changed (ask root to run this init)",
            path.display(),
            user_name(st.st_uid)
        )));
    }
    if !apply {
        return Ok(());
    }
    // SAFETY: fchown and fchmod on a descriptor opened above.
    if unsafe { libc::fchown(fd.as_raw_fd(), u32::MAX, gid) } != 0 {
        return Err(Error::io("chgrp", path, std::io::Error::last_os_error()));
    }
    // SAFETY: as above.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode) } != 0 {
        return Err(Error::io("chmod", path, std::io::Error::last_os_error()));
    }
    Ok(())
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
    fn store_records_round_trip_and_the_unversioned_form_opens() {
        let p = Path::new("s/.store");
        for kind in [StoreKind::Fs, StoreKind::Sqlite] {
            let text = encode_record(kind);
            assert_eq!(
                decode_record(text.as_bytes(), p).unwrap(),
                Record::Store(kind)
            );
            let old = format!("{}\n", kind.name());
            assert_eq!(
                decode_record(old.as_bytes(), p).unwrap(),
                Record::Store(kind)
            );
            // Every single changed byte, and every cut, is damage, never a newer record.
            for at in 0..text.len() {
                let mut b = text.clone().into_bytes();
                b[at] ^= 0x20;
                assert!(
                    matches!(decode_record(&b, p), Ok(Record::Damaged(_))),
                    "{at}"
                );
                assert!(matches!(
                    decode_record(&text.as_bytes()[..at], p),
                    Ok(Record::Damaged(_))
                ));
            }
        }
        assert_eq!(
            encode_record(StoreKind::Fs),
            "spoolmq-store 5 fs c2aa43d6\n",
            "the documented example"
        );
        // Versions 1 to 4, written by the releases before, still read.
        let older = |body: &str| format!("{body} {:08x}\n", crc32fast::hash(body.as_bytes()));
        for body in [
            "spoolmq-store 1 fs",
            "spoolmq-store 2 fs",
            "spoolmq-store 3 fs",
            "spoolmq-store 4 fs",
        ] {
            assert_eq!(
                decode_record(older(body).as_bytes(), p).unwrap(),
                Record::Store(StoreKind::Fs)
            );
        }
    }

    #[test]
    fn only_a_well_formed_record_is_newer() {
        let p = Path::new("s/.store");
        for bad in [&b""[..], b"fs \n", b"fs\r\n", b"\0\0\0", b"fz\n", b"fs\n\n"] {
            assert!(
                matches!(decode_record(bad, p), Ok(Record::Damaged(_))),
                "{bad:?}"
            );
        }
        let sealed = |body: &str| format!("{body} {:08x}\n", crc32fast::hash(body.as_bytes()));
        for newer in [
            "spoolmq-store 6 fs",
            "spoolmq-store 1 zfs",
            "spoolmq-store 9 fs more fields",
        ] {
            let e = decode_record(sealed(newer).as_bytes(), p).unwrap_err();
            assert!(e.to_string().contains("newer spoolmq"), "{newer}: {e}");
        }
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let e = [("SPOOLMQ_DIR", ""), ("HOME", "/h")];
        assert_eq!(
            resolve(None, env(&e)).unwrap(),
            PathBuf::from("/h/.local/share/spoolmq")
        );
    }

    #[test]
    fn a_relative_xdg_data_home_is_ignored() {
        for rel in ["data", "./data", "../data"] {
            let e = [("XDG_DATA_HOME", rel), ("HOME", "/h")];
            assert_eq!(
                resolve(None, env(&e)).unwrap(),
                PathBuf::from("/h/.local/share/spoolmq"),
                "XDG_DATA_HOME={rel}"
            );
        }
        let e = [("XDG_DATA_HOME", "data")];
        assert_eq!(resolve(None, env(&e)).unwrap_err().exit_code(), 2);
    }
}
