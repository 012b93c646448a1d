// A hostile member of a shared spool racing spoolmq: a directory inside the
// spool swapped for a symlink (renameat2 RENAME_EXCHANGE, in a tight loop,
// bounded in time) while `init --group` walks the spool and while pushes
// run; hard links, FIFOs and another user's files planted in the spool; and
// the modes files get under a hostile umask. Whatever the racer does,
// nothing outside the spool is created, read or changed. The fs store (the
// one with directories per queue), plus the sqlite database's companions.

use crate::env_fs as common;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Root is needed to make a shared spool of a test group; CI runs as root.
fn needs_root(what: &str) -> bool {
    if is_root() {
        return false;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but not root: {what} cannot be skipped in CI");
    }
    eprintln!("skipped: {what} needs root");
    true
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// Swaps the entries `a` and `b` atomically.
fn exchange(a: &Path, b: &Path) -> bool {
    let (a, b) = (
        CString::new(a.as_os_str().as_bytes()).unwrap(),
        CString::new(b.as_os_str().as_bytes()).unwrap(),
    );
    // SAFETY: renameat2 with NUL-terminated paths; no memory is shared.
    unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        ) == 0
    }
}

/// A thread swapping `dir` and `link` as fast as it can until dropped;
/// dropping it leaves `dir` a directory again.
struct Racer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
    dir: PathBuf,
    link: PathBuf,
}

impl Racer {
    fn start(dir: &Path, link: &Path) -> Racer {
        let stop = Arc::new(AtomicBool::new(false));
        let (d, l, s) = (dir.to_path_buf(), link.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !s.load(Ordering::Relaxed) {
                if exchange(&d, &l) {
                    swaps += 1;
                }
            }
            swaps
        });
        Racer {
            stop,
            thread: Some(thread),
            dir: dir.to_path_buf(),
            link: link.to_path_buf(),
        }
    }

    /// Stops the racer; how many swaps it made.
    fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let swaps = self.thread.take().map_or(0, |t| t.join().unwrap());
        if fs::symlink_metadata(&self.dir).is_ok_and(|m| m.file_type().is_symlink()) {
            assert!(exchange(&self.dir, &self.link));
        }
        swaps
    }
}

impl Drop for Racer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A directory outside the spool holding files named like a queue's, each
/// 0600 and of group 0, with known contents.
fn victim(s: &Spool) -> PathBuf {
    let v = s.scratch().join("victim");
    fs::create_dir(&v).unwrap();
    fs::set_permissions(&v, fs::Permissions::from_mode(0o700)).unwrap();
    for name in ["index", "slots", "wal", "lock", "passwd", "shadow"] {
        let p = v.join(name);
        fs::write(&p, format!("secret {name}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    }
    v
}

/// Everything in the victim directory is as [`victim`] made it.
fn assert_untouched(v: &Path, names: &[&str]) {
    assert_eq!(mode(v), 0o700, "{}", v.display());
    let mut found: Vec<String> = fs::read_dir(v)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want, "nothing is created in {}", v.display());
    for name in names {
        let p = v.join(name);
        let m = fs::symlink_metadata(&p).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.gid(), m.nlink()),
            (0o600, 0, 1),
            "{} changed",
            p.display()
        );
        assert_eq!(fs::read_to_string(&p).unwrap(), format!("secret {name}\n"));
    }
}

const VICTIM_FILES: [&str; 6] = ["index", "slots", "wal", "lock", "passwd", "shadow"];

#[test]
fn init_group_racing_a_directory_swapped_for_a_link_changes_nothing_outside() {
    if needs_root("init --group with a group other than root's") {
        return;
    }
    let s = Spool::new();
    for q in ["a", "b", "c"] {
        s.push(q, &["one", "two"]);
    }
    let v = victim(&s);
    // The link waits outside the spool (in a directory of the attacker's,
    // on the same file system), so the walk meets it only as `b`.
    let link = s.scratch().join("link");
    std::os::unix::fs::symlink(&v, &link).unwrap();
    let mut racer = Racer::start(&s.dir.join("b"), &link);
    let deadline = Instant::now() + Duration::from_secs(4);
    let (mut runs, mut refused) = (0, 0);
    while Instant::now() < deadline && runs < 200 {
        let out = s.run(&["init", "--group", "60100"]);
        runs += 1;
        if out.code != 0 {
            refused += 1;
            assert_eq!(out.code, 1, "{}", out.stderr);
        }
    }
    let swaps = racer.stop();
    eprintln!("{runs} runs of init --group, {refused} refused, {swaps} swaps");
    assert!(swaps > 100, "the racer raced");
    fs::remove_file(&link).unwrap();
    assert_untouched(&v, &VICTIM_FILES);
    // With the racer gone, init finishes and the queues are intact.
    s.run(&["init", "--group", "60100"]).ok();
    for q in ["a", "b", "c"] {
        assert_eq!(bodies(&s.pop_json(q, &["--count", "5"])), ["one", "two"]);
    }
}

