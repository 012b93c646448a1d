//! The holds file `QUEUE/holds`: the hold of each unique key
//! ([`crate::model::unique`]), an open-addressing hash table on disk, so
//! that a push finds whether a key is held in a few reads, whatever the
//! number of keys. Made by the first command that needs it (a keyed push);
//! a queue without one has no keyed messages, or lost the file (it is then
//! made again from the slots and records).
//!
//! ```text
//! header (32 bytes, at 0; all integers little-endian):
//! +0        +8       +12   +16          +28
//! | SPMQHOLD| version| bits| zero x 12   | crc32 of bytes 0..28 |
//!
//! then 2^bits entries of 48 bytes, entry i at 32 + 48 * i:
//! +0      +16   +24        +32           +36        +40   +44
//! | key   | seq | pushed_at| unique_for_s| free_at_s| zero | crc32 of bytes 0..44 |
//! | 16 B  | u64 | u64 ms   | u32         | u32      | u32  | u32                  |
//! ```
//!
//! An entry of zeros is empty (never written). `free_at_s` is 0 while the
//! message is pending, else when the key is free (whole seconds; 1: at
//! once). A key's entry is looked for from entry `key[0..8] mod 2^bits` on,
//! one after another (wrapping), up to the first empty one. An entry whose
//! key is free by now, or whose CRC fails, may be taken by another key; a
//! damaged one is passed over by a search (it may have been any key's).
//!
//! Source of truth: like the slots, the file is a cache of what the
//! records (a keyed record holds its key and window, [`super::record`]) and
//! the states say, and is written in place without a sync:
//! * push: a keyed message's entry is written after its record is synced
//!   and before the live header (a failed push puts back what it wrote);
//!   recovery's adoption of a record past the committed length writes it
//!   again;
//! * commit: the entry of a keyed message that is done gets its `free_at`
//!   after the WAL record is synced, in [`FsStore::apply`], which WAL
//!   replay runs too;
//! * checkpoint: the file is synced with the slots, before the checkpoint
//!   header, so that what recovery does not redo is durable;
//! * growing (a search ran past [`MAX_PROBE`]): the entries still held are
//!   written to `holds.tmp` in a table of the size they need, synced,
//!   renamed over the file and the directory synced.
//!
//! A handle that has read [`CACHE_AFTER`] entries (a bulk push) reads the
//! table whole and writes to that copy; each change of the holds (a push's
//! keys, a release, an undo, a repair) ends by writing the pages it
//! touched, so the order above is kept: nothing that depends on an entry
//! is written before the entry is in the file.
//!
//! A missing file, or one whose header is damaged, is made again from the
//! slots: the keys of pending messages, and of acked ones whose slot is
//! still there, with their windows. A damaged entry is reported by `fsck`;
//! `fsck --repair` makes the file again, keeping the windows of the
//! entries that can be read.

use super::FsStore;
use crate::base::error::{Error, IoContext, Result};
use crate::base::io::{FileIo, Open};
use crate::model::unique::{Hold, UniqueKey};
use crate::store::fs::record::{u32_at, u64_at};
use crate::store::fs::segment::{self, sync_dir};
use crate::store::{Meta, State, Step};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const FILE: &str = "holds";
const TMP: &str = "holds.tmp";
const MAGIC: &[u8; 8] = b"SPMQHOLD";
/// The format version in the header.
pub const VERSION: u32 = 1;
pub const HEADER_LEN: u64 = 32;
pub const ENTRY_LEN: usize = 48;
/// A new table has 2^10 entries (48 KiB).
const MIN_BITS: u32 = 10;
/// The smallest table a header may name (the tests make tables this small).
const FLOOR_BITS: u32 = 4;

#[cfg(test)]
thread_local! {
    /// The power-loss test makes small tables, so that they grow.
    pub(crate) static TEST_MIN_BITS: std::cell::Cell<u32> = const { std::cell::Cell::new(MIN_BITS) };
}

