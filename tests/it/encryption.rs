// Encrypted bodies (`keygen`, `--key-file`): every command that reads bodies
// gets them back; no plaintext reaches the store; a missing, wrong or refused
// key changes nothing; a body changed or moved on disk is skipped like a
// damaged record while its neighbours are served.


use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

const MARKER: &str = "PLAINTEXT-MARKER-7f3a9c";

/// `spoolmq keygen > FILE`, through a real file descriptor, so that the
/// file's mode (the shell would create it 0644) is keygen's to fix.
fn keygen(s: &Spool, name: &str) -> PathBuf {
    let path = s.scratch().join(name);
    fs::write(&path, "").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    keygen_into(&path);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "keygen makes its file private");
    path
}

fn keyed_stdin(s: &Spool, key: &Path, args: &[&str], stdin: &[u8]) -> Out {
    run(s
        .cmd()
        .arg("--key-file")
        .arg(key)
        .args(args)
        .write_stdin(stdin.to_vec()))
}

/// Every body the store keeps, raw: the files of the spool directory (fs,
/// sqlite), or the body column (postgres).
fn stored_bytes(s: &Spool) -> Vec<u8> {
    if let Some(pg) = &s.pg {
        let mut c = postgres::Client::connect(&pg_base_url(), postgres::NoTls).unwrap();
        let rows = c
            .query(
                &format!("SELECT body FROM {}.spoolmq_messages", pg.name),
                &[],
            )
            .unwrap();
        return rows.iter().flat_map(|r| r.get::<_, Vec<u8>>(0)).collect();
    }
    let mut all = Vec::new();
    let mut dirs = vec![s.dir.clone()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                all.extend(fs::read(&p).unwrap());
            }
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Rewrites the stored body of message `seq` (1 for the queue's first) with
/// `f`, fixing the store's own checksums, so that only the body's
/// authentication tag can notice.
fn rewrite_body(s: &Spool, q: &str, seq: u64, f: impl FnOnce(&mut Vec<u8>)) {
    match STORE {
        "fs" => {
            for seg in s.segment_files(q) {
                let mut b = fs::read(&seg).unwrap();
                let mut at = 16;
                while at + 40 <= b.len() {
                    let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
                    let this = u64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap());
                    if this == seq {
                        let mut body = b[at + 40..at + 40 + len].to_vec();
                        f(&mut body);
                        assert_eq!(body.len(), len, "same length only");
                        b[at + 40..at + 40 + len].copy_from_slice(&body);
                        let crc = crc32fast::hash(&body);
                        b[at + 32..at + 36].copy_from_slice(&crc.to_le_bytes());
                        let head = crc32fast::hash(&b[at..at + 36]);
                        b[at + 36..at + 40].copy_from_slice(&head.to_le_bytes());
                        fs::write(&seg, &b).unwrap();
                        return;
                    }
                    at += 40 + len;
                }
            }
            panic!("no record for seq {seq}");
        }
        "sqlite" => {
            let c = rusqlite::Connection::open(s.dir.join(".spool.db")).unwrap();
            let mut body: Vec<u8> = c
                .query_row(
                    "SELECT b.body FROM messages JOIN bodies b ON b.id = body_id WHERE queue = ?1 AND seq = ?2",
                    rusqlite::params![q, seq as i64],
                    |r| r.get(0),
                )
                .unwrap();
            f(&mut body);
            c.execute(
                "UPDATE bodies SET body = ?1 WHERE id = (SELECT body_id FROM messages WHERE queue = ?2 AND seq = ?3)",
                rusqlite::params![body, q, seq as i64],
            )
            .unwrap();
            c.execute(
                "UPDATE messages SET crc = ?1 WHERE queue = ?2 AND seq = ?3",
                rusqlite::params![crc32fast::hash(&body), q, seq as i64],
            )
            .unwrap();
        }
        _ => {
            let pg = s.pg.as_ref().unwrap();
            let mut c = postgres::Client::connect(&pg_base_url(), postgres::NoTls).unwrap();
            let table = format!("{}.spoolmq_messages", pg.name);
            let row = c
                .query_one(
                    &format!("SELECT body FROM {table} WHERE queue = $1 AND seq = $2"),
                    &[&q, &(seq as i64)],
                )
                .unwrap();
            let mut body: Vec<u8> = row.get(0);
            f(&mut body);
            c.execute(
                &format!("UPDATE {table} SET body = $1, crc = $2 WHERE queue = $3 AND seq = $4"),
                &[&body, &i64::from(crc32fast::hash(&body)), &q, &(seq as i64)],
            )
            .unwrap();
        }
    }
}

fn stored_body(s: &Spool, q: &str, seq: u64) -> Vec<u8> {
    let mut out = Vec::new();
    rewrite_body(s, q, seq, |b| out = b.clone());
    out
}

#[test]
fn every_command_that_reads_bodies_gets_them_back_and_the_store_never_sees_them() {
    let s = Spool::new();
    let key = keygen(&s, "k");
    let m = |i: u32| format!("{MARKER} {i}");
    keyed(&s, &key, &["push", "q", &m(1), &m(2)]).ok();
    let lines = format!("{}\n{}\n", m(3), m(4));
    keyed_stdin(&s, &key, &["push", "q", "--lines"], lines.as_bytes()).ok();
    let binary: Vec<u8> = [MARKER.as_bytes(), &[0, 0xff, 0xfe]].concat();
    keyed_stdin(&s, &key, &["push", "q"], &binary).ok();
    keyed(&s, &key, &["push", "q", ""]).ok();

    let raw = stored_bytes(&s);
    assert!(!raw.is_empty());
    assert!(
        !contains(&raw, MARKER),
        "a plaintext body reached the store"
    );

    // peek, then pop, see every body.
    let peeked = keyed(&s, &key, &["peek", "q", "--count", "10", "--json"]);
    peeked.ok();
    assert_eq!(peeked.json().len(), 6);
    let popped = keyed(&s, &key, &["pop", "q", "--count", "2", "--json"]);
    popped.ok();
    let popped = popped.json();
    assert_eq!(bodies(&popped), vec![m(1), m(2)]);
    assert_eq!(attempt(&popped[0]), 1);

    // export sees the rest (the leased ones too); import re-encrypts them.
    let exported = keyed(&s, &key, &["export", "q"]);
    exported.ok();
    let dump = exported.stdout.clone();
    assert_eq!(exported.json().len(), 6);
    assert!(contains(&dump, MARKER));
    keyed_stdin(&s, &key, &["import", "copy"], &dump).ok();
    assert!(!contains(&stored_bytes(&s), MARKER));
    let copied = keyed(&s, &key, &["pop", "copy", "--count", "10", "--json"]);
    copied.ok();
    let copied = copied.json();
    assert_eq!(copied.len(), 6);
    assert_eq!(body_bytes(&copied[4]), binary);
    assert_eq!(body(&copied[5]), "");

    // exec hands the plain body to the command.
    let seen = s.scratch().join("seen");
    let script = format!("cat > {}", seen.display());
    keyed(&s, &key, &["exec", "q", "--", "sh", "-c", &script]).ok();
    assert_eq!(fs::read_to_string(&seen).unwrap(), m(3));
    let rest = keyed(&s, &key, &["pop", "q", "--count", "10", "--json"]);
    rest.ok();
    let rest = rest.json();
    assert_eq!(body(&rest[0]), m(4));
    assert_eq!(body_bytes(&rest[1]), binary);
}

#[test]
fn a_missing_or_wrong_key_exits_1_and_leases_nothing() {
    let s = Spool::new();
    let key = keygen(&s, "k");
    let other = keygen(&s, "other");
    keyed(&s, &key, &["push", "q", "a", "b"]).ok();

    for (args, with) in [
        (vec!["pop", "q"], None),
        (vec!["pop", "q", "--count", "5"], Some(&other)),
        (vec!["peek", "q"], None),
        (vec!["peek", "q"], Some(&other)),
        (vec!["export", "q"], None),
        (vec!["exec", "q", "--", "true"], None),
        (vec!["exec", "q", "--", "true"], Some(&other)),
        (vec!["push", "q", "c"], None),
        (vec!["push", "q", "c"], Some(&other)),
    ] {
        let out = match with {
            Some(k) => keyed(&s, k, &args),
            None => s.run(&args),
        };
        out.fails(1).stdout_empty();
        let line = out.error_line();
        assert!(
            line.contains("encrypted") || line.contains("is not the key of queue q"),
            "{args:?}: {line}"
        );
    }
    // Nothing was leased, counted or added.
    assert_counts(
        &s.stats("q"),
        &[("ready", 2), ("leased", 0), ("dead", 0), ("pushed", 2)],
    );
    let got = keyed(&s, &key, &["pop", "q", "--count", "5", "--json"]);
    got.ok();
    let got = got.json();
    assert_eq!(bodies(&got), vec!["a", "b"]);
    assert!(got.iter().all(|m| attempt(m) == 1));
    // Commands that read no body need no key.
    let receipts: Vec<&str> = got.iter().map(receipt).collect();
    s.run(&[&["ack", "q"][..], &receipts].concat()).ok();
}

/// Each of `commands` on queue `q` with `key` exits 1 saying the queue
/// keeps plain text.
fn refused_as_plain(s: &Spool, key: &Path, commands: &[Vec<&str>]) {
    for args in commands {
        let out = keyed(s, key, args);
        out.fails(1).stdout_empty();
        let line = out.error_line();
        assert!(line.contains("plain text"), "{args:?}: {line}");
    }
}

#[test]
fn a_plain_queue_takes_no_key_neither_to_push_nor_to_read() {
    let s = Spool::new();
    let key = keygen(&s, "k");
    s.push("plain", &["x"]);
    refused_as_plain(
        &s,
        &key,
        &[vec!["push", "plain", "y"], vec!["pop", "plain"]],
    );
    assert_eq!(body(&s.pop_one("plain", &[])), "x");
}

/// Removes the store's record that queue `q` is encrypted, as someone who
/// can write the spool (but has no key) could.
fn forget_key(s: &Spool, q: &str) {
    match STORE {
        "fs" => fs::remove_file(s.queue_dir(q).join("key")).unwrap(),
        "sqlite" => {
            let c = rusqlite::Connection::open(s.dir.join(".spool.db")).unwrap();
            c.execute("DELETE FROM keys WHERE queue = ?1", [q]).unwrap();
        }
        _ => {
            let pg = s.pg.as_ref().unwrap();
            let mut c = postgres::Client::connect(&pg_base_url(), postgres::NoTls).unwrap();
            c.execute(
                &format!(
                    "UPDATE {}.spoolmq_queues SET key_id = NULL WHERE name = $1",
                    pg.name
                ),
                &[&q],
            )
            .unwrap();
        }
    }
}

#[test]
fn a_queue_stripped_of_its_key_record_serves_no_forged_plain_body_to_a_reader_with_the_key() {
    let s = Spool::new();
    let key = keygen(&s, "k");
    keyed(&s, &key, &["push", "q", "genuine"]).ok();
    forget_key(&s, "q");
    // Without the record the queue looks like a plain one: a forger can push.
    s.push("q", &["FORGED"]);
    // A reader with the key expects an encrypted queue and is told it is not.
    refused_as_plain(
        &s,
        &key,
        &[vec!["pop", "q"], vec!["peek", "q"], vec!["export", "q"]],
    );
    assert_counts(&s.stats("q"), &[("ready", 2), ("leased", 0)]);
}

#[test]
fn a_body_changed_or_moved_on_disk_is_skipped_and_its_neighbours_are_served() {
    let s = Spool::new();
    let key = keygen(&s, "k");
    keyed(&s, &key, &["push", "q", "msg-1", "msg-2", "msg-3", "msg-4"]).ok();
    // Message 2: one bit of its ciphertext flipped. Message 1: message 3's
    // body, whole and valid, copied over it.
    rewrite_body(&s, "q", 2, |b| b[30] ^= 1);
    let third = stored_body(&s, "q", 3);
    rewrite_body(&s, "q", 1, |b| b.copy_from_slice(&third));

    let out = keyed(&s, &key, &["pop", "q", "--count", "10", "--json"]);
    out.ok();
    assert_eq!(bodies(&out.json()), vec!["msg-3", "msg-4"]);
    let notes: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(notes.len(), 2, "{}", out.stderr);
    assert!(
        notes.iter().all(|l| l.contains("cannot be decrypted")),
        "{notes:?}"
    );
    // Reported once, never served, not counted as waiting.
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 2)]);
    keyed(&s, &key, &["pop", "q"]).fails(3);
}

