//! Moving messages into another queue of the spool (`retry --to`) in one
//! step a crash cannot split: no message is lost, none ends up in both
//! queues. Two queues' files cannot change in one write, so the move is
//! written down first, in the journal `SPOOL/.moving`, and whoever finds the
//! journal finishes the move before doing anything else.
//!
//! Invariants:
//! * A move runs with the spool lock held exclusive (the spool takes it,
//!   [`crate::spool::Spool::open_queue_to_move`]) and then both queues'
//!   locks, so no other command runs meanwhile, no two moves run at once,
//!   and taking the second queue's lock cannot deadlock (every other
//!   command holds the spool lock shared before it takes a queue's).
//! * While `.moving` exists nothing else changes either queue:
//!   [`finish`] runs first, under the spool lock held exclusive, in every
//!   command that takes the spool lock to write.
//! * A push lands in seq order, and what a crash leaves of it is a prefix of
//!   its messages (recovery adopts whole records up to the first torn one).
//!   So the number of messages the target holds from `start` on says which
//!   of the journal's source messages arrived.
//!
//! Write order:
//! 1. `SPOOL/.moving.tmp`: the journal below; fsync, rename to `.moving`,
//!    fsync the spool directory;
//! 2. the target: its key id (a new encrypted target), the push (durable),
//!    the moved messages' failures (durable);
//! 3. the source: commit the changes (the moved messages purged);
//! 4. unlink `.moving`, fsync the spool directory.
//!
//! [`finish`] after a crash anywhere: with `k` = the target's `next_seq` −
//! `start` (at most `count`), the first `k` source messages arrived. Each
//! of them still live in the source gets its failure copied to the target
//! (if step 2 did not finish) and is purged from the source; the rest stay
//! dead letters in the source, as they were. Then step 4.
//!
//! Journal (little-endian; `from` and `to` are queue names, at most 255
//! bytes each):
//!
//! ```text
//! +0         +8         +16        +20         +21       +22
//! | SPMQMOV1 | start u64 | count u32 | from_len u8 | to_len u8 | from | to | count x seq u64 | crc32 u32 |
//! ```
//!
//! The CRC covers every byte before it. A damaged journal cannot say which
//! messages moved: it is kept as `.moving.damaged` and reported, and the
//! source keeps its copies (a message may then be in both queues, never in
//! neither).

use super::{FsStore, spool_of};
use crate::base::error::{Error, IoContext, Result};
use crate::base::failpoint;
use crate::base::io::{Fs, Open};
use crate::model::crypt::KeyId;
use crate::model::input;
use crate::store::fs::record;
use crate::store::fs::segment::{self, sync_dir};
use crate::store::{
    Change, Incoming, State, Store, Target, failures_at, into_itself, no_target, split_incoming,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The journal's name in the spool directory.
pub const JOURNAL: &str = ".moving";

/// What a damaged journal is renamed to (`.moving.damaged`, then
/// `.moving.damaged.2`, ...).
pub const DAMAGED: &str = ".moving.damaged";

const MAGIC: &[u8; 8] = b"SPMQMOV1";

/// Bytes before the names.
const FIXED: usize = 22;

/// An interrupted move, as its journal says (public for the fuzz target
/// `journal_decode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// The source queue's name (at most 255 bytes, as every queue name).
    pub from: String,
    pub to: String,
    /// The target's `next_seq` when the move began.
    pub start: u64,
    /// The source seqs moved, in the order they were pushed.
    pub seqs: Vec<u64>,
}

impl Journal {
    /// The journal's bytes (layout at the top of this file).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(FIXED + 8 * self.seqs.len() + 600);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.start.to_le_bytes());
        b.extend_from_slice(&(self.seqs.len() as u32).to_le_bytes());
        b.push(self.from.len() as u8);
        b.push(self.to.len() as u8);
        b.extend_from_slice(self.from.as_bytes());
        b.extend_from_slice(self.to.as_bytes());
        for s in &self.seqs {
            b.extend_from_slice(&s.to_le_bytes());
        }
        b.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
        b
    }

    /// `None` if `b` is not a whole journal.
    pub fn decode(b: &[u8]) -> Option<Journal> {
        if b.len() < FIXED + 4 || &b[..8] != MAGIC {
            return None;
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body) != record::u32_at(crc, 0) {
            return None;
        }
        let start = record::u64_at(b, 8);
        let count = record::u32_at(b, 16) as usize;
        let (fl, tl) = (usize::from(b[20]), usize::from(b[21]));
        if body.len() != FIXED + fl + tl + 8 * count {
            return None;
        }
        // Names a queue could have, and two of them: a journal planted by
        // someone who may write the spool must not reach outside it (`..`,
        // `/`), nor name one queue twice (its lock, taken twice, would hang).
        let name = |r: std::ops::Range<usize>| {
            let n = String::from_utf8(b[r].to_vec()).ok()?;
            input::queue_name(&n).ok()?;
            Some(n)
        };
        let from = name(FIXED..FIXED + fl)?;
        let to = name(FIXED + fl..FIXED + fl + tl)?;
        if from == to {
            return None;
        }
        let at = FIXED + fl + tl;
        let seqs = (0..count).map(|i| record::u64_at(b, at + 8 * i)).collect();
        Some(Journal {
            from,
            to,
            start,
            seqs,
        })
    }
}

