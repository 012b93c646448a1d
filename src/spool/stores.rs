//! What each store keeps in a spool, for the operations above the spool
//! (`fsck`, `migrate`, waiting, `bench`): checking and repairing a queue,
//! removing one, the sqlite database's own check, moving a store's files,
//! and what wakes a waiter. With [`Spool::open_store`] this is the one place
//! that names a concrete store; the operations call these and never match
//! on [`StoreKind`] themselves.
//!
//! Invariants: a check reads through [`ReadOnlyFs`] (a fresh one each time,
//! so a check after a repair sees what the repair wrote) and writes nothing;
//! only the `repair_*` functions and the file moves change the spool.

use super::{Spool, StoreKind};
use crate::base::error::{Error, IoContext, Result};
use crate::base::io::{Fs, root_fs};
use crate::base::overlay::ReadOnlyFs;
use crate::model::crypt::{Key, KeyId};
use crate::store::fs as fsstore;
use crate::store::sqlite as sqlstore;
use crate::store::{Problem, QueueReport};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::store::postgres::conn::Target as PgTarget;
pub use crate::store::postgres::{describe as describe_url, is_url as is_postgres_url};
pub use crate::store::sqlite::DatabaseReport;

/// Whether a URL given on a command line holds a password (`ps` shows it).
pub fn url_has_password(url: &str) -> bool {
    crate::store::postgres::conn::has_password(url)
}

/// What [`Spool::check_queue`] found in one queue, and what repairing it needs.
pub struct Checked {
    pub report: QueueReport,
    /// An fs queue whose key id file is missing or damaged while its bodies
    /// open with the key given: the id to write back.
    lost_key: Option<KeyId>,
}

/// What wakes a waiter on a queue ([`Spool::wake_on`]).
pub enum WakeOn {
    /// A connection that LISTENs for the NOTIFY each commit sends, with the
    /// queue's name as payload (PostgreSQL).
    Notify(Box<postgres::Client>),
    /// A file written or created in this directory (fs: a push appends to a
    /// segment).
    Writes(PathBuf),
    /// This file modified (sqlite: a push rings the bell; SQLite's own
    /// files change on reads too, so they are not watched).
    Modified(PathBuf),
    /// A file created or moved into this directory (sqlite, before the bell
    /// file exists).
    Appears(PathBuf),
}

impl StoreKind {
    /// Whether the store relies on the spool lock being exclusive: the
    /// sqlite store's pop reads, then commits, so one command at a time
    /// uses the database. The fs store's queues have locks of their own.
    pub fn needs_exclusive_lock(self) -> bool {
        self == StoreKind::Sqlite
    }

    /// Whether the spool is a directory on this machine (not a database
    /// reached through a URL).
    pub fn is_local(self) -> bool {
        self != StoreKind::Postgres
    }
}

impl Spool {
    /// The file a problem of queue `name` is about when no record of the
    /// store names it: the queue's directory, or the database.
    pub fn queue_place(&self, name: &str) -> PathBuf {
        match self.kind {
            StoreKind::Fs => self.queue_dir(name),
            StoreKind::Sqlite => sqlstore::db_path(&self.root),
            StoreKind::Postgres => self.root.clone(),
        }
    }

    /// Whether queue `name` may hold encrypted bodies: an fs queue without
    /// a key id file holds none (and is not even opened to find out).
    pub fn may_be_encrypted(&self, name: &str) -> Result<bool> {
        if self.kind != StoreKind::Fs {
            return Ok(true);
        }
        let key = self.queue_dir(name).join("key");
        root_fs(&self.root)?.exists(&key).ctx("open", &key)
    }

    /// `fsck` of queue `name` by its store, writing nothing. With the key
    /// given, an fs queue's key id file is checked against its bodies too.
    pub fn check_queue(&self, name: &str) -> Result<Checked> {
        let mut report = match self.kind {
            StoreKind::Fs => {
                let fs: Arc<dyn Fs> = Arc::new(ReadOnlyFs::new(root_fs(&self.root)?));
                fsstore::check::check(&fs, name, &self.queue_dir(name))?
            }
            StoreKind::Sqlite => sqlstore::check(&self.root, name)?,
            StoreKind::Postgres => crate::store::postgres::check(self.url()?, name)?,
        };
        let lost_key = match (self.kind, &self.key) {
            (StoreKind::Fs, Some(key)) => {
                let fs = ReadOnlyFs::new(root_fs(&self.root)?);
                check_key_record(&fs, &self.queue_dir(name), name, key, &mut report)?
            }
            _ => None,
        };
        Ok(Checked { report, lost_key })
    }

