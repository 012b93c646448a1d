// Proves "why it failed, kept with the message": each failed attempt (exit status, timeout,
// `nack --reason`) is kept as the message's last failure with the last 2 KiB of stderr, shown
// by `inspect`, `peek --dead` and `export`, kept across commands, `retry`, `migrate` and
// `export`/`import`, gone with the message once it is acked; a damaged fs record is reported
// and skipped.

use common::*;
use serde_json::Value;

/// `exec QUEUE FLAGS... -- sh -c SCRIPT`.
fn exec(s: &Spool, q: &str, flags: &[&str], script: &str) -> Out {
    let mut args = vec!["exec", q];
    args.extend_from_slice(flags);
    args.extend(["--", "sh", "-c", script]);
    s.run(&args)
}

fn inspect(s: &Spool, q: &str, id: &str) -> Value {
    let out = s.run(&["inspect", q, id, "--json"]);
    out.ok();
    let v = out.json();
    assert_eq!(v.len(), 1, "one object: {}", out.stdout_str());
    v.into_iter().next().unwrap()
}

/// Pushes one message and fails it `--max-attempts 3` times with exit 3, each attempt writing
/// `attempt N` on stderr. Returns its id.
fn dead_after_three_exits(s: &Spool, q: &str) -> String {
    let id = s.push(q, &["job"]).remove(0);
    let out = exec(
        s,
        q,
        &["--loop", "--backoff", "0", "--max-attempts", "3"],
        "echo \"attempt $SPOOLMQ_ATTEMPT\" >&2; exit 3",
    );
    assert!(out.stderr.contains("attempt 3"), "{}", out.stderr);
    id
}

#[test]
fn a_command_failing_every_time_is_a_dead_letter_whose_last_failure_inspect_shows() {
    let s = Spool::new();
    let id = dead_after_three_exits(&s, "q");
    let v = inspect(&s, "q", &id);
    assert_eq!(v["state"], "dead", "{v}");
    assert_eq!(v["attempts"], 3, "{v}");
    let f = &v["last_failure"];
    assert_eq!(f["how"], "exit status 3", "{v}");
    assert_eq!(f["kind"], "exit", "{v}");
    assert_eq!(f["status"], 3, "{v}");
    assert_eq!(f["attempt"], 3, "{v}");
    assert_eq!(f["stderr"], "attempt 3\n", "{v}");
    let plain = s.run(&["inspect", "q", &id]);
    plain.ok();
    let text = plain.stdout_str();
    assert!(text.contains("exit status 3 (attempt 3"), "{text}");
    assert!(text.contains("attempt 3\\n"), "{text}");
    assert!(text.contains("dead"), "{text}");
}

#[test]
fn export_and_peek_dead_show_the_last_failure() {
    let s = Spool::new();
    let id = dead_after_three_exits(&s, "q");
    let out = s.run(&["export", "q"]);
    out.ok();
    let e = out.json();
    assert_eq!(e[0]["id"], id.as_str());
    assert_eq!(e[0]["last_failure"]["how"], "exit status 3", "{}", e[0]);
    assert_eq!(e[0]["last_failure"]["stderr"], "attempt 3\n");
    let out = s.run(&["peek", "q", "--dead", "--json"]);
    out.ok();
    let p = out.json();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["id"], id.as_str());
    assert_eq!(p[0]["attempt"], 3);
    assert_eq!(p[0]["last_failure"]["status"], 3);
    assert_eq!(p[0]["body"], "job");
    let out = s.run(&["peek", "q", "--dead"]);
    out.ok();
    assert_eq!(out.stdout_str(), format!("{id}\t3\texit status 3\tjob\n"));
}

#[test]
fn only_the_last_2_kib_of_stderr_are_kept_and_all_of_it_reaches_execs_stderr() {
    let s = Spool::new();
    let id = s.push("q", &["job"]).remove(0);
    let script = "head -c 3000 /dev/zero | tr '\\0' a >&2; printf END-OF-ERR >&2; exit 1";
    let out = exec(&s, "q", &["--max-attempts", "1"], script);
    assert!(
        out.stderr.contains(&format!("{}END-OF-ERR", "a".repeat(3000))),
        "exec's stderr has all of it"
    );
    let v = inspect(&s, "q", &id);
    let tail = v["last_failure"]["stderr"].as_str().unwrap();
    assert_eq!(tail.len(), 2048);
    assert!(tail.ends_with("END-OF-ERR"), "{tail}");
    assert!(tail.starts_with('a'));
}

#[test]
fn a_timeout_is_kept_as_timed_out() {
    let s = Spool::new();
    let id = s.push("q", &["job"]).remove(0);
    exec(&s, "q", &["--timeout", "300ms", "--max-attempts", "1"], "sleep 5");
    let v = inspect(&s, "q", &id);
    let f = &v["last_failure"];
    assert_eq!(f["how"], "timed out after 300ms", "{v}");
    assert_eq!(f["kind"], "timeout");
    assert_eq!(f["after_ms"], 300);
}

