// `migrate`: from this binary's store (common::STORE) to the other one and
// back, with messages in every state; into another directory; and killed at
// every step and at random moments.


use common::*;
use serde_json::Value;
use std::time::Duration;

fn other() -> &'static str {
    if STORE == "fs" { "sqlite" } else { "fs" }
}

/// A spool with queues holding ready, delayed, leased, retried and dead
/// messages, and messages with a TTL (one expired, one leased, one ready).
/// Returns the receipts of the leased ones of `jobs`.
fn populated() -> (Spool, Vec<String>) {
    let s = Spool::new();
    s.push("jobs", &["r1", "r2", "l1", "l2", "n1"]);
    s.run(&["push", "jobs", "--delay", "1h", "d1"]).ok();
    let leased = s.pop_json("jobs", &["--count", "2", "--lease", "1h"]);
    // r1 and r2 leased; n1... the oldest come first: r1, r2.
    let l = s.pop_json("jobs", &["--count", "1", "--lease", "1h"]);
    s.nack("jobs", &[receipt(&l[0])], &["--delay", "30m"]);
    s.make_dead("mail", &["dead1", "dead2"]);
    s.push("mail", &["m1"]);
    s.run(&["push", "ttl", "--ttl", "1s", "gone"]).ok();
    s.run(&["push", "ttl", "--ttl", "1h", "t1", "t2"]).ok();
    // Ten seconds on (the test builds' clock skew): the pop meets `gone`,
    // expired, and leases t1.
    let pop = run(s
        .cmd()
        .env("SPOOLMQ_TEST_CLOCK_SKEW_MS", "10000")
        .args(["pop", "ttl"]));
    assert!(pop.ok().stdout_str().contains("t1"), "{}", pop.stdout_str());
    // Unique keys: one held by a waiting message, one by an acked message
    // in its window, one free again (acked without a window).
    s.run(&["push", "keys", "--key", "waiting", "w"]).ok();
    s.run(&["push", "keys", "--key", "window", "--unique-for", "1h", "k"]).ok();
    s.run(&["push", "keys", "--key", "free", "f"]).ok();
    let done = s.pop_json("keys", &["--count", "2"]);
    assert_eq!(bodies(&done), ["w", "k"]);
    s.ack("keys", &[receipt(&done[1])]);
    let f = s.pop_json("keys", &["--count", "1"]);
    s.ack("keys", &[receipt(&f[0])]);
    // Priorities: plain and prioritised messages, the most urgent leased.
    s.push("ranked", &["plain"]);
    s.run(&["push", "ranked", "--priority", "3", "p3a", "p3b"]).ok();
    s.run(&["push", "ranked", "--priority", "9", "p9a", "p9b"]).ok();
    assert_eq!(body(&s.pop_one("ranked", &["--lease", "1h"])), "p9a");
    // Ordered groups: group a's head leased, b's ready.
    s.run(&["push", "grouped", "--group", "a", "a1", "a2"]).ok();
    s.run(&["push", "grouped", "--group", "b", "b1", "b2"]).ok();
    assert_eq!(body(&s.pop_one("grouped", &["--lease", "1h"])), "a1");
    let receipts = leased.iter().map(|m| receipt(m).to_string()).collect();
    (s, receipts)
}

/// What pops of `populated`'s queue `ranked` take (its lease of `p9a`
/// still holds): the most urgent first.
fn ranked_order(cmd: &dyn Fn(&[&str]) -> Out) {
    let got = cmd(&["pop", "ranked", "--count", "10", "--json"]).json();
    assert_eq!(bodies(&got), ["p9b", "p3a", "p3b", "plain"]);
    let rs: Vec<&str> = got.iter().map(receipt).collect();
    let mut args = vec!["nack", "ranked"];
    args.extend(&rs);
    cmd(&args).ok();
}

/// What pops of `populated`'s queue `grouped` take (its lease of `a1`
/// still holds): only group b's head; then, b1 acked, the next of b.
fn grouped_order(cmd: &dyn Fn(&[&str]) -> Out) {
    let got = cmd(&["pop", "grouped", "--count", "10", "--json"]).json();
    assert_eq!(bodies(&got), ["b1"]);
    cmd(&["nack", "grouped", receipt(&got[0])]).ok();
    let v = cmd(&["stats", "grouped", "--json"]).json();
    assert_eq!(v[0]["groups_blocked"], 1, "{v:?}");
}

/// Whether each of `populated`'s keys is held, through `cmd`: a push of
/// each (waiting, window, free) stores nothing (prints the holder's id) or
/// a new message. Pushes (and keeps) the free key's message.
fn keys_held(cmd: &dyn Fn(&[&str]) -> Out) -> [bool; 3] {
    ["waiting", "window", "free"].map(|k| {
        let out = cmd(&["push", "keys", "--key", k, "again", "--json"]);
        out.ok();
        out.json()[0]["duplicate"] == true
    })
}