#[test]
fn a_key_file_others_can_read_or_that_is_not_a_key_is_refused() {
    let s = Spool::new();
    let key = keygen(&s, "k");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let out = keyed(&s, &key, &["push", "q", "x"]);
    out.fails(1).stdout_empty();
    assert!(
        out.error_line().contains("chmod 600"),
        "{}",
        out.error_line()
    );
    let junk = s.scratch().join("junk");
    fs::write(&junk, "not a key\n").unwrap();
    fs::set_permissions(&junk, fs::Permissions::from_mode(0o600)).unwrap();
    let out = keyed(&s, &junk, &["push", "q", "x"]);
    out.fails(1);
    assert!(out.error_line().contains("keygen"), "{}", out.error_line());
    let out = keyed(&s, &s.scratch().join("missing"), &["push", "q", "x"]);
    out.fails(1);
    // The environment variable works like the flag.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    run(s
        .cmd()
        .env("SPOOLMQ_KEY_FILE", &key)
        .args(["push", "q", "x"]))
    .ok();
    s.run(&["pop", "q"]).fails(1);
    let m = run(s
        .cmd()
        .env("SPOOLMQ_KEY_FILE", &key)
        .args(["pop", "q", "--json"]));
    m.ok();
    assert_eq!(body(&m.json()[0]), "x");
    assert!(s.run(&["list"]).stdout_str().contains('q'));
}

