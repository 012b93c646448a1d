//! The SQLite store: every queue of a spool in one database file, one row per
//! message, inserted by push, updated by each state change and deleted when
//! the message is finished (acked, purged or found corrupt).
//!
//! ```text
//! SPOOL/
//!   .store            the store record, naming sqlite (crate::spool)
//!   .spool.lock       flock: one command at a time works on the database
//!   .spool.db         the database (mode 0600), WAL mode, synchronous=FULL
//!   .spool.db-wal     SQLite's write-ahead log (and .spool.db-shm, its index)
//!   .spool.bell       one byte rewritten after each push and commit, for
//!                     waiters' inotify (SQLite's files change on reads too)
//!
//! queues    name TEXT PRIMARY KEY, salt, next_seq,
//!           ready, delayed, leased, dead, pushed, acked, purged, corrupt, bytes,
//!           expired, grouped (1 once a message was pushed in a group)
//! messages  queue, seq (PRIMARY KEY (queue, seq)), state, attempts,
//!           max_attempts, pushed_at, until_ms, receipt BLOB(12), len,
//!           crc (CRC32 of the body), body_id (the body's row in `bodies`),
//!           expires_at (ms, 0: no TTL), ttl_ms (the `--ttl`, 0: none),
//!           unique_key, unique_for, priority (0-9, 0: a plain push),
//!           grp (the `--group`'s key, crate::model::group, as a signed
//!           64-bit integer; NULL: none)
//!           index pending ON (queue, seq) WHERE state IN (ready, delayed, leased)
//! lanes     queue, priority, seq (PRIMARY KEY (queue, priority DESC, seq),
//!           WITHOUT ROWID, read in that order with no sort): each pending
//!           message whose priority is above 0, inserted by its push (or the
//!           retry that makes it pending again), deleted when it is done
//! bodies    id INTEGER PRIMARY KEY, body BLOB: one row per message, written
//!           by push and deleted with the message, never updated
//! keys      queue TEXT PRIMARY KEY, key_id BLOB(16): encrypted queues (crate::model::crypt)
//! failures  queue, seq (PRIMARY KEY (queue, seq)), at_ms, attempt, kind,
//!           code, text TEXT, stderr BLOB: the last failure of a message
//!           (crate::model::failure; kind, code, text as How::parts),
//!           replaced by each failure and deleted with the message
//! holds     queue, key BLOB(16) (PRIMARY KEY (queue, key)), seq, pushed_at,
//!           unique_for (ms), free_at (ms; 0 while the message is pending):
//!           the hold of each unique key (crate::model::unique), made by the
//!           push of its message, given its `free_at` when the message is
//!           done, deleted by a later keyed push once `free_at` has passed
//!           (index holds_free ON (queue, free_at) WHERE free_at > 0)
//! PRAGMA user_version = schema version: 8. Version 7 had no
//!           `messages.grp` nor `queues.grouped` (added by ALTER TABLE,
//!           NULL and 0). Version 6 had no
//!           `messages.priority` (added by ALTER TABLE, default 0) and no
//!           `lanes`. Version 5 had no `holds`, nor
//!           `messages.unique_key` (BLOB(16), NULL: none) and
//!           `messages.unique_for` (added by ALTER TABLE). Version 4 had no `expired`,
//!           `expires_at` and `ttl_ms` (added with their defaults, 0, by
//!           ALTER TABLE, which rewrites no row); version 3 had no `failures`;
//!           version 2 kept the body in the message's row (column `body`,
//!           where `body_id` is now), version 1 also had no `keys`.
//! ```
//!
//! Why bodies have a table of their own (schema 3): SQLite rewrites a whole
//! row on UPDATE, so with the body in the message's row every lease, nack and
//! extend read and wrote the body again, holding two copies of it in memory
//! (a `pop` of a 64 MiB body peaked at 3.1 times its size) and writing it to
//! the WAL once more per state change. Now a state change touches a row of
//! about 60 bytes, and a body is read only by incremental blob I/O.
//!
//! Older databases: a command that writes brings the schema up to date in one
//! transaction ([`SCHEMA_3`]) before it does anything else; a command that
//! only reads (`stats`, `peek`, `list`, `export`, `fsck` without `--repair`)
//! reads schema 1 and 2 as they are ([`Layout`]) and changes nothing, so a
//! backup on a read-only mount can be read, and an older spoolmq can still
//! open a spool that a newer one only looked at.
//!
//! Invariants:
//! * Every write is one `BEGIN IMMEDIATE` transaction, committed before the
//!   call returns; with `synchronous=FULL` the commit has fsynced the WAL, so
//!   an exit 0 after it is durable. The database file is created here with
//!   mode 0600 and fsynced into the spool directory before first use; SQLite
//!   fsyncs the directory itself when it creates the WAL.
//! * The `queues` row is written in the same transaction as the messages it
//!   counts, so counters never disagree with the rows after a crash.
//! * The queue logic ([`crate::queue`]) decides every state change; this file
//!   only stores [`Meta`] values. Integers are stored as SQLite's signed
//!   64-bit integers, bit for bit (`as i64` and back).
//! * A body whose CRC32 does not match is an [`Error::Corrupt`], never served.
//! * Connections run no trigger or view and trust nothing in the schema
//!   ([`harden`]): the database is as writable as the spool, and an object
//!   planted in it must not run while a command holds the spool lock.
//!   `fsck` reports objects the schema does not define ([`check_database`]).
//! * Commands hold the exclusive flock on `.spool.lock` while they use the
//!   database (taken in [`crate::spool::Spool::open_queue`]), so what a command read
//!   is still true when it commits; `BEGIN IMMEDIATE` and a busy timeout make
//!   any other writer (a `sqlite3` shell, say) wait rather than fail.

use crate::base::error::{Error, IoContext, Result};
use crate::base::io::Open;
use crate::model::crypt::KeyId;
use crate::model::failure::{Failure, How};
use crate::store::fs::segment::sync_dir;
use crate::store::{
    Change, Counters, GroupKey, Hold, Incoming, Loc, Meta, NewMessage, Restored, Scan, State, Step,
    Store, Target, UniqueKey, failures_at, no_target, split_incoming,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database file, in the spool directory.
pub const DB_FILE: &str = ".spool.db";
/// Written (one byte, never synced) after each commit that may make a
/// message deliverable, to wake `pop --wait` through inotify.
pub const BELL_FILE: &str = ".spool.bell";
/// The schema this build writes (it reads 1 to 7).
const SCHEMA_VERSION: i64 = 8;
/// How long a command waits for another writer before failing.
const BUSY: Duration = Duration::from_secs(120);

/// The columns of `messages` (schema 3), in [`SCHEMA`] and [`SCHEMA_3`].
macro_rules! messages_columns {
    () => {
        "queue TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    pushed_at INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    receipt BLOB NOT NULL,
    len INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    body_id INTEGER NOT NULL,
    PRIMARY KEY (queue, seq)"
    };
}

/// The `failures` table, in [`SCHEMA`] and [`SCHEMA_4`].
macro_rules! failures_table {
    () => {
        "CREATE TABLE failures (
    queue TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    code INTEGER NOT NULL,
    text TEXT NOT NULL,
    stderr BLOB NOT NULL,
    PRIMARY KEY (queue, seq)
);"
    };
}

