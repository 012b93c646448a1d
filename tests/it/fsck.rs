//! Proves damage handling: `fsck` passes a healthy spool, a flipped byte in a record (body or
//! header) or a torn tail is reported with file and offset, `pop` skips the damage and keeps
//! delivering the intact neighbours, and `fsck --repair` leaves a sound spool that still holds
//! every intact message (and no acked one).

use crate::env_fs as common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const A: &str = "first-message-body-aaaaaaaaaaaa";
const B: &str = "second-message-body-bbbbbbbbbbbb";
const C: &str = "third-message-body-cccccccccccc";
const D: &str = "fourth-message-body-dddddddddddd";

/// The segment file holding `body`, and the body's byte offset in it.
fn locate(s: &Spool, q: &str, body: &str) -> (PathBuf, usize) {
    let segs = s.segment_files(q);
    assert!(
        !segs.is_empty(),
        "no .seg file under {}",
        s.queue_dir(q).display()
    );
    for seg in segs {
        let data = fs::read(&seg).unwrap();
        if let Some(pos) = find_bytes(&data, body.as_bytes()) {
            return (seg, pos);
        }
    }
    panic!("body {body:?} not found in any segment of {q}");
}

/// Flips one byte in the middle of `body` inside its segment; returns the segment path.
fn corrupt_body(s: &Spool, q: &str, body: &str) -> PathBuf {
    let (seg, pos) = locate(s, q, body);
    let mut data = fs::read(&seg).unwrap();
    data[pos + body.len() / 2] ^= 0x01;
    fs::write(&seg, &data).unwrap();
    seg
}

/// Damages the header of the record that follows `before` (its body_len becomes huge).
fn corrupt_next_header(s: &Spool, q: &str, before: &str) -> PathBuf {
    let (seg, pos) = locate(s, q, before);
    let mut data = fs::read(&seg).unwrap();
    let head = pos + before.len();
    assert_eq!(
        &data[head..head + 4],
        b"SPMR",
        "record header magic expected at {head}"
    );
    data[head + 7] ^= 0x7f; // high byte of the little-endian u32 body_len
    fs::write(&seg, &data).unwrap();
    seg
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Whether `line` contains `offset N` with N a number.
fn has_offset(line: &str) -> bool {
    line.match_indices("offset ").any(|(i, m)| {
        line[i + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// `fsck ARGS...` must exit 1 with a stdout line naming the segment and an offset.
#[track_caller]
fn fsck_finds(s: &Spool, args: &[&str], seg: &Path) {
    let mut full = vec!["fsck"];
    full.extend_from_slice(args);
    let out = s.run(&full);
    out.code(1);
    let name = file_name(seg);
    let text = out.stdout_str();
    assert!(
        text.lines().any(|l| l.contains(&name) && has_offset(l)),
        "fsck should report {name} with `offset N` on stdout:\n{text}\nstderr: {}",
        out.stderr
    );
}

#[track_caller]
fn repair_then_sound(s: &Spool) {
    s.run(&["fsck", "--repair"]).ok();
    let again = s.run(&["fsck"]);
    again.ok();
}

#[test]
fn fsck_on_a_healthy_spool_exits_0() {
    let s = Spool::new();
    s.push("q", &[A, B, C]);
    s.run(&["push", "q", "--delay", "1h", D]).ok();
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    let m = s.pop_one("q", &[]);
    s.nack("q", &[receipt(&m)], &["--max-attempts", "1"]);
    s.pop_one("q", &[]);
    s.push_stdin("bin", b"\xff\x00\x01binary");
    s.run(&["fsck"]).ok();
    s.run(&["fsck", "q"]).ok();
    s.run(&["fsck", "bin"]).ok();
    s.run(&["retry", "q"]).ok();
    s.run(&["purge", "q"]).ok();
    s.run(&["fsck"]).ok();
    // A repair of a sound spool changes nothing.
    s.run(&["fsck", "--repair"]).ok();
    assert_counts(
        &s.stats("q"),
        &[
            ("pushed", 4),
            ("acked", 1),
            ("leased", 1),
            ("ready", 0),
            ("dead", 0),
        ],
    );
    assert_eq!(body_bytes(&s.pop_one("bin", &[])), b"\xff\x00\x01binary");
}

#[test]
fn pop_reports_a_corrupt_body_and_still_delivers_its_neighbours() {
    let s = Spool::new();
    let ids = s.push("q", &[A, B, C]);
    let seg = corrupt_body(&s, "q", B);
    let out = s.run(&["pop", "q", "--json", "--count", "10"]);
    out.ok();
    let msgs = out.json();
    assert_eq!(
        bodies(&msgs),
        [A, C],
        "the intact neighbours are delivered, the damaged one is not"
    );
    assert_eq!(
        msgs.iter().map(id).collect::<Vec<_>>(),
        [ids[0].as_str(), ids[2].as_str()]
    );
    let name = file_name(&seg);
    assert!(
        out.stderr.lines().all(|l| l.starts_with("spoolmq: ")),
        "stderr lines start with `spoolmq: `: {:?}",
        out.stderr
    );
    assert!(
        out.stderr.lines().any(|l| l.starts_with("spoolmq: q: ")
            && l.contains(&name)
            && has_offset(l)
            && l.contains("skipped")),
        "pop should report `spoolmq: q: {name}: offset N: ...; skipped`, got {:?}",
        out.stderr
    );
    // Nothing panics around the damage and the delivered messages finish normally.
    s.run(&["stats", "q", "--json"]).ok();
    s.ack("q", &[receipt(&msgs[0]), receipt(&msgs[1])]);
    s.pop_nothing("q", &[]);
}

#[test]
fn pop_one_at_a_time_steps_over_a_corrupt_body() {
    let s = Spool::new();
    s.push("q", &[A, B, C]);
    corrupt_body(&s, "q", B);
    assert_eq!(body(&s.pop_one("q", &[])), A);
    assert_eq!(body(&s.pop_one("q", &[])), C);
    s.pop_nothing("q", &[]);
}

#[test]
fn fsck_names_the_damaged_file_and_repair_keeps_every_intact_unacked_message() {
    let s = Spool::new();
    s.push("q", &[A, B, C, D]);
    let first = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&first)]);
    let seg = corrupt_body(&s, "q", C);
    fsck_finds(&s, &[], &seg);
    fsck_finds(&s, &["q"], &seg);
    repair_then_sound(&s);
    // B and D survive; A stays acked; C is gone.
    let msgs = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&msgs), [B, D]);
    assert!(msgs.iter().all(|m| attempt(m) == 1));
    s.pop_nothing("q", &[]);
    assert_counts(&s.stats("q"), &[("acked", 1), ("leased", 2), ("ready", 0)]);
    s.ack("q", &[receipt(&msgs[0]), receipt(&msgs[1])]);
    s.run(&["fsck"]).ok();
}

