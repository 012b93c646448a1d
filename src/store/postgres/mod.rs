//! The PostgreSQL store: queues shared by processes on many hosts through
//! one database, selected with `--url` (or `SPOOLMQ_URL`).
//!
//! ```text
//! spoolmq_meta      version int                      schema version (7)
//! spoolmq_queues    name text PRIMARY KEY, salt, next_seq,
//!                   ready, delayed, leased, dead, pushed, acked, purged, corrupt, bytes,
//!                   key_id bytea (encrypted queues, crate::model::crypt; added in version 2),
//!                   expired bigint (added in version 4), grouped boolean (a message
//!                   was pushed in a group; added in version 7)
//! spoolmq_messages  queue text, seq bigint (PRIMARY KEY (queue, seq)), state smallint,
//!                   attempts int, max_attempts int, pushed_at bigint, until_ms bigint,
//!                   receipt bytea(12), len int, body bytea, crc bigint (CRC32 of body),
//!                   expires_at bigint (ms, 0: no TTL), ttl_ms bigint (added in version 4),
//!                   unique_key bytea (16 bytes, NULL: none), unique_for bigint (ms)
//!                   (added in version 5), priority smallint (0-9, 0: a plain
//!                   push; added in version 6), grp bigint (the `--group`'s key,
//!                   crate::model::group, as a signed integer; NULL: none;
//!                   added in version 7)
//!                   body: STORAGE EXTERNAL (out of line, uncompressed)
//!                   index spoolmq_pending ON (queue, seq) WHERE state IN (1, 2, 3)
//!                   index spoolmq_lanes ON (queue, priority DESC, seq)
//!                   WHERE state IN (1, 2, 3) AND priority > 0 (added in version 6)
//!                   (no index for groups: the delivery scan of spoolmq_pending
//!                   meets a group's messages in push order)
//! spoolmq_failures  queue text, seq bigint (PRIMARY KEY (queue, seq)), at_ms bigint,
//!                   attempt int, kind smallint, code bigint, text text, stderr bytea:
//!                   the last failure of a message (crate::model::failure, How::parts),
//!                   replaced by each failure, deleted with the message (added in version 3)
//! spoolmq_holds     queue text, key bytea (PRIMARY KEY (queue, key)), seq bigint,
//!                   pushed_at bigint, unique_for bigint, free_at bigint (0 while
//!                   pending): the hold of each unique key (crate::model::unique),
//!                   deleted by a later keyed push once free_at has passed
//!                   (index spoolmq_holds_free ON (queue, free_at) WHERE free_at > 0;
//!                   added in version 5)
//! NOTIFY spoolmq, QUEUE   after each commit that may make a message deliverable
//! ```
//!
//! Invariants:
//! * One transaction per write: a command's work is in the database when
//!   COMMIT returns (the server's own durability: fsync, synchronous_commit)
//!   and nothing of it is if the connection or the server goes away first.
//!   The store keeps a transaction open from `open` on and starts the next
//!   one after each commit, so what a command reads is locked until it commits.
//! * `pop` finds messages with `SELECT ... FOR UPDATE SKIP LOCKED`: workers
//!   on any host never wait on each other and never lease one message twice;
//!   `ack`/`nack`/`extend` lock the row they change (`FOR UPDATE`).
//! * Many messages are never one round trip each: a scan locks up to as
//!   many rows as the pop wants in one statement, `get_each` and `bodies`
//!   name up to [`GET_EACH_BATCH`] rows per query, a commit changes up to
//!   [`CHANGE_BATCH`] rows per statement.
//! * Time is the server's (`clock_timestamp()`, through [`Store::now`]): lease
//!   deadlines and delays agree across hosts whatever their clocks say.
//! * Counters live in the queue's row and change in the same transaction as
//!   the messages, by deltas, so concurrent commits from many hosts add up.
//! * The schema is made on first use by a versioned migration, in one
//!   transaction under an advisory lock, so many processes starting at once
//!   create it once.
//! * A body larger than [`BODY_CHUNK`] is read a chunk at a time
//!   (`substring`) into one buffer of its size, its CRC32 computed as it
//!   comes, under the row's lock, so that the client holds the body and one
//!   chunk, not the row as received and a copy of it. The column is
//!   `STORAGE EXTERNAL` so that a substring reads only the TOAST chunks it
//!   covers: of a compressed value (the default, EXTENDED) each substring
//!   would decompress from the start, quadratic in the body's size. A body
//!   stored compressed (written before its database's column was changed)
//!   is read in one statement, as before.
//! * The storage is not a schema version: it changes no stored value (only
//!   how new ones are stored) and every build reads both kinds, so schema 2
//!   stays 2 and builds that know only 2 keep working on a database this one
//!   opened. A new database gets it with the tables; a schema-2 database
//!   made by an older build gets it from an open by this one that finds the
//!   column still EXTENDED in the catalog (checked in the query that reads
//!   the version), under the migration's lock, if the table's lock is free
//!   at once (`NOWAIT`: else the next open tries again) and the role owns
//!   the table (else it is left, and its bodies are read as stored); its
//!   rows are kept as they are.
//! * The queue logic ([`crate::queue`]) decides every state change; integers
//!   are stored as PostgreSQL's signed types, bit for bit.

pub mod conn;

use crate::base::error::{Error, Result};
use crate::model::crypt::KeyId;
use crate::model::failure::{Failure, How};
use crate::store::{
    Change, Counters, Hold, Incoming, Loc, Meta, NewMessage, Restored, Scan, State, Step, Store,
    Target, UniqueKey, failures_at, no_target, split_incoming,
};

/// A message row as [`PgStore::copy_rows`] writes it: its meta, body, TTL
/// (ms) and unique key and window.
type PgRow<'a> = (Meta, Cow<'a, [u8]>, u64, Option<(UniqueKey, u64)>);
use postgres::Client;
use postgres::types::{ToSql, Type};
use std::borrow::Cow;
use std::time::Duration;

/// The schema this build writes and reads.
const SCHEMA_VERSION: i32 = 7;
/// Advisory lock key for the schema migration ("spoolmq" in ASCII).
const MIGRATION_LOCK: i64 = 0x0073_706f_6f6c_6d71;
/// The channel `pop --wait` listens on; the payload is the queue's name.
pub const CHANNEL: &str = "spoolmq";
/// Rows fetched (and locked) at a time by a scan.
const PAGE: i64 = 256;
/// The most of a body read in one statement. A larger body is read a chunk
/// at a time into one buffer of its size, so that the client holds the body
/// and one chunk, not the body twice (the row as received and its copy).
/// 1 MiB: next to a body that needs chunks it is under 0.1% more memory,
/// and at most 1024 round trips for the 1 GiB limit, each a read of about
/// 500 of the server's ~2 KB TOAST chunks (the column is `STORAGE EXTERNAL`,
/// so a substring fetches only the TOAST chunks it covers).
const BODY_CHUNK: i32 = 1 << 20;

/// The tables of schema 1 and 2 (a new database then gets [`SCHEMA_3`] too).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spoolmq_meta (version int PRIMARY KEY);
CREATE TABLE IF NOT EXISTS spoolmq_queues (
    name text PRIMARY KEY,
    salt bigint NOT NULL,
    next_seq bigint NOT NULL,
    ready bigint NOT NULL DEFAULT 0, delayed bigint NOT NULL DEFAULT 0,
    leased bigint NOT NULL DEFAULT 0, dead bigint NOT NULL DEFAULT 0,
    pushed bigint NOT NULL DEFAULT 0, acked bigint NOT NULL DEFAULT 0,
    purged bigint NOT NULL DEFAULT 0, corrupt bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    key_id bytea
);
CREATE TABLE IF NOT EXISTS spoolmq_messages (
    queue text NOT NULL,
    seq bigint NOT NULL,
    state smallint NOT NULL,
    attempts int NOT NULL,
    max_attempts int NOT NULL,
    pushed_at bigint NOT NULL,
    until_ms bigint NOT NULL,
    receipt bytea NOT NULL,
    len int NOT NULL,
    body bytea NOT NULL,
    crc bigint NOT NULL,
    PRIMARY KEY (queue, seq)
);
CREATE INDEX IF NOT EXISTS spoolmq_pending ON spoolmq_messages (queue, seq) WHERE state IN (1, 2, 3);
ALTER TABLE spoolmq_messages ALTER COLUMN body SET STORAGE EXTERNAL;
";

