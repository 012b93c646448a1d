// Priorities (`push --priority N`, 0 to 9, 9 the most urgent, 0 the
// default): `pop` and `peek` serve the highest priority ready message
// first, oldest first within one; a delayed one joins its priority when
// due, a nacked or retried one comes back to it. The same on every store;
// kept by export/import (here) and migrate (migrate.rs).

use std::time::Duration;

use common::*;

/// Pops one message at a time until none is left: their bodies, acked.
#[track_caller]
fn drain(s: &Spool, q: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let out = s.run(&["pop", q, "--json"]);
        if out.code == 3 {
            return got;
        }
        out.ok();
        let m = &out.json()[0];
        got.push(body(m).to_string());
        s.ack(q, &[receipt(m)]);
    }
}

#[track_caller]
fn push_p(s: &Spool, q: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["push", q];
    all.extend_from_slice(args);
    let out = s.run(&all);
    out.ok();
    out.lines()
}

#[test]
fn pop_serves_the_most_urgent_first_and_the_oldest_first_within_a_priority() {
    let s = Spool::new();
    push_p(&s, "jobs", &["a", "b"]);
    push_p(&s, "jobs", &["--priority", "5", "p5a", "p5b"]);
    push_p(&s, "jobs", &["--priority", "9", "p9"]);
    push_p(&s, "jobs", &["--priority", "0", "c"]);
    push_p(&s, "jobs", &["--priority", "5", "p5c"]);
    push_p(&s, "jobs", &["--priority", "1", "p1"]);
    // Peek shows the order pop will take, and takes nothing.
    let out = s.run(&["peek", "jobs", "--count", "3", "--json"]);
    out.ok();
    let peeked: Vec<String> = out.json().iter().map(|m| body(m).to_string()).collect();
    assert_eq!(peeked, ["p9", "p5a", "p5b"]);
    // One pop of several takes them in that order too.
    let out = s.run(&["pop", "jobs", "--count", "4", "--json"]);
    out.ok();
    let popped: Vec<String> = out.json().iter().map(|m| body(m).to_string()).collect();
    assert_eq!(popped, ["p9", "p5a", "p5b", "p5c"]);
    assert_eq!(drain(&s, "jobs"), ["p1", "a", "b", "c"]);
}

#[test]
fn a_delayed_or_nacked_message_comes_back_to_its_priority() {
    let s = Spool::new();
    push_p(&s, "jobs", &["plain 1", "plain 2"]);
    push_p(&s, "jobs", &["--priority", "7", "--delay", "1s", "urgent later"]);
    push_p(&s, "jobs", &["--priority", "3", "medium"]);
    // Not due yet: the others go first.
    let m = s.pop_one("jobs", &[]);
    assert_eq!(body(&m), "medium");
    // A nack gives it back at its priority: before the plain ones.
    s.nack("jobs", &[receipt(&m)], &[]);
    let m = s.pop_one("jobs", &[]);
    assert_eq!(body(&m), "medium");
    s.ack("jobs", &[receipt(&m)]);
    std::thread::sleep(Duration::from_millis(1100));
    // Due now: first, ahead of plain messages pushed before it.
    assert_eq!(drain(&s, "jobs"), ["urgent later", "plain 1", "plain 2"]);
}

#[test]
fn a_retried_dead_letter_comes_back_to_its_priority() {
    let s = Spool::new();
    push_p(&s, "jobs", &["--priority", "8", "fails once"]);
    push_p(&s, "jobs", &["plain"]);
    let m = s.pop_one("jobs", &["--max-attempts", "1"]);
    assert_eq!(body(&m), "fails once");
    s.nack("jobs", &[receipt(&m)], &["--max-attempts", "1"]);
    assert_counts(&s.stats("jobs"), &[("dead", 1), ("ready", 1)]);
    s.run(&["retry", "jobs"]).ok();
    assert_eq!(drain(&s, "jobs"), ["fails once", "plain"]);
    // Redriven to another queue, it keeps its priority there.
    push_p(&s, "jobs", &["--priority", "6", "moved"]);
    let m = s.pop_one("jobs", &["--max-attempts", "1"]);
    s.nack("jobs", &[receipt(&m)], &["--max-attempts", "1"]);
    push_p(&s, "other", &["already there"]);
    s.run(&["retry", "jobs", "--to", "other"]).ok();
    assert_eq!(drain(&s, "other"), ["moved", "already there"]);
}

#[test]
fn inspect_and_export_show_the_priority_and_import_keeps_it() {
    let s = Spool::new();
    let ids = push_p(&s, "jobs", &["--priority", "4", "four"]);
    push_p(&s, "jobs", &["zero"]);
    push_p(&s, "jobs", &["--priority", "9", "nine"]);
    let out = s.run(&["inspect", "jobs", &ids[0], "--json"]);
    out.ok();
    assert_eq!(out.json()[0]["priority"], 4);
    let out = s.run(&["inspect", "jobs", &ids[0]]);
    out.ok();
    let text = out.stdout_str();
    assert!(text.contains("priority:     4"), "{text}");
    let export = s.run(&["export", "jobs"]);
    export.ok();
    let lines = export.json();
    assert_eq!(lines[0]["priority"], 4);
    assert_eq!(lines[1].get("priority"), None, "a plain message has none");
    assert_eq!(lines[2]["priority"], 9);
    let out = s.run_stdin(&["import", "copy"], &export.stdout);
    out.ok();
    assert_eq!(drain(&s, "copy"), ["nine", "four", "zero"]);
    // A priority out of range in an import is an error, naming the line.
    let bad = b"{\"body\":\"x\",\"priority\":10}\n".to_vec();
    let out = s.run_stdin(&["import", "copy"], &bad);
    out.fails(1);
    assert!(out.stderr.contains("priority"), "{}", out.stderr);
}

#[test]
fn a_priority_outside_0_to_9_is_a_usage_error() {
    let s = Spool::new();
    for bad in ["10", "-1", "x", "", "1.5"] {
        let flag = format!("--priority={bad}");
        let out = s.run(&["push", "jobs", &flag, "body"]);
        out.fails(2);
        assert!(out.stderr.contains("priority"), "{}", out.stderr);
    }
    // Nothing was stored.
    s.run(&["pop", "jobs"]).code(3);
}

#[test]
fn many_priorities_interleaved_come_out_in_order() {
    // Ten lanes, pushed round-robin in one --lines push each: every pop
    // of a batch takes the head of the highest lane left.
    let s = Spool::new();
    let mut want = Vec::new();
    for p in 0..10 {
        let lines: String = (0..30).map(|i| format!("p{p}-{i}\n")).collect();
        let out = s.run_stdin(
            &["push", "jobs", "--lines", "--priority", &p.to_string()],
            lines.as_bytes(),
        );
        out.ok();
    }
    for p in (0..10).rev() {
        for i in 0..30 {
            want.push(format!("p{p}-{i}"));
        }
    }
    let mut got = Vec::new();
    loop {
        let out = s.run(&["pop", "jobs", "--count", "37", "--json"]);
        if out.code == 3 {
            break;
        }
        out.ok();
        let ms = out.json();
        got.extend(ms.iter().map(|m| body(m).to_string()));
        let rs: Vec<&str> = ms.iter().map(receipt).collect();
        s.ack("jobs", &rs);
    }
    assert_eq!(got, want);
    s.run(&["fsck"]).ok();
}