#[test]
fn fsck_of_another_queue_is_not_affected_by_damage_elsewhere() {
    let s = Spool::new();
    s.push("bad", &[A, B]);
    s.push("good", &[C, D]);
    let seg = corrupt_body(&s, "bad", A);
    s.run(&["fsck", "good"]).ok();
    fsck_finds(&s, &["bad"], &seg);
    fsck_finds(&s, &[], &seg);
}

#[test]
fn fsck_json_exits_1_on_damage_too() {
    let s = Spool::new();
    s.push("q", &[A, B]);
    corrupt_body(&s, "q", B);
    let out = s.run(&["fsck", "--json"]);
    out.code(1);
    assert!(!out.stdout.is_empty(), "the problem is reported");
}

#[test]
fn a_corrupt_record_header_is_skipped_and_the_records_after_it_survive() {
    let s = Spool::new();
    // Same content in two queues: one is read before repair, the other after.
    s.push("pre", &[A, B, C]);
    s.push("post", &[A, B, C]);
    corrupt_next_header(&s, "pre", A);
    let seg = corrupt_next_header(&s, "post", A);

    let out = s.run(&["pop", "pre", "--json", "--count", "10"]);
    out.ok();
    assert_eq!(bodies(&out.json()), [A, C]);
    assert!(
        out.stderr.lines().any(has_offset),
        "damage reported: {:?}",
        out.stderr
    );

    fsck_finds(&s, &["post"], &seg);
    repair_then_sound(&s);
    assert_eq!(bodies(&s.pop_json("post", &["--count", "10"])), [A, C]);
}