/// Bodies out of line and uncompressed (see the module doc), for a database
/// made by an older build: tried without waiting (`NOWAIT`: a table lock
/// that queued behind a long transaction would stall every worker behind
/// it), in a savepoint, and skipped on any failure; the next open tries
/// again. Applies to new values only: the rows stored are left as they are.
const BODY_EXTERNAL: &str = "SAVEPOINT body_storage;
LOCK TABLE spoolmq_messages IN ACCESS EXCLUSIVE MODE NOWAIT;
ALTER TABLE spoolmq_messages ALTER COLUMN body SET STORAGE EXTERNAL;
RELEASE SAVEPOINT body_storage;";

/// Whether the body column needs nothing more from this build: it is
/// EXTERNAL, or the role cannot change it (only the table's owner can; a
/// role that may only read and write rows works as well without), through
/// the catalog tables (MVCC). NULL if there is no messages table.
const BODY_SETTLED: &str = "SELECT a.attstorage = 'e' OR NOT pg_has_role(c.relowner, 'USAGE')
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relname = 'spoolmq_messages'
      AND a.attname = 'body' AND NOT a.attisdropped";

/// From schema 1 to 2.
const SCHEMA_2: &str = "ALTER TABLE spoolmq_queues ADD COLUMN IF NOT EXISTS key_id bytea;";

/// From schema 3 to 4: expiry. Columns with a constant default: no row is
/// rewritten (PostgreSQL 11 on).
const SCHEMA_4: &str = "
ALTER TABLE spoolmq_messages ADD COLUMN IF NOT EXISTS expires_at bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS ttl_ms bigint NOT NULL DEFAULT 0;
ALTER TABLE spoolmq_queues ADD COLUMN IF NOT EXISTS expired bigint NOT NULL DEFAULT 0;
";

/// From schema 4 to 5: unique keys. The columns have constant defaults
/// (NULL, 0): no row is rewritten.
const SCHEMA_5: &str = "
ALTER TABLE spoolmq_messages ADD COLUMN IF NOT EXISTS unique_key bytea,
    ADD COLUMN IF NOT EXISTS unique_for bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS spoolmq_holds (
    queue text NOT NULL,
    key bytea NOT NULL,
    seq bigint NOT NULL,
    pushed_at bigint NOT NULL,
    unique_for bigint NOT NULL,
    free_at bigint NOT NULL,
    PRIMARY KEY (queue, key)
);
CREATE INDEX IF NOT EXISTS spoolmq_holds_free ON spoolmq_holds (queue, free_at) WHERE free_at > 0;
";

/// From schema 5 to 6: priorities. The column's constant default (0, a
/// plain push) rewrites no row; the partial index holds only pending
/// messages pushed with a priority, so a plain push pays nothing for it
/// and a pop reaches the most urgent at once.
const SCHEMA_6: &str = "
ALTER TABLE spoolmq_messages ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS spoolmq_lanes ON spoolmq_messages (queue, priority DESC, seq)
    WHERE state IN (1, 2, 3) AND priority > 0;
";

/// From schema 6 to 7: ordered groups. Both columns' defaults rewrite no
/// row; no index (see the schema above).
const SCHEMA_7: &str = "
ALTER TABLE spoolmq_messages ADD COLUMN IF NOT EXISTS grp bigint;
ALTER TABLE spoolmq_queues ADD COLUMN IF NOT EXISTS grouped boolean NOT NULL DEFAULT false;
";

/// From schema 2 to 3: the last failure of each message.
const SCHEMA_3: &str = "CREATE TABLE IF NOT EXISTS spoolmq_failures (
    queue text NOT NULL,
    seq bigint NOT NULL,
    at_ms bigint NOT NULL,
    attempt int NOT NULL,
    kind smallint NOT NULL,
    code bigint NOT NULL,
    text text NOT NULL,
    stderr bytea NOT NULL,
    PRIMARY KEY (queue, seq)
);";

const META_COLUMNS: &str =
    "seq, state, attempts, max_attempts, pushed_at, until_ms, receipt, len, expires_at,
    unique_key IS NOT NULL, priority, grp";
/// How many columns [`META_COLUMNS`] names: where the columns after them start.
const META_LEN: usize = 12;
const COUNTER_COLUMNS: &str =
    "ready, delayed, leased, dead, pushed, acked, purged, corrupt, bytes, expired";

/// Whether `url` names a PostgreSQL server: a `postgres://` or
/// `postgresql://` URL, or a `key=value` connection string.
pub fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://") || url.contains('=')
}

/// Where a connection goes, for messages: host, port and database, never
/// the password.
pub fn describe(url: &str) -> String {
    match crate::store::postgres::conn::Target::from_env(url) {
        Ok(t) => t.describe(),
        Err(_) => "postgresql".into(),
    }
}

/// A one-line error for a failed database operation: what was being done,
/// where, and the server's or the connection's reason.
fn pg_error(place: &str, what: &str, e: postgres::Error) -> Error {
    let reason = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None if e.is_closed() => "the connection was closed (did the server stop?)".to_string(),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let more = s.to_string();
                if !text.contains(&more) {
                    text = format!("{text}: {more}");
                }
                source = s.source();
            }
            text
        }
    };
    if let Some(db) = e.as_db_error()
        && *db.code() == postgres::error::SqlState::DISK_FULL
    {
        return Error::DiskFull {
            what: format!("{what}: {reason}"),
            path: place.into(),
        };
    }
    Error::Runtime(format!("{place}: {what}: {reason}"))
}

/// A failed `COMMIT`: refused by the server with an ERROR (nothing stored,
/// as any other failed statement), or ended with the session, when the
/// server may have committed it first: the connection broke before the
/// answer, or the server answered with a FATAL error (a shutdown's
/// "terminating connection due to administrator command" can come after
/// the commit was made; seen in `tests/it/pg_server_restart.rs`). That is
/// said, since a user who retries a push may then store it twice, and an
/// ack not taken is delivered again when its lease runs out.
fn commit_error(place: &str, what: &str, e: postgres::Error) -> Error {
    if let Some(db) = e.as_db_error()
        && !matches!(db.severity(), "FATAL" | "PANIC")
    {
        return pg_error(place, what, e);
    }
    match pg_error(place, what, e) {
        Error::Runtime(line) => Error::Runtime(format!(
            "{line}; the commit's outcome is unknown: it may have been stored"
        )),
        other => other,
    }
}

trait PgContext<T> {
    fn pg(self, place: &str, what: &str) -> Result<T>;
}

impl<T> PgContext<T> for std::result::Result<T, postgres::Error> {
    fn pg(self, place: &str, what: &str) -> Result<T> {
        self.map_err(|e| pg_error(place, what, e))
    }
}

/// Connects to `url`, with libpq's environment variables and password
/// file and spoolmq's transport policy (TLS whenever the server offers it;
/// no clear-text or MD5 password without a checked certificate unless
/// `sslmode=disable`: see [`crate::store::postgres::conn`]), and makes sure the schema
/// exists.
pub fn connect(url: &str) -> Result<Client> {
    let target = crate::store::postgres::conn::Target::from_env(url)?;
    let place = target.describe();
    let (config, connector) = target.prepare()?;
    let mut client = config.connect(connector).pg(&place, "connect")?;
    migrate_schema(&mut client, &place)?;
    Ok(client)
}

fn migrate_schema(client: &mut Client, place: &str) -> Result<()> {
    // Creators are serialised by an advisory lock, but PostgreSQL's catalog
    // lookups may still race (a concurrent CREATE ... IF NOT EXISTS can fail
    // on the catalog's unique index): try again a few times.
    let mut tries = 0;
    loop {
        match migrate_schema_once(client, place) {
            Err(_) if tries < 5 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20 * tries));
            }
            r => return r,
        }
    }
}

