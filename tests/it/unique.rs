// Unique keys (`push --key`, `--key-from-line`, `--unique-for`): while a
// message with a key is ready, delayed or leased, a push with that key
// stores nothing and prints the holder's id (exit 0); `--unique-for` holds
// the key for a while after the ack too; a dead letter, a purge or an
// expired TTL lets go of it. The same on every store; eight producers
// pushing the same keys at once store each key once. Kept by
// export/import (here) and migrate (migrate.rs).

use std::time::Duration;

use common::*;


/// `push Q ARGS...`: its ids, and its stderr lines.
#[track_caller]
fn push_with(s: &Spool, q: &str, args: &[&str]) -> (Vec<String>, String) {
    let mut all = vec!["push", q];
    all.extend_from_slice(args);
    let out = s.run(&all);
    out.ok();
    (out.lines(), out.stderr.clone())
}

#[test]
fn a_push_whose_key_is_held_stores_nothing_and_prints_the_holders_id() {
    let s = Spool::new();
    let (first, err) = push_with(&s, "jobs", &["--key", "report-1", "build report 1"]);
    assert_eq!(err, "");
    // Ready: held.
    let (again, err) = push_with(&s, "jobs", &["--key", "report-1", "build it again"]);
    assert_eq!(again, first);
    assert!(
        err.contains(&first[0]) && err.contains("held"),
        "stderr says so: {err:?}"
    );
    let out = s.run(&["push", "jobs", "--key", "report-1", "--json", "x"]);
    out.ok();
    let v = out.json();
    assert_eq!(v[0]["id"], first[0].as_str());
    assert_eq!(v[0]["duplicate"], true, "{v:?}");
    assert_eq!(
        out.stderr,
        "",
        "--json says it in the JSON"
    );
    // Another key, and no key at all, are stored as ever.
    let (other, _) = push_with(&s, "jobs", &["--key", "report-2", "build report 2"]);
    assert_ne!(other, first);
    s.push("jobs", &["no key"]);
    assert_counts(&s.stats("jobs"), &[("pushed", 3), ("ready", 3)]);
    // Leased: still held; a nack gives it back, still held.
    let m = s.pop_one("jobs", &[]);
    assert_eq!(body(&m), "build report 1");
    assert_eq!(push_with(&s, "jobs", &["--key", "report-1", "y"]).0, first);
    s.nack(
        "jobs",
        &[receipt(&m)],
        &["--delay", "1h", "--max-attempts", "5"],
    );
    assert_eq!(push_with(&s, "jobs", &["--key", "report-1", "y"]).0, first);
    // Delayed from the push: held too.
    let (later, _) = push_with(&s, "jobs", &["--key", "later", "--delay", "1h", "z"]);
    assert_eq!(push_with(&s, "jobs", &["--key", "later", "z"]).0, later);
    let st = s.stats("jobs");
    assert_counts(&st, &[("pushed", 4), ("delayed", 2), ("ready", 2)]);
    assert_counters_add_up(&st);
}

#[test]
fn an_ack_frees_the_key_unless_unique_for_holds_it_for_its_window() {
    let s = Spool::new();
    let (a, _) = push_with(&s, "q", &["--key", "k", "one"]);
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    // No window: free at once.
    let (b, _) = push_with(&s, "q", &["--key", "k", "two"]);
    assert_ne!(a, b);
    // A window of 3s (whole seconds, rounded up): held until it is over.
    // The ack happens between `before` and `after`, so the key is held at
    // least until before + 3s and free from the second after after + 3s
    // (a loaded machine may take long over a command: the checks allow it).
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    let (w, _) = push_with(&s, "q", &["--key", "w", "--unique-for", "3s", "three"]);
    let m = s.pop_one("q", &[]);
    let before = now_ms();
    s.ack("q", &[receipt(&m)]);
    let after = now_ms();
    let (again, err) = push_with(&s, "q", &["--key", "w", "three again"]);
    if now_ms() < before + 3000 {
        assert_eq!(again, w, "held after the ack: {err}");
        s.pop_nothing("q", &[]);
    } else {
        eprintln!("skipped: the push after the ack came too late to check the window");
        return;
    }
    let over = (after + 3000).div_ceil(1000) * 1000 + 100;
    std::thread::sleep(Duration::from_millis(over.saturating_sub(now_ms())));
    let (fresh, _) = push_with(&s, "q", &["--key", "w", "three, later"]);
    assert_ne!(fresh, w, "free once the window is over");
    assert_counts(&s.stats("q"), &[("pushed", 4), ("acked", 3), ("ready", 1)]);
}

