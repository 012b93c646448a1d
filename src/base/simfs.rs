//! A simulated file system that can lose power, for the power-loss tests.
//!
//! It keeps two images of everything: what has been written (what a running
//! program sees) and what is durable. `sync_data` makes a file's data
//! durable; `sync_dir` makes the directory entries created, renamed or removed
//! in that directory durable. [`SimFs::crash`] returns the file system as a
//! machine could find it after losing power: the durable image plus any
//! subset of the unsynced work, as ext4 with default options allows:
//!
//! * each unsynced write or truncate of a file is kept or lost independently
//!   of the others (kept ones apply in order), and the last kept write may be
//!   torn at any byte boundary;
//! * each unsynced create, rename or unlink is kept or lost independently of
//!   later ones.
//!
//! Every mutating call is an *event*; [`SimFs::cut_after`] makes the power
//! fail after the N-th event (every later call fails), so a test can stop a
//! workload at every sync point and between them.

use crate::base::io::{FileIo, Fs, Open};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
enum Op {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Op>,
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(PathBuf, usize),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf),
}

impl DirOp {
    fn dir(&self) -> Option<&Path> {
        match self {
            DirOp::Link(p, _) | DirOp::Unlink(p) | DirOp::Rename(_, p) => p.parent(),
        }
    }
    fn apply(&self, names: &mut BTreeMap<PathBuf, usize>) {
        match self {
            DirOp::Link(p, ino) => {
                names.insert(p.clone(), *ino);
            }
            DirOp::Unlink(p) => {
                names.remove(p);
            }
            DirOp::Rename(from, to) => {
                if let Some(ino) = names.remove(from) {
                    names.insert(to.clone(), ino);
                }
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<PathBuf, usize>,
    durable_names: BTreeMap<PathBuf, usize>,
    dir_ops: Vec<DirOp>,
    events: u64,
    cut_after: Option<u64>,
    boot: u8,
}

impl State {
    /// Counts one mutating event; fails once the power is cut.
    fn event(&mut self) -> io::Result<()> {
        if self.cut_after.is_some_and(|n| self.events >= n) {
            return Err(io::Error::other("simulated power cut"));
        }
        self.events += 1;
        Ok(())
    }
    fn alive(&self) -> io::Result<()> {
        if self.cut_after.is_some_and(|n| self.events >= n) {
            return Err(io::Error::other("simulated power cut"));
        }
        Ok(())
    }
}

fn apply(data: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, bytes } => {
            let end = *offset as usize + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[*offset as usize..end].copy_from_slice(bytes);
        }
        Op::SetLen(len) => data.resize(*len as usize, 0),
    }
}

/// A simulated file system (cheap to clone: clones share the state).
#[derive(Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

/// Decides, for [`SimFs::crash`], which unsynced work survives.
pub trait Chooser {
    /// Whether this piece of unsynced work survives.
    fn keep(&mut self) -> bool;
    /// Where a surviving write is torn (a length in `0..=len`).
    fn tear(&mut self, len: usize) -> usize;
}

impl SimFs {
    pub fn new() -> SimFs {
        SimFs::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Mutating events so far.
    pub fn events(&self) -> u64 {
        self.lock().events
    }

    /// The power fails after `n` more events... counted from the start.
    pub fn cut_after(&self, n: u64) {
        self.lock().cut_after = Some(n);
    }

    /// The file system after a power loss, as `chooser` decides; a new boot.
    pub fn crash(&self, chooser: &mut dyn Chooser) -> SimFs {
        let s = self.lock();
        let mut names = s.durable_names.clone();
        for op in &s.dir_ops {
            if chooser.keep() {
                op.apply(&mut names);
            }
        }
        let mut inodes = Vec::with_capacity(s.inodes.len());
        for ino in &s.inodes {
            let mut data = ino.durable.clone();
            let kept: Vec<&Op> = ino.unsynced.iter().filter(|_| chooser.keep()).collect();
            for (i, op) in kept.iter().enumerate() {
                match op {
                    Op::Write { offset, bytes } if i + 1 == kept.len() => {
                        let n = chooser.tear(bytes.len());
                        apply(
                            &mut data,
                            &Op::Write {
                                offset: *offset,
                                bytes: bytes[..n].to_vec(),
                            },
                        );
                    }
                    op => apply(&mut data, op),
                }
            }
            inodes.push(Inode {
                durable: data.clone(),
                data,
                unsynced: Vec::new(),
            });
        }
        SimFs {
            state: Arc::new(Mutex::new(State {
                inodes,
                durable_names: names.clone(),
                names,
                dir_ops: Vec::new(),
                events: 0,
                cut_after: None,
                boot: s.boot.wrapping_add(1),
            })),
        }
    }

    /// Reads a whole file (for test checks).
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        s.names.get(path).map(|&i| s.inodes[i].data.clone())
    }