    /// `fsck --repair` of queue `name`, after `checked` found problems.
    /// Returns a line per thing done.
    pub fn repair_queue(&self, name: &str, checked: &Checked) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        let dir = self.queue_dir(name);
        if let Some(id) = checked.lost_key {
            fsstore::restore_key_record(&root_fs(&self.root)?, &dir, id)?;
            notes.push("key id file rewritten: the bodies open with the key given".to_string());
        }
        notes.extend(match self.kind {
            StoreKind::Fs => fsstore::rebuild(Arc::new(root_fs(&self.root)?), &dir)?,
            StoreKind::Sqlite => sqlstore::repair(&self.root, name)?,
            StoreKind::Postgres => crate::store::postgres::repair(self.url()?, name)?,
        });
        Ok(notes)
    }

    /// The sqlite database beyond its queues (see
    /// [`sqlstore::check_database`]); `None` for the other stores.
    pub fn check_database(&self, repair: bool) -> Result<Option<(PathBuf, DatabaseReport)>> {
        if self.kind != StoreKind::Sqlite {
            return Ok(None);
        }
        let report = sqlstore::check_database(&self.root, repair)?;
        Ok(Some((sqlstore::db_path(&self.root), report)))
    }

    /// Deletes queue `name` and everything in it (for `bench`'s scratch
    /// queue). The sqlite store's rows are removed under the spool lock.
    pub fn remove_queue(&self, name: &str) -> Result<()> {
        match self.kind {
            StoreKind::Fs => {
                let dir = self.queue_dir(name);
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))
            }
            StoreKind::Postgres => crate::store::postgres::remove_queue(self.url()?, name),
            StoreKind::Sqlite => {
                let _lock = self.lock(false, true)?;
                sqlstore::remove_queue(&self.root, name)
            }
        }
    }

    /// What wakes a waiter on queue `queue` as soon as a message may have
    /// come; `None`: poll. For the fs store, the queue's directory, or the
    /// spool's while the queue does not exist yet.
    pub fn wake_on(&self, queue: &str) -> Option<WakeOn> {
        if self.kind == StoreKind::Postgres {
            let mut c = crate::store::postgres::connect(self.url().ok()?).ok()?;
            c.batch_execute(&format!("LISTEN {}", crate::store::postgres::CHANNEL))
                .ok()?;
            return Some(WakeOn::Notify(Box::new(c)));
        }
        let dir = self.queue_dir(queue);
        let bell = self.root.join(sqlstore::BELL_FILE);
        Some(match self.kind {
            StoreKind::Fs if dir.is_dir() => WakeOn::Writes(dir),
            StoreKind::Sqlite if bell.is_file() => WakeOn::Modified(bell),
            StoreKind::Sqlite => WakeOn::Appears(self.root.clone()),
            StoreKind::Fs | StoreKind::Postgres => WakeOn::Writes(self.root.clone()),
        })
    }

    /// How often a waiter looks again without an event: each look at a
    /// PostgreSQL queue costs a connection, so it looks less often.
    pub fn poll_interval(&self, local: Duration) -> Duration {
        match self.kind {
            StoreKind::Postgres => Duration::from_secs(1),
            StoreKind::Fs | StoreKind::Sqlite => local,
        }
    }

    /// The uid owning the spool's directory (`None` for PostgreSQL, or if
    /// it cannot be read).
    pub fn owner_uid(&self) -> Option<u32> {
        if !self.kind.is_local() {
            return None;
        }
        std::fs::metadata(&self.root)
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
    }
}

/// With the key given (`--key-file`), the key id file of fs queue `name`
/// in `dir` is checked against the bodies: a missing file while the bodies
/// open with the key (the record was lost, and readers without a key would
/// be served ciphertext) is a problem. Returns the id to record when the
/// file is missing or damaged and the bodies open with the key, so that
/// `--repair` can rewrite it; a damaged file is reported by the check.
fn check_key_record(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    key: &Key,
    r: &mut QueueReport,
) -> Result<Option<KeyId>> {
    let missing = match fsstore::key_record(fs, dir) {
        Ok(Some(_)) => return Ok(None),
        Ok(None) => true,
        Err(Error::Corrupt { .. }) => false,
        Err(e) => return Err(e),
    };
    let (open, not) = fsstore::bodies_opening_with(fs, dir, name, key)?;
    if open == 0 {
        return Ok(None);
    }
    if missing {
        r.problems.push(Problem {
            queue: name.to_string(),
            file: dir.join("key"),
            offset: None,
            what: format!(
                "missing, but {open} of {} bodies open with the key given: the record of the queue's key was lost",
                open + not
            ),
        });
    }
    Ok(Some(key.id()))
}

/// The sqlite store's files in `root`.
fn sqlite_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|s| root.join(format!("{}{s}", sqlstore::DB_FILE)))
        .collect();
    files.push(root.join(sqlstore::BELL_FILE));
    files
}

/// Removes what a store of `kind` keeps in `root` (its queues' files), for
/// the store the spool does not use, and fsyncs `root`.
pub fn remove_store_files(root: &Path, kind: StoreKind) -> Result<()> {
    match kind {
        StoreKind::Fs => {
            for name in Spool::new(root.to_path_buf()).queue_dirs()? {
                remove(&root.join(name))?;
            }
        }
        StoreKind::Sqlite => {
            for p in sqlite_files(root) {
                remove(&p)?;
            }
        }
        // Never in a directory.
        StoreKind::Postgres => return Ok(()),
    }
    fsstore::segment::sync_dir(&root_fs(root)?, root)
}

/// Moves the files of the `kind` store `staged` (made in the directory
/// `staging`) into `root`, through the spool's I/O seam (relative to
/// directories held open, never through a link planted in the spool), and
/// fsyncs `root`. Nothing moved is in use until `.store` names the store.
pub fn move_store_files(staged: &Spool, root: &Path) -> Result<()> {
    let fs = root_fs(root)?;
    match staged.kind {
        StoreKind::Fs => {
            for name in staged.queue_dirs()? {
                fs.rename(&staged.root.join(&name), &root.join(&name))
                    .ctx("move into the spool", &root.join(&name))?;
            }
        }
        StoreKind::Sqlite => {
            let db = sqlstore::db_path(&staged.root);
            fs.rename(&db, &sqlstore::db_path(root))
                .ctx("move into the spool", &db)?;
        }
        StoreKind::Postgres => {
            return Err(Error::Runtime(
                "postgres is never converted in place".into(),
            ));
        }
    }
    fsstore::segment::sync_dir(&fs, root)
}

/// Removes a file or a directory tree; a missing one is fine.
pub fn remove(p: &Path) -> Result<()> {
    let r = match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    r.ctx("remove", p)
}