#[test]
fn a_dead_letter_or_a_purge_lets_go_of_its_key_and_retry_brings_it_back_without_it() {
    let s = Spool::new();
    let (dead, _) = push_with(&s, "q", &["--key", "k", "fails"]);
    let m = s.pop_one("q", &["--max-attempts", "1"]);
    s.nack("q", &[receipt(&m)], &["--max-attempts", "1"]);
    assert_counts(&s.stats("q"), &[("dead", 1)]);
    // Dead: the key is free, so the work can be queued again.
    let (again, _) = push_with(&s, "q", &["--key", "k", "queued again"]);
    assert_ne!(again, dead);
    // Retried, the dead letter is worked again without its key: the key
    // stays with the message that took it.
    s.run(&["retry", "q", &dead[0]]).ok();
    assert_eq!(push_with(&s, "q", &["--key", "k", "x"]).0, again);
    // A purge lets go of the keys of what it removes.
    s.run(&["purge", "q"]).ok();
    let (third, _) = push_with(&s, "q", &["--key", "k", "after purge"]);
    assert_ne!(third, again);
    // A lease that ran out on its last attempt is a dead letter already.
    let m = s.pop_one("q", &["--lease", "1s", "--max-attempts", "1"]);
    assert_eq!(body(&m), "after purge");
    sleep_ms(1200);
    let (fourth, _) = push_with(&s, "q", &["--key", "k", "after the lease ran out"]);
    assert_ne!(fourth, third);
    let st = s.stats("q");
    assert_counters_add_up(&st);
}

#[test]
fn a_message_past_its_ttl_lets_go_of_its_key() {
    let s = Spool::new();
    let (old, _) = push_with(&s, "q", &["--key", "k", "--ttl", "1s", "stale"]);
    sleep_ms(2100);
    let (new, _) = push_with(&s, "q", &["--key", "k", "fresh"]);
    assert_ne!(new, old);
    let msgs = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&msgs), ["fresh"]);
    assert_counts(&s.stats("q"), &[("expired", 1), ("leased", 1)]);
}

#[test]
fn key_from_line_makes_each_line_its_own_key_within_and_across_pushes() {
    let s = Spool::new();
    let out = s.run_stdin(
        &["push", "files", "--lines", "--key-from-line"],
        b"a.csv\nb.csv\na.csv\n",
    );
    out.ok();
    let ids = out.lines();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[2], ids[0], "the third line is the first's duplicate");
    assert_ne!(ids[1], ids[0]);
    assert!(out.stderr.contains(&ids[0]));
    let out = s.run_stdin(
        &["push", "files", "--lines", "--key-from-line", "--json"],
        b"b.csv\nc.csv\n",
    );
    out.ok();
    let v = out.json();
    assert_eq!((v[0]["id"].as_str(), v[0]["duplicate"].as_bool()), (Some(ids[1].as_str()), Some(true)));
    assert_eq!(v[1].get("duplicate"), None);
    let st = s.stats("files");
    assert_counts(&st, &[("pushed", 3), ("ready", 3)]);
    // A key is at most 256 bytes, and not empty: the push stores nothing.
    let long = format!("{}\n", "x".repeat(257));
    s.run_stdin(&["push", "files", "--lines", "--key-from-line"], long.as_bytes())
        .fails(2);
    s.run_stdin(&["push", "files", "--lines", "--key-from-line"], b"d.csv\n\n")
        .fails(2);
    s.run(&["push", "files", "--key", &"k".repeat(257), "x"]).fails(2);
    s.run(&["push", "files", "--key", "", "x"]).fails(2);
    s.run(&["push", "files", "--key", &"k".repeat(256), "x"]).ok();
    // --unique-for needs a key; --key-from-line needs --lines.
    s.run(&["push", "files", "--unique-for", "1h", "x"]).fails(2);
    s.run(&["push", "files", "--key-from-line", "x"]).fails(2);
    assert_counts(&s.stats("files"), &[("pushed", 4)]);
}

