// Proves the inspection and housekeeping commands: `stats` counters after every kind of
// change, `list`, `peek` (shows without leasing) and `purge` (ready+delayed, or `--dead`).


use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

const FIELDS: [&str; 10] = [
    "queue",
    "ready",
    "leased",
    "delayed",
    "dead",
    "pushed",
    "acked",
    "bytes",
    "segments",
    "oldest_ready_age_ms",
];

#[track_caller]
fn check_stats_shape(s: &Spool, v: &Value) {
    for f in FIELDS {
        assert!(v.get(f).is_some(), "stats lacks {f:?}: {v}");
    }
    let q = v["queue"].as_str().expect("queue is a string");
    for f in &FIELDS[1..] {
        num(v, f);
    }
    // The sqlite store counts its one database file; PostgreSQL has no files.
    let segs = match STORE {
        "fs" => s.segment_files(q).len() as u64,
        "sqlite" => 1,
        _ => 0,
    };
    assert!(
        segs >= 1 || STORE == "postgres",
        "a queue with messages has a segment file"
    );
    assert_eq!(
        num(v, "segments"),
        segs,
        "segments = number of .seg files: {v}"
    );
    if v.get("disk_bytes").is_some() {
        assert!(
            num(v, "disk_bytes") >= num(v, "bytes"),
            "disk_bytes >= bytes: {v}"
        );
    }
}

#[test]
fn stats_json_has_every_contract_field_after_a_push() {
    let s = Spool::new();
    s.push("q", &["aa", "bbbb"]);
    let v = s.stats("q");
    check_stats_shape(&s, &v);
    assert_eq!(v["queue"], "q");
    assert_counts(
        &v,
        &[
            ("ready", 2),
            ("leased", 0),
            ("delayed", 0),
            ("dead", 0),
            ("pushed", 2),
            ("acked", 0),
            ("bytes", 6),
        ],
    );
    assert!(num(&v, "oldest_ready_age_ms") < 60_000, "{v}");
    if v.get("purged").is_some() {
        assert_eq!(num(&v, "purged"), 0);
    }
}

#[test]
fn stats_counts_delayed_pushes_apart_from_ready_ones() {
    let s = Spool::new();
    s.push("q", &["a"]);
    s.run(&["push", "q", "--delay", "1h", "ccc", "dd"]).ok();
    let v = s.stats("q");
    check_stats_shape(&s, &v);
    assert_counts(
        &v,
        &[
            ("ready", 1),
            ("leased", 0),
            ("delayed", 2),
            ("dead", 0),
            ("pushed", 3),
            ("acked", 0),
            ("bytes", 6),
        ],
    );
}

#[test]
fn stats_follows_pop_and_ack() {
    let s = Spool::new();
    s.push("q", &["1", "22", "333"]);
    let m = s.pop_one("q", &[]);
    assert_counts(
        &s.stats("q"),
        &[
            ("ready", 2),
            ("leased", 1),
            ("delayed", 0),
            ("pushed", 3),
            ("acked", 0),
            ("bytes", 6),
        ],
    );
    s.ack("q", &[receipt(&m)]);
    let v = s.stats("q");
    check_stats_shape(&s, &v);
    assert_counts(
        &v,
        &[
            ("ready", 2),
            ("leased", 0),
            ("delayed", 0),
            ("dead", 0),
            ("pushed", 3),
            ("acked", 1),
            ("bytes", 5),
        ],
    );
    let msgs = s.pop_json("q", &["--count", "2"]);
    s.ack("q", &[receipt(&msgs[0]), receipt(&msgs[1])]);
    let v = s.stats("q");
    assert_counts(
        &v,
        &[
            ("ready", 0),
            ("leased", 0),
            ("pushed", 3),
            ("acked", 3),
            ("bytes", 0),
            ("oldest_ready_age_ms", 0),
        ],
    );
}

#[test]
fn stats_follows_nack_and_nack_with_delay() {
    let s = Spool::new();
    s.push("q", &["abc", "de"]);
    let msgs = s.pop_json("q", &["--count", "2"]);
    assert_counts(
        &s.stats("q"),
        &[("ready", 0), ("leased", 2), ("delayed", 0)],
    );
    s.nack("q", &[receipt(&msgs[0])], &[]);
    assert_counts(
        &s.stats("q"),
        &[("ready", 1), ("leased", 1), ("delayed", 0), ("bytes", 5)],
    );
    s.nack("q", &[receipt(&msgs[1])], &["--delay", "1h"]);
    assert_counts(
        &s.stats("q"),
        &[
            ("ready", 1),
            ("leased", 0),
            ("delayed", 1),
            ("dead", 0),
            ("pushed", 2),
            ("acked", 0),
            ("bytes", 5),
        ],
    );
}

