//! Aborting at each named step of the write path (feature `failpoints`, on for `cargo test`) loses nothing reported done, serves nothing half-written, and the next command recovers without help.

use crate::env_fs as common;
use common::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

/// Runs `spoolmq ARGS` with crash point `point` armed; asserts it aborted there.
fn crash_at(s: &Spool, point: &str, args: &[&str], stdin: &[u8]) {
    let mut cmd = s.std_cmd();
    cmd.env("SPOOLMQ_FAILPOINT", point)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let _ = pipe.write_all(stdin);
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "`spoolmq {}` did not abort at {point} (is the failpoints feature on?): {:?}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a queue held before a crash, as the test saw it reported.
struct Known {
    /// Bodies pushed (exit 0) and neither acked nor leased.
    ready: Vec<String>,
    /// A message leased before the crash, with its receipt.
    leased: (String, String),
    /// Bodies acked (exit 0): never to be delivered again.
    acked: Vec<String>,
    /// Bodies that are dead letters.
    dead: Vec<String>,
}

/// A queue with messages in every state.
fn seeded(s: &Spool) -> Known {
    s.make_dead("q", &["d1", "d2"]);
    s.push("q", &["r1", "r2", "r3", "r4", "gone", "held"]);
    let all = s.pop_json("q", &["--count", "10", "--lease", "1h"]);
    assert_eq!(all.len(), 6);
    let mut held = None;
    for m in &all {
        match body(m) {
            "gone" => s.ack("q", &[receipt(m)]),
            "held" => held = Some((body(m).to_string(), receipt(m).to_string())),
            _ => s.nack("q", &[receipt(m)], &[]),
        }
    }
    Known {
        ready: ["r1", "r2", "r3", "r4"].map(String::from).to_vec(),
        leased: held.unwrap(),
        acked: vec!["gone".into()],
        dead: vec!["d1".into(), "d2".into()],
    }
}

/// After a crash: the spool is sound, counters add up, and exactly the
/// expected messages are there. `maybe` are bodies of the operation that
/// crashed: each may or may not be there (it was never reported done).
fn verify(s: &Spool, k: &Known, maybe: &[&str], gone: &[&str]) {
    let fsck = s.run(&["fsck"]);
    fsck.ok();
    let st = s.stats("q");
    let total: u64 = [
        "ready", "leased", "delayed", "dead", "acked", "purged", "corrupt",
    ]
    .iter()
    .map(|f| num(&st, f))
    .sum();
    assert_eq!(num(&st, "pushed"), total, "counters do not add up: {st}");
    assert_eq!(num(&st, "corrupt"), 0, "{st}");
    // The leased message is still leased under its receipt, unless the crashed op acked it.
    let still_leased = !gone.contains(&k.leased.0.as_str());
    // Bring back the dead and take everything deliverable.
    s.run(&["retry", "q"]).ok();
    let got: Vec<String> = s
        .pop_json("q", &["--count", "1000", "--lease", "1h"])
        .iter()
        .map(|m| body(m).to_string())
        .collect();
    let got_set: BTreeSet<&str> = got.iter().map(String::as_str).collect();
    assert_eq!(
        got.len(),
        got_set.len(),
        "a message was delivered twice: {got:?}"
    );
    let mut must: BTreeSet<&str> = k.ready.iter().chain(&k.dead).map(String::as_str).collect();
    for g in gone {
        must.remove(g);
    }
    for m in &must {
        assert!(
            got_set.contains(m),
            "{m} was reported stored and is lost; got {got:?}"
        );
    }
    for g in &got_set {
        assert!(
            must.contains(g) || maybe.contains(g),
            "{g:?} should not be delivered (acked, leased or never pushed whole); got {got:?}"
        );
    }
    for a in &k.acked {
        assert!(!got_set.contains(a.as_str()), "acked {a} came back");
    }
    if still_leased {
        assert!(
            !got_set.contains(k.leased.0.as_str()),
            "a live lease was broken"
        );
        s.run(&["extend", "q", &k.leased.1, "--lease", "1h"]).ok();
    }
}

#[test]
fn a_push_that_dies_after_its_append_or_its_fsync_is_all_or_nothing() {
    // Short records, and long ones (a TTL, kept through the recovery).
    for ttl in [&[][..], &["--ttl", "1d"]] {
        for point in ["push.after-append", "push.after-sync", "header.torn"] {
            let s = Spool::new();
            let k = seeded(&s);
            let mut args = vec!["push", "q", "new-1", "new-2"];
            args.extend_from_slice(ttl);
            crash_at(&s, point, &args, b"");
            verify(&s, &k, &["new-1", "new-2"], &[]);
            // Both or neither.
            s.push("q", &["after"]);
            let out = s.run(&["export", "q"]);
            for m in out.ok().json() {
                if body(&m).starts_with("new-") {
                    assert_eq!(
                        m["ttl_ms"].as_u64().is_some(),
                        !ttl.is_empty(),
                        "{point}: {m}"
                    );
                }
            }
        }
    }
}

/// A keyed push that dies at any step, before or after its holds are
/// written: its messages are all there with their keys held, or none is
/// and the keys are free; the keys pushed before it are held either way.
#[test]
fn a_keyed_push_that_dies_anywhere_holds_its_keys_only_if_it_stored_them() {
    for point in [
        "push.after-append",
        "push.after-sync",
        "push.after-holds",
        "header.torn",
    ] {
        let s = Spool::new();
        let k = seeded(&s);
        let before = s.run_stdin(
            &["push", "q", "--lines", "--key-from-line"],
            b"old-1\nold-2\n",
        );
        let old = before.ok().lines();
        crash_at(
            &s,
            point,
            &["push", "q", "--lines", "--key-from-line"],
            b"new-1\nnew-2\nnew-1\n",
        );
        // The earlier keys are still held by their messages.
        let again = s.run_stdin(
            &["push", "q", "--lines", "--key-from-line"],
            b"old-1\nold-2\n",
        );
        assert_eq!(again.ok().lines(), old, "{point}");
        // The crashed push's keys: held by its messages if they are there.
        let out = s.run(&["export", "q"]);
        let stored: Vec<String> = out
            .ok()
            .json()
            .iter()
            .filter(|m| body(m).starts_with("new-"))
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        assert!(
            stored.is_empty() || stored.len() == 2,
            "{point}: {stored:?}"
        );
        let third = s.run_stdin(
            &["push", "q", "--lines", "--key-from-line"],
            b"new-1\nnew-2\n",
        );
        let ids = third.ok().lines();
        if stored.is_empty() {
            assert_eq!(num(&s.stats("q"), "pushed"), 12, "{point}: stored now");
        } else {
            assert_eq!(ids, stored, "{point}: held by the messages stored");
        }
        verify(
            &s,
            &Known {
                ready: k
                    .ready
                    .iter()
                    .cloned()
                    .chain(["old-1".into(), "old-2".into()])
                    .collect(),
                ..k
            },
            &["new-1", "new-2"],
            &[],
        );
    }
}

/// A push with a priority that dies at any step, before or after its lane
/// entries are written: its messages are all there, the most urgent first,
/// or none is; what was pushed before is all there either way.
#[test]
fn a_prioritised_push_that_dies_anywhere_is_served_first_or_not_at_all() {
    for point in [
        "push.after-append",
        "push.after-sync",
        "push.after-lanes",
        "header.torn",
    ] {
        let s = Spool::new();
        let k = seeded(&s);
        s.run(&["push", "q", "--priority", "4", "old-4"]).ok();
        crash_at(
            &s,
            point,
            &["push", "q", "--lines", "--priority", "8"],
            b"new-1\nnew-2\n",
        );
        // The first pop after the crash: the crashed push's messages (if
        // stored, both), then the earlier priority, then the plain ones.
        let first = s.pop_json("q", &["--count", "3", "--lease", "1h"]);
        let got = bodies(&first);
        let stored = got.first().is_some_and(|b| b.starts_with("new-"));
        let want: &[&str] = if stored {
            &["new-1", "new-2", "old-4"]
        } else {
            &["old-4", "r1", "r2"]
        };
        assert_eq!(got, want, "{point}");
        let rs: Vec<&str> = first.iter().map(receipt).collect();
        s.nack("q", &rs, &[]);
        verify(
            &s,
            &Known {
                ready: k.ready.iter().cloned().chain(["old-4".into()]).collect(),
                ..k
            },
            &["new-1", "new-2"],
            &[],
        );
    }
}

#[test]
fn a_push_of_lines_that_dies_midway_serves_no_half_line() {
    let s = Spool::new();
    let k = seeded(&s);
    let input: String = (0..500).map(|i| format!("line-{i}\n")).collect();
    crash_at(
        &s,
        "push.after-append",
        &["push", "q", "--lines"],
        input.as_bytes(),
    );
    let maybe: Vec<String> = (0..500).map(|i| format!("line-{i}")).collect();
    let maybe: Vec<&str> = maybe.iter().map(String::as_str).collect();
    verify(&s, &k, &maybe, &[]);
}

#[test]
fn an_ack_torn_in_the_wal_did_not_happen_and_its_receipt_still_works() {
    let s = Spool::new();
    let k = seeded(&s);
    crash_at(&s, "wal.torn", &["ack", "q", &k.leased.1], b"");
    s.run(&["ack", "q", &k.leased.1]).ok();
    verify(&s, &k, &[], &["held"]);
}

#[test]
fn an_ack_that_reached_the_wal_is_replayed() {
    for point in ["commit.after-wal", "commit.mid-slots", "header.torn"] {
        let s = Spool::new();
        let k = seeded(&s);
        crash_at(&s, point, &["ack", "q", &k.leased.1], b"");
        // The ack was in the WAL, synced: recovery completes it.
        s.run(&["ack", "q", &k.leased.1]).fails(4);
        verify(&s, &k, &[], &["held"]);
    }
}

#[test]
fn a_pop_that_dies_midway_breaks_no_lease_and_loses_nothing() {
    for point in [
        "wal.torn",
        "commit.after-wal",
        "commit.mid-slots",
        "header.torn",
    ] {
        let s = Spool::new();
        let k = seeded(&s);
        crash_at(
            &s,
            point,
            &["pop", "q", "--count", "3", "--lease", "100ms"],
            b"",
        );
        sleep_ms(200);
        verify(&s, &k, &[], &[]);
    }
}

#[test]
fn a_retry_or_purge_that_dies_midway_is_all_or_nothing() {
    for (point, args) in [
        ("commit.mid-slots", &["retry", "q"][..]),
        ("commit.after-wal", &["retry", "q"][..]),
        ("wal.torn", &["retry", "q"][..]),
        ("commit.mid-slots", &["purge", "q"][..]),
        ("wal.torn", &["purge", "q"][..]),
    ] {
        let s = Spool::new();
        let k = seeded(&s);
        let before = s.stats("q");
        crash_at(&s, point, args, b"");
        let after = s.stats("q");
        let moved = |st: &serde_json::Value| (num(st, "ready"), num(st, "dead"), num(st, "purged"));
        let all = match args[0] {
            "retry" => (num(&before, "ready") + 2, 0, 0),
            _ => (0, 2, num(&before, "ready")),
        };
        assert!(
            moved(&after) == moved(&before) || moved(&after) == all,
            "{point} {args:?}: half done: before {before}, after {after}"
        );
        if args[0] == "retry" {
            verify(&s, &k, &[], &[]);
        } else if moved(&after) == all {
            let r: Vec<&str> = k.ready.iter().map(String::as_str).collect();
            verify(&s, &k, &[], &r);
        } else {
            verify(&s, &k, &[], &[]);
        }
    }
}

/// Pushes seven 10 MiB bodies: the seventh rolls over to a second segment.
fn fill_a_segment(s: &Spool) -> Vec<u8> {
    let body = vec![b'z'; 10 * 1024 * 1024];
    for _ in 0..6 {
        s.push_stdin("q", &body);
    }
    body
}

#[test]
fn a_push_that_dies_while_rolling_to_a_new_segment_is_all_or_nothing() {
    for point in [
        "roll.after-create",
        "checkpoint.after-header",
        "checkpoint.torn",
    ] {
        let s = Spool::new();
        let body = fill_a_segment(&s);
        crash_at(&s, point, &["push", "q"], &body);
        s.run(&["fsck"]).ok();
        let st = s.stats("q");
        let n = num(&st, "ready");
        assert!(n == 6 || n == 7, "{point}: {st}");
        s.push("q", &["after"]);
        let got = s.pop_json("q", &["--count", "10"]);
        assert_eq!(got.len() as u64, n + 1, "{point}");
        for m in &got[..got.len() - 1] {
            assert_eq!(body_bytes(m), body, "{point}: a big body came back damaged");
        }
        assert_eq!(common::body(got.last().unwrap()), "after");
    }
}

#[test]
fn an_ack_that_dies_while_reclaiming_a_segment_recovers() {
    for point in ["reclaim.after-unlink", "checkpoint.after-header"] {
        let s = Spool::new();
        let body = fill_a_segment(&s);
        s.push_stdin("q", &body); // the 7th, in segment 2
        let msgs = s.pop_json("q", &["--count", "6"]);
        let receipts: Vec<&str> = msgs.iter().map(receipt).collect();
        crash_at(
            &s,
            point,
            &[
                "ack",
                "q",
                receipts[0],
                receipts[1],
                receipts[2],
                receipts[3],
                receipts[4],
                receipts[5],
            ],
            b"",
        );
        s.run(&["fsck"]).ok();
        let st = s.stats("q");
        assert_counts(&st, &[("acked", 6), ("ready", 1), ("leased", 0)]);
        // Every receipt was acked: all stale now.
        s.run(&["ack", "q", receipts[0]]).fails(4);
        let last = s.pop_one("q", &[]);
        assert_eq!(body_bytes(&last), body);
        // The drained segment is gone, now or at the next checkpoint.
        s.push("q", &["x"]);
        assert!(s.segment_files("q").len() <= 2, "{point}");
    }
}

#[test]
fn a_repair_that_dies_midway_can_be_run_again() {
    let s = Spool::new();
    s.push("q", &["aaaa", "bbbb", "cccc"]);
    // Damage the body of "bbbb".
    let seg = s.segment_files("q")[0].clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.windows(4).position(|w| w == b"bbbb").unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    crash_at(&s, "repair.after-segments", &["fsck", "--repair"], b"");
    s.run(&["fsck", "--repair"]).ok();
    s.run(&["fsck"]).ok();
    let got = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&got), vec!["aaaa", "cccc"]);
}

