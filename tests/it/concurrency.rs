// 8 producer and 8 consumer processes on one queue, 10,000 messages: every message is processed exactly once while its lease is live, none is lost, and the counters add up.

use common::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const PRODUCERS: usize = 8;
const CONSUMERS: usize = 8;
const PUSHES_PER_PRODUCER: usize = 25;
const BODIES_PER_PUSH: usize = 50; // 8 * 25 * 50 = 10,000 messages

#[test]
fn eight_producers_and_eight_consumers_process_every_message_exactly_once() {
    let s = Arc::new(Spool::new());
    let started = Instant::now();
    let producers_left = Arc::new(Mutex::new(PRODUCERS));
    let mut handles = Vec::new();
    for p in 0..PRODUCERS {
        let s = Arc::clone(&s);
        let left = Arc::clone(&producers_left);
        handles.push(thread::spawn(move || {
            for k in 0..PUSHES_PER_PRODUCER {
                let bodies: Vec<String> = (0..BODIES_PER_PUSH)
                    .map(|i| format!("p{p}-{k}-{i}"))
                    .collect();
                let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
                s.push("q", &refs);
            }
            *left.lock().unwrap() -= 1;
        }));
    }
    // body -> how many times it was acked successfully
    let processed: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let s = Arc::clone(&s);
        let left = Arc::clone(&producers_left);
        let processed = Arc::clone(&processed);
        consumers.push(thread::spawn(move || {
            loop {
                let out = s.run(&["pop", "q", "--count", "20", "--lease", "2m", "--json"]);
                if out.code == 3 {
                    if *left.lock().unwrap() == 0 {
                        // Producers are done: one more look, then stop.
                        if s.run(&["pop", "q", "--count", "1", "--json"]).code == 3 {
                            return;
                        }
                        panic!(
                            "a message appeared after the queue looked empty with producers done"
                        );
                    }
                    sleep_ms(5);
                    continue;
                }
                out.ok();
                let msgs = out.json();
                let receipts: Vec<&str> = msgs.iter().map(receipt).collect();
                let mut args = vec!["ack", "q"];
                args.extend(&receipts);
                // Every ack must succeed: the leases are live, and nobody else holds them.
                s.run(&args).ok();
                let mut p = processed.lock().unwrap();
                for m in &msgs {
                    assert_eq!(attempt(m), 1, "{m} was delivered before");
                    *p.entry(body(m).to_string()).or_default() += 1;
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    for c in consumers {
        c.join().unwrap();
    }
    let p = processed.lock().unwrap();
    let total = PRODUCERS * PUSHES_PER_PRODUCER * BODIES_PER_PUSH;
    assert_eq!(p.len(), total, "messages lost");
    assert!(p.values().all(|&n| n == 1), "a message was processed twice");
    let st = s.stats("q");
    assert_counts(
        &st,
        &[
            ("pushed", total as u64),
            ("acked", total as u64),
            ("ready", 0),
            ("leased", 0),
            ("dead", 0),
        ],
    );
    s.run(&["fsck"]).ok();
    eprintln!(
        "concurrency: {total} messages, {PRODUCERS} producers, {CONSUMERS} consumers, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}