/// A new database, at schema 4 ([`SCHEMA_5`] follows it).
const SCHEMA: &str = concat!(
    "
CREATE TABLE queues (
    name TEXT PRIMARY KEY NOT NULL,
    salt INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,
    ready INTEGER NOT NULL, delayed INTEGER NOT NULL, leased INTEGER NOT NULL,
    dead INTEGER NOT NULL, pushed INTEGER NOT NULL, acked INTEGER NOT NULL,
    purged INTEGER NOT NULL, corrupt INTEGER NOT NULL, bytes INTEGER NOT NULL
);
CREATE TABLE messages (",
    messages_columns!(),
    ");
CREATE INDEX pending ON messages (queue, seq) WHERE state IN (1, 2, 3);
CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE keys (queue TEXT PRIMARY KEY NOT NULL, key_id BLOB NOT NULL);
",
    failures_table!(),
);

/// From schema 3 to 4: the last failure of each message.
const SCHEMA_4: &str = failures_table!();

/// From schema 4 to 5 (and the last step of a new database): expiry. Each
/// column comes with its default, so no row is rewritten.
const SCHEMA_5: &str = "
ALTER TABLE messages ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN ttl_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;
";

/// From schema 5 to 6 (and the last step of a new database): unique keys.
/// The new columns come with their defaults (NULL, 0): no row is rewritten.
const SCHEMA_6: &str = "
ALTER TABLE messages ADD COLUMN unique_key BLOB;
ALTER TABLE messages ADD COLUMN unique_for INTEGER NOT NULL DEFAULT 0;
CREATE TABLE holds (
    queue TEXT NOT NULL,
    key BLOB NOT NULL,
    seq INTEGER NOT NULL,
    pushed_at INTEGER NOT NULL,
    unique_for INTEGER NOT NULL,
    free_at INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;
CREATE INDEX holds_free ON holds (queue, free_at) WHERE free_at > 0;
";

/// From schema 6 to 7 (and the last step of a new database): priorities.
/// The column's default (0, a plain push) rewrites no row. `lanes` holds
/// a row for each pending message pushed with a priority, the most urgent
/// first, so a pop reaches the first of them at once; plain ones are
/// served from `pending`, after them. A table of its own rather than a
/// partial index on `messages`: SQLite tests a partial index's condition
/// on every insert, and that made a bulk push of plain lines 15-20%
/// slower (1,000,000 lines: 4.3 s without, 5.1 s with, medians of 3).
const SCHEMA_7: &str = "
ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE TABLE lanes (
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (queue, priority DESC, seq)
) WITHOUT ROWID;
";

/// From schema 7 to 8 (and the last step of a new database): ordered
/// groups. Both columns' defaults rewrite no row, and no index is added: a
/// group's messages are met in push order by the delivery scan of
/// `pending` that plain ones already have, and `queues.grouped` tells
/// `stats` whether to look for groups at all.
const SCHEMA_8: &str = "
ALTER TABLE messages ADD COLUMN grp INTEGER;
ALTER TABLE queues ADD COLUMN grouped INTEGER NOT NULL DEFAULT 0;
";

/// From schema 1 to 2: the key ids of encrypted queues.
const SCHEMA_2: &str = "CREATE TABLE keys (queue TEXT PRIMARY KEY NOT NULL, key_id BLOB NOT NULL);";

/// From schema 2 to 3: each body moves, under its message's rowid, to
/// `bodies`, and `messages` is made again without it (SQLite cannot drop a
/// column without rebuilding the table either). One transaction: a crash
/// leaves schema 2 as it was. Run with `legacy_alter_table` on, so that the
/// rename does not re-check objects planted in the schema (a view naming
/// `messages` would otherwise fail it; `fsck` reports such objects).
const SCHEMA_3: &str = concat!(
    "
CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
INSERT INTO bodies (id, body) SELECT rowid, body FROM messages;
CREATE TABLE messages_3 (",
    messages_columns!(),
    ");
INSERT INTO messages_3 (queue, seq, state, attempts, max_attempts, pushed_at, until_ms, receipt, len, crc, body_id)
    SELECT queue, seq, state, attempts, max_attempts, pushed_at, until_ms, receipt, len, crc, rowid FROM messages;
DROP TABLE messages;
ALTER TABLE messages_3 RENAME TO messages;
CREATE INDEX pending ON messages (queue, seq) WHERE state IN (1, 2, 3);
"
);

/// Where a database of schema `version` keeps what this file reads. Commands
/// that write only ever see [`SCHEMA_VERSION`] (they upgrade first); the
/// older layouts are read by commands that only read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    version: i64,
}

impl Layout {
    const CURRENT: Layout = Layout {
        version: SCHEMA_VERSION,
    };

    /// Whether the `failures` table exists (schema 4 on).
    fn has_failures(self) -> bool {
        self.version >= 4
    }

    /// Whether the `keys` table exists (schema 2 on).
    fn has_keys(self) -> bool {
        self.version >= 2
    }

    /// Whether messages have `expires_at` and `ttl_ms`, and queues
    /// `expired` (schema 5 on).
    fn has_expiry(self) -> bool {
        self.version >= 5
    }

    /// Whether messages have `unique_key` and `unique_for`, and `holds`
    /// exists (schema 6 on).
    fn has_unique(self) -> bool {
        self.version >= 6
    }

    /// Whether messages have `priority`, and the `lanes` index exists
    /// (schema 7 on).
    fn has_priority(self) -> bool {
        self.version >= 7
    }

    /// Whether messages have `grp` and queues `grouped` (schema 8 on).
    fn has_groups(self) -> bool {
        self.version >= 8
    }

    /// The columns [`meta_of`] reads: [`META_COLUMNS`], the expiry (0
    /// before schema 5), whether it is keyed (0 before schema 6), its
    /// priority (0 before schema 7) and its group (NULL before schema 8).
    fn meta_columns(self) -> String {
        let expires = if self.has_expiry() { "expires_at" } else { "0" };
        let keyed = if self.has_unique() {
            "unique_key IS NOT NULL"
        } else {
            "0"
        };
        let priority = if self.has_priority() { "priority" } else { "0" };
        let group = if self.has_groups() { "grp" } else { "NULL" };
        format!("{META_COLUMNS}, {expires}, {keyed}, {priority}, {group}")
    }

    /// The scans of [`Store::scan`] for `from`, run one after the other:
    /// a delivery scan reads the `lanes` (priorities 9 to 1), then
    /// `pending` for the rest (what the first visited is skipped).
    fn scans(self, from: Scan) -> Vec<String> {
        let cols = self.meta_columns();
        let pending = |also: &str| {
            format!(
                "SELECT {cols} FROM messages INDEXED BY pending
                 WHERE queue = ?1 AND state IN (1, 2, 3){also} ORDER BY seq"
            )
        };
        match from {
            Scan::Pending => vec![pending("")],
            Scan::Delivery if self.has_priority() => {
                // `seq` and `priority` are columns of both tables.
                let cols = format!("m.{cols}").replace(", priority", ", m.priority");
                vec![
                    format!(
                        "SELECT {cols} FROM lanes l CROSS JOIN messages m ON m.queue = l.queue AND m.seq = l.seq
                         WHERE l.queue = ?1 AND m.state IN (1, 2, 3)
                         ORDER BY l.priority DESC, l.seq"
                    ),
                    // Everything else, those a lane missed too (the
                    // lanes' messages are skipped by their seq).
                    pending(""),
                ]
            }
            Scan::Delivery => vec![pending("")],
            // Live: pending and dead letters, failed (4) or expired (8).
            Scan::Live => vec![format!(
                "SELECT {cols} FROM messages WHERE queue = ?1 AND state IN (1, 2, 3, 4, 8) ORDER BY seq"
            )],
        }
    }

    /// The row of message (?1, ?2) and its body's place: (the row of the
    /// body's table, crc, whether the body is a blob, its length).
    fn body_place(self) -> &'static str {
        if self.version >= 3 {
            "SELECT body_id, crc, typeof(b.body) = 'blob', length(b.body)
             FROM messages JOIN bodies b ON b.id = body_id WHERE queue = ?1 AND seq = ?2"
        } else {
            "SELECT rowid, crc, typeof(body) = 'blob', length(body) FROM messages WHERE queue = ?1 AND seq = ?2"
        }
    }

    /// The table that holds bodies, for incremental blob I/O.
    fn body_table(self) -> &'static str {
        if self.version >= 3 {
            "bodies"
        } else {
            "messages"
        }
    }

    /// Every row of queue ?1 in seq order: [`META_COLUMNS`], the body (NULL
    /// if its row is missing) and its CRC32, for [`body_check`].
    fn rows_with_bodies(self) -> String {
        if self.version >= 3 {
            format!(
                "SELECT {}, b.body, crc FROM messages LEFT JOIN bodies b ON b.id = body_id
                 WHERE queue = ?1 ORDER BY seq",
                self.meta_columns()
            )
        } else {
            format!(
                "SELECT {}, body, crc FROM messages WHERE queue = ?1 ORDER BY seq",
                self.meta_columns()
            )
        }
    }
}

