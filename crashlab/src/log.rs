//! The block log: every write and flush the loop device passed to the
//! recorder, in the order the kernel sent them, and the images rebuilt from
//! it.
//!
//! Invariants:
//! - Entries are numbered from 0 in the order they arrived; a *position* is
//!   a number of entries (the log's length at some moment), so "the state at
//!   flush F" is every entry before F applied, which the flush made durable.
//! - Writes and zeroed ranges are whole 512-byte sectors (the loop device's
//!   logical block size); anything else is refused when the log is read.
//!
//! On-disk format (little-endian), after the 8-byte magic `CRLOG001`:
//!
//! ```text
//!  0      1             9             17
//!  +------+-------------+-------------+------------------+
//!  | kind | offset u64  | length u64  | data (writes)    |
//!  +------+-------------+-------------+------------------+
//!  kind 1 write: `length` bytes of data follow
//!  kind 2 flush: offset and length are 0, no data
//!  kind 3 zero:  a discarded or zeroed range, no data (read back as zeroes)
//!  kind 4 mark:  offset holds a number the workload chose, no data
//! ```

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"CRLOG001";
pub const SECTOR: u64 = 512;
pub const HEADER: usize = 17;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Write = 1,
    Flush = 2,
    Zero = 3,
    Mark = 4,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    pub offset: u64,
    pub len: u64,
    /// Where the data of a write starts in [`Log::data`].
    pub data_at: usize,
}

/// Appends entries to a log file as they arrive.
pub struct Writer {
    out: io::BufWriter<std::fs::File>,
    pub count: u64,
}

impl Writer {
    pub fn create(path: &Path) -> io::Result<Writer> {
        let mut out = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        out.write_all(MAGIC)?;
        Ok(Writer { out, count: 0 })
    }

    pub fn append(&mut self, kind: Kind, offset: u64, data: &[u8], len: u64) -> io::Result<()> {
        let mut h = [0u8; HEADER];
        h[0] = kind as u8;
        h[1..9].copy_from_slice(&offset.to_le_bytes());
        h[9..17].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(data)?;
        self.count += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A whole log in memory, with a per-sector history to rebuild any image.
pub struct Log {
    pub entries: Vec<Entry>,
    pub data: Vec<u8>,
    /// For each sector ever written: (entry index, where its 512 bytes are
    /// in `data`, or `ZEROED`), in entry order.
    history: HashMap<u64, Vec<(u32, usize)>>,
}

pub const ZEROED: usize = usize::MAX;

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Log {
    pub fn read(path: &Path) -> io::Result<Log> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?.read_to_end(&mut bytes)?;
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(bad(format!("{}: not a crashlab log", path.display())));
        }
        let mut entries = Vec::new();
        let mut data = Vec::new();
        let mut history: HashMap<u64, Vec<(u32, usize)>> = HashMap::new();
        let mut at = 8;
        while at < bytes.len() {
            let start = at;
            let h = bytes
                .get(at..at + HEADER)
                .ok_or_else(|| bad(format!("{}: offset {start}: torn entry", path.display())))?;
            let kind = match h[0] {
                1 => Kind::Write,
                2 => Kind::Flush,
                3 => Kind::Zero,
                4 => Kind::Mark,
                k => return Err(bad(format!("{}: offset {start}: kind {k}", path.display()))),
            };
            let offset = u64::from_le_bytes(h[1..9].try_into().unwrap_or_default());
            let len = u64::from_le_bytes(h[9..17].try_into().unwrap_or_default());
            at += HEADER;
            let index = entries.len() as u32;
            let mut data_at = 0;
            if matches!(kind, Kind::Write | Kind::Zero)
                && (offset % SECTOR != 0 || len % SECTOR != 0)
            {
                return Err(bad(format!(
                    "{}: offset {start}: a {len}-byte write at {offset} is not whole sectors",
                    path.display()
                )));
            }
            if kind == Kind::Write {
                let body = bytes
                    .get(at..at + len as usize)
                    .ok_or_else(|| bad(format!("{}: offset {start}: torn data", path.display())))?;
                data_at = data.len();
                data.extend_from_slice(body);
                at += len as usize;
                for i in 0..len / SECTOR {
                    history
                        .entry(offset / SECTOR + i)
                        .or_default()
                        .push((index, data_at + (i * SECTOR) as usize));
                }
            } else if kind == Kind::Zero {
                for i in 0..len / SECTOR {
                    history
                        .entry(offset / SECTOR + i)
                        .or_default()
                        .push((index, ZEROED));
                }
            }
            entries.push(Entry {
                kind,
                offset,
                len,
                data_at,
            });
        }
        Ok(Log {
            entries,
            data,
            history,
        })
    }

    /// Sector `s` as it was with the entries before `upto` applied: where its
    /// bytes are in `data`, `ZEROED`, or `None` (never written: zeroes).
    pub fn sector_before(&self, s: u64, upto: usize) -> Option<usize> {
        let h = self.history.get(&s)?;
        let n = h.partition_point(|(i, _)| (*i as usize) < upto);
        if n == 0 { None } else { Some(h[n - 1].1) }
    }

    /// The indices of the flush entries, in order.
    pub fn flushes(&self) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&i| self.entries[i].kind == Kind::Flush)
            .collect()
    }

    /// The position of the first mark entry carrying `value`.
    pub fn mark(&self, value: u64) -> Option<usize> {
        (0..self.entries.len())
            .find(|&i| self.entries[i].kind == Kind::Mark && self.entries[i].offset == value)
    }

    /// Every sector any entry touched, for writing a whole image out.
    pub fn sectors(&self) -> impl Iterator<Item = &u64> {
        self.history.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_pinned_and_a_sector_reads_as_of_any_position() {
        let dir = std::env::temp_dir().join(format!("crashlab-log-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("log");
        let mut w = Writer::create(&p).unwrap();
        w.append(Kind::Write, 512, &[1u8; 1024], 1024).unwrap();
        w.append(Kind::Flush, 0, &[], 0).unwrap();
        w.append(Kind::Write, 1024, &[2u8; 512], 512).unwrap();
        w.append(Kind::Zero, 512, &[], 512).unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(bytes[8], 1);
        assert_eq!(&bytes[9..17], &512u64.to_le_bytes());
        assert_eq!(&bytes[17..25], &1024u64.to_le_bytes());
        let log = Log::read(&p).unwrap();
        assert_eq!(log.flushes(), vec![1]);
        assert_eq!(log.sector_before(1, 0), None);
        assert_eq!(log.sector_before(1, 1), Some(0));
        assert_eq!(log.sector_before(1, 4), Some(ZEROED));
        assert_eq!(log.sector_before(2, 2), Some(512));
        assert_eq!(log.sector_before(2, 3), Some(1024));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
