//! A file system for read-only commands: reads come from the spool
//! (through [`RealFs`], so beneath the spool and never through a link), and
//! every write lands in memory and is forgotten when the command ends.
//!
//! `stats`, `peek`, `list`, `export` and `fsck` without `--repair` open the
//! fs store through it. They run the same recovery as any command (adopting
//! records a crashed push left, replaying the WAL, rebuilding what is
//! derived), so they report what a writing command would find, but the
//! files are opened `O_RDONLY` and nothing on disk is created, written,
//! truncated, renamed or removed. So these commands work on a read-only
//! mount (a snapshot, a backup) and can never damage a spool.
//!
//! Invariants:
//! * No call reaches the disk except `openat(O_RDONLY)`, `read`, `fstat`,
//!   `readdir` and `flock` on an existing lock file.
//! * A file is read from disk below `hidden_from` (its length when opened,
//!   lowered by every truncation) and from the pages written in memory;
//!   everything else reads as zeros, as after a real truncate and extend.
//! * Memory grows only with what recovery writes (headers, slots, a segment
//!   header), in 4 KiB pages.

use crate::base::io::{FileIo, Fs, Open, RealFs};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The size of a page written in memory.
const PAGE: u64 = 4096;

/// The spool beneath a [`RealFs`], read-only, with writes kept in memory.
pub struct ReadOnlyFs {
    real: RealFs,
    names: Mutex<Names>,
}

#[derive(Default)]
struct Names {
    /// Every file opened or created so far, by path.
    files: HashMap<PathBuf, Arc<MemFile>>,
    /// Files removed (or renamed away) in memory.
    removed: HashSet<PathBuf>,
    /// Directories made in memory.
    dirs: HashSet<PathBuf>,
}

struct MemFile {
    real: Option<File>,
    pages: Mutex<Pages>,
}

struct Pages {
    len: u64,
    hidden_from: u64,
    written: HashMap<u64, Box<[u8]>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these maps half-changed in a way that
    // matters to a read-only command: go on with what is there.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemFile {
    fn new(real: Option<File>) -> io::Result<MemFile> {
        let len = match &real {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        Ok(MemFile {
            real,
            pages: Mutex::new(Pages {
                len,
                hidden_from: len,
                written: HashMap::new(),
            }),
        })
    }

    /// Fills `buf` with what the disk holds at `at`, zeros past `hidden_from`.
    fn read_disk(&self, p: &Pages, buf: &mut [u8], at: u64) -> io::Result<()> {
        buf.fill(0);
        let Some(f) = &self.real else {
            return Ok(());
        };
        let visible = p.hidden_from.saturating_sub(at).min(buf.len() as u64) as usize;
        let mut done = 0;
        while done < visible {
            match f.read_at(&mut buf[done..visible], at + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The page `n` as it reads now, made writable in memory.
    fn page<'a>(&self, p: &'a mut Pages, n: u64) -> io::Result<&'a mut [u8]> {
        if !p.written.contains_key(&n) {
            let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
            self.read_disk(p, &mut page, n * PAGE)?;
            p.written.insert(n, page);
        }
        p.written
            .get_mut(&n)
            .map(|b| &mut b[..])
            .ok_or_else(|| io::Error::other("page vanished"))
    }
}

impl FileIo for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let p = lock(&self.pages);
        if offset >= p.len {
            return Ok(0);
        }
        let n = (p.len - offset).min(buf.len() as u64) as usize;
        let buf = &mut buf[..n];
        let (first, last) = (offset / PAGE, (offset + n as u64 - 1) / PAGE);
        if (first..=last).all(|i| !p.written.contains_key(&i)) {
            self.read_disk(&p, buf, offset)?;
            return Ok(n);
        }
        let mut done = 0usize;
        while done < n {
            let at = offset + done as u64;
            let (page, within) = (at / PAGE, (at % PAGE) as usize);
            let take = (PAGE as usize - within).min(n - done);
            match p.written.get(&page) {
                Some(bytes) => {
                    buf[done..done + take].copy_from_slice(&bytes[within..within + take])
                }
                None => self.read_disk(&p, &mut buf[done..done + take], at)?,
            }
            done += take;
        }
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut p = lock(&self.pages);
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let within = (at % PAGE) as usize;
            let take = (PAGE as usize - within).min(buf.len() - done);
            self.page(&mut p, at / PAGE)?[within..within + take]
                .copy_from_slice(&buf[done..done + take]);
            done += take;
        }
        p.len = p.len.max(offset + buf.len() as u64);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut p = lock(&self.pages);
        if len < p.len {
            p.written.retain(|&n, _| n * PAGE < len);
            let cut = (len % PAGE) as usize;
            if let Some(page) = p.written.get_mut(&(len / PAGE)) {
                page[cut..].fill(0);
            }
            p.hidden_from = p.hidden_from.min(len);
        }
        p.len = len;
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.pages).len)
    }

    fn punch_hole(&self, _offset: u64, _len: u64) -> io::Result<bool> {
        Ok(false)
    }
}

