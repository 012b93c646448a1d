//! Reading a queue: scans over the slots, one slot, a message's body.
//!
//! Invariants: slots are read in chunks of [`SCAN_CHUNK`]; a slot past
//! `next_seq` or below the punched ones is never read; a body is served
//! only if its record's CRCs match and it belongs to the message. A damaged
//! slot met by a handle that may write makes it rebuild the slots once
//! ([`FsStore::reconcile`]); one that may not write skips it and reports.
//! Writes nothing itself.

use super::{FsStore, SCAN_CHUNK};
use crate::base::error::{Error, Result};
use crate::base::io::FileIo;
use crate::store::fs::index::slot_offset;
use crate::store::fs::index::{SLOT_LEN, SlotDamage, decode_slot_of};
use crate::store::fs::record::{self, RecordHeader};
use crate::store::fs::segment::{self};
use crate::store::{Meta, Scan, Step};

/// What was read of `meta`'s record in `path`, as the message's: a record
/// of another seq, or a damaged one, is an [`Error::Corrupt`] naming the
/// file and offset.
fn of_message<T>(
    path: &std::path::Path,
    meta: &Meta,
    got: std::result::Result<(RecordHeader, T), record::Damage>,
) -> Result<(RecordHeader, T)> {
    let offset = meta.loc.offset;
    match got {
        Ok((h, t)) if h.seq == meta.seq => Ok((h, t)),
        Ok(_) => Err(Error::corrupt(
            path,
            format!("offset {offset}: record belongs to another message"),
        )),
        Err(d) => Err(Error::corrupt(
            path,
            format!("offset {offset}: {}", d.describe()),
        )),
    }
}

/// The most bytes [`FsStore::read_bodies`] reads with one `pread`.
const READ_RUN: u64 = 1 << 20;

/// Where the record of `m` ends in its segment (as its slot says; a length
/// past [`record::MAX_BODY`] counts as past any run).
fn record_end(m: &Meta) -> u64 {
    let len = if u64::from(m.len) > record::MAX_BODY {
        READ_RUN + 1
    } else {
        u64::from(m.len)
    };
    u64::from(m.loc.offset) + record::Kind::of_meta(m).head_len() as u64 + len
}

impl FsStore {
    /// [`crate::store::Store::scan`].
    pub(super) fn scan_slots(
        &mut self,
        from: Scan,
        visit: &mut dyn FnMut(&Meta) -> Step,
    ) -> Result<()> {
        // A message in a group is handed out with its group, read from the
        // groups cache ([`super::groups`]) chunk by chunk beside the slots.
        let mut groups = self.group_reader();
        let mut failed = None;
        let visit = &mut |m: &Meta| {
            let mut m = *m;
            match groups.fill(&mut m) {
                Ok(()) => visit(&m),
                Err(e) => {
                    failed = Some(e);
                    Step::Stop
                }
            }
        };
        let scanned = self.scan_filled(from, visit);
        match failed {
            Some(e) => Err(e),
            None => scanned,
        }
    }

    /// [`FsStore::scan_slots`], its messages' groups filled in by `visit`.
    fn scan_filled(&mut self, from: Scan, visit: &mut dyn FnMut(&Meta) -> Step) -> Result<()> {
        // A delivery scan reads the lanes first ([`super::lanes`]), then
        // the slots for the rest: the plain messages, and any prioritised
        // one its lane did not hold.
        let mut in_lanes = std::collections::HashSet::new();
        if from == Scan::Delivery {
            match self.scan_lanes(visit)? {
                Some(seen) => in_lanes = seen,
                None => return Ok(()),
            }
        }
        let start = match from {
            Scan::Pending | Scan::Delivery => self.h.scan_lo,
            Scan::Live => self.h.segments.first().map_or(self.h.next_seq, |s| s.base),
        };
        // The pending cursor moves past finished messages at its front.
        let mut cursor = self.h.scan_lo;
        let mut contiguous = matches!(from, Scan::Pending | Scan::Delivery);
        let mut damaged = Vec::new();
        let mut start = start;
        loop {
            // A handle that may write rebuilds the slots at the first damaged
            // one (once), then goes on from there.
            let fix = self.writable && !self.reconciled;
            let mut found = None;
            self.all_slots(start, &mut |s, slot| match slot {
                Ok(m) => {
                    let wanted = match from {
                        Scan::Pending | Scan::Delivery => m.state.is_pending(),
                        Scan::Live => m.state.is_live(),
                    };
                    if wanted && in_lanes.contains(&m.seq) {
                        contiguous = false;
                        return Step::Continue;
                    }
                    if !wanted {
                        if contiguous && s == cursor {
                            cursor = s + 1;
                        }
                        return Step::Continue;
                    }
                    contiguous = false;
                    visit(&m)
                }
                Err(_) if fix => {
                    found = Some(s);
                    Step::Stop
                }
                Err(_) => {
                    contiguous = false;
                    damaged.push(s);
                    Step::Continue
                }
            })?;
            let Some(s) = found else { break };
            contiguous = false;
            let why = format!(
                "offset {}: index slot of message {} is damaged",
                slot_offset(s),
                crate::model::ids::format_id(s, self.h.salt)
            );
            self.reconcile(&why, true)?;
            start = s;
        }
        if cursor != self.h.scan_lo {
            self.h.scan_lo = cursor;
            self.dirty = true;
        }
        for s in damaged {
            self.notices.push(format!(
                "{}: offset {}: index slot of message {} is damaged; skipped (run `spoolmq fsck --repair`)",
                self.slots_path().display(),
                slot_offset(s),
                crate::model::ids::format_id(s, self.h.salt)
            ));
        }
        Ok(())
    }

