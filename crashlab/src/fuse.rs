//! The two FUSE file systems a loop device sits on.
//!
//! `record` serves one file, `disk`, a zeroed image held in memory: every
//! write and every fsync the kernel sends for it is applied and appended to
//! the block log (`crate::log`) in arrival order, and `pos` reads back the
//! log's length, so the workload can say where each command ended. A loop
//! device attached to `disk` with direct I/O off (losetup's default) turns
//! each block write into one write of this file, passed through at once
//! (FUSE without a writeback cache sends every write before it returns),
//! and each flush of the device (a file system's barrier, or the write after
//! a FUA write) into one fsync: so the log is the order the file system
//! above issued its blocks and barriers.
//!
//! `serve` serves one file per crash state of a log (`crate::plan`): what the
//! disk held had the power gone at that point. Reads come from the log's
//! history; writes (the journal replay of the mount, the checks) go to a
//! copy-on-write overlay of that file alone, dropped when it is closed, so
//! the log is never changed and every state starts from the same bytes.
//!
//! Invariants: every write the kernel sends is whole 512-byte sectors (the
//! loop device's logical block size; anything else fails the write with
//! EINVAL, never silently); inode 1 is the root, files are 2 and up.

use crate::log::{Kind, Log, SECTOR, Writer, ZEROED};
use crate::plan::State;
use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, SystemTime};

const TTL: Duration = Duration::from_secs(1);
const ROOT: u64 = 1;