#[test]
fn stats_follows_dead_letters_retry_and_purge_dead() {
    let s = Spool::new();
    let ids = s.make_dead("q", &["dead1", "dead22", "x"]);
    s.push("q", &["live"]);
    assert_counts(
        &s.stats("q"),
        &[
            ("ready", 1),
            ("leased", 0),
            ("delayed", 0),
            ("dead", 3),
            ("pushed", 4),
            ("acked", 0),
            ("bytes", 16),
        ],
    );
    s.run(&["retry", "q", &ids[2]]).ok();
    assert_counts(
        &s.stats("q"),
        &[("ready", 2), ("dead", 2), ("pushed", 4), ("bytes", 16)],
    );
    let out = s.run(&["purge", "q", "--dead"]);
    out.ok();
    assert_eq!(out.stdout_str(), "2\n");
    let v = s.stats("q");
    check_stats_shape(&s, &v);
    assert_counts(
        &v,
        &[
            ("ready", 2),
            ("dead", 0),
            ("pushed", 4),
            ("acked", 0),
            ("bytes", 5),
        ],
    );
}

#[test]
fn stats_follows_purge() {
    let s = Spool::new();
    s.push("q", &["leased"]);
    let m = s.pop_one("q", &[]);
    s.push("q", &["r1", "r2"]);
    s.run(&["push", "q", "--delay", "1h", "later"]).ok();
    s.run(&["purge", "q"]).ok();
    let v = s.stats("q");
    check_stats_shape(&s, &v);
    assert_counts(
        &v,
        &[
            ("ready", 0),
            ("leased", 1),
            ("delayed", 0),
            ("dead", 0),
            ("pushed", 4),
            ("acked", 0),
            ("bytes", 6),
            ("oldest_ready_age_ms", 0),
        ],
    );
    if v.get("purged").is_some() {
        assert_eq!(num(&v, "purged"), 3);
    }
    s.ack("q", &[receipt(&m)]);
    assert_counts(&s.stats("q"), &[("leased", 0), ("acked", 1), ("bytes", 0)]);
}

#[test]
fn stats_counts_an_expired_lease_as_ready_again() {
    let s = Spool::new();
    s.push("q", &["x"]);
    s.pop_one("q", &["--lease", "300ms"]);
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 1)]);
    sleep_ms(800);
    assert_counts(&s.stats("q"), &[("ready", 1), ("leased", 0)]);
}

#[test]
fn oldest_ready_age_ms_is_0_when_nothing_is_ready() {
    let s = Spool::new();
    s.run(&["push", "q", "--delay", "1h", "later"]).ok();
    sleep_ms(300);
    assert_eq!(num(&s.stats("q"), "oldest_ready_age_ms"), 0);
    s.push("p", &["now"]);
    s.pop_one("p", &[]);
    sleep_ms(300);
    assert_eq!(num(&s.stats("p"), "oldest_ready_age_ms"), 0);
}

#[test]
fn oldest_ready_age_ms_is_the_age_of_the_oldest_ready_message() {
    let s = Spool::new();
    s.push("q", &["old"]);
    sleep_ms(400);
    s.push("q", &["new"]);
    let age = num(&s.stats("q"), "oldest_ready_age_ms");
    assert!(
        age >= 400,
        "the oldest message is at least 400 ms old, got {age}"
    );
    assert!(age < 30_000, "age in milliseconds, got {age}");
    // Once the old one is leased, the newer one is the oldest ready message.
    s.pop_one("q", &[]);
    let younger = num(&s.stats("q"), "oldest_ready_age_ms");
    assert!(younger < age, "{younger} should be below {age}");
}