#[test]
fn pushes_racing_a_queue_directory_swapped_for_a_link_create_nothing_outside() {
    let s = Spool::new();
    let mut ids = s.push("q", &["first"]);
    let v = victim(&s);
    let link = s.scratch().join("link");
    std::os::unix::fs::symlink(&v, &link).unwrap();
    let mut racer = Racer::start(&s.dir.join("q"), &link);
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut runs = 0;
    while Instant::now() < deadline && runs < 150 {
        let out = s.run(&["push", "q", &format!("body {runs}")]);
        runs += 1;
        match out.code {
            0 => ids.extend(out.lines()),
            1 => {}
            c => panic!("exit {c}: {}", out.stderr),
        }
    }
    let swaps = racer.stop();
    eprintln!("{runs} pushes, {} stored, {swaps} swaps", ids.len() - 1);
    assert!(swaps > 100, "the racer raced");
    fs::remove_file(&link).unwrap();
    assert_untouched(&v, &VICTIM_FILES);
    // Every push that said it stored its message did, in the spool.
    let got = s.pop_json("q", &["--count", "1000"]);
    let mut got_ids: Vec<&str> = got.iter().map(id).collect();
    got_ids.sort();
    ids.sort();
    assert_eq!(got_ids, ids);
    s.run(&["fsck"]).ok();
}

#[test]
fn a_file_with_a_second_name_is_refused_and_never_written() {
    let s = Spool::new();
    s.push("q", &["one"]);
    let other = s.scratch().join("elsewhere");
    fs::hard_link(s.queue_dir("q").join("wal"), &other).unwrap();
    let before = fs::read(&other).unwrap();
    for args in [
        vec!["push", "q", "two"],
        vec!["pop", "q"],
        vec!["stats", "q"],
    ] {
        let out = s.run(&args);
        out.fails(1);
        assert!(
            out.error_line().contains("q/wal") && out.error_line().contains("2 hard links"),
            "{}",
            out.error_line()
        );
    }
    assert_eq!(fs::read(&other).unwrap(), before);
    // Removing the planted name mends it.
    fs::remove_file(&other).unwrap();
    assert_eq!(body(&s.pop_one("q", &[])), "one");
}

#[test]
fn init_group_refuses_a_planted_hard_link_before_changing_anything() {
    if needs_root("init --group with a group other than root's") {
        return;
    }
    let s = Spool::new();
    s.push("q", &["one"]);
    let v = victim(&s);
    fs::hard_link(v.join("shadow"), s.queue_dir("q").join("planted")).unwrap();
    let out = s.run(&["init", "--group", "60100"]);
    out.fails(1);
    assert!(
        out.error_line().contains("hard links"),
        "{}",
        out.error_line()
    );
    // Checked before anything changed: the spool is still private.
    assert_eq!(mode(&s.dir), 0o700);
    fs::remove_file(s.queue_dir("q").join("planted")).unwrap();
    assert_untouched(&v, &VICTIM_FILES);
}

#[test]
fn a_fifo_planted_as_a_spool_file_is_refused_at_once() {
    let s = Spool::new();
    s.push("q", &["one"]);
    for planted in [s.dir.join(".spool.lock"), s.queue_dir("q").join("index")] {
        let saved = s.scratch().join("saved");
        fs::rename(&planted, &saved).unwrap();
        let c = CString::new(planted.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for args in [vec!["push", "q", "two"], vec!["init"], vec!["stats"]] {
            let started = Instant::now();
            let out = s.run(&args);
            assert!(started.elapsed() < Duration::from_secs(10), "{args:?} hung");
            if args[0] == "init" {
                // init opens neither file: it must only not hang.
                out.ok();
                continue;
            }
            out.fails(1);
            assert!(
                out.error_line().contains("is a FIFO"),
                "{}",
                out.error_line()
            );
        }
        fs::remove_file(&planted).unwrap();
        fs::rename(&saved, &planted).unwrap();
    }
    assert_eq!(body(&s.pop_one("q", &[])), "one");
}

#[test]
fn files_are_0600_whatever_the_umask() {
    let s = Spool::new();
    let sh = |cmd: &str| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask 277; exec \"$0\" --dir \"$1\" {cmd}"))
            .arg(BIN)
            .arg(&s.dir)
            .env("SPOOLMQ_STORE", "fs")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    sh("push q one");
    sh("push q two");
    let popped = sh("pop q --json");
    let m: serde_json::Value = serde_json::from_str(popped.trim()).unwrap();
    sh(&format!("ack q {}", receipt(&m)));
    assert_eq!(mode(&s.dir), 0o700);
    for e in fs::read_dir(&s.dir)
        .unwrap()
        .chain(fs::read_dir(s.queue_dir("q")).unwrap())
    {
        let p = e.unwrap().path();
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{}", p.display());
    }
}