fn migrate_schema_once(client: &mut Client, place: &str) -> Result<()> {
    // The version and whether the body column is settled, in one round trip
    // after the first.
    let version = |c: &mut Client| -> Result<(Option<i32>, bool)> {
        let exists: Option<String> = c
            .query_one("SELECT to_regclass('spoolmq_meta')::text", &[])
            .pg(place, "read the schema version")?
            .get(0);
        if exists.is_none() {
            return Ok((None, false));
        }
        let row = c
            .query_one(
                &format!("SELECT max(version), ({BODY_SETTLED}) FROM spoolmq_meta"),
                &[],
            )
            .pg(place, "read the schema version")?;
        let settled: Option<bool> = row.get(1);
        Ok((row.get(0), settled == Some(true)))
    };
    match version(client)? {
        (Some(v), true) if v == SCHEMA_VERSION => return Ok(()),
        (Some(v), _) if v > SCHEMA_VERSION => {
            return Err(Error::Runtime(format!(
                "{place}: the schema was made by a newer spoolmq (version {v}, this one knows {SCHEMA_VERSION})"
            )));
        }
        _ => {}
    }
    let mut tx = client.transaction().pg(place, "create the schema")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .pg(place, "create the schema")?;
    // Checked again under the lock, through the catalog tables (MVCC: what
    // the process that held the lock committed), not to_regclass, whose
    // cache an advisory lock does not refresh. Nothing that locks a table
    // runs unless it is needed: CREATE INDEX IF NOT EXISTS and ALTER TABLE
    // take table locks that would deadlock with workers already pushing.
    let has = |tx: &mut postgres::Transaction<'_>, table: &str, column: &str| -> Result<bool> {
        tx.query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2)",
            &[&table, &column],
        )
        .pg(place, "read the schema")
        .map(|r| r.get(0))
    };
    if !has(&mut tx, "spoolmq_meta", "version")? {
        // A new database gets the failures table from the same step an
        // older one is brought up to date with.
        tx.batch_execute(SCHEMA).pg(place, "create the schema")?;
        tx.batch_execute(SCHEMA_3).pg(place, "create the schema")?;
        tx.batch_execute(SCHEMA_4).pg(place, "create the schema")?;
        tx.batch_execute(SCHEMA_5).pg(place, "create the schema")?;
        tx.batch_execute(SCHEMA_6).pg(place, "create the schema")?;
        tx.batch_execute(SCHEMA_7).pg(place, "create the schema")?;
    } else {
        if !has(&mut tx, "spoolmq_queues", "key_id")? {
            tx.batch_execute(SCHEMA_2).pg(place, "update the schema")?;
        }
        if !has(&mut tx, "spoolmq_failures", "seq")? {
            tx.batch_execute(SCHEMA_3).pg(place, "update the schema")?;
        }
        if !has(&mut tx, "spoolmq_queues", "expired")?
            || !has(&mut tx, "spoolmq_messages", "ttl_ms")?
        {
            tx.batch_execute(SCHEMA_4).pg(place, "update the schema")?;
        }
        if !has(&mut tx, "spoolmq_holds", "free_at")?
            || !has(&mut tx, "spoolmq_messages", "unique_for")?
        {
            tx.batch_execute(SCHEMA_5).pg(place, "update the schema")?;
        }
        if !has(&mut tx, "spoolmq_messages", "priority")? {
            tx.batch_execute(SCHEMA_6).pg(place, "update the schema")?;
        }
        if !has(&mut tx, "spoolmq_messages", "grp")? || !has(&mut tx, "spoolmq_queues", "grouped")?
        {
            tx.batch_execute(SCHEMA_7).pg(place, "update the schema")?;
        }
        let settled: Option<bool> = tx
            .query_opt(BODY_SETTLED, &[])
            .pg(place, "read the schema")?
            .and_then(|r| r.get(0));
        if settled != Some(true) && tx.batch_execute(BODY_EXTERNAL).is_err() {
            // Busy, or not ours to change: bodies are read either way.
            tx.batch_execute("ROLLBACK TO SAVEPOINT body_storage")
                .pg(place, "update the schema")?;
        }
    }
    tx.execute(
        "INSERT INTO spoolmq_meta (version) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&SCHEMA_VERSION],
    )
    .pg(place, "create the schema")?;
    tx.commit().pg(place, "create the schema")
}