#[test]
fn a_torn_tail_is_reported_and_repaired_without_losing_earlier_messages() {
    let s = Spool::new();
    s.push("q", &[A, B, C]);
    let (seg, pos) = locate(&s, "q", C);
    let data = fs::read(&seg).unwrap();
    assert_eq!(
        data.len(),
        pos + C.len(),
        "C is the last record of its segment"
    );
    fs::write(&seg, &data[..pos + C.len() / 2]).unwrap();

    let out = s.run(&["pop", "q", "--json", "--count", "10"]);
    out.ok();
    let msgs = out.json();
    assert_eq!(bodies(&msgs), [A, B]);
    // The damage is reported where it is met, with the file and offset.
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains(&name) && has_offset(l)),
        "damage reported: {:?}",
        out.stderr
    );
    assert_eq!(
        num(&s.stats("q"), "corrupt"),
        1,
        "the cut message is counted as lost"
    );
    s.ack("q", &[receipt(&msgs[0]), receipt(&msgs[1])]);

    // Nothing live is left in the damaged segment: it is reclaimed, and new
    // pushes never follow its torn bytes (they go to a new segment).
    assert!(!seg.exists(), "the drained damaged segment is reclaimed");
    repair_then_sound(&s);
    s.pop_nothing("q", &[]);
    s.push("q", &[D]);
    assert_eq!(bodies(&s.pop_json("q", &["--count", "10"])), [D]);
    s.run(&["fsck"]).ok();
}

#[test]
fn a_push_after_a_torn_header_is_still_delivered() {
    let s = Spool::new();
    s.push("q", &[A, B, C]);
    let (seg, pos) = locate(&s, "q", C);
    let head = pos - 40;
    let data = fs::read(&seg).unwrap();
    assert_eq!(&data[head..head + 4], b"SPMR");
    // A crash in the middle of writing C's header.
    fs::write(&seg, &data[..head + 20]).unwrap();
    s.push("q", &[D]);
    let msgs = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&msgs), [A, B, D]);
    let rs: Vec<&str> = msgs.iter().map(receipt).collect();
    s.ack("q", &rs);
    s.run(&["fsck", "--repair"]).ok();
    s.run(&["fsck"]).ok();
    s.pop_nothing("q", &[]);
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 0)]);
}

/// Adds `delta` to the `acked` counter of every valid header in the index (the layout in
/// src/store/fs/index.rs: counters from offset 88, acked the sixth) and re-seals its CRC: the index
/// then checks out while its counters no longer add up.
fn skew_acked_counter(index: &Path, delta: u64) {
    let mut data = fs::read(index).unwrap();
    for region in 0..4usize {
        let at = region * 64 * 1024;
        if data.len() < at + 184 || &data[at..at + 8] != b"SPMQIDX1" {
            continue;
        }
        let len = u32::from_le_bytes(data[at + 12..at + 16].try_into().unwrap()) as usize;
        let h = &mut data[at..at + len];
        let crc = u32::from_le_bytes(h[len - 4..].try_into().unwrap());
        if crc32(&h[..len - 4]) != crc {
            continue;
        }
        let acked = u64::from_le_bytes(h[128..136].try_into().unwrap());
        h[128..136].copy_from_slice(&(acked + delta).to_le_bytes());
        let crc = crc32(&h[..len - 4]);
        h[len - 4..].copy_from_slice(&crc.to_le_bytes());
    }
    fs::write(index, data).unwrap();
}

// ---------------------------------------------------------------- the spool's store record

/// `spoolmq ARGS` on `s` with no store named and a short timeout.
fn plain(s: &Spool, args: &[&str]) -> Out {
    let mut cmd = s.cmd();
    cmd.env_remove("SPOOLMQ_STORE")
        .timeout(std::time::Duration::from_secs(10))
        .args(args);
    run(&mut cmd)
}

/// `spoolmq --store STORE ARGS` on `s`.
fn with_store(s: &Spool, store: &str, args: &[&str]) -> Out {
    let mut cmd = s.cmd();
    cmd.env("SPOOLMQ_STORE", store)
        .timeout(std::time::Duration::from_secs(10))
        .args(args);
    run(&mut cmd)
}

/// CRC-32 (IEEE), as the on-disk formats use.
fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// A record in the versioned form, well formed (its CRC matches).
fn record(fields: &str) -> String {
    format!("{fields} {:08x}\n", crc32(fields.as_bytes()))
}