#[test]
fn a_nack_reason_is_kept_with_the_attempt_it_ended() {
    let s = Spool::new();
    let id = s.push("q", &["job"]).remove(0);
    let m = s.pop_one("q", &[]);
    s.nack("q", &[receipt(&m)], &["--reason", "upstream said 503"]);
    let v = inspect(&s, "q", &id);
    assert_eq!(v["state"], "ready", "{v}");
    let f = &v["last_failure"];
    assert_eq!(f["how"], "upstream said 503", "{v}");
    assert_eq!(f["kind"], "reason");
    assert_eq!(f["text"], "upstream said 503");
    assert_eq!(f["attempt"], 1, "attempt 0 is the message's own count");
    // A later failure replaces it.
    let m = s.pop_one("q", &[]);
    s.nack("q", &[receipt(&m)], &["--reason", "again"]);
    let f = &inspect(&s, "q", &id)["last_failure"];
    assert_eq!((f["text"].as_str(), f["attempt"].as_u64()), (Some("again"), Some(2)));
}

#[test]
fn the_failure_outlives_other_commands_and_retry_and_goes_with_the_ack() {
    let s = Spool::new();
    let id = dead_after_three_exits(&s, "q");
    // Other commands open and close the queue in between.
    s.push("q", &["other"]);
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    s.run(&["retry", "q"]).ok();
    let v = inspect(&s, "q", &id);
    assert_eq!(v["state"], "ready", "{v}");
    assert_eq!(v["attempts"], 0, "{v}");
    assert_eq!(v["last_failure"]["how"], "exit status 3", "retry keeps it: {v}");
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    let out = s.run(&["inspect", "q", &id]);
    out.fails(1);
    assert!(out.error_line().contains("no such message"), "{}", out.stderr);
}

#[test]
fn inspect_of_an_unknown_id_or_queue_is_one_line_and_exit_1() {
    let s = Spool::new();
    let id = s.push("q", &["job"]).remove(0);
    let v = inspect(&s, "q", &id);
    assert_eq!(v["state"], "ready");
    assert!(v["last_failure"].is_null(), "{v}");
    for bad in ["0000000000000000", "nonsense"] {
        let out = s.run(&["inspect", "q", bad]);
        out.fails(1);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains("no such message"), "{}", out.stderr);
    }
    s.run(&["inspect", "nope", &id]).fails(1);
    s.run(&["inspect", "../x", &id]).fails(2);
}

#[test]
fn export_and_import_keep_the_last_failure_and_old_exports_still_import() {
    let s = Spool::new();
    dead_after_three_exits(&s, "q");
    let out = s.run(&["export", "q"]);
    out.ok();
    let line = out.stdout_str();
    let t = Spool::new();
    t.run_stdin(&["import", "copy"], line.as_bytes()).ok();
    let out = t.run(&["export", "copy"]);
    out.ok();
    let e = out.json();
    assert_eq!(e[0]["state"], "dead");
    let f = &e[0]["last_failure"];
    assert_eq!(f["how"], "exit status 3", "{}", e[0]);
    assert_eq!(f["attempt"], 3);
    assert_eq!(f["stderr"], "attempt 3\n");
    // A line from before failures were exported.
    let old = r#"{"id":"x","state":"ready","attempt":0,"pushed_at_ms":5,"body":"old"}"#;
    t.run_stdin(&["import", "old"], old.as_bytes()).ok();
    let e = t.run(&["export", "old"]).json();
    assert!(e[0].get("last_failure").is_none(), "{}", e[0]);
    // A malformed one is refused, naming the field.
    let bad = r#"{"state":"dead","attempt":1,"body":"b","last_failure":{"kind":"what","at_ms":1,"attempt":1}}"#;
    let out = t.run_stdin(&["import", "bad"], bad.as_bytes());
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("last_failure"), "{}", out.stderr);
}

#[test]
fn migrate_keeps_the_last_failure() {
    let s = Spool::new();
    let id = dead_after_three_exits(&s, "q");
    let (to, into) = match STORE {
        "fs" => ("sqlite", None),
        "sqlite" => ("fs", None),
        _ => ("fs", Some(s.scratch().join("into"))),
    };
    let mut cmd = s.cmd();
    cmd.env_remove("SPOOLMQ_STORE").args(["migrate", "--to", to]);
    if let Some(dir) = &into {
        cmd.arg("--into").arg(dir);
    }
    run(&mut cmd).ok();
    let out = match &into {
        None => run(s
            .cmd()
            .env_remove("SPOOLMQ_STORE")
            .args(["inspect", "q", &id, "--json"])),
        Some(dir) => run(spoolmq(dir).args(["inspect", "q", &id, "--json"])),
    };
    out.ok();
    let v = &out.json()[0];
    assert_eq!(v["last_failure"]["how"], "exit status 3", "{v}");
    assert_eq!(v["last_failure"]["stderr"], "attempt 3\n", "{v}");
}

