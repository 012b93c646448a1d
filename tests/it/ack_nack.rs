// Proves the lease life cycle: `ack` deletes, stale/unknown receipts exit 4 and change
// nothing, expired leases redeliver, `nack` (with `--delay`) gives back, `--max-attempts`
// makes dead letters, `retry` revives them, and `extend` keeps a lease alive.


use std::time::{Duration, Instant};

use common::*;

const UNKNOWN_RECEIPT: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn ack_deletes_the_message() {
    let s = Spool::new();
    s.push("q", &["payload"]);
    let m = s.pop_one("q", &[]);
    let out = s.run(&["ack", "q", receipt(&m)]);
    out.ok().stdout_empty();
    assert!(
        out.stderr.is_empty(),
        "ack prints nothing: {:?}",
        out.stderr
    );
    assert_counts(
        &s.stats("q"),
        &[("ready", 0), ("leased", 0), ("pushed", 1), ("acked", 1)],
    );
    s.pop_nothing("q", &[]);
}

#[test]
fn ack_leaves_the_other_messages_alone() {
    let s = Spool::new();
    s.push("q", &["a", "b", "c"]);
    let msgs = s.pop_json("q", &["--count", "2"]);
    s.ack("q", &[receipt(&msgs[1])]);
    assert_counts(&s.stats("q"), &[("ready", 1), ("leased", 1), ("acked", 1)]);
    assert_eq!(body(&s.pop_one("q", &[])), "c");
    s.ack("q", &[receipt(&msgs[0])]);
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 1), ("acked", 2)]);
}

#[test]
fn ack_of_several_receipts_acks_them_all() {
    let s = Spool::new();
    s.push("q", &["a", "b", "c"]);
    let msgs = s.pop_json("q", &["--count", "3"]);
    let rs: Vec<&str> = msgs.iter().map(receipt).collect();
    s.ack("q", &rs);
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 0), ("acked", 3)]);
    s.pop_nothing("q", &[]);
}

#[test]
fn ack_of_an_unknown_receipt_exits_4_and_changes_nothing() {
    let s = Spool::new();
    s.push("q", &["a"]);
    let m = s.pop_one("q", &[]);
    s.run(&["ack", "q", UNKNOWN_RECEIPT])
        .fails(4)
        .stdout_empty();
    assert_counts(&s.stats("q"), &[("leased", 1), ("acked", 0)]);
    s.ack("q", &[receipt(&m)]);
}

#[test]
fn ack_on_a_queue_that_does_not_exist_exits_4() {
    let s = Spool::new();
    s.push("q", &["a"]);
    let m = s.pop_one("q", &[]);
    s.run(&["ack", "other", receipt(&m)]).fails(4);
    assert_counts(&s.stats("q"), &[("leased", 1), ("acked", 0)]);
}

#[test]
fn ack_of_an_already_acked_receipt_exits_4() {
    let s = Spool::new();
    s.push("q", &["a"]);
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    s.run(&["ack", "q", receipt(&m)]).fails(4).stdout_empty();
    assert_counts(&s.stats("q"), &[("acked", 1), ("ready", 0), ("leased", 0)]);
}

#[test]
fn ack_of_a_malformed_receipt_exits_4() {
    let s = Spool::new();
    s.push("q", &["a"]);
    let m = s.pop_one("q", &[]);
    let too_short = &UNKNOWN_RECEIPT[..39];
    let too_long = format!("{UNKNOWN_RECEIPT}0");
    let not_hex = "z".repeat(40);
    for bad in ["not-a-receipt", "abc", too_short, &too_long, &not_hex] {
        s.run(&["ack", "q", bad]).fails(4).stdout_empty();
    }
    assert_counts(&s.stats("q"), &[("leased", 1), ("acked", 0)]);
    s.ack("q", &[receipt(&m)]);
}