/// The cases: a `.store` that is damaged says so (file, what is wrong) and the spool
/// goes on working from what is on disk; only a well-formed record naming a higher version
/// or an unknown store is "written by a newer spoolmq", and refused.
#[test]
fn a_damaged_store_record_says_damaged_and_only_a_well_formed_newer_one_says_newer() {
    for store in ["fs", "sqlite"] {
        let s = Spool::new();
        with_store(&s, store, &["push", "q", "one", "two"]).ok();
        let path = s.dir.join(".store");
        let good = fs::read(&path).unwrap();
        assert_eq!(
            good,
            record(&format!("spoolmq-store 5 {store}")).into_bytes()
        );
        let mut random = good.clone();
        random.extend((0..37u8).map(|i| i.wrapping_mul(151).wrapping_add(0x80)));
        let damaged: [(&str, Vec<u8>); 6] = [
            ("37 random bytes appended", random),
            ("emptied", vec![]),
            ("`fs \\n`", b"fs \n".to_vec()),
            ("`fs\\r\\n`", b"fs\r\n".to_vec()),
            ("NUL bytes", vec![0; 3]),
            ("its checksum changed", {
                let mut r = good.clone();
                let at = r.len() - 2;
                r[at] = if r[at] == b'0' { b'1' } else { b'0' };
                r
            }),
        ];
        for (what, bytes) in damaged {
            let ctx = format!("{store}: .store {what}");
            fs::write(&path, &bytes).unwrap();
            for args in [&["stats", "q", "--json"][..], &["list"], &["peek", "q"]] {
                let out = plain(&s, args);
                assert_eq!(
                    out.code, 0,
                    "{ctx}: {args:?} works from the files on disk\n{}",
                    out.stderr
                );
                let line = out.error_line();
                assert!(
                    line.contains(".store is damaged") && !line.contains("newer"),
                    "{ctx}: says damaged, not newer: {line}"
                );
            }
            assert_eq!(plain(&s, &["list"]).stdout_str(), "q\n", "{ctx}");
            let fsck = plain(&s, &["fsck"]);
            assert_eq!(fsck.code, 1, "{ctx}: fsck reports it");
            assert!(
                fsck.stdout_str().contains(".store: damaged"),
                "{ctx}: {}",
                fsck.stdout_str()
            );
        }
        plain(&s, &["fsck", "--repair"]).ok();
        assert_eq!(
            fs::read(&path).unwrap(),
            good,
            "{store}: the repair rewrote the record"
        );
        for (what, text) in [
            ("version 6", record(&format!("spoolmq-store 6 {store}"))),
            ("an unknown store", record("spoolmq-store 1 zfs")),
        ] {
            fs::write(&path, text).unwrap();
            let out = plain(&s, &["list"]);
            out.fails(1);
            let line = out.error_line();
            assert!(
                line.contains(".store") && line.contains("newer spoolmq"),
                "{store}: {what}: {line}"
            );
            plain(&s, &["fsck", "--repair"]).fails(1);
        }
    }
}

/// Deleting `.store` of a sqlite spool once hid its queues, and the next push recorded `fs`,
/// after which the messages in `.spool.db` could not be reached. `.spool.db` now says sqlite.
#[test]
fn a_sqlite_spool_that_lost_its_store_record_stays_a_sqlite_spool() {
    let s = Spool::new();
    with_store(&s, "sqlite", &["push", "q", "m1", "m2", "m3"]).ok();
    fs::remove_file(s.dir.join(".store")).unwrap();
    assert_eq!(plain(&s, &["list"]).stdout_str(), "q\n");
    let stats = plain(&s, &["stats", "q", "--json"]);
    stats.ok();
    assert_counts(&stats.json()[0], &[("ready", 3)]);
    // Naming fs is refused, as for a spool that records sqlite.
    let out = with_store(&s, "fs", &["push", "q", "x"]);
    out.fails(2);
    assert!(out.error_line().contains("uses the sqlite store"));
    assert!(!s.dir.join("q").exists(), "no fs queue was made");
    // fsck reports the missing record, a push records sqlite again.
    let fsck = plain(&s, &["fsck"]);
    assert_eq!(fsck.code, 1);
    assert!(
        fsck.stdout_str().contains(".store: missing"),
        "{}",
        fsck.stdout_str()
    );
    plain(&s, &["push", "q", "m4"]).ok();
    assert!(
        fs::read_to_string(s.dir.join(".store"))
            .unwrap()
            .starts_with("spoolmq-store 5 sqlite ")
    );
    let msgs = plain(&s, &["pop", "q", "--json", "--count", "10"]);
    msgs.ok();
    assert_eq!(bodies(&msgs.json()), ["m1", "m2", "m3", "m4"]);
    plain(&s, &["fsck"]).ok();
}