/// Whether this suite runs on the fs store (else says the test is skipped: the failures file
/// is the fs store's).
fn fs_store() -> bool {
    if STORE != "fs" {
        eprintln!("skipped on the {STORE} store: the failures file is the fs store's");
    }
    STORE == "fs"
}

#[test]
fn a_damaged_failure_record_is_reported_and_skipped() {
    if !fs_store() {
        return;
    }
    let s = Spool::new();
    let ids = s.push("q", &["one", "two"]);
    let msgs = s.pop_json("q", &["--count", "2"]);
    s.nack("q", &[receipt(&msgs[0])], &["--reason", "first"]);
    s.nack("q", &[receipt(&msgs[1])], &["--reason", "second"]);
    let path = s.queue_dir("q").join("failures");
    let mut bytes = std::fs::read(&path).unwrap();
    // The first frame starts after the 16-byte header; its text ("first") after 8 + 40 bytes.
    bytes[16 + 8 + 40] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (a, b) = (&ids[0], &ids[1]);
    let out = s.run(&["inspect", "q", a, "--json"]);
    out.ok();
    assert!(out.json()[0]["last_failure"].is_null());
    assert!(
        out.stderr.contains("failures: offset 16: damaged failure record skipped"),
        "{}",
        out.stderr
    );
    let v = inspect(&s, "q", b);
    assert_eq!(v["last_failure"]["text"], "second", "the record after it is read");
    // fsck names the file and the offset; --repair rewrites the file with what can be read.
    let out = s.run(&["fsck"]);
    out.code(1);
    assert!(
        out.stdout_str().contains("failures") && out.stdout_str().contains("offset 16"),
        "{}",
        out.stdout_str()
    );
    let out = s.run(&["fsck", "--repair"]);
    out.ok();
    assert!(out.stdout_str().contains("failures"), "{}", out.stdout_str());
    s.run(&["fsck"]).ok();
    let out = s.run(&["inspect", "q", a, "--json"]);
    assert!(out.stderr.is_empty(), "repaired: no more notices: {}", out.stderr);
    assert_eq!(inspect(&s, "q", b)["last_failure"]["text"], "second");
    // The queue works on, and records more.
    let msgs = s.pop_json("q", &["--count", "2"]);
    assert_eq!(msgs.len(), 2, "both messages are still there");
    s.nack("q", &[receipt(&msgs[0])], &["--reason", "third"]);
    let v = inspect(&s, "q", common::id(&msgs[0]));
    assert_eq!(v["last_failure"]["text"], "third");
}

/// The failures file is rewritten when, as its frames pass 128 (a power of two above 64),
/// more than half of them are dead (their messages acked), keeping the live messages'
/// failures; between those counts it only grows.
#[test]
fn the_failures_file_is_compacted_when_most_of_it_is_dead() {
    if !fs_store() {
        return;
    }
    let s = Spool::new();
    let bodies: Vec<String> = (0..126).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    s.push("q", &refs);
    let kept = s.push("q", &["kept"]).remove(0);
    let msgs = s.pop_json("q", &["--count", "127"]);
    let receipts: Vec<&str> = msgs.iter().map(receipt).collect();
    s.nack("q", &receipts, &["--reason", "first round"]);
    let path = s.queue_dir("q").join("failures");
    let full = std::fs::metadata(&path).unwrap().len();
    // Ack all but `kept`: 126 of the 127 frames are dead, but nothing is rewritten until a
    // record makes them 128.
    let msgs = s.pop_json("q", &["--count", "127"]);
    let (keep, done): (Vec<&Value>, Vec<&Value>) = msgs.iter().partition(|m| body(m) == "kept");
    s.ack("q", &done.iter().map(|m| receipt(m)).collect::<Vec<_>>());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), full);
    s.nack("q", &[receipt(keep[0])], &["--reason", "second round"]);
    let small = std::fs::metadata(&path).unwrap().len();
    assert!(
        small * 10 < full,
        "rewritten with the live failure only: {small} bytes of {full}"
    );
    let v = inspect(&s, "q", &kept);
    assert_eq!(v["last_failure"]["text"], "second round", "{v}");
    s.run(&["fsck"]).ok();
    // A file with few dead frames is appended to, not rewritten.
    let m = s.pop_one("q", &[]);
    s.nack("q", &[receipt(&m)], &["--reason", "third round"]);
    assert!(std::fs::metadata(&path).unwrap().len() > small);
}