#[test]
fn ack_with_one_stale_receipt_among_several_acks_the_valid_ones_and_exits_4() {
    let s = Spool::new();
    s.push("q", &["a", "b", "c"]);
    let msgs = s.pop_json("q", &["--count", "3"]);
    let out = s.run(&[
        "ack",
        "q",
        receipt(&msgs[0]),
        UNKNOWN_RECEIPT,
        receipt(&msgs[2]),
    ]);
    out.fails(4).stdout_empty();
    assert_counts(&s.stats("q"), &[("acked", 2), ("leased", 1), ("ready", 0)]);
    // The untouched one is still leased under its receipt; the acked ones are gone.
    s.ack("q", &[receipt(&msgs[1])]);
    s.run(&["ack", "q", receipt(&msgs[0])]).fails(4);
    assert_counts(&s.stats("q"), &[("acked", 3), ("leased", 0)]);
}

#[test]
fn an_expired_lease_redelivers_with_attempt_2_and_a_new_receipt() {
    let s = Spool::new();
    let ids = s.push("q", &["work"]);
    let first = s.pop_one("q", &["--lease", "300ms"]);
    assert_eq!(attempt(&first), 1);
    s.pop_nothing("q", &[]);
    sleep_ms(800);
    let second = s.pop_one("q", &[]);
    assert_eq!(id(&second), ids[0]);
    assert_eq!(body(&second), "work");
    assert_eq!(attempt(&second), 2);
    assert_ne!(receipt(&second), receipt(&first));
}

#[test]
fn an_expired_receipt_is_stale_even_before_redelivery() {
    let s = Spool::new();
    s.push("q", &["work"]);
    let m = s.pop_one("q", &["--lease", "300ms"]);
    sleep_ms(800);
    s.run(&["ack", "q", receipt(&m)]).fails(4);
    assert_counts(&s.stats("q"), &[("acked", 0), ("ready", 1), ("leased", 0)]);
    assert_eq!(attempt(&s.pop_one("q", &[])), 2);
}

#[test]
fn a_stale_receipt_cannot_ack_nack_or_extend_the_new_delivery() {
    let s = Spool::new();
    s.push("q", &["work"]);
    let old = s.pop_one("q", &["--lease", "300ms"]);
    sleep_ms(800);
    let new = s.pop_one("q", &[]);
    assert_eq!(attempt(&new), 2);

    s.run(&["ack", "q", receipt(&old)]).fails(4).stdout_empty();
    s.run(&["nack", "q", receipt(&old)]).fails(4).stdout_empty();
    s.run(&["extend", "q", receipt(&old), "--lease", "1h"])
        .fails(4)
        .stdout_empty();

    // The new delivery is untouched: still leased, not acked, not given back.
    assert_counts(
        &s.stats("q"),
        &[("leased", 1), ("ready", 0), ("acked", 0), ("dead", 0)],
    );
    s.pop_nothing("q", &[]);
    s.ack("q", &[receipt(&new)]);
    assert_counts(&s.stats("q"), &[("leased", 0), ("ready", 0), ("acked", 1)]);
}

#[test]
fn nack_gives_the_message_back_with_the_next_attempt() {
    let s = Spool::new();
    let ids = s.push("q", &["retry me"]);
    let m = s.pop_one("q", &[]);
    let out = s.run(&["nack", "q", receipt(&m)]);
    out.ok().stdout_empty();
    assert!(
        out.stderr.is_empty(),
        "nack prints nothing: {:?}",
        out.stderr
    );
    assert_counts(
        &s.stats("q"),
        &[("ready", 1), ("leased", 0), ("acked", 0), ("dead", 0)],
    );
    let again = s.pop_one("q", &[]);
    assert_eq!(id(&again), ids[0]);
    assert_eq!(body(&again), "retry me");
    assert_eq!(attempt(&again), 2);
    assert_ne!(receipt(&again), receipt(&m));
    s.nack("q", &[receipt(&again)], &[]);
    assert_eq!(attempt(&s.pop_one("q", &[])), 3);
}

