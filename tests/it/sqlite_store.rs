// What only the sqlite store has: the recorded store, its database file, and
// damage to that file. (The shared suites run on this store too:
// the `sqlite` modules of `tests/it/main.rs`.)

use crate::env_sqlite as common;

use assert_cmd::Command;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

fn db(s: &Spool) -> std::path::PathBuf {
    s.dir.join(".spool.db")
}

/// Runs SQL on the spool's database directly, as an attacker or a bad disk would.
fn poke(s: &Spool, sql: &str) {
    let conn = rusqlite::Connection::open(db(s)).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn the_spool_records_its_store_and_refuses_another() {
    let s = Spool::new();
    s.push("q", &["a"]);
    let record = std::fs::read_to_string(s.dir.join(".store")).unwrap();
    assert!(record.starts_with("spoolmq-store 5 sqlite "), "{record:?}");
    let mode = std::fs::metadata(db(&s)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the database is private to its owner");
    // Later commands need no flag; naming the other store is a usage error.
    let out = s.run(&["--store", "fs", "stats", "q"]);
    out.fails(2);
    let line = out.error_line();
    assert!(line.contains("uses the sqlite store"), "{line}");
    s.cmd()
        .env_remove("SPOOLMQ_STORE")
        .args(["stats", "q", "--json"])
        .assert()
        .success();
    // And the other way round: an fs spool refuses sqlite.
    let f = Spool::new();
    f.cmd()
        .env("SPOOLMQ_STORE", "fs")
        .args(["push", "q", "x"])
        .assert()
        .success();
    let out = run(f.cmd().args(["push", "q", "y"]));
    out.fails(2);
    assert!(out.error_line().contains("uses the fs store, not sqlite"));
    let bad = run(f.cmd().env("SPOOLMQ_STORE", "mysql").args(["stats"]));
    bad.fails(2);
    assert!(
        bad.error_line().contains("SPOOLMQ_STORE"),
        "{}",
        bad.error_line()
    );
}

#[test]
fn a_body_changed_in_the_database_is_reported_and_skipped_never_served() {
    let s = Spool::new();
    s.push("q", &["one", "two", "three"]);
    poke(
        &s,
        "UPDATE bodies SET body = CAST('TWO' AS BLOB) WHERE id = (SELECT body_id FROM messages WHERE seq = 2)",
    );
    let got = s.pop_json("q", &["--count", "10"]);
    let bodies: Vec<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(
        bodies,
        ["one", "three"],
        "the damaged message is not served"
    );
    let v = s.stats("q");
    assert_eq!(v["corrupt"], 1, "{v}");
    assert_eq!(v["leased"], 2, "{v}");
    let out = s.run(&["fsck"]);
    out.ok();
}

#[test]
fn fsck_finds_a_damaged_row_and_repair_takes_it_out() {
    let s = Spool::new();
    s.push("q", &["one", "two", "three"]);
    poke(&s, "UPDATE messages SET crc = crc + 1 WHERE seq = 3");
    let out = s.run(&["fsck"]);
    out.fails(1);
    assert!(out.stdout_str().contains("CRC32"), "{}", out.stdout_str());
    s.run(&["fsck", "--repair"]).ok();
    s.run(&["fsck"]).ok();
    let v = s.stats("q");
    assert_eq!(
        (v["ready"].as_u64(), v["corrupt"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    let got = s.pop_json("q", &["--count", "10"]);
    assert_eq!(got.len(), 2);
}

#[test]
fn a_database_file_with_damaged_pages_is_an_error_not_a_panic() {
    let s = Spool::new();
    let bodies: Vec<String> = (0..200)
        .map(|i| format!("message {i} {}", "x".repeat(200)))
        .collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    s.push("q", &refs);
    // Overwrite the middle of the file (the table's pages) with garbage.
    let len = std::fs::metadata(db(&s)).unwrap().len();
    let mut bytes = std::fs::read(db(&s)).unwrap();
    for b in &mut bytes[(len / 4) as usize..(len * 3 / 4) as usize] {
        *b = 0xA5;
    }
    std::fs::write(db(&s), bytes).unwrap();
    for args in [
        &["fsck"][..],
        &["pop", "q", "--count", "300"],
        &["stats", "q"],
    ] {
        let out = s.run(args);
        assert_eq!(
            out.code,
            1,
            "`{args:?}` on a damaged database: {}",
            out.error_line()
        );
    }
    let out = s.run(&["fsck"]);
    let said = format!("{}{}", out.stdout_str(), out.error_line());
    assert!(
        said.contains("integrity") || said.contains("damaged"),
        "{said}"
    );
}

#[test]
fn a_push_that_meets_a_file_size_limit_says_disk_full_and_stores_nothing() {
    let s = Spool::new();
    s.push("q", &["before"]);
    let big = "y".repeat(600_000);
    let mut std = s.std_cmd();
    std.args(["push", "q"]);
    // SAFETY: signal and setrlimit are async-signal-safe.
    unsafe {
        std.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rl = libc::rlimit {
                rlim_cur: 300_000,
                rlim_max: 300_000,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &rl);
            Ok(())
        });
    }
    let mut cmd = Command::from_std(std);
    let out = run(cmd.timeout(RUN_TIMEOUT).write_stdin(big));
    out.fails(1);
    assert!(
        out.error_line().contains("disk full"),
        "{}",
        out.error_line()
    );
    let v = s.stats("q");
    assert_eq!(
        (v["ready"].as_u64(), v["pushed"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    s.push("q", &["after"]);
    let got = s.pop_json("q", &["--count", "10"]);
    let bodies: Vec<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["before", "after"]);
}

/// A checked-in fixture extracted into a temporary directory: the sqlite
/// spool an older build made (in `sqlite/`), beside what that build
/// recorded of it (the output of its `export`, the receipt of its leased
/// message).
struct OldSpool {
    tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    db: std::path::PathBuf,
}

impl OldSpool {
    fn open(name: &str) -> OldSpool {
        let tmp = fixture(name);
        let dir = tmp.path().join("sqlite");
        let db = dir.join(".spool.db");
        OldSpool { tmp, dir, db }
    }

    /// `spoolmq ARGS` on the spool, with the store the spool records.
    fn run(&self, args: &[&str]) -> Out {
        let mut cmd = spoolmq(&self.dir);
        cmd.env_remove("SPOOLMQ_STORE").args(args);
        run(&mut cmd)
    }

    /// A file the older build wrote beside the spool.
    fn recorded(&self, name: &str) -> String {
        std::fs::read_to_string(self.tmp.path().join(name)).unwrap()
    }
}

/// The schema-2 fixture: made by the last build of schema 2 (commit 576c569,
/// where bodies were a column of `messages`).
fn schema_2_fixture() -> OldSpool {
    OldSpool::open("sqlite-schema2-576c569.tar.gz")
}

fn user_version(db: &std::path::Path) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// A database of schema 2 (bodies in the rows) is read as it is by commands
/// that only read, byte for byte unchanged, and brought up to schema 3 by
/// the first command that writes, keeping every message, id, state, attempt
/// count, receipt and key.
#[test]
fn a_database_of_schema_2_is_read_as_it_is_and_upgraded_by_the_first_write() {
    let f = schema_2_fixture();
    let (key, db) = (f.tmp.path().join("key"), f.db.clone());
    let go = |args: &[&str]| f.run(args);
    let recorded = |name: &str| f.recorded(name);
    let before = std::fs::read(&db).unwrap();
    assert_eq!(user_version(&db), 2);
    for _ in 0..2 {
        let out = go(&["export", "work"]);
        out.ok();
        assert_eq!(out.stdout_str(), recorded("export-work.jsonl"));
        let out = go(&["--key-file", key.to_str().unwrap(), "export", "sealed"]);
        out.ok();
        assert_eq!(out.stdout_str(), recorded("export-sealed.jsonl"));
        go(&["peek", "work"]).ok();
        go(&["list"]).ok();
        let stats = go(&["stats", "work", "--json"]);
        stats.ok();
        assert_counts(
            &stats.json()[0],
            &[
                ("ready", 3),
                ("leased", 1),
                ("delayed", 2),
                ("dead", 1),
                ("pushed", 8),
                ("acked", 1),
            ],
        );
        let fsck = go(&["fsck"]);
        assert_eq!(fsck.code, 0, "{}{}", fsck.stdout_str(), fsck.stderr);
    }
    assert_eq!(user_version(&db), 2, "reading commands do not upgrade");
    assert!(
        std::fs::read(&db).unwrap() == before,
        "reading commands changed the database"
    );

    // The first write upgrades: the receipt of the leased message still acks it.
    let receipt = recorded("leased-receipt");
    go(&["ack", "work", receipt.trim()]).ok();
    assert_eq!(user_version(&db), 8);
    let out = go(&["export", "work"]);
    out.ok();
    let want: String = recorded("export-work.jsonl")
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        out.stdout_str(),
        want,
        "all but the acked message, as they were"
    );
    let out = go(&["--key-file", key.to_str().unwrap(), "export", "sealed"]);
    out.ok();
    assert_eq!(out.stdout_str(), recorded("export-sealed.jsonl"));
    let fsck = go(&["fsck"]);
    assert!(
        fsck.stdout_str().contains("0 problems"),
        "{}",
        fsck.stdout_str()
    );
    go(&["push", "work", "new"]).ok();
    let msgs = go(&["pop", "work", "--json", "--count", "10"]);
    msgs.ok();
    let got: Vec<Vec<u8>> = msgs.json().iter().map(body_bytes).collect();
    assert_eq!(got, [&b"five"[..], b"six", b"bin\xff\x00ary", b"new"]);
}

/// Schema 1 (before encryption: no `keys` table, bodies in the rows) is
/// brought up to date in one step by the first write.
#[test]
fn a_database_of_schema_1_is_brought_up_to_date_and_keeps_its_messages() {
    let f = schema_2_fixture();
    let (tmp, dir, db) = (&f.tmp, f.dir.clone(), f.db.clone());
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "DELETE FROM messages WHERE queue = 'sealed'; DELETE FROM queues WHERE name = 'sealed';
             DROP TABLE keys; PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let go = |args: &[&str]| f.run(args);
    // Read as it is: schema 1 has no key ids.
    let out = go(&["export", "work"]);
    out.ok();
    assert_eq!(out.lines().len(), 7);
    assert_eq!(user_version(&db), 1);
    let key = keygen_into(&tmp.path().join("k"));
    let mut cmd = spoolmq(&dir);
    run(cmd.env_remove("SPOOLMQ_STORE").args([
        "--key-file",
        key.to_str().unwrap(),
        "push",
        "secret",
        "x",
    ]))
    .ok();
    assert_eq!(user_version(&db), 8);
    let msgs = go(&["pop", "work", "--json", "--count", "2"]);
    msgs.ok();
    assert_eq!(bodies(&msgs.json()), ["five", "six"]);
    go(&["pop", "secret"]).fails(1);
}

/// A body whose message is gone (only a hand edit or damage leaves one) is
/// reported by `fsck` and removed by `--repair`; a message whose body is gone
/// is damage, never served.
#[test]
fn bodies_without_a_message_and_messages_without_a_body_are_found() {
    let s = Spool::new();
    s.push("q", &["one", "two", "three"]);
    poke(
        &s,
        "INSERT INTO bodies (body) VALUES (x'00'); DELETE FROM bodies WHERE id = (SELECT body_id FROM messages WHERE seq = 2);",
    );
    let out = s.run(&["fsck"]);
    out.fails(1);
    let text = out.stdout_str();
    assert!(text.contains("1 bodies belong to no message"), "{text}");
    assert!(text.contains("message 2: the body fails"), "{text}");
    s.run(&["fsck", "--repair"]).ok();
    s.run(&["fsck"]).ok();
    let got = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&got), ["one", "three"]);
    assert_eq!(s.stats("q")["corrupt"], 1);
}

/// A command that only reads never writes the database, even when it meets
/// a damaged row: `peek` and `export` report it and skip it, and the row is
/// marked corrupt by the first command that writes (`pop`).
#[test]
fn reading_commands_skip_a_damaged_row_and_write_nothing() {
    let s = Spool::new();
    s.push("q", &["one", "two"]);
    poke(
        &s,
        "UPDATE bodies SET body = CAST('TWO' AS BLOB) WHERE id = (SELECT body_id FROM messages WHERE seq = 2)",
    );
    let before = std::fs::read(db(&s)).unwrap();
    for args in [&["peek", "q", "--count", "10"][..], &["export", "q"]] {
        let out = s.run(args);
        out.ok();
        assert!(out.stderr.contains("CRC32"), "{args:?}: {}", out.stderr);
        assert_eq!(out.lines().len(), 1, "{args:?}: only the intact message");
    }
    assert!(
        std::fs::read(db(&s)).unwrap() == before,
        "a reading command wrote the database"
    );
    assert_eq!(s.stats("q")["corrupt"], 0);
    assert_eq!(bodies(&s.pop_json("q", &["--count", "10"])), ["one"]);
    assert_eq!(s.stats("q")["corrupt"], 1);
}

/// A database of schema 3 (before failures were kept), made by the main
/// build of commit e51c455: a leased message (its receipt recorded), a dead
/// letter, two ready and one delayed. Commands that only read it leave it
/// byte for byte as it is and show no failures; the first write (a nack
/// with a reason) brings it to schema 4 keeping every message, and the
/// failure is then kept.
#[test]
fn a_database_of_schema_3_keeps_every_message_and_then_records_failures() {
    let f = OldSpool::open("sqlite-schema3-e51c455.tar.gz");
    let db = f.db.clone();
    let go = |args: &[&str]| f.run(args);
    let recorded = |name: &str| f.recorded(name);
    let before = std::fs::read(&db).unwrap();
    assert_eq!(user_version(&db), 3);
    let out = go(&["export", "work"]);
    out.ok();
    assert_eq!(out.stdout_str(), recorded("export-work.jsonl"));
    let ids: Vec<String> = out
        .json()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let dead = go(&["inspect", "work", &ids[1], "--json"]);
    dead.ok();
    assert_eq!(dead.json()[0]["state"], "dead");
    assert!(dead.json()[0]["last_failure"].is_null());
    go(&["peek", "work", "--dead"]).ok();
    assert_eq!(user_version(&db), 3, "reading commands do not upgrade");
    assert!(
        std::fs::read(&db).unwrap() == before,
        "reading commands changed the database"
    );

    let receipt = recorded("leased-receipt");
    go(&[
        "nack",
        "work",
        receipt.trim(),
        "--reason",
        "after the upgrade",
    ])
    .ok();
    assert_eq!(user_version(&db), 8);
    let out = go(&["export", "work"]);
    out.ok();
    let after = out.json();
    let want: Vec<serde_json::Value> = recorded("export-work.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(after.len(), want.len(), "every message is kept");
    for (a, w) in after.iter().zip(&want).skip(1) {
        assert_eq!(a, w);
    }
    assert_eq!(after[0]["id"], want[0]["id"]);
    assert_eq!(after[0]["state"], "ready");
    assert_eq!(after[0]["last_failure"]["text"], "after the upgrade");
    assert_eq!(after[0]["last_failure"]["attempt"], 1);
    let fsck = go(&["fsck"]);
    assert_eq!(fsck.code, 0, "{}{}", fsck.stdout_str(), fsck.stderr);
    // Its dead letter was made before dead letters kept their time: unknown, so retention by
    // age keeps it, and only a plain `purge --dead` removes it.
    assert!(after[1]["dead_at_ms"].is_null(), "{}", after[1]);
    assert_eq!(
        go(&["purge", "work", "--dead", "--older-than", "0s"])
            .ok()
            .stdout_str(),
        "0\n"
    );
    assert_eq!(go(&["purge", "work", "--dead"]).ok().stdout_str(), "1\n");
}