fn journal_path(root: &Path) -> PathBuf {
    root.join(JOURNAL)
}

/// Step 1: the journal, durable before either queue changes.
fn write_journal(fs: &dyn Fs, root: &Path, j: &Journal) -> Result<()> {
    let tmp = root.join(".moving.tmp");
    let _ = fs.remove_file(&tmp);
    let f = segment::open_file(fs, &tmp, Open::New)?;
    f.write_all_at(&j.encode(), 0).ctx("write", &tmp)?;
    f.sync_data().ctx("sync", &tmp)?;
    fs.rename(&tmp, &journal_path(root))
        .ctx("rename", &journal_path(root))?;
    sync_dir(fs, root)
}

/// Step 4.
fn remove_journal(fs: &dyn Fs, root: &Path) -> Result<()> {
    let p = journal_path(root);
    fs.remove_file(&p).ctx("remove", &p)?;
    sync_dir(fs, root)
}

/// Whether the spool at `root` has a move to finish.
pub(crate) fn pending(fs: &dyn Fs, root: &Path) -> Result<bool> {
    let p = journal_path(root);
    fs.exists(&p).ctx("open", &p)
}

/// The queues (source, target) the journal in `root` names, if it can be read.
pub(crate) fn queues_named(fs: &dyn Fs, root: &Path) -> Option<(String, String)> {
    read_journal(fs, &journal_path(root))
        .ok()
        .flatten()
        .flatten()
        .map(|j| (j.from, j.to))
}

/// The journal at `p`: `Ok(None)` if there is none, `Ok(Some(None))` if it
/// is damaged.
fn read_journal(fs: &dyn Fs, p: &Path) -> Result<Option<Option<Journal>>> {
    let f = match fs.open(p, Open::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", p, e)),
    };
    let len = f.len().ctx("read", p)?;
    // A journal names two queues and at most a batch of seqs.
    let limit = (FIXED + 4 + 2 * 255 + 8 * crate::store::MOVE_BATCH) as u64;
    if len > limit {
        return Ok(Some(None));
    }
    let mut b = vec![0u8; len as usize];
    let n = segment::read_at_most(&*f, p, &mut b, 0)?;
    Ok(Some(Journal::decode(&b[..n])))
}

/// Finishes the move the journal in `root` describes, if there is one (see
/// the module doc); the caller holds the spool lock exclusive. Returns
/// what it did, as lines for stderr.
pub(crate) fn finish(fs: &Arc<dyn Fs>, root: &Path) -> Result<Vec<String>> {
    let p = journal_path(root);
    let Some(j) = read_journal(&**fs, &p)? else {
        return Ok(Vec::new());
    };
    let Some(j) = j else {
        // Never over an earlier one: each is reported by fsck until removed.
        let mut aside = root.join(DAMAGED);
        let mut n = 1;
        while fs.exists(&aside).ctx("open", &aside)? {
            n += 1;
            aside = root.join(format!("{DAMAGED}.{n}"));
        }
        fs.rename(&p, &aside).ctx("rename", &p)?;
        sync_dir(&**fs, root)?;
        return Ok(vec![format!(
            "{}: offset 0: damaged journal of an interrupted `retry --to`: kept as {}; \
             the messages it moved may be in both queues (dead letters in the source)",
            p.display(),
            aside.display()
        )]);
    };
    let n = j.seqs.len() as u64;
    // Opening the target recovers it: records its push left are adopted.
    let mut target = FsStore::open_with(Arc::clone(fs), &root.join(&j.to), false)?;
    let arrived = target
        .as_ref()
        .map_or(0, |t| t.next_seq().saturating_sub(j.start).min(n));
    let mut source = FsStore::open_with(Arc::clone(fs), &root.join(&j.from), false)?;
    let mut changes = Vec::new();
    let mut failures = Vec::new();
    if let Some(src) = source.as_mut() {
        for (i, &seq) in j.seqs.iter().take(arrived as usize).enumerate() {
            let Some(m) = src.get(seq)?.filter(|m| m.state.is_live()) else {
                continue;
            };
            if let (Some(f), Some(t)) = (src.failure(seq)?, target.as_mut()) {
                let at = j.start + i as u64;
                if t.failure(at)?.is_none() {
                    failures.push((at, f));
                }
            }
            changes.push(Change {
                old: m.state,
                new: m.moved(State::Purged),
            });
        }
    }
    if let Some(t) = target.as_mut() {
        t.record_failures(&failures)?;
    }
    if let Some(src) = source.as_mut() {
        src.commit(&changes)?;
    }
    let mut notes: Vec<String> = Vec::new();
    for s in [target.as_mut(), source.as_mut()].into_iter().flatten() {
        notes.extend(s.take_notices());
    }
    drop((target, source));
    remove_journal(&**fs, root)?;
    notes.push(format!(
        "{}: a `retry --to` of {n} messages from {} to {} was interrupted; finished it: \
         {arrived} are in {}, {} still dead letters in {}",
        p.display(),
        j.from,
        j.to,
        j.to,
        n - arrived,
        j.from
    ));
    Ok(notes)
}

