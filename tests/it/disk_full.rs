//! Proves that a full disk never leaves a half-done change: `push` (one body, several, a big
//! one, `--lines`), `pop`, `ack`, `nack`, `extend`, `retry` and `purge` run under a file-size
//! limit (RLIMIT_FSIZE with SIGXFSZ ignored, so writes fail with EFBIG) and on a small tmpfs
//! that is full exit 1 with one line saying the disk is full and where, the queue is exactly as
//! before (no partial message visible, segment length unchanged, leases kept), and once space
//! is back later commands work and every earlier message is intact.

use crate::env_fs as common;

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use common::*;
use serde_json::Value;

const Q: &str = "q";

/// Makes `cmd` run with RLIMIT_FSIZE = `limit` bytes and SIGXFSZ ignored.
fn limit_file_size(cmd: &mut std::process::Command, limit: u64) {
    // SAFETY: signal and setrlimit are async-signal-safe; nothing else runs between fork and
    // exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rl = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `spoolmq --dir <spool> ARGS` under a file-size limit, with `stdin`.
fn limited(s: &Spool, limit: u64, args: &[&str], stdin: &[u8]) -> Out {
    let mut std = s.std_cmd();
    std.args(args);
    limit_file_size(&mut std, limit);
    let mut cmd = Command::from_std(std);
    cmd.timeout(RUN_TIMEOUT).write_stdin(stdin.to_vec());
    run(&mut cmd)
}

/// Exit 1, no stdout, one line that says the disk is full and names a file in `under`.
#[track_caller]
fn says_disk_full(out: &Out, under: &Path) {
    out.fails(1);
    out.stdout_empty();
    let line = out.error_line();
    assert!(
        line.contains("disk full"),
        "`spoolmq {}`: the line must say the disk is full: {line:?}",
        out.what
    );
    assert!(
        line.contains(&under.display().to_string()),
        "`spoolmq {}`: the line must say where ({}): {line:?}",
        out.what,
        under.display()
    );
}

/// Everything a user can see of a queue, plus the length of each segment file.
#[derive(Debug, PartialEq)]
struct Snapshot {
    stats: Vec<(String, Value)>,
    peek: Vec<(String, u64, Vec<u8>)>,
    segments: Vec<(PathBuf, u64)>,
    list: String,
}

fn snapshot(s: &Spool, q: &str) -> Snapshot {
    let out = s.run(&["stats", q, "--json"]);
    out.ok();
    let v = &out.json()[0];
    let stats = [
        "ready", "leased", "delayed", "dead", "pushed", "acked", "purged", "corrupt", "bytes",
        "segments",
    ]
    .iter()
    .map(|k| (k.to_string(), v[*k].clone()))
    .collect();
    let peek = s
        .peek_json(q, &["--count", "100000"])
        .iter()
        .map(|m| (id(m).to_string(), attempt(m), body_bytes(m)))
        .collect();
    let segments = s
        .segment_files(q)
        .into_iter()
        .map(|p| {
            let len = fs::metadata(&p).unwrap().len();
            (p, len)
        })
        .collect();
    let list = s.run(&["list"]);
    list.ok();
    Snapshot {
        stats,
        peek,
        segments,
        list: list.stdout_str(),
    }
}

#[track_caller]
fn assert_unchanged(before: &Snapshot, s: &Spool, q: &str, what: &str) {
    let after = snapshot(s, q);
    assert_eq!(
        before.stats, after.stats,
        "{what}: stats changed by a failed command"
    );
    assert_eq!(before.list, after.list, "{what}: list changed");
    assert_eq!(
        before.segments, after.segments,
        "{what}: segment files or lengths changed"
    );
    assert!(
        before.peek == after.peek,
        "{what}: the ready messages changed: {} before, {} after",
        before.peek.len(),
        after.peek.len()
    );
}

/// Pops everything (long lease) and returns the bodies, oldest first.
fn pop_all(s: &Spool, q: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let r = s.run(&["pop", q, "--json", "--count", "100000", "--lease", "1h"]);
        if r.code == 3 {
            return out;
        }
        r.ok();
        out.extend(r.json().iter().map(body_bytes));
    }
}

