// Proves `exec` as a worker: a failed attempt comes back after a growing, jittered backoff
// (and `nack --backoff` by the message's attempt), `--timeout` kills the job's whole process
// group, SIGTERM/SIGINT stop exec gracefully (forwarded, acked or given back uncounted, exit
// 143/130), `--jobs` runs commands at once, `--max-messages`/`--max-time` bound a run.

use std::fs;
use std::time::{Duration, Instant};

use common::*;

fn scratch(s: &Spool) -> String {
    s.scratch().to_str().expect("utf-8 temp path").to_string()
}

/// `exec QUEUE FLAGS... -- sh -c SCRIPT sh SCRATCH` (the script sees the scratch dir as $1).
fn exec_args<'a>(s: &'a Spool, q: &'a str, flags: &[&'a str], script: &'a str) -> Vec<String> {
    let mut args: Vec<String> = vec!["exec".into(), q.into()];
    args.extend(flags.iter().map(|f| f.to_string()));
    args.extend(["--", "sh", "-c", script, "sh"].map(String::from));
    args.push(scratch(s));
    args
}

fn exec(s: &Spool, q: &str, flags: &[&str], script: &str) -> Out {
    let args = exec_args(s, q, flags, script);
    s.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn spawn_exec(s: &Spool, q: &str, flags: &[&str], script: &str) -> Bg {
    let args = exec_args(s, q, flags, script);
    s.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn file(s: &Spool, name: &str) -> std::path::PathBuf {
    s.scratch().join(name)
}

fn read(s: &Spool, name: &str) -> String {
    fs::read_to_string(file(s, name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn wait_file(s: &Spool, name: &str) {
    let p = file(s, name);
    assert!(
        wait_for(Duration::from_secs(10), || p.exists()),
        "{name} never appeared"
    );
}

fn send(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -{sig} {pid}");
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet: dead all the same).
fn gone(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Kills a process a test's job left behind (only when the test already failed).
fn cleanup(pid: &str) {
    if !gone(pid) {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid])
            .status();
    }
}

/// The one message of `q` as `export` shows it.
fn exported(s: &Spool, q: &str) -> serde_json::Value {
    let mut all = s.run(&["export", q]).ok().json();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

/// Checks that the nacked message of `q` is delayed by between `lo` and
/// `hi` ms from a nack made between `t0` and `t1` (ms since 1970), and not
/// ready now.
#[track_caller]
fn assert_delayed(s: &Spool, q: &str, t0: u64, t1: u64, lo: u64, hi: u64) {
    let m = exported(s, q);
    assert_eq!(m["state"], "delayed", "{m}");
    let ready_at = num(&m, "ready_at_ms");
    assert!(
        ready_at >= t0 + lo && ready_at <= t1 + hi,
        "ready at {ready_at}: not {lo}..{hi} ms after a nack made in {t0}..{t1}"
    );
    assert_counts(&s.stats(q), &[("ready", 0), ("delayed", 1)]);
    s.pop_nothing(q, &[]);
}

/// Waits until the message of `q` is ready (peek, so nothing is leased),
/// which must be within `limit`.
#[track_caller]
fn wait_ready(s: &Spool, q: &str, limit: Duration) {
    let start = Instant::now();
    assert!(
        wait_for(limit + Duration::from_secs(2), || !s.peek_json(q, &[]).is_empty()),
        "never ready again"
    );
    assert!(start.elapsed() <= limit, "ready only after {:?}", start.elapsed());
}

#[test]
fn a_failing_command_is_retried_after_a_growing_backoff_then_becomes_a_dead_letter() {
    let s = Spool::new();
    s.push("q", &["flaky"]);
    let flags = ["--backoff", "600ms", "--backoff-max", "5s", "--max-attempts", "3"];
    let script = r#"echo "$SPOOLMQ_ATTEMPT" >> "$1/log"; echo "failing on purpose" >&2; exit 3"#;
    let slack = Duration::from_millis(1500);
    // Attempt n waits 0.5..1 of 600ms * 2^(n-1).
    for (n, lo, hi) in [(1, 300, 600), (2, 600, 1200)] {
        let t0 = now_ms();
        let out = exec(&s, "q", &flags, script);
        let t1 = now_ms();
        out.code(1);
        assert!(out.stderr.contains("failing on purpose"), "{}", out.stderr);
        let said = format!("exit status 3; nacked (attempt {n} of 3), back in {lo}ms-");
        assert!(out.stderr.contains(&said), "{}", out.stderr);
        assert_delayed(&s, "q", t0, t1, lo, hi);
        wait_ready(&s, "q", Duration::from_millis(hi) + slack);
    }
    let out = exec(&s, "q", &flags, script);
    out.code(1);
    assert!(
        out.stderr.contains("it is now a dead letter after 3 attempts"),
        "{}",
        out.stderr
    );
    assert_counts(&s.stats("q"), &[("dead", 1), ("ready", 0), ("delayed", 0)]);
    assert_eq!(read(&s, "log"), "1\n2\n3\n");
}

#[test]
fn backoff_0_retries_at_once() {
    let s = Spool::new();
    s.push("q", &["x"]);
    exec(&s, "q", &["--backoff", "0"], "exit 1").code(1);
    assert_counts(&s.stats("q"), &[("ready", 1), ("delayed", 0)]);
}

#[test]
fn nack_backoff_delays_by_the_messages_attempt() {
    let s = Spool::new();
    s.push("q", &["m"]);
    for (n, flags, lo, hi) in [
        (1, vec!["--backoff", "500ms"], 250, 500),
        (2, vec!["--backoff", "500ms"], 500, 1000),
        (3, vec!["--backoff", "500ms", "--backoff-max", "800ms"], 400, 800),
    ] {
        let m = s.pop_one("q", &["--wait", "5s"]);
        assert_eq!(attempt(&m), n);
        let t0 = now_ms();
        let mut args = vec!["nack", "q", receipt(&m), "--reason", "not now"];
        args.extend(flags);
        s.run(&args).ok();
        assert_delayed(&s, "q", t0, now_ms(), lo, hi);
    }
    let m = s.pop_one("q", &["--wait", "5s"]);
    let out = s.run(&["nack", "q", receipt(&m), "--delay", "1s", "--backoff", "1s"]);
    out.fails(2);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}

#[test]
fn timeout_kills_the_job_and_its_children_and_counts_a_failed_attempt() {
    let s = Spool::new();
    s.push("q", &["slow"]);
    let start = Instant::now();
    // In the background, with output to files: a child left alive must not
    // hold up the test through a pipe.
    let bg = spawn_exec(
        &s,
        "q",
        &["--timeout", "500ms", "--kill-after", "5s", "--backoff", "0"],
        r#"sleep 100 & echo $! > "$1/child"; wait"#,
    );
    let out = bg.wait(Duration::from_secs(10));
    let took = start.elapsed();
    let child = read(&s, "child").trim().to_string();
    let dead = wait_for(Duration::from_secs(2), || gone(&child));
    cleanup(&child);
    out.code(1);
    assert!(dead, "the job's child {child} outlived the timeout");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        out.stderr.contains("timed out after 500ms; nacked (attempt 1 of 5)"),
        "{}",
        out.stderr
    );
    assert_eq!(attempt(&s.pop_one("q", &[])), 2, "the attempt counted");
}

#[test]
fn a_job_that_ignores_sigterm_is_killed_after_kill_after() {
    let s = Spool::new();
    s.push("q", &["stubborn"]);
    let start = Instant::now();
    let bg = spawn_exec(
        &s,
        "q",
        &["--timeout", "300ms", "--kill-after", "500ms", "--backoff", "0"],
        r#"trap '' TERM; sleep 100 & echo $! > "$1/child"; wait"#,
    );
    let out = bg.wait(Duration::from_secs(10));
    let took = start.elapsed();
    let child = read(&s, "child").trim().to_string();
    let dead = wait_for(Duration::from_secs(2), || gone(&child));
    cleanup(&child);
    out.code(1);
    assert!(dead, "the job's child {child} outlived SIGKILL");
    assert!(took >= Duration::from_millis(750), "took {took:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(out.stderr.contains("timed out after 300ms"), "{}", out.stderr);
}

/// Starts `exec` on a job that records its pid and SIGTERM, waits until it runs.
fn long_job(s: &Spool, flags: &[&str], on_term: &str) -> Bg {
    s.push("q", &["long"]);
    let script = format!(
        r#"trap 'echo TERM > "$1/got"; {on_term}' TERM; echo $$ > "$1/pid"; sleep 100 & wait"#
    );
    let bg = spawn_exec(s, "q", flags, &script);
    wait_file(s, "pid");
    sleep_ms(100);
    bg
}

#[test]
fn sigterm_forwards_to_the_job_exits_143_and_gives_the_message_back_uncounted() {
    let s = Spool::new();
    let bg = long_job(&s, &["--kill-after", "20s"], "exit 1");
    assert_eq!(exported(&s, "q")["state"], "leased");
    let t = Instant::now();
    send(bg.id(), "TERM");
    let out = bg.wait(Duration::from_secs(10));
    let pid = read(&s, "pid").trim().to_string();
    cleanup(&pid);
    out.code(143);
    assert!(t.elapsed() < Duration::from_secs(5), "waited {:?}", t.elapsed());
    assert_eq!(read(&s, "got"), "TERM\n", "the job got SIGTERM");
    let m = exported(&s, "q");
    assert_eq!(m["state"], "ready", "{m}");
    assert_eq!(m["attempt"], 0, "the stopped attempt is not counted: {m}");
    assert_eq!(attempt(&s.pop_one("q", &[])), 1);
}

#[test]
fn sigterm_acks_a_job_that_finishes_cleanly() {
    let s = Spool::new();
    let bg = long_job(&s, &["--kill-after", "20s"], "exit 0");
    send(bg.id(), "TERM");
    let out = bg.wait(Duration::from_secs(10));
    out.code(143);
    assert_eq!(read(&s, "got"), "TERM\n");
    assert_counts(&s.stats("q"), &[("acked", 1), ("ready", 0), ("leased", 0)]);
}

#[test]
fn sigint_exits_130_and_a_second_sigint_kills_the_job_at_once() {
    let s = Spool::new();
    s.push("q", &["long"]);
    // The job ignores SIGINT (so does its sleep): only SIGKILL ends it.
    let bg = spawn_exec(
        &s,
        "q",
        &["--kill-after", "30s"],
        r#"trap '' INT; echo $$ > "$1/pid"; sleep 100"#,
    );
    wait_file(&s, "pid");
    sleep_ms(100);
    send(bg.id(), "INT");
    sleep_ms(300);
    let pid = read(&s, "pid").trim().to_string();
    assert!(!gone(&pid), "the job ignores SIGINT");
    let t = Instant::now();
    send(bg.id(), "INT");
    let out = bg.wait(Duration::from_secs(10));
    cleanup(&pid);
    out.code(130);
    assert!(t.elapsed() < Duration::from_secs(3), "waited {:?}", t.elapsed());
    let m = exported(&s, "q");
    assert_eq!((m["state"].as_str(), m["attempt"].as_u64()), (Some("ready"), Some(0)));
}

#[test]
fn a_signal_while_waiting_for_a_message_ends_exec_at_once() {
    let s = Spool::new();
    s.push("other", &["x"]);
    for (sig, code) in [("TERM", 143), ("INT", 130)] {
        let mut bg = s.spawn(&["exec", "q", "--loop", "--wait", "--", "true"]);
        sleep_ms(400);
        assert!(!bg.finished(), "exec --wait ended by itself");
        let t = Instant::now();
        send(bg.id(), sig);
        let out = bg.wait(Duration::from_secs(5));
        out.code(code);
        assert!(t.elapsed() < Duration::from_millis(2000), "{:?}", t.elapsed());
    }
}

#[test]
fn jobs_4_runs_four_commands_at_once_each_message_once_with_its_lease_kept() {
    let s = Spool::new();
    s.push("q", &["m1", "m2", "m3", "m4"]);
    let start = Instant::now();
    let mut bg = spawn_exec(
        &s,
        "q",
        &["--loop", "--jobs", "4", "--lease", "1s"],
        r#"printf '%s\n' "$(cat)" >> "$1/log"; sleep 1.5"#,
    );
    // Past the first lease: every message is still leased to exec, none ready.
    sleep_ms(1200);
    assert!(!bg.finished());
    assert_counts(&s.stats("q"), &[("leased", 4), ("ready", 0)]);
    s.pop_nothing("q", &[]);
    let out = bg.wait(Duration::from_secs(20));
    let took = start.elapsed();
    out.ok();
    // One round of 1.5 s; one at a time would take 6 s.
    assert!(took < Duration::from_millis(2900), "took {took:?}");
    let mut log: Vec<String> = read(&s, "log").lines().map(String::from).collect();
    log.sort();
    assert_eq!(log, ["m1", "m2", "m3", "m4"], "each message exactly once");
    assert_counts(&s.stats("q"), &[("acked", 4), ("ready", 0), ("leased", 0)]);
}

#[test]
fn jobs_runs_more_messages_than_slots_each_exactly_once() {
    let s = Spool::new();
    let bodies: Vec<String> = (1..=12).map(|i| format!("m{i:02}")).collect();
    s.push("q", &bodies.iter().map(String::as_str).collect::<Vec<_>>());
    let start = Instant::now();
    exec(
        &s,
        "q",
        &["--loop", "--jobs", "4"],
        r#"printf '%s\n' "$(cat)" >> "$1/log"; sleep 0.5"#,
    )
    .ok();
    let took = start.elapsed();
    // Three rounds of 0.5 s; one at a time would take 6 s.
    assert!(took < Duration::from_millis(3500), "took {took:?}");
    let mut log: Vec<String> = read(&s, "log").lines().map(String::from).collect();
    log.sort();
    assert_eq!(log, bodies, "each message exactly once");
    assert_counts(&s.stats("q"), &[("acked", 12), ("ready", 0), ("leased", 0)]);
}

#[test]
fn max_messages_ends_the_run_after_that_many() {
    let s = Spool::new();
    s.push("q", &["a", "b", "c", "d", "e"]);
    exec(&s, "q", &["--loop", "--max-messages", "2"], r#"cat >> "$1/log""#).ok();
    assert_eq!(read(&s, "log"), "ab");
    exec(
        &s,
        "q",
        &["--loop", "--jobs", "2", "--max-messages", "3"],
        r#"cat >> "$1/log""#,
    )
    .ok();
    assert_eq!(read(&s, "log").len(), 5);
    assert_counts(&s.stats("q"), &[("acked", 5), ("ready", 0)]);
}

#[test]
fn max_time_starts_nothing_after_it_and_lets_running_jobs_finish() {
    let s = Spool::new();
    let bodies: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    s.push("q", &bodies.iter().map(String::as_str).collect::<Vec<_>>());
    let start = Instant::now();
    exec(
        &s,
        "q",
        &["--loop", "--max-time", "1s"],
        r#"cat > /dev/null; sleep 0.4; echo done >> "$1/log""#,
    )
    .ok();
    let took = start.elapsed();
    let ran = read(&s, "log").lines().count() as u64;
    assert!((2..=4).contains(&ran), "ran {ran}");
    assert!(took >= Duration::from_millis(1000) && took < Duration::from_secs(3), "took {took:?}");
    assert_counts(
        &s.stats("q"),
        &[("acked", ran), ("ready", 20 - ran), ("leased", 0)],
    );
}

#[test]
fn exit_code_gives_the_commands_own_status() {
    let s = Spool::new();
    s.push("q", &["a", "b", "c", "d"]);
    exec(&s, "q", &["--exit-code", "--backoff", "0"], "exit 7").code(7);
    exec(&s, "q", &["--backoff", "0"], "exit 7").code(1);
    exec(&s, "q", &["--exit-code"], "kill -KILL $$").code(137);
    exec(&s, "q", &["--exit-code"], "exit 0").code(0);
    let out = s.run(&["exec", "q", "--exit-code", "--", "/no/such/command"]);
    out.code(127);
    assert!(
        out.stderr
            .contains("/no/such/command: could not start: No such file or directory"),
        "{}",
        out.stderr
    );
    exec(&s, "q", &["--exit-code", "--loop"], "true").fails(2);
    exec(&s, "q", &["--jobs", "2"], "true").fails(2);
}