    /// [`crate::store::Store::get`]: the message with its group.
    pub(super) fn get_meta(&mut self, seq: u64) -> Result<Option<Meta>> {
        let Some(mut m) = self.get_slot(seq)? else {
            return Ok(None);
        };
        if m.group.is_some() {
            self.group_reader().fill(&mut m)?;
        }
        Ok(Some(m))
    }

    /// [`crate::store::Store::get_each`]: a run of consecutive seqs (up to
    /// [`SCAN_CHUNK`]) is read with one `pread`: an `ack` of 100,000
    /// receipts made 100,000 reads of one slot. A slot that does not decode
    /// is read again alone, as [`Self::get_meta`] reads it.
    pub(super) fn get_metas(&mut self, seqs: &[u64]) -> Result<Vec<Option<Meta>>> {
        let mut out = Vec::with_capacity(seqs.len());
        let mut buf = Vec::new();
        let mut rest = seqs;
        while let Some(&first) = rest.first() {
            let n = rest
                .iter()
                .zip(first..)
                .take(SCAN_CHUNK as usize)
                .take_while(|(s, want)| *s == want)
                .count();
            let (run, after) = rest.split_at(n);
            rest = after;
            let inside = first >= self.h.punched.max(1) && first + n as u64 <= self.h.next_seq;
            if n == 1 || !inside {
                for &s in run {
                    out.push(self.get_meta(s)?);
                }
                continue;
            }
            buf.resize(n * SLOT_LEN, 0);
            let got = segment::read_at_most(
                &*self.slots,
                &self.slots_path(),
                &mut buf,
                slot_offset(first),
            )?;
            for (i, &s) in run.iter().enumerate() {
                let slot = buf
                    .get(i * SLOT_LEN..(i + 1) * SLOT_LEN)
                    .filter(|_| (i + 1) * SLOT_LEN <= got);
                let Some(Ok(mut m)) = slot.map(|b| decode_slot_of(b, s)) else {
                    // Reading it alone may repair the slots: what is left
                    // of the run is read again too.
                    for &s in &run[i..] {
                        out.push(self.get_meta(s)?);
                    }
                    break;
                };
                if m.group.is_some() {
                    self.group_reader().fill(&mut m)?;
                }
                out.push(Some(m));
            }
        }
        Ok(out)
    }

    /// The slot of `seq`, decoded (a message in a group with its group not
    /// yet read).
    pub(super) fn get_slot(&mut self, seq: u64) -> Result<Option<Meta>> {
        if seq < self.h.punched || seq >= self.h.next_seq || seq == 0 {
            return Ok(None);
        }
        match self.read_slot(seq)? {
            Ok(m) => Ok(Some(m)),
            Err(_) if self.writable && !self.reconciled => {
                let why = format!(
                    "offset {}: index slot of message {} is damaged",
                    slot_offset(seq),
                    crate::model::ids::format_id(seq, self.h.salt)
                );
                self.reconcile(&why, true)?;
                Ok(self.read_slot(seq)?.ok())
            }
            Err(_) => Ok(None),
        }
    }

    /// [`crate::store::Store::body`].
    pub(super) fn read_body(&mut self, meta: &Meta) -> Result<Vec<u8>> {
        Ok(self.read_message(meta)?.1)
    }

    /// [`crate::store::Store::bodies`]: records that lie end to end in one
    /// segment (a run of up to [`READ_RUN`] bytes) are read with one
    /// `pread`, each then checked as [`Self::read_body`] checks it: one
    /// `pread` per message was a fifth of a 100,000-message `pop`. A run
    /// that does not read whole is read again message by message, so its
    /// damage is named as one read names it.
    pub(super) fn read_bodies(&mut self, metas: &[Meta]) -> Vec<Result<Vec<u8>>> {
        let mut out = Vec::with_capacity(metas.len());
        let mut rest = metas;
        while let Some(first) = rest.first() {
            let mut end = record_end(first);
            let mut n = 1;
            while let Some(m) = rest.get(n) {
                let next = record_end(m);
                if m.loc.segment != first.loc.segment
                    || u64::from(m.loc.offset) != end
                    || next - u64::from(first.loc.offset) > READ_RUN
                {
                    break;
                }
                end = next;
                n += 1;
            }
            let (run, after) = rest.split_at(n);
            rest = after;
            if n == 1 || self.read_run(run, end, &mut out).is_err() {
                out.truncate(metas.len() - rest.len() - n);
                out.extend(run.iter().map(|m| self.read_body(m)));
            }
        }
        out
    }