fn queue_len(s: &Spool, q: &str) -> u64 {
    fs::metadata(&s.segment_files(q)[0]).unwrap().len()
}

#[test]
fn a_first_push_that_cannot_create_the_index_fails_cleanly_and_leaves_no_queue() {
    let s = Spool::new();
    let out = limited(&s, 1000, &["push", Q, "hello"], b"");
    says_disk_full(&out, &s.dir);
    s.pop_nothing(Q, &[]);
    assert_eq!(s.peek_json(Q, &[]).len(), 0);
    s.run(&["stats", Q]).fails(1);
    assert_eq!(s.run(&["list"]).stdout_str(), "", "no queue is listed");
    s.run(&["fsck"]).ok();
    // Space is back: the same push works.
    let ids = s.push(Q, &["hello"]);
    let m = s.pop_one(Q, &[]);
    assert_eq!((id(&m), body(&m)), (ids[0].as_str(), "hello"));
    s.run(&["fsck"]).ok();
}

#[test]
fn a_first_push_whose_segment_cannot_be_written_fails_cleanly_and_leaves_no_queue() {
    let s = Spool::new();
    // Room for the index (4 x 64 KiB), not for a 400 kB body.
    let big = Rng(7).text(400_000);
    let out = limited(&s, 300_000, &["push", Q], &big);
    says_disk_full(&out, &s.dir);
    s.pop_nothing(Q, &[]);
    assert_eq!(s.peek_json(Q, &[]).len(), 0);
    assert!(
        s.segment_files(Q)
            .iter()
            .all(|p| fs::metadata(p).unwrap().len() <= 16),
        "no record bytes are left behind"
    );
    s.run(&["fsck"]).ok();
    // The contract: "A queue exists once something was pushed to it".
    let list = s.run(&["list"]);
    list.ok();
    assert_eq!(
        list.stdout_str(),
        "",
        "a push that failed for a full disk must not leave an (empty) queue behind"
    );
    s.run(&["stats", Q]).fails(1);
    // Space is back.
    let id0 = s.push_stdin(Q, &big);
    let m = s.pop_one(Q, &[]);
    assert_eq!(id(&m), id0);
    assert_eq!(body_bytes(&m), big);
}

#[test]
fn a_push_that_would_cross_the_limit_leaves_the_queue_exactly_as_before() {
    let s = Spool::new();
    let mut rng = Rng(11);
    let early: Vec<String> = (0..20)
        .map(|i| format!("early-{i}-{}", String::from_utf8(rng.text(50)).unwrap()))
        .collect();
    let early_refs: Vec<&str> = early.iter().map(String::as_str).collect();
    s.push(Q, &early_refs);
    // Some state in the WAL too: one acked, one leased.
    let m = s.pop_one(Q, &[]);
    s.ack(Q, &[receipt(&m)]);
    let leased = s.pop_one(Q, &["--lease", "1h"]);
    let seg_dir = s.queue_dir(Q);

    // Limits that leave no room, room for part of a record header, for the header and part
    // of the body, and one byte short of the whole record.
    let body = rng.text(3000);
    let len = queue_len(&s, Q);
    for (i, limit) in [len, len + 20, len + 40 + 1500, len + 40 + 3000 - 1]
        .into_iter()
        .enumerate()
    {
        let before = snapshot(&s, Q);
        let out = limited(&s, limit, &["push", Q], &body);
        says_disk_full(&out, &seg_dir);
        assert_unchanged(
            &before,
            &s,
            Q,
            &format!("case {i}: one body, limit {limit}"),
        );
        // Several bodies, the last one crossing the limit: none of them becomes visible.
        let small = String::from_utf8(rng.text(100)).unwrap();
        let large = String::from_utf8(rng.text(3000)).unwrap();
        let out = limited(
            &s,
            limit.max(len + 300),
            &["push", Q, &small, &small, &large],
            b"",
        );
        says_disk_full(&out, &seg_dir);
        assert_unchanged(&before, &s, Q, &format!("case {i}: three bodies"));
        // A body larger than the limit by far.
        let huge = rng.text(1 << 20);
        let out = limited(&s, 300_000, &["push", Q], &huge);
        says_disk_full(&out, &seg_dir);
        assert_unchanged(&before, &s, Q, &format!("case {i}: 1 MiB body"));
        s.run(&["fsck"]).ok();
    }

    // Space is back: pushes work, every earlier message is intact and the lease still holds.
    let ids = s.push(Q, &["after"]);
    assert_eq!(ids.len(), 1);
    let mut expected: Vec<Vec<u8>> = early[2..].iter().map(|b| b.as_bytes().to_vec()).collect();
    expected.push(b"after".to_vec());
    assert_eq!(pop_all(&s, Q), expected);
    s.ack(Q, &[receipt(&leased)]);
    assert_counts(&s.stats(Q), &[("pushed", 21), ("acked", 2), ("ready", 0)]);
    s.run(&["fsck"]).ok();
}

