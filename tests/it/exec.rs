// Proves `exec`: the body goes to the command's stdin with the SPOOLMQ_* variables set,
// success acks, failure nacks (exit 1; `--backoff 0` here: at once), `--loop`, `--wait`, `--max-attempts`, exit 3 when
// idle, and the lease is kept alive while a long command runs.


use std::fs;
use std::time::{Duration, Instant};

use common::*;

/// `exec QUEUE FLAGS... -- sh -c SCRIPT sh SCRATCH` (the script sees the scratch dir as $1).
fn exec(s: &Spool, q: &str, flags: &[&str], script: &str) -> Out {
    let scratch = s.scratch().to_str().expect("utf-8 temp path").to_string();
    let mut args = vec!["exec", q];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "sh", "-c", script, "sh", &scratch]);
    s.run(&args)
}

fn read(s: &Spool, name: &str) -> String {
    fs::read_to_string(s.scratch().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn exec_gives_the_body_on_stdin_with_the_spoolmq_variables_and_acks_on_success() {
    let s = Spool::new();
    let ids = s.push_stdin("jobs", b"hello\nworld\n");
    let out = exec(
        &s,
        "jobs",
        &[],
        r#"printf '%s\n' "$SPOOLMQ_ID" "$SPOOLMQ_RECEIPT" "$SPOOLMQ_ATTEMPT" "$SPOOLMQ_QUEUE" > "$1/env"; cat > "$1/body""#,
    );
    out.ok();
    assert_eq!(read(&s, "body"), "hello\nworld\n");
    let env = read(&s, "env");
    let vars: Vec<&str> = env.lines().collect();
    assert_eq!(vars.len(), 4, "{env:?}");
    assert_eq!(vars[0], ids, "SPOOLMQ_ID");
    assert!(is_receipt(vars[1]), "SPOOLMQ_RECEIPT: {:?}", vars[1]);
    assert_eq!(vars[2], "1", "SPOOLMQ_ATTEMPT");
    assert_eq!(vars[3], "jobs", "SPOOLMQ_QUEUE");
    assert_counts(
        &s.stats("jobs"),
        &[("ready", 0), ("leased", 0), ("acked", 1), ("dead", 0)],
    );
    s.pop_nothing("jobs", &[]);
    // The receipt handed to the command was the real one, and it is used up now.
    s.run(&["ack", "jobs", vars[1]]).fails(4);
}

#[test]
fn exec_passes_a_binary_body_unchanged() {
    let s = Spool::new();
    let body: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    s.push_stdin("q", &body);
    exec(&s, "q", &[], r#"cat > "$1/body""#).ok();
    assert_eq!(fs::read(s.scratch().join("body")).unwrap(), body);
}

#[test]
fn exec_passes_an_empty_body_as_empty_stdin() {
    let s = Spool::new();
    s.push_stdin("q", b"");
    exec(&s, "q", &[], r#"cat > "$1/body"; echo ran > "$1/ran""#).ok();
    assert_eq!(read(&s, "ran"), "ran\n");
    assert_eq!(read(&s, "body"), "");
}

#[test]
fn exec_nacks_when_the_command_fails_and_exits_1() {
    let s = Spool::new();
    let id = s.push("q", &["flaky"]);
    let script = r#"cat > /dev/null; echo "$SPOOLMQ_ATTEMPT" >> "$1/log"; exit 7"#;
    // --backoff 0: ready again at once (tests/it/worker.rs checks the backoff).
    exec(&s, "q", &["--backoff", "0"], script).code(1);
    assert_counts(
        &s.stats("q"),
        &[("ready", 1), ("leased", 0), ("acked", 0), ("dead", 0)],
    );
    exec(&s, "q", &["--backoff", "0"], script).code(1);
    assert_eq!(read(&s, "log"), "1\n2\n");
    let m = s.pop_one("q", &[]);
    assert_eq!(common::id(&m), id[0]);
    assert_eq!(attempt(&m), 3);
}

#[test]
fn exec_handles_one_message_without_loop() {
    let s = Spool::new();
    s.push("q", &["first", "second"]);
    exec(&s, "q", &[], r#"cat >> "$1/log"; echo >> "$1/log""#).ok();
    assert_eq!(read(&s, "log"), "first\n");
    assert_counts(&s.stats("q"), &[("ready", 1), ("acked", 1)]);
}

#[test]
fn exec_loop_handles_every_message_in_order_then_exits_0() {
    let s = Spool::new();
    s.push("q", &["m1", "m2", "m3", "m4"]);
    exec(
        &s,
        "q",
        &["--loop"],
        r#"cat >> "$1/log"; echo " $SPOOLMQ_ATTEMPT" >> "$1/log""#,
    )
    .ok();
    assert_eq!(read(&s, "log"), "m1 1\nm2 1\nm3 1\nm4 1\n");
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 0), ("acked", 4)]);
    s.pop_nothing("q", &[]);
}

#[test]
fn exec_on_an_empty_queue_exits_3_without_running_the_command() {
    let s = Spool::new();
    exec(&s, "nosuch", &[], r#"touch "$1/ran""#).code(3);
    s.push("q", &["x"]);
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    exec(&s, "q", &[], r#"touch "$1/ran""#).code(3);
    exec(&s, "q", &["--loop"], r#"touch "$1/ran""#).code(3);
    assert!(
        !s.scratch().join("ran").exists(),
        "the command must not run"
    );
}

#[test]
fn exec_wait_on_an_empty_queue_exits_3_after_about_that_long() {
    let s = Spool::new();
    s.push("other", &["x"]);
    let start = Instant::now();
    exec(&s, "q", &["--wait", "300ms"], r#"touch "$1/ran""#).code(3);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(280),
        "returned too early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(3000),
        "waited far too long: {took:?}"
    );
    assert!(!s.scratch().join("ran").exists());
}

#[test]
fn exec_wait_handles_a_message_pushed_later_by_another_process() {
    let s = Spool::new();
    s.push("other", &["x"]);
    let scratch = s.scratch().to_str().unwrap().to_string();
    let bg = s.spawn(&[
        "exec",
        "q",
        "--wait",
        "5s",
        "--",
        "sh",
        "-c",
        r#"cat > "$1/body""#,
        "sh",
        &scratch,
    ]);
    sleep_ms(300);
    s.push("q", &["late arrival"]);
    let out = bg.wait(Duration::from_secs(8));
    out.ok();
    assert_eq!(read(&s, "body"), "late arrival");
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 0), ("acked", 1)]);
}

#[test]
fn exec_keeps_the_lease_alive_while_a_long_command_runs() {
    let s = Spool::new();
    s.push("q", &["long job"]);
    let scratch = s.scratch().to_str().unwrap().to_string();
    let bg = s.spawn(&[
        "exec",
        "q",
        "--lease",
        "1s",
        "--",
        "sh",
        "-c",
        r#"cat > /dev/null; touch "$1/started"; sleep 2.5; echo "$SPOOLMQ_ATTEMPT" > "$1/done""#,
        "sh",
        &scratch,
    ]);
    let started = s.scratch().join("started");
    assert!(
        wait_for(Duration::from_secs(5), || started.exists()),
        "the command never started"
    );
    let t0 = Instant::now();
    sleep_ms(1500);
    s.pop_nothing("q", &[]);
    assert_counts(&s.stats("q"), &[("leased", 1), ("ready", 0)]);
    sleep_ms(2100u64.saturating_sub(t0.elapsed().as_millis() as u64));
    if t0.elapsed() < Duration::from_millis(2400) {
        s.pop_nothing("q", &[]);
    }
    let out = bg.wait(Duration::from_secs(10));
    out.ok();
    assert_eq!(read(&s, "done"), "1\n");
    assert_counts(
        &s.stats("q"),
        &[("ready", 0), ("leased", 0), ("acked", 1), ("dead", 0)],
    );
    s.pop_nothing("q", &[]);
}

#[test]
fn exec_max_attempts_turns_a_failing_message_into_a_dead_letter() {
    let s = Spool::new();
    s.push("q", &["poison"]);
    let script = r#"cat > /dev/null; exit 1"#;
    exec(&s, "q", &["--max-attempts", "2", "--backoff", "0"], script).code(1);
    assert_counts(&s.stats("q"), &[("ready", 1), ("dead", 0)]);
    exec(&s, "q", &["--max-attempts", "2", "--backoff", "0"], script).code(1);
    assert_counts(
        &s.stats("q"),
        &[("ready", 0), ("leased", 0), ("dead", 1), ("acked", 0)],
    );
    exec(&s, "q", &["--max-attempts", "2", "--backoff", "0"], script).code(3);
}

#[test]
fn exec_loop_keeps_going_past_a_failure_and_exits_1() {
    let s = Spool::new();
    s.push("q", &["ok1", "fail", "ok2"]);
    let script = r#"body=$(cat); echo "$body" >> "$1/log"; [ "$body" != fail ]"#;
    exec(
        &s,
        "q",
        &["--loop", "--max-attempts", "2", "--backoff", "0"],
        script,
    )
    .code(1);
    let log = read(&s, "log");
    let mut runs: Vec<&str> = log.lines().collect();
    runs.sort();
    assert_eq!(runs, ["fail", "fail", "ok1", "ok2"], "log: {log:?}");
    assert_counts(
        &s.stats("q"),
        &[("ready", 0), ("leased", 0), ("acked", 2), ("dead", 1)],
    );
}

#[test]
fn the_command_reaches_the_same_spool_from_another_directory() {
    // `--dir spool` (relative) or `--url URL` on the command line: a command
    // that changes directory and runs spoolmq must still reach this spool
    // (SPOOLMQ_DIR absolute; SPOOLMQ_URL in its environment, no SPOOLMQ_DIR).
    let s = Spool::new();
    s.push("jobs", &["work"]);
    let elsewhere = s.scratch().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let scratch = s.scratch().to_str().expect("utf-8 temp path").to_string();
    let script = r#"env > "$1/env"; cd "$1/elsewhere" || exit 9
"$2" extend "$SPOOLMQ_QUEUE" "$SPOOLMQ_RECEIPT" --lease 1h || exit 10
"$2" push side from-the-child > /dev/null || exit 11"#;
    let out = run(s.cmd_with_spool_flag().args([
        "exec", "jobs", "--", "sh", "-c", script, "sh", &scratch, BIN,
    ]));
    out.ok();
    assert_counts(&s.stats("jobs"), &[("acked", 1), ("leased", 0)]);
    assert_eq!(bodies(&s.pop_json("side", &[])), vec!["from-the-child"]);
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "a stray spool was made where the command ran"
    );
    let env = read(&s, "env");
    let var = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
    };
    match s.url() {
        Some(url) => {
            assert_eq!(var("SPOOLMQ_URL").as_deref(), Some(url));
            assert_eq!(var("SPOOLMQ_DIR"), None, "{env}");
        }
        None => {
            let dir = var("SPOOLMQ_DIR").expect("SPOOLMQ_DIR");
            assert!(std::path::Path::new(&dir).is_absolute(), "{dir}");
            assert_eq!(
                fs::canonicalize(&dir).unwrap(),
                fs::canonicalize(&s.dir).unwrap()
            );
        }
    }
}