/// What a user can see of every queue: stats (without the store's own
/// figures) and every message with its id, state and attempt (export).
fn snapshot(s: &Spool) -> Vec<Value> {
    let mut all = Vec::new();
    for mut v in s.stats_all() {
        let q = v["queue"].as_str().unwrap().to_string();
        let obj = v.as_object_mut().unwrap();
        for k in ["segments", "disk_bytes", "oldest_ready_age_ms"] {
            obj.remove(k);
        }
        all.push(v);
        let out = s.run(&["export", &q]);
        out.ok();
        all.extend(out.json());
    }
    all
}

fn migrate(s: &Spool, to: &str) -> Out {
    // The flag must name the new store only on the migrate itself.
    let out = run(s
        .cmd()
        .env_remove("SPOOLMQ_STORE")
        .args(["migrate", "--to", to]));
    out.ok();
    out
}

/// The store `.store` names, with a newline (as the record's version 0 form was).
fn recorded(s: &Spool) -> String {
    store_in(&s.dir.join(".store"))
}

/// The store named by the record at `path` (`spoolmq-store 5 STORE CRC`), with a newline.
fn store_in(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.strip_prefix("spoolmq-store 5 ") {
        Some(rest) => format!("{}\n", rest.split(' ').next().unwrap()),
        None => text,
    }
}

#[test]
fn a_round_trip_keeps_every_message_its_state_and_its_receipt() {
    let (s, receipts) = populated();
    let before = snapshot(&s);
    let out = migrate(&s, other());
    assert!(
        out.stdout_str().contains("migrated 6 queues"),
        "{}",
        out.stdout_str()
    );
    assert_eq!(recorded(&s), format!("{}\n", other()));
    // Nothing of the old store is left.
    let names: Vec<String> = std::fs::read_dir(&s.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    match other() {
        "sqlite" => assert!(
            !names.iter().any(|n| n == "jobs" || n == "mail"),
            "{names:?}"
        ),
        _ => assert!(
            !names.iter().any(|n| n.starts_with(".spool.db")),
            "{names:?}"
        ),
    }
    let cmd = |args: &[&str]| run(s.cmd().env_remove("SPOOLMQ_STORE").args(args));
    assert_eq!(
        snapshot_with(&cmd),
        before,
        "the same messages after migrate"
    );
    // Leases from before the migrate still hold: their receipts ack.
    let refs: Vec<&str> = receipts.iter().map(String::as_str).collect();
    let mut args = vec!["ack", "jobs"];
    args.extend(&refs);
    cmd(&args).ok();
    let v = &cmd(&["stats", "jobs", "--json"]).json()[0];
    assert_eq!(
        (v["acked"].as_u64(), v["leased"].as_u64()),
        (Some(2), Some(0)),
        "{v}"
    );
    // Dead letters come back with retry; the rest pops in order.
    cmd(&["retry", "mail"]).ok();
    let got = cmd(&["pop", "mail", "--count", "10", "--json"]).json();
    let bodies: Vec<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["dead1", "dead2", "m1"]);
    cmd(&["fsck"]).ok();
    // Every key's hold came along, the window of the acked one too.
    assert_eq!(keys_held(&cmd), [true, true, false]);
    // Priorities came along: the most urgent first.
    ranked_order(&cmd);
    // And the groups.
    grouped_order(&cmd);
    // And back again.
    let before = snapshot_with(&cmd);
    migrate(&s, STORE);
    assert_eq!(recorded(&s), format!("{STORE}\n"));
    assert_eq!(snapshot(&s), before);
    let here = |args: &[&str]| s.run(args);
    assert_eq!(keys_held(&here), [true, true, true]);
    ranked_order(&here);
    grouped_order(&here);
    s.run(&["fsck"]).ok();
}

/// [`snapshot`] through `cmd`, for a spool whose store is not this binary's.
fn snapshot_with(cmd: &dyn Fn(&[&str]) -> Out) -> Vec<Value> {
    let mut all = Vec::new();
    let stats = cmd(&["stats", "--json"]);
    stats.ok();
    for mut v in stats.json() {
        let q = v["queue"].as_str().unwrap().to_string();
        let obj = v.as_object_mut().unwrap();
        for k in ["segments", "disk_bytes", "oldest_ready_age_ms"] {
            obj.remove(k);
        }
        all.push(v);
        let out = cmd(&["export", &q]);
        out.ok();
        all.extend(out.json());
    }
    all
}

#[test]
fn migrate_into_another_directory_leaves_the_spool_as_it_was() {
    let (s, _) = populated();
    let before = snapshot(&s);
    let into = s.scratch().join("converted");
    let into_str = into.to_str().unwrap();
    run(s
        .cmd()
        .args(["migrate", "--to", other(), "--into", into_str]))
    .ok();
    assert_eq!(snapshot(&s), before, "the source is untouched");
    let there = |args: &[&str]| {
        run(common::bare_spoolmq()
            .env_remove("SPOOLMQ_STORE")
            .arg("--dir")
            .arg(&into)
            .args(args))
    };
    assert_eq!(snapshot_with(&there), before);
    assert_eq!(store_in(&into.join(".store")), format!("{}\n", other()));
    // A directory with something in it is refused.
    let again = run(s
        .cmd()
        .args(["migrate", "--to", other(), "--into", into_str]));
    again.fails(2);
    // So is a store name that does not exist.
    s.run(&["migrate", "--to", "mysql"]).fails(2);
}