    /// Overwrites a file's bytes, durably (for planting damage).
    pub fn poke(&self, path: &Path, offset: usize, byte: u8) {
        let mut s = self.lock();
        if let Some(&i) = s.names.get(path) {
            let ino = &mut s.inodes[i];
            if offset < ino.data.len() {
                ino.data[offset] = byte;
                ino.durable = ino.data.clone();
            }
        }
    }
}

/// xorshift64: the seeded random source of the simulation tests; as a
/// [`Chooser`] it keeps each piece of unsynced work with probability 1/2.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

impl Chooser for XorShift {
    fn keep(&mut self) -> bool {
        self.next_u64().is_multiple_of(2)
    }
    fn tear(&mut self, len: usize) -> usize {
        (self.next_u64() as usize) % (len + 1)
    }
}

struct SimFile {
    fs: SimFs,
    ino: usize,
}

impl FileIo for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let s = self.fs.lock();
        s.alive()?;
        let data = &s.inodes[self.ino].data;
        let from = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - from);
        buf[..n].copy_from_slice(&data[from..from + n]);
        Ok(n)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.event()?;
        let op = Op::Write {
            offset,
            bytes: buf.to_vec(),
        };
        let ino = &mut s.inodes[self.ino];
        apply(&mut ino.data, &op);
        ino.unsynced.push(op);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.event()?;
        let ino = &mut s.inodes[self.ino];
        ino.durable = ino.data.clone();
        ino.unsynced.clear();
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.event()?;
        let ino = &mut s.inodes[self.ino];
        apply(&mut ino.data, &Op::SetLen(len));
        ino.unsynced.push(Op::SetLen(len));
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        let s = self.fs.lock();
        s.alive()?;
        Ok(s.inodes[self.ino].data.len() as u64)
    }
    fn punch_hole(&self, _offset: u64, _len: u64) -> io::Result<bool> {
        Ok(false)
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<Arc<dyn FileIo>> {
        let mut s = self.lock();
        s.alive()?;
        let ino = match (s.names.get(path).copied(), how) {
            (Some(_), Open::New) => return Err(io::ErrorKind::AlreadyExists.into()),
            (Some(i), _) => i,
            (None, Open::Existing) => return Err(io::ErrorKind::NotFound.into()),
            (None, _) => {
                s.event()?;
                let i = s.inodes.len();
                s.inodes.push(Inode::default());
                s.names.insert(path.to_path_buf(), i);
                s.dir_ops.push(DirOp::Link(path.to_path_buf(), i));
                i
            }
        };
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            ino,
        }))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.event()?;
        if s.names.remove(path).is_none() {
            return Err(io::ErrorKind::NotFound.into());
        }
        s.dir_ops.push(DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.event()?;
        let Some(ino) = s.names.remove(from) else {
            return Err(io::ErrorKind::NotFound.into());
        };
        s.names.insert(to.to_path_buf(), ino);
        s.dir_ops
            .push(DirOp::Rename(from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.event()?;
        let ops = std::mem::take(&mut s.dir_ops);
        let mut rest = Vec::new();
        for op in ops {
            if op.dir() == Some(dir) {
                op.apply(&mut s.durable_names);
            } else {
                rest.push(op);
            }
        }
        s.dir_ops = rest;
        Ok(())
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().names.contains_key(path))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        s.alive()?;
        Ok(s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }
    fn mkdir(&self, _dir: &Path) -> io::Result<()> {
        self.lock().alive()
    }
    fn lock(&self, path: &Path, create: bool) -> io::Result<Option<Box<dyn Send>>> {
        if !self.exists(path)? {
            if !create {
                return Ok(None);
            }
            self.open(path, Open::OrCreate)?;
        }
        Ok(Some(Box::new(())))
    }
    fn boot_id(&self) -> [u8; 16] {
        [self.lock().boot.wrapping_add(1); 16]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct All(bool);
    impl Chooser for All {
        fn keep(&mut self) -> bool {
            self.0
        }
        fn tear(&mut self, len: usize) -> usize {
            len
        }
    }

    #[test]
    fn only_synced_data_and_entries_survive_a_crash_that_keeps_nothing() {
        let fs = SimFs::new();
        let d = Path::new("/q");
        let f = fs.open(&d.join("a"), Open::New).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(d).unwrap();
        f.write_all_at(b" world", 5).unwrap();
        let g = fs.open(&d.join("b"), Open::New).unwrap();
        g.write_all_at(b"x", 0).unwrap();
        g.sync_data().unwrap(); // data synced, but its entry is not
        let lost = fs.crash(&mut All(false));
        assert_eq!(lost.read(&d.join("a")).unwrap(), b"hello");
        assert!(lost.read(&d.join("b")).is_none());
        let kept = fs.crash(&mut All(true));
        assert_eq!(kept.read(&d.join("a")).unwrap(), b"hello world");
        assert_eq!(kept.read(&d.join("b")).unwrap(), b"x");
        assert_ne!(lost.boot_id(), fs.boot_id());
    }

    #[test]
    fn the_power_fails_after_the_chosen_event() {
        let fs = SimFs::new();
        let f = fs.open(Path::new("/a"), Open::New).unwrap();
        fs.cut_after(2);
        f.write_all_at(b"1", 0).unwrap();
        assert!(f.write_all_at(b"2", 1).is_err());
        assert!(f.sync_data().is_err());
        assert_eq!(fs.events(), 2);
    }
}