#[test]
fn a_rebuild_of_lost_slots_that_dies_midway_is_finished_by_the_next_command() {
    for point in [
        "reconcile.after-slots",
        "checkpoint.torn",
        "checkpoint.after-header",
    ] {
        let s = Spool::new();
        let k = seeded(&s);
        std::fs::remove_file(s.queue_dir("q").join("slots")).unwrap();
        // The first command that writes rebuilds the slots while it opens the queue.
        crash_at(
            &s,
            point,
            &["extend", "q", &k.leased.1, "--lease", "1h"],
            b"",
        );
        verify(&s, &k, &[], &[]);
    }
}

/// The last failure `inspect` shows for `id` (its text), `None` if none.
fn failure_text(s: &Spool, id: &str) -> Option<String> {
    let out = s.run(&["inspect", "q", id, "--json"]);
    out.ok();
    assert!(out.stderr.is_empty(), "no damage reported: {}", out.stderr);
    out.json()[0]["last_failure"]["text"]
        .as_str()
        .map(str::to_string)
}

/// A `nack --reason` that dies while it records the failure (its frames torn, or synced but
/// the nack not committed; or, when most of the file is dead, while the compacted file is
/// renamed into place): every failure recorded before is still there, the message is still
/// leased under its receipt (the nack was never reported done) with either no failure or the
/// one being written, and the next nack records and settles it.
#[test]
fn a_nack_that_dies_while_recording_its_failure_keeps_every_earlier_failure() {
    let cases = [
        ("failures.torn", false),
        ("failures.after-sync", false),
        ("failures.before-rename", true),
        ("failures.after-rename", true),
    ];
    for (point, compacting) in cases {
        let s = Spool::new();
        // 126 + `kept`: the crashing nack's frame is the 128th, when the file is looked at.
        let dead: Vec<String> = (0..if compacting { 126 } else { 0 })
            .map(|i| format!("dead-{i}"))
            .collect();
        let mut all: Vec<&str> = vec!["kept", "crashed"];
        all.extend(dead.iter().map(String::as_str));
        let ids = s.push("q", &all);
        let msgs = s.pop_json("q", &["--count", "200", "--lease", "1h"]);
        let of = |b: &str| receipt(msgs.iter().find(|m| body(m) == b).unwrap()).to_string();
        let mut first: Vec<String> = dead.iter().map(|b| of(b)).collect();
        first.push(of("kept"));
        let first: Vec<&str> = first.iter().map(String::as_str).collect();
        s.nack("q", &first, &["--reason", "first"]);
        if compacting {
            let again = s.pop_json("q", &["--count", "200", "--lease", "1h"]);
            let done: Vec<&str> = again
                .iter()
                .filter(|m| body(m) != "kept")
                .map(receipt)
                .collect();
            s.ack("q", &done);
        }
        let crashed = of("crashed");
        // Longer than the next nack's frame: a torn tail left in place would show after it.
        let long = "crash ".repeat(40);
        crash_at(&s, point, &["nack", "q", &crashed, "--reason", &long], b"");
        s.run(&["fsck"]).ok();
        assert_eq!(
            failure_text(&s, &ids[0]).as_deref(),
            Some("first"),
            "{point}: an earlier failure was lost"
        );
        let during = failure_text(&s, &ids[1]);
        assert!(
            during.is_none() || during.as_deref() == Some(long.as_str()),
            "{point}: {during:?}"
        );
        let st = s.stats("q");
        // `kept` is leased again too when it was popped for the acks.
        let leased = 1 + u64::from(compacting);
        assert_eq!(
            num(&st, "leased"),
            leased,
            "{point}: the nack was not done: {st}"
        );
        s.nack("q", &[&crashed], &["--reason", "after"]);
        assert_eq!(
            failure_text(&s, &ids[1]).as_deref(),
            Some("after"),
            "{point}"
        );
        assert_eq!(
            failure_text(&s, &ids[0]).as_deref(),
            Some("first"),
            "{point}"
        );
        s.run(&["fsck"]).ok();
        assert!(!s.queue_dir("q").join("failures.tmp").exists(), "{point}");
    }
}

