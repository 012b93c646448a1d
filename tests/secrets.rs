// Secrets: key files made and read without a window for other users
// (`keygen --output`, one descriptor checked before it is read), and the
// PostgreSQL password kept off the command line and out of clear text
// (libpq's PG* variables and password file, TLS tried first, clear-text
// and MD5 password requests refused without verified TLS). The tests that
// need no database run in the fs binary (`tests/secrets.rs`); the ones that
// talk to the test server run in `tests/pg_secrets.rs`, which includes this
// file.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// True (with a note) in the binary of a store these tests are not for: the
/// tests that need no database run once, in the fs binary.
fn not_here(want: &str) -> bool {
    if STORE == want {
        return false;
    }
    eprintln!("skipped on the {STORE} store: this test runs in the {want} binary");
    true
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// `spoolmq keygen ARGS` under `umask`, in directory `dir`.
fn keygen_with_umask(dir: &Path, umask: u32, args: &[&str]) -> Out {
    let mut std = std::process::Command::new(BIN);
    std.current_dir(dir).arg("keygen").args(args);
    // SAFETY: umask is async-signal-safe.
    unsafe {
        std.pre_exec(move || {
            libc::umask(umask as libc::mode_t);
            Ok(())
        });
    }
    let mut cmd = assert_cmd::Command::from_std(std);
    cmd.timeout(RUN_TIMEOUT).write_stdin(Vec::<u8>::new());
    run(&mut cmd)
}

#[test]
fn keygen_output_creates_the_file_0600_whatever_the_umask_and_never_overwrites() {
    if not_here("fs") {
        return;
    }
    let s = Spool::new();
    for (umask, name) in [(0o022, "k022"), (0o000, "k000"), (0o277, "k277")] {
        let out = keygen_with_umask(s.scratch(), umask, &["--output", name]);
        out.ok().stdout_empty();
        let key = s.scratch().join(name);
        assert_eq!(mode(&key), 0o600, "umask {umask:03o}");
        // A key that works.
        keyed(&s, &key, &["push", "q", "x"]).ok();
        assert_eq!(body(&s.pop_json_keyed(&key, "q")), "x");
        s.run(&["purge", "q"]).ok();
        fs::remove_dir_all(&s.dir).unwrap();
    }
    // An existing file is refused and left as it was; so is a symlink,
    // which is not followed.
    let key = s.scratch().join("k022");
    let before = fs::read(&key).unwrap();
    let out = keygen_with_umask(s.scratch(), 0o022, &["--output", "k022"]);
    out.fails(1).stdout_empty();
    assert!(out.error_line().contains("already exists"), "{}", out.error_line());
    assert_eq!(fs::read(&key).unwrap(), before, "the old key is untouched");
    let target = s.scratch().join("target");
    std::os::unix::fs::symlink(&target, s.scratch().join("link")).unwrap();
    keygen_with_umask(s.scratch(), 0o022, &["-o", "link"]).fails(1);
    assert!(!target.exists(), "the link was not followed");
    // A directory that does not exist: one line, exit 1.
    let out = keygen_with_umask(s.scratch(), 0o022, &["-o", "nodir/k"]);
    out.fails(1);
    assert!(out.error_line().contains("nodir/k"), "{}", out.error_line());
    // The stdout form still works.
    let printed = keygen_with_umask(s.scratch(), 0o022, &[]);
    printed.ok();
    assert!(printed.stdout_str().contains("spoolmq-key-v1 "));
    // And the help shows the safe form.
    let help = run(bare_spoolmq().args(["keygen", "--help"]));
    help.ok();
    assert!(help.stdout_str().contains("keygen --output"), "{}", help.stdout_str());
}

#[test]
fn a_key_file_that_is_a_device_a_fifo_a_link_or_huge_is_refused_at_once() {
    if not_here("fs") {
        return;
    }
    let s = Spool::new();
    let fifo = s.scratch().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let real = s.scratch().join("real");
    keygen_with_umask(s.scratch(), 0o077, &["-o", "real"]).ok();
    let link = s.scratch().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let huge = s.scratch().join("huge");
    fs::write(&huge, vec![b'#'; 10 << 20]).unwrap();
    fs::set_permissions(&huge, fs::Permissions::from_mode(0o600)).unwrap();
    for (path, says) in [
        (Path::new("/dev/zero"), "not a regular file"),
        (fifo.as_path(), "not a regular file"),
        (link.as_path(), "symbolic link"),
        (huge.as_path(), "larger than"),
    ] {
        let start = Instant::now();
        let out = keyed(&s, path, &["push", "q", "x"]);
        out.fails(1).stdout_empty();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{} took {:?}",
            path.display(),
            start.elapsed()
        );
        assert!(out.error_line().contains(says), "{}", out.error_line());
    }
    assert!(!s.dir.join("q").exists(), "nothing was pushed");
}

#[test]
fn a_key_file_owned_by_another_user_is_refused() {
    if not_here("fs") {
        return;
    }
    if !is_root() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but not root: this test needs root to chown");
        }
        eprintln!("skipped: needs root (to give the key file to another user)");
        return;
    }
    let s = Spool::new();
    keygen_with_umask(s.scratch(), 0o077, &["-o", "k"]).ok();
    let key = s.scratch().join("k");
    keyed(&s, &key, &["push", "q", "mine"]).ok();
    std::os::unix::fs::chown(&key, Some(54321), None).unwrap();
    let out = keyed(&s, &key, &["pop", "q"]);
    out.fails(1).stdout_empty();
    assert!(out.error_line().contains("uid 54321"), "{}", out.error_line());
    assert_eq!(s.stats("q")["leased"], 0, "nothing was leased");
}

impl SpoolExt for Spool {
    fn pop_json_keyed(&self, key: &Path, q: &str) -> serde_json::Value {
        let out = keyed(self, key, &["pop", q, "--json"]);
        out.ok();
        out.json().remove(0)
    }
}

trait SpoolExt {
    fn pop_json_keyed(&self, key: &Path, q: &str) -> serde_json::Value;
}