#[test]
fn nack_consumes_the_receipt() {
    let s = Spool::new();
    s.push("q", &["x"]);
    let m = s.pop_one("q", &[]);
    s.nack("q", &[receipt(&m)], &[]);
    s.run(&["ack", "q", receipt(&m)]).fails(4);
    s.run(&["nack", "q", receipt(&m)]).fails(4);
    assert_counts(&s.stats("q"), &[("ready", 1), ("acked", 0)]);
}

#[test]
fn nack_of_several_receipts_gives_them_all_back() {
    let s = Spool::new();
    s.push("q", &["a", "b"]);
    let msgs = s.pop_json("q", &["--count", "2"]);
    s.nack("q", &[receipt(&msgs[0]), receipt(&msgs[1])], &[]);
    let again = s.pop_json("q", &["--count", "2"]);
    assert_eq!(bodies(&again), ["a", "b"]);
    assert!(again.iter().all(|m| attempt(m) == 2));
}

#[test]
fn nack_of_an_unknown_receipt_exits_4() {
    let s = Spool::new();
    s.push("q", &["x"]);
    let m = s.pop_one("q", &[]);
    s.run(&["nack", "q", UNKNOWN_RECEIPT])
        .fails(4)
        .stdout_empty();
    assert_counts(&s.stats("q"), &[("leased", 1), ("ready", 0)]);
    s.ack("q", &[receipt(&m)]);
}

#[test]
fn nack_delay_hides_the_message_until_then() {
    let s = Spool::new();
    s.push("q", &["later"]);
    let m = s.pop_one("q", &[]);
    let start = Instant::now();
    s.nack("q", &[receipt(&m)], &["--delay", "1s"]);
    s.pop_nothing("q", &[]);
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "machine too slow to check the delay"
    );
    assert_counts(
        &s.stats("q"),
        &[("ready", 0), ("leased", 0), ("delayed", 1)],
    );
    sleep_ms(1300u64.saturating_sub(start.elapsed().as_millis() as u64));
    let again = s.pop_one("q", &[]);
    assert_eq!(body(&again), "later");
    assert_eq!(attempt(&again), 2);
}

#[test]
fn a_message_nacked_at_max_attempts_becomes_a_dead_letter() {
    let s = Spool::new();
    s.push("q", &["poison"]);
    let m1 = s.pop_one("q", &["--max-attempts", "2"]);
    s.nack("q", &[receipt(&m1)], &["--max-attempts", "2"]);
    assert_counts(&s.stats("q"), &[("ready", 1), ("dead", 0)]);
    let m2 = s.pop_one("q", &["--max-attempts", "2"]);
    assert_eq!(attempt(&m2), 2);
    s.nack("q", &[receipt(&m2)], &["--max-attempts", "2"]);
    assert_counts(
        &s.stats("q"),
        &[
            ("ready", 0),
            ("leased", 0),
            ("delayed", 0),
            ("dead", 1),
            ("acked", 0),
        ],
    );
    s.pop_nothing("q", &[]);
    s.pop_nothing("q", &["--max-attempts", "10"]);
}

#[test]
fn the_default_max_attempts_is_five() {
    let s = Spool::new();
    s.push("q", &["poison"]);
    for n in 1..=5u64 {
        let m = s.pop_one("q", &[]);
        assert_eq!(attempt(&m), n);
        s.nack("q", &[receipt(&m)], &[]);
        let expect_dead = u64::from(n == 5);
        assert_counts(
            &s.stats("q"),
            &[("ready", 1 - expect_dead), ("dead", expect_dead)],
        );
    }
    s.pop_nothing("q", &[]);
}

#[test]
fn a_lease_expiring_at_max_attempts_makes_a_dead_letter() {
    let s = Spool::new();
    s.push("q", &["slow poison", "fine"]);
    let m = s.pop_one("q", &["--lease", "200ms", "--max-attempts", "1"]);
    assert_eq!(body(&m), "slow poison");
    sleep_ms(700);
    // Only the other message is left to deliver.
    assert_eq!(body(&s.pop_one("q", &[])), "fine");
    s.pop_nothing("q", &[]);
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 1), ("dead", 1)]);
    s.run(&["ack", "q", receipt(&m)]).fails(4);
}