#[test]
fn stats_without_a_queue_prints_one_object_per_queue() {
    let s = Spool::new();
    s.push("beta", &["1", "2"]);
    s.push("alpha", &["333"]);
    let all = s.stats_all();
    assert_eq!(all.len(), 2, "{all:?}");
    let by_name: BTreeMap<String, Value> = all
        .into_iter()
        .map(|v| (v["queue"].as_str().expect("queue name").to_string(), v))
        .collect();
    assert_eq!(by_name.keys().collect::<Vec<_>>(), ["alpha", "beta"]);
    for v in by_name.values() {
        check_stats_shape(&s, v);
    }
    assert_counts(
        &by_name["alpha"],
        &[("ready", 1), ("pushed", 1), ("bytes", 3)],
    );
    assert_counts(
        &by_name["beta"],
        &[("ready", 2), ("pushed", 2), ("bytes", 2)],
    );
}

#[test]
fn stats_of_a_queue_that_does_not_exist_exits_1_with_one_line() {
    let s = Spool::new();
    s.push("q", &["x"]);
    s.run(&["stats", "nosuch", "--json"])
        .fails(1)
        .stdout_empty();
    let line = s.run(&["stats", "nosuch"]).fails(1).error_line();
    assert!(
        line.contains("nosuch"),
        "the error names the queue: {line:?}"
    );
}

#[test]
fn plain_stats_exits_0_and_mentions_the_queue() {
    let s = Spool::new();
    s.push("orders", &["x"]);
    s.push("invoices", &["y"]);
    let out = s.run(&["stats", "orders"]);
    out.ok();
    assert!(out.stdout_str().contains("orders"), "{}", out.stdout_str());
    let out = s.run(&["stats"]);
    out.ok();
    let text = out.stdout_str();
    assert!(
        text.contains("orders") && text.contains("invoices"),
        "{text}"
    );
}

#[test]
fn list_prints_queue_names_sorted_one_per_line() {
    let s = Spool::new();
    for q in ["zeta", "alpha", "mid", "beta"] {
        s.push(q, &["x"]);
    }
    let out = s.run(&["list"]);
    out.ok();
    assert_eq!(out.stdout_str(), "alpha\nbeta\nmid\nzeta\n");
}

#[test]
fn list_json_prints_a_queue_object_per_line() {
    let s = Spool::new();
    for q in ["b", "a"] {
        s.push(q, &["x"]);
    }
    let out = s.run(&["list", "--json"]);
    out.ok();
    let names: Vec<String> = out
        .json()
        .iter()
        .map(|o| {
            o["queue"]
                .as_str()
                .unwrap_or_else(|| panic!("no queue in {o}"))
                .to_string()
        })
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn list_keeps_a_queue_whose_messages_are_all_gone() {
    let s = Spool::new();
    s.push("q", &["x"]);
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    s.push("purged", &["y"]);
    s.run(&["purge", "purged"]).ok();
    let out = s.run(&["list"]);
    out.ok();
    assert_eq!(out.stdout_str(), "purged\nq\n");
}

#[test]
fn list_does_not_show_queues_that_were_only_read() {
    let s = Spool::new();
    s.push("real", &["x"]);
    s.pop_nothing("ghost", &[]);
    s.run(&["peek", "ghost2"]);
    s.run(&["stats", "ghost3"]).fails(1);
    let out = s.run(&["list"]);
    out.ok();
    assert_eq!(out.stdout_str(), "real\n");
    assert!(!s.queue_dir("ghost").exists());
}

#[test]
fn peek_shows_ready_messages_without_leasing_them() {
    let s = Spool::new();
    let ids = s.push("q", &["a", "b", "c"]);
    let seen = s.peek_json("q", &["--count", "10"]);
    assert_eq!(seen.len(), 3);
    for (m, (id, body)) in seen.iter().zip(ids.iter().zip(["a", "b", "c"])) {
        assert_eq!(m["id"], id.as_str());
        assert_eq!(m["attempt"], 1);
        assert_eq!(m["body"], body);
        assert!(m.get("receipt").is_none(), "peek has no receipt: {m}");
    }
    assert_counts(&s.stats("q"), &[("ready", 3), ("leased", 0)]);
    // Peeking again shows the same, and pop still gets them all, first delivery.
    assert_eq!(s.peek_json("q", &["--count", "10"]), seen);
    let msgs = s.pop_json("q", &["--count", "10"]);
    assert_eq!(msgs.iter().map(id).collect::<Vec<_>>(), ids);
    assert!(msgs.iter().all(|m| attempt(m) == 1));
}

#[test]
fn peek_shows_one_message_by_default_and_honours_count() {
    let s = Spool::new();
    s.push("q", &["a", "b", "c"]);
    assert_eq!(bodies(&s.peek_json("q", &[])), ["a"]);
    assert_eq!(bodies(&s.peek_json("q", &["--count", "2"])), ["a", "b"]);
}

#[test]
fn peek_skips_leased_delayed_and_dead_messages() {
    let s = Spool::new();
    s.make_dead("q", &["dead"]);
    s.push("q", &["leased"]);
    s.pop_one("q", &[]);
    s.run(&["push", "q", "--delay", "1h", "delayed"]).ok();
    s.push("q", &["ready"]);
    assert_eq!(bodies(&s.peek_json("q", &["--count", "10"])), ["ready"]);
}

#[test]
fn peek_reports_the_attempt_pop_would_report() {
    let s = Spool::new();
    s.push("q", &["x"]);
    let m = s.pop_one("q", &[]);
    s.nack("q", &[receipt(&m)], &[]);
    let seen = s.peek_json("q", &[]);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["attempt"], 2);
    assert_eq!(attempt(&s.pop_one("q", &[])), 2);
}

