// What only the PostgreSQL store has: workers sharing one queue through a
// URL, connection errors, migration to and from a database, and its schema
// (older versions brought up to date; bodies stored EXTERNAL, read in
// chunks, and the compressed ones of an older database still read). (The shared
// suites run on this store too: see `tests/it/main.rs`.)

use crate::env_pg::*;
use std::collections::HashMap;
use std::time::Duration;

#[test]
fn eight_workers_on_one_queue_process_5000_messages_exactly_once() {
    let s = Spool::new();
    let lines: String = (0..5000).map(|i| format!("job-{i}\n")).collect();
    s.run_stdin(&["push", "work", "--lines"], lines.as_bytes())
        .ok();
    let out_dir = s.scratch().join("done");
    std::fs::create_dir_all(&out_dir).unwrap();
    // Each worker pops 25 at a time, appends the bodies to a file of its
    // own, and acks them; it stops when nothing is left (exit 3).
    let workers: Vec<Bg> = (0..8)
        .map(|w| {
            let file = out_dir.join(format!("w{w}"));
            let script = format!(
                "while true; do \
                   out=$(spoolmq pop work --count 25 --json) || {{ rc=$?; test $rc -eq 3 && exit 0; exit $rc; }}; \
                   printf '%s\\n' \"$out\" | jq -r .body >> '{f}'; \
                   spoolmq ack work $(printf '%s\\n' \"$out\" | jq -r .receipt) || exit 1; \
                 done",
                f = file.display()
            );
            let mut cmd = std::process::Command::new("bash");
            cmd.args(["-c", &script])
                .env("PATH", path_with_bin())
                .env("SPOOLMQ_URL", s.url().unwrap())
                .stdin(std::process::Stdio::null());
            Bg::spawn(cmd, format!("worker {w}"))
        })
        .collect();
    for w in workers {
        w.wait(Duration::from_secs(120)).ok();
    }
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut per_worker = Vec::new();
    for w in 0..8 {
        let text = std::fs::read_to_string(out_dir.join(format!("w{w}"))).unwrap_or_default();
        per_worker.push(text.lines().count());
        for line in text.lines() {
            *seen.entry(line.to_string()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 5000, "every message was processed");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "processed more than once: {twice:?}");
    assert!(
        per_worker.iter().filter(|n| **n > 0).count() >= 4,
        "the work was shared: {per_worker:?}"
    );
    let v = s.stats("work");
    assert_eq!(
        (v["acked"].as_u64(), v["ready"].as_u64()),
        (Some(5000), Some(0)),
        "{v}"
    );
}

#[test]
fn a_server_that_cannot_be_reached_is_one_line_and_exit_1() {
    let out = run(bare_spoolmq()
        .env("SPOOLMQ_URL", "postgresql://nobody@127.0.0.1:1/none")
        .args(["push", "q", "x"]));
    out.fails(1);
    let line = out.error_line();
    assert!(
        line.contains("127.0.0.1:1") && line.contains("connect"),
        "{line}"
    );
    assert!(
        !line.contains("nobody@"),
        "no credentials in messages: {line}"
    );
    // Not a URL at all: a usage error.
    let bad = run(bare_spoolmq().args(["--url", "mysql://x", "stats"]));
    bad.fails(2);
}

#[test]
fn tls_is_used_when_asked_for_and_an_untrusted_server_is_refused() {
    let base = pg_base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}sslmode=require");
    let stats = |env: &[(&str, &str)]| {
        let mut cmd = bare_spoolmq();
        cmd.env("SPOOLMQ_URL", &url).args(["stats"]);
        cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };
    // Against the system's roots: the test server's own CA is not among
    // them (or the server has no TLS at all): refused, never sent in clear.
    let refused = stats(&[]);
    refused.fails(1);
    assert!(
        refused.error_line().contains("TLS"),
        "{}",
        refused.error_line()
    );
    // Trusting the CA that signed its certificate: it works.
    let Some(ca) = pg_test_ca() else { return };
    stats(&[("SSL_CERT_FILE", &ca)]).ok();
    // A CA file that holds no certificate: refused with a reason.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let none = stats(&[("SSL_CERT_FILE", empty.path().to_str().unwrap())]);
    none.fails(1);
    assert!(
        none.error_line().contains("TLS") && none.error_line().contains("certificate"),
        "{}",
        none.error_line()
    );
}

