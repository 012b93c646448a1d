// Ordered groups (`push --group G`): a group's messages are delivered one
// at a time, in push order; the next is not ready while an earlier one is
// leased or waiting for a retry; a dead letter (failed or expired) lets
// its group go; other groups and ungrouped messages flow beside them.
// `stats` counts the groups blocked behind a leased or delayed message.
// The same on every store; kept by export/import and `retry --to` (here)
// and migrate (migrate.rs).

use std::time::Duration;

use common::*;

#[track_caller]
fn push_g(s: &Spool, q: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["push", q];
    all.extend_from_slice(args);
    let out = s.run(&all);
    out.ok();
    out.lines()
}

/// One pop of up to `count`: the messages leased, as JSON.
#[track_caller]
fn pop_all(s: &Spool, q: &str, count: usize, extra: &[&str]) -> Vec<serde_json::Value> {
    let n = count.to_string();
    let mut args = vec!["pop", q, "--count", &n, "--json"];
    args.extend_from_slice(extra);
    let out = s.run(&args);
    if out.code == 3 {
        return Vec::new();
    }
    out.ok();
    out.json()
}

fn bodies(ms: &[serde_json::Value]) -> Vec<String> {
    ms.iter().map(|m| body(m).to_string()).collect()
}

#[track_caller]
fn blocked(s: &Spool, q: &str) -> u64 {
    s.stats(q)["groups_blocked"].as_u64().unwrap()
}

#[test]
fn a_group_is_delivered_one_at_a_time_in_push_order_beside_the_rest() {
    let s = Spool::new();
    push_g(&s, "orders", &["--group", "alice", "a1", "a2", "a3"]);
    push_g(&s, "orders", &["--group", "bob", "b1"]);
    push_g(&s, "orders", &["plain 1"]);
    push_g(&s, "orders", &["--group", "bob", "b2"]);
    push_g(&s, "orders", &["plain 2"]);
    assert_eq!(blocked(&s, "orders"), 0, "nothing is leased yet");
    // Peek shows what pop would take: each group's head and the rest.
    let out = s.run(&["peek", "orders", "--count", "10", "--json"]);
    out.ok();
    assert_eq!(bodies(&out.json()), ["a1", "b1", "plain 1", "plain 2"]);
    let first = pop_all(&s, "orders", 10, &[]);
    assert_eq!(bodies(&first), ["a1", "b1", "plain 1", "plain 2"]);
    // Both groups wait behind their leased heads.
    assert_eq!(blocked(&s, "orders"), 2);
    assert!(pop_all(&s, "orders", 10, &[]).is_empty());
    // The ack of a head lets the next of its group go, and only that one.
    s.ack("orders", &[receipt(&first[0])]);
    let next = pop_all(&s, "orders", 10, &[]);
    assert_eq!(bodies(&next), ["a2"]);
    // A nack gives the head back: it comes again, before the next.
    s.nack("orders", &[receipt(&first[1])], &[]);
    let again = pop_all(&s, "orders", 10, &[]);
    assert_eq!(bodies(&again), ["b1"]);
    assert_eq!(again[0]["attempt"], 2);
    s.ack("orders", &[receipt(&again[0]), receipt(&next[0])]);
    let last = pop_all(&s, "orders", 10, &[]);
    assert_eq!(bodies(&last), ["a3", "b2"]);
    assert_eq!(blocked(&s, "orders"), 0, "nothing waits behind them");
    s.run(&["fsck"]).ok();
}

#[test]
fn a_head_waiting_for_its_retry_or_its_lease_holds_the_group() {
    let s = Spool::new();
    push_g(&s, "jobs", &["--group", "g", "first", "second"]);
    let m = s.pop_one("jobs", &[]);
    s.nack("jobs", &[receipt(&m)], &["--delay", "1s"]);
    // Waiting for its retry: the next is not ready either.
    assert!(pop_all(&s, "jobs", 10, &[]).is_empty());
    let st = s.stats("jobs");
    assert_counts(&st, &[("delayed", 1), ("ready", 1)]);
    assert_eq!(st["groups_blocked"], 1);
    std::thread::sleep(Duration::from_millis(1100));
    // Due: the head comes back first; its lease running out gives it
    // back again, still ahead of the next.
    let m = s.pop_one("jobs", &["--lease", "1s"]);
    assert_eq!(body(&m), "first");
    std::thread::sleep(Duration::from_millis(1100));
    let m = s.pop_one("jobs", &[]);
    assert_eq!((body(&m), m["attempt"].as_u64()), ("first", Some(3)));
    s.ack("jobs", &[receipt(&m)]);
    assert_eq!(bodies(&pop_all(&s, "jobs", 10, &[])), ["second"]);
}

#[test]
fn a_dead_letter_lets_its_group_go() {
    let s = Spool::new();
    push_g(&s, "jobs", &["--group", "g", "fails", "after it"]);
    let m = s.pop_one("jobs", &["--max-attempts", "1"]);
    s.nack("jobs", &[receipt(&m)], &["--max-attempts", "1"]);
    assert_counts(&s.stats("jobs"), &[("dead", 1), ("ready", 1)]);
    let next = pop_all(&s, "jobs", 10, &[]);
    assert_eq!(bodies(&next), ["after it"]);
    // A head whose TTL passed is an expired dead letter: the pop that
    // marks it takes the next of its group at once.
    push_g(&s, "ttl", &["--group", "g", "--ttl", "1s", "expires"]);
    push_g(&s, "ttl", &["--group", "g", "in time"]);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(bodies(&pop_all(&s, "ttl", 10, &[])), ["in time"]);
    assert_counts(&s.stats("ttl"), &[("expired", 1), ("leased", 1)]);
}