fn min_bits() -> u32 {
    #[cfg(test)]
    {
        TEST_MIN_BITS.with(|b| b.get())
    }
    #[cfg(not(test))]
    {
        MIN_BITS
    }
}
/// The largest table: 2^32 entries.
const MAX_BITS: u32 = 32;
/// A search that passes more entries than this makes the next write grow
/// the table (or clear it of free keys). With at most half of the entries
/// taken after a growth, a search passes about 1.5 on average (2.5 for a
/// key not there).
const MAX_PROBE: u64 = 64;

pub fn header(bits: u32) -> [u8; HEADER_LEN as usize] {
    let mut b = [0u8; HEADER_LEN as usize];
    b[..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&bits.to_le_bytes());
    let crc = crc32fast::hash(&b[..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The table size a header says (its `bits`), if the header checks out.
pub fn decode_header(b: &[u8]) -> Option<u32> {
    if b.len() < HEADER_LEN as usize || &b[..8] != MAGIC || u32_at(b, 8) != VERSION {
        return None;
    }
    let bits = u32_at(b, 12);
    let ok = crc32fast::hash(&b[..28]) == u32_at(b, 28)
        && b[16..28].iter().all(|&x| x == 0)
        && (FLOOR_BITS..=MAX_BITS).contains(&bits);
    ok.then_some(bits)
}

/// One entry holding `hold` for `key`.
pub fn encode_entry(key: &UniqueKey, h: &Hold) -> [u8; ENTRY_LEN] {
    let secs = |ms: u64| ms.div_ceil(1000).min(u64::from(u32::MAX)) as u32;
    let mut b = [0u8; ENTRY_LEN];
    b[..16].copy_from_slice(&key.0);
    b[16..24].copy_from_slice(&h.seq.to_le_bytes());
    b[24..32].copy_from_slice(&h.pushed_at_ms.to_le_bytes());
    b[32..36].copy_from_slice(&secs(h.unique_for_ms).to_le_bytes());
    b[36..40].copy_from_slice(&secs(h.free_at_ms).to_le_bytes());
    let crc = crc32fast::hash(&b[..44]);
    b[44..48].copy_from_slice(&crc.to_le_bytes());
    b
}

/// What one entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Empty,
    Damaged,
    Full(UniqueKey, Hold),
}

pub fn decode_entry(b: &[u8]) -> Entry {
    if b.len() < ENTRY_LEN {
        return Entry::Damaged;
    }
    if b[..ENTRY_LEN].iter().all(|&x| x == 0) {
        return Entry::Empty;
    }
    if crc32fast::hash(&b[..44]) != u32_at(b, 44) || u32_at(b, 40) != 0 {
        return Entry::Damaged;
    }
    let mut key = [0u8; 16];
    key.copy_from_slice(&b[..16]);
    Entry::Full(
        UniqueKey(key),
        Hold {
            seq: u64_at(b, 16),
            pushed_at_ms: u64_at(b, 24),
            unique_for_ms: u64::from(u32_at(b, 32)) * 1000,
            free_at_ms: u64::from(u32_at(b, 36)) * 1000,
        },
    )
}

/// Whether the entry of a hold may be taken by another key at `now`.
fn reusable(e: &Entry, now: u64) -> bool {
    match e {
        Entry::Empty | Entry::Damaged => true,
        Entry::Full(_, h) => h.free_at_ms != 0 && h.free_at_ms <= now,
    }
}

/// A hold that holds nothing: what a failed push leaves where it wrote.
const FREED: Hold = Hold {
    seq: 0,
    pushed_at_ms: 0,
    unique_for_ms: 0,
    free_at_ms: 1,
};

/// The open holds file.
pub(super) struct HoldTable {
    path: PathBuf,
    file: Arc<dyn FileIo>,
    bits: u32,
    /// A search passed more than [`MAX_PROBE`] entries: the next write grows.
    crowded: bool,
    /// Entries read so far by this handle: past [`CACHE_AFTER`], the
    /// table is read whole into `cache`.
    reads: u64,
    /// The whole file as read, kept as it is written: a bulk push reads no
    /// entry twice from the disk, and writes whole pages.
    cache: Option<Vec<u8>>,
    /// Pages (of [`PAGE`] bytes) of `cache` written and not yet in the
    /// file: written by [`HoldTable::flush`], which every change of the
    /// holds ends with, before anything that depends on it is written.
    dirty: std::collections::BTreeSet<u64>,
}

/// The unit of a write from the cache: a page of the page cache. A write
/// of one 48-byte entry into a page that is not cached whole cost ext4 a
/// read-modify-write of its block (`perf` of a push of 1,000,000 keyed
/// lines: 54% of its time in `ext4_block_write_begin` and
/// `block_commit_write`).
const PAGE: u64 = 4096;

/// Entry reads after which a handle reads the whole table at once (a bulk
/// push of keys): `strace -c` of a push of 100,000 keyed lines showed
/// 238,660 reads of one entry each, 23% of its system time. A table over
/// [`CACHE_MAX`] bytes is never read whole.
const CACHE_AFTER: u64 = 256;
const CACHE_MAX: u64 = 256 << 20;

/// Where a key's search ended: its entry, or where it would go.
struct Found {
    /// The key's entry and its hold, if it has one.
    at: Option<(u64, Hold)>,
    /// The first entry the key may take if it has none.
    free: Option<u64>,
    /// Entries passed.
    probes: u64,
}

impl HoldTable {
    fn mask(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    fn offset(i: u64) -> u64 {
        HEADER_LEN + i * ENTRY_LEN as u64
    }

    fn read(&mut self, i: u64) -> Result<Entry> {
        self.reads += 1;
        if self.cache.is_none() && self.reads > CACHE_AFTER {
            let len = self.file.len().ctx("stat", &self.path)?;
            if len <= CACHE_MAX && self.dirty.is_empty() {
                let mut all = vec![0u8; len as usize];
                let n = segment::read_at_most(&*self.file, &self.path, &mut all, 0)?;
                all.truncate(n);
                self.cache = Some(all);
            }
        }
        if let Some(c) = &self.cache {
            let at = Self::offset(i) as usize;
            return Ok(decode_entry(
                c.get(at..)
                    .map_or(&[][..], |r| &r[..r.len().min(ENTRY_LEN)]),
            ));
        }
        let mut b = [0u8; ENTRY_LEN];
        let n = segment::read_at_most(&*self.file, &self.path, &mut b, Self::offset(i))?;
        // A file is made as long as its table: one cut short lost entries.
        Ok(decode_entry(&b[..n]))
    }

    fn write(&mut self, i: u64, key: &UniqueKey, h: &Hold) -> Result<()> {
        let b = encode_entry(key, h);
        let at = Self::offset(i);
        let Some(c) = &mut self.cache else {
            return self.file.write_all_at(&b, at).ctx("write", &self.path);
        };
        let from = at as usize;
        if c.len() < from + ENTRY_LEN {
            c.resize(from + ENTRY_LEN, 0);
        }
        c[from..from + ENTRY_LEN].copy_from_slice(&b);
        self.dirty.insert(at / PAGE);
        self.dirty.insert((at + ENTRY_LEN as u64 - 1) / PAGE);
        Ok(())
    }

    /// Writes the pages of the cache written since the last flush, runs
    /// of consecutive pages in one write each.
    fn flush(&mut self) -> Result<()> {
        let (Some(c), false) = (&self.cache, self.dirty.is_empty()) else {
            return Ok(());
        };
        let pages: Vec<u64> = self.dirty.iter().copied().collect();
        let mut i = 0;
        while i < pages.len() {
            let mut j = i + 1;
            while j < pages.len() && pages[j] == pages[j - 1] + 1 {
                j += 1;
            }
            let from = (pages[i] * PAGE) as usize;
            let to = ((pages[j - 1] + 1) * PAGE).min(c.len() as u64) as usize;
            if from < to {
                self.file
                    .write_all_at(&c[from..to], from as u64)
                    .ctx("write", &self.path)?;
            }
            i = j;
        }
        self.dirty.clear();
        Ok(())
    }

    fn search(&mut self, key: &UniqueKey, now: u64) -> Result<Found> {
        let home = u64::from_le_bytes(key.0[..8].try_into().unwrap_or_default());
        let mut found = Found {
            at: None,
            free: None,
            probes: 0,
        };
        for n in 0..=self.mask() {
            let i = home.wrapping_add(n) & self.mask();
            found.probes = n + 1;
            let e = self.read(i)?;
            match e {
                Entry::Empty => {
                    found.free.get_or_insert(i);
                    break;
                }
                Entry::Full(k, h) if k == *key => {
                    found.at = Some((i, h));
                    break;
                }
                _ if reusable(&e, now) => {
                    found.free.get_or_insert(i);
                }
                _ => {}
            }
        }
        if found.probes > MAX_PROBE {
            self.crowded = true;
        }
        Ok(found)
    }

    /// Every entry that holds a hold, in table order.
    fn entries(&self, visit: &mut dyn FnMut(u64, Entry)) -> Result<()> {
        if let Some(c) = &self.cache {
            for i in 0..=self.mask() {
                let at = Self::offset(i) as usize;
                let b = c
                    .get(at..)
                    .map_or(&[][..], |r| &r[..r.len().min(ENTRY_LEN)]);
                let e = decode_entry(b);
                if e != Entry::Empty {
                    visit(i, e);
                }
            }
            return Ok(());
        }
        const AT_ONCE: u64 = 4096;
        let mut buf = vec![0u8; AT_ONCE as usize * ENTRY_LEN];
        let mut i = 0;
        while i <= self.mask() {
            let n = (self.mask() + 1 - i).min(AT_ONCE);
            let want = n as usize * ENTRY_LEN;
            let got =
                segment::read_at_most(&*self.file, &self.path, &mut buf[..want], Self::offset(i))?;
            for j in 0..n {
                let at = j as usize * ENTRY_LEN;
                let e = if at >= got {
                    Entry::Damaged
                } else {
                    decode_entry(&buf[at..(at + ENTRY_LEN).min(got)])
                };
                if e != Entry::Empty {
                    visit(i + j, e);
                }
            }
            i += n;
        }
        Ok(())
    }

    /// Opens the file at `path`: `Ok(None)` if it is missing, `Err` naming
    /// the file if its header is damaged.
    fn open(fs: &dyn crate::base::io::Fs, path: &Path) -> Result<Option<HoldTable>> {
        let file = match fs.open(path, Open::Existing) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let mut h = [0u8; HEADER_LEN as usize];
        let n = segment::read_at_most(&*file, path, &mut h, 0)?;
        let bits = decode_header(&h[..n])
            .ok_or_else(|| Error::corrupt(path, "offset 0: damaged header"))?;
        Ok(Some(HoldTable {
            path: path.to_path_buf(),
            file,
            bits,
            crowded: false,
            reads: 0,
            cache: None,
            dirty: Default::default(),
        }))
    }

    /// Writes a table of 2^`bits` entries holding `holds` to `dir/holds`
    /// (temporary file, sync, rename, directory sync), and opens it.
    fn create(
        fs: &dyn crate::base::io::Fs,
        dir: &Path,
        bits: u32,
        holds: &[(UniqueKey, Hold)],
    ) -> Result<HoldTable> {
        let tmp = dir.join(TMP);
        let path = dir.join(FILE);
        match fs.remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove", &tmp, e));
            }
            _ => {}
        }
        let file = segment::open_file(fs, &tmp, Open::New)?;
        let size = HoldTable::offset(1u64 << bits);
        file.set_len(size).ctx("extend", &tmp)?;
        file.write_all_at(&header(bits), 0).ctx("write", &tmp)?;
        // Made in memory and written in one go, unless too large to hold.
        let cache = (size <= CACHE_MAX).then(|| {
            let mut c = vec![0u8; size as usize];
            c[..HEADER_LEN as usize].copy_from_slice(&header(bits));
            c
        });
        let mut t = HoldTable {
            path: tmp.clone(),
            file,
            bits,
            crowded: false,
            reads: 0,
            cache,
            dirty: Default::default(),
        };
        for (key, h) in holds {
            let f = t.search(key, 0)?;
            if let Some(i) = f.at.map(|(i, _)| i).or(f.free) {
                t.write(i, key, h)?;
            }
        }
        if let Some(c) = &t.cache {
            t.file.write_all_at(c, 0).ctx("write", &tmp)?;
            t.dirty.clear();
        }
        t.file.sync_data().ctx("sync", &tmp)?;
        fs.rename(&tmp, &path).ctx("rename", &tmp)?;
        sync_dir(fs, dir)?;
        t.path = path;
        t.crowded = false;
        Ok(t)
    }
}

/// The `bits` of a table for `n` holds: at most half full.
fn bits_for(n: usize) -> u32 {
    let want = (n as u64).saturating_mul(2).max(1 << min_bits());
    want.next_power_of_two()
        .trailing_zeros()
        .clamp(min_bits(), MAX_BITS)
}

/// What a push wrote to the holds file, to put back if it fails.
#[derive(Default)]
pub(super) struct Undo(Vec<(UniqueKey, Option<Hold>)>);

impl FsStore {
    fn holds_path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The holds file if it exists (and its header is whole), opened on
    /// first use. Recovery writes to it only then: a file made later is
    /// made from the slots as they are by then.
    fn holds_if_any(&mut self) -> Result<Option<&mut HoldTable>> {
        if self.hold_table.is_none() {
            let path = self.holds_path();
            self.hold_table = match HoldTable::open(&*self.fs, &path) {
                Ok(t) => t,
                Err(Error::Corrupt { .. }) => None,
                Err(e) => return Err(e),
            };
        }
        Ok(self.hold_table.as_mut())
    }

    /// The holds file, made from the slots if it is missing or its header
    /// is damaged (said in a notice).
    fn holds_table(&mut self) -> Result<&mut HoldTable> {
        if self.holds_if_any()?.is_none() {
            let path = self.holds_path();
            if let Err(Error::Corrupt { detail, .. }) = HoldTable::open(&*self.fs, &path) {
                self.notices.push(format!(
                    "{}: {detail}; made again from the messages (the windows of keys acked long ago are lost)",
                    path.display()
                ));
            }
            let holds = self.holds_from_slots(&[])?;
            let t = HoldTable::create(&*self.fs, &self.dir, bits_for(holds.len()), &holds)?;
            self.hold_table = Some(t);
        }
        self.hold_table
            .as_mut()
            .ok_or_else(|| Error::Runtime("holds table".into()))
    }

    /// The holds the slots and records say, after the readable `kept`
    /// holds (the windows of acked messages whose slots are gone): each
    /// keyed message that is pending, or acked with its window not over,
    /// in seq order, so the latest of a key wins.
    fn holds_from_slots(&mut self, kept: &[(UniqueKey, Hold)]) -> Result<Vec<(UniqueKey, Hold)>> {
        let mut keyed = Vec::new();
        let first = self.h.segments.first().map_or(self.h.next_seq, |s| s.base);
        self.all_slots(first, &mut |_, slot| {
            if let Ok(m) = slot
                && m.keyed
                && (m.state.is_pending() || m.state == State::Acked)
            {
                keyed.push(m);
            }
            Step::Continue
        })?;
        let mut by_key: std::collections::BTreeMap<UniqueKey, Hold> = kept
            .iter()
            .filter(|(_, h)| h.free_at_ms > 1)
            .copied()
            .collect();
        for m in keyed {
            let Ok(header) = self.read_header(&m) else {
                continue; // a damaged record: reported where it is read
            };
            let Some((key, window)) = header.unique else {
                continue;
            };
            let free_at_ms = if m.state == State::Acked {
                crate::model::unique::free_at(Some(m.until_ms), window)
            } else {
                0
            };
            let hold = Hold {
                seq: m.seq,
                pushed_at_ms: m.pushed_at_ms,
                unique_for_ms: window,
                free_at_ms,
            };
            by_key.insert(key, hold);
        }
        Ok(by_key.into_iter().collect())
    }

    /// [`crate::store::Store::hold`].
    pub(super) fn find_hold(&mut self, key: &UniqueKey) -> Result<Option<Hold>> {
        let t = self.holds_table()?;
        Ok(t.search(key, 0)?.at.map(|(_, h)| h))
    }

    /// Makes `key` held by message `seq` (pending), unless it is held by a
    /// later one; with `undo`, what was there is kept to put back. Does
    /// nothing if the file does not exist and `only_if_any` (recovery).
    fn take_key(
        &mut self,
        key: &UniqueKey,
        hold: Hold,
        now: u64,
        undo: Option<&mut Undo>,
        only_if_any: bool,
    ) -> Result<()> {
        if only_if_any && self.holds_if_any()?.is_none() {
            return Ok(());
        }
        if self.holds_table()?.crowded {
            self.grow_holds(now)?;
        }
        let t = self.holds_table()?;
        let found = t.search(key, now)?;
        let (i, old) = match (found.at, found.free) {
            (Some((_, h)), _) if h.seq > hold.seq => return Ok(()),
            (Some((i, h)), _) => (i, Some(h)),
            (None, Some(i)) => (i, None),
            (None, None) => {
                // Every entry is taken: grow, and look again.
                self.grow_holds(now)?;
                let t = self.holds_table()?;
                let f = t.search(key, now)?;
                match f.free {
                    Some(i) => (i, None),
                    None => return Err(Error::Runtime(format!("{}: full", t.path.display()))),
                }
            }
        };
        if let Some(u) = undo {
            u.0.push((*key, old));
        }
        self.holds_table()?.write(i, key, &hold)
    }

    /// Writes the holds of a push's keyed messages: `(key, hold)` each, in
    /// seq order, after their records are synced and before the live
    /// header. What it wrote goes in `undo`.
    pub(super) fn take_keys(&mut self, keyed: &[(UniqueKey, Hold)], undo: &mut Undo) -> Result<()> {
        // A push without keys neither makes nor opens the file.
        if keyed.is_empty() {
            return Ok(());
        }
        // Room first for a push of many keys, in one rewrite rather than
        // one per doubling.
        let cap = self.holds_table().map(|t| t.mask() + 1).unwrap_or(u64::MAX);
        if keyed.len() as u64 * 4 > cap {
            let now = keyed.first().map_or(0, |(_, h)| h.pushed_at_ms);
            self.grow_holds_for(now, keyed.len())?;
        }
        for (key, hold) in keyed {
            self.take_key(key, *hold, hold.pushed_at_ms, Some(undo), false)?;
        }
        self.flush_holds()
    }

    /// Writes what the cache of the holds file holds that the file does not.
    fn flush_holds(&mut self) -> Result<()> {
        match &mut self.hold_table {
            Some(t) => t.flush(),
            None => Ok(()),
        }
    }

    /// Puts back what a failed push wrote (best effort: a push that fails
    /// here left messages that recovery adopts, with their keys, anyway).
    pub(super) fn undo_keys(&mut self, undo: Undo) {
        for (key, old) in undo.0.into_iter().rev() {
            let _ = self.set_hold(&key, old.unwrap_or(FREED));
        }
        let _ = self.flush_holds();
    }

    /// Makes `hold` the hold of `key`, whatever it was.
    fn set_hold(&mut self, key: &UniqueKey, hold: Hold) -> Result<()> {
        let t = self.holds_table()?;
        let f = t.search(key, 0)?;
        match f.at.map(|(i, _)| i).or(f.free) {
            Some(i) => t.write(i, key, &hold),
            None => {
                self.grow_holds(0)?;
                self.set_hold(key, hold)
            }
        }
    }

    /// [`crate::store::Store::restore`]'s holds, as the source kept them.
    pub(super) fn set_holds(&mut self, holds: &[(UniqueKey, Hold)]) -> Result<()> {
        for (key, hold) in holds {
            self.set_hold(key, *hold)?;
        }
        self.flush_holds()
    }

    /// Recovery's adoption of keyed record `seq`: its key is held again.
    pub(super) fn put_hold(
        &mut self,
        key: &UniqueKey,
        seq: u64,
        pushed_at_ms: u64,
        window: u64,
    ) -> Result<()> {
        let hold = Hold {
            seq,
            pushed_at_ms,
            unique_for_ms: window,
            free_at_ms: 0,
        };
        self.take_key(key, hold, pushed_at_ms, None, true)?;
        self.flush_holds()
    }

    /// The hold of keyed message `m`, done by `change`, gets its `free_at`
    /// ([`crate::store::releases`]); called for each change applied, by a
    /// commit and by WAL replay. Nothing if there is no holds file (one
    /// made later is made from the states as they are then).
    pub(super) fn release_hold(
        &mut self,
        change: &crate::store::Change,
        replaying: bool,
    ) -> Result<()> {
        if self.holds_if_any()?.is_none() {
            return Ok(());
        }
        let m: &Meta = &change.new;
        let Ok(header) = self.read_header(m) else {
            // A damaged record: the hold is let go when its message is
            // found not pending (crate::queue).
            return Ok(());
        };
        let Some((key, window)) = header.unique else {
            return Ok(());
        };
        let free_at_ms = crate::store::released_at(change, window);
        let Some(t) = self.holds_if_any()? else {
            return Ok(());
        };
        let found = t.search(&key, 0)?;
        match (found.at, found.free) {
            (Some((i, h)), _) if h.seq == m.seq && h.free_at_ms == 0 => {
                let h = Hold { free_at_ms, ..h };
                t.write(i, &key, &h)?;
            }
            // Replayed from the WAL after a machine crash, with no entry
            // for the key: the release's own write was torn (an entry
            // spans sectors) after the entry it changed was synced. The
            // message held the key (a later holder would have an entry),
            // so its window is written whole again.
            (None, Some(i)) if replaying => {
                let h = Hold {
                    seq: m.seq,
                    pushed_at_ms: m.pushed_at_ms,
                    unique_for_ms: window,
                    free_at_ms,
                };
                t.write(i, &key, &h)?;
            }
            _ => {}
        }
        self.flush_holds()
    }

    /// Rewrites the table with only the holds still held at `now`, in a
    /// table of the size they need (at least as large if still crowded).
    fn grow_holds(&mut self, now: u64) -> Result<()> {
        self.grow_holds_for(now, 0)
    }

    /// [`FsStore::grow_holds`] with room for `more` holds besides.
    fn grow_holds_for(&mut self, now: u64, more: usize) -> Result<()> {
        let t = self.holds_table()?;
        let mut live = Vec::new();
        t.entries(&mut |_, e| {
            if let Entry::Full(k, h) = e
                && !reusable(&e, now)
            {
                live.push((k, h));
            }
        })?;
        let mut bits = bits_for(live.len() + more);
        // Crowded with keys still held (not free ones, which go): a larger
        // table, or the next search would be as long.
        if t.crowded && (live.len() + more) as u64 * 4 > (1u64 << t.bits) {
            bits = bits.max(t.bits + 1).min(MAX_BITS);
        }
        self.hold_table = None;
        let t = HoldTable::create(&*self.fs, &self.dir, bits, &live)?;
        self.hold_table = Some(t);
        Ok(())
    }

    /// Syncs the holds file if there is one (the checkpoint's first step,
    /// with the slots): an earlier process may have written it too.
    pub(super) fn sync_holds(&mut self) -> Result<()> {
        if let Some(t) = self.holds_if_any()? {
            t.flush()?;
            t.file.sync_data().ctx("sync", &t.path)?;
        }
        Ok(())
    }

    /// [`crate::store::Store::holds`].
    pub(super) fn every_hold(&mut self, visit: &mut dyn FnMut(&UniqueKey, &Hold)) -> Result<()> {
        if let Some(t) = self.holds_if_any()? {
            t.entries(&mut |_, e| {
                if let Entry::Full(k, h) = e
                    && h.seq > 0
                {
                    visit(&k, &h);
                }
            })?;
        }
        Ok(())
    }
}

/// `fsck`: what is damaged in `dir/holds` ((offset, what) each).
pub(super) fn check(fs: &dyn crate::base::io::Fs, dir: &Path) -> Result<Vec<(u64, String)>> {
    let t = match HoldTable::open(fs, &dir.join(FILE)) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(Vec::new()),
        Err(Error::Corrupt { detail, .. }) => return Ok(vec![(0, detail)]),
        Err(e) => return Err(e),
    };
    let mut bad = Vec::new();
    let want = HoldTable::offset(t.mask() + 1);
    let len = t.file.len().ctx("stat", &t.path)?;
    if len != want {
        bad.push((
            len.min(want),
            format!("the file is {len} bytes, its table {want}: its keys may be queued twice until `fsck --repair`"),
        ));
    }
    t.entries(&mut |i, e| {
        if e == Entry::Damaged && HoldTable::offset(i) < len {
            bad.push((
                HoldTable::offset(i),
                "damaged key hold (that key may be queued twice until `fsck --repair`)".into(),
            ));
        }
    })?;
    Ok(bad)
}

