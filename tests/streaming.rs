//! `push --lines` pushes a slow producer's lines as they come and never holds the queue while waiting for input.

mod common;
use common::*;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_slow_producer_does_not_block_consumers() {
    let s = Spool::new();
    let mut producer = s.std_cmd();
    producer
        .args(["push", "q", "--lines"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = producer.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first\n").unwrap();
    stdin.flush().unwrap();
    // The first line is pushed while the producer is still running, and the
    // queue is not locked while push waits for more input.
    let started = Instant::now();
    assert!(
        wait_for(Duration::from_secs(5), || s
            .run(&["pop", "q", "--json"])
            .code
            == 0),
        "the first line never became poppable while its producer was alive"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    stdin.write_all(b"second\n").unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
    let rest = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&rest), vec!["second"]);
    assert_eq!(num(&s.stats("q"), "pushed"), 2);
}

#[test]
fn lines_that_arrive_together_are_one_push_in_order() {
    let s = Spool::new();
    let input: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    let out = s.run_stdin(&["push", "q", "--lines"], input.as_bytes());
    out.ok();
    assert_eq!(out.lines().len(), 1000);
    let got = s.pop_json("q", &["--count", "1000"]);
    let expect: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
    assert_eq!(bodies(&got), expect);
}