#[test]
fn push_lines_under_a_limit_pushes_nothing_partial() {
    let s = Spool::new();
    s.push(Q, &["first"]);
    let seg_dir = s.queue_dir(Q);
    let mut rng = Rng(13);
    // 5000 lines arriving at once are one batch: all or nothing.
    let mut input = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..5000 {
        let l = rng.text(100);
        input.extend_from_slice(&l);
        input.push(b'\n');
        lines.push(l);
    }
    let before = snapshot(&s, Q);
    let len = queue_len(&s, Q);
    let out = limited(&s, len + 100_000, &["push", Q, "--lines"], &input);
    out.code(1);
    let printed = out.lines();
    // Ids printed are pushed; the rest are not.
    let line = out.error_line();
    assert!(line.contains("disk full"), "{line:?}");
    assert!(line.contains(&seg_dir.display().to_string()), "{line:?}");
    let got = pop_all(&s, Q);
    assert_eq!(got[0], b"first");
    assert_eq!(
        got.len() - 1,
        printed.len(),
        "exactly the printed ids were pushed"
    );
    assert_eq!(&got[1..], &lines[..printed.len()]);
    if printed.is_empty() {
        // The common case: one batch, nothing visible, segment as before.
        assert_eq!(before.segments, snapshot(&s, Q).segments);
    }
    s.run(&["fsck"]).ok();
    // Space is back: the same input goes in whole.
    let out = s.run_stdin(&["push", Q, "--lines"], &input);
    out.ok();
    assert_eq!(out.lines().len(), 5000);
    assert_eq!(pop_all(&s, Q), lines);
    s.run(&["fsck"]).ok();
}

/// `n` distinct 1000-byte lines (a counter, then random letters): the
/// input with newlines, and the lines.
fn numbered_lines(n: usize, seed: u64) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut rng = Rng(seed);
    let mut input = Vec::new();
    let mut lines = Vec::new();
    for i in 0..n {
        let mut l = format!("{i:05}-").into_bytes();
        l.extend(rng.text(994));
        input.extend_from_slice(&l);
        input.push(b'\n');
        lines.push(l);
    }
    (input, lines)
}