#[test]
fn peek_gives_a_non_utf8_body_as_body_base64() {
    let s = Spool::new();
    s.push_stdin("q", b"\xff\xfe\x00raw");
    let seen = s.peek_json("q", &[]);
    assert_eq!(seen.len(), 1);
    assert!(seen[0].get("body").is_none());
    assert_eq!(body_bytes(&seen[0]), b"\xff\xfe\x00raw");
}

#[test]
fn peek_plain_prints_id_attempt_and_escaped_body() {
    let s = Spool::new();
    let ids = s.push("q", &["plain", "two\tparts\nline"]);
    let out = s.run(&["peek", "q", "--count", "5"]);
    out.ok();
    assert_eq!(
        out.stdout_str(),
        format!("{}\t1\tplain\n{}\t1\ttwo\\tparts\\nline\n", ids[0], ids[1])
    );
}

#[test]
fn purge_deletes_ready_and_delayed_messages_and_prints_how_many() {
    let s = Spool::new();
    s.push("q", &["leased"]);
    let m = s.pop_one("q", &[]);
    s.push("q", &["r1", "r2"]);
    s.run(&["push", "q", "--delay", "1h", "later"]).ok();
    let out = s.run(&["purge", "q"]);
    out.ok();
    assert_eq!(out.stdout_str(), "3\n");
    s.pop_nothing("q", &[]);
    assert_eq!(s.peek_json("q", &["--count", "10"]), Vec::<Value>::new());
    assert_counts(
        &s.stats("q"),
        &[("ready", 0), ("delayed", 0), ("leased", 1)],
    );
    // The leased message finishes as usual.
    s.ack("q", &[receipt(&m)]);
    assert_counts(&s.stats("q"), &[("leased", 0), ("acked", 1)]);
}

#[test]
fn a_leased_message_survives_purge_and_can_come_back_by_nack() {
    let s = Spool::new();
    s.push("q", &["leased", "ready"]);
    let m = s.pop_one("q", &[]);
    s.run(&["purge", "q"]).ok();
    s.nack("q", &[receipt(&m)], &[]);
    let again = s.pop_one("q", &[]);
    assert_eq!(body(&again), "leased");
    assert_eq!(attempt(&again), 2);
}

#[test]
fn purge_does_not_touch_dead_letters() {
    let s = Spool::new();
    s.make_dead("q", &["d"]);
    s.push("q", &["r"]);
    let out = s.run(&["purge", "q"]);
    out.ok();
    assert_eq!(out.stdout_str(), "1\n");
    assert_counts(&s.stats("q"), &[("ready", 0), ("dead", 1)]);
}

#[test]
fn purge_json_prints_the_number_purged() {
    let s = Spool::new();
    s.push("q", &["a", "b"]);
    let out = s.run(&["purge", "q", "--json"]);
    out.ok();
    let objs = out.json();
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0]["purged"], 2);
}

#[test]
fn purge_of_an_empty_queue_prints_0() {
    let s = Spool::new();
    s.push("q", &["a"]);
    s.run(&["purge", "q"]).ok();
    let out = s.run(&["purge", "q"]);
    out.ok();
    assert_eq!(out.stdout_str(), "0\n");
}