#[test]
fn retry_without_ids_moves_every_dead_letter_back_with_a_fresh_attempt_count() {
    let s = Spool::new();
    let ids = s.make_dead("q", &["d1", "d2"]);
    assert_counts(&s.stats("q"), &[("dead", 2), ("ready", 0)]);
    let out = s.run(&["retry", "q"]);
    out.ok();
    assert_eq!(out.stdout_str(), "2\n");
    assert_counts(&s.stats("q"), &[("dead", 0), ("ready", 2)]);
    let msgs = s.pop_json("q", &["--count", "5"]);
    let mut got: Vec<(String, String, u64)> = msgs
        .iter()
        .map(|m| (id(m).to_string(), body(m).to_string(), attempt(m)))
        .collect();
    got.sort();
    let mut expected = vec![
        (ids[0].clone(), "d1".to_string(), 1),
        (ids[1].clone(), "d2".to_string(), 1),
    ];
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn a_retried_message_gets_its_full_attempt_budget_again() {
    let s = Spool::new();
    s.make_dead("q", &["d"]);
    s.run(&["retry", "q"]).ok();
    let m = s.pop_one("q", &["--max-attempts", "2"]);
    assert_eq!(attempt(&m), 1);
    s.nack("q", &[receipt(&m)], &["--max-attempts", "2"]);
    assert_counts(&s.stats("q"), &[("dead", 0), ("ready", 1)]);
    assert_eq!(attempt(&s.pop_one("q", &[])), 2);
}

#[test]
fn retry_with_an_id_moves_only_that_dead_letter() {
    let s = Spool::new();
    let ids = s.make_dead("q", &["d1", "d2", "d3"]);
    let out = s.run(&["retry", "q", &ids[1]]);
    out.ok();
    assert_eq!(out.stdout_str(), "1\n");
    assert_counts(&s.stats("q"), &[("dead", 2), ("ready", 1)]);
    let m = s.pop_one("q", &[]);
    assert_eq!(id(&m), ids[1]);
    assert_eq!(body(&m), "d2");
    assert_eq!(attempt(&m), 1);
    s.pop_nothing("q", &[]);
    let out = s.run(&["retry", "q", &ids[0], &ids[2]]);
    out.ok();
    assert_eq!(out.stdout_str(), "2\n");
    assert_counts(&s.stats("q"), &[("dead", 0), ("ready", 2)]);
}

#[test]
fn retry_with_nothing_dead_prints_0() {
    let s = Spool::new();
    s.push("q", &["alive"]);
    let out = s.run(&["retry", "q"]);
    out.ok();
    assert_eq!(out.stdout_str(), "0\n");
    assert_counts(&s.stats("q"), &[("ready", 1), ("dead", 0)]);
}

#[test]
fn retry_json_prints_the_number_moved() {
    let s = Spool::new();
    s.make_dead("q", &["d1", "d2"]);
    let out = s.run(&["retry", "q", "--json"]);
    out.ok();
    let objs = out.json();
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0]["moved"], 2);
}

#[test]
fn extend_keeps_a_lease_alive_past_its_original_end() {
    let s = Spool::new();
    s.push("q", &["long job"]);
    let start = Instant::now();
    let m = s.pop_one("q", &["--lease", "1s"]);
    let out = s.run(&["extend", "q", receipt(&m), "--lease", "4s"]);
    out.ok().stdout_empty();
    assert!(
        out.stderr.is_empty(),
        "extend prints nothing: {:?}",
        out.stderr
    );
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "machine too slow to check extend"
    );
    sleep_ms(1600u64.saturating_sub(start.elapsed().as_millis() as u64));
    s.pop_nothing("q", &[]);
    assert_counts(&s.stats("q"), &[("leased", 1), ("ready", 0)]);
    s.ack("q", &[receipt(&m)]);
    assert_counts(&s.stats("q"), &[("acked", 1), ("leased", 0)]);
}

