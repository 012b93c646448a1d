// `push --lines` pushes a slow producer's lines as they come, prints their ids as each batch is stored, and never holds the queue while waiting for input.

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
fn a_slow_producer_sees_each_batch_ids_as_soon_as_it_is_stored() {
    use std::io::{BufRead, BufReader};
    let s = Spool::new();
    let mut child = s
        .std_cmd()
        .args(["push", "q", "--lines"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Ids are read on a thread, so that a missing one fails the test by
    // timing out instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    for body in ["first", "second"] {
        stdin.write_all(format!("{body}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        // Its id comes while the producer is still running and its stdin open.
        let id = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("no id for {body:?} while the producer runs"));
        let peeked = s.run(&["peek", "q", "--count", "10"]).ok().stdout_str();
        assert!(
            peeked.contains(&format!("{id}\t")),
            "{id} printed before it was stored: {peeked}"
        );
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).is_err(),
        "no more ids"
    );
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

/// CPU ticks (user + system) a process has used, from /proc.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is 14th, stime 15th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

#[test]
fn a_waiting_pop_wakes_at_once_on_a_push_and_idles_without_cpu() {
    let s = Spool::new();
    s.push("q", &["warm-up"]);
    s.pop_json("q", &[]);
    // Five wake-ups; at least four within 100 ms of the push (the target is
    // 50 ms; the slack, and the one outlier allowed, are for a loaded CI
    // machine). With the 250 ms fallback poll alone this fails nine times in ten.
    let mut fast = 0;
    let mut took = Vec::new();
    for round in 0..5 {
        let mut waiter = s.spawn(&["pop", "q", "--wait", "20s", "--json"]);
        sleep_ms(if round == 0 { 1500 } else { 300 });
        assert!(
            !waiter.finished(),
            "pop --wait returned with nothing to pop"
        );
        if round == 0 {
            let ticks = cpu_ticks(waiter.id());
            // Less than 0.1 s of CPU in 1.5 s of waiting (ticks are 1/100 s).
            assert!(
                ticks <= 10,
                "the waiter used {ticks} ticks of CPU while idle"
            );
        }
        let pushed = Instant::now();
        s.push("q", &["wake up"]);
        let pushed_for = pushed.elapsed();
        let out = waiter.wait(Duration::from_secs(10));
        let woke_after = pushed.elapsed() - pushed_for;
        out.ok();
        assert_eq!(bodies(&out.json()), vec!["wake up"]);
        if woke_after < Duration::from_millis(100) {
            fast += 1;
        }
        took.push(woke_after);
    }
    assert!(fast >= 4, "the waiter was slow to notice pushes: {took:?}");
}
