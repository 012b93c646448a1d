// `retry QUEUE --to OTHER` (redrive): dead letters move into another queue,
// where each starts over as a new message (ready, no attempts, a new id, its
// last failure kept), and leave the source (counted as purged there). Every
// message ends up in exactly one of the two queues, in every batch, under
// concurrency and (kill9.rs, crash_points.rs) under crashes.

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

/// Every message of `q` as `export` shows it: body → (state, attempt).
fn exported(s: &Spool, q: &str) -> BTreeMap<String, (String, u64)> {
    let out = s.run(&["export", q]);
    out.ok();
    out.json()
        .iter()
        .map(|m| {
            (
                body(m).to_string(),
                (m["state"].as_str().unwrap().to_string(), attempt(m)),
            )
        })
        .collect()
}

#[test]
fn retry_to_moves_every_dead_letter_into_the_other_queue_as_a_new_message() {
    let s = Spool::new();
    let ids = s.push("jobs", &["d1", "d2", "d3"]);
    let msgs = s.pop_json("jobs", &["--count", "3"]);
    let receipts: Vec<&str> = msgs.iter().map(receipt).collect();
    s.nack("jobs", &receipts, &["--max-attempts", "1", "--reason", "boom"]);
    s.push("jobs", &["keep"]);
    let out = s.run(&["retry", "jobs", "--to", "later"]);
    out.ok();
    assert_eq!(out.stdout_str(), "3\n");
    assert_counts(
        &s.stats("jobs"),
        &[("ready", 1), ("dead", 0), ("purged", 3), ("pushed", 4)],
    );
    assert_counts(
        &s.stats("later"),
        &[("ready", 3), ("dead", 0), ("pushed", 3)],
    );
    // In their old order, with a fresh attempt count and new ids; the
    // failure that made them dead letters is kept.
    let msgs = s.pop_json("later", &["--count", "10"]);
    let bodies: Vec<&str> = msgs.iter().map(body).collect();
    assert_eq!(bodies, ["d1", "d2", "d3"]);
    for m in &msgs {
        assert_eq!(attempt(m), 1, "a moved message starts over: {m}");
        assert!(!ids.contains(&id(m).to_string()), "a new id: {m}");
    }
    let out = s.run(&["inspect", "later", id(&msgs[0]), "--json"]);
    out.ok();
    let v = &out.json()[0];
    assert_eq!(v["last_failure"]["text"], "boom", "{v}");
    // The source keeps what was not dead.
    assert_eq!(body(&s.pop_one("jobs", &[])), "keep");
    s.pop_nothing("jobs", &[]);
}

#[test]
fn retry_to_with_ids_moves_only_those_and_names_the_rest() {
    let s = Spool::new();
    let ids = s.make_dead("jobs", &["d1", "d2", "d3"]);
    let live = s.push("jobs", &["live"]);
    let out = s.run(&["retry", "jobs", "--to", "later", &ids[2], &live[0], &ids[0]]);
    out.fails(1);
    assert_eq!(out.stdout_str(), "2\n");
    assert!(
        out.stderr.contains("not dead letters") && out.stderr.contains(&live[0]),
        "{}",
        out.stderr
    );
    let later = exported(&s, "later");
    assert_eq!(
        later.keys().collect::<Vec<_>>(),
        ["d1", "d3"],
        "only the dead letters named moved"
    );
    let jobs = exported(&s, "jobs");
    assert_eq!(jobs["d2"].0, "dead");
    assert_eq!(jobs["live"].0, "ready");
    assert_eq!(jobs.len(), 2);
}

#[test]
fn retry_to_an_existing_queue_puts_them_after_its_messages() {
    let s = Spool::new();
    s.push("later", &["first"]);
    s.make_dead("jobs", &["moved"]);
    s.run(&["retry", "jobs", "--to", "later"]).ok();
    let bodies: Vec<String> = s
        .pop_json("later", &["--count", "5"])
        .iter()
        .map(|m| body(m).to_string())
        .collect();
    assert_eq!(bodies, ["first", "moved"]);
}

#[test]
fn retry_to_the_same_queue_retries_in_place() {
    let s = Spool::new();
    let ids = s.make_dead("jobs", &["d"]);
    let out = s.run(&["retry", "jobs", "--to", "jobs"]);
    out.ok();
    assert_eq!(out.stdout_str(), "1\n");
    let m = s.pop_one("jobs", &[]);
    assert_eq!((id(&m), attempt(&m)), (ids[0].as_str(), 1));
}