impl FsStore {
    /// `fsck --repair`: a holds file with damage is made again from the
    /// slots and the entries that can still be read. Returns what was done.
    pub(super) fn repair_holds(&mut self) -> Result<Option<String>> {
        let damage = check(&*self.fs, &self.dir)?;
        if damage.is_empty() {
            return Ok(None);
        }
        let mut kept = Vec::new();
        if let Ok(Some(t)) = HoldTable::open(&*self.fs, &self.holds_path()) {
            t.entries(&mut |_, e| {
                if let Entry::Full(k, h) = e {
                    kept.push((k, h));
                }
            })?;
        }
        let holds = self.holds_from_slots(&kept)?;
        let t = HoldTable::create(&*self.fs, &self.dir, bits_for(holds.len()), &holds)?;
        self.hold_table = Some(t);
        Ok(Some(format!(
            "{}: made again from the messages ({} damaged entries dropped, {} keys held)",
            self.holds_path().display(),
            damage.len(),
            holds.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_and_an_entry_are_as_documented() {
        let h = header(12);
        assert_eq!(&h[0..8], b"SPMQHOLD");
        assert_eq!(u32_at(&h, 8), VERSION);
        assert_eq!(u32_at(&h, 12), 12);
        assert_eq!(u32_at(&h, 28), crc32fast::hash(&h[..28]));
        assert_eq!(decode_header(&h), Some(12));
        for i in 0..h.len() {
            let mut bad = h;
            bad[i] ^= 1;
            assert_eq!(decode_header(&bad), None, "flip at {i}");
        }
        let key = UniqueKey([7; 16]);
        let hold = Hold {
            seq: 0x0102,
            pushed_at_ms: 0x0304,
            unique_for_ms: 60_000,
            free_at_ms: 1_700_000_001_000,
        };
        let b = encode_entry(&key, &hold);
        assert_eq!(&b[0..16], &[7; 16]);
        assert_eq!(u64_at(&b, 16), 0x0102);
        assert_eq!(u64_at(&b, 24), 0x0304);
        assert_eq!(u32_at(&b, 32), 60);
        assert_eq!(u32_at(&b, 36), 1_700_000_001);
        assert_eq!(u32_at(&b, 40), 0);
        assert_eq!(u32_at(&b, 44), crc32fast::hash(&b[..44]));
        assert_eq!(decode_entry(&b), Entry::Full(key, hold));
        assert_eq!(decode_entry(&[0; ENTRY_LEN]), Entry::Empty);
        for i in 0..b.len() {
            let mut bad = b;
            bad[i] ^= 1;
            assert_eq!(decode_entry(&bad), Entry::Damaged, "flip at {i}");
        }
    }

    #[test]
    fn a_table_is_at_most_half_full() {
        assert_eq!(bits_for(0), MIN_BITS);
        assert_eq!(bits_for(512), MIN_BITS);
        assert_eq!(bits_for(513), MIN_BITS + 1);
        assert_eq!(bits_for(1_000_000), 21);
    }
}