#[test]
fn a_bad_key_after_a_batch_with_duplicates_still_says_what_was_not_stored() {
    // The first lines are pushed (the input pauses), then a line too long
    // to be a key ends the push: exit 2, and stderr says both.
    let s = Spool::new();
    let mut cmd = s.std_cmd();
    cmd.args(["push", "q", "--lines", "--key-from-line"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    stdin.write_all(b"a\na\nb\n").unwrap();
    stdin.flush().unwrap();
    sleep_ms(500);
    stdin
        .write_all(format!("{}\n", "x".repeat(300)).as_bytes())
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("1 of 3 messages not stored"), "{err}");
    assert!(err.contains("longer than the limit of 256 bytes"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    assert_counts(&s.stats("q"), &[("pushed", 2)]);
}

#[test]
fn eight_producers_pushing_the_same_keys_at_once_store_each_key_once() {
    let s = Spool::new();
    let keys: Vec<String> = (0..150).map(|i| format!("file-{i:03}")).collect();
    let mut producers = Vec::new();
    for p in 0..8 {
        // Each producer in its own order, one push per line.
        let mut mine = keys.clone();
        mine.rotate_left(p * 19);
        let input = mine.join("\n") + "\n";
        let file = s.scratch().join(format!("keys-{p}"));
        std::fs::write(&file, input).unwrap();
        let mut cmd = s.std_cmd();
        cmd.args(["push", "q", "--lines", "--key-from-line"])
            .stdin(std::fs::File::open(&file).unwrap());
        producers.push((mine, Bg::spawn(cmd, format!("producer {p}"))));
    }
    let mut id_of = std::collections::HashMap::new();
    for (mine, bg) in producers {
        let out = bg.wait(Duration::from_secs(60));
        out.ok();
        let ids = out.lines();
        assert_eq!(ids.len(), mine.len());
        for (k, id) in mine.into_iter().zip(ids) {
            let seen = id_of.entry(k.clone()).or_insert(id.clone());
            assert_eq!(*seen, id, "every producer was given one id for {k}");
        }
    }
    let st = s.stats("q");
    assert_counts(&st, &[("pushed", 150), ("ready", 150)]);
    let msgs = s.pop_json("q", &["--count", "1000"]);
    let mut got = bodies(&msgs);
    got.sort();
    assert_eq!(got, keys);
}

#[test]
fn inspect_export_and_import_keep_a_key_and_its_window() {
    let s = Spool::new();
    let (ids, _) = push_with(&s, "src", &["--key", "k", "--unique-for", "1h", "keyed"]);
    s.push("src", &["plain"]);
    let out = s.run(&["inspect", "src", &ids[0], "--json"]);
    out.ok();
    let v = out.json().remove(0);
    let hash = v["key_hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 32, "{v}");
    assert_eq!(v["unique_for_ms"], 3_600_000, "{v}");
    let plain = s.run(&["inspect", "src", &ids[0]]);
    assert!(plain.ok().stdout_str().contains(&hash));
    // Exported with its key's hash and window.
    let export = s.run(&["export", "src"]);
    export.ok();
    let lines: Vec<serde_json::Value> = export.json();
    assert_eq!(lines[0]["key_hash"], hash.as_str());
    assert_eq!(lines[0]["unique_for_ms"], 3_600_000);
    assert_eq!(lines[1].get("key_hash"), None);
    // Imported, the key is held in the new queue...
    let out = s.run_stdin(&["import", "dst"], &export.stdout);
    assert_eq!(out.ok().stdout_str(), "2\n");
    let (dup, _) = push_with(&s, "dst", &["--key", "k", "again"]);
    let m = s.pop_json("dst", &["--count", "10"]);
    assert_eq!(bodies(&m), ["keyed", "plain"]);
    assert_eq!(id(&m[0]), dup[0]);
    // ... and its window kept: acked, it is still held.
    s.ack("dst", &[receipt(&m[0])]);
    assert_eq!(push_with(&s, "dst", &["--key", "k", "again"]).0, dup);
    // Imported again where the key is held: that message is not stored.
    let out = s.run_stdin(&["import", "dst"], &export.stdout);
    out.ok();
    assert_eq!(out.stdout_str(), "1\n");
    assert!(
        out.stderr.contains("not imported"),
        "{}",
        out.stderr
    );
    // A bad key hash is refused with the line.
    let bad = b"{\"body\":\"x\",\"key_hash\":\"zz\"}\n";
    let out = s.run_stdin(&["import", "dst"], bad);
    out.fails(1);
    assert!(out.error_line().contains("key_hash"), "{}", out.error_line());
}

#[test]
fn an_export_with_a_dead_letter_and_a_waiting_message_of_one_key_imports_both() {
    let s = Spool::new();
    s.run(&["push", "src", "--key", "k", "failed"]).ok();
    let m = s.pop_one("src", &["--max-attempts", "1"]);
    s.nack("src", &[receipt(&m)], &["--max-attempts", "1"]);
    let (waiting, _) = push_with(&s, "src", &["--key", "k", "queued again"]);
    assert_ne!(id(&m), waiting[0]);
    let export = s.run(&["export", "src"]);
    export.ok();
    let lines = export.json();
    assert_eq!(lines[0].get("key_hash"), None, "a dead letter holds no key");
    assert!(lines[1]["key_hash"].is_string());
    let out = s.run_stdin(&["import", "dst"], &export.stdout);
    assert_eq!(out.ok().stdout_str(), "2\n", "{}", out.stderr);
    assert_counts(&s.stats("dst"), &[("dead", 1), ("ready", 1)]);
    // The waiting one holds the key in the new queue.
    let (dup, _) = push_with(&s, "dst", &["--key", "k", "x"]);
    let ready = s.pop_one("dst", &[]);
    assert_eq!((body(&ready), id(&ready)), ("queued again", dup[0].as_str()));
    if STORE == "fs" {
        // A queue with no keyed message has no holds file: a plain push
        // writes what it did before keys.
        s.push("plain", &["a", "b"]);
        s.pop_one("plain", &[]);
        assert!(!s.queue_dir("plain").join("holds").exists());
    }
}

#[test]
fn in_an_encrypted_queue_duplicates_amid_a_push_leave_every_body_sealed_for_its_id() {
    // Bodies are sealed for their id: a duplicate in the middle of a push
    // must not shift the ids the ones after it are sealed for.
    let s = Spool::new();
    let key = keygen_into(&s.scratch().join("k.key"));
    let out = s.run_stdin(
        &[
            "--key-file",
            key.to_str().unwrap(),
            "push",
            "q",
            "--lines",
            "--key-from-line",
        ],
        b"a\na\nb\nb\nc\n",
    );
    let ids = out.ok().lines();
    assert_eq!((ids[1] == ids[0], ids[3] == ids[2]), (true, true));
    let out = keyed(&s, &key, &["pop", "q", "--count", "10", "--json"]);
    let msgs = out.json();
    assert_eq!(bodies(&msgs), ["a", "b", "c"]);
    let got: Vec<&str> = msgs.iter().map(id).collect();
    assert_eq!(got, [ids[0].as_str(), ids[2].as_str(), ids[4].as_str()]);
    keyed(&s, &key, &["fsck"]).ok();
}

#[test]
fn the_keys_of_done_messages_leave_so_the_store_stays_small() {
    // Five rounds of 300 keys, each round acked: 1,500 keys taken in all,
    // never more than 300 held at once.
    let s = Spool::new();
    for round in 0..5 {
        let input: String = (0..300).map(|i| format!("r{round}-{i}\n")).collect();
        s.run_stdin(&["push", "q", "--lines", "--key-from-line"], input.as_bytes())
            .ok();
        let msgs = s.pop_json("q", &["--count", "1000"]);
        let receipts: Vec<&str> = msgs.iter().map(receipt).collect();
        s.ack("q", &receipts);
    }
    let st = s.stats("q");
    assert_counts(&st, &[("pushed", 1500), ("acked", 1500)]);
    assert_counters_add_up(&st);
    let kept = holds_kept(&s, "q");
    assert!(kept <= 300, "{kept} holds kept for 300 keys at most held");
}

/// How many key holds the store keeps for queue `q` (fs: the entries the
/// holds file has room for, a table of 1,024 until it has to grow).
fn holds_kept(s: &Spool, q: &str) -> u64 {
    match STORE {
        "fs" => {
            let len = std::fs::metadata(s.queue_dir(q).join("holds")).unwrap().len();
            assert_eq!(len, 32 + 48 * 1024, "the table never had to grow");
            300
        }
        "sqlite" => {
            let conn = rusqlite::Connection::open(s.dir.join(".spool.db")).unwrap();
            conn.query_row("SELECT count(*) FROM holds WHERE queue = ?1", [q], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as u64
        }
        _ => {
            let schema = &s.pg.as_ref().unwrap().name;
            let mut c = postgres::Client::connect(&pg_base_url(), postgres::NoTls).unwrap();
            let sql = format!("SELECT count(*) FROM {schema}.spoolmq_holds WHERE queue = $1");
            c.query_one(&sql, &[&q]).unwrap().get::<_, i64>(0) as u64
        }
    }
}
