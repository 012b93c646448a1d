// `push --ttl DUR`: a message not acked by then is not delivered again; it
// becomes a dead letter marked expired, with the time, and `stats` counts
// it. `retry` (in place or `--to` another queue) counts the TTL again from
// the retry. The same on every store; kept by export/import (here) and
// migrate (migrate.rs).

use std::time::Duration;

use common::*;


/// `inspect QUEUE ID --json`.
#[track_caller]
fn inspect(s: &Spool, q: &str, id: &str) -> serde_json::Value {
    let out = s.run(&["inspect", q, id, "--json"]);
    out.ok();
    out.json().remove(0)
}

/// Sleeps until the clock is past `at_ms` (an expiry is a whole second, so
/// a TTL of 1s ends 1 to 2 seconds after the push).
fn wait_past(at_ms: u64) {
    let now = now_ms();
    if now <= at_ms {
        std::thread::sleep(Duration::from_millis(at_ms - now + 50));
    }
}

/// Pushes `bodies` with `--ttl 1s` and waits until their TTL has passed.
/// Returns their ids.
#[track_caller]
fn push_expired(s: &Spool, q: &str, bodies: &[&str]) -> Vec<String> {
    let mut args = vec!["push", q, "--ttl", "1s"];
    args.extend_from_slice(bodies);
    let out = s.run(&args);
    out.ok();
    let ids = out.lines();
    let last = inspect(s, q, ids.last().unwrap());
    wait_past(last["expires_at_ms"].as_u64().unwrap());
    ids
}

#[test]
fn a_message_not_acked_within_its_ttl_becomes_an_expired_dead_letter() {
    let s = Spool::new();
    let before = now_ms();
    let ids = push_expired(&s, "jobs", &["stale"]);
    s.push("jobs", &["fresh"]);
    let v = inspect(&s, "jobs", &ids[0]);
    let expires = v["expires_at_ms"].as_u64().unwrap();
    assert!(
        expires >= before + 1000 && expires.is_multiple_of(1000),
        "a whole second, never before the TTL: {v}"
    );
    // Only the message without a TTL is delivered.
    let msgs = s.pop_json("jobs", &["--count", "10"]);
    assert_eq!(bodies(&msgs), ["fresh"]);
    let st = s.stats("jobs");
    assert_counts(&st, &[("ready", 0), ("leased", 1), ("dead", 1), ("expired", 1)]);
    assert_counters_add_up(&st);
    // Marked expired, with the time; a dead letter like any other.
    let v = inspect(&s, "jobs", &ids[0]);
    assert_eq!(v["state"], "dead", "{v}");
    assert_eq!(v["expired"], true, "{v}");
    assert_eq!(v["dead_at_ms"].as_u64(), Some(expires), "{v}");
    let dead = s.peek_json("jobs", &["--dead"]);
    assert_eq!(bodies(&dead), ["stale"]);
    let plain = s.run(&["inspect", "jobs", &ids[0]]);
    assert!(plain.ok().stdout_str().contains("expired"), "{}", plain.stdout_str());
    // `purge --dead` removes it; nothing else was expired.
    assert_eq!(s.run(&["purge", "jobs", "--dead"]).ok().stdout_str(), "1\n");
    assert_counts(&s.stats("jobs"), &[("dead", 0), ("expired", 0), ("purged", 1)]);
}

#[test]
fn a_delay_that_outlasts_the_ttl_ends_in_an_expired_dead_letter() {
    let s = Spool::new();
    let out = s.run(&["push", "jobs", "--ttl", "1s", "--delay", "1h", "late"]);
    let id = out.ok().lines().remove(0);
    assert_counts(&s.stats("jobs"), &[("delayed", 1), ("expired", 0)]);
    let v = inspect(&s, "jobs", &id);
    wait_past(v["expires_at_ms"].as_u64().unwrap());
    // Counted as expired at once, though the delay has not passed.
    assert_counts(
        &s.stats("jobs"),
        &[("delayed", 0), ("dead", 1), ("expired", 1)],
    );
    assert_eq!(inspect(&s, "jobs", &id)["expired"], true);
    s.pop_nothing("jobs", &[]);
    assert_counts(&s.stats("jobs"), &[("dead", 1), ("expired", 1)]);
}