/// The queues in the database that hold or held messages, by name.
pub fn queue_names(url: &str) -> Result<Vec<String>> {
    let place = describe(url);
    let mut c = connect(url)?;
    let rows = c
        .query(
            "SELECT name FROM spoolmq_queues WHERE pushed > 0 ORDER BY name",
            &[],
        )
        .pg(&place, "list queues")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Deletes queue `name` and its messages (the bench's scratch queue).
pub fn remove_queue(url: &str, name: &str) -> Result<()> {
    let place = describe(url);
    let mut c = connect(url)?;
    let mut tx = c.transaction().pg(&place, "remove a queue")?;
    tx.execute("DELETE FROM spoolmq_messages WHERE queue = $1", &[&name])
        .pg(&place, "remove a queue")?;
    tx.execute("DELETE FROM spoolmq_failures WHERE queue = $1", &[&name])
        .pg(&place, "remove a queue")?;
    tx.execute("DELETE FROM spoolmq_holds WHERE queue = $1", &[&name])
        .pg(&place, "remove a queue")?;
    tx.execute("DELETE FROM spoolmq_queues WHERE name = $1", &[&name])
        .pg(&place, "remove a queue")?;
    tx.commit().pg(&place, "remove a queue")
}

/// One queue in the database, with a transaction open until the next commit.
pub struct PgStore {
    client: Client,
    place: String,
    queue: String,
    salt: u64,
    next_seq: u64,
    counters: Counters,
    key_id: Option<KeyId>,
    /// A key id given by `set_key_id`, written by the next push or restore.
    new_key_id: Option<Option<KeyId>>,
    /// Failures recorded in the open transaction, not yet committed: the
    /// next `commit` (even of no change) commits them.
    failures_pending: bool,
    /// Whether the open transaction holds the queue's row lock (taken by
    /// `prepare_push`, so the push that follows need not take it again).
    row_locked: bool,
    /// The target of a move ([`Store::move_target`]), its row locked in the
    /// open transaction.
    target: Option<(String, Target)>,
    notices: Vec<String>,
}

/// The key id in column `at`; a value that is not 16 bytes is damage.
fn key_id_of(r: &postgres::Row, at: usize, place: &str, queue: &str) -> Result<Option<KeyId>> {
    let b: Option<Vec<u8>> = r.get(at);
    b.map(|b| {
        KeyId::try_from(b.as_slice()).map_err(|_| {
            Error::Runtime(format!(
                "{place}: queue {queue}: damaged key id ({} bytes)",
                b.len()
            ))
        })
    })
    .transpose()
}

fn counters_of(r: &postgres::Row, at: usize) -> Counters {
    let g = |i: usize| r.get::<_, i64>(at + i) as u64;
    Counters {
        ready: g(0),
        delayed: g(1),
        leased: g(2),
        dead: g(3),
        pushed: g(4),
        acked: g(5),
        purged: g(6),
        corrupt: g(7),
        bytes: g(8),
        expired: g(9),
    }
}

/// The hold in columns `at..at + 4` (seq, pushed_at, unique_for, free_at).
fn hold_of(r: &postgres::Row, at: usize) -> Hold {
    let g = |i: usize| r.get::<_, i64>(at + i) as u64;
    Hold {
        seq: g(0),
        pushed_at_ms: g(1),
        unique_for_ms: g(2),
        free_at_ms: g(3),
    }
}

/// A message row as [`Meta`]; `None` if its state or receipt does not decode.
fn meta_of(r: &postgres::Row) -> (Meta, bool) {
    let state: i16 = r.get(1);
    let receipt: Vec<u8> = r.get(6);
    let mut tag = [0u8; 12];
    let ok = receipt.len() == tag.len() && State::from_u8(state as u8).is_some();
    if receipt.len() == tag.len() {
        tag.copy_from_slice(&receipt);
    }
    let m = Meta {
        seq: r.get::<_, i64>(0) as u64,
        state: State::from_u8(state as u8).unwrap_or(State::Corrupt),
        attempts: r.get::<_, i32>(2) as u32,
        max_attempts: r.get::<_, i32>(3) as u32,
        pushed_at_ms: r.get::<_, i64>(4) as u64,
        until_ms: r.get::<_, i64>(5) as u64,
        receipt: tag,
        len: r.get::<_, i32>(7) as u32,
        loc: Loc::default(),
        expires_at_ms: r.get::<_, i64>(8) as u64,
        keyed: r.get(9),
        priority: r
            .get::<_, i16>(10)
            .clamp(0, i16::from(crate::store::MAX_PRIORITY)) as u8,
        group: r
            .get::<_, Option<i64>>(11)
            .and_then(|g| crate::store::GroupKey::from_stored(g as u64)),
    };
    (m, ok)
}

/// Signed changes to the counters, for an `UPDATE ... SET x = x + d`.
#[derive(Default)]
struct Deltas([i64; 10]);

impl Deltas {
    fn index(s: State) -> usize {
        match s {
            State::Ready => 0,
            State::Delayed => 1,
            State::Leased => 2,
            State::Dead => 3,
            State::Acked => 5,
            State::Purged => 6,
            State::Corrupt => 7,
            State::Expired => 9,
        }
    }
    fn add(&mut self, s: State, len: u32) {
        self.0[4] += 1;
        self.0[Deltas::index(s)] += 1;
        if s.is_live() {
            self.0[8] += i64::from(len);
        }
    }
    fn apply(&mut self, old: State, new: State, len: u32) {
        if old == new {
            return;
        }
        self.0[Deltas::index(old)] -= 1;
        self.0[Deltas::index(new)] += 1;
        match (old.is_live(), new.is_live()) {
            (true, false) => self.0[8] -= i64::from(len),
            (false, true) => self.0[8] += i64::from(len),
            _ => {}
        }
    }
}

impl PgStore {
    /// Opens queue `name` in the database at `url`. With `create`, a queue
    /// that does not exist yet is made by its first push; without, `Ok(None)`.
    pub fn open(url: &str, name: &str, create: bool) -> Result<Option<PgStore>> {
        let place = describe(url);
        let mut client = connect(url)?;
        client.batch_execute("BEGIN").pg(&place, "begin")?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT salt, next_seq, key_id, {COUNTER_COLUMNS} FROM spoolmq_queues WHERE name = $1"
                ),
                &[&name],
            )
            .pg(&place, "read the queue")?;
        let (salt, next_seq, key_id, counters) = match row {
            Some(r) => (
                r.get::<_, i64>(0) as u64,
                r.get::<_, i64>(1) as u64,
                key_id_of(&r, 2, &place, name)?,
                counters_of(&r, 3),
            ),
            None if create => (crate::store::new_salt()?, 1, None, Counters::default()),
            None => return Ok(None),
        };
        Ok(Some(PgStore {
            client,
            place,
            queue: name.to_string(),
            salt,
            next_seq,
            counters,
            key_id,
            new_key_id: None,
            failures_pending: false,
            row_locked: false,
            target: None,
            notices: Vec::new(),
        }))
    }

    /// Runs `f` in the open transaction, then commits and begins the next;
    /// on an error the transaction is rolled back and nothing is stored.
    ///
    /// A commit the server confirmed is this write's success even when the
    /// `BEGIN` after it fails (the server went away in between): the caller
    /// is told it is stored, and the next statement on this connection
    /// meets the closed connection and reports it. A `COMMIT` whose answer
    /// never came is reported as exactly that: it may have been stored.
    fn write<T>(&mut self, what: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let saved = (self.salt, self.next_seq, self.counters);
        let result = f(self).and_then(|out| {
            self.cut_if_armed("pg.before-commit");
            self.client
                .batch_execute("COMMIT")
                .map_err(|e| commit_error(&self.place, what, e))?;
            Ok(out)
        });
        if result.is_err() {
            (self.salt, self.next_seq, self.counters) = saved;
            let _ = self.client.batch_execute("ROLLBACK");
        }
        self.row_locked = false;
        if result.is_ok() {
            self.cut_if_armed("pg.after-commit");
        }
        // The next command's reads are again in a transaction of their own.
        // A BEGIN that fails is not this write's failure: it fails only on a
        // connection that broke, where the next statement fails too.
        let _ = self.client.batch_execute("BEGIN");
        result
    }

    /// The outages `write` guards against, made on demand for the tests:
    /// with the fault point `name` armed, the server ends this connection.
    fn cut_if_armed(&mut self, name: &str) {
        if crate::base::failpoint::armed(name) {
            let _ = self
                .client
                .batch_execute("SELECT pg_terminate_backend(pg_backend_pid())");
        }
    }

    /// Creates the queue's row if it is missing and locks it; takes its salt
    /// and next seq (another process may have made it first).
    fn lock_queue_row(&mut self) -> Result<()> {
        if self.row_locked {
            // Locked in this transaction: nobody else changed it since.
            return Ok(());
        }
        let queue = self.queue.clone();
        let (t, counters) = self.lock_row(&queue, self.salt)?;
        (self.salt, self.next_seq, self.key_id, self.counters) =
            (t.salt, t.next_seq, t.key_id, counters);
        self.row_locked = true;
        Ok(())
    }

    /// Creates queue `name`'s row (with `salt`) if it is missing and locks
    /// it in the open transaction: what it holds.
    fn lock_row(&mut self, name: &str, salt: u64) -> Result<(Target, Counters)> {
        self.client
            .execute(
                "INSERT INTO spoolmq_queues (name, salt, next_seq) VALUES ($1, $2, 1)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &(salt as i64)],
            )
            .pg(&self.place, "create the queue")?;
        let r = self
            .client
            .query_one(
                &format!(
                    "SELECT salt, next_seq, key_id, {COUNTER_COLUMNS} FROM spoolmq_queues WHERE name = $1 FOR UPDATE"
                ),
                &[&name],
            )
            .pg(&self.place, "lock the queue")?;
        let counters = counters_of(&r, 3);
        let t = Target {
            salt: r.get::<_, i64>(0) as u64,
            next_seq: r.get::<_, i64>(1) as u64,
            key_id: key_id_of(&r, 2, &self.place, name)?,
            pushed: counters.pushed,
        };
        Ok((t, counters))
    }

    /// Writes the key id `set_key_id` gave, in the open transaction.
    fn save_key_id(&mut self) -> Result<()> {
        if let Some(id) = self.new_key_id.take() {
            let queue = self.queue.clone();
            self.key_id_row(&queue, id)?;
            self.key_id = id;
        }
        Ok(())
    }

    /// Records `id` as queue `name`'s key id, in the open transaction.
    fn key_id_row(&mut self, name: &str, id: Option<KeyId>) -> Result<()> {
        self.client
            .execute(
                "UPDATE spoolmq_queues SET key_id = $2 WHERE name = $1",
                &[&name, &id.as_ref().map(|k| &k[..])],
            )
            .pg(&self.place, "record the key id")?;
        Ok(())
    }

    /// Writes `msgs` as new messages of queue `name` with seqs from `first`
    /// on (one COPY): the next seq after them and the counters' deltas.
    fn push_rows(
        &mut self,
        name: &str,
        first: u64,
        msgs: &mut dyn Iterator<Item = Result<NewMessage<'_>>>,
    ) -> Result<(u64, Deltas)> {
        let mut next = first;
        let mut holds = Vec::new();
        let mut rows = msgs.map(|msg| {
            let msg = msg?;
            msg.check_size()?;
            let m = msg.meta(next, Loc::default());
            if let Some((key, window)) = msg.unique {
                let hold = Hold {
                    seq: next,
                    pushed_at_ms: m.pushed_at_ms,
                    unique_for_ms: window,
                    free_at_ms: 0,
                };
                holds.push((key, hold));
            }
            next += 1;
            Ok((m, msg.body, msg.ttl_ms, msg.unique))
        });
        let d = self.copy_rows(name, &mut rows)?;
        drop(rows);
        if let Some((_, first)) = holds.first() {
            // Holds whose key is free for good go, so the table holds no
            // more than the keys still held.
            self.client
                .execute(
                    "DELETE FROM spoolmq_holds WHERE queue = $1 AND free_at > 0 AND free_at <= $2",
                    &[&name, &(first.pushed_at_ms as i64)],
                )
                .pg(&self.place, "push")?;
        }
        self.put_holds(name, &holds)?;
        Ok((next, d))
    }

    /// Makes each `(key, hold)` the hold of its key in queue `name`,
    /// replacing any, in the open transaction.
    fn put_holds(&mut self, name: &str, holds: &[(UniqueKey, Hold)]) -> Result<()> {
        if holds.is_empty() {
            return Ok(());
        }
        let st = self
            .client
            .prepare(
                "INSERT INTO spoolmq_holds (queue, key, seq, pushed_at, unique_for, free_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (queue, key) DO UPDATE SET seq = excluded.seq,
                   pushed_at = excluded.pushed_at, unique_for = excluded.unique_for,
                   free_at = excluded.free_at",
            )
            .pg(&self.place, "keep a key's hold")?;
        for (key, h) in holds {
            self.client
                .execute(
                    &st,
                    &[
                        &name,
                        &&key.0[..],
                        &(h.seq as i64),
                        &(h.pushed_at_ms as i64),
                        &(h.unique_for_ms as i64),
                        &(h.free_at_ms as i64),
                    ],
                )
                .pg(&self.place, "keep a key's hold")?;
        }
        Ok(())
    }

    /// Adds `d` to the queue's counters (and sets its next seq), takes the
    /// result, and notifies waiters if `wake`.
    fn save_counters(&mut self, d: &Deltas, wake: bool) -> Result<()> {
        let queue = self.queue.clone();
        self.counters = self.add_counters(&queue, self.next_seq, d, wake)?;
        Ok(())
    }

    /// [`PgStore::save_counters`] for queue `name`, whose next seq becomes
    /// at least `next_seq`: its counters after.
    fn add_counters(
        &mut self,
        name: &str,
        next_seq: u64,
        d: &Deltas,
        wake: bool,
    ) -> Result<Counters> {
        let [r, de, l, dd, p, a, pu, c, b, e] = d.0;
        let row = self
            .client
            .query_one(
                &format!(
                    "UPDATE spoolmq_queues SET next_seq = greatest(next_seq, $2),
                       ready = ready + $3, delayed = delayed + $4, leased = leased + $5,
                       dead = dead + $6, pushed = pushed + $7, acked = acked + $8,
                       purged = purged + $9, corrupt = corrupt + $10, bytes = bytes + $11,
                       expired = expired + $12
                     WHERE name = $1 RETURNING {COUNTER_COLUMNS}"
                ),
                &[
                    &name,
                    &(next_seq as i64),
                    &r,
                    &de,
                    &l,
                    &dd,
                    &p,
                    &a,
                    &pu,
                    &c,
                    &b,
                    &e,
                ],
            )
            .pg(&self.place, "update the queue's counters")?;
        if wake {
            self.client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &name])
                .pg(&self.place, "notify")?;
        }
        Ok(counters_of(&row, 0))
    }

    /// The rows and counters of a commit, in the open transaction.
    fn apply_changes(&mut self, changes: &[Change]) -> Result<()> {
        let mut d = Deltas::default();
        let mut wake = false;
        for c in changes {
            let m = &c.new;
            // Before the row that holds its key may be deleted.
            if crate::store::releases(c)
                && let Some((key, window)) = Store::unique(self, m)?
            {
                let free_at = crate::store::released_at(c, window);
                self.client
                    .execute(
                        "UPDATE spoolmq_holds SET free_at = $4
                         WHERE queue = $1 AND key = $2 AND seq = $3 AND free_at = 0",
                        &[&self.queue, &&key.0[..], &(m.seq as i64), &(free_at as i64)],
                    )
                    .pg(&self.place, "commit")?;
            }
            d.apply(c.old, m.state, m.len);
            wake |= matches!(m.state, State::Ready | State::Delayed);
        }
        // The rows in statements of CHANGE_BATCH, not one (two round trips)
        // each: a pop of 20,000 took 27 s that way. A batch that names a
        // message twice would update it once, so then each goes alone.
        let mut seen = std::collections::HashSet::with_capacity(changes.len());
        let once = changes.iter().all(|c| seen.insert(c.new.seq));
        let batch = if once { CHANGE_BATCH } else { 1 };
        let (live, gone): (Vec<&Meta>, Vec<&Meta>) = changes
            .iter()
            .map(|c| &c.new)
            .partition(|m| m.state.is_live());
        for part in live.chunks(batch) {
            let n = self
                .client
                .execute(
                    "UPDATE spoolmq_messages AS m SET state = u.state, attempts = u.attempts,
                       max_attempts = u.max_attempts, until_ms = u.until_ms, receipt = u.receipt,
                       expires_at = u.expires_at
                     FROM unnest($2::bigint[], $3::smallint[], $4::int[], $5::int[], $6::bigint[],
                       $7::bytea[], $8::bigint[])
                       AS u(seq, state, attempts, max_attempts, until_ms, receipt, expires_at)
                     WHERE m.queue = $1 AND m.seq = u.seq",
                    &[
                        &self.queue,
                        &part.iter().map(|m| m.seq as i64).collect::<Vec<_>>(),
                        &part
                            .iter()
                            .map(|m| m.state as u8 as i16)
                            .collect::<Vec<_>>(),
                        &part.iter().map(|m| m.attempts as i32).collect::<Vec<_>>(),
                        &part
                            .iter()
                            .map(|m| m.max_attempts as i32)
                            .collect::<Vec<_>>(),
                        &part.iter().map(|m| m.until_ms as i64).collect::<Vec<_>>(),
                        &part.iter().map(|m| &m.receipt[..]).collect::<Vec<_>>(),
                        &part
                            .iter()
                            .map(|m| m.expires_at_ms as i64)
                            .collect::<Vec<_>>(),
                    ],
                )
                .pg(&self.place, "commit")?;
            self.all_there(part, n)?;
        }
        for part in gone.chunks(batch) {
            let seqs: Vec<i64> = part.iter().map(|m| m.seq as i64).collect();
            let n = self
                .client
                .execute(
                    "WITH f AS (DELETE FROM spoolmq_failures WHERE queue = $1 AND seq = ANY($2))
                     DELETE FROM spoolmq_messages WHERE queue = $1 AND seq = ANY($2)",
                    &[&self.queue, &seqs],
                )
                .pg(&self.place, "commit")?;
            self.all_there(part, n)?;
        }
        self.save_counters(&d, wake)
    }

    /// An error unless a statement that changed `n` rows changed one row
    /// for each of `part` (named once each).
    fn all_there(&self, part: &[&Meta], n: u64) -> Result<()> {
        if n == part.len() as u64 {
            return Ok(());
        }
        let what = match part {
            [m] => format!("message {}", m.seq),
            _ => format!(
                "{} of {} messages",
                part.len() as u64 - n.min(part.len() as u64),
                part.len()
            ),
        };
        Err(Error::Runtime(format!(
            "{}: queue {}, {what}: not in the database",
            self.place, self.queue
        )))
    }

    /// Keeps failures of messages of queue `name`, in the open transaction.
    fn failure_rows(&mut self, name: &str, items: &[(u64, Failure)]) -> Result<()> {
        for (seq, f) in items {
            let (kind, code, text) = f.how.parts();
            self.client
                .execute(
                    "INSERT INTO spoolmq_failures (queue, seq, at_ms, attempt, kind, code, text, stderr)
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8
                     WHERE EXISTS (SELECT 1 FROM spoolmq_messages WHERE queue = $1 AND seq = $2)
                     ON CONFLICT (queue, seq) DO UPDATE SET at_ms = excluded.at_ms,
                       attempt = excluded.attempt, kind = excluded.kind, code = excluded.code,
                       text = excluded.text, stderr = excluded.stderr",
                    &[
                        &name,
                        &(*seq as i64),
                        &(f.at_ms as i64),
                        &(f.attempt as i32),
                        &i16::from(kind),
                        &code,
                        &text,
                        &&f.stderr[..],
                    ],
                )
                .pg(&self.place, "record a failure")?;
        }
        Ok(())
    }

    /// Writes rows with COPY (one round trip for a whole batch).
    fn copy_rows(
        &mut self,
        queue: &str,
        rows: &mut dyn Iterator<Item = Result<PgRow<'_>>>,
    ) -> Result<Deltas> {
        let place = self.place.clone();
        let sink = self
            .client
            .copy_in(
                "COPY spoolmq_messages (queue, seq, state, attempts, max_attempts, pushed_at, until_ms, receipt, len, body, crc,
                   expires_at, ttl_ms, unique_key, unique_for, priority, grp) FROM STDIN BINARY",
            )
            .pg(&place, "push")?;
        let types = [
            Type::TEXT,
            Type::INT8,
            Type::INT2,
            Type::INT4,
            Type::INT4,
            Type::INT8,
            Type::INT8,
            Type::BYTEA,
            Type::INT4,
            Type::BYTEA,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::BYTEA,
            Type::INT8,
            Type::INT2,
            Type::INT8,
        ];
        let mut w = postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
        let mut d = Deltas::default();
        let mut grouped = false;
        for row in rows {
            let (m, body, ttl_ms, unique) = row?;
            let body: &[u8] = &body;
            let key = unique.map(|(k, _)| k.0.to_vec());
            let group = m.group.map(|g| g.0 as i64);
            grouped |= group.is_some();
            let values: [&(dyn ToSql + Sync); 17] = [
                &queue,
                &(m.seq as i64),
                &(m.state as u8 as i16),
                &(m.attempts as i32),
                &(m.max_attempts as i32),
                &(m.pushed_at_ms as i64),
                &(m.until_ms as i64),
                &&m.receipt[..],
                &(body.len() as i32),
                &body,
                &i64::from(crc32fast::hash(body)),
                &(m.expires_at_ms as i64),
                &(ttl_ms as i64),
                &key,
                &(unique.map_or(0, |(_, w)| w as i64)),
                &i16::from(m.priority),
                &group,
            ];
            w.write(&values).pg(&place, "push")?;
            d.add(m.state, body.len() as u32);
        }
        w.finish().pg(&place, "push")?;
        if grouped {
            self.client
                .execute(
                    "UPDATE spoolmq_queues SET grouped = true WHERE name = $1 AND NOT grouped",
                    &[&queue],
                )
                .pg(&place, "push")?;
        }
        Ok(d)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // End the open transaction now: rows a read-only command locked while
        // it looked (stats, peek) must be free for the next command at once,
        // not when the server notices that this connection went away.
        let _ = self.client.batch_execute("ROLLBACK");
    }
}

