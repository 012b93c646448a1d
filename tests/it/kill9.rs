// Producers, consumers (pop+ack and `exec --loop`, whose command fails for some messages, so
// that failures are recorded) and `fsck --repair` killed with SIGKILL at random moments, at least 200 times: every push that exited 0 is still delivered or acked, no acked message is delivered again, the counters agree, and fsck finds a sound spool. A bulk `push --lines` killed while it writes keeps every id it printed.

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Kills `bg` if it is still running (4 times in 5), else waits for it.
/// Returns its output if it finished by itself.
fn maybe_kill(mut bg: Bg, rng: &mut Rng, kills: &mut u32) -> Option<Out> {
    if bg.finished() || rng.below(5) == 0 {
        Some(bg.wait(Duration::from_secs(30)))
    } else {
        bg.kill9();
        *kills += 1;
        None
    }
}

/// 1 to `most` new bodies, `m1`, `m2`, ... on from `*n`.
fn fresh_bodies(rng: &mut Rng, n: &mut u32, most: u64) -> Vec<String> {
    (0..1 + rng.below(most))
        .map(|_| {
            *n += 1;
            format!("m{n}")
        })
        .collect()
}

enum Job {
    Push(Vec<String>),
    PushKeyed(String),
    Pop,
    Ack(Vec<String>),
    Other(Vec<String>),
}