#[test]
fn a_retried_dead_letter_goes_first_in_its_group_once_the_one_in_flight_is_done() {
    let s = Spool::new();
    push_g(&s, "jobs", &["--group", "g", "old", "new", "newer"]);
    let m = s.pop_one("jobs", &["--max-attempts", "1"]);
    s.nack("jobs", &[receipt(&m)], &["--max-attempts", "1"]);
    let inflight = s.pop_one("jobs", &["--lease", "2s"]);
    assert_eq!(body(&inflight), "new");
    // Brought back while "new" is leased: it waits for that lease (a
    // group never has two in flight), then goes before "newer".
    s.run(&["retry", "jobs"]).ok();
    assert!(pop_all(&s, "jobs", 10, &[]).is_empty());
    assert_counts(&s.stats("jobs"), &[("delayed", 1), ("leased", 1)]);
    s.ack("jobs", &[receipt(&inflight)]);
    std::thread::sleep(Duration::from_millis(2100));
    let got = pop_all(&s, "jobs", 10, &[]);
    assert_eq!(bodies(&got), ["old"]);
    s.ack("jobs", &[receipt(&got[0])]);
    assert_eq!(bodies(&pop_all(&s, "jobs", 10, &[])), ["newer"]);
    // Redriven to another queue, a dead letter keeps its group there.
    push_g(&s, "jobs", &["--group", "h", "moved 1", "moved 2"]);
    for _ in 0..2 {
        let m = s.pop_one("jobs", &["--max-attempts", "1"]);
        s.nack("jobs", &[receipt(&m)], &["--max-attempts", "1"]);
    }
    s.run(&["retry", "jobs", "--to", "other"]).ok();
    assert_eq!(bodies(&pop_all(&s, "other", 10, &[])), ["moved 1"]);
}

#[test]
fn inspect_and_export_show_the_group_and_import_keeps_it() {
    let s = Spool::new();
    let ids = push_g(&s, "jobs", &["--group", "customer-42", "one", "two"]);
    push_g(&s, "jobs", &["plain"]);
    let out = s.run(&["inspect", "jobs", &ids[0], "--json"]);
    out.ok();
    // The key every store keeps: a hash of the name, pinned in the model.
    assert_eq!(out.json()[0]["group_hash"], "daac899f5fb96753");
    let out = s.run(&["inspect", "jobs", &ids[1]]);
    out.ok();
    assert!(out.stdout_str().contains("group hash:   daac899f5fb96753"), "{}", out.stdout_str());
    let export = s.run(&["export", "jobs"]);
    export.ok();
    let lines = export.json();
    assert_eq!(lines[0]["group_hash"], "daac899f5fb96753");
    assert_eq!(lines[2].get("group_hash"), None, "a plain message has none");
    let out = s.run_stdin(&["import", "copy"], &export.stdout);
    out.ok();
    assert_eq!(bodies(&pop_all(&s, "copy", 10, &[])), ["one", "plain"]);
    // A group that is not 16 hex digits, or one with a priority, is an
    // error naming the line.
    for bad in [
        &b"{\"body\":\"x\",\"group_hash\":\"zz\"}\n"[..],
        b"{\"body\":\"x\",\"group_hash\":\"daac899f5fb96753\",\"priority\":3}\n",
    ] {
        let out = s.run_stdin(&["import", "copy"], bad);
        out.fails(1);
        assert!(out.stderr.contains("line 1"), "{}", out.stderr);
    }
}

#[test]
fn a_bad_group_is_a_usage_error() {
    let s = Spool::new();
    let long = "g".repeat(257);
    for args in [
        vec!["--group", ""],
        vec!["--group", &long],
        vec!["--group", "g", "--priority", "3"],
    ] {
        let mut all = vec!["push", "jobs"];
        all.extend_from_slice(&args);
        all.push("body");
        let out = s.run(&all);
        out.fails(2);
        assert!(out.stderr.contains("group"), "{}", out.stderr);
    }
    s.run(&["pop", "jobs"]).code(3);
    // 256 bytes is a group.
    push_g(&s, "jobs", &["--group", &"g".repeat(256), "fits"]);
}

#[test]
fn many_groups_interleaved_each_come_out_in_order() {
    // Eight groups of 25, pushed round-robin: every pop takes at most one
    // of each group, and each group comes out in push order.
    let s = Spool::new();
    for i in 0..25 {
        for g in 0..8 {
            let line = format!("g{g}-{i}");
            push_g(&s, "jobs", &["--group", &format!("g{g}"), &line]);
        }
    }
    let mut seen: Vec<Vec<usize>> = vec![Vec::new(); 8];
    loop {
        let ms = pop_all(&s, "jobs", 50, &[]);
        if ms.is_empty() {
            break;
        }
        let mut groups: Vec<usize> = Vec::new();
        for m in &ms {
            let (g, i) = body(m)[1..].split_once('-').unwrap();
            let (g, i): (usize, usize) = (g.parse().unwrap(), i.parse().unwrap());
            assert!(!groups.contains(&g), "two of group {g} in one pop");
            groups.push(g);
            seen[g].push(i);
        }
        let rs: Vec<&str> = ms.iter().map(receipt).collect();
        s.ack("jobs", &rs);
    }
    for (g, got) in seen.iter().enumerate() {
        assert_eq!(*got, (0..25).collect::<Vec<_>>(), "group {g}");
    }
    s.run(&["fsck"]).ok();
}