impl FsStore {
    /// [`Store::move_target`]: opens (and makes) queue `to` of this spool,
    /// taking its lock; the caller holds the spool lock exclusive.
    pub(super) fn open_move_target(&mut self, to: &str) -> Result<Target> {
        let root = spool_of(&self.dir).to_path_buf();
        let dir = root.join(to);
        if dir == self.dir {
            // The queue's lock is held: taking it again would wait forever.
            return Err(into_itself(to));
        }
        if !self.fs.exists(&dir).ctx("open", &dir)? {
            self.fs.mkdir(&dir).ctx("create", &dir)?;
            sync_dir(&*self.fs, &root)?;
        }
        let t = FsStore::open_with(Arc::clone(&self.fs), &dir, true)?
            .ok_or_else(|| Error::NoSuchQueue(to.to_string()))?;
        let target = Target {
            salt: t.salt(),
            next_seq: t.next_seq(),
            key_id: t.key_id(),
            pushed: t.counters().pushed,
        };
        self.target = Some(Box::new(t));
        Ok(target)
    }

    /// [`Store::move_out`], in the write order of the module doc.
    pub(super) fn move_messages(
        &mut self,
        key_id: Option<Option<KeyId>>,
        msgs: Vec<Incoming<'_>>,
        changes: &[Change],
    ) -> Result<Vec<u64>> {
        let mut t = (self.target.take()).ok_or_else(|| no_target(&self.dir.display()))?;
        let (news, failures) = split_incoming(msgs);
        if news.is_empty() {
            self.commit(changes)?;
            return Ok(Vec::new());
        }
        let leaving: Vec<u64> = changes
            .iter()
            .filter(|c| c.new.state == State::Purged)
            .map(|c| c.new.seq)
            .collect();
        if leaving.len() != news.len() {
            return Err(Error::Runtime(format!(
                "{}: a move of {} messages purges {} here",
                self.dir.display(),
                news.len(),
                leaving.len()
            )));
        }
        let root = spool_of(&self.dir).to_path_buf();
        let name = |d: &Path| d.file_name().map(|n| n.to_string_lossy().into_owned());
        let j = Journal {
            from: name(&self.dir).unwrap_or_default(),
            to: name(&t.dir).unwrap_or_default(),
            start: t.next_seq(),
            seqs: leaving,
        };
        write_journal(&*self.fs, &root, &j)?;
        failpoint::hit("move.after-journal");
        if let Some(id) = key_id {
            t.set_key_id(id)?;
        }
        let seqs = t.push(&mut news.into_iter().map(Ok))?;
        t.record_failures(&failures_at(&seqs, failures))?;
        failpoint::hit("move.after-push");
        self.commit(changes)?;
        failpoint::hit("move.after-commit");
        self.notices.extend(t.take_notices());
        drop(t);
        remove_journal(&*self.fs, &root)?;
        Ok(seqs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Journal {
        Journal {
            from: "jobs".into(),
            to: "redo".into(),
            start: 0x0102_0304_0506_0708,
            seqs: vec![5, 9],
        }
    }

    #[test]
    fn the_journal_layout_is_pinned() {
        let b = journal().encode();
        assert_eq!(&b[..8], b"SPMQMOV1");
        assert_eq!(record::u64_at(&b, 8), 0x0102_0304_0506_0708);
        assert_eq!(record::u32_at(&b, 16), 2);
        assert_eq!((b[20], b[21]), (4, 4));
        assert_eq!(&b[22..26], b"jobs");
        assert_eq!(&b[26..30], b"redo");
        assert_eq!(record::u64_at(&b, 30), 5);
        assert_eq!(record::u64_at(&b, 38), 9);
        assert_eq!(b.len(), 46 + 4);
        assert_eq!(record::u32_at(&b, 46), crc32fast::hash(&b[..46]));
    }

    #[test]
    fn a_journal_naming_no_queue_or_one_queue_twice_is_refused() {
        for (from, to) in [
            ("..", "redo"),
            ("jobs", "a/b"),
            ("jobs", "jobs"),
            ("", "redo"),
        ] {
            let j = Journal {
                from: from.into(),
                to: to.into(),
                ..journal()
            };
            assert_eq!(Journal::decode(&j.encode()), None, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn a_journal_round_trips_and_any_damage_is_seen() {
        let b = journal().encode();
        assert_eq!(Journal::decode(&b), Some(journal()));
        for cut in 0..b.len() {
            assert_eq!(Journal::decode(&b[..cut]), None, "cut at {cut}");
        }
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x40;
            assert_eq!(Journal::decode(&d), None, "flip at {i}");
        }
    }
}