#[test]
fn the_url_wins_over_the_directory() {
    let s = Spool::new();
    s.push("q", &["in the database"]);
    assert!(!s.dir.exists(), "nothing was written to the directory");
    let got = s.pop_one("q", &[]);
    assert_eq!(got["body"], "in the database");
}

#[test]
fn a_spool_migrates_into_postgres_and_back_keeping_everything() {
    // A directory spool (fs) with messages in every state.
    let fs_spool = tempfile::tempdir().unwrap();
    let dir = fs_spool.path().join("spool");
    let fs = |args: &[&str]| {
        run(bare_spoolmq()
            .env("SPOOLMQ_STORE", "fs")
            .arg("--dir")
            .arg(&dir)
            .args(args))
    };
    fs(&["push", "jobs", "a", "b", "c", "d"]).ok();
    let leased = fs(&["pop", "jobs", "--json", "--lease", "1h"]).json();
    fs(&["push", "jobs", "--delay", "1h", "later"]).ok();
    // With a TTL: one expired (ten seconds on, by the test builds' clock
    // skew, a pop meets it), one still to run.
    fs(&["push", "jobs", "--ttl", "1s", "gone"]).ok();
    fs(&["push", "jobs", "--ttl", "1h", "timed"]).ok();
    // A unique key held by a waiting message.
    fs(&["push", "keyed", "--key", "k", "held"]).ok();
    // Priorities.
    fs(&["push", "ranked", "plain"]).ok();
    fs(&["push", "ranked", "--priority", "7", "p7"]).ok();
    // An ordered group, its head leased.
    fs(&["push", "grouped", "--group", "g", "g1", "g2"]).ok();
    fs(&["push", "grouped", "other"]).ok();
    fs(&["pop", "grouped", "--lease", "1h"]).ok();
    let skewed = run(bare_spoolmq()
        .env("SPOOLMQ_STORE", "fs")
        .env("SPOOLMQ_TEST_CLOCK_SKEW_MS", "10000")
        .arg("--dir")
        .arg(&dir)
        .args(["pop", "jobs", "--json", "--count", "10"]));
    assert_eq!(bodies(&skewed.ok().json()), ["b", "c", "d", "timed"]);
    let export = |out: Out| {
        out.ok();
        out.stdout_str()
    };
    let before = export(fs(&["export", "jobs"]));
    assert!(
        before.contains("\"expired\":true") && before.contains("\"ttl_ms\":3600000"),
        "{before}"
    );
    // Into the database (a fresh schema).
    let s = Spool::new();
    let url = s.url().unwrap().to_string();
    fs(&["migrate", "--to", "postgres", "--into", &url]).ok();
    assert_eq!(export(s.run(&["export", "jobs"])), before);
    let dup = s.run(&["push", "keyed", "--key", "k", "again", "--json"]);
    assert_eq!(
        dup.ok().json()[0]["duplicate"],
        true,
        "the key's hold came along"
    );
    let ranked = s.run(&["peek", "ranked", "--count", "2", "--json"]);
    assert_eq!(
        bodies(&ranked.ok().json()),
        ["p7", "plain"],
        "priorities came along"
    );
    let grouped = s.run(&["peek", "grouped", "--count", "3", "--json"]);
    assert_eq!(
        bodies(&grouped.ok().json()),
        ["other"],
        "the group came along, its head still leased"
    );
    // The lease taken before the migration still acks there.
    let receipt = leased[0]["receipt"].as_str().unwrap();
    s.ack("jobs", &[receipt]);
    // And back out into a new directory.
    let back = fs_spool.path().join("back");
    let back_str = back.to_str().unwrap();
    s.run(&["migrate", "--to", "sqlite", "--into", back_str])
        .ok();
    let after = export(s.run(&["export", "jobs"]));
    let there = run(bare_spoolmq()
        .arg("--dir")
        .arg(&back)
        .args(["export", "jobs"]));
    assert_eq!(export(there), after);
    // In place makes no sense for a database.
    s.run(&["migrate", "--to", "fs"]).fails(2);
    fs(&["migrate", "--to", "postgres"]).fails(2);
}