const META_COLUMNS: &str = "seq, state, attempts, max_attempts, pushed_at, until_ms, receipt, len";
/// How many columns [`Layout::meta_columns`] names: where the columns after
/// them start.
const META_LEN: usize = 12;

/// The database file of the spool at `root`.
pub fn db_path(root: &Path) -> PathBuf {
    root.join(DB_FILE)
}

/// Turns a SQLite error into ours: a full disk is [`Error::DiskFull`], a
/// damaged file [`Error::Corrupt`], anything else a runtime error naming the file.
pub fn sql_error(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    let full = match e.sqlite_error_code() {
        Some(C::DiskFull) => true,
        // SQLite reports ENOSPC met while growing its shared memory, and EFBIG
        // (a file size limit), as a plain I/O error.
        Some(C::SystemIoFailure) => looks_full(path),
        _ => false,
    };
    if full {
        return Error::DiskFull {
            what: what.to_string(),
            path: path.to_path_buf(),
        };
    }
    match e.sqlite_error_code() {
        Some(C::DatabaseCorrupt) | Some(C::NotADatabase) => Error::corrupt(
            path,
            format!("{what}: the database is damaged ({e}); run `spoolmq fsck`"),
        ),
        Some(C::DatabaseBusy) | Some(C::DatabaseLocked) => Error::Runtime(format!(
            "{}: {what}: the database stayed locked by another process for {} s",
            path.display(),
            BUSY.as_secs()
        )),
        _ => Error::Runtime(format!("{}: {what}: {e}", path.display())),
    }
}

/// Whether an I/O error at `path` is most likely a full disk: the file
/// system has less than 1 MiB free, or a file size limit is set.
fn looks_full(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statvfs and getrlimit fill structs we own; `c` is a valid C string.
    unsafe {
        let mut v: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut v) == 0
            && (v.f_bavail as u64).saturating_mul(v.f_frsize as u64) < 1 << 20
        {
            return true;
        }
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_FSIZE, &mut r) == 0 && r.rlim_cur != libc::RLIM_INFINITY
    }
}

trait SqlContext<T> {
    fn sql(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn sql(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| sql_error(path, what, e))
    }
}

/// Opens the spool's database, creating it (0600, fsynced into the spool)
/// with the schema if `create`. `Ok(None)`: it does not exist and `create`
/// is false, or it holds no schema yet and the caller only reads.
/// `writable`: the caller may write, so an older schema is brought up to
/// date first; otherwise it is read as it is (see [`Layout`]).
fn connect(root: &Path, create: bool, writable: bool) -> Result<Option<(Connection, Layout)>> {
    let path = db_path(root);
    // The database and its companions are checked through the spool's I/O
    // seam (crate::base::io::RealFs): a link, a FIFO, a file with a second name
    // or another user's file in a private spool is refused before SQLite
    // opens anything by name (it also refuses links: SQLITE_OPEN_NOFOLLOW).
    let fs = crate::base::io::root_fs(root)?;
    if create {
        // Made here rather than by SQLite so that it is 0600 whatever the umask
        // (SQLite gives the WAL and shm files the same mode) and its directory
        // entry is durable before anything is stored in it.
        match fs.open_file(&path, Open::New, true) {
            Ok(f) => {
                f.sync_all().ctx("sync", &path)?;
                sync_dir(&fs, root)?;
                ring(root);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create", &path, e)),
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = root.join(format!("{DB_FILE}{suffix}"));
        match fs.open_file(&p, Open::Existing, false) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && suffix.is_empty() => {
                return Ok(None);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("open", &p, e)),
        }
    }
    if mounted_read_only(root) {
        return open_immutable(&path);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    no_memory_statistics();
    let mut conn = Connection::open_with_flags(&path, flags).sql("open", &path)?;
    harden(&conn, &path)?;
    conn.busy_timeout(BUSY).sql("open", &path)?;
    // Closing the last connection checkpoints the WAL into the database and
    // removes it (the default). Keeping the WAL was measured slower: each new
    // connection then rebuilds the WAL index by reading the whole WAL.
    // WAL is a property of the file; setting it again is a no-op.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .sql("set WAL mode", &path)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Runtime(format!(
            "{}: cannot use WAL mode (journal mode is {mode})",
            path.display()
        )));
    }
    conn.execute_batch("PRAGMA synchronous=FULL")
        .sql("set synchronous=FULL", &path)?;
    let version = schema_version(&conn, &path)?;
    if version < SCHEMA_VERSION && writable {
        upgrade(&mut conn, &path)?;
        return Ok(Some((conn, Layout::CURRENT)));
    }
    Ok(readable(version, &path)?.map(|layout| (conn, layout)))
}

fn schema_version(conn: &Connection, path: &Path) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .sql("read the schema version", path)
}

/// The layout of a database of schema `version` opened to read: `None` if
/// it holds no schema yet (made by a command that was killed before its
/// first transaction; nothing was stored), an error if a newer spoolmq
/// wrote it.
fn readable(version: i64, path: &Path) -> Result<Option<Layout>> {
    if version > SCHEMA_VERSION {
        return Err(Error::Runtime(format!(
            "{}: the database was written by a newer spoolmq (schema {version}, this one knows {SCHEMA_VERSION})",
            path.display()
        )));
    }
    Ok((version > 0).then_some(Layout { version }))
}

/// Makes the schema, or brings it up to [`SCHEMA_VERSION`], in one write
/// transaction (after reading the version again inside it: another process
/// may be doing the same).
fn upgrade(conn: &mut Connection, path: &Path) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql("create the schema", path)?;
    let again: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .sql("read the schema version", path)?;
    if again == 0 {
        tx.execute_batch(SCHEMA).sql("create the schema", path)?;
        tx.execute_batch(SCHEMA_5).sql("create the schema", path)?;
        tx.execute_batch(SCHEMA_6).sql("create the schema", path)?;
        tx.execute_batch(SCHEMA_7).sql("create the schema", path)?;
        tx.execute_batch(SCHEMA_8).sql("create the schema", path)?;
    } else {
        if again < 2 {
            tx.execute_batch(SCHEMA_2).sql("update the schema", path)?;
        }
        if again < 3 {
            tx.execute_batch("PRAGMA legacy_alter_table=ON")
                .sql("update the schema", path)?;
            tx.execute_batch(SCHEMA_3).sql("update the schema", path)?;
            tx.execute_batch("PRAGMA legacy_alter_table=OFF")
                .sql("update the schema", path)?;
        }
        if again < 4 {
            tx.execute_batch(SCHEMA_4).sql("update the schema", path)?;
        }
        if again < 5 {
            tx.execute_batch(SCHEMA_5).sql("update the schema", path)?;
        }
        if again < 6 {
            tx.execute_batch(SCHEMA_6).sql("update the schema", path)?;
        }
        if again < 7 {
            tx.execute_batch(SCHEMA_7).sql("update the schema", path)?;
        }
        if again < 8 {
            tx.execute_batch(SCHEMA_8).sql("update the schema", path)?;
        }
    }
    if again < SCHEMA_VERSION {
        tx.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))
            .sql("update the schema", path)?;
    }
    tx.commit().sql("update the schema", path)
}