#[test]
fn exec_with_stdout_closed_still_runs_the_command_and_acks() {
    // Only pop's own output needs stdout; exec prints nothing.
    let s = Spool::new();
    s.push("q", &["job"]);
    let scratch = s.scratch().to_str().unwrap().to_string();
    s.run_redirected(
        ">&-",
        &[
            "exec",
            "q",
            "--",
            "sh",
            "-c",
            r#"cat > "$1/body""#,
            "sh",
            &scratch,
        ],
    )
    .ok();
    assert_eq!(read(&s, "body"), "job");
    assert_counts(&s.stats("q"), &[("acked", 1), ("ready", 0), ("leased", 0)]);
}

/// What the queue notices while `exec` acks a job (here, the job left a
/// torn change at the end of the queue's WAL, which opening the queue cuts)
/// reaches `exec`'s stderr: it once was dropped unseen.
#[test]
fn exec_prints_what_the_queue_noticed_while_it_settled_a_job() {
    if not_on_this_store("the job writes to the fs store's WAL") {
        return;
    }
    let s = Spool::new();
    s.push("q", &["a"]);
    let out = exec(&s, "q", &[], "printf torn-change >> \"$SPOOLMQ_DIR/q/wal\"");
    out.ok();
    assert!(
        out.stderr.contains("bytes of an unfinished change"),
        "{}",
        out.stderr
    );
    assert_eq!(s.stats("q")["acked"], 1);
}

