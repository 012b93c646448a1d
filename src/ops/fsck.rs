//! `fsck`: checks each queue with its store's own check (through the
//! spool: [`Spool::check_queue`]) and reports each problem with its file
//! and offset; `--repair` has the store repair the queue
//! ([`Spool::repair_queue`]) and checks again. Before the queues, the
//! spool's own files ([`check_spool`]: `.store`, `.spool.lock`,
//! `.spool.bell`, and in a sqlite spool the database as a whole).

use crate::base::error::{Error, Result};
use crate::spool::stores::DatabaseReport;
use crate::spool::{Record, Spool, StoreKind};
use std::path::{Path, PathBuf};

pub use crate::store::{Problem, QueueReport};

/// Checks, and with `repair` rebuilds and checks again, queue `name`.
/// Returns the report of the first check and, after a repair, of the second.
/// With the key (`spool.key`), checks the authentication tag of every body
/// of an encrypted queue ([`crate::queue::Queue::verify_bodies`]): each one
/// that fails is a problem, which `repair` fixes by marking the message
/// corrupt (never served). `Ok(Err(why))`: the tags were not checked (no
/// key, or the key of another queue), which is a note, not a problem.
pub fn check_bodies(
    spool: &Spool,
    name: &str,
    repair: bool,
) -> Result<std::result::Result<Vec<Problem>, String>> {
    if spool.key.is_none() && !spool.may_be_encrypted(name)? {
        // Without a key there is nothing to check in a queue that has no
        // key id: not even opened.
        return Ok(Ok(Vec::new()));
    }
    let opened = if repair {
        spool.open_queue(name, false)
    } else {
        spool.open_queue_read_only(name)
    };
    let mut q = match opened {
        Ok(Some(q)) => q,
        Ok(None) => return Ok(Ok(Vec::new())),
        // Reported by the queue's own check (a damaged key id, say): the
        // other queues are still checked.
        Err(Error::Corrupt { .. }) => {
            return Ok(Err("bodies not checked: the queue cannot be opened".into()));
        }
        Err(e) => return Err(e),
    };
    let place = spool.queue_place(name);
    Ok(q.verify_bodies(repair)?.map(|bad| {
        bad.into_iter()
            .map(|(id, why)| Problem {
                queue: name.to_string(),
                file: place.clone(),
                offset: None,
                what: format!("message {id} cannot be decrypted: {why}"),
            })
            .collect()
    }))
}

pub fn run(spool: &Spool, name: &str, repair: bool) -> Result<(QueueReport, Option<QueueReport>)> {
    // One fsck at a time per spool, and none during a migrate.
    let exclusive = spool.kind.needs_exclusive_lock();
    let _lock = if repair {
        spool.lock(exclusive, exclusive)?
    } else {
        spool.lock_reading(exclusive, exclusive)?
    };
    // Without --repair, fsck writes nothing (Spool::check_queue).
    let first = spool.check_queue(name)?;
    if !repair || first.report.problems.is_empty() {
        return Ok((first.report, None));
    }
    let notes = spool.repair_queue(name, &first)?;
    let mut second = spool.check_queue(name)?.report;
    second
        .notes
        .splice(0..0, notes.into_iter().map(|n| format!("{name}: {n}")));
    Ok((first.report, Some(second)))
}

/// What checking the spool's own files found.
#[derive(Debug, Default)]
pub struct SpoolReport {
    pub problems: Vec<Problem>,
    /// The problems still there: all of them without `repair`.
    pub left: Vec<Problem>,
    /// Lines about what a repair did.
    pub notes: Vec<String>,
}