/// The columns that give a body whole when it is at most a chunk, or stored
/// compressed (rows written before the column was made EXTERNAL: there each
/// substring would decompress from the start, so one read of the whole
/// value is the linear one), and its length and CRC; `$3` is BODY_CHUNK.
const BODY_COLUMNS: &str = "CASE WHEN length(body) <= $3 OR pg_column_size(body) < length(body)
       THEN body END, length(body), crc";

/// Messages changed by one statement of a commit.
const CHANGE_BATCH: usize = 5000;

/// Seqs named in one query by `get_each` and `bodies`.
const GET_EACH_BATCH: usize = 1000;

/// Body bytes one `bodies` query brings at most (but for a first body
/// larger than this alone): what a pop of many holds at once, beyond
/// the bodies it returns.
const BODIES_BYTES: u64 = 4 << 20;

impl PgStore {
    /// [`Store::scan`], locking up to `want` rows of a page at once where
    /// it locks them (see [`Store::scan_delivery`]).
    fn scan_locking(
        &mut self,
        from: Scan,
        want: usize,
        visit: &mut dyn FnMut(&Meta) -> Step,
    ) -> Result<()> {
        // Pending and delivery (what pop may take): pages are read without
        // locks, then rows are locked just before they are visited, `want`
        // at a time, skipping rows another worker holds; so a pop locks no
        // more than it asked for, and workers never wait on each other nor
        // find nothing while another holds more than it asked for. Live (export,
        // purge): every row, locked a page at a time, waiting for holders.
        // A delivery scan reads the lanes (`spoolmq_lanes`: priorities 9 to
        // 1, oldest first in each) and then the plain messages in seq order.
        let (states, lock) = match from {
            Scan::Pending | Scan::Delivery => ("1, 2, 3", ""),
            // Live: pending and dead letters, failed (4) or expired (8).
            Scan::Live => ("1, 2, 3, 4, 8", "FOR UPDATE"),
        };
        // The next rows of a page locked together: `want` at most, so a pop
        // of one locks one, and a pop of 20,000 does not make a round trip
        // (two, unprepared) per row, which made it take 27 s.
        let row_sql = format!(
            "SELECT {META_COLUMNS} FROM spoolmq_messages
             WHERE queue = $1 AND seq = ANY($2) AND state IN ({states}) ORDER BY seq
             FOR UPDATE SKIP LOCKED"
        );
        let ahead = want.clamp(1, PAGE as usize);
        // Pages of the lanes, after ($2 priority, $3 seq) in their order.
        let lanes_sql = format!(
            "SELECT {META_COLUMNS} FROM spoolmq_messages
             WHERE queue = $1 AND state IN (1, 2, 3) AND priority > 0
               AND (priority < $2 OR (priority = $2 AND seq > $3))
             ORDER BY priority DESC, seq LIMIT $4"
        );
        // (`<= 0`: a row given a negative priority by hand is served as a
        // plain one rather than never.)
        let also = if from == Scan::Delivery {
            "AND priority <= 0"
        } else {
            ""
        };
        let page_sql = format!(
            "SELECT {META_COLUMNS} FROM spoolmq_messages
             WHERE queue = $1 AND state IN ({states}) {also} AND seq > $2 ORDER BY seq LIMIT $3 {lock}"
        );
        let mut in_lanes = from == Scan::Delivery;
        let (mut after, mut lane) = (0i64, i16::from(crate::store::MAX_PRIORITY) + 1);
        // Groups whose message another worker holds locked: the rest of
        // the group is behind it (the queue's rule sees only what it is
        // shown), so this scan shows none of them.
        let mut held = std::collections::HashSet::new();
        loop {
            let rows = if in_lanes {
                self.client
                    .query(&lanes_sql, &[&self.queue, &lane, &after, &PAGE])
            } else {
                self.client.query(&page_sql, &[&self.queue, &after, &PAGE])
            }
            .pg(&self.place, "scan")?;
            let mut locked = std::collections::HashMap::new();
            let mut tried = 0; // rows[..tried] were asked for their locks
            for (i, r) in rows.iter().enumerate() {
                let (mut m, mut ok) = meta_of(r);
                after = m.seq as i64;
                // The row's own value (not clamped as `meta_of` does), so
                // the next page starts right after it.
                lane = r.get(10);
                if m.group.is_some_and(|g| held.contains(&g)) {
                    continue;
                }
                if from != Scan::Live {
                    if i >= tried {
                        tried = (i + ahead).min(rows.len());
                        let seqs: Vec<i64> = rows[i..tried].iter().map(|r| r.get(0)).collect();
                        locked = self
                            .client
                            .query(&row_sql, &[&self.queue, &seqs])
                            .pg(&self.place, "scan")?
                            .into_iter()
                            .map(|r| (r.get::<_, i64>(0), r))
                            .collect();
                    }
                    let Some(locked) = locked.remove(&after) else {
                        if let Some(g) = m.group {
                            held.insert(g);
                        }
                        continue;
                    };
                    (m, ok) = meta_of(&locked);
                }
                if !ok {
                    self.notices.push(format!(
                        "{}: queue {}, message {}: its row does not decode; skipped",
                        self.place, self.queue, m.seq
                    ));
                    continue;
                }
                if visit(&m) == Step::Stop {
                    return Ok(());
                }
            }
            if (rows.len() as i64) < PAGE {
                if !in_lanes {
                    return Ok(());
                }
                in_lanes = false;
                after = 0;
            }
        }
    }