/// Every message of queue `q`: body → (state, last failure's text).
fn held(s: &Spool, q: &str) -> Vec<(String, String, String)> {
    let out = s.run(&["export", q]);
    out.ok();
    out.json()
        .iter()
        .map(|m| {
            let why = m["last_failure"]["text"].as_str().unwrap_or("").to_string();
            (
                body(m).to_string(),
                m["state"].as_str().unwrap().to_string(),
                why,
            )
        })
        .collect()
}

#[test]
fn a_retry_to_that_dies_anywhere_leaves_every_message_in_exactly_one_queue() {
    // The move's own steps, and the push, failures and commit inside it
    // (each the first of its kind the command meets).
    for point in [
        "move.after-journal",
        "push.after-append",
        "push.after-sync",
        "failures.after-sync",
        "move.after-push",
        "wal.torn",
        "commit.after-wal",
        "move.after-commit",
    ] {
        let s = Spool::new();
        s.push("jobs", &["d1", "d2", "d3"]);
        let msgs = s.pop_json("jobs", &["--count", "3"]);
        let receipts: Vec<&str> = msgs.iter().map(receipt).collect();
        s.nack(
            "jobs",
            &receipts,
            &["--max-attempts", "1", "--reason", "boom"],
        );
        s.push("jobs", &["r1"]);
        s.push("later", &["x"]);
        crash_at(&s, point, &["retry", "jobs", "--to", "later"], b"");
        let journal = s.scratch().join("spool").join(".moving");
        assert!(journal.exists(), "{point}: the journal is there");
        // A command that only reads leaves it; fsck names it.
        s.run(&["stats"]).ok();
        let fsck = s.run(&["fsck"]);
        assert!(
            fsck.code != 0 && fsck.stdout_str().contains(".moving"),
            "{point}: fsck reports the move cut short: {} {}",
            fsck.stdout_str(),
            fsck.stderr
        );
        // The next command that writes finishes it, and says so.
        let pop = s.run(&["pop", "later", "--count", "10", "--json"]);
        pop.ok();
        assert!(
            pop.stderr.contains("was interrupted; finished it"),
            "{point}: {}",
            pop.stderr
        );
        assert!(!journal.exists(), "{point}: the journal is gone");
        s.run(&["fsck"]).ok();
        let popped: Vec<String> = pop.json().iter().map(|m| body(m).to_string()).collect();
        let (jobs, later) = (held(&s, "jobs"), held(&s, "later"));
        let mut all: Vec<&str> = jobs.iter().chain(&later).map(|m| m.0.as_str()).collect();
        all.sort();
        assert_eq!(all, ["d1", "d2", "d3", "r1", "x"], "{point}: each once");
        assert_eq!(popped[0], "x", "{point}");
        for (b, state, why) in &jobs {
            let want = if b == "r1" { "ready" } else { "dead" };
            assert_eq!((state.as_str(), b.as_str()), (want, b.as_str()), "{point}");
            assert_eq!(why, if b == "r1" { "" } else { "boom" }, "{point}: {b}");
        }
        for (b, _, why) in &later {
            if b != "x" {
                assert_eq!(why, "boom", "{point}: {b} kept its failure");
            }
        }
        // Those that had not arrived move with the next retry.
        s.run(&["retry", "jobs", "--to", "later"]).ok();
        let later: Vec<String> = held(&s, "later").into_iter().map(|m| m.0).collect();
        assert_eq!(later, ["x", "d1", "d2", "d3"], "{point}");
        s.run(&["fsck"]).ok();
    }
}