/// Both stores' files on disk (an interrupted migrate, say) and no readable record: no command
/// guesses; the refusal says what to do, and `--store S fsck --repair` records the one named.
#[test]
fn with_both_stores_on_disk_and_no_record_the_spool_is_refused_until_fsck_records_one() {
    let s = Spool::new();
    with_store(&s, "sqlite", &["push", "q", "in-sqlite"]).ok();
    let other = Spool::new();
    with_store(&other, "fs", &["push", "q", "in-fs"]).ok();
    fs::rename(other.dir.join("q"), s.dir.join("q")).unwrap();
    for damage in [None, Some(&b"sqlite\r\n"[..])] {
        match damage {
            None => {
                let _ = fs::remove_file(s.dir.join(".store"));
            }
            Some(b) => fs::write(s.dir.join(".store"), b).unwrap(),
        }
        for args in [&["list"][..], &["push", "q", "x"], &["pop", "q"], &["fsck"]] {
            let out = plain(&s, args);
            out.fails(1);
            let line = out.error_line();
            assert!(
                line.contains("both stores' files are here")
                    && line.contains("--store fs fsck --repair"),
                "{args:?}: {line}"
            );
        }
        assert!(
            !s.dir.join(".store").exists() || damage.is_some(),
            "nothing was recorded"
        );
    }
    let fixed = with_store(&s, "sqlite", &["fsck", "--repair"]);
    fixed.ok();
    let msgs = plain(&s, &["pop", "q", "--json"]);
    msgs.ok();
    assert_eq!(bodies(&msgs.json()), ["in-sqlite"]);
    // The fs store's queue was left alone; migrate to the store in use removes it.
    assert!(s.dir.join("q").join("index").exists());
    plain(&s, &["migrate", "--to", "sqlite"]).ok();
    assert!(!s.dir.join("q").exists());
    plain(&s, &["fsck"]).ok();
}

/// Spools written by spoolmq 0.1.0 (commit 8f2f2b6), with `.store` in the unversioned form
/// (`fs\n`, `sqlite\n`), still open and work; their record is left as it was by every
/// command but a push, which rewrites it in this release's version (what it pushes may be in
/// a format only this release reads).
#[test]
fn spools_with_the_unversioned_store_record_of_0_1_0_still_open() {
    let tmp = fixture("spool-0.1.0-8f2f2b6.tar.gz");
    for store in ["fs", "sqlite"] {
        let dir = tmp.path().join(store);
        let legacy = format!("{store}\n");
        assert_eq!(fs::read_to_string(dir.join(".store")).unwrap(), legacy);
        let go = |args: &[&str]| {
            let mut cmd = spoolmq(&dir);
            cmd.env_remove("SPOOLMQ_STORE").args(args);
            run(&mut cmd)
        };
        let fsck = go(&["fsck"]);
        assert_eq!(
            fsck.code,
            0,
            "{store}: {}{}",
            fsck.stdout_str(),
            fsck.stderr
        );
        assert_eq!(fsck.stderr, "", "{store}: no warning for the old record");
        let stats = go(&["stats", "q", "--json"]);
        stats.ok();
        assert_counts(
            &stats.json()[0],
            &[("ready", 2), ("pushed", 3), ("acked", 1)],
        );
        go(&["push", "q", "four"]).ok();
        let msgs = go(&["pop", "q", "--json", "--count", "10"]);
        msgs.ok();
        assert_eq!(bodies(&msgs.json()), ["two", "three", "four"], "{store}");
        let other = if store == "fs" { "sqlite" } else { "fs" };
        let mut cmd = spoolmq(&dir);
        run(cmd.env("SPOOLMQ_STORE", other).args(["list"])).fails(2);
        let now = fs::read_to_string(dir.join(".store")).unwrap();
        assert!(
            now.starts_with(&format!("spoolmq-store 5 {store} ")),
            "{now:?}"
        );
    }
}

// ---------------------------------------------------------------- objects planted in .spool.db