    fn bad_body(&self, meta: &Meta, detail: &str) -> Error {
        Error::corrupt(
            std::path::Path::new(&self.place),
            format!("queue {}, message {}: {detail}", self.queue, meta.seq),
        )
    }

    /// The body in a row of [`BODY_COLUMNS`] (after a seq column if it has
    /// four), checked; or its length and CRC, when it must be read in
    /// chunks.
    fn body_of_row(
        &self,
        meta: &Meta,
        r: &postgres::Row,
    ) -> Result<std::result::Result<Vec<u8>, (i32, i64)>> {
        let at = r.len() - 3;
        let failed = "the body fails its CRC32 check";
        let (whole, len, crc) = match (
            r.try_get::<_, Option<Vec<u8>>>(at),
            r.try_get::<_, i32>(at + 1),
            r.try_get::<_, i64>(at + 2),
        ) {
            (Ok(whole), Ok(len), Ok(crc)) => (whole, len, crc),
            _ => return Err(self.bad_body(meta, "the row does not decode")),
        };
        if len < 0 || len as u32 != meta.len {
            return Err(self.bad_body(meta, failed));
        }
        match whole {
            Some(body) if i64::from(crc32fast::hash(&body)) == crc => Ok(Ok(body)),
            Some(_) => Err(self.bad_body(meta, failed)),
            None => Ok(Err((len, crc))),
        }
    }

    /// A body of `len` bytes read a chunk at a time, checked against `crc`.
    fn body_in_chunks(&mut self, meta: &Meta, len: i32, crc: i64) -> Result<Vec<u8>> {
        let failed = "the body fails its CRC32 check";
        let chunk_sql = self
            .client
            .prepare(
                "SELECT substring(body from $3 for $4) FROM spoolmq_messages
                 WHERE queue = $1 AND seq = $2",
            )
            .pg(&self.place, "read a body")?;
        let mut body = Vec::new();
        body.try_reserve_exact(len as usize).map_err(|_| {
            Error::Runtime(format!(
                "{}: queue {}, message {}: no memory for its body of {len} bytes",
                self.place, self.queue, meta.seq
            ))
        })?;
        let mut hasher = crc32fast::Hasher::new();
        let mut at = 0i32;
        while at < len {
            let n = BODY_CHUNK.min(len - at);
            // substring counts from 1.
            let r = self
                .client
                .query_opt(
                    &chunk_sql,
                    &[&self.queue, &(meta.seq as i64), &(at + 1), &n],
                )
                .pg(&self.place, "read a body")?
                .ok_or_else(|| self.bad_body(meta, "the row is missing"))?;
            let part: &[u8] = r
                .try_get(0)
                .map_err(|_| self.bad_body(meta, "the row does not decode"))?;
            if part.len() != n as usize {
                return Err(self.bad_body(meta, failed));
            }
            hasher.update(part);
            body.extend_from_slice(part);
            at += n;
        }
        if i64::from(hasher.finalize()) == crc {
            Ok(body)
        } else {
            Err(self.bad_body(meta, failed))
        }
    }
}