/// `retry jobs --to later` aborted once the messages are in `later`, before
/// `jobs` let them go.
fn move_cut_short(s: &Spool) {
    crash_at(
        s,
        "move.after-push",
        &["retry", "jobs", "--to", "later"],
        b"",
    );
}

#[test]
fn fsck_repair_finishes_a_retry_to_cut_short() {
    let s = Spool::new();
    s.make_dead("jobs", &["d1"]);
    move_cut_short(&s);
    let out = s.run(&["fsck", "--repair"]);
    assert!(out.stderr.contains("finished it"), "{}", out.stderr);
    s.run(&["fsck"]).ok();
    assert_eq!(held(&s, "later")[0].0, "d1");
    assert!(held(&s, "jobs").is_empty());
}

#[test]
fn a_damaged_journal_is_kept_aside_and_nothing_is_lost() {
    let s = Spool::new();
    s.make_dead("jobs", &["d1"]);
    move_cut_short(&s);
    let journal = s.scratch().join("spool").join(".moving");
    let mut b = std::fs::read(&journal).unwrap();
    b[9] ^= 1;
    std::fs::write(&journal, b).unwrap();
    let out = s.run(&["push", "other", "y"]);
    out.ok();
    assert!(
        out.stderr.contains(".moving: offset 0: damaged journal"),
        "{}",
        out.stderr
    );
    assert!(s.scratch().join("spool").join(".moving.damaged").exists());
    // Never in neither queue: here, in both.
    assert_eq!(held(&s, "jobs")[0].0, "d1");
    assert_eq!(held(&s, "later")[0].0, "d1");
    // fsck reports the journal set aside until someone removes it.
    let fsck = s.run(&["fsck", "--repair"]);
    assert!(
        fsck.code != 0 && fsck.stdout_str().contains(".moving.damaged"),
        "{} {}",
        fsck.stdout_str(),
        fsck.stderr
    );
    std::fs::remove_file(s.scratch().join("spool").join(".moving.damaged")).unwrap();
    s.run(&["fsck"]).ok();
}