#[test]
fn nothing_reported_done_is_lost_when_processes_are_killed_at_random() {
    let s = Spool::new();
    let log = s.scratch().join("exec.log");
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let started = Instant::now();
    let mut kills = 0u32;
    let mut pushed: BTreeSet<String> = BTreeSet::new(); // push exited 0
    let mut acked: BTreeSet<String> = BTreeSet::new(); // our ack exited 0
    let mut maybe_acked: BTreeSet<String> = BTreeSet::new(); // our ack was killed
    let mut to_ack: Vec<(Vec<String>, Vec<String>)> = Vec::new(); // (receipts, bodies)
    let mut keyed: BTreeMap<String, String> = BTreeMap::new(); // body (its own key) -> id
    let mut ranked: BTreeMap<String, u8> = BTreeMap::new(); // body -> its --priority
    // body -> its --group and its place in the group (one grouped push per
    // round, rounds one after the other: push order is spawn order)
    let mut grouped: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut group_len = [0usize; 3];
    let mut n = 0u32;
    while (kills < 220 || pushed.len() < 100) && started.elapsed() < Duration::from_secs(50) {
        // A round: several processes at once on the same queue.
        let mut round: Vec<(Job, Bg)> = Vec::new();
        for i in 0..4 {
            let mut bodies = fresh_bodies(&mut rng, &mut n, 4);
            let mut args = vec!["push", "q"];
            // One push of each round with a TTL (long records), long
            // enough that nothing expires while the test runs; one with a
            // unique key, the body itself (keyed records, the holds file).
            if i == 1 {
                args.extend(["--ttl", "1d"]);
            }
            // And one with a priority (ranked records, the lane files).
            if i == 0 {
                const P: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
                let p = rng.below(10) as usize;
                args.extend(["--priority", P[p]]);
                for b in &bodies {
                    ranked.insert(b.clone(), p as u8);
                }
            }
            if i == 2 {
                bodies.truncate(1);
                args.extend(["--key", bodies[0].as_str()]);
            }
            // And one in an ordered group (grouped records, the groups cache).
            const G: [&str; 3] = ["g0", "g1", "g2"];
            if i == 3 {
                let g = rng.below(3) as usize;
                args.extend(["--group", G[g]]);
                for b in &bodies {
                    grouped.insert(b.clone(), (g, group_len[g]));
                    group_len[g] += 1;
                }
            }
            args.extend(bodies.iter().map(String::as_str));
            let job = if i == 2 {
                Job::PushKeyed(bodies[0].clone())
            } else {
                Job::Push(bodies.clone())
            };
            round.push((job, s.spawn(&args)));
        }
        round.push((
            Job::Pop,
            s.spawn(&["pop", "q", "--count", "3", "--lease", "1s", "--json"]),
        ));
        for (receipts, bodies) in to_ack.drain(..) {
            let mut args = vec!["ack", "q"];
            args.extend(receipts.iter().map(String::as_str));
            round.push((Job::Ack(bodies), s.spawn(&args)));
        }
        let other: Vec<String> = if rng.below(3) == 0 {
            vec!["fsck".into(), "--repair".into()]
        } else {
            // Bodies ending in 3 fail: their nacks record failures (the failures file).
            let cmd = format!(
                "b=$(cat); echo \"$b\" >> '{}'; case $b in *3) echo boom >&2; exit 1;; esac",
                log.display()
            );
            [
                "exec", "q", "--loop", "--lease", "3s", "--backoff", "0", "--", "sh", "-c", &cmd,
            ]
            .map(String::from)
            .to_vec()
        };
        let refs: Vec<&str> = other.iter().map(String::as_str).collect();
        round.push((Job::Other(other.clone()), s.spawn(&refs)));
        std::thread::sleep(Duration::from_micros(rng.below(15_000)));
        for (job, bg) in round {
            let out = maybe_kill(bg, &mut rng, &mut kills);
            match (job, out) {
                (Job::Push(bodies), Some(out)) => {
                    out.ok();
                    pushed.extend(bodies);
                }
                (Job::PushKeyed(body), Some(out)) => {
                    keyed.insert(body.clone(), out.ok().lines().remove(0));
                    pushed.insert(body);
                }
                (Job::Pop, Some(out)) if out.code != 3 => {
                    out.ok();
                    let msgs = out.json();
                    to_ack.push((
                        msgs.iter().map(|m| receipt(m).to_string()).collect(),
                        msgs.iter().map(|m| body(m).to_string()).collect(),
                    ));
                }
                // Exit 4 is possible: a lease can expire while we dawdle.
                (Job::Ack(bodies), Some(out)) if out.code == 0 => acked.extend(bodies),
                (Job::Ack(_), Some(out)) => {
                    out.fails(4);
                }
                (Job::Ack(bodies), None) => maybe_acked.extend(bodies),
                // `exec` exits 1 when a command failed (a message ending in 3).
                (Job::Other(args), Some(out)) => assert!(
                    [0, 3].contains(&out.code) || (args[0] == "exec" && out.code == 1),
                    "`{}` exited {}: {}",
                    args.join(" "),
                    out.code,
                    out.stderr
                ),
                _ => {}
            }
        }
    }
    assert!(kills >= 200, "only {kills} kills in the time allowed");
    // Let every lease run out, then take everything that is left.
    sleep_ms(3100);
    s.run(&["fsck"]).ok();
    // A key whose message is still waiting (not a dead letter, which lets
    // go of its key) is held by it: a push of it stores nothing and prints
    // that id.
    let waiting: BTreeSet<String> = s
        .run(&["export", "q"])
        .ok()
        .json()
        .iter()
        .filter(|m| m["state"] != "dead")
        .map(|m| body(m).to_string())
        .collect();
    let mut held = 0;
    for (body, id) in &keyed {
        if waiting.contains(body) {
            let out = s.run(&["push", "q", "--key", body, "again"]);
            assert_eq!(out.ok().lines(), std::slice::from_ref(id), "the key {body} is held by {id}");
            held += 1;
        }
    }
    s.run(&["retry", "q"]).ok();
    // Everything left, pop by pop (a group's message acked lets the next
    // of its group go): never two of a group in one pop, each group in
    // push order.
    let mut left: Vec<String> = Vec::new();
    let mut last: BTreeMap<usize, usize> = BTreeMap::new();
    let mut group_acked = 0u64;
    loop {
        let out = s.run(&["pop", "q", "--count", "100000", "--lease", "1h", "--json"]);
        if out.code == 3 {
            break;
        }
        let msgs = out.ok().json();
        let mut in_pop = BTreeSet::new();
        for m in &msgs {
            if let Some(&(g, i)) = grouped.get(body(m)) {
                assert!(in_pop.insert(g), "one pop served two of group {g}");
                assert!(last.get(&g).is_none_or(|&l| l < i), "group {g} out of order");
                last.insert(g, i);
            }
        }
        // Only the groups' messages are acked: the rest stay leased, for
        // the look at their failures below.
        let mut args = vec!["ack", "q"];
        args.extend(
            (msgs.iter())
                .filter(|m| grouped.contains_key(body(m)))
                .map(receipt),
        );
        if args.len() > 2 {
            s.run(&args).ok();
            group_acked += args.len() as u64 - 2;
        }
        // (After the first pop, only groups' messages are left: priority
        // 0, so the order of priorities below holds over them all.)
        left.extend(msgs.iter().map(|m| body(m).to_string()));
        if in_pop.is_empty() {
            break;
        }
    }
    let left_set: BTreeSet<String> = left.iter().cloned().collect();
    assert_eq!(
        left.len(),
        left_set.len(),
        "a message was delivered twice in one pop"
    );
    // The most urgent first.
    let ranks: Vec<u8> = left.iter().map(|b| ranked.get(b).copied().unwrap_or(0)).collect();
    assert!(
        ranks.windows(2).all(|w| w[0] >= w[1]),
        "served out of priority order: {ranks:?}"
    );
    let by_exec: BTreeSet<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    for m in &pushed {
        assert!(
            left_set.contains(m)
                || acked.contains(m)
                || maybe_acked.contains(m)
                || by_exec.contains(m),
            "{m} was pushed (exit 0) and is gone without being acked"
        );
    }
    for m in &acked {
        assert!(
            !left_set.contains(m),
            "{m} was acked (exit 0) and delivered again"
        );
    }
    // Every failure recorded is whole: the failing command's, with its stderr.
    let out = s.run(&["export", "q"]);
    out.ok();
    assert!(out.stderr.is_empty(), "damage reported: {}", out.stderr);
    let failed: Vec<_> = out
        .json()
        .into_iter()
        .filter(|m| !m["last_failure"].is_null())
        .collect();
    assert!(!failed.is_empty(), "no failure was recorded");
    for m in &failed {
        let f = &m["last_failure"];
        assert!(body(m).ends_with('3'), "{m}");
        assert_eq!((f["how"].as_str(), f["stderr"].as_str()), (Some("exit status 1"), Some("boom\n")), "{m}");
    }
    let st = s.stats("q");
    assert_counters_add_up(&st);
    assert_eq!(num(&st, "corrupt"), 0, "{st}");
    assert_eq!(num(&st, "leased"), left.len() as u64 - group_acked, "{st}");
    assert!(num(&st, "pushed") >= pushed.len() as u64, "{st}");
    assert!(num(&st, "pushed") <= u64::from(n), "{st}");
    assert!(num(&st, "acked") >= acked.len() as u64, "{st}");
    // Every message the queue counts is either acked or was just delivered
    // (the groups' ones of those acked since).
    assert_eq!(
        num(&st, "pushed"),
        num(&st, "acked") + left.len() as u64 - group_acked,
        "{st}"
    );
    eprintln!(
        "kill -9: {kills} kills, {} pushes confirmed ({} keyed, {held} keys still held), {} acks confirmed, {} left, {} with a failure recorded, 0 lost, {:.1}s",
        pushed.len(),
        keyed.len(),
        acked.len(),
        left.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_bulk_push_killed_midway_keeps_every_printed_id_and_serves_no_damaged_line() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // 2,000 lines of 10 KB (20 MB): three batches of many write chunks,
    // so the kill lands while chunks are being written on the helper thread.
    let lines: Vec<String> = (0..2_000)
        .map(|i| format!("{i:05}-{}", "x".repeat(10_000)))
        .collect();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    for (round, wait_for) in [1usize, 300, 900, 1500].into_iter().enumerate() {
        let s = Spool::new();
        let file = s.scratch().join("input");
        std::fs::write(&file, &input).unwrap();
        let mut child = s
            .std_cmd()
            .args(["push", "q", "--lines"])
            .stdin(std::fs::File::open(&file).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ids = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        // Kill once `wait_for` ids were printed (a batch is durable).
        while printed.len() < wait_for {
            match ids.next() {
                Some(id) => printed.push(id.unwrap()),
                None => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        printed.extend(ids.map(Result::unwrap));
        // Every printed id is there, with its own line; what is there is a
        // prefix of the input, whole lines only.
        let got = s.run(&["pop", "q", "--count", "100000", "--json"]);
        let popped: Vec<(String, String)> = got
            .ok()
            .lines()
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["id"].as_str().unwrap().to_string(),
                    v["body"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            popped.len() >= printed.len(),
            "round {round}: {} printed, {} stored",
            printed.len(),
            popped.len()
        );
        for (i, (id, body)) in popped.iter().enumerate() {
            assert_eq!(body, &lines[i], "round {round}: message {i}");
            if let Some(p) = printed.get(i) {
                assert_eq!(id, p, "round {round}: id {i}");
            }
        }
        eprintln!(
            "round {round}: killed after {wait_for} ids: {} printed, {} stored of {}",
            printed.len(),
            popped.len(),
            lines.len()
        );
        s.run(&["fsck"]).ok();
    }
}

/// Pops every deliverable message of `q` and nacks it past its last attempt:
/// they become dead letters (neither command is killed).
fn kill_all_alive(s: &Spool, q: &str) {
    let out = s.run(&["pop", q, "--count", "10000", "--lease", "1h", "--json"]);
    if out.code == 3 {
        return;
    }
    out.ok();
    let msgs = out.json();
    let receipts: Vec<&str> = msgs.iter().map(receipt).collect();
    s.nack(q, &receipts, &["--max-attempts", "1", "--reason", "boom"]);
}

#[test]
fn retry_to_killed_at_random_never_loses_or_doubles_a_message() {
    let s = Spool::new();
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let started = Instant::now();
    let (mut kills, mut n, mut rounds) = (0u32, 0u32, 0u32);
    s.push("qb", &["b0"]);
    while (kills < 100 || rounds < 40) && started.elapsed() < Duration::from_secs(40) {
        rounds += 1;
        let bodies = fresh_bodies(&mut rng, &mut n, 5);
        let mut args = vec!["push", "qa"];
        args.extend(bodies.iter().map(String::as_str));
        s.run(&args).ok();
        // Everything alive in either queue becomes a dead letter, then both
        // queues move theirs into the other at once, and are killed.
        kill_all_alive(&s, "qa");
        kill_all_alive(&s, "qb");
        let one = s.spawn(&["retry", "qa", "--to", "qb"]);
        let two = s.spawn(&["retry", "qb", "--to", "qa"]);
        std::thread::sleep(Duration::from_micros(rng.below(12_000)));
        for bg in [one, two] {
            if let Some(out) = maybe_kill(bg, &mut rng, &mut kills) {
                out.ok();
            }
        }
    }
    assert!(kills >= 100, "only {kills} kills in the time allowed");
    // A move cut short is finished by the next command that writes.
    s.push("qa", &["last"]);
    s.run(&["fsck"]).ok();
    let mut all: Vec<String> = Vec::new();
    let mut failed = 0;
    for q in ["qa", "qb"] {
        let out = s.run(&["export", q]);
        out.ok();
        assert!(out.stderr.is_empty(), "damage reported: {}", out.stderr);
        for m in out.json() {
            failed += usize::from(m["last_failure"]["text"] == "boom");
            all.push(body(&m).to_string());
        }
        assert_counters_add_up(&s.stats(q));
    }
    all.sort();
    let mut want: Vec<String> = (1..=n).map(|i| format!("m{i}")).collect();
    want.extend(["last".into(), "b0".into()]);
    want.sort();
    assert_eq!(all, want, "each message in exactly one queue");
    assert_eq!(failed + 1, want.len(), "a failure was lost");
    eprintln!(
        "kill -9 of retry --to: {kills} kills in {rounds} rounds, {} messages, 0 lost, 0 doubled, {:.1}s",
        want.len(),
        started.elapsed().as_secs_f64()
    );
}