#[test]
fn leases_follow_the_servers_clock_not_the_hosts() {
    let s = Spool::new();
    s.push("q", &["job"]);
    // A worker whose clock is an hour fast takes a 2-second lease...
    let skewed = run(s
        .cmd()
        .env("SPOOLMQ_TEST_CLOCK_SKEW_MS", "3600000")
        .args(["pop", "q", "--lease", "2s", "--json"]));
    skewed.ok();
    // ...which, for a worker whose clock is an hour slow, runs out 2 seconds
    // later, not an hour later nor at once.
    let slow = |args: &[&str]| {
        run(s
            .cmd()
            .env("SPOOLMQ_TEST_CLOCK_SKEW_MS", "-3600000")
            .args(args))
    };
    slow(&["pop", "q", "--json"]).fails(3);
    std::thread::sleep(Duration::from_millis(2500));
    let again = slow(&["pop", "q", "--json"]);
    again.ok();
    assert_eq!(again.json()[0]["attempt"], 2);
}

#[test]
fn a_schema_1_database_is_brought_up_to_date_and_keeps_its_messages() {
    let s = Spool::new();
    s.push("q", &["from schema 1"]);
    // What a build before encryption left: no key_id column, version 1.
    let schema = &s.pg.as_ref().unwrap().name;
    let mut c = postgres::Client::connect(&pg_base_url(), postgres::NoTls).unwrap();
    c.batch_execute(&format!(
        "ALTER TABLE {schema}.spoolmq_queues DROP COLUMN key_id;
         DROP INDEX {schema}.spoolmq_lanes;
         ALTER TABLE {schema}.spoolmq_messages DROP COLUMN priority;
         DELETE FROM {schema}.spoolmq_meta WHERE version > 1;"
    ))
    .unwrap();
    let key = keygen_into(&s.scratch().join("k"));
    keyed(&s, &key, &["push", "secret", "x"]).ok();
    assert_eq!(schema_version(&mut c, schema), 7);
    // Priorities work on the database brought up to date.
    s.run(&["push", "q", "--priority", "9", "urgent"]).ok();
    assert_eq!(body(&s.pop_one("q", &[])), "urgent");
    assert_eq!(body(&s.pop_one("q", &[])), "from schema 1");
    s.run(&["pop", "secret"]).fails(1);
}

/// The schema version `spoolmq_meta` records in the database's `schema`.
fn schema_version(c: &mut postgres::Client, schema: &str) -> i32 {
    c.query_one(
        &format!("SELECT max(version) FROM {schema}.spoolmq_meta"),
        &[],
    )
    .unwrap()
    .get(0)
}

/// A body of `n` lines `line NNNNNNN\n` (12 bytes each): compressible by
/// PostgreSQL, and every chunk of it different.
fn numbered_lines(n: usize) -> String {
    (0..n).map(|i| format!("line {i:07}\n")).collect()
}

