//! `migrate`: converts a spool from one store to the other, losing nothing.
//!
//! Every queue is copied message by message with the new store's
//! [`crate::store::Store::restore`]: ready, delayed, leased (same receipt and
//! deadline) and dead messages keep their id, attempts, state and last
//! failure ([`crate::store::Store::record_failures`]), and the counters come along. The source is read under the exclusive spool lock,
//! so no command changes it meanwhile, and is never modified before the end.
//!
//! In place, the new store is built in `SPOOL/.migrate/` and then switched in:
//!
//! ```text
//! 1. lock SPOOL/.spool.lock (exclusive); remove a stale SPOOL/.migrate/
//! 2. build the new store in SPOOL/.migrate/, every file fsynced
//! 3. move it into SPOOL/ (fs: each queue directory; sqlite: .spool.db),
//!    first removing what an interrupted earlier migrate left there; fsync SPOOL
//! 4. rename a new SPOOL/.store over the old one; fsync SPOOL   <- the switch
//! 5. remove the old store's files and SPOOL/.migrate/
//! ```
//!
//! Killed before step 4, the spool still records the old store, whose files
//! were never touched: it works as before, and the next `migrate` clears what
//! was left. Killed after step 4, the new store is complete and in use; the
//! old files left over are ignored, and removed by the next `migrate`.
//! Commands that waited on the spool lock see that `.store` changed and ask
//! to be run again. With `--into DIR` the new spool is built in DIR (which
//! must not exist or be empty, and is checked as a spool is before anything
//! is copied: see [`spool::check_access`]) and the source is left as it is.

use crate::base::error::{Error, Result};
use crate::spool::stores::{is_postgres_url, move_store_files, remove, remove_store_files};
use crate::spool::{self, Spool, StoreKind};
use crate::store::{Meta, Scan, Step};
use std::path::Path;

/// Where an in-place migrate builds the new store.
pub const STAGING: &str = ".migrate";

/// What a migrate did, for the user.
#[derive(Debug, Default)]
pub struct Report {
    pub queues: u64,
    pub messages: u64,
    pub notes: Vec<String>,
}

/// Copies every queue of `from` into the new spool `to` (of another or the
/// same store). The caller holds `from`'s spool lock.
fn copy_spool(from: &Spool, to: &Spool, report: &mut Report) -> Result<()> {
    to.create()?;
    for name in from.queues_held()? {
        let Some(mut src) = from.open_store(&name, false, false)? else {
            continue;
        };
        report.notes.extend(
            src.take_notices()
                .into_iter()
                .map(|n| format!("{name}: {n}")),
        );
        let mut metas: Vec<Meta> = Vec::new();
        src.scan(Scan::Live, &mut |m| {
            metas.push(*m);
            Step::Continue
        })?;
        let (salt, next_seq, counters) = (src.salt(), src.next_seq(), src.counters());
        let key_id = src.key_id();
        // Every hold, those of acked messages still in their window too.
        let mut holds = Vec::new();
        src.holds(&mut |k, h| holds.push((*k, *h)))?;
        let mut body = |m: &Meta| -> Result<crate::store::Restored> {
            let body = src.body(m).map_err(|e| match e {
                Error::Corrupt { path, detail } => Error::Runtime(format!(
                    "{}: {detail}: run `spoolmq fsck --repair {name}` first; nothing was changed",
                    path.display()
                )),
                e => e,
            })?;
            let ttl = if m.expires_at_ms > 0 {
                src.ttl_ms(m)?
            } else {
                0
            };
            let unique = if m.keyed { src.unique(m)? } else { None };
            Ok(crate::store::Restored {
                body,
                ttl_ms: ttl,
                unique,
            })
        };
        let mut dst = to.open_store(&name, true, false)?.ok_or_else(|| {
            Error::Runtime(format!("{}: cannot create queue {name}", to.root.display()))
        })?;
        // Bodies are copied as stored: an encrypted queue stays encrypted
        // with the same key, and needs no key to be moved.
        dst.set_key_id(key_id)?;
        dst.restore(salt, next_seq, counters, &metas, &mut body, &holds)?;
        // Each message's last failure, then committed (PostgreSQL keeps
        // them in the transaction until a commit).
        let mut failures = Vec::new();
        for m in &metas {
            if let Some(f) = src.failure(m.seq)? {
                failures.push((m.seq, f));
            }
        }
        dst.record_failures(&failures)?;
        dst.commit(&[])?;
        report.queues += 1;
        report.messages += metas.len() as u64;
    }
    Ok(())
}