#[test]
fn extend_can_also_shorten_a_lease() {
    let s = Spool::new();
    s.push("q", &["job"]);
    let m = s.pop_one("q", &[]);
    s.run(&["extend", "q", receipt(&m), "--lease", "300ms"])
        .ok();
    sleep_ms(800);
    let again = s.pop_one("q", &[]);
    assert_eq!(attempt(&again), 2);
}

#[test]
fn extend_with_a_stale_receipt_exits_4() {
    let s = Spool::new();
    s.push("q", &["job"]);
    let m = s.pop_one("q", &["--lease", "300ms"]);
    sleep_ms(800);
    s.run(&["extend", "q", receipt(&m), "--lease", "1h"])
        .fails(4)
        .stdout_empty();
    // Nothing was revived by the failed extend: the message is ready again.
    assert_counts(&s.stats("q"), &[("ready", 1), ("leased", 0)]);
    s.run(&["extend", "q", UNKNOWN_RECEIPT, "--lease", "1h"])
        .fails(4);
}

// Receipts on stdin (`-`): every form `pop` prints, one commit for them all.

#[test]
fn ack_dash_reads_the_json_lines_of_pop_from_stdin() {
    let s = Spool::new();
    let bodies: Vec<String> = (0..500).map(|i| format!("m{i}\twith a tab")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    s.push("q", &refs);
    // Whole lines of `pop --json`, passed on as a worker would.
    let popped = s.run(&["pop", "q", "--count", "300", "--json"]);
    popped.ok();
    let out = s.run_stdin(&["ack", "q", "-"], &popped.stdout);
    out.ok().stdout_empty();
    assert_counts(&s.stats("q"), &[("ready", 200), ("leased", 0), ("acked", 300)]);
    // Plain lines of `pop` and bare receipts, blank lines among them.
    let plain = s.run(&["pop", "q", "--count", "100"]);
    plain.ok();
    let bare: Vec<String> = s
        .pop_json("q", &["--count", "100"])
        .iter()
        .map(|m| receipt(m).to_string())
        .collect();
    let mut input = plain.stdout.clone();
    input.extend_from_slice(b"\n\n");
    input.extend_from_slice(bare.join("\n").as_bytes());
    s.run_stdin(&["ack", "q", "-"], &input).ok().stdout_empty();
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 0), ("acked", 500)]);
    // The same receipts again are stale: exit 4, one line naming ten and a count.
    let again = s.run_stdin(&["ack", "q", "-"], &popped.stdout);
    again.fails(4);
    let line = again.error_line();
    assert!(line.contains(" and 290 more "), "{line}");
}

#[test]
fn nack_and_extend_read_receipts_from_stdin_too() {
    let s = Spool::new();
    s.push("q", &["a", "b", "c"]);
    let popped = s.run(&["pop", "q", "--count", "3", "--json", "--lease", "2s"]);
    popped.ok();
    s.run_stdin(&["extend", "q", "-", "--lease", "1h"], &popped.stdout).ok();
    std::thread::sleep(Duration::from_millis(2500));
    // Still leased after the first lease would have run out.
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 3)]);
    s.run_stdin(&["nack", "q", "-"], &popped.stdout).ok();
    assert_counts(&s.stats("q"), &[("ready", 3), ("leased", 0)]);
}

#[test]
fn a_line_on_stdin_that_is_not_a_receipt_is_a_usage_error_naming_it() {
    let s = Spool::new();
    s.push("q", &["a"]);
    let m = s.pop_one("q", &[]);
    let input = format!("{}\n{{\"id\":\"no receipt here\"}}\n", receipt(&m));
    let out = s.run_stdin(&["ack", "q", "-"], input.as_bytes());
    out.fails(2);
    assert!(out.error_line().contains("stdin line 2: "), "{}", out.error_line());
    // Nothing was acked: the line that named no receipt stopped it all.
    assert_counts(&s.stats("q"), &[("leased", 1), ("acked", 0)]);
    // An empty stdin acks nothing and is not an error.
    s.run_stdin(&["ack", "q", "-"], b"").ok();
    s.ack("q", &[receipt(&m)]);
}