fn attr(ino: u64, size: u64, dir: bool) -> FileAttr {
    let now = SystemTime::UNIX_EPOCH;
    FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        kind: if dir {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: if dir { 0o755 } else { 0o600 },
        nlink: if dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// Lists the root directory of either file system: its files, from the
/// kernel's `offset` on.
fn list_root<'a>(
    ino: u64,
    offset: i64,
    mut reply: ReplyDirectory,
    files: impl Iterator<Item = (u64, &'a str)>,
) {
    if ino != ROOT {
        return reply.error(libc::ENOTDIR);
    }
    for (i, (ino, name)) in files.enumerate().skip(offset.max(0) as usize) {
        if reply.add(ino, (i + 1) as i64, FileType::RegularFile, name) {
            break;
        }
    }
    reply.ok()
}

/// The range of a discard or write-zeroes (`fallocate`'s offset and length)
/// in a file of `size` bytes, cut at its end: `[start, end)`, or `None` when
/// it is not whole sectors or starts past the end.
fn sectors_of(offset: i64, length: i64, size: u64) -> Option<(u64, u64)> {
    let off = offset.max(0) as u64;
    let end = off.saturating_add(length.max(0) as u64).min(size);
    (off <= end && off.is_multiple_of(SECTOR) && end.is_multiple_of(SECTOR)).then_some((off, end))
}

fn options(name: &str) -> Vec<MountOption> {
    vec![MountOption::FSName(name.to_string()), MountOption::NoAtime]
}

// ---------------------------------------------------------------- record

struct Recorder {
    image: Vec<u8>,
    log: Writer,
    failed: bool,
}

const DISK: u64 = 2;
const POS: u64 = 3;

impl Recorder {
    fn note(&mut self, kind: Kind, offset: u64, data: &[u8], len: u64) {
        if self.log.append(kind, offset, data, len).is_err() {
            // A lab that cannot log must not go on as if it had.
            self.failed = true;
        }
        if kind == Kind::Flush && self.log.flush().is_err() {
            self.failed = true;
        }
    }
}

impl Filesystem for Recorder {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match (parent, name.to_str()) {
            (ROOT, Some("disk")) => {
                reply.entry(&TTL, &attr(DISK, self.image.len() as u64, false), 0)
            }
            (ROOT, Some("pos")) => reply.entry(&TTL, &attr(POS, 32, false), 0),
            _ => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyAttr) {
        match ino {
            ROOT => reply.attr(&TTL, &attr(ROOT, 0, true)),
            DISK => reply.attr(&TTL, &attr(DISK, self.image.len() as u64, false)),
            POS => reply.attr(&TTL, &attr(POS, 32, false)),
            _ => reply.error(libc::ENOENT),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match ino {
            DISK => reply.opened(0, 0),
            // Never cached: each read of `pos` asks for the length now.
            POS => reply.opened(0, fuser::consts::FOPEN_DIRECT_IO),
            _ => reply.error(libc::ENOENT),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        let text;
        let src: &[u8] = match ino {
            DISK => &self.image,
            POS => {
                text = format!("{}\n", self.log.count);
                text.as_bytes()
            }
            _ => return reply.error(libc::ENOENT),
        };
        let from = (offset.max(0) as usize).min(src.len());
        let to = (from + size as usize).min(src.len());
        reply.data(&src[from..to]);
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyWrite,
    ) {
        let off = offset.max(0) as u64;
        if ino == POS {
            // A mark: the workload writes a number, which goes into the log.
            let n = std::str::from_utf8(data)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok());
            return match n {
                Some(n) => {
                    self.note(Kind::Mark, n, &[], 0);
                    reply.written(data.len() as u32)
                }
                None => reply.error(libc::EINVAL),
            };
        }
        let end = off as usize + data.len();
        if ino != DISK || end > self.image.len() {
            return reply.error(libc::ENOSPC);
        }
        if !off.is_multiple_of(SECTOR) || !(data.len() as u64).is_multiple_of(SECTOR) {
            eprintln!(
                "crashlab: a {}-byte write at {off} is not whole sectors",
                data.len()
            );
            self.failed = true;
            return reply.error(libc::EINVAL);
        }
        self.image[off as usize..end].copy_from_slice(data);
        self.note(Kind::Write, off, data, data.len() as u64);
        reply.written(data.len() as u32)
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if ino == DISK {
            self.note(Kind::Flush, 0, &[], 0);
        }
        if self.failed {
            reply.error(libc::EIO)
        } else {
            reply.ok()
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock: u64, reply: ReplyEmpty) {
        // close(2), not a barrier: nothing to log.
        reply.ok()
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        // A discard or write-zeroes of the loop device (punch hole, zero
        // range): the range reads back as zeroes from here on.
        let range = sectors_of(offset, length, self.image.len() as u64);
        let Some((off, end)) = range.filter(|_| ino == DISK) else {
            return reply.error(libc::EOPNOTSUPP);
        };
        self.image[off as usize..end as usize].fill(0);
        self.note(Kind::Zero, off, &[], end - off);
        reply.ok()
    }

    fn opendir(&mut self, _req: &Request<'_>, _ino: u64, _flags: i32, reply: ReplyOpen) {
        reply.opened(0, 0)
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        reply: ReplyDirectory,
    ) {
        list_root(
            ino,
            offset,
            reply,
            [(DISK, "disk"), (POS, "pos")].into_iter(),
        )
    }
}

/// Serves `disk` (of `size` bytes) and `pos` at `mountpoint` until it is
/// unmounted, logging to `log`.
pub fn record(size: u64, log: &Path, mountpoint: &Path) -> std::io::Result<()> {
    let fs = Recorder {
        image: vec![0u8; size as usize],
        log: Writer::create(log)?,
        failed: false,
    };
    fuser::mount2(fs, mountpoint, &options("crashlab-record"))
}

// ---------------------------------------------------------------- serve

/// An open state's torn tail (sector -> where its bytes are in the log)
/// and its copy-on-write overlay (sector -> bytes written since it opened).
type Open = (HashMap<u64, usize>, HashMap<u64, Vec<u8>>);

struct Server {
    log: Log,
    size: u64,
    states: Vec<State>,
    /// Per open state: the sectors the torn tail applied (entry order), and
    /// the sectors written since it was opened.
    open: HashMap<u64, Open>,
}

impl Server {
    fn state(&self, ino: u64) -> Option<&State> {
        self.states.get(ino.checked_sub(2)? as usize)
    }

    fn sector(&self, ino: u64, s: u64, out: &mut [u8]) {
        let Some(st) = self.state(ino) else { return };
        if let Some((tail, cow)) = self.open.get(&ino) {
            if let Some(b) = cow.get(&s) {
                out.copy_from_slice(b);
                return;
            }
            if let Some(&at) = tail.get(&s) {
                return self.copy(at, out);
            }
        }
        match self.log.sector_before(s, st.upto) {
            Some(at) => self.copy(at, out),
            None => out.fill(0),
        }
    }

    fn copy(&self, at: usize, out: &mut [u8]) {
        if at == ZEROED {
            out.fill(0)
        } else {
            out.copy_from_slice(&self.log.data[at..at + SECTOR as usize])
        }
    }
}

impl Filesystem for Server {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let found = (parent == ROOT)
            .then(|| {
                self.states
                    .iter()
                    .position(|s| Some(s.name.as_str()) == name.to_str())
            })
            .flatten();
        match found {
            Some(i) => reply.entry(&TTL, &attr(i as u64 + 2, self.size, false), 0),
            None => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyAttr) {
        if ino == ROOT {
            reply.attr(&TTL, &attr(ROOT, 0, true))
        } else if self.state(ino).is_some() {
            reply.attr(&TTL, &attr(ino, self.size, false))
        } else {
            reply.error(libc::ENOENT)
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let Some(st) = self.state(ino) else {
            return reply.error(libc::ENOENT);
        };
        let tail = st.tail_sectors(&self.log);
        self.open.entry(ino).or_insert((tail, HashMap::new()));
        // No FOPEN_KEEP_CACHE: the kernel drops what it cached of this file,
        // which matches an overlay that starts afresh.
        reply.opened(0, 0)
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _flags: i32,
        _lock: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.open.remove(&ino);
        reply.ok()
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        let off = offset.max(0) as u64;
        let end = (off + size as u64).min(self.size);
        if off >= end {
            return reply.data(&[]);
        }
        let first = off / SECTOR;
        let last = (end - 1) / SECTOR;
        let mut buf = vec![0u8; ((last - first + 1) * SECTOR) as usize];
        for (i, chunk) in buf.chunks_mut(SECTOR as usize).enumerate() {
            self.sector(ino, first + i as u64, chunk);
        }
        let skip = (off - first * SECTOR) as usize;
        reply.data(&buf[skip..skip + (end - off) as usize])
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyWrite,
    ) {
        let off = offset.max(0) as u64;
        if off + data.len() as u64 > self.size || !self.open.contains_key(&ino) {
            return reply.error(libc::ENOSPC);
        }
        let mut at = 0usize;
        while at < data.len() {
            let pos = off + at as u64;
            let s = pos / SECTOR;
            let within = (pos % SECTOR) as usize;
            let n = (SECTOR as usize - within).min(data.len() - at);
            let mut sector = vec![0u8; SECTOR as usize];
            self.sector(ino, s, &mut sector);
            sector[within..within + n].copy_from_slice(&data[at..at + n]);
            if let Some((_, cow)) = self.open.get_mut(&ino) {
                cow.insert(s, sector);
            }
            at += n;
        }
        reply.written(data.len() as u32)
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock: u64, reply: ReplyEmpty) {
        reply.ok()
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        let range = sectors_of(offset, length, self.size);
        let Some((_, cow)) = self.open.get_mut(&ino) else {
            return reply.error(libc::EBADF);
        };
        let Some((off, end)) = range else {
            return reply.error(libc::EOPNOTSUPP);
        };
        for s in off / SECTOR..end / SECTOR {
            cow.insert(s, vec![0u8; SECTOR as usize]);
        }
        reply.ok()
    }

    fn opendir(&mut self, _req: &Request<'_>, _ino: u64, _flags: i32, reply: ReplyOpen) {
        reply.opened(0, 0)
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        reply: ReplyDirectory,
    ) {
        let names = self.states.iter().enumerate();
        list_root(
            ino,
            offset,
            reply,
            names.map(|(i, st)| (i as u64 + 2, st.name.as_str())),
        )
    }
}

/// Serves each of `states` of `log` as a file of `size` bytes at
/// `mountpoint`, until it is unmounted.
pub fn serve(log: Log, size: u64, states: Vec<State>, mountpoint: &Path) -> std::io::Result<()> {
    let fs = Server {
        log,
        size,
        states,
        open: HashMap::new(),
    };
    fuser::mount2(fs, mountpoint, &options("crashlab-serve"))
}

/// Writes the image of `st` to `out` (sparse: only sectors ever written),
/// to keep a failing state for reproduction.
pub fn materialize(log: &Log, size: u64, st: &State, out: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(out)?;
    f.set_len(size)?;
    let tail = st.tail_sectors(log);
    for &s in log.sectors() {
        let at = tail
            .get(&s)
            .copied()
            .or_else(|| log.sector_before(s, st.upto));
        if let Some(at) = at.filter(|&a| a != ZEROED) {
            f.write_all_at(&log.data[at..at + SECTOR as usize], s * SECTOR)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discard_is_whole_sectors_cut_at_the_end_of_the_file() {
        assert_eq!(sectors_of(512, 1024, 4096), Some((512, 1536)));
        assert_eq!(sectors_of(3584, 4096, 4096), Some((3584, 4096)));
        assert_eq!(sectors_of(100, 512, 4096), None);
        assert_eq!(sectors_of(512, 100, 4096), None);
        // Past the end: refused, never a slice that runs backwards.
        assert_eq!(sectors_of(8192, 512, 4096), None);
        assert_eq!(sectors_of(-1, i64::MAX, 4096), Some((0, 4096)));
    }
}