#[test]
fn migrate_into_a_directory_another_user_owns_or_anyone_can_write_is_refused_before_copying() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but not root: this test cannot be skipped in CI");
        }
        eprintln!("skipped: needs root to give a directory to another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let (s, _) = populated();
    let before = snapshot(&s);
    let theirs = s.scratch().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::lchown(&theirs, Some(65534), Some(65534)).unwrap();
    let open = s.scratch().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    for (dir, says) in [(&theirs, "not to you"), (&open, "every user can write")] {
        let out = run(s
            .cmd()
            .args(["migrate", "--to", other(), "--into"])
            .arg(dir));
        out.fails(1).stdout_empty();
        let err = out.error_line();
        assert!(
            err.contains(says) && err.contains(dir.to_str().unwrap()),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            0,
            "{}: something was copied",
            dir.display()
        );
    }
    assert_eq!(snapshot(&s), before, "the source is untouched");
    // An empty directory already shared with a group (2770) is fine, and the
    // spool made in it is shared: files 0660, of that group.
    let shared = s.scratch().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::os::unix::fs::lchown(&shared, None, Some(65534)).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2770)).unwrap();
    run(s
        .cmd()
        .args(["migrate", "--to", other(), "--into"])
        .arg(&shared))
    .ok();
    use std::os::unix::fs::MetadataExt;
    let store = std::fs::metadata(shared.join(".store")).unwrap();
    assert_eq!((store.mode() & 0o777, store.gid()), (0o660, 65534));
    let there = |args: &[&str]| {
        run(common::bare_spoolmq()
            .env_remove("SPOOLMQ_STORE")
            .arg("--dir")
            .arg(&shared)
            .args(args))
    };
    assert_eq!(snapshot_with(&there), before);
}

#[test]
fn a_migrate_killed_at_any_step_leaves_a_working_spool_and_can_be_run_again() {
    for point in [
        "migrate.after-copy",
        "migrate.before-switch",
        "migrate.after-switch",
    ] {
        let (s, receipts) = populated();
        let before = snapshot(&s);
        let out = s
            .std_cmd()
            .env_remove("SPOOLMQ_STORE")
            .env("SPOOLMQ_FAILPOINT", point)
            .args(["migrate", "--to", other()])
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{point}: the failpoint fired"
        );
        let now = recorded(&s).trim().to_string();
        let cmd = |args: &[&str]| run(s.cmd().env_remove("SPOOLMQ_STORE").args(args));
        assert_eq!(
            snapshot_with(&cmd),
            before,
            "{point}: the spool ({now}) works"
        );
        // Killed before the switch: still the old store; after: the new one.
        let want = if point == "migrate.after-switch" {
            other()
        } else {
            STORE
        };
        assert_eq!(now, want, "{point}");
        // Run again: it finishes, and nothing is lost.
        migrate(&s, other());
        assert_eq!(
            snapshot_with(&cmd),
            before,
            "{point}: after the second migrate"
        );
        let mut args = vec!["ack", "jobs"];
        args.extend(receipts.iter().map(String::as_str));
        cmd(&args).ok();
        assert!(!s.dir.join(".migrate").exists(), "{point}: staging removed");
    }
}

#[test]
fn a_migrate_killed_at_random_moments_never_loses_a_message() {
    let s = Spool::new();
    let lines: String = (0..20_000).map(|i| format!("message {i}\n")).collect();
    s.run_stdin(&["push", "big", "--lines"], lines.as_bytes())
        .ok();
    s.push("small", &["a", "b"]);
    let before = snapshot(&s);
    let mut rng = Rng::new(11);
    let mut killed = 0;
    for round in 0..12 {
        let bg = s.spawn(&["migrate", "--to", other()]);
        std::thread::sleep(Duration::from_micros(rng.below(150_000)));
        if bg.kill9_if_running() {
            killed += 1;
        }
        let now = recorded(&s).trim().to_string();
        let cmd = |args: &[&str]| run(s.cmd().env("SPOOLMQ_STORE", &now).args(args));
        assert_eq!(
            snapshot_with(&cmd),
            before,
            "round {round}: on the {now} store"
        );
        if now != STORE {
            // Finished (or switched): go back for the next round.
            run(s
                .cmd()
                .env_remove("SPOOLMQ_STORE")
                .args(["migrate", "--to", STORE]))
            .ok();
        }
    }
    assert!(
        killed >= 3,
        "only {killed} of 12 migrates were killed mid-way"
    );
}