#[test]
fn a_waiting_worker_keeps_one_watch_for_its_whole_life() {
    // Each `--wait` made and closed an inotify instance, and closing one
    // waits out an RCU grace period (about 6.5 ms): `exec --loop --wait` ran
    // 8.5 times slower than `exec --loop`. Counted, not timed: one
    // inotify_init1 for twenty jobs.
    if STORE == "postgres" {
        eprintln!("skipped on the postgres store: it waits on a LISTENing connection, not inotify");
        return;
    }
    let s = Spool::new();
    let bodies: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    s.push("q", &bodies.iter().map(String::as_str).collect::<Vec<_>>());
    let args = ["exec", "q", "--loop", "--wait", "1s", "--max-messages", "20", "--", "true"];
    let Some(calls) = traced(&s, "-f", "inotify_init1", &args) else {
        return;
    };
    assert_counts(&s.stats("q"), &[("acked", 20), ("ready", 0)]);
    let made = calls.lines().filter(|l| l.contains("inotify_init1(")).count();
    assert_eq!(made, 1, "inotify instances made by one worker:\n{calls}");
}

#[test]
fn a_looping_worker_acks_a_job_and_leases_the_next_in_one_commit() {
    // A job cost two commits (its lease, then its ack), each a sync of
    // about 0.2 ms on this machine's disk. Counted, not timed: the syncs
    // of 20 jobs against those of one `pop` (a commit, and what opening a
    // queue syncs) made 21 times; two commits per job would be about 41.
    if STORE == "postgres" {
        eprintln!("skipped on the postgres store: its commits sync on the server");
        return;
    }
    let s = Spool::new();
    let bodies: Vec<String> = (0..21).map(|i| i.to_string()).collect();
    s.push("q", &bodies.iter().map(String::as_str).collect::<Vec<_>>());
    let syncs = |args: &[&str]| {
        traced(&s, "-qq", "fsync,fdatasync,sync_file_range", args)
            .map(|t| t.lines().filter(|l| l.contains("sync")).count())
    };
    let Some(one) = syncs(&["pop", "q"]) else {
        return;
    };
    let Some(loop_) = syncs(&["exec", "q", "--loop", "--", "true"]) else {
        return;
    };
    assert_counts(&s.stats("q"), &[("acked", 20), ("leased", 1), ("ready", 0)]);
    assert!(one >= 1, "a pop made no sync");
    assert!(
        loop_ <= 21 * one,
        "20 jobs made {loop_} syncs; one pop makes {one}"
    );
}