#[test]
fn bodies_are_stored_external_and_a_database_made_before_that_keeps_its_compressed_bodies() {
    let s = Spool::new();
    let schema = s.pg.as_ref().unwrap().name.clone();
    let mut c = postgres::Client::connect(&pg_base_url(), postgres::NoTls).unwrap();
    let storage = |c: &mut postgres::Client| -> String {
        c.query_one(
            "SELECT a.attstorage::text FROM pg_attribute a
               JOIN pg_class r ON r.oid = a.attrelid JOIN pg_namespace n ON n.oid = r.relnamespace
             WHERE n.nspname = $1 AND r.relname = 'spoolmq_messages' AND a.attname = 'body'",
            &[&schema],
        )
        .unwrap()
        .get(0)
    };
    // Whether each body in q, by seq, is stored compressed.
    let compressed = |c: &mut postgres::Client| -> Vec<bool> {
        c.query(
            &format!(
                "SELECT pg_column_size(body) < length(body) FROM {schema}.spoolmq_messages
                 WHERE queue = 'q' ORDER BY seq"
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let old = numbered_lines(300_000); // 3.4 MiB: four chunks
    s.push("q", &["small"]);
    s.push_stdin("q", old.as_bytes());
    assert_eq!(
        storage(&mut c),
        "e",
        "a new database stores bodies EXTERNAL"
    );
    assert_eq!(compressed(&mut c), [false, false]);

    // What an older build left: the default storage, and a body written
    // under it (compressed; same bytes, same length and CRC).
    c.batch_execute(&format!(
        "ALTER TABLE {schema}.spoolmq_messages ALTER COLUMN body SET STORAGE EXTENDED;
         UPDATE {schema}.spoolmq_messages SET body = body || ''::bytea WHERE seq = 2;"
    ))
    .unwrap();
    assert_eq!(compressed(&mut c), [false, true]);

    // Not while another transaction uses the table (no waiting for it), nor
    // by a role that may use the rows but does not own the table: either
    // way the command works and the column is left as it is.
    let mut busy = postgres::Client::connect(&pg_base_url(), postgres::NoTls).unwrap();
    busy.batch_execute(&format!(
        "BEGIN; SELECT count(*) FROM {schema}.spoolmq_messages"
    ))
    .unwrap();
    let started = std::time::Instant::now();
    s.run(&["stats", "q", "--json"]).ok();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not wait"
    );
    assert_eq!(storage(&mut c), "x");
    busy.batch_execute("COMMIT").unwrap();
    let role = format!("{schema}_rows");
    c.batch_execute(&format!(
        "CREATE ROLE {role}; GRANT USAGE ON SCHEMA {schema} TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};"
    ))
    .unwrap();
    let base = pg_base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let as_role = format!("{base}{sep}options=-c%20search_path%3D{schema}%20-c%20role%3D{role}");
    let peeked = run(s
        .cmd()
        .env("SPOOLMQ_URL", &as_role)
        .args(["peek", "q", "--json"]));
    peeked.ok();
    assert_eq!(bodies(&peeked.json()), ["small"]);
    let drop_role = format!("DROP OWNED BY {role}; DROP ROLE {role}");
    c.batch_execute(&drop_role).unwrap();
    assert_eq!(storage(&mut c), "x");

    // The next open makes the column EXTERNAL again (no new version: builds
    // that know schema 2 read both), keeping the compressed row as it is.
    let fresh = numbered_lines(250_000);
    s.push_stdin("q", fresh.as_bytes());
    assert_eq!(storage(&mut c), "e");
    assert_eq!(compressed(&mut c), [false, true, false]);
    assert_eq!(schema_version(&mut c, &schema), 7);
    let peeked = s.run(&["peek", "q", "--count", "3", "--json"]);
    peeked.ok();
    assert_eq!(
        bodies(&peeked.json()),
        ["small", old.as_str(), fresh.as_str()]
    );
    let msgs = s.pop_json("q", &["--count", "3"]);
    assert_eq!(bodies(&msgs), ["small", old.as_str(), fresh.as_str()]);
    for m in &msgs {
        s.run(&["ack", "q", m["receipt"].as_str().unwrap()]).ok();
    }

    // A byte changed in the third of four chunks: the CRC32 catches it.
    s.push_stdin("q", fresh.as_bytes());
    c.batch_execute(&format!(
        "UPDATE {schema}.spoolmq_messages SET body = overlay(body placing '\\x21'::bytea from 2500000)
         WHERE queue = 'q' AND state = 1"
    ))
    .unwrap();
    let out = s.run(&["pop", "q", "--json"]);
    out.code(3);
    assert!(
        out.stderr.contains("fails its CRC32 check; skipped"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_write_the_server_committed_is_a_success_though_the_connection_then_drops() {
    // The server commits, then ends the connection before the next BEGIN
    // (`pg.after-commit`): the command was stored, and says so with exit 0.
    // Before this was fixed, the failed BEGIN made an ack that had been
    // taken exit 1, and a consumer that believed it lost track of it.
    let s = Spool::new();
    let cut = |args: &[&str]| {
        run(s
            .cmd()
            .env("SPOOLMQ_FAILPOINT", "pg.after-commit")
            .args(args))
    };
    let pushed = cut(&["push", "q", "job"]);
    pushed.ok();
    assert_eq!(pushed.lines().len(), 1);
    let m = s.pop_one("q", &[]);
    cut(&["ack", "q", m["receipt"].as_str().unwrap()]).ok();
    let v = s.stats("q");
    assert_eq!(
        (v["pushed"].as_u64(), v["acked"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    s.pop_nothing("q", &[]);
    // A COMMIT that gets no answer may or may not have been stored: the
    // line says so (here the server ended the connection first, so nothing
    // was).
    let lost = run(s
        .cmd()
        .env("SPOOLMQ_FAILPOINT", "pg.before-commit")
        .args(["push", "q", "again"]));
    lost.fails(1);
    assert!(
        lost.error_line()
            .contains("the commit's outcome is unknown: it may have been stored"),
        "{}",
        lost.error_line()
    );
    assert_eq!(s.stats("q")["pushed"], 1);
}
