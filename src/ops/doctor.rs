//! `spoolmq doctor`: does the spool's file system keep spoolmq's promises?
//!
//! Each check gives one [`Finding`]: the file-system type (NFS, tmpfs,
//! overlay and FUSE differ in what fsync and rename promise), that a file
//! fsync, a rename and a directory fsync succeed (with a scratch file in the
//! spool, removed again), free space and inodes, the spool's owner and mode,
//! and that the clock is sane.

use crate::queue::now_ms;
use crate::spool::Access;
use crate::spool::Spool;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// The promise may not hold: counts as a problem.
    Problem,
}

/// One check's result, in plain words.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
}

fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        check,
        status: Status::Ok,
        detail: detail.into(),
    }
}

fn problem(check: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        check,
        status: Status::Problem,
        detail: detail.into(),
    }
}

fn statfs(path: &Path) -> Option<libc::statfs> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a valid C string and a zeroed out-parameter of the right type.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        (libc::statfs(c.as_ptr(), &mut s) == 0).then_some(s)
    }
}

/// What spoolmq knows of a file system type.
#[derive(Clone, Copy)]
enum Known {
    /// Power loss replayed at every flush by the crash lab
    /// (docs/CRASHLAB.md): ext4 (ordered and writeback), XFS, btrfs.
    CrashTested,
    /// Local and expected to keep fsync's promises, not crash-tested here.
    Untested,
    /// fsync or rename may not make data durable there.
    Problem,
}

/// The file system type's name, and what is known of it.
fn fs_kind(magic: i64) -> (&'static str, Known) {
    match magic {
        0xEF53 => ("ext2/3/4", Known::CrashTested),
        0x5846_5342 => ("xfs", Known::CrashTested),
        0x9123_683E => ("btrfs", Known::CrashTested),
        0x2FC1_2FC1 => ("zfs", Known::Untested),
        0xF2F5_2010 => ("f2fs", Known::Untested),
        0x6969 => ("nfs", Known::Problem),
        0x0102_1994 => ("tmpfs", Known::Problem),
        0x794C_7630 => ("overlay", Known::Problem),
        0x6573_5546 => ("fuse", Known::Problem),
        0xFF53_4D42 => ("cifs", Known::Problem),
        _ => ("unknown", Known::Untested),
    }
}

/// The nearest existing directory at or above `p`.
fn existing(p: &Path) -> PathBuf {
    let mut cur = p.to_path_buf();
    while !cur.exists() {
        match cur.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => cur = parent.to_path_buf(),
            _ => return PathBuf::from("."),
        }
    }
    cur
}

/// Runs every check on the spool.
pub fn check(spool: &Spool) -> Vec<Finding> {
    let mut out = Vec::new();
    let root = &spool.root;
    let exists = root.is_dir();
    let here = existing(root);
    if !exists {
        out.push(ok(
            "spool",
            format!(
                "{} does not exist yet (the first push creates it); checking {}",
                root.display(),
                here.display()
            ),
        ));
    }
    match statfs(&here) {
        Some(s) => {
            // f_type is i64 here but not on every platform.
            #[allow(clippy::unnecessary_cast)]
            let (name, known) = fs_kind(s.f_type as i64);
            let place = here.display();
            out.push(match known {
                Known::CrashTested => ok(
                    "file system",
                    format!(
                        "{name} ({place}): crash-tested, power loss replayed at every flush (tested: ext4, xfs, btrfs{})",
                        // One magic number covers ext2, ext3 and ext4.
                        if name.starts_with("ext") { "; ext2 and ext3 are not" } else { "" }
                    ),
                ),
                Known::Untested => ok(
                    "file system",
                    format!(
                        "{name} ({place}): a local file system, not crash-tested by spoolmq (tested: ext4, xfs, btrfs)"
                    ),
                ),
                Known::Problem => problem(
                    "file system",
                    format!(
                        "{place} is on {name}, a known problem: fsync or rename may not make data durable there; use a local disk (ext4, xfs, btrfs are crash-tested)"
                    ),
                ),
            });
            let free = s.f_bavail as u128 * s.f_bsize as u128;
            let total = s.f_blocks as u128 * s.f_bsize as u128;
            let mib = free / (1024 * 1024);
            if free < 64 * 1024 * 1024 || (total > 0 && free * 100 < total) {
                out.push(problem(
                    "free space",
                    format!("only {mib} MiB free: pushes will soon fail with a full disk"),
                ));
            } else {
                out.push(ok("free space", format!("{mib} MiB free")));
            }
            if s.f_files > 0 && s.f_ffree * 100 < s.f_files {
                out.push(problem("inodes", format!("only {} inodes free", s.f_ffree)));
            } else {
                out.push(ok("inodes", format!("{} free", s.f_ffree)));
            }
        }
        None => out.push(problem(
            "file system",
            format!("cannot read the file system of {}", here.display()),
        )),
    }
    if exists {
        out.push(owner_and_mode(root));
        out.push(sync_test(root));
    }
    out.push(clock());
    out
}

fn owner_and_mode(root: &Path) -> Finding {
    // The same rule every other command enforces (crate::spool::check_access).
    match crate::spool::check_access(root) {
        Ok(Access::Shared) => ok("ownership", "shared with its group (mode 2770)"),
        Ok(_) => {
            let mode = std::fs::metadata(root).map_or(0, |m| m.mode() & 0o7777);
            ok("ownership", format!("yours, mode {mode:04o}"))
        }
        Err(e) => problem("ownership", e.to_string()),
    }
}

/// Writes, fsyncs, renames and removes a scratch file, fsyncing the directory,
/// through the spool's I/O seam like every other file of the spool
/// ([`crate::base::io::RealFs`]: created exclusively, no link followed).
fn sync_test(root: &Path) -> Finding {
    use crate::base::io::{Fs, Open};
    use std::os::unix::fs::FileExt;
    let tmp = root.join(format!(".doctor-{}", std::process::id()));
    let renamed = root.join(format!(".doctor-{}-renamed", std::process::id()));
    let fs = match crate::base::io::RealFs::beneath(root) {
        Ok(fs) => fs,
        Err(e) => return problem("fsync", format!("{}: {e}", root.display())),
    };
    let run = || -> std::io::Result<()> {
        let f = fs.open_file(&tmp, Open::New, true)?;
        f.write_all_at(b"spoolmq doctor", 0)?;
        f.sync_all()?;
        fs.sync_dir(root)?;
        fs.rename(&tmp, &renamed)?;
        fs.sync_dir(root)?;
        fs.remove_file(&renamed)?;
        fs.sync_dir(root)
    };
    let r = run();
    let _ = fs.remove_file(&tmp);
    let _ = fs.remove_file(&renamed);
    match r {
        Ok(()) => ok("fsync", "file fsync, rename and directory fsync succeed"),
        Err(e) => problem("fsync", format!("{}: {e}", root.display())),
    }
}

fn clock() -> Finding {
    let now = now_ms();
    // 2020-01-01 and 2100-01-01, in ms since the epoch.
    if !(1_577_836_800_000..4_102_444_800_000).contains(&now) {
        return problem(
            "clock",
            format!(
                "the system clock says {now} ms since 1970: leases and delays need a correct clock"
            ),
        );
    }
    ok("clock", "the system clock looks right")
}