/// Converts `spool` to the `to` store, in place or into `into`.
pub fn run(spool: &Spool, to: StoreKind, into: Option<&Path>) -> Result<Report> {
    let report = Report::default();
    if !spool.exists()? {
        return Err(Error::Runtime(format!(
            "{}: no spool here to convert",
            spool.root.display()
        )));
    }
    // A database is not a directory: to or from PostgreSQL is always a copy.
    if to == StoreKind::Postgres || spool.kind == StoreKind::Postgres {
        let Some(into) = into else {
            return Err(Error::usage(if to == StoreKind::Postgres {
                "migrate --to postgres needs --into URL (the database to copy the spool into)"
            } else {
                "migrating a PostgreSQL store needs --into DIR (the new spool's directory)"
            }));
        };
        if to == StoreKind::Postgres {
            return copy_into_database(spool, into, report);
        }
    }
    let _lock = spool.lock(true, true)?;
    if spool.kind != StoreKind::Postgres && _lock.is_none() {
        return Err(Error::Runtime("cannot lock the spool".into()));
    }
    spool.no_move_pending()?;
    match into {
        Some(dir) => copy_into_dir(spool, to, dir, report),
        None => convert_in_place(spool, to, report),
    }
}

/// `migrate --to postgres --into URL`: a copy into an empty database.
fn copy_into_database(spool: &Spool, into: &Path, mut report: Report) -> Result<Report> {
    let url = into.to_string_lossy().into_owned();
    if !is_postgres_url(&url) {
        return Err(Error::usage(
            "--into: for --to postgres, a postgres:// URL or key=value pairs",
        ));
    }
    let dst = Spool::postgres(url);
    if let Some(q) = dst.queues()?.first() {
        return Err(Error::usage(format!(
            "--into: the database already has queue {q}: copy into an empty one"
        )));
    }
    let _lock = spool.lock(true, true)?;
    spool.no_move_pending()?;
    copy_spool(spool, &dst, &mut report)?;
    Ok(report)
}

/// `migrate --into DIR`: a copy into a new spool, the source left as it
/// was. The caller holds the spool lock.
fn copy_into_dir(spool: &Spool, to: StoreKind, dir: &Path, mut report: Report) -> Result<Report> {
    // Checked as every command checks its spool, before anything is
    // copied: a destination others could change would be refused by
    // every later command (spool::check_access).
    let access = spool::check_access(dir)?;
    let empty = match std::fs::read_dir(dir) {
        Ok(mut d) => d.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(Error::io("open", dir, e)),
    };
    if !empty {
        return Err(Error::usage(format!(
            "--into {}: the directory must not exist or be empty",
            dir.display()
        )));
    }
    let dst = Spool {
        root: dir.to_path_buf(),
        kind: to,
        url: None,
        key: None,
        notices: spool.notices.clone(),
    };
    // A new spool is private, even one made from a shared spool: it is
    // not under the shared spool's setgid directory, so it would get
    // the user's own group. Share it with `init --group` if wanted.
    // An empty directory already shared with a group (mode 2770) makes
    // a shared spool: its files get the directory's group and mode 0660.
    crate::base::io::set_shared(access == spool::Access::Shared);
    copy_spool(spool, &dst, &mut report)?;
    Ok(report)
}

/// `migrate --to STORE` in place: the new store is built in a staging
/// directory, moved in, and switched to by rewriting `.store`; each step can
/// be interrupted and run again. The caller holds the spool lock.
fn convert_in_place(spool: &Spool, to: StoreKind, mut report: Report) -> Result<Report> {
    let root = &spool.root;
    let staging = root.join(STAGING);
    remove(&staging)?;
    if spool.kind == to {
        // Nothing to convert; clear what an interrupted migrate left.
        let other = match to {
            StoreKind::Fs => StoreKind::Sqlite,
            _ => StoreKind::Fs,
        };
        remove_store_files(root, other)?;
        report
            .notes
            .push(format!("the spool already uses the {} store", to.name()));
        return Ok(report);
    }
    let dst = Spool {
        root: staging.clone(),
        kind: to,
        url: None,
        key: None,
        notices: spool.notices.clone(),
    };
    copy_spool(spool, &dst, &mut report)?;
    crate::base::failpoint::hit("migrate.after-copy");
    // Move the new store in (nothing of it is in use until .store says so).
    remove_store_files(root, to)?;
    move_store_files(&dst, root)?;
    crate::base::failpoint::hit("migrate.before-switch");
    spool::replace_kind(root, to)?;
    crate::base::failpoint::hit("migrate.after-switch");
    remove_store_files(root, spool.kind)?;
    remove(&staging)?;
    Ok(report)
}