#[test]
fn purge_dead_deletes_only_the_dead_letters() {
    let s = Spool::new();
    let dead = s.make_dead("q", &["d1", "d2"]);
    s.push("q", &["ready"]);
    s.run(&["push", "q", "--delay", "1h", "later"]).ok();
    let out = s.run(&["purge", "q", "--dead"]);
    out.ok();
    assert_eq!(out.stdout_str(), "2\n");
    assert_counts(&s.stats("q"), &[("ready", 1), ("delayed", 1), ("dead", 0)]);
    // Purged dead letters cannot be retried any more.
    let out = s.run(&["retry", "q"]);
    out.ok();
    assert_eq!(out.stdout_str(), "0\n");
    let out = s.run(&["retry", "q", &dead[0]]);
    assert!(
        out.stdout_str() == "0\n" || out.code != 0,
        "{}",
        out.stdout_str()
    );
    assert_eq!(bodies(&s.pop_json("q", &["--count", "10"])), ["ready"]);
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn dead_at(s: &Spool, q: &str, id: &str) -> Option<u64> {
    let out = s.run(&["inspect", q, id, "--json"]);
    out.ok();
    out.json()[0]["dead_at_ms"].as_u64()
}

/// A dead letter keeps when it died (its last nack, or the end of the lease that ran out on
/// its last attempt): `inspect` and `export` show it as `dead_at_ms`, `import` and `migrate`
/// keep it, and `purge --dead --older-than DUR` removes only those dead for at least DUR.
#[test]
fn purge_dead_older_than_takes_only_the_letters_dead_that_long() {
    let s = Spool::new();
    let ids = s.push("q", &["first", "second", "lapsed"]);
    let msgs = s.pop_json("q", &["--count", "2", "--max-attempts", "1"]);
    let t0 = epoch_ms();
    s.nack("q", &[receipt(&msgs[0])], &["--max-attempts", "1"]);
    let t1 = epoch_ms();
    let first = dead_at(&s, "q", &ids[0]).expect("first has its time");
    assert!((t0..=t1).contains(&first), "{t0} <= {first} <= {t1}");
    let plain = s.run(&["inspect", "q", &ids[0]]);
    assert!(
        plain.ok().stdout_str().contains(&format!("dead since:   {first} (")),
        "{}",
        plain.stdout_str()
    );
    // Far enough apart that a loaded machine's slow commands cannot blur them.
    sleep_ms(2000);
    s.nack("q", &[receipt(&msgs[1])], &["--max-attempts", "1"]);
    // The third dies when its 200 ms lease runs out on its last attempt.
    let before = epoch_ms();
    s.pop_json("q", &["--lease", "200ms", "--max-attempts", "1"]);
    sleep_ms(300);
    let lapsed = dead_at(&s, "q", &ids[2]).expect("a lapsed lease has its time");
    assert!(
        (before + 200..=before + 300).contains(&lapsed),
        "died when its lease ran out: {lapsed} vs pop at {before}"
    );
    // Exported and imported with the time; old exports (no field) import as unknown.
    let out = s.run(&["export", "q"]);
    out.ok();
    let lines = out.stdout_str();
    assert_eq!(lines.matches("\"dead_at_ms\":").count(), 3, "{lines}");
    s.run_stdin(&["import", "copy"], lines.as_bytes()).ok();
    let copied: Vec<u64> = s
        .run(&["export", "copy"])
        .ok()
        .json()
        .iter()
        .map(|m| m["dead_at_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(copied[0], first);
    // Only `first` has been dead for 1.5 s.
    let out = s.run(&["purge", "q", "--dead", "--older-than", "1500ms"]);
    assert_eq!(out.ok().stdout_str(), "1\n");
    assert!(dead_at(&s, "q", &ids[1]).is_some(), "second is still there");
    assert_eq!(
        s.run(&["purge", "q", "--dead", "--older-than", "1h", "--json"])
            .ok()
            .stdout_str(),
        "{\"purged\":0}\n"
    );
    assert_eq!(s.run(&["purge", "q", "--dead"]).ok().stdout_str(), "2\n");
    // --older-than needs --dead (ready messages are purged by `purge` alone).
    s.run(&["purge", "q", "--older-than", "1h"]).fails(2);
    let st = s.stats("q");
    assert_eq!((num(&st, "dead"), num(&st, "purged")), (0, 3), "{st}");
}