#[test]
fn push_lines_that_fill_the_disk_midway_keep_exactly_the_batches_whose_ids_were_printed() {
    let s = Spool::new();
    s.push(Q, &["first"]);
    // 12 MB of 1000-byte lines: more than one 8 MiB batch; the limit stops the second.
    let (input, lines) = numbered_lines(12_000, 17);
    let out = limited(&s, 10_000_000, &["push", Q, "--lines"], &input);
    out.code(1);
    let line = out.error_line();
    assert!(line.contains("disk full"), "{line:?}");
    let printed = out.lines();
    assert!(printed.len() < lines.len(), "not everything fits");
    let got = pop_all(&s, Q);
    assert_eq!(got[0], b"first");
    assert_eq!(
        got.len() - 1,
        printed.len(),
        "exactly the messages whose ids were printed are in the queue"
    );
    assert!(got[1..] == lines[..printed.len()], "in order, intact");
    s.run(&["fsck"]).ok();
    s.push(Q, &["later"]);
    assert_eq!(pop_all(&s, Q), [b"later".to_vec()]);
}

#[test]
fn push_lines_whose_ids_cannot_be_written_stop_and_say_so() {
    let s = Spool::new();
    // 25 MB of 1000-byte lines: three 8 MiB batches and a bit.
    let (input, lines) = numbered_lines(25_000, 23);
    let input_file = s.scratch().join("input");
    fs::create_dir_all(s.scratch()).unwrap();
    fs::write(&input_file, &input).unwrap();
    // Ids go to a device that is always full.
    let mut cmd = s.std_cmd();
    cmd.args(["push", Q, "--lines"])
        .stdin(fs::File::open(&input_file).unwrap())
        .stdout(fs::File::create("/dev/full").unwrap());
    // (assert_cmd would capture stdout; std keeps the one given.)
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("<stdout>") && stderr.contains("disk full"),
        "{stderr}"
    );
    // It stopped: the batch whose ids could not be written and at most the
    // one being pushed meanwhile are stored, whole and in order.
    let got = pop_all(&s, Q);
    assert!(!got.is_empty() && got.len() < lines.len(), "{}", got.len());
    assert!(
        got.len() <= 2 * 8_700,
        "more than two batches: {}",
        got.len()
    );
    assert!(
        got[..] == lines[..got.len()],
        "a prefix of the input, in order"
    );
    s.run(&["fsck"]).ok();
}

#[test]
fn state_changes_that_cannot_grow_the_wal_fail_with_disk_full_and_change_nothing() {
    let s = Spool::new();
    s.push(Q, &["a", "b", "c", "d", "e"]);
    let m1 = s.pop_one(Q, &["--lease", "1h"]);
    let m2 = s.pop_one(Q, &["--lease", "1h"]);
    // c becomes a dead letter; d and e stay ready.
    let c = s.pop_one(Q, &["--max-attempts", "1"]);
    s.nack(Q, &[receipt(&c)], &["--max-attempts", "1"]);
    assert_counts(&s.stats(Q), &[("leased", 2), ("dead", 1), ("ready", 2)]);
    let wal = s.queue_dir(Q).join("wal");
    let wal_len = fs::metadata(&wal).unwrap().len();
    assert!(wal_len > 0, "the WAL holds the changes so far");
    let (r1, r2) = (receipt(&m1).to_string(), receipt(&m2).to_string());
    let cases: Vec<Vec<&str>> = vec![
        vec!["ack", Q, &r1],
        vec!["ack", Q, &r1, &r2],
        vec!["nack", Q, &r2],
        vec!["nack", Q, &r2, "--delay", "1m"],
        vec!["extend", Q, &r1, "--lease", "2h"],
        vec!["pop", Q],
        vec!["pop", Q, "--count", "3"],
        vec!["retry", Q],
        vec!["purge", Q],
        vec!["purge", Q, "--dead"],
    ];
    for limit in [wal_len, wal_len + 10] {
        for args in &cases {
            let before = snapshot(&s, Q);
            let out = limited(&s, limit, args, b"");
            says_disk_full(&out, &wal);
            assert_unchanged(&before, &s, Q, &format!("{args:?} under limit {limit}"));
            assert_eq!(
                fs::metadata(&wal).unwrap().len(),
                wal_len,
                "{args:?}: no torn WAL record is left behind"
            );
        }
    }
    s.run(&["fsck"]).ok();
    // Space is back: the same receipts still work.
    s.ack(Q, &[&r1]);
    s.nack(Q, &[&r2], &[]);
    s.run(&["retry", Q]).ok();
    let rest = pop_all(&s, Q);
    let expected: Vec<Vec<u8>> = ["b", "c", "d", "e"]
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .collect();
    assert_eq!(rest, expected, "every message where it was");
    s.run(&["fsck"]).ok();
}