impl ReadOnlyFs {
    pub fn new(real: RealFs) -> ReadOnlyFs {
        ReadOnlyFs {
            real,
            names: Mutex::new(Names::default()),
        }
    }

    fn get(&self, n: &mut Names, path: &Path, how: Open) -> io::Result<Arc<MemFile>> {
        let exists = |e: io::ErrorKind| Err(io::Error::from(e));
        if let Some(f) = n.files.get(path) {
            return if how == Open::New {
                exists(io::ErrorKind::AlreadyExists)
            } else {
                Ok(f.clone())
            };
        }
        let real = if n.removed.contains(path) {
            None
        } else {
            match self.real.open_file(path, Open::Existing, false) {
                Ok(f) if how == Open::New => {
                    drop(f);
                    return exists(io::ErrorKind::AlreadyExists);
                }
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            }
        };
        if real.is_none() && how == Open::Existing {
            return exists(io::ErrorKind::NotFound);
        }
        let f = Arc::new(MemFile::new(real)?);
        n.removed.remove(path);
        n.files.insert(path.to_path_buf(), f.clone());
        Ok(f)
    }
}

impl Fs for ReadOnlyFs {
    fn open(&self, path: &Path, how: Open) -> io::Result<Arc<dyn FileIo>> {
        let f = self.get(&mut lock(&self.names), path, how)?;
        Ok(f)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut n = lock(&self.names);
        n.files.remove(path);
        n.removed.insert(path.to_path_buf());
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut n = lock(&self.names);
        let f = self.get(&mut n, from, Open::Existing)?;
        n.files.remove(from);
        n.removed.insert(from.to_path_buf());
        n.removed.remove(to);
        n.files.insert(to.to_path_buf(), f);
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        let n = lock(&self.names);
        if n.files.contains_key(path) || n.dirs.contains(path) {
            return Ok(true);
        }
        if n.removed.contains(path) {
            return Ok(false);
        }
        self.real.exists(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let n = lock(&self.names);
        let mut names = match self.real.list(dir) {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::NotFound && n.dirs.contains(dir) => Vec::new(),
            Err(e) => return Err(e),
        };
        names.retain(|name| !n.removed.contains(&dir.join(name)));
        for p in n.files.keys() {
            if p.parent() == Some(dir)
                && let Some(name) = p.file_name().and_then(|s| s.to_str())
                && !names.iter().any(|x| x == name)
            {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        if !self.real.exists(dir)? {
            lock(&self.names).dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }
    fn lock(&self, path: &Path, create: bool) -> io::Result<Option<Box<dyn Send>>> {
        match self.real.lock_file(path, false, true)? {
            Some(l) => Ok(Some(Box::new(l))),
            // Nobody can write where no lock file is (a read-only mount):
            // there is nothing to exclude.
            None if create => Ok(Some(Box::new(()))),
            None => Ok(None),
        }
    }
    fn boot_id(&self) -> [u8; 16] {
        self.real.boot_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool() -> (tempfile::TempDir, ReadOnlyFs) {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), b"0123456789").unwrap();
        let fs = ReadOnlyFs::new(RealFs::beneath(t.path()).unwrap());
        (t, fs)
    }

    fn read_all(f: &dyn FileIo) -> Vec<u8> {
        let mut buf = vec![0u8; f.len().unwrap() as usize];
        let n = f.read_at(&mut buf, 0).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn writes_are_seen_by_reads_and_never_reach_the_disk() {
        let (t, fs) = spool();
        let p = t.path().join("f");
        let f = fs.open(&p, Open::Existing).unwrap();
        f.write_all_at(b"ab", 8).unwrap();
        f.write_all_at(b"XY", 5000).unwrap();
        assert_eq!(f.len().unwrap(), 5002);
        let got = read_all(&*f);
        assert_eq!(&got[..10], b"01234567ab");
        assert!(got[10..5000].iter().all(|&b| b == 0));
        assert_eq!(&got[5000..], b"XY");
        // Truncate, then extend: the disk's bytes past the cut read as zeros.
        f.set_len(3).unwrap();
        f.set_len(10).unwrap();
        assert_eq!(read_all(&*f), b"012\0\0\0\0\0\0\0");
        // The same file when opened again, and nothing changed on disk.
        assert_eq!(read_all(&*fs.open(&p, Open::Existing).unwrap()).len(), 10);
        assert_eq!(std::fs::read(&p).unwrap(), b"0123456789");
    }

    #[test]
    fn files_made_renamed_and_removed_exist_only_in_memory() {
        let (t, fs) = spool();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        let f = fs.open(&a, Open::New).unwrap();
        f.write_all_at(b"new", 0).unwrap();
        fs.rename(&a, &b).unwrap();
        assert!(!fs.exists(&a).unwrap() && fs.exists(&b).unwrap());
        fs.remove_file(&t.path().join("f")).unwrap();
        let mut names = fs.list(t.path()).unwrap();
        names.sort();
        assert_eq!(names, ["b"]);
        assert_eq!(read_all(&*fs.open(&b, Open::Existing).unwrap()), b"new");
        let mut on_disk: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        on_disk.sort();
        assert_eq!(on_disk, ["f"]);
    }
}