#[test]
fn retry_to_with_nothing_dead_moves_nothing_and_makes_no_queue() {
    let s = Spool::new();
    s.push("jobs", &["alive"]);
    let out = s.run(&["retry", "jobs", "--to", "later", "--json"]);
    out.ok();
    assert_eq!(out.json()[0]["moved"], 0);
    let queues = s.run(&["list"]);
    assert!(!queues.stdout_str().contains("later"), "{}", queues.stdout_str());
}

#[test]
fn retry_to_from_a_missing_queue_exits_1_and_a_bad_target_name_exits_2() {
    let s = Spool::new();
    s.push("jobs", &["alive"]);
    s.run(&["retry", "nope", "--to", "later"]).fails(1);
    s.run(&["retry", "jobs", "--to", "../etc"]).fails(2);
    s.run(&["retry", "jobs", "--to", ""]).fails(2);
}

#[test]
fn a_lease_that_ran_out_on_its_last_attempt_is_moved_too() {
    let s = Spool::new();
    s.push("jobs", &["lapsed"]);
    s.pop_one("jobs", &["--lease", "1ms", "--max-attempts", "1"]);
    sleep_ms(20);
    s.run(&["retry", "jobs", "--to", "later"]).ok();
    assert_eq!(body(&s.pop_one("later", &[])), "lapsed");
    s.pop_nothing("jobs", &[]);
    assert_counts(&s.stats("jobs"), &[("leased", 0), ("dead", 0), ("purged", 1)]);
}

#[test]
fn more_than_one_batch_moves_every_message_once() {
    let s = Spool::new();
    // 2,500 dead letters: three batches of at most 1,000.
    let bodies: Vec<String> = (0..2500).map(|i| format!("m{i:04}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    s.make_dead("jobs", &refs);
    let out = s.run(&["retry", "jobs", "--to", "later"]);
    out.ok();
    assert_eq!(out.stdout_str(), "2500\n");
    let later = exported(&s, "later");
    assert_eq!(later.len(), 2500);
    assert!(later.values().all(|(state, a)| state == "ready" && *a == 0));
    assert_eq!(
        later.keys().cloned().collect::<Vec<_>>(),
        bodies,
        "every body once"
    );
    assert!(exported(&s, "jobs").is_empty());
    assert_counts(&s.stats("jobs"), &[("purged", 2500)]);
}

#[test]
fn an_encrypted_queue_moves_with_its_key_and_the_bodies_stay_sealed() {
    let s = Spool::new();
    let key = keygen_into(&s.scratch().join("k"));
    keyed(&s, &key, &["push", "jobs", "secret"]).ok();
    let m = &keyed(&s, &key, &["pop", "jobs", "--json", "--max-attempts", "1"]).json()[0];
    keyed(&s, &key, &["nack", "jobs", receipt(m), "--max-attempts", "1"]).ok();
    // Without the key nothing moves: the bodies must be opened to be sealed
    // again for their new queue and id.
    s.run(&["retry", "jobs", "--to", "later"]).fails(1);
    assert_counts(&s.stats("jobs"), &[("dead", 1)]);
    keyed(&s, &key, &["retry", "jobs", "--to", "later"]).ok();
    let out = keyed(&s, &key, &["pop", "later", "--json"]);
    out.ok();
    assert_eq!(body(&out.json()[0]), "secret");
    // The new queue is encrypted with the same key: no key, no body.
    keyed(&s, &key, &["push", "later", "more"]).ok();
    s.run(&["pop", "later"]).fails(1);
}

#[test]
fn moves_in_opposite_directions_at_once_neither_deadlock_nor_lose_anything() {
    let s = Spool::new();
    let a: Vec<String> = (0..200).map(|i| format!("a{i:03}")).collect();
    let b: Vec<String> = (0..200).map(|i| format!("b{i:03}")).collect();
    s.make_dead("qa", &a.iter().map(String::as_str).collect::<Vec<_>>());
    s.make_dead("qb", &b.iter().map(String::as_str).collect::<Vec<_>>());
    // Each round moves A→B and B→A at once; a moved message is ready, not
    // dead, so it stays where it landed.
    for _ in 0..4 {
        let one = s.spawn(&["retry", "qa", "--to", "qb"]);
        let two = s.spawn(&["retry", "qb", "--to", "qa"]);
        one.wait(Duration::from_secs(60)).ok();
        two.wait(Duration::from_secs(60)).ok();
    }
    let (qa, qb) = (exported(&s, "qa"), exported(&s, "qb"));
    let mut all: Vec<&String> = qa.keys().chain(qb.keys()).collect();
    all.sort();
    let mut want: Vec<&String> = a.iter().chain(&b).collect();
    want.sort();
    assert_eq!(all, want, "every message in exactly one queue");
    let total = |v: &serde_json::Value| num(v, "ready") + num(v, "dead");
    assert_eq!(total(&s.stats("qa")) + total(&s.stats("qb")), 400);
}
