// What only the sqlite store has: the recorded store, its database file, and
// damage to that file. (The shared suite runs on this store through the
// `tests/sqlite_*.rs` files; see `common::STORE`.)

mod common;

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
    assert!(record.starts_with("spoolmq-store 1 sqlite "), "{record:?}");
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
        "UPDATE messages SET body = CAST('TWO' AS BLOB) WHERE seq = 2",
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

#[test]
fn a_database_of_schema_1_is_brought_up_to_date_and_keeps_its_messages() {
    let s = Spool::new();
    s.push("q", &["from schema 1"]);
    // What a build before encryption left: no `keys` table, user_version 1.
    poke(&s, "DROP TABLE keys; PRAGMA user_version = 1;");
    let key = keygen_into(&s.scratch().join("k"));
    keyed(&s, &key, &["push", "secret", "x"]).ok();
    let conn = rusqlite::Connection::open(db(&s)).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    assert_eq!(body(&s.pop_one("q", &[])), "from schema 1");
    s.run(&["pop", "secret"]).fails(1);
}
