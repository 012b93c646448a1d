// `spoolmq bench` runs to completion on a scratch queue, prints sane figures and leaves nothing behind.

use common::*;

#[test]
fn bench_measures_throughput_and_latency_and_removes_its_scratch_queue() {
    let s = Spool::new();
    s.push("keep", &["mine"]);
    let out = s.run(&[
        "bench",
        "--count",
        "300",
        "--size",
        "64",
        "--batch",
        "50",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--json",
    ]);
    out.ok();
    let r = &out.json()[0];
    assert_eq!(r["count"], 300);
    assert_eq!(r["size"], 64);
    let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert!(f("push_msgs_per_sec") > 0.0 && f("push_mb_per_sec") > 0.0);
    let (p50, p90, p99, max) = (
        f("latency_ms_p50"),
        f("latency_ms_p90"),
        f("latency_ms_p99"),
        f("latency_ms_max"),
    );
    assert!(0.0 <= p50 && p50 <= p90 && p90 <= p99 && p99 <= max, "{r}");
    assert!(max < 60_000.0, "{r}");
    // Only the user's queue is left, untouched.
    assert_eq!(s.run(&["list"]).lines(), vec!["keep"]);
    assert_eq!(num(&s.stats("keep"), "ready"), 1);
}

#[test]
fn bench_prints_a_readable_table() {
    let s = Spool::new();
    let out = s.run(&["bench", "--count", "100"]);
    out.ok();
    let text = out.stdout_str();
    assert!(text.contains("msg/s") && text.contains("MB/s"), "{text}");
    assert!(text.contains("p50") && text.contains("p99"), "{text}");
}

#[test]
fn bench_workers_use_the_spool_named_on_the_command_line() {
    // `--url URL` (or a relative `--dir`) only on the command line: the
    // worker processes must use that spool, not make one of their own in
    // the working directory (they once got `--dir [postgresql ...]`).
    let s = Spool::new();
    s.push("keep", &["mine"]);
    let names = || {
        let mut v: Vec<_> = std::fs::read_dir(s.scratch())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = names();
    let out = run(s.cmd_with_spool_flag().args([
        "bench",
        "--count",
        "20",
        "--producers",
        "1",
        "--consumers",
        "1",
        "--json",
    ]));
    out.ok();
    assert_eq!(out.json()[0]["count"], 20);
    assert_eq!(names(), before, "the workers made a spool where they ran");
    assert_eq!(s.run(&["list"]).lines(), vec!["keep"]);
}