#[test]
fn a_lease_live_when_the_ttl_passes_may_ack_but_is_not_delivered_again() {
    let s = Spool::new();
    let ids = s
        .run(&["push", "jobs", "--ttl", "1s", "a", "b", "c"])
        .ok()
        .lines();
    let msgs = s.pop_json("jobs", &["--count", "3", "--lease", "1h"]);
    assert_eq!(msgs.len(), 3);
    wait_past(inspect(&s, "jobs", &ids[2])["expires_at_ms"].as_u64().unwrap());
    // The worker that holds a lease finishes its work: the ack counts.
    s.ack("jobs", &[receipt(&msgs[0])]);
    // A nack after the TTL does not give it back: expired, with the nack's time.
    let t = now_ms();
    s.nack("jobs", &[receipt(&msgs[1])], &[]);
    let v = inspect(&s, "jobs", &ids[1]);
    assert_eq!((v["state"].as_str(), v["expired"].as_bool()), (Some("dead"), Some(true)), "{v}");
    assert!(v["dead_at_ms"].as_u64().unwrap() >= t, "{v}");
    // A lease that runs out after the TTL: expired when it ran out.
    s.run(&["extend", "jobs", receipt(&msgs[2]), "--lease", "1s"]).ok();
    let lease_end = inspect(&s, "jobs", &ids[2])["lease_until_ms"].as_u64().unwrap();
    wait_past(lease_end);
    s.pop_nothing("jobs", &[]);
    let v = inspect(&s, "jobs", &ids[2]);
    assert_eq!(v["expired"], true, "{v}");
    assert_eq!(v["dead_at_ms"].as_u64(), Some(lease_end), "{v}");
    let st = s.stats("jobs");
    assert_counts(&st, &[("acked", 1), ("dead", 2), ("expired", 2), ("leased", 0)]);
    assert_counters_add_up(&st);
}

#[test]
fn retry_counts_the_ttl_again_so_an_expired_message_can_be_worked() {
    let s = Spool::new();
    let ids = push_expired(&s, "jobs", &["again", "elsewhere"]);
    s.pop_nothing("jobs", &[]);
    assert_counts(&s.stats("jobs"), &[("dead", 2), ("expired", 2)]);
    // In place: the same id, ready, its TTL counted from the retry.
    let t = now_ms();
    let out = s.run(&["retry", "jobs", &ids[0]]);
    assert_eq!(out.ok().stdout_str(), "1\n");
    let v = inspect(&s, "jobs", &ids[0]);
    assert_eq!(v["state"], "ready", "{v}");
    assert!(v["expired"].is_null(), "{v}");
    let expires = v["expires_at_ms"].as_u64().unwrap();
    assert!(expires >= t + 1000 && expires <= now_ms() + 2000, "{v}");
    assert_counts(&s.stats("jobs"), &[("ready", 1), ("dead", 1), ("expired", 1)]);
    let m = s.pop_one("jobs", &[]);
    assert_eq!((body(&m), attempt(&m)), ("again", 1));
    s.ack("jobs", &[receipt(&m)]);
    // To another queue: a new message there, with the same TTL counted again.
    let t = now_ms();
    let out = s.run(&["retry", "jobs", "--to", "later"]);
    assert_eq!(out.ok().stdout_str(), "1\n");
    assert_counts(&s.stats("jobs"), &[("dead", 0), ("expired", 0), ("purged", 1)]);
    let moved = s.peek_json("later", &[]);
    assert_eq!(bodies(&moved), ["elsewhere"]);
    let v = inspect(&s, "later", id(&moved[0]));
    assert!(v["expires_at_ms"].as_u64().unwrap() >= t + 1000, "{v}");
    // And it expires there in turn.
    wait_past(v["expires_at_ms"].as_u64().unwrap());
    s.pop_nothing("later", &[]);
    assert_counts(&s.stats("later"), &[("dead", 1), ("expired", 1)]);
}

