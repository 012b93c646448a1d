//! The groups cache: where a scan finds the group of a grouped message
//! (`push --group`) without reading its record. A slot has no room for
//! the group's key; it only says the message is in a group (its layout
//! bit, [`crate::store::fs::index`]), and the key is kept twice: in the
//! message's grouped record (`SPM5`, the truth) and here, 16 bytes per
//! seq, so that a delivery scan reads a chunk of this file beside each
//! chunk of slots.
//!
//! ```text
//! groups: | entry of seq 0 (unused) | entry of seq 1 | ... |   entry of seq s at s * 16
//! entry:  | group u64 | seq u32 (its low 32 bits) | crc u32 |
//!         +0          +8                          +12       +16
//! ```
//! `crc` is the CRC32 of bytes `0..12` followed by the whole seq (u64),
//! so an entry names its message. The file is sparse: the entries of
//! messages not in a group are holes (zeros), and cost no disk.
//!
//! Invariants:
//! * The cache never decides: an entry is used only if its CRC checks and
//!   it names the seq; otherwise (never written, torn, lost, damaged) the
//!   group is read from the message's record, and the entry written again
//!   by a handle that may write. So the file needs no sync and no write
//!   order: it is written after a push's records are synced (push step 3,
//!   beside the lanes), by adoption (recovery), and when found wrong; it is
//!   never synced, and a lost one costs record reads, never a message or
//!   the order of a group.
//! * A message whose record cannot be read either keeps the group
//!   [`GROUP_UNREAD`] stands for: it is still in a group (all such are one
//!   group), never taken for one outside any; its body is damaged, so it
//!   is marked corrupt as soon as it is served.

use super::FsStore;
use crate::base::error::{IoContext, Result};
use crate::base::io::{FileIo, Fs, Open};
use crate::model::group::GroupKey;
use crate::store::Meta;
use crate::store::fs::index::GROUP_UNREAD;
use crate::store::fs::record::{self, u32_at, u64_at};
use crate::store::fs::segment;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Length of one entry.
const ENTRY_LEN: usize = 16;
/// Entries read at a time by a scan: as many as its chunk of slots.
const CHUNK: u64 = super::SCAN_CHUNK;

/// The cache file of the queue at `dir`.
fn path_in(dir: &std::path::Path) -> PathBuf {
    dir.join("groups")
}