impl Store for PgStore {
    fn restore(
        &mut self,
        salt: u64,
        next_seq: u64,
        counters: Counters,
        metas: &[Meta],
        body: &mut dyn FnMut(&Meta) -> Result<Restored>,
        holds: &[(UniqueKey, Hold)],
    ) -> Result<()> {
        self.write("restore messages", |s| {
            let n = s
                .client
                .execute(
                    "INSERT INTO spoolmq_queues (name, salt, next_seq, key_id) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name) DO NOTHING",
                    &[
                        &s.queue,
                        &(salt as i64),
                        &(next_seq as i64),
                        &s.new_key_id.flatten().as_ref().map(|k| &k[..]),
                    ],
                )
                .pg(&s.place, "create the queue")?;
            if n != 1 {
                return Err(Error::Runtime(format!(
                    "{}: queue {} exists already",
                    s.place, s.queue
                )));
            }
            for chunk in metas.chunks(1024) {
                let bodies = chunk.iter().map(&mut *body).collect::<Result<Vec<_>>>()?;
                let mut rows = chunk
                    .iter()
                    .zip(&bodies)
                    .map(|(m, r)| Ok((*m, Cow::Borrowed(r.body.as_slice()), r.ttl_ms, r.unique)));
                s.copy_rows(&s.queue.clone(), &mut rows)?;
            }
            s.put_holds(&s.queue.clone(), holds)?;
            let c = counters;
            let d = Deltas([
                c.ready as i64,
                c.delayed as i64,
                c.leased as i64,
                c.dead as i64,
                c.pushed as i64,
                c.acked as i64,
                c.purged as i64,
                c.corrupt as i64,
                c.bytes as i64,
                c.expired as i64,
            ]);
            s.salt = salt;
            s.next_seq = next_seq;
            if let Some(id) = s.new_key_id.take() {
                s.key_id = id;
            }
            s.save_counters(&d, true)
        })
    }

    fn push(&mut self, msgs: &mut dyn Iterator<Item = Result<NewMessage<'_>>>) -> Result<Vec<u64>> {
        self.write("push", |s| {
            s.lock_queue_row()?;
            s.save_key_id()?;
            let first = s.next_seq;
            let (next, d) = s.push_rows(&s.queue.clone(), first, msgs)?;
            s.next_seq = next;
            s.save_counters(&d, true)?;
            Ok((first..next).collect())
        })
    }

    fn scan(&mut self, from: Scan, visit: &mut dyn FnMut(&Meta) -> Step) -> Result<()> {
        self.scan_locking(from, 1, visit)
    }

    fn scan_delivery(&mut self, want: usize, visit: &mut dyn FnMut(&Meta) -> Step) -> Result<()> {
        self.scan_locking(Scan::Delivery, want, visit)
    }

    fn get(&mut self, seq: u64) -> Result<Option<Meta>> {
        let row = self
            .client
            .query_opt(
                &format!("SELECT {META_COLUMNS} FROM spoolmq_messages WHERE queue = $1 AND seq = $2 FOR UPDATE"),
                &[&self.queue, &(seq as i64)],
            )
            .pg(&self.place, "read a message")?;
        Ok(row.map(|r| meta_of(&r)).and_then(|(m, ok)| ok.then_some(m)))
    }

    fn get_each(&mut self, seqs: &[u64]) -> Result<Vec<Option<Meta>>> {
        // One query per GET_EACH_BATCH seqs, not one per message (a round
        // trip each made an ack of 20,000 receipts take 15 s). Locked in
        // seq order, as the scans lock them, so two of these cannot
        // deadlock each other.
        let sql = format!(
            "SELECT {META_COLUMNS} FROM spoolmq_messages
             WHERE queue = $1 AND seq = ANY($2) ORDER BY seq FOR UPDATE"
        );
        let mut found = std::collections::HashMap::with_capacity(seqs.len());
        for part in seqs.chunks(GET_EACH_BATCH) {
            let keys: Vec<i64> = part.iter().map(|&s| s as i64).collect();
            let rows = self
                .client
                .query(&sql, &[&self.queue, &keys])
                .pg(&self.place, "read messages")?;
            for r in rows {
                if let (m, true) = meta_of(&r) {
                    found.insert(m.seq, m);
                }
            }
        }
        Ok(seqs.iter().map(|s| found.get(s).copied()).collect())
    }

    fn body(&mut self, meta: &Meta) -> Result<Vec<u8>> {
        // The row is locked (FOR SHARE; the scan or get that found it already
        // holds it FOR UPDATE, so this waits for nobody): no other process can
        // change or delete it until this transaction ends, so every chunk
        // below reads the same row version.
        let row = self
            .client
            .query_opt(
                &format!("SELECT {BODY_COLUMNS} FROM spoolmq_messages WHERE queue = $1 AND seq = $2 FOR SHARE"),
                &[&self.queue, &(meta.seq as i64), &BODY_CHUNK],
            )
            .pg(&self.place, "read a body")?;
        match row {
            None => Err(self.bad_body(meta, "the row is missing")),
            Some(r) => match self.body_of_row(meta, &r)? {
                Ok(body) => Ok(body),
                Err((len, crc)) => self.body_in_chunks(meta, len, crc),
            },
        }
    }

    fn bodies(&mut self, metas: &[Meta]) -> Vec<Result<Vec<u8>>> {
        // The bodies that come whole are read BODIES_BYTES at most per
        // query; any other (larger, or its row not found or not whole)
        // is read alone, as `body` reads it.
        let sql = format!(
            "SELECT seq, {BODY_COLUMNS} FROM spoolmq_messages
             WHERE queue = $1 AND seq = ANY($2) ORDER BY seq FOR SHARE"
        );
        let mut out: Vec<Option<Result<Vec<u8>>>> = Vec::with_capacity(metas.len());
        let mut from = 0;
        while from < metas.len() {
            let mut to = from;
            let mut bytes = 0u64;
            while to < metas.len()
                && to - from < GET_EACH_BATCH
                && (to == from || bytes + u64::from(metas[to].len) <= BODIES_BYTES)
            {
                bytes += u64::from(metas[to].len);
                to += 1;
            }
            let part = &metas[from..to];
            let keys: Vec<i64> = part.iter().map(|m| m.seq as i64).collect();
            let mut rows = std::collections::HashMap::new();
            if let Ok(got) = self.client.query(&sql, &[&self.queue, &keys, &BODY_CHUNK]) {
                for r in got {
                    if let Ok(seq) = r.try_get::<_, i64>(0) {
                        rows.insert(seq as u64, r);
                    }
                }
            }
            for m in part {
                out.push(match rows.get(&m.seq).map(|r| self.body_of_row(m, r)) {
                    Some(Ok(Ok(body))) => Some(Ok(body)),
                    Some(Err(e)) => Some(Err(e)),
                    _ => None,
                });
            }
            from = to;
        }
        out.into_iter()
            .zip(metas)
            .map(|(got, m)| got.unwrap_or_else(|| self.body(m)))
            .collect()
    }

    fn commit(&mut self, changes: &[Change]) -> Result<()> {
        if changes.is_empty() && !self.failures_pending {
            return Ok(());
        }
        self.failures_pending = false;
        self.write("commit", |s| s.apply_changes(changes))
    }

    fn counters(&self) -> Counters {
        self.counters
    }

    fn salt(&self) -> u64 {
        self.salt
    }

    fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn prepare_push(&mut self) -> Result<()> {
        self.lock_queue_row()
    }

    fn key_id(&self) -> Option<KeyId> {
        self.key_id
    }

    fn set_key_id(&mut self, id: Option<KeyId>) -> Result<()> {
        self.new_key_id = Some(id);
        Ok(())
    }

    fn record_failures(&mut self, items: &[(u64, Failure)]) -> Result<()> {
        // In the open transaction, which holds the rows `settle` read FOR
        // UPDATE: committed with the nack that follows, atomically.
        let queue = self.queue.clone();
        self.failure_rows(&queue, items)?;
        self.failures_pending |= !items.is_empty();
        Ok(())
    }

