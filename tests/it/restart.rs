// Proves that all state lives on disk and is shared safely between processes: every step of
// a message's life runs in its own process and the next one sees exactly the result;
// killed processes (kill -9) lose nothing and hold no lease longer than granted; concurrent
// pushers lose nothing and concurrent poppers never receive the same message.


use std::collections::HashSet;
use std::time::Duration;

use common::*;

#[test]
fn every_step_of_a_message_life_is_seen_by_the_next_process() {
    let s = Spool::new();

    let ids = s.push("q", &["alpha", "beta"]);
    let lines = s.run_stdin(&["push", "q", "--lines"], b"gamma\ndelta\n");
    lines.ok();
    let all_ids: Vec<String> = ids.iter().cloned().chain(lines.lines()).collect();
    assert_counts(
        &s.stats("q"),
        &[
            ("ready", 4),
            ("leased", 0),
            ("delayed", 0),
            ("dead", 0),
            ("pushed", 4),
            ("acked", 0),
            ("bytes", 19),
        ],
    );
    let peeked = s.peek_json("q", &["--count", "10"]);
    assert_eq!(bodies(&peeked), ["alpha", "beta", "gamma", "delta"]);
    assert_eq!(peeked.iter().map(id).collect::<Vec<_>>(), all_ids);

    let a = s.pop_one("q", &[]);
    assert_eq!(
        (id(&a), body(&a), attempt(&a)),
        (all_ids[0].as_str(), "alpha", 1)
    );
    assert_counts(&s.stats("q"), &[("ready", 3), ("leased", 1), ("acked", 0)]);

    s.ack("q", &[receipt(&a)]);
    assert_counts(
        &s.stats("q"),
        &[("ready", 3), ("leased", 0), ("acked", 1), ("bytes", 14)],
    );
    assert_eq!(
        bodies(&s.peek_json("q", &["--count", "10"])),
        ["beta", "gamma", "delta"]
    );

    let b = s.pop_one("q", &[]);
    assert_eq!(body(&b), "beta");
    s.nack("q", &[receipt(&b)], &[]);
    assert_counts(&s.stats("q"), &[("ready", 3), ("leased", 0), ("acked", 1)]);

    let again = s.pop_one("q", &[]);
    assert_eq!(
        (id(&again), body(&again), attempt(&again)),
        (all_ids[1].as_str(), "beta", 2)
    );
    s.ack("q", &[receipt(&again)]);
    assert_counts(&s.stats("q"), &[("ready", 2), ("acked", 2), ("bytes", 10)]);

    let rest = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&rest), ["gamma", "delta"]);
    s.ack("q", &[receipt(&rest[0]), receipt(&rest[1])]);
    assert_counts(
        &s.stats("q"),
        &[
            ("ready", 0),
            ("leased", 0),
            ("delayed", 0),
            ("dead", 0),
            ("pushed", 4),
            ("acked", 4),
            ("bytes", 0),
        ],
    );
    s.pop_nothing("q", &[]);
    let list = s.run(&["list"]);
    list.ok();
    assert_eq!(list.stdout_str(), "q\n");
    s.run(&["fsck"]).ok();
}

#[test]
fn many_processes_each_acking_one_message_deliver_each_exactly_once() {
    let s = Spool::new();
    let input: String = (0..15).map(|i| format!("msg-{i}\n")).collect();
    s.run_stdin(&["push", "q", "--lines"], input.as_bytes())
        .ok();
    let mut seen = Vec::new();
    for _ in 0..15 {
        let m = s.pop_one("q", &[]);
        assert_eq!(attempt(&m), 1);
        seen.push(body(&m).to_string());
        s.ack("q", &[receipt(&m)]);
    }
    let expected: Vec<String> = (0..15).map(|i| format!("msg-{i}")).collect();
    assert_eq!(seen, expected);
    s.pop_nothing("q", &[]);
    assert_counts(
        &s.stats("q"),
        &[("pushed", 15), ("acked", 15), ("ready", 0)],
    );
}

#[test]
fn a_lease_survives_between_processes_until_it_expires() {
    let s = Spool::new();
    s.push("q", &["x"]);
    let m = s.pop_one("q", &["--lease", "1s"]);
    s.pop_nothing("q", &[]);
    s.pop_nothing("q", &[]);
    sleep_ms(1500);
    let again = s.pop_one("q", &[]);
    assert_eq!(id(&again), id(&m));
    assert_eq!(attempt(&again), 2);
}

#[test]
fn dead_letters_and_counters_persist_across_processes() {
    let s = Spool::new();
    let ids = s.make_dead("q", &["d"]);
    assert_counts(&s.stats("q"), &[("dead", 1), ("pushed", 1)]);
    s.pop_nothing("q", &[]);
    assert_counts(&s.stats("q"), &[("dead", 1), ("ready", 0)]);
    let out = s.run(&["retry", "q", &ids[0]]);
    out.ok();
    assert_eq!(out.stdout_str(), "1\n");
    assert_counts(&s.stats("q"), &[("dead", 0), ("ready", 1), ("pushed", 1)]);
    assert_eq!(attempt(&s.pop_one("q", &[])), 1);
}