/// Opens the cache file at `path` as `how` says; `None` if it is missing.
fn open_cache(fs: &dyn Fs, path: &std::path::Path, how: Open) -> Result<Option<Arc<dyn FileIo>>> {
    match segment::open_file(fs, path, how) {
        Ok(f) => Ok(Some(f)),
        Err(crate::base::error::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Where the entry of `seq` is.
fn entry_offset(seq: u64) -> u64 {
    seq * ENTRY_LEN as u64
}

/// The entry of message `seq` in `group`.
fn encode_entry(seq: u64, group: GroupKey) -> [u8; ENTRY_LEN] {
    let mut e = [0u8; ENTRY_LEN];
    e[0..8].copy_from_slice(&group.0.to_le_bytes());
    e[8..12].copy_from_slice(&(seq as u32).to_le_bytes());
    let crc = entry_crc(&e, seq);
    e[12..16].copy_from_slice(&crc.to_le_bytes());
    e
}

fn entry_crc(e: &[u8], seq: u64) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&e[0..12]);
    h.update(&seq.to_le_bytes());
    h.finalize()
}

/// The group an entry read for `seq` names, if it is whole and its own.
fn decode_entry(e: &[u8], seq: u64) -> Option<GroupKey> {
    if e.len() < ENTRY_LEN || u32_at(e, 8) != seq as u32 || entry_crc(e, seq) != u32_at(e, 12) {
        return None;
    }
    GroupKey::from_stored(u64_at(e, 0))
}

/// Reads the groups of grouped messages for one scan: a chunk of the cache
/// at a time, the record where the cache has no good entry. Holds its own
/// handles, so a scan can read through it while the store is borrowed.
pub(super) struct GroupReader {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    /// The cache file: `None` until first needed (a scan of a queue with
    /// no group opens nothing), then `Some(None)` if there is none.
    file: Option<Option<Arc<dyn FileIo>>>,
    /// Write back the entries found wrong.
    writable: bool,
    segments: HashMap<u64, Arc<dyn FileIo>>,
    chunk_at: u64,
    chunk: Vec<u8>,
}

impl GroupReader {
    /// Fills in the group of `m` if its slot said only that it has one.
    pub(super) fn fill(&mut self, m: &mut Meta) -> Result<()> {
        if m.group != Some(GROUP_UNREAD) {
            return Ok(());
        }
        if let Some(g) = self.cached(m.seq)? {
            m.group = Some(g);
            return Ok(());
        }
        if let Some(g) = self.in_record(m)? {
            m.group = Some(g);
            if self.writable
                && let Some(Some(f)) = &self.file
            {
                // Best effort: a cache entry that cannot be written is read
                // from the record again next time.
                let _ = f.write_all_at(&encode_entry(m.seq, g), entry_offset(m.seq));
            }
        }
        Ok(())
    }

    /// The cache's entry of `seq`, read with its chunk.
    fn cached(&mut self, seq: u64) -> Result<Option<GroupKey>> {
        if self.file.is_none() {
            self.file = Some(open_cache(&*self.fs, &path_in(&self.dir), Open::Existing)?);
        }
        let Some(Some(f)) = &self.file else {
            return Ok(None);
        };
        let at = seq - seq % CHUNK;
        if self.chunk.is_empty() || self.chunk_at != at {
            self.chunk.resize(CHUNK as usize * ENTRY_LEN, 0);
            let path = path_in(&self.dir);
            let n = segment::read_at_most(&**f, &path, &mut self.chunk, entry_offset(at))?;
            self.chunk.truncate(n);
            self.chunk_at = at;
        }
        let i = (seq - at) as usize * ENTRY_LEN;
        Ok(self
            .chunk
            .get(i..i + ENTRY_LEN)
            .and_then(|e| decode_entry(e, seq)))
    }

    /// The group its record keeps (`None` if the record cannot be read).
    fn in_record(&mut self, m: &Meta) -> Result<Option<GroupKey>> {
        let path = segment::path(&self.dir, m.loc.segment);
        let f = match self.segments.get(&m.loc.segment) {
            Some(f) => Arc::clone(f),
            None => match segment::open_rw(&*self.fs, &path) {
                Ok(f) => {
                    self.segments.insert(m.loc.segment, Arc::clone(&f));
                    f
                }
                Err(_) => return Ok(None),
            },
        };
        let mut head = [0u8; record::GROUPED_HEADER_LEN];
        let n = segment::read_at_most(&*f, &path, &mut head, u64::from(m.loc.offset))?;
        Ok(match record::decode_header(&head[..n]) {
            Ok(h) if h.seq == m.seq => h.group,
            _ => None,
        })
    }
}

impl FsStore {
    fn groups_path(&self) -> PathBuf {
        path_in(&self.dir)
    }

    /// The cache file, opened on first use (made if `create`).
    fn groups_io(&mut self, create: bool) -> Result<Option<Arc<dyn FileIo>>> {
        if let Some(f) = &self.group_cache {
            return Ok(Some(Arc::clone(f)));
        }
        let path = self.groups_path();
        let how = if create {
            Open::OrCreate
        } else {
            Open::Existing
        };
        let f = open_cache(&*self.fs, &path, how)?;
        self.group_cache.clone_from(&f);
        Ok(f)
    }

    /// A reader of groups for one scan or lookup (it opens the cache only
    /// when it meets a message in a group).
    pub(super) fn group_reader(&self) -> GroupReader {
        GroupReader {
            fs: Arc::clone(&self.fs),
            dir: self.dir.clone(),
            file: self.group_cache.clone().map(Some),
            writable: self.writable,
            segments: self.files.clone(),
            chunk_at: 0,
            chunk: Vec::new(),
        }
    }

    /// Whether any message of this queue was ever pushed in a group (the
    /// cache exists): `stats` counts blocked groups only then.
    pub(super) fn had_groups(&mut self) -> Result<bool> {
        Ok(match self.groups_io(false)? {
            Some(f) => f.len().ctx("stat", &self.groups_path())? > 0,
            None => false,
        })
    }

    /// Push step 3 (and adoption): the entries of messages pushed in a
    /// group (seq and group, in seq order), written whole runs at a time,
    /// not synced.
    pub(super) fn put_groups(&mut self, grouped: &[(u64, GroupKey)]) -> Result<()> {
        let Some(&(first, _)) = grouped.first() else {
            return Ok(());
        };
        if !self.writable {
            return Ok(());
        }
        let f = self
            .groups_io(true)?
            .ok_or_else(|| crate::base::error::Error::Runtime("groups cache".into()))?;
        let path = self.groups_path();
        // One write per run of neighbouring seqs (a bulk push is one run).
        let mut at = first;
        let mut buf: Vec<u8> = Vec::new();
        for &(seq, g) in grouped {
            if seq != at + (buf.len() / ENTRY_LEN) as u64 {
                f.write_all_at(&buf, entry_offset(at)).ctx("write", &path)?;
                buf.clear();
                at = seq;
            }
            buf.extend_from_slice(&encode_entry(seq, g));
        }
        f.write_all_at(&buf, entry_offset(at)).ctx("write", &path)?;
        Ok(())
    }

    /// Gives back the disk of the entries below `seq` (their slots were
    /// punched): best effort, as for the slots.
    pub(super) fn punch_groups(&mut self, seq: u64) -> Result<()> {
        if let Some(f) = self.groups_io(false)? {
            let _ = f.punch_hole(0, entry_offset(seq));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_names_its_message_and_its_group() {
        let g = GroupKey::of(b"customer-42");
        let e = encode_entry(7, g);
        // Pinned: the group at +0, the seq's low 32 bits at +8, the CRC at +12.
        assert_eq!(u64_at(&e, 0), g.0);
        assert_eq!(u32_at(&e, 8), 7);
        assert_eq!(decode_entry(&e, 7), Some(g));
        // Another seq, even one with the same low bits, is not named by it.
        assert_eq!(decode_entry(&e, 8), None);
        assert_eq!(decode_entry(&e, 7 + (1 << 32)), None);
        let mut bad = e;
        bad[0] ^= 1;
        assert_eq!(decode_entry(&bad, 7), None);
        assert_eq!(decode_entry(&[0; ENTRY_LEN], 0), None);
        assert_eq!(entry_offset(3), 48);
    }
}