#[test]
fn the_sqlite_database_with_a_second_name_is_refused() {
    let s = Spool::new();
    run(spoolmq(&s.dir)
        .env("SPOOLMQ_STORE", "sqlite")
        .args(["push", "q", "one"]))
    .ok();
    let other = s.scratch().join("elsewhere.db");
    fs::hard_link(s.dir.join(".spool.db"), &other).unwrap();
    let out = run(spoolmq(&s.dir)
        .env("SPOOLMQ_STORE", "sqlite")
        .args(["pop", "q"]));
    out.fails(1);
    assert!(
        out.error_line().contains("hard links"),
        "{}",
        out.error_line()
    );
    fs::remove_file(&other).unwrap();
    let out = run(spoolmq(&s.dir)
        .env("SPOOLMQ_STORE", "sqlite")
        .args(["pop", "q"]));
    out.ok();
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Mount {
        fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount a tmpfs at {}", at.display());
        Mount(at.to_path_buf())
    }

    fn read_only(&self) {
        let ok = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {} read-only", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn read_only_commands_work_on_a_read_only_mount() {
    if needs_root("mounting a tmpfs") {
        return;
    }
    for store in ["fs", "sqlite"] {
        let t = tempfile::tempdir().unwrap();
        let m = Mount::tmpfs(&t.path().join("mnt"));
        let dir = m.0.join("spool");
        let sm = |args: &[&str]| run(spoolmq(&dir).env("SPOOLMQ_STORE", store).args(args));
        sm(&["push", "q", "one", "two", "three"]).ok();
        sm(&["pop", "q"]).ok();
        let q = dir.join("q");
        let before: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&dir)
            .unwrap()
            .chain(fs::read_dir(&q).into_iter().flatten())
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| (p.clone(), fs::read(&p).unwrap()))
            .collect();
        m.read_only();
        let stats = sm(&["stats", "q", "--json"]);
        stats.ok();
        assert_counts(
            &stats.json()[0],
            &[("ready", 2), ("leased", 1), ("pushed", 3)],
        );
        assert_eq!(
            bodies(&sm(&["peek", "q", "--count", "5", "--json"]).json()),
            ["two", "three"],
            "{store}"
        );
        assert_eq!(sm(&["list"]).lines(), ["q"], "{store}");
        sm(&["fsck"]).ok();
        assert_eq!(sm(&["export", "q"]).lines().len(), 3, "{store}");
        let out = sm(&["pop", "q"]);
        out.fails(1);
        assert!(
            out.error_line().contains("ead-only") || out.error_line().contains("readonly"),
            "{store}: {}",
            out.error_line()
        );
        for (p, bytes) in before {
            assert_eq!(fs::read(&p).unwrap(), bytes, "{store}: {}", p.display());
        }
    }
}

#[test]
fn read_only_commands_leave_a_torn_tail_for_the_next_writer() {
    let s = Spool::new();
    s.push("q", &["one", "two"]);
    let seg = s.segment_files("q")[0].clone();
    let mut bytes = fs::read(&seg).unwrap();
    bytes.extend_from_slice(b"half a record");
    fs::write(&seg, &bytes).unwrap();
    let wal = fs::read(s.queue_dir("q").join("wal")).unwrap();
    let index = fs::read(s.queue_dir("q").join("index")).unwrap();
    for args in [
        vec!["stats"],
        vec!["peek", "q"],
        vec!["list"],
        vec!["fsck"],
        vec!["export", "q"],
    ] {
        s.run(&args).ok();
        assert_eq!(fs::read(&seg).unwrap(), bytes, "{args:?} wrote the segment");
        assert_eq!(
            fs::read(s.queue_dir("q").join("index")).unwrap(),
            index,
            "{args:?} wrote the index"
        );
        assert_eq!(
            fs::read(s.queue_dir("q").join("wal")).unwrap(),
            wal,
            "{args:?} wrote the wal"
        );
    }
    // The next writer cuts it, and says so.
    let out = s.run(&["pop", "q"]);
    out.ok();
    assert!(out.stderr.contains("torn"), "{}", out.stderr);
    assert!(fs::read(&seg).unwrap().len() < bytes.len());
}