/// A trigger added to `.spool.db` that loops forever (a recursive CTE) once hung `pop` while
/// it held the exclusive spool lock. Triggers and views never run now; `fsck` reports every
/// object the schema does not define, and `fsck --repair` drops them.
#[test]
fn a_trigger_planted_in_the_database_cannot_hang_pop_and_fsck_repair_drops_it() {
    let s = Spool::new();
    with_store(&s, "sqlite", &["push", "q", "m1", "m2"]).ok();
    let db = s.dir.join(".spool.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TRIGGER forever AFTER UPDATE ON messages BEGIN
               SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c);
             END;
             CREATE VIEW everything AS SELECT * FROM messages;
             CREATE INDEX \"by \"\"len\"\"\" ON messages (len);",
        )
        .unwrap();
    }
    let started = std::time::Instant::now();
    let popped = plain(&s, &["pop", "q", "--json"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "pop took {:?}",
        started.elapsed()
    );
    popped.ok();
    let m = &popped.json()[0];
    assert_eq!(body(m), "m1");
    plain(&s, &["ack", "q", receipt(m)]).ok();
    let fsck = plain(&s, &["fsck"]);
    assert_eq!(fsck.code, 1);
    let text = fsck.stdout_str();
    for what in [
        "trigger \"forever\"",
        "view \"everything\"",
        "index \"by \\\"len\\\"\"",
    ] {
        assert!(
            text.lines().any(|l| l.contains(".spool.db")
                && l.contains(what)
                && l.contains("not part of spoolmq's schema")),
            "fsck reports {what}\n{text}"
        );
    }
    plain(&s, &["fsck", "--repair"]).ok();
    plain(&s, &["fsck"]).ok();
    let c = rusqlite::Connection::open(&db).unwrap();
    let left: Vec<String> = c
        .prepare("SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        left,
        [
            "bodies",
            "failures",
            "holds",
            "holds_free",
            "keys",
            "lanes",
            "messages",
            "pending",
            "queues"
        ]
    );
    let last = plain(&s, &["pop", "q", "--json"]);
    last.ok();
    assert_eq!(body(&last.json()[0]), "m2");
}

/// A FIFO planted as `.spool.bell` (the sqlite store's wake-up file) once made every push
/// hang opening it for writing. It is never waited on now; `fsck` reports it and `fsck
/// --repair` removes it (the next push makes the bell again).
#[test]
fn a_fifo_planted_as_the_bell_hangs_nothing_and_fsck_repair_removes_it() {
    let s = Spool::new();
    with_store(&s, "sqlite", &["push", "q", "m1"]).ok();
    let bell = s.dir.join(".spool.bell");
    fs::remove_file(&bell).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&bell)
        .status()
        .unwrap();
    assert!(made.success());
    plain(&s, &["push", "q", "m2"]).ok();
    let fsck = plain(&s, &["fsck"]);
    assert_eq!(fsck.code, 1);
    assert!(
        fsck.stdout_str()
            .contains(".spool.bell: not a regular file (a FIFO)"),
        "{}",
        fsck.stdout_str()
    );
    plain(&s, &["fsck", "--repair"]).ok();
    plain(&s, &["fsck"]).ok();
    plain(&s, &["push", "q", "m3"]).ok();
    assert!(fs::metadata(&bell).unwrap().is_file());
    let msgs = plain(&s, &["pop", "q", "--json", "--count", "10"]);
    msgs.ok();
    assert_eq!(bodies(&msgs.json()), ["m1", "m2", "m3"]);
}

/// fs store: the counters in the index are checked to add up (every message pushed is in
/// exactly one state), and `--repair` makes them add up again.
#[test]
fn fsck_finds_counters_that_do_not_add_up_and_repair_fixes_them() {
    let s = Spool::new();
    if not_on_this_store("the index counters are the fs store's") {
        return;
    }
    s.push("q", &[A, B, C, D]);
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    skew_acked_counter(&s.queue_dir("q").join("index"), 2);
    assert_eq!(num(&s.stats("q"), "acked"), 3, "the skewed index is read");
    let out = s.run(&["fsck"]);
    out.fails(1);
    assert!(
        out.stdout_str().contains("counters do not add up"),
        "fsck names the problem\n{}",
        out.stdout_str()
    );
    s.run(&["fsck", "--repair"]).ok();
    s.run(&["fsck"]).ok();
    assert_counts(
        &s.stats("q"),
        &[("ready", 3), ("acked", 1), ("pushed", 4), ("leased", 0)],
    );
    let got = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&got), vec![B, C, D]);
}