/// Makes objects planted in the database (by whoever can write the spool)
/// harmless to a command that holds the spool lock: triggers and views never
/// run (the schema has none, so a trigger looping in a recursive CTE cannot
/// hang `pop`), functions in the schema run only if marked innocuous
/// (`trusted_schema=OFF`), and defensive mode refuses the writes that can
/// corrupt the file (`writable_schema`, ...). `fsck` reports such objects
/// and `--repair` drops them ([`check_database`]).
fn harden(conn: &Connection, path: &Path) -> Result<()> {
    use rusqlite::config::DbConfig as C;
    for (what, on) in [
        (C::SQLITE_DBCONFIG_DEFENSIVE, true),
        (C::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
        (C::SQLITE_DBCONFIG_ENABLE_TRIGGER, false),
        (C::SQLITE_DBCONFIG_ENABLE_VIEW, false),
        // One plan per statement, never re-made when a parameter is bound:
        // without it SQLite re-prepared the body lookup (a join) for every
        // message a `pop --count 100000` read, 1.7 times slower (perf).
        (C::SQLITE_DBCONFIG_ENABLE_QPSG, true),
    ] {
        if conn.set_db_config(what, on).sql("configure", path)? != on {
            return Err(Error::Runtime(format!(
                "{}: SQLite refused the setting {what:?}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The objects the schema defines (type, name); SQLite's own (`sqlite_*`,
/// such as the indexes of primary keys) come on top.
const KNOWN_OBJECTS: [(&str, &str); 9] = [
    ("table", "holds"),
    ("table", "lanes"),
    ("index", "holds_free"),
    ("table", "queues"),
    ("table", "failures"),
    ("table", "messages"),
    ("table", "bodies"),
    ("table", "keys"),
    ("index", "pending"),
];

/// What `fsck` found in a sqlite spool's database beyond its queues
/// ([`check_database`]).
#[derive(Debug, Default)]
pub struct DatabaseReport {
    /// Objects the schema does not define, as (type, name).
    pub foreign: Vec<(String, String)>,
    /// Bodies no message names.
    pub orphans: u64,
    /// The lines of SQLite's `PRAGMA integrity_check` other than "ok".
    pub integrity: Vec<String>,
}

/// What `fsck` finds in the database of the spool at `root` beyond its
/// queues, in one transaction: SQLite's own `integrity_check` of the whole
/// file (run once per spool, not once per queue), the objects the schema
/// does not define, and how many bodies no message names (only damage or a
/// hand edit leaves one: every write deletes a message and its body in one
/// transaction). With `repair`, foreign objects and orphan bodies are
/// dropped, the indexes rebuilt when the integrity check failed, and what
/// was found is returned. Nothing if there is no database.
pub fn check_database(root: &Path, repair: bool) -> Result<DatabaseReport> {
    let path = db_path(root);
    let Some((mut conn, layout)) = connect(root, false, repair)? else {
        return Ok(DatabaseReport::default());
    };
    let tx = conn
        .transaction_with_behavior(if repair {
            TransactionBehavior::Immediate
        } else {
            TransactionBehavior::Deferred
        })
        .sql("read the schema", &path)?;
    let found: Vec<(String, String)> = {
        let mut stmt = tx
            .prepare(
                "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type = 'table', type, name",
            )
            .sql("read the schema", &path)?;
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .sql("read the schema", &path)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .sql("read the schema", &path)?
            .into_iter()
            .filter(|(t, n)| !KNOWN_OBJECTS.contains(&(t.as_str(), n.as_str())))
            .collect()
    };
    if repair {
        // Triggers, views and indexes first, tables last (dropping a table
        // drops its indexes and triggers: IF EXISTS).
        for (kind, name) in &found {
            let kind = match kind.as_str() {
                "table" => "TABLE",
                "index" => "INDEX",
                "view" => "VIEW",
                "trigger" => "TRIGGER",
                other => {
                    return Err(Error::Runtime(format!(
                        "{}: cannot drop {other} {name:?}: an unknown kind of object",
                        path.display()
                    )));
                }
            };
            let quoted = name.replace('"', "\"\"");
            tx.execute_batch(&format!("DROP {kind} IF EXISTS \"{quoted}\""))
                .sql(&format!("drop {kind} {name:?}"), &path)?;
        }
    }
    let orphans = if layout.version < 3 {
        0
    } else if repair {
        tx.execute(&format!("DELETE {ORPHANS}"), [])
            .sql("remove bodies", &path)? as u64
    } else {
        tx.query_row(&format!("SELECT count(*) {ORPHANS}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .sql("check bodies", &path)? as u64
    };
    let integrity: Vec<String> = {
        let mut stmt = tx
            .prepare("PRAGMA integrity_check")
            .sql("check the database", &path)?;
        stmt.query_map([], |row| row.get::<_, String>(0))
            .sql("check the database", &path)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .sql("check the database", &path)?
            .into_iter()
            .filter(|l| l != "ok")
            .collect()
    };
    if repair && !integrity.is_empty() {
        tx.execute_batch("REINDEX")
            .sql("rebuild the indexes", &path)?;
    }
    if repair {
        tx.commit().sql("repair the database", &path)?;
    }
    Ok(DatabaseReport {
        foreign: found,
        orphans,
        integrity,
    })
}

/// The bodies no message names.
const ORPHANS: &str = "FROM bodies WHERE id NOT IN (SELECT body_id FROM messages)";

/// Whether the spool at `root` is on a file system mounted read-only (a
/// snapshot, a backup): nobody can write the database there.
fn mounted_read_only(root: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(root.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs fills the buffer it is given from a NUL-terminated path.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: statvfs returned 0, so the buffer is initialised.
    unsafe { st.assume_init() }.f_flag & libc::ST_RDONLY != 0
}

/// Opens the database on a read-only mount: SQLite cannot make the WAL
/// index (`-shm`) there, so it is opened `immutable` (nothing can change it
/// while it is read), read-only. Reading commands work; writing ones fail
/// with SQLite's "attempt to write a readonly database".
fn open_immutable(path: &Path) -> Result<Option<(Connection, Layout)>> {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(&uri, flags).sql("open", path)?;
    harden(&conn, path)?;
    let version = schema_version(&conn, path)?;
    Ok(readable(version, path)?.map(|layout| (conn, layout)))
}

/// Wakes waiters on the spool at `root` by writing its bell file: best
/// effort, since a failure only delays them until their next poll. Opened
/// without blocking and written only if it is a regular file, so a FIFO
/// planted as the bell cannot hang a push (`fsck --repair` removes it).
fn ring(root: &Path) {
    use std::os::unix::fs::FileExt;
    let bell = root.join(BELL_FILE);
    if let Ok(fs) = crate::base::io::RealFs::beneath(root)
        && let Ok(f) = fs.open_file(&bell, Open::OrCreate, true)
    {
        let _ = f.write_at(b"!", 0);
    }
}

/// The queues of the spool at `root` that hold or held messages, by name.
pub fn queue_names(root: &Path) -> Result<Vec<String>> {
    let path = db_path(root);
    let Some((conn, _)) = connect(root, false, false)? else {
        return Ok(Vec::new());
    };
    let mut stmt = conn
        .prepare("SELECT name FROM queues WHERE pushed > 0 ORDER BY name")
        .sql("list queues", &path)?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .sql("list queues", &path)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .sql("list queues", &path)?;
    Ok(names)
}

/// Deletes queue `name` and its messages (the bench's scratch queue).
pub fn remove_queue(root: &Path, name: &str) -> Result<()> {
    let path = db_path(root);
    let Some((mut conn, _)) = connect(root, false, true)? else {
        return Ok(());
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql("remove a queue", &path)?;
    tx.execute(
        "DELETE FROM bodies WHERE id IN (SELECT body_id FROM messages WHERE queue = ?1)",
        [name],
    )
    .sql("remove a queue", &path)?;
    tx.execute("DELETE FROM messages WHERE queue = ?1", [name])
        .sql("remove a queue", &path)?;
    tx.execute("DELETE FROM failures WHERE queue = ?1", [name])
        .sql("remove a queue", &path)?;
    tx.execute("DELETE FROM holds WHERE queue = ?1", [name])
        .sql("remove a queue", &path)?;
    tx.execute("DELETE FROM lanes WHERE queue = ?1", [name])
        .sql("remove a queue", &path)?;
    tx.execute("DELETE FROM queues WHERE name = ?1", [name])
        .sql("remove a queue", &path)?;
    tx.commit().sql("remove a queue", &path)
}

/// One queue in the spool's database, used under the spool lock.
pub struct SqliteStore {
    conn: Connection,
    /// [`Layout::CURRENT`] unless opened to read only.
    layout: Layout,
    /// Opened for a command that may write; without, a state change (a
    /// damaged row marked corrupt by `peek`, say) is kept in memory only,
    /// as the fs store's read-only overlay does: a read-only command never
    /// writes the database.
    writable: bool,
    q: QueueRow,
    /// The target of a move ([`Store::move_target`]): its row as read.
    target: Option<QueueRow>,
}

/// The queue's row as of the last commit, and what was noticed on the way.
struct QueueRow {
    path: PathBuf,
    queue: String,
    salt: u64,
    next_seq: u64,
    counters: Counters,
    key_id: Option<KeyId>,
    notices: Vec<String>,
}

fn meta_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Meta, u8)> {
    let state: u8 = r.get(1)?;
    let receipt: Vec<u8> = r.get(6)?;
    let mut tag = [0u8; 12];
    let ok = receipt.len() == tag.len();
    if ok {
        tag.copy_from_slice(&receipt);
    }
    let m = Meta {
        seq: r.get::<_, i64>(0)? as u64,
        state: State::from_u8(state).unwrap_or(State::Corrupt),
        attempts: r.get(2)?,
        max_attempts: r.get(3)?,
        pushed_at_ms: r.get::<_, i64>(4)? as u64,
        until_ms: r.get::<_, i64>(5)? as u64,
        receipt: tag,
        len: r.get(7)?,
        loc: Loc::default(),
        expires_at_ms: r.get::<_, i64>(8)? as u64,
        keyed: r.get(9)?,
        priority: r.get(10)?,
        group: r
            .get::<_, Option<i64>>(11)?
            .and_then(|g| GroupKey::from_stored(g as u64)),
    };
    // A row that does not decode is reported as corrupt by the caller.
    let bad = u8::from(State::from_u8(state).is_none() || !ok);
    Ok((m, bad))
}

impl SqliteStore {
    /// Opens queue `name` in the spool at `root`. With `create`, the database
    /// and the queue are made if missing (the queue's row is written by its
    /// first push); without, `Ok(None)` if either is missing. Without
    /// `writable` (a command that only reads) an older schema is read as it
    /// is and every write fails.
    pub fn open(
        root: &Path,
        name: &str,
        create: bool,
        writable: bool,
    ) -> Result<Option<SqliteStore>> {
        let path = db_path(root);
        let Some((conn, layout)) = connect(root, create, writable || create)? else {
            return Ok(None);
        };
        let Some(q) = QueueRow::read(&conn, layout, path, name, create)? else {
            return Ok(None);
        };
        Ok(Some(SqliteStore {
            conn,
            layout,
            writable: writable || create,
            q,
            target: None,
        }))
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction that also writes the
    /// queue's row, and commits it; on any error nothing is stored and the
    /// cached row is put back.
    fn write<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut QueueRow, &rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        if self.layout != Layout::CURRENT {
            return Err(Error::Runtime(format!(
                "{}: {what}: opened to read only (schema {})",
                self.q.path.display(),
                self.layout.version
            )));
        }
        let saved = (self.q.next_seq, self.q.counters);
        let q = &mut self.q;
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .sql(what, &q.path)?;
            let out = f(q, &tx)?;
            q.save(&tx)?;
            tx.commit().sql(what, &q.path)?;
            Ok(out)
        })();
        match &result {
            Ok(_) => self.q.ring(),
            Err(_) => (self.q.next_seq, self.q.counters) = saved,
        }
        result
    }
}

impl QueueRow {
    /// Queue `name`'s row in the database at `path`: as stored, or (with
    /// `create`, for a queue not made yet) a new salt and no messages;
    /// `Ok(None)` if missing without `create`.
    fn read(
        conn: &Connection,
        layout: Layout,
        path: PathBuf,
        name: &str,
        create: bool,
    ) -> Result<Option<QueueRow>> {
        let expired = if layout.has_expiry() { "expired" } else { "0" };
        let row = conn
            .query_row(
                &format!(
                    "SELECT salt, next_seq, ready, delayed, leased, dead, pushed, acked, purged, corrupt, bytes,
                     {expired} FROM queues WHERE name = ?1"
                ),
                [name],
                |r| {
                    let g = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                    Ok((
                        g(0)?,
                        g(1)?,
                        Counters {
                            ready: g(2)?,
                            delayed: g(3)?,
                            leased: g(4)?,
                            dead: g(5)?,
                            pushed: g(6)?,
                            acked: g(7)?,
                            purged: g(8)?,
                            corrupt: g(9)?,
                            bytes: g(10)?,
                            expired: g(11)?,
                        },
                    ))
                },
            )
            .optional()
            .sql("read the queue", &path)?;
        let (salt, next_seq, counters) = match row {
            Some(r) => r,
            None if create => (crate::store::new_salt()?, 1, Counters::default()),
            None => return Ok(None),
        };
        let key_id = if layout.has_keys() {
            conn.query_row("SELECT key_id FROM keys WHERE queue = ?1", [name], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()
            .sql("read the queue's key id", &path)?
        } else {
            None
        };
        let key_id = key_id
            .map(|b| {
                KeyId::try_from(b.as_slice())
                    .map_err(|_| Error::corrupt(&path, format!("queue {name}: damaged key id")))
            })
            .transpose()?;
        Ok(Some(QueueRow {
            path,
            queue: name.to_string(),
            salt,
            next_seq,
            counters,
            key_id,
            notices: Vec::new(),
        }))
    }

    fn ring(&self) {
        if let Some(root) = self.path.parent() {
            ring(root);
        }
    }

    fn save(&self, tx: &rusqlite::Transaction<'_>) -> Result<()> {
        let c = &self.counters;
        tx.execute(
            "INSERT INTO queues (name, salt, next_seq, ready, delayed, leased, dead, pushed, acked, purged, corrupt, bytes, expired)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (name) DO UPDATE SET salt = excluded.salt, next_seq = excluded.next_seq,
               ready = excluded.ready, delayed = excluded.delayed, leased = excluded.leased,
               dead = excluded.dead, pushed = excluded.pushed, acked = excluded.acked,
               purged = excluded.purged, corrupt = excluded.corrupt, bytes = excluded.bytes,
               expired = excluded.expired",
            params![
                self.queue,
                self.salt as i64,
                self.next_seq as i64,
                c.ready as i64,
                c.delayed as i64,
                c.leased as i64,
                c.dead as i64,
                c.pushed as i64,
                c.acked as i64,
                c.purged as i64,
                c.corrupt as i64,
                c.bytes as i64,
                c.expired as i64
            ],
        )
        .sql("write the queue's counters", &self.path)?;
        Ok(())
    }

    fn corrupt_row(&mut self, seq: u64) {
        self.notices.push(format!(
            "{}: message {}: its row does not decode; skipped",
            self.path.display(),
            crate::model::ids::format_id(seq, self.salt)
        ));
    }
}

/// Turns off SQLite's count of the memory it uses (`SQLITE_CONFIG_MEMSTATUS`),
/// which nothing reads: kept, it takes a process-wide mutex on every
/// allocation, and the lock and unlock were 7% of a bulk push. Must come
/// before SQLite initialises (the first connection); once is enough.
fn no_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config before sqlite3_initialize, from one thread
        // (Once), with the one int argument MEMSTATUS takes. If SQLite was
        // already initialised it returns SQLITE_MISUSE and changes nothing.
        unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as libc::c_int);
        }
    });
}

/// Stores new messages: each body in `bodies`, then its row naming that
/// body. The two statements are prepared once for a whole push, not looked
/// up in the statement cache per message (hashing the long SQL text was
/// about 4% of a bulk push).
struct Inserter<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    body: rusqlite::CachedStatement<'t>,
    row: rusqlite::CachedStatement<'t>,
}

impl<'t> Inserter<'t> {
    fn new(tx: &'t rusqlite::Transaction<'t>) -> rusqlite::Result<Inserter<'t>> {
        Ok(Inserter {
            tx,
            body: tx.prepare_cached("INSERT INTO bodies (body) VALUES (?1)")?,
            row: tx.prepare_cached(
                "INSERT INTO messages (queue, seq, state, attempts, max_attempts, pushed_at, until_ms, receipt, len, crc, body_id,
                   expires_at, ttl_ms, unique_key, unique_for, priority, grp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?,
        })
    }

    fn insert(
        &mut self,
        q: &QueueRow,
        m: &Meta,
        body: &[u8],
        ttl_ms: u64,
        unique: Option<(UniqueKey, u64)>,
    ) -> rusqlite::Result<()> {
        self.body.execute([body])?;
        let body_id = self.tx.last_insert_rowid();
        self.row.execute(params![
            q.queue,
            m.seq as i64,
            m.state as u8,
            m.attempts,
            m.max_attempts,
            m.pushed_at_ms as i64,
            m.until_ms as i64,
            &m.receipt[..],
            m.len,
            crc32fast::hash(body),
            body_id,
            m.expires_at_ms as i64,
            ttl_ms as i64,
            unique.map(|(k, _)| k.0),
            unique.map_or(0, |(_, w)| w as i64),
            m.priority,
            m.group.map(|g| g.0 as i64)
        ])?;
        if m.state.is_pending() {
            lane(self.tx, &q.queue, m, true)?;
        }
        Ok(())
    }
}

/// Notes in `queues.grouped` that `queue` has had a message in a group
/// (once per push that has one).
fn mark_grouped(tx: &rusqlite::Transaction<'_>, queue: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE queues SET grouped = 1 WHERE name = ?1 AND grouped = 0")?
        .execute([queue])?;
    Ok(())
}

/// Puts message `m` in its lane (`into`) or takes it out: only a message
/// with a priority above 0 has one.
fn lane(tx: &rusqlite::Transaction<'_>, queue: &str, m: &Meta, into: bool) -> rusqlite::Result<()> {
    if m.priority == 0 {
        return Ok(());
    }
    let sql = if into {
        "INSERT OR IGNORE INTO lanes (queue, priority, seq) VALUES (?1, ?2, ?3)"
    } else {
        "DELETE FROM lanes WHERE queue = ?1 AND priority = ?2 AND seq = ?3"
    };
    tx.prepare_cached(sql)?
        .execute(params![queue, m.priority, m.seq as i64])?;
    Ok(())
}

/// Makes `hold` the hold of `key` in `queue`, replacing any.
fn put_hold(
    tx: &rusqlite::Transaction<'_>,
    queue: &str,
    key: &UniqueKey,
    hold: &Hold,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO holds (queue, key, seq, pushed_at, unique_for, free_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        queue,
        &key.0[..],
        hold.seq as i64,
        hold.pushed_at_ms as i64,
        hold.unique_for_ms as i64,
        hold.free_at_ms as i64
    ])?;
    Ok(())
}

/// Lets go of the hold of the keyed message of change `c`, if it is
/// still that message's and live ([`crate::store::releases`]): before its
/// row is deleted, which holds its key.
fn release(tx: &rusqlite::Transaction<'_>, queue: &str, c: &Change) -> rusqlite::Result<()> {
    if let Some((key, window)) = unique_of(tx, queue, c.new.seq)? {
        tx.prepare_cached(
            "UPDATE holds SET free_at = ?4 WHERE queue = ?1 AND key = ?2 AND seq = ?3 AND free_at = 0",
        )?
        .execute(params![
            queue,
            &key.0[..],
            c.new.seq as i64,
            crate::store::released_at(c, window) as i64
        ])?;
    }
    Ok(())
}

/// The unique key and window (ms) message `seq` of `queue` was pushed
/// with, if it has one (a schema-6 database).
fn unique_of(
    conn: &Connection,
    queue: &str,
    seq: u64,
) -> rusqlite::Result<Option<(UniqueKey, u64)>> {
    let row: Option<(Option<Vec<u8>>, i64)> = conn
        .prepare_cached(
            "SELECT unique_key, unique_for FROM messages WHERE queue = ?1 AND seq = ?2",
        )?
        .query_row(params![queue, seq as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(k, w)| {
        let k: [u8; 16] = k?.try_into().ok()?;
        Some((UniqueKey(k), w as u64))
    }))
}

/// The hold in columns `at..at + 4` (seq, pushed_at, unique_for, free_at).
fn hold_of(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Hold> {
    let g = |i: usize| r.get::<_, i64>(at + i).map(|v| v as u64);
    Ok(Hold {
        seq: g(0)?,
        pushed_at_ms: g(1)?,
        unique_for_ms: g(2)?,
        free_at_ms: g(3)?,
    })
}

/// Deletes message `seq` of `queue`, its body and its last failure; the
/// number of messages deleted (0 or 1).
fn delete(tx: &rusqlite::Transaction<'_>, queue: &str, seq: u64) -> rusqlite::Result<usize> {
    tx.prepare_cached("DELETE FROM failures WHERE queue = ?1 AND seq = ?2")?
        .execute(params![queue, seq as i64])?;
    tx.prepare_cached(
        "DELETE FROM bodies WHERE id = (SELECT body_id FROM messages WHERE queue = ?1 AND seq = ?2)",
    )?
    .execute(params![queue, seq as i64])?;
    tx.prepare_cached("DELETE FROM messages WHERE queue = ?1 AND seq = ?2")?
        .execute(params![queue, seq as i64])
}

/// The writes of each [`Store`] call, on the queue's row, inside a
/// transaction of [`SqliteStore::write`] (a move makes two queues' writes
/// one transaction).
impl QueueRow {
    fn push(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        msgs: &mut dyn Iterator<Item = Result<NewMessage<'_>>>,
    ) -> Result<Vec<u64>> {
        let mut seqs = Vec::new();
        let (mut swept, mut grouped) = (false, false);
        let mut rows = Inserter::new(tx).sql("push", &self.path)?;
        for msg in msgs {
            let msg = msg?;
            msg.check_size()?;
            let seq = self.next_seq;
            let m = msg.meta(seq, Loc::default());
            rows.insert(self, &m, &msg.body, msg.ttl_ms, msg.unique)
                .sql("push", &self.path)?;
            if m.group.is_some() && !grouped {
                mark_grouped(tx, &self.queue).sql("push", &self.path)?;
                grouped = true;
            }
            if let Some((key, window)) = msg.unique {
                if !swept {
                    // Holds whose key is free for good go, so the table
                    // holds no more than the keys still held.
                    tx.prepare_cached(
                        "DELETE FROM holds WHERE queue = ?1 AND free_at > 0 AND free_at <= ?2",
                    )
                    .and_then(|mut d| d.execute(params![self.queue, m.pushed_at_ms as i64]))
                    .sql("push", &self.path)?;
                    swept = true;
                }
                let hold = Hold {
                    seq,
                    pushed_at_ms: m.pushed_at_ms,
                    unique_for_ms: window,
                    free_at_ms: 0,
                };
                put_hold(tx, &self.queue, &key, &hold).sql("push", &self.path)?;
            }
            self.counters.add(m.state, m.len);
            self.next_seq += 1;
            seqs.push(seq);
        }
        Ok(seqs)
    }

    fn commit(&mut self, tx: &rusqlite::Transaction<'_>, changes: &[Change]) -> Result<()> {
        let mut update = tx
            .prepare_cached(
                "UPDATE messages SET state = ?3, attempts = ?4, max_attempts = ?5, until_ms = ?6, receipt = ?7,
                   expires_at = ?8
                 WHERE queue = ?1 AND seq = ?2",
            )
            .sql("commit", &self.path)?;
        for c in changes {
            let m = &c.new;
            if crate::store::releases(c) {
                release(tx, &self.queue, c).sql("commit", &self.path)?;
            }
            if c.old.is_pending() != m.state.is_pending() {
                lane(tx, &self.queue, m, m.state.is_pending()).sql("commit", &self.path)?;
            }
            let n = if m.state.is_live() {
                update.execute(params![
                    self.queue,
                    m.seq as i64,
                    m.state as u8,
                    m.attempts,
                    m.max_attempts,
                    m.until_ms as i64,
                    &m.receipt[..],
                    m.expires_at_ms as i64
                ])
            } else {
                delete(tx, &self.queue, m.seq)
            }
            .sql("commit", &self.path)?;
            if n != 1 {
                return Err(Error::Runtime(format!(
                    "{}: queue {}, message {}: not in the database",
                    self.path.display(),
                    self.queue,
                    m.seq
                )));
            }
            self.counters.apply(c.old, m.state, m.len);
        }
        Ok(())
    }

    fn set_key_id(&mut self, tx: &rusqlite::Transaction<'_>, id: Option<KeyId>) -> Result<()> {
        match id {
            Some(id) => tx.execute(
                "INSERT OR REPLACE INTO keys (queue, key_id) VALUES (?1, ?2)",
                params![self.queue, &id[..]],
            ),
            None => tx.execute("DELETE FROM keys WHERE queue = ?1", [&self.queue]),
        }
        .sql("record the key id", &self.path)?;
        self.key_id = id;
        Ok(())
    }

    fn record_failures(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        items: &[(u64, Failure)],
    ) -> Result<()> {
        let mut ins = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO failures (queue, seq, at_ms, attempt, kind, code, text, stderr)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
                 WHERE EXISTS (SELECT 1 FROM messages WHERE queue = ?1 AND seq = ?2)",
            )
            .sql("record a failure", &self.path)?;
        for (seq, f) in items {
            let (kind, code, text) = f.how.parts();
            ins.execute(params![
                self.queue,
                *seq as i64,
                f.at_ms as i64,
                f.attempt,
                kind,
                code,
                text,
                &f.stderr[..]
            ])
            .sql("record a failure", &self.path)?;
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn restore(
        &mut self,
        salt: u64,
        next_seq: u64,
        counters: Counters,
        metas: &[Meta],
        body: &mut dyn FnMut(&Meta) -> Result<Restored>,
        holds: &[(UniqueKey, Hold)],
    ) -> Result<()> {
        if self.q.counters.pushed != 0 {
            return Err(Error::Runtime(format!(
                "{}: cannot restore into queue {}: it is not new",
                self.q.path.display(),
                self.q.queue
            )));
        }
        self.write("restore messages", |q, tx| {
            if metas.iter().any(|m| m.group.is_some()) {
                mark_grouped(tx, &q.queue).sql("restore messages", &q.path)?;
            }
            let mut rows = Inserter::new(tx).sql("restore messages", &q.path)?;
            for m in metas {
                let r = body(m)?;
                let m = Meta {
                    len: r.body.len() as u32,
                    ..*m
                };
                rows.insert(q, &m, &r.body, r.ttl_ms, r.unique)
                    .sql("restore messages", &q.path)?;
            }
            for (key, hold) in holds {
                put_hold(tx, &q.queue, key, hold).sql("restore messages", &q.path)?;
            }
            q.salt = salt;
            q.next_seq = next_seq;
            q.counters = counters;
            Ok(())
        })
    }

    fn push(&mut self, msgs: &mut dyn Iterator<Item = Result<NewMessage<'_>>>) -> Result<Vec<u64>> {
        self.write("push", |s, tx| s.push(tx, msgs))
    }

    fn scan(&mut self, from: Scan, visit: &mut dyn FnMut(&Meta) -> Step) -> Result<()> {
        let mut bad = Vec::new();
        let mut seen = std::collections::HashSet::new();
        'scans: for (i, sql) in self.layout.scans(from).into_iter().enumerate() {
            let mut stmt = self.conn.prepare_cached(&sql).sql("scan", &self.q.path)?;
            let mut rows = stmt.query([&self.q.queue]).sql("scan", &self.q.path)?;
            while let Some(r) = rows.next().sql("scan", &self.q.path)? {
                let (m, broken) = meta_of(r).sql("scan", &self.q.path)?;
                if broken != 0 {
                    bad.push(m.seq);
                    continue;
                }
                if from == Scan::Delivery {
                    if i == 0 {
                        seen.insert(m.seq);
                    } else if m.priority > 0 && seen.contains(&m.seq) {
                        continue;
                    }
                }
                if visit(&m) == Step::Stop {
                    break 'scans;
                }
            }
        }
        for seq in bad {
            self.q.corrupt_row(seq);
        }
        Ok(())
    }

    fn get(&mut self, seq: u64) -> Result<Option<Meta>> {
        let sql = format!(
            "SELECT {} FROM messages WHERE queue = ?1 AND seq = ?2",
            self.layout.meta_columns()
        );
        let got = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_row(params![self.q.queue, seq as i64], meta_of)
                    .optional()
            })
            .sql("read a message", &self.q.path)?;
        match got {
            Some((m, 0)) => Ok(Some(m)),
            Some((m, _)) => {
                self.q.corrupt_row(m.seq);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn body(&mut self, meta: &Meta) -> Result<Vec<u8>> {
        // The row's place and the body's type and length first (neither
        // reads the body), then the body itself with SQLite's incremental
        // blob I/O straight into the one buffer returned: a plain SELECT
        // would have SQLite hold a copy of a body that may be 1 GiB too.
        let got: Option<(i64, u32, bool, i64)> = self
            .conn
            .prepare_cached(self.layout.body_place())
            .and_then(|mut s| {
                s.query_row(params![self.q.queue, meta.seq as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .sql("read a body", &self.q.path)?;
        let bad = |detail: &str| {
            Error::corrupt(
                &self.q.path,
                format!("queue {}, message {}: {detail}", self.q.queue, meta.seq),
            )
        };
        let (rowid, crc) = match got {
            Some((rowid, crc, true, len)) if len == i64::from(meta.len) => (rowid, crc),
            Some(_) => return Err(bad("the body fails its CRC32 check")),
            None => return Err(bad("the row is missing")),
        };
        let mut body = vec![0u8; meta.len as usize];
        self.conn
            .blob_open(
                rusqlite::MAIN_DB,
                self.layout.body_table(),
                "body",
                rowid,
                true,
            )
            .and_then(|blob| blob.read_at_exact(&mut body, 0))
            .sql("read a body", &self.q.path)?;
        if crc32fast::hash(&body) != crc {
            return Err(bad("the body fails its CRC32 check"));
        }
        Ok(body)
    }

    fn commit(&mut self, changes: &[Change]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        if !self.writable {
            for c in changes {
                self.q.counters.apply(c.old, c.new.state, c.new.len);
            }
            return Ok(());
        }
        self.write("commit", |s, tx| s.commit(tx, changes))
    }

    fn counters(&self) -> Counters {
        self.q.counters
    }

    fn salt(&self) -> u64 {
        self.q.salt
    }

    fn next_seq(&self) -> u64 {
        self.q.next_seq
    }

    fn key_id(&self) -> Option<KeyId> {
        self.q.key_id
    }

    fn set_key_id(&mut self, id: Option<KeyId>) -> Result<()> {
        self.write("record the key id", |q, tx| q.set_key_id(tx, id))
    }

    fn record_failures(&mut self, items: &[(u64, Failure)]) -> Result<()> {
        if items.is_empty() || !self.writable {
            return Ok(());
        }
        self.write("record a failure", |q, tx| q.record_failures(tx, items))
    }

    fn ttl_ms(&mut self, m: &Meta) -> Result<u64> {
        if !self.layout.has_expiry() {
            return Ok(0);
        }
        let ttl = self
            .conn
            .prepare_cached("SELECT ttl_ms FROM messages WHERE queue = ?1 AND seq = ?2")
            .and_then(|mut s| {
                s.query_row(params![self.q.queue, m.seq as i64], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .sql("read a message's TTL", &self.q.path)?;
        Ok(ttl.unwrap_or(0) as u64)
    }

    fn hold(&mut self, key: &UniqueKey) -> Result<Option<Hold>> {
        if !self.layout.has_unique() {
            return Ok(None);
        }
        self.conn
            .prepare_cached(
                "SELECT seq, pushed_at, unique_for, free_at FROM holds WHERE queue = ?1 AND key = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![self.q.queue, &key.0[..]], |r| hold_of(r, 0))
                    .optional()
            })
            .sql("read a key's hold", &self.q.path)
    }

    fn unique(&mut self, m: &Meta) -> Result<Option<(UniqueKey, u64)>> {
        if !self.layout.has_unique() {
            return Ok(None);
        }
        unique_of(&self.conn, &self.q.queue, m.seq).sql("read a message's key", &self.q.path)
    }

    fn grouped(&mut self) -> Result<bool> {
        if !self.layout.has_groups() {
            return Ok(false);
        }
        self.conn
            .prepare_cached("SELECT grouped FROM queues WHERE name = ?1")
            .and_then(|mut s| {
                s.query_row([&self.q.queue], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .map(|g| g.unwrap_or(0) != 0)
            .sql("read the queue", &self.q.path)
    }

    fn holds(&mut self, visit: &mut dyn FnMut(&UniqueKey, &Hold)) -> Result<()> {
        if !self.layout.has_unique() {
            return Ok(());
        }
        let path = self.q.path.clone();
        let mut st = self
            .conn
            .prepare(
                "SELECT seq, pushed_at, unique_for, free_at, key FROM holds WHERE queue = ?1 ORDER BY key",
            )
            .sql("read the holds", &path)?;
        let mut rows = st.query([&self.q.queue]).sql("read the holds", &path)?;
        while let Some(r) = rows.next().sql("read the holds", &path)? {
            let key: Vec<u8> = r.get(4).sql("read the holds", &path)?;
            let Ok(key) = <[u8; 16]>::try_from(key.as_slice()) else {
                continue;
            };
            let hold = hold_of(r, 0).sql("read the holds", &path)?;
            visit(&UniqueKey(key), &hold);
        }
        Ok(())
    }

    fn failure(&mut self, seq: u64) -> Result<Option<Failure>> {
        if !self.layout.has_failures() {
            return Ok(None);
        }
        let got: Option<(i64, u32, u8, i64, String, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT at_ms, attempt, kind, code, text, stderr FROM failures WHERE queue = ?1 AND seq = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![self.q.queue, seq as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })
                .optional()
            })
            .sql("read a failure", &self.q.path)?;
        let Some((at_ms, attempt, kind, code, text, stderr)) = got else {
            return Ok(None);
        };
        match How::from_parts(kind, code, text) {
            Some(how) => Ok(Some(Failure {
                at_ms: at_ms as u64,
                attempt,
                how,
                stderr,
            })),
            None => {
                self.q.notices.push(format!(
                    "{}: message {}: its failure row does not decode; skipped",
                    self.q.path.display(),
                    crate::model::ids::format_id(seq, self.q.salt)
                ));
                Ok(None)
            }
        }
    }

    fn segments(&self) -> u64 {
        // One database file for the whole spool.
        1
    }

    fn disk_bytes(&mut self) -> Result<u64> {
        // The database and its WAL, shared by every queue of the spool.
        let mut total = 0;
        for suffix in ["", "-wal"] {
            let p = PathBuf::from(format!("{}{suffix}", self.q.path.display()));
            match std::fs::metadata(&p) {
                Ok(m) => total += m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("stat", &p, e)),
            }
        }
        Ok(total)
    }

    fn move_target(&mut self, to: &str) -> Result<Target> {
        // The spool lock (exclusive for this store) keeps every other
        // command out until the move commits.
        let t = QueueRow::read(&self.conn, self.layout, self.q.path.clone(), to, true)?
            .ok_or_else(|| Error::NoSuchQueue(to.to_string()))?;
        let target = Target {
            salt: t.salt,
            next_seq: t.next_seq,
            key_id: t.key_id,
            pushed: t.counters.pushed,
        };
        self.target = Some(t);
        Ok(target)
    }

    fn move_out(
        &mut self,
        key_id: Option<Option<KeyId>>,
        msgs: Vec<Incoming<'_>>,
        changes: &[Change],
    ) -> Result<Vec<u64>> {
        let mut t = (self.target.take()).ok_or_else(|| no_target(&self.q.path.display()))?;
        // One transaction: the target's messages, failures and row, and
        // this queue's changes and row.
        let (news, failures) = split_incoming(msgs);
        let seqs = self.write("move messages", |q, tx| {
            if let Some(id) = key_id {
                t.set_key_id(tx, id)?;
            }
            let seqs = t.push(tx, &mut news.into_iter().map(Ok))?;
            t.record_failures(tx, &failures_at(&seqs, failures))?;
            t.save(tx)?;
            q.commit(tx, changes)?;
            Ok(seqs)
        })?;
        // `write` rang the spool's bell, which wakes the target's waiters too.
        Ok(seqs)
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.q.notices)
    }
}

/// The length of a row's body and whether its CRC32 matches (the columns
/// after the [`META_LEN`] of [`Layout::rows_with_bodies`]); a missing body
/// is length -1.
fn body_check(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, bool)> {
    let Some(body) = row.get_ref(META_LEN)?.as_blob_or_null()? else {
        return Ok((-1, false));
    };
    let crc: u32 = row.get(META_LEN + 1)?;
    Ok((body.len() as i64, crc32fast::hash(body) == crc))
}

/// `fsck` of queue `name` in a sqlite spool: every row of the queue (state,
/// receipt, length, CRC32 of the body, seq below the queue's next seq) and
/// the counters against the rows. (SQLite's own `integrity_check` covers
/// the whole file: [`check_database`] runs it once per spool.)
pub fn check(root: &Path, name: &str) -> Result<crate::store::QueueReport> {
    let mut r = crate::store::QueueReport::default();
    let Some(store) = SqliteStore::open(root, name, false, false)? else {
        return Err(Error::NoSuchQueue(name.to_string()));
    };
    let (conn, q) = (&store.conn, &store.q);
    let problem = |offset: Option<u64>, what: String| crate::store::Problem {
        queue: name.to_string(),
        file: q.path.clone(),
        offset,
        what,
    };
    let mut seen = Counters::default();
    let mut stmt = conn
        .prepare(&store.layout.rows_with_bodies())
        .sql("check messages", &q.path)?;
    let mut rows = stmt.query([name]).sql("check messages", &q.path)?;
    while let Some(row) = rows.next().sql("check messages", &q.path)? {
        r.records += 1;
        let (m, broken) = meta_of(row).sql("check messages", &q.path)?;
        let (body_len, crc_ok) = body_check(row).sql("check messages", &q.path)?;
        let at = None;
        if broken != 0 || !m.state.is_live() {
            r.problems.push(problem(
                at,
                format!("message {}: bad state or receipt", m.seq),
            ));
            continue;
        }
        if body_len != i64::from(m.len) || !crc_ok {
            r.problems.push(problem(
                at,
                format!(
                    "message {}: the body fails its length or CRC32 check",
                    m.seq
                ),
            ));
            continue;
        }
        if m.seq >= q.next_seq {
            r.problems.push(problem(
                at,
                format!(
                    "message {}: at or past the queue's next seq {}",
                    m.seq, q.next_seq
                ),
            ));
        }
        seen.add(m.state, m.len);
    }
    if let Some(what) = q.counters.rows_disagree(&seen) {
        r.problems.push(problem(None, what));
    }
    Ok(r)
}

/// `fsck --repair` of queue `name`: rebuilds SQLite's indexes, deletes rows
/// that fail their checks (counted as corrupt, never served) and sets the
/// live counters from the rows. Returns a line per thing done.
pub fn repair(root: &Path, name: &str) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let Some(mut store) = SqliteStore::open(root, name, false, true)? else {
        return Err(Error::NoSuchQueue(name.to_string()));
    };
    let path = store.q.path.clone();
    store
        .conn
        .execute_batch("REINDEX")
        .sql("rebuild the indexes", &path)?;
    notes.push("rebuilt the database's indexes".to_string());
    store.write("repair", |q, tx| {
        let mut bad = Vec::new();
        let mut live = Counters::default();
        let mut top = 0u64;
        {
            let mut stmt = tx
                .prepare(&Layout::CURRENT.rows_with_bodies())
                .sql("repair", &path)?;
            let mut rows = stmt.query([name]).sql("repair", &path)?;
            while let Some(row) = rows.next().sql("repair", &path)? {
                let (m, broken) = meta_of(row).sql("repair", &path)?;
                let (body_len, crc_ok) = body_check(row).sql("repair", &path)?;
                top = top.max(m.seq + 1);
                if broken != 0 || !m.state.is_live() || body_len != i64::from(m.len) || !crc_ok {
                    bad.push(m.seq);
                } else {
                    live.add(m.state, m.len);
                }
            }
        }
        for seq in &bad {
            delete(tx, name, *seq).sql("repair", &path)?;
            notes.push(format!(
                "message {}: damaged row removed (counted as corrupt)",
                crate::model::ids::format_id(*seq, q.salt)
            ));
        }
        let c = &mut q.counters;
        c.corrupt += bad.len() as u64;
        (c.ready, c.delayed, c.leased, c.dead, c.expired, c.bytes) = (
            live.ready,
            live.delayed,
            live.leased,
            live.dead,
            live.expired,
            live.bytes,
        );
        q.next_seq = q.next_seq.max(top);
        Ok(())
    })?;
    notes.push("counters set from the rows".to_string());
    Ok(notes)
}