#[test]
fn a_consumer_killed_with_sigkill_leaves_its_message_for_redelivery_after_the_lease() {
    let s = Spool::new();
    let ids = s.push("q", &["job"]);
    let scratch = s.scratch().to_str().unwrap().to_string();
    let bg = s.spawn(&[
        "exec",
        "q",
        "--lease",
        "1s",
        "--",
        "sh",
        "-c",
        r#"cat > /dev/null; touch "$1/started"; sleep 5"#,
        "sh",
        &scratch,
    ]);
    let started = s.scratch().join("started");
    assert!(
        wait_for(Duration::from_secs(5), || started.exists()),
        "the command never started"
    );
    bg.kill9();
    // The lease it held is still honoured...
    s.pop_nothing("q", &[]);
    // ...and once nobody extends it, it runs out and the message comes back.
    sleep_ms(2500);
    let m = s.pop_one("q", &[]);
    assert_eq!(id(&m), ids[0]);
    assert_eq!(body(&m), "job");
    assert_eq!(attempt(&m), 2);
    s.ack("q", &[receipt(&m)]);
    assert_counts(&s.stats("q"), &[("acked", 1), ("ready", 0), ("leased", 0)]);
}

#[test]
fn a_killed_waiting_pop_does_not_block_later_commands() {
    let s = Spool::new();
    s.push("q", &["first"]);
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    let bg = s.spawn(&["pop", "q", "--wait", "10s"]);
    sleep_ms(300);
    bg.kill9();
    s.push("q", &["second"]);
    let m = s.pop_one("q", &[]);
    assert_eq!(body(&m), "second");
    assert_eq!(attempt(&m), 1);
    s.ack("q", &[receipt(&m)]);
    assert_counts(&s.stats("q"), &[("pushed", 2), ("acked", 2)]);
}

#[test]
fn concurrent_pushers_lose_nothing() {
    let s = Spool::new();
    let procs: Vec<Bg> = (0..4)
        .map(|p| {
            let args: Vec<String> = ["push".to_string(), "q".to_string()]
                .into_iter()
                .chain((0..25).map(|i| format!("p{p}-m{i}")))
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            s.spawn(&args)
        })
        .collect();
    let mut ids = HashSet::new();
    for bg in procs {
        let out = bg.wait(Duration::from_secs(20));
        out.ok();
        let lines = out.lines();
        assert_eq!(lines.len(), 25);
        ids.extend(lines);
    }
    assert_eq!(ids.len(), 100, "ids are unique across concurrent pushers");
    assert_counts(&s.stats("q"), &[("ready", 100), ("pushed", 100)]);
    let msgs = s.pop_json("q", &["--count", "1000"]);
    let got: HashSet<String> = msgs.iter().map(|m| body(m).to_string()).collect();
    let expected: HashSet<String> = (0..4)
        .flat_map(|p| (0..25).map(move |i| format!("p{p}-m{i}")))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        msgs.iter()
            .map(|m| id(m).to_string())
            .collect::<HashSet<_>>(),
        ids
    );
    // Each pusher's own messages come out in the order it pushed them.
    for p in 0..4 {
        let mine: Vec<String> = msgs
            .iter()
            .map(|m| body(m).to_string())
            .filter(|b| b.starts_with(&format!("p{p}-")))
            .collect();
        let expected: Vec<String> = (0..25).map(|i| format!("p{p}-m{i}")).collect();
        assert_eq!(mine, expected);
    }
}

#[test]
fn concurrent_poppers_never_receive_the_same_message() {
    let s = Spool::new();
    let input: String = (0..60).map(|i| format!("m{i}\n")).collect();
    s.run_stdin(&["push", "q", "--lines"], input.as_bytes())
        .ok();
    let procs: Vec<Bg> = (0..6)
        .map(|_| s.spawn(&["pop", "q", "--json", "--count", "8"]))
        .collect();
    let mut seen = Vec::new();
    for bg in procs {
        let out = bg.wait(Duration::from_secs(20));
        out.ok();
        let msgs = out.json();
        assert_eq!(msgs.len(), 8, "60 are ready, so every pop gets its 8");
        for m in &msgs {
            assert_eq!(attempt(m), 1);
            seen.push(body(m).to_string());
        }
    }
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "a message was delivered twice: {seen:?}"
    );
    assert_counts(&s.stats("q"), &[("ready", 12), ("leased", 48)]);
    let rest = s.pop_json("q", &["--count", "100"]);
    assert_eq!(rest.len(), 12);
    for m in &rest {
        assert!(
            !distinct.contains(&body(m).to_string()),
            "{m} was already leased"
        );
    }
}