/// With a limit of 64 KiB every file the commands append to stays small, but the index's
/// second live header copy (at 64 KiB) cannot be written: a push or an ack may fail at its
/// very last step. Its exit status must then say what really happened: exit 0 and the change
/// is there, or exit 1 ("nothing was changed") and the queue is as before.
#[test]
fn a_failure_at_the_index_write_reports_what_really_happened() {
    let s = Spool::new();
    s.push(Q, &["a", "b", "c", "d", "e", "f"]);
    let mut problems = Vec::new();
    for i in 0..4 {
        let body = format!("try{i}");
        let before = num(&s.stats(Q), "pushed");
        let out = limited(&s, 64 * 1024, &["push", Q, &body], b"");
        let after = num(&s.stats(Q), "pushed");
        let visible = s
            .peek_json(Q, &["--count", "1000"])
            .iter()
            .any(|m| body_bytes(m) == body.as_bytes());
        if out.code == 0 {
            assert!(
                visible && after == before + 1,
                "push {i}: exit 0 and not visible"
            );
        } else {
            says_disk_full(&out, &s.dir);
            if visible || after != before {
                problems.push(format!(
                    "push {body:?} exited 1 ({}) yet the message is in the queue",
                    out.stderr.trim()
                ));
            }
        }
    }
    let msgs = s.pop_json(Q, &["--count", "4", "--lease", "1h"]);
    for m in &msgs {
        let before = num(&s.stats(Q), "acked");
        let out = limited(&s, 64 * 1024, &["ack", Q, receipt(m)], b"");
        let after = num(&s.stats(Q), "acked");
        if out.code == 0 {
            assert_eq!(after, before + 1, "ack exit 0 and not acked");
        } else {
            says_disk_full(&out, &s.dir);
            if after != before {
                problems.push(format!(
                    "ack exited 1 ({}) yet the message was acked",
                    out.stderr.trim()
                ));
            } else {
                // Nothing changed: the receipt still works.
                s.ack(Q, &[receipt(m)]);
            }
        }
    }
    s.run(&["fsck"]).ok();
    assert!(
        problems.is_empty(),
        "a failed command must leave the queue as before:\n{}",
        problems.join("\n")
    );
}

#[test]
fn an_error_that_cannot_be_written_to_a_full_stderr_is_still_exit_1_not_a_panic() {
    let s = Spool::new();
    s.push(Q, &["kept"]);
    // stderr is a log file already past the limit (like `2>>log` on a full disk).
    let log = s.scratch().join("err.log");
    fs::write(&log, vec![b'x'; 5000]).unwrap();
    let err = fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut cmd = s.std_cmd();
    cmd.args(["push", Q])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(err);
    limit_file_size(&mut cmd, 1000);
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&Rng(3).text(4000))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "push hung");
        sleep_ms(10);
    };
    assert_eq!(
        status.code(),
        Some(1),
        "a push that fails on a full disk exits 1 even when its error line cannot be written \
         (101 is a Rust panic): {status:?}"
    );
    assert_eq!(pop_all(&s, Q), [b"kept".to_vec()]);
}

// ---------------------------------------------------------------- a real small filesystem

/// A 2 MiB tmpfs mounted for the test; unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(at: PathBuf) -> Result<Tmpfs, String> {
        fs::create_dir_all(&at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs"])
            .arg(&at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir: at })
    }
}