#[test]
fn migrate_moves_an_encrypted_queue_without_the_key_and_it_stays_encrypted() {
    if not_on_this_store("migrate in place converts a spool directory") {
        return;
    }
    let s = Spool::new();
    let key = keygen(&s, "k");
    keyed(&s, &key, &["push", "q", MARKER]).ok();
    let cmd = || {
        let mut c = s.cmd();
        c.env_remove("SPOOLMQ_STORE");
        c
    };
    run(cmd().args(["migrate", "--to", "sqlite"])).ok();
    assert!(fs::exists(s.dir.join(".spool.db")).unwrap());
    assert!(!contains(&stored_bytes(&s), MARKER));
    run(cmd().args(["pop", "q"])).fails(1);
    let m = run(cmd()
        .arg("--key-file")
        .arg(&key)
        .args(["pop", "q", "--json"]));
    m.ok();
    assert_eq!(body(&m.json()[0]), MARKER);
}

#[test]
fn fsck_with_the_key_finds_changed_bodies_and_repair_sets_them_aside() {
    let s = Spool::new();
    let key = keygen(&s, "k");
    keyed(&s, &key, &["push", "q", "msg-1", "msg-2", "msg-3"]).ok();
    rewrite_body(&s, "q", 2, |b| b[30] ^= 1);

    // Without the key the store's own checks pass, and fsck says what it
    // could not check.
    let out = s.run(&["fsck"]);
    out.ok();
    assert!(out.stderr.contains("encrypted"), "{}", out.stderr);

    let out = keyed(&s, &key, &["fsck", "q"]);
    out.fails(1);
    let found: Vec<String> = out
        .lines()
        .into_iter()
        .filter(|l| l.contains("cannot be decrypted"))
        .collect();
    assert_eq!(found.len(), 1, "{}", out.stdout_str());
    // A queue with another key is a note, not a stop.
    let other = keygen(&s, "other");
    keyed(&s, &other, &["push", "a", "x"]).ok();
    let out = keyed(&s, &key, &["fsck"]);
    out.code(1);
    assert!(
        out.stderr.contains("a: bodies not checked"),
        "{}",
        out.stderr
    );
    assert!(out.stdout_str().contains("cannot be decrypted"));
    keyed(&s, &key, &["fsck", "q", "--repair"]).ok();
    keyed(&s, &key, &["fsck", "q"]).ok();
    let got = keyed(&s, &key, &["pop", "q", "--count", "5", "--json"]);
    got.ok();
    assert_eq!(bodies(&got.json()), vec!["msg-1", "msg-3"]);
    assert!(got.stderr.is_empty(), "{}", got.stderr);
}