    fn ttl_ms(&mut self, m: &Meta) -> Result<u64> {
        let row = self
            .client
            .query_opt(
                "SELECT ttl_ms FROM spoolmq_messages WHERE queue = $1 AND seq = $2",
                &[&self.queue, &(m.seq as i64)],
            )
            .pg(&self.place, "read a message's TTL")?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    fn hold(&mut self, key: &UniqueKey) -> Result<Option<Hold>> {
        let row = self
            .client
            .query_opt(
                "SELECT seq, pushed_at, unique_for, free_at FROM spoolmq_holds WHERE queue = $1 AND key = $2",
                &[&self.queue, &&key.0[..]],
            )
            .pg(&self.place, "read a key's hold")?;
        Ok(row.map(|r| hold_of(&r, 0)))
    }

    fn grouped(&mut self) -> Result<bool> {
        let row = self
            .client
            .query_opt(
                "SELECT grouped FROM spoolmq_queues WHERE name = $1",
                &[&self.queue],
            )
            .pg(&self.place, "read the queue")?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }

    fn unique(&mut self, m: &Meta) -> Result<Option<(UniqueKey, u64)>> {
        let row = self
            .client
            .query_opt(
                "SELECT unique_key, unique_for FROM spoolmq_messages WHERE queue = $1 AND seq = $2",
                &[&self.queue, &(m.seq as i64)],
            )
            .pg(&self.place, "read a message's key")?;
        Ok(row.and_then(|r| {
            let k: Option<Vec<u8>> = r.get(0);
            let k: [u8; 16] = k?.try_into().ok()?;
            Some((UniqueKey(k), r.get::<_, i64>(1) as u64))
        }))
    }

    fn holds(&mut self, visit: &mut dyn FnMut(&UniqueKey, &Hold)) -> Result<()> {
        let rows = self
            .client
            .query(
                "SELECT seq, pushed_at, unique_for, free_at, key FROM spoolmq_holds WHERE queue = $1 ORDER BY key",
                &[&self.queue],
            )
            .pg(&self.place, "read the holds")?;
        for r in rows {
            let k: Vec<u8> = r.get(4);
            if let Ok(k) = <[u8; 16]>::try_from(k.as_slice()) {
                visit(&UniqueKey(k), &hold_of(&r, 0));
            }
        }
        Ok(())
    }

    fn failure(&mut self, seq: u64) -> Result<Option<Failure>> {
        let row = self
            .client
            .query_opt(
                "SELECT at_ms, attempt, kind, code, text, stderr FROM spoolmq_failures
                 WHERE queue = $1 AND seq = $2",
                &[&self.queue, &(seq as i64)],
            )
            .pg(&self.place, "read a failure")?;
        let Some(r) = row else {
            return Ok(None);
        };
        let kind: i16 = r.get(2);
        let how = u8::try_from(kind)
            .ok()
            .and_then(|k| How::from_parts(k, r.get(3), r.get(4)));
        Ok(how.map(|how| Failure {
            at_ms: r.get::<_, i64>(0) as u64,
            attempt: r.get::<_, i32>(1) as u32,
            how,
            stderr: r.get(5),
        }))
    }

    fn segments(&self) -> u64 {
        // No files of its own: the database's tables hold every queue.
        0
    }

    fn disk_bytes(&mut self) -> Result<u64> {
        // Not per queue: the messages table (with its indexes and TOAST), shared
        // by every queue in the database.
        let r = self
            .client
            .query_one("SELECT pg_total_relation_size('spoolmq_messages')", &[])
            .pg(&self.place, "read the table's size")?;
        Ok(r.get::<_, i64>(0) as u64)
    }

    fn now(&mut self) -> Result<Option<u64>> {
        let r = self
            .client
            .query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                &[],
            )
            .pg(&self.place, "read the server's clock")?;
        Ok(Some(r.get::<_, i64>(0) as u64))
    }

    fn end_reads(&mut self) -> Result<()> {
        // Commits nothing (no change was made) and begins the next.
        self.write("end the reads", |_| Ok(()))
    }

    fn move_target(&mut self, to: &str) -> Result<Target> {
        // Both queue rows locked in name order, so that moves between two
        // queues in opposite directions cannot deadlock.
        let fresh = crate::store::new_salt()?;
        let t = if self.queue.as_str() < to {
            self.lock_queue_row()?;
            self.lock_row(to, fresh)?.0
        } else {
            let t = self.lock_row(to, fresh)?.0;
            self.lock_queue_row()?;
            t
        };
        self.target = Some((to.to_string(), t));
        Ok(t)
    }

    fn move_out(
        &mut self,
        key_id: Option<Option<KeyId>>,
        msgs: Vec<Incoming<'_>>,
        changes: &[Change],
    ) -> Result<Vec<u64>> {
        let (to, t) = self.target.take().ok_or_else(|| no_target(&self.place))?;
        self.failures_pending = false;
        // One transaction: the target's rows and counters, then this queue's.
        self.write("move messages", |s| {
            if let Some(id) = key_id {
                s.key_id_row(&to, id)?;
            }
            let (news, failures) = split_incoming(msgs);
            let (next, d) = s.push_rows(&to, t.next_seq, &mut news.into_iter().map(Ok))?;
            let seqs: Vec<u64> = (t.next_seq..next).collect();
            s.failure_rows(&to, &failures_at(&seqs, failures))?;
            s.add_counters(&to, next, &d, true)?;
            s.apply_changes(changes)?;
            Ok(seqs)
        })
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

/// `fsck` of queue `name` in the database: every row (state, receipt,
/// length, CRC32 of the body) and the counters against the rows.
pub fn check(url: &str, name: &str) -> Result<crate::store::QueueReport> {
    let mut r = crate::store::QueueReport::default();
    let Some(mut store) = PgStore::open(url, name, false)? else {
        return Err(Error::NoSuchQueue(name.to_string()));
    };
    let (bad, seen) = store.rows_checked()?;
    let place = std::path::PathBuf::from(&store.place);
    let problem = |what: String| crate::store::Problem {
        queue: name.to_string(),
        file: place.clone(),
        offset: None,
        what,
    };
    r.records = seen.pushed + bad.len() as u64;
    for seq in &bad {
        r.problems.push(problem(format!(
            "message {}: bad state or receipt, or the body fails its length or CRC32 check",
            crate::model::ids::format_id(*seq, store.salt)
        )));
    }
    if let Some(what) = store.counters.rows_disagree(&seen) {
        r.problems.push(problem(what));
    }
    Ok(r)
}

/// `fsck --repair` of queue `name`: deletes rows that fail their checks
/// (counted as corrupt, never served) and sets the live counters from the
/// rows, in one transaction.
pub fn repair(url: &str, name: &str) -> Result<Vec<String>> {
    let Some(mut store) = PgStore::open(url, name, false)? else {
        return Err(Error::NoSuchQueue(name.to_string()));
    };
    let mut notes = Vec::new();
    store.write("repair", |s| {
        s.lock_queue_row()?;
        let (bad, live) = s.rows_checked()?;
        for seq in &bad {
            s.client
                .execute(
                    "WITH f AS (DELETE FROM spoolmq_failures WHERE queue = $1 AND seq = $2)
                         DELETE FROM spoolmq_messages WHERE queue = $1 AND seq = $2",
                    &[&s.queue, &(*seq as i64)],
                )
                .pg(&s.place, "repair")?;
            notes.push(format!(
                "message {}: damaged row removed (counted as corrupt)",
                crate::model::ids::format_id(*seq, s.salt)
            ));
        }
        s.client
            .execute(
                "UPDATE spoolmq_queues SET ready = $2, delayed = $3, leased = $4, dead = $5,
                   bytes = $6, corrupt = corrupt + $7, expired = $8 WHERE name = $1",
                &[
                    &s.queue,
                    &(live.ready as i64),
                    &(live.delayed as i64),
                    &(live.leased as i64),
                    &(live.dead as i64),
                    &(live.bytes as i64),
                    &(bad.len() as i64),
                    &(live.expired as i64),
                ],
            )
            .pg(&s.place, "repair")?;
        Ok(())
    })?;
    notes.push("counters set from the rows".to_string());
    Ok(notes)
}

impl PgStore {
    /// Reads every row of the queue: the seqs of those that fail their
    /// checks, and the counts of the others.
    fn rows_checked(&mut self) -> Result<(Vec<u64>, Counters)> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {META_COLUMNS}, length(body), crc, body FROM spoolmq_messages WHERE queue = $1 ORDER BY seq"
                ),
                &[&self.queue],
            )
            .pg(&self.place, "check messages")?;
        let mut bad = Vec::new();
        let mut seen = Counters::default();
        for row in &rows {
            let (m, ok) = meta_of(row);
            let len: i32 = row.get(META_LEN);
            let crc: i64 = row.get(META_LEN + 1);
            let body: &[u8] = row.get(META_LEN + 2);
            let sound = ok
                && m.state.is_live()
                && len as u32 == m.len
                && i64::from(crc32fast::hash(body)) == crc;
            if sound {
                seen.add(m.state, m.len);
            } else {
                bad.push(m.seq);
            }
        }
        Ok((bad, seen))
    }
}