impl Tmpfs {
    /// A 2 MiB tmpfs in `s`'s scratch directory, or `None` (having said the
    /// test is skipped) where it cannot be mounted: not root. CI runs as
    /// root, so there it is a failure.
    fn mount_or_skip(s: &Spool) -> Option<Tmpfs> {
        match Tmpfs::mount(s.scratch().join("mnt")) {
            Ok(m) => Some(m),
            Err(why) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI runs as root and must mount a tmpfs: {why}"
                );
                println!("skipped: cannot mount a small tmpfs here ({why}); run as root");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}

/// Fills the file system holding `path` with `path` until a write fails; returns its length.
fn fill(path: &Path) -> u64 {
    let mut f = fs::File::create(path).unwrap();
    let chunk = vec![0x5a; 4096];
    let mut len = 0;
    while let Ok(n) = f.write(&chunk) {
        if n == 0 {
            break;
        }
        len += n as u64;
    }
    len
}

#[test]
fn on_a_full_small_filesystem_pushes_fail_cleanly_and_work_again_once_space_is_back() {
    let s = Spool::new();
    let Some(mnt) = Tmpfs::mount_or_skip(&s) else {
        return;
    };
    let spool = mnt.dir.join("spool");
    let sp = |args: &[&str], stdin: &[u8]| -> Out {
        let mut cmd = spoolmq(&spool);
        cmd.args(args).write_stdin(stdin.to_vec());
        run(&mut cmd)
    };
    let mut rng = Rng(23);
    let early: Vec<Vec<u8>> = (0..10).map(|_| rng.text(2000)).collect();
    for b in &early {
        sp(&["push", Q], b).ok();
    }
    let m = {
        let out = sp(&["pop", Q, "--json", "--lease", "1h"], b"");
        out.ok();
        out.json().remove(0)
    };
    let seg = spool.join(Q).join("00000000000000000001.seg");
    let view = |what: &str| -> (String, String, u64) {
        let st = sp(&["stats", Q, "--json"], b"");
        st.ok();
        let mut v = st.json().remove(0);
        v.as_object_mut().unwrap().remove("disk_bytes");
        v.as_object_mut().unwrap().remove("oldest_ready_age_ms");
        let pk = sp(&["peek", Q, "--json", "--count", "1000"], b"");
        pk.ok();
        let len = fs::metadata(&seg)
            .unwrap_or_else(|e| panic!("{what}: segment: {e}"))
            .len();
        (v.to_string(), pk.stdout_str(), len)
    };

    let filler = mnt.dir.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0);
    // Leave a little room (less than the next push needs), then completely full.
    for room in [0, 48 * 1024u64] {
        let f = fs::OpenOptions::new().write(true).open(&filler).unwrap();
        f.set_len(filled - room).unwrap();
        drop(f);
        let before = view("before");
        let big = rng.text(200_000);
        let out = sp(&["push", Q], &big);
        says_disk_full(&out, &spool);
        assert_eq!(view("after a big push"), before, "room {room}: big push");
        let mut lines = Vec::new();
        for _ in 0..3000 {
            lines.extend(rng.text(99));
            lines.push(b'\n');
        }
        let out = sp(&["push", Q, "--lines"], &lines);
        says_disk_full(&out, &spool);
        assert_eq!(
            view("after push --lines"),
            before,
            "room {room}: push --lines"
        );
        // A new queue cannot be started either, and shows no message.
        let out = sp(&["push", "other"], &big);
        says_disk_full(&out, &spool);
        let pk = sp(&["peek", "other", "--json"], b"");
        pk.ok().stdout_empty();
        let pop = sp(&["pop", "other"], b"");
        pop.code(3).stdout_empty();
        // Small state changes may still fit in pages already allocated; if not, they fail
        // cleanly and the lease is kept.
        let out = sp(&["extend", Q, receipt(&m), "--lease", "1h"], b"");
        if out.code != 0 {
            says_disk_full(&out, &spool);
        }
    }
    sp(&["fsck"], b"").ok();
    fs::remove_file(&filler).unwrap();
    // Space is back.
    let after = rng.text(200_000);
    sp(&["push", Q], &after).ok();
    sp(&["ack", Q, receipt(&m)], b"").ok();
    let mut got = Vec::new();
    loop {
        let out = sp(
            &["pop", Q, "--json", "--count", "1000", "--lease", "1h"],
            b"",
        );
        if out.code == 3 {
            break;
        }
        out.ok();
        got.extend(out.json().iter().map(body_bytes));
    }
    let mut expected = early[1..].to_vec();
    expected.push(after);
    assert!(
        got == expected,
        "every earlier message is intact, then the new one"
    );
    sp(&["fsck"], b"").ok();
}