#[test]
fn a_move_cut_short_is_finished_even_when_the_spool_lock_file_is_gone() {
    let s = Spool::new();
    s.make_dead("jobs", &["d1", "d2"]);
    move_cut_short(&s);
    std::fs::remove_file(s.scratch().join("spool").join(".spool.lock")).unwrap();
    // A read-only command says the messages may show twice, and writes nothing.
    let stats = s.run(&["stats", "jobs"]);
    stats.ok();
    assert!(
        stats.stderr.contains("may show in both queues"),
        "{}",
        stats.stderr
    );
    // A push into the target must not come first: it finishes the move.
    let out = s.run(&["push", "later", "y"]);
    out.ok();
    assert!(out.stderr.contains("finished it"), "{}", out.stderr);
    let later: Vec<String> = held(&s, "later").into_iter().map(|m| m.0).collect();
    assert_eq!(later, ["d1", "d2", "y"]);
    assert!(held(&s, "jobs").is_empty());
    s.run(&["fsck"]).ok();
}

#[test]
fn a_move_that_cannot_be_finished_stops_only_its_two_queues_until_repaired() {
    let s = Spool::new();
    s.make_dead("jobs", &["d1"]);
    s.push("other", &["o"]);
    move_cut_short(&s);
    // The target's index is lost: the move cannot be finished until a repair.
    std::fs::remove_file(s.queue_dir("later").join("index")).unwrap();
    for args in [&["push", "later", "y"][..], &["retry", "jobs"][..]] {
        let out = s.run(args);
        out.fails(1);
        assert!(
            out.stderr.contains("cannot be finished yet")
                && out.stderr.contains("changes only once it is"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Every other queue works.
    s.push("other", &["p"]);
    assert_eq!(body(&s.pop_one("other", &[])), "o");
    // fsck --repair rebuilds the target, then finishes the move.
    let fsck = s.run(&["fsck", "--repair"]);
    fsck.ok();
    assert!(fsck.stderr.contains("finished it"), "{}", fsck.stderr);
    s.push("later", &["y"]);
    let later: Vec<String> = held(&s, "later").into_iter().map(|m| m.0).collect();
    assert_eq!(later, ["d1", "y"]);
    assert!(held(&s, "jobs").is_empty());
    s.run(&["fsck"]).ok();
}

#[test]
fn a_planted_non_file_journal_is_reported_and_removed_by_fsck_repair() {
    let s = Spool::new();
    s.push("jobs", &["a"]);
    let journal = s.scratch().join("spool").join(".moving");
    std::fs::create_dir(&journal).unwrap();
    let fsck = s.run(&["fsck"]);
    assert!(
        fsck.code != 0 && fsck.stdout_str().contains(".moving"),
        "{} {}",
        fsck.stdout_str(),
        fsck.stderr
    );
    s.run(&["fsck", "--repair"]);
    assert!(!journal.exists());
    s.run(&["fsck"]).ok();
    assert_eq!(body(&s.pop_one("jobs", &[])), "a");
}

/// A push in an ordered group killed at any point of the push path, the
/// groups cache's write included: its messages are all there, after the
/// group's earlier one and one at a time, or none is.
#[test]
fn a_grouped_push_that_dies_anywhere_keeps_its_group_in_order_or_is_not_there() {
    for point in [
        "push.after-append",
        "push.after-sync",
        "push.after-groups",
        "header.torn",
    ] {
        let s = Spool::new();
        let k = seeded(&s);
        s.run(&["push", "q", "--group", "g", "old-g"]).ok();
        crash_at(
            &s,
            point,
            &["push", "q", "--lines", "--group", "g"],
            b"new-1\nnew-2\n",
        );
        // The group, pop by pop (the rest nacked back): one at a time.
        let mut group = Vec::new();
        for _ in 0..5 {
            let out = s.run(&["pop", "q", "--count", "10", "--lease", "1h", "--json"]);
            if out.code == 3 {
                break;
            }
            let got = out.ok().json();
            let mut mine = Vec::new();
            for m in &got {
                if ["old-g", "new-1", "new-2"].contains(&body(m)) {
                    mine.push(body(m).to_string());
                    s.ack("q", &[receipt(m)]);
                } else {
                    s.nack("q", &[receipt(m)], &[]);
                }
            }
            assert!(
                mine.len() <= 1,
                "{point}: two of the group in one pop: {mine:?}"
            );
            group.extend(mine);
        }
        let stored = group.len() > 1;
        let want: &[&str] = if stored {
            &["old-g", "new-1", "new-2"]
        } else {
            &["old-g"]
        };
        assert_eq!(group, want, "{point}");
        verify(&s, &k, &[], &[]);
    }
}

#[test]
fn an_ack_of_receipts_on_stdin_that_dies_midway_is_all_or_nothing() {
    // One commit for every receipt on stdin: its slots are written in runs,
    // so a crash between two runs (mid-slots) must still come out whole.
    for (point, done) in [
        ("wal.torn", false),
        ("commit.after-wal", true),
        ("commit.mid-slots", true),
        ("header.torn", true),
    ] {
        let s = Spool::new();
        let bodies: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
        s.push("q", &bodies.iter().map(String::as_str).collect::<Vec<_>>());
        let popped = s.run(&["pop", "q", "--count", "40", "--json"]);
        popped.ok();
        crash_at(&s, point, &["ack", "q", "-"], &popped.stdout);
        let want = if done { (0, 40) } else { (40, 0) };
        let st = s.stats("q");
        assert_eq!(
            (num(&st, "leased"), num(&st, "acked")),
            want,
            "{point}: {st}"
        );
        s.run(&["fsck"]).ok();
    }
}

#[test]
fn a_worker_that_dies_in_the_commit_acking_one_job_and_leasing_the_next_is_all_or_nothing() {
    // `exec --loop` acks a finished job in the commit that leases the next
    // message: the second commit of the run. Cut there, both or neither.
    for (point, acked, ready) in [
        ("wal.torn:2", 0, 2),
        ("commit.after-wal:2", 1, 1),
        ("commit.mid-slots:2", 1, 1),
        ("header.torn:2", 1, 1),
    ] {
        let s = Spool::new();
        s.push("q", &["m1", "m2", "m3"]);
        crash_at(
            &s,
            point,
            &["exec", "q", "--loop", "--lease", "1h", "--", "true"],
            b"",
        );
        let st = s.stats("q");
        assert_eq!(
            (num(&st, "acked"), num(&st, "leased"), num(&st, "ready")),
            (acked, 1, ready),
            "{point}: {st}"
        );
        s.run(&["fsck"]).ok();
    }
}