/// `fsck` of the files at the spool's root, before its queues: `.store`
/// (damaged, or missing while `.spool.db` says sqlite: rewritten with the
/// store the spool was opened with, which [`Spool::open`] told from the
/// files on disk), `.spool.lock` and `.spool.bell` (whose content is never
/// read: only something other than a regular file is a problem, removed by
/// a repair and made again by the next command that needs it), and in a
/// sqlite spool the objects in `.spool.db` that its schema does not define
/// (dropped by a repair) and bodies no message names (removed), see
/// [`crate::spool::Spool::check_database`]. A repair holds
/// the spool lock exclusively, so no `migrate` switches the store meanwhile.
pub fn check_spool(spool: &Spool, repair: bool) -> Result<SpoolReport> {
    let mut r = SpoolReport::default();
    if !spool.kind.is_local() || !spool.exists()? {
        return Ok(r);
    }
    let root = &spool.root;
    // Planted non-files first: the lock is taken next.
    let mut found = Vec::new();
    // A journal of a move is only ever a regular file too.
    for name in [
        crate::spool::LOCK_FILE,
        crate::spool::BELL_FILE,
        crate::store::fs::moves::JOURNAL,
    ] {
        let p = root.join(name);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if !m.is_file() => {
                found.push(problem(
                    p.clone(),
                    format!(
                        "not a regular file ({}); it is made again when needed",
                        file_type_name(&m)
                    ),
                ));
                if repair {
                    let gone = if m.is_dir() {
                        std::fs::remove_dir(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                    match gone {
                        Ok(()) => r.notes.push(format!("{}: removed", p.display())),
                        Err(e) => r.left.push(problem(
                            p.clone(),
                            format!("not a regular file, and cannot be removed: {e}"),
                        )),
                    }
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("stat", &p, e)),
        }
    }
    let exclusive = repair || spool.kind.needs_exclusive_lock();
    let journal = root.join(crate::store::fs::moves::JOURNAL);
    let cut_short = spool.kind == StoreKind::Fs && journal.is_file();
    if cut_short {
        found.push(problem(
            journal.clone(),
            "a `retry --to` was cut short: `fsck --repair`, or any command that writes, finishes it"
                .into(),
        ));
    }
    // Taking the lock to write finishes it (Spool::lock).
    let _lock = if repair {
        spool.lock(exclusive, exclusive)?
    } else {
        spool.lock_reading(exclusive, exclusive)?
    };
    if cut_short && repair && journal.exists() {
        r.left.push(problem(
            journal.clone(),
            "still cut short (see above)".into(),
        ));
    }
    if cut_short && repair {
        r.notes.push(format!(
            "{}: {}",
            journal.display(),
            if journal.exists() {
                "not finished (see above)"
            } else {
                "dealt with (see above)"
            }
        ));
    }
    // Damaged journals set aside: the messages they moved may be in both
    // queues. Reported until someone has looked and removed them.
    if spool.kind == StoreKind::Fs {
        let mut aside: Vec<PathBuf> = std::fs::read_dir(root)
            .map_err(|e| Error::io("list", root, e))?
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(crate::store::fs::moves::DAMAGED)
            })
            .map(|e| e.path())
            .collect();
        aside.sort();
        for p in aside {
            let pr = problem(
                p,
                "a damaged journal of a `retry --to`, set aside: the messages it moved may be in both queues (dead letters in the source); check, then remove it".into(),
            );
            if repair {
                r.left.push(pr.clone());
            }
            found.push(pr);
        }
    }
    let store = root.join(crate::spool::STORE_FILE);
    let disk = crate::spool::OnDisk::of(root)?;
    let holds = !disk.fs_queues.is_empty() || disk.db;
    let trouble = match crate::spool::read_record(root)? {
        Record::Store(k) if k == spool.kind => None,
        Record::Store(k) => Some(format!(
            "records the {} store, but this command opened the {} store",
            k.name(),
            spool.kind.name()
        )),
        // An fs spool from before the marker, or one with nothing in it.
        Record::Missing if !holds || (spool.kind == StoreKind::Fs && !disk.db) => None,
        Record::Missing => Some(format!(
            "missing: the spool does not record its store (it is {}, as {})",
            spool.kind.name(),
            disk.evidence(spool.kind)
        )),
        Record::Damaged(why) => Some(format!(
            "damaged ({why}); the store is {}{}",
            spool.kind.name(),
            if holds {
                format!(", as {}", disk.evidence(spool.kind))
            } else {
                ", as the spool holds nothing yet".to_string()
            }
        )),
    };
    if let Some(what) = trouble {
        found.push(problem(store.clone(), what));
        if repair {
            crate::spool::replace_kind(root, spool.kind)?;
            r.notes.push(format!(
                "{}: rewritten: the {} store",
                store.display(),
                spool.kind.name()
            ));
            if disk.db && !disk.fs_queues.is_empty() {
                r.notes.push(format!(
                    "the other store's files are left as they were; `spoolmq --dir {} migrate --to {}` removes them",
                    root.display(),
                    spool.kind.name()
                ));
            }
        }
    }
    if let Some((db, report)) = spool.check_database(repair)? {
        database_problems(&db, &report, repair, &mut found, &mut r.notes);
    }
    if !repair {
        r.left = found.clone();
    }
    r.problems = found;
    Ok(r)
}

const STILL_CUT_SHORT: &str = "still cut short (see above)";

/// Whether `p` is a `retry --to` that [`check_spool`] could not finish.
pub fn is_cut_short_move(p: &Problem) -> bool {
    p.what == STILL_CUT_SHORT
}

/// After `fsck --repair` repaired the queues: finishes a `retry --to` cut
/// short that their damage stopped (by taking the spool lock to write, as
/// any command would). Whether it is done now.
pub fn finish_cut_short_move(spool: &Spool) -> Result<bool> {
    let journal = spool.root.join(crate::store::fs::moves::JOURNAL);
    let _lock = spool.lock(false, true)?;
    Ok(!journal.exists())
}

/// A problem of a file at the spool's root (it belongs to no queue).
fn problem(file: PathBuf, what: String) -> Problem {
    Problem {
        queue: String::new(),
        file,
        offset: None,
        what,
    }
}

/// The sqlite spool's database `db` beyond its queues: what SQLite's
/// integrity check says (a repair rebuilds the indexes), objects its schema
/// does not define (dropped by a repair) and bodies no message names
/// (removed).
fn database_problems(
    db: &Path,
    report: &DatabaseReport,
    repair: bool,
    found: &mut Vec<Problem>,
    notes: &mut Vec<String>,
) {
    for line in &report.integrity {
        found.push(problem(
            db.to_path_buf(),
            format!("integrity_check: {line}"),
        ));
    }
    if repair && !report.integrity.is_empty() {
        notes.push(format!("{}: rebuilt the database's indexes", db.display()));
    }
    for (kind, name) in &report.foreign {
        found.push(problem(
            db.to_path_buf(),
            format!("{kind} {name:?} is not part of spoolmq's schema"),
        ));
        if repair {
            notes.push(format!("{}: dropped {kind} {name:?}", db.display()));
        }
    }
    let orphans = report.orphans;
    if orphans > 0 {
        found.push(problem(
            db.to_path_buf(),
            format!("{orphans} bodies belong to no message"),
        ));
        if repair {
            notes.push(format!(
                "{}: removed {orphans} bodies that belonged to no message",
                db.display()
            ));
        }
    }
}

fn file_type_name(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a file"
    }
}