    /// Reads the records of `run` (end to end, ending at `end`) with one
    /// `pread` and checks each; `Err` if the run did not read whole.
    fn read_run(&mut self, run: &[Meta], end: u64, out: &mut Vec<Result<Vec<u8>>>) -> Result<()> {
        let first = u64::from(run[0].loc.offset);
        let path = segment::path(&self.dir, run[0].loc.segment);
        let file = self.segment_of(&run[0])?;
        let mut buf = vec![0u8; (end - first) as usize];
        if segment::read_at_most(file, &path, &mut buf, first)? < buf.len() {
            return Err(Error::corrupt(&path, "short run"));
        }
        for m in run {
            let at = (u64::from(m.loc.offset) - first) as usize;
            let kind = record::Kind::of_meta(m);
            let whole = &buf[at..at + kind.head_len() + m.len as usize];
            let got = segment::check_record(whole, m.len, kind)
                .map(|h| (h, whole[kind.head_len()..].to_vec()));
            out.push(of_message(&path, m, got).map(|(_, body)| body));
        }
        Ok(())
    }

    /// The header of a message's record alone (its CRC checked, not the
    /// body's): what [`crate::store::Store::ttl_ms`] needs.
    pub(super) fn read_header(&mut self, meta: &Meta) -> Result<RecordHeader> {
        let path = segment::path(&self.dir, meta.loc.segment);
        let file = self.segment_of(meta)?;
        let mut buf = [0u8; record::MAX_HEADER_LEN];
        let kind = record::Kind::of_meta(meta);
        let head = &mut buf[..kind.head_len()];
        let n = segment::read_at_most(file, &path, head, u64::from(meta.loc.offset))?;
        // As `segment::read_record` says of a header of the other length.
        let got = record::decode_header(&head[..n]).and_then(|h| {
            if h.kind() == kind {
                Ok((h, ()))
            } else {
                Err(record::Damage::BadHeaderCrc)
            }
        });
        Ok(of_message(&path, meta, got)?.0)
    }

    /// The segment file that holds `meta`'s record; a missing one is damage.
    fn segment_of(&mut self, meta: &Meta) -> Result<&dyn FileIo> {
        let path = segment::path(&self.dir, meta.loc.segment);
        match self.segment_file(meta.loc.segment) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::corrupt(&path, "segment file missing"))
            }
            r => r,
        }
    }

    /// The record of a message: its header and body, checked.
    pub(super) fn read_message(&mut self, meta: &Meta) -> Result<(RecordHeader, Vec<u8>)> {
        let path = segment::path(&self.dir, meta.loc.segment);
        let file = self.segment_of(meta)?;
        let offset = u64::from(meta.loc.offset);
        let got = segment::read_record(file, &path, offset, meta.len, record::Kind::of_meta(meta))?;
        of_message(&path, meta, got)
    }

    pub(super) fn segment_file(&mut self, base: u64) -> Result<&dyn FileIo> {
        if !self.files.contains_key(&base) {
            let p = segment::path(&self.dir, base);
            let f = segment::open_rw(&*self.fs, &p)?;
            self.files.insert(base, f);
        }
        self.files
            .get(&base)
            .map(|f| &**f)
            .ok_or_else(|| Error::Runtime("segment cache".into()))
    }

    /// Reads the slot of `seq`.
    pub(super) fn read_slot(&self, seq: u64) -> Result<std::result::Result<Meta, SlotDamage>> {
        let mut b = [0u8; SLOT_LEN];
        let n = segment::read_at_most(&*self.slots, &self.slots_path(), &mut b, slot_offset(seq))?;
        if n < SLOT_LEN {
            return Ok(Err(SlotDamage::Empty));
        }
        Ok(decode_slot_of(&b, seq))
    }

    /// Visits every slot from `from` (inclusive) to `next_seq`, decoded, in
    /// chunks of [`SCAN_CHUNK`] slots per read, until `visit` says stop.
    pub(super) fn all_slots(
        &self,
        from: u64,
        visit: &mut dyn FnMut(u64, std::result::Result<Meta, SlotDamage>) -> Step,
    ) -> Result<()> {
        let mut seq = from.max(self.h.punched);
        let mut buf = vec![0u8; (SCAN_CHUNK as usize) * SLOT_LEN];
        while seq < self.h.next_seq {
            let n = segment::read_at_most(
                &*self.slots,
                &self.slots_path(),
                &mut buf,
                slot_offset(seq),
            )?;
            let count = ((self.h.next_seq - seq).min(SCAN_CHUNK)) as usize;
            for i in 0..count {
                let at = i * SLOT_LEN;
                let s = seq + i as u64;
                let r = if at + SLOT_LEN > n {
                    Err(SlotDamage::Empty)
                } else {
                    decode_slot_of(&buf[at..at + SLOT_LEN], s)
                };
                if visit(s, r) == Step::Stop {
                    return Ok(());
                }
            }
            seq += count as u64;
        }
        Ok(())
    }
}