/// The case: pushes of 10 KB bodies fill a 2 MiB tmpfs (with some ballast) until one
/// is refused. Every refused push says "disk full" and stores nothing; then every message
/// pushed can still be popped and acked, one command at a time (the fs store keeps a reserve
/// for consuming, see docs/DURABILITY.md), and the drained queue gives its space back.
#[test]
fn a_queue_that_filled_a_small_filesystem_can_always_be_drained() {
    let s = Spool::new();
    let Some(mnt) = Tmpfs::mount_or_skip(&s) else {
        return;
    };
    let spool = mnt.dir.join("spool");
    let sp = |args: &[&str], stdin: &[u8]| -> Out {
        let mut cmd = spoolmq(&spool);
        cmd.args(args).write_stdin(stdin.to_vec());
        run(&mut cmd)
    };
    fs::write(mnt.dir.join("ballast"), vec![0xb5; 300 * 1024]).unwrap();
    let mut rng = Rng(41);
    let mut pushed: Vec<(String, Vec<u8>)> = Vec::new();
    let mut refused = 0;
    while refused < 3 {
        assert!(pushed.len() < 400, "a 2 MiB tmpfs holds fewer 10 KB bodies");
        let mut body = format!("{:05}:", pushed.len()).into_bytes();
        body.extend(rng.text(10_000));
        let out = sp(&["push", Q], &body);
        if out.code == 0 {
            pushed.push((out.stdout_str().trim().to_string(), body));
        } else {
            says_disk_full(&out, &spool);
            refused += 1;
        }
    }
    assert!(pushed.len() > 100, "only {} pushes fitted", pushed.len());
    let st = sp(&["stats", Q, "--json"], b"");
    st.ok();
    assert_eq!(
        num(&st.json()[0], "pushed"),
        pushed.len() as u64,
        "the refused pushes stored nothing"
    );
    // A consumer drains it, one pop and one ack per command.
    let mut got = Vec::new();
    loop {
        let out = sp(&["pop", Q, "--json", "--lease", "1h"], b"");
        if out.code == 3 {
            out.stdout_empty();
            break;
        }
        assert_eq!(
            out.code,
            0,
            "pop {} of {} on a full disk: {}",
            got.len() + 1,
            pushed.len(),
            out.stderr
        );
        let m = out.json().remove(0);
        let ack = sp(&["ack", Q, receipt(&m)], b"");
        assert_eq!(
            ack.code,
            0,
            "ack {} of {} on a full disk: {}",
            got.len() + 1,
            pushed.len(),
            ack.stderr
        );
        got.push((id(&m).to_string(), body_bytes(&m)));
        assert!(got.len() <= pushed.len(), "pop keeps delivering");
    }
    assert!(got == pushed, "every pushed message, once, in order");
    let st = sp(&["stats", Q, "--json"], b"");
    st.ok();
    assert_counts(
        &st.json()[0],
        &[
            ("ready", 0),
            ("leased", 0),
            ("acked", pushed.len() as u64),
            ("pushed", pushed.len() as u64),
        ],
    );
    sp(&["fsck"], b"").ok();
    // The drained queue gave back its segment: pushes work again.
    let out = sp(&["push", Q], &rng.text(10_000));
    out.ok();
    sp(&["fsck"], b"").ok();
}
