//! Proves the delivery rules of `spoolmq::queue` (receipts, settling, the
//! clock) in the corners the unit and model tests leave out; each test here
//! kills a mutant that `cargo mutants` found surviving.

use spoolmq::queue::{self, Queue};
use spoolmq::{Error, Spool};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

const T0: u64 = 1_800_000_000_000;

fn queue() -> (TempDir, Queue) {
    let tmp = TempDir::new().unwrap();
    let spool = Spool::new(tmp.path().join("spool"));
    let q = Queue::open(&spool, "q", true).unwrap().unwrap();
    (tmp, q)
}

fn push(q: &mut Queue, bodies: &[&str], delay: Duration, now: u64) -> Vec<String> {
    let mut it = bodies.iter().map(|b| Ok(b.as_bytes().to_vec()));
    q.push(&mut it, delay, now).unwrap()
}

#[test]
fn now_ms_reads_the_system_clock_in_milliseconds() {
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let now = queue::now_ms();
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        before <= now && now <= after,
        "{before} <= {now} <= {after}"
    );
}

#[test]
fn a_receipt_of_the_wrong_length_or_with_non_hex_digits_is_refused() {
    let tag = [0x1f; 12];
    let good = queue::format_receipt(3, 1000, &tag);
    assert_eq!(queue::parse_receipt(&good, 1000), Some((3, tag)));
    // All hex digits, but too short or too long.
    for bad in ["", "ff", &good[..16], &good[..39], &format!("{good}00")] {
        assert_eq!(queue::parse_receipt(bad, 1000), None, "{bad:?}");
    }
    // The right length, but a sign where a digit should be
    // (u8::from_str_radix would take "+f").
    let mut plus = good.clone();
    plus.replace_range(16..17, "+");
    assert_eq!(queue::parse_receipt(&plus, 1000), None);
    // The right length in bytes, not in characters.
    let wide = format!("{}é{}", &good[..16], &good[18..]);
    assert_eq!(wide.len(), 40);
    assert_eq!(queue::parse_receipt(&wide, 1000), None);
}

#[test]
fn each_delivery_gets_a_fresh_random_receipt_and_the_old_one_goes_stale() {
    let (_tmp, mut q) = queue();
    push(&mut q, &["m"], Duration::ZERO, T0);
    let first = q.pop(1, Duration::from_secs(1), 0, T0).unwrap();
    assert_eq!(first.len(), 1);
    // The lease runs out and the message is delivered again.
    let second = q.pop(1, Duration::from_secs(1), 0, T0 + 5_000).unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(first[0].id, second[0].id);
    assert_eq!(second[0].attempt, 2);
    assert_ne!(first[0].receipt, second[0].receipt);
    // The tag (after the 16-digit id) is random, not zeros.
    assert_ne!(&first[0].receipt[16..], "0".repeat(24));
    assert_ne!(&second[0].receipt[16..], "0".repeat(24));
    let stale = q
        .ack(std::slice::from_ref(&first[0].receipt), T0 + 5_001)
        .unwrap();
    assert_eq!(stale.done, 0);
    assert_eq!(stale.stale.len(), 1);
    let ok = q
        .ack(std::slice::from_ref(&second[0].receipt), T0 + 5_001)
        .unwrap();
    assert_eq!(ok.done, 1);
}

#[test]
fn into_result_counts_what_was_settled_or_fails_with_exit_4() {
    let (_tmp, mut q) = queue();
    push(&mut q, &["a", "b", "c"], Duration::ZERO, T0);
    let d = q.pop(3, Duration::from_secs(30), 0, T0).unwrap();
    let receipts: Vec<String> = d.iter().map(|d| d.receipt.clone()).collect();
    let settled = q.ack(&receipts, T0 + 1).unwrap();
    assert_eq!(settled.into_result().unwrap(), 3);
    // Acking them again: every receipt is stale now.
    let again = q.ack(&receipts[..2], T0 + 2).unwrap();
    match again.into_result() {
        Err(e @ Error::Stale(_)) => {
            assert_eq!(e.exit_code(), 4);
            let text = e.to_string();
            assert!(text.contains("receipts "), "{text}");
            assert!(
                text.contains(&receipts[0]) && text.contains(&receipts[1]),
                "{text}"
            );
        }
        other => panic!("expected a stale error, got {other:?}"),
    }
    let one = q.ack(&receipts[2..], T0 + 3).unwrap().into_result();
    let text = one.unwrap_err().to_string();
    assert!(
        text.contains("receipt ") && !text.contains("receipts"),
        "{text}"
    );
}

#[test]
fn a_lease_taken_with_no_attempt_limit_that_runs_out_is_delivered_again_not_dead() {
    let (_tmp, mut q) = queue();
    push(&mut q, &["m"], Duration::ZERO, T0);
    let mut now = T0;
    for attempt in 1..=5 {
        let d = q.pop(1, Duration::from_secs(1), 0, now).unwrap();
        assert_eq!(d.len(), 1, "attempt {attempt}");
        assert_eq!(d[0].attempt, attempt);
        now += 2_000;
    }
    let s = q.stats(now).unwrap();
    assert_eq!((s.ready, s.leased, s.dead), (1, 0, 0));
    assert_eq!(q.retry(&[], now).unwrap().moved, 0);
}