/// Runs spoolmq with `args` under strace (`flag`: -f to follow children,
/// or -qq not to), tracing `calls`; the trace, or `None` (said) where
/// strace is missing, which fails under CI=true.
fn traced(s: &Spool, flag: &str, calls: &str, args: &[&str]) -> Option<String> {
    if std::process::Command::new("strace").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but strace is missing (.ci/run installs it)"
        );
        eprintln!("skipped: strace is not installed (.ci/run installs it)");
        return None;
    }
    let trace = s.scratch().join("trace");
    let cmd = s.std_cmd();
    let mut strace = std::process::Command::new("strace");
    strace
        .args([flag, "-qq", "-e"])
        .arg(format!("trace={calls}"))
        .arg("-o")
        .arg(&trace)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => strace.env(k, v),
            None => strace.env_remove(k),
        };
    }
    let out = strace.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(std::fs::read_to_string(&trace).unwrap())
}

#[test]
fn a_looping_worker_leaves_the_queue_to_each_command_it_runs() {
    // After an ack the worker pops the next message under the same open
    // queue; it must close it before the command runs, or a command that
    // uses the queue (here: extending its own lease) would wait forever.
    let s = Spool::new();
    s.push("jobs", &["a", "b", "c", "d"]);
    let script = r#""$1" extend "$SPOOLMQ_QUEUE" "$SPOOLMQ_RECEIPT" --lease 1h || exit 10
"$1" push side "$SPOOLMQ_ATTEMPT" > /dev/null || exit 11"#;
    let out = s.run(&["exec", "jobs", "--loop", "--", "sh", "-c", script, "sh", BIN]);
    out.ok();
    assert_counts(&s.stats("jobs"), &[("acked", 4), ("leased", 0), ("ready", 0)]);
    assert_eq!(bodies(&s.pop_json("side", &["--count", "9"])), ["1", "1", "1", "1"]);
}