#[test]
fn export_and_import_keep_the_ttl_and_the_expired_mark() {
    let s = Spool::new();
    push_expired(&s, "jobs", &["gone"]);
    s.pop_nothing("jobs", &[]);
    s.run(&["push", "jobs", "--ttl", "1h", "kept"]).ok();
    s.push("jobs", &["plain"]);
    let out = s.run(&["export", "jobs"]);
    out.ok();
    let lines = out.json();
    assert_eq!(lines[0]["expired"], true, "{}", lines[0]);
    assert_eq!(lines[0]["ttl_ms"], 1000, "{}", lines[0]);
    assert_eq!(lines[1]["ttl_ms"], 3_600_000, "{}", lines[1]);
    assert!(lines[2].get("ttl_ms").is_none(), "{}", lines[2]);
    let imported = s.run_stdin(&["import", "copy"], out.stdout_str().as_bytes());
    imported.ok();
    assert_counts(
        &s.stats("copy"),
        &[("ready", 2), ("dead", 1), ("expired", 1)],
    );
    let again = s.run(&["export", "copy"]);
    for (a, b) in again.ok().json().iter().zip(&lines) {
        for k in ["state", "expired", "ttl_ms", "expires_at_ms", "dead_at_ms"] {
            assert_eq!(a.get(k), b.get(k), "{k}: {a} vs {b}");
        }
    }
    // An expired line must be a dead letter; a TTL must be one we can keep.
    for bad in [
        r#"{"state":"ready","expired":true,"body":"x"}"#,
        r#"{"ttl_ms":99999999999999,"body":"x"}"#,
        r#"{"ttl_ms":"1s","body":"x"}"#,
    ] {
        let out = s.run_stdin(&["import", "bad"], bad.as_bytes());
        out.fails(1);
        assert!(out.error_line().contains("nothing imported"), "{bad}: {}", out.error_line());
    }
}

#[test]
fn a_ttl_must_be_one_the_stores_can_keep() {
    let s = Spool::new();
    for bad in ["0s", "200y", "soon"] {
        let out = s.run(&["push", "jobs", "--ttl", bad, "x"]);
        out.fails(2);
        assert!(out.error_line().contains("ttl"), "{bad}: {}", out.error_line());
    }
    // Rounded up to a whole second.
    let id = s
        .run(&["push", "jobs", "--ttl", "1500ms", "x"])
        .ok()
        .lines()
        .remove(0);
    let v = inspect(&s, "jobs", &id);
    assert_eq!(v["expires_at_ms"].as_u64().unwrap() % 1000, 0, "{v}");
    // Lines pushed with a TTL each get it.
    let out = s.run_stdin(&["push", "lines", "--lines", "--ttl", "1h"], b"a\nb\n");
    for id in out.ok().lines() {
        assert!(inspect(&s, "lines", &id)["expires_at_ms"].as_u64().is_some());
    }
}

#[test]
fn a_pop_marks_at_most_10000_expired_messages_and_the_next_pops_the_rest() {
    let s = Spool::new();
    let lines: String = (0..12_000).map(|i| format!("m{i}\n")).collect();
    let out = s.run_stdin(&["push", "jobs", "--lines", "--ttl", "1s"], lines.as_bytes());
    let last = out.ok().lines().pop().unwrap();
    s.push("jobs", &["fresh"]);
    wait_past(inspect(&s, "jobs", &last)["expires_at_ms"].as_u64().unwrap());
    // The first pop skips all 12,000 and delivers the one without a TTL,
    // marking 10,000 of them; the next marks the rest.
    assert_eq!(body(&s.pop_one("jobs", &[])), "fresh");
    assert_counts(&s.stats("jobs"), &[("ready", 2_000), ("expired", 10_000)]);
    s.pop_nothing("jobs", &[]);
    let st = s.stats("jobs");
    assert_counts(&st, &[("ready", 0), ("dead", 12_000), ("expired", 12_000)]);
    assert_counters_add_up(&st);
}

/// The fs store: `retry` reads only the record's header for the TTL, so an
/// expired message whose body is damaged is retried with the others (and
/// set aside by the pop that meets the damage), never failing the retry.
#[test]
fn retry_of_an_expired_message_with_a_damaged_body_retries_the_rest() {
    if STORE != "fs" {
        return;
    }
    let s = Spool::new();
    push_expired(&s, "jobs", &["intact", "spoiled"]);
    s.pop_nothing("jobs", &[]);
    let seg = s.segment_files("jobs").remove(0);
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.windows(7).position(|w| w == b"spoiled").unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    assert_eq!(s.run(&["retry", "jobs"]).ok().stdout_str(), "2\n");
    let out = s.run(&["pop", "jobs", "--count", "10", "--json"]);
    assert_eq!(bodies(&out.ok().json()), ["intact"]);
    assert!(out.stderr.contains("checksum"), "{}", out.stderr);
}
