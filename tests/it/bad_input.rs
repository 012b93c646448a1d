// Proves that every malformed flag, queue name, duration, count, receipt and `--dir` (a file,
// an unreadable directory, a path inside a file) gets the contract's exit code (2 for usage
// errors, 1 for runtime errors, 4 for receipts) and exactly one clear `spoolmq: ` line on
// stderr with nothing on stdout, and that a command that failed its argument checks creates
// nothing and changes nothing. Table-driven over every command; complements
// tests/it/errors_and_files.rs (which covers names and durations against an existing spool).


use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use assert_cmd::Command;
use common::*;

/// A well-formed receipt nobody was ever given.
const RECEIPT: &str = "0123456789abcdef0123456789abcdef01234567";

/// `spoolmq ARGS` (with `--dir <spool>` in front) must be a usage error: exit 2, one line,
/// no stdout, and the spool never created.
#[track_caller]
fn usage_error(s: &Spool, args: &[&str]) -> String {
    let out = s.run(args);
    assert_eq!(
        out.code, 2,
        "{args:?} must be a usage error (exit 2)\nstderr: {}",
        out.stderr
    );
    out.stdout_empty();
    let line = out.error_line();
    assert!(
        !s.dir.exists(),
        "{args:?}: a command that failed its argument checks created {}",
        s.dir.display()
    );
    line
}

/// Every command with valid arguments, QUEUE standing for the queue name.
fn commands() -> Vec<Vec<&'static str>> {
    vec![
        vec!["push", "QUEUE", "body"],
        vec!["pop", "QUEUE"],
        vec!["ack", "QUEUE", RECEIPT],
        vec!["nack", "QUEUE", RECEIPT],
        vec!["extend", "QUEUE", RECEIPT, "--lease", "1m"],
        vec!["retry", "QUEUE"],
        vec!["stats", "QUEUE"],
        vec!["exec", "QUEUE", "--", "true"],
        vec!["peek", "QUEUE"],
        vec!["purge", "QUEUE"],
        vec!["fsck", "QUEUE"],
    ]
}

fn with_queue<'a>(cmd: &[&'a str], q: &'a str) -> Vec<&'a str> {
    cmd.iter()
        .map(|a| if *a == "QUEUE" { q } else { a })
        .collect()
}

#[test]
fn bad_counts_are_usage_errors_for_every_command_that_takes_one() {
    let s = Spool::new();
    let counts = [
        "0",
        "-1",
        "abc",
        "",
        "1.5",
        "99999999999999999999",
        "100001",
        "0x10",
        " 1",
    ];
    for cmd in ["pop", "peek"] {
        for c in counts {
            let flag = format!("--count={c}");
            usage_error(&s, &[cmd, "q", &flag]);
        }
        // The value as a separate word, and no value at all.
        usage_error(&s, &[cmd, "q", "--count", "-1"]);
        usage_error(&s, &[cmd, "q", "--count", "0"]);
        usage_error(&s, &[cmd, "q", "--count"]);
        usage_error(&s, &[cmd, "q", "--count", "1", "--count", "2"]);
    }
    let attempts = ["0", "-1", "abc", "", "65536", "99999999999999999999", "2.5"];
    let with_attempts: Vec<Vec<&str>> = vec![
        vec!["pop", "q"],
        vec!["nack", "q", RECEIPT],
        vec!["exec", "q"],
    ];
    for base in with_attempts {
        for a in attempts {
            let flag = format!("--max-attempts={a}");
            let mut args = base.clone();
            args.push(&flag);
            if args[0] == "exec" {
                args.extend(["--", "true"]);
            }
            usage_error(&s, &args);
        }
        let mut args = base.clone();
        args.extend(["--max-attempts", "0"]);
        if args[0] == "exec" {
            args.extend(["--", "true"]);
        }
        let line = usage_error(&s, &args);
        assert!(line.contains("max-attempts"), "names the flag: {line:?}");
    }
}

#[test]
fn bad_durations_are_usage_errors_for_every_flag_that_takes_one() {
    let s = Spool::new();
    let durations = [
        "",
        "1.5s",
        "5x",
        "-1",
        "1h30m",
        "s",
        "5 s",
        "1e3",
        "+5",
        "5S",
        "99999999999d",
        "0x10",
        "5m ",
        "½s",
    ];
    let sites: Vec<(Vec<&str>, &str, Vec<&str>)> = vec![
        (vec!["push", "q"], "--delay", vec!["body"]),
        (vec!["pop", "q"], "--lease", vec![]),
        (vec!["pop", "q"], "--wait", vec![]),
        (vec!["nack", "q", RECEIPT], "--delay", vec![]),
        (vec!["extend", "q", RECEIPT], "--lease", vec![]),
        (vec!["exec", "q"], "--lease", vec!["--", "true"]),
        (vec!["exec", "q"], "--wait", vec!["--", "true"]),
    ];
    for (before, flag, after) in &sites {
        for d in durations {
            let f = format!("{flag}={d}");
            let mut args = before.clone();
            args.push(&f);
            args.extend(after);
            let line = usage_error(&s, &args);
            assert!(
                line.contains("duration") || line.contains(flag),
                "{args:?}: the line should say what is wrong: {line:?}"
            );
        }
        // A separate-word value that looks like a flag.
        let mut args = before.clone();
        args.extend([*flag, "-1"]);
        args.extend(after);
        usage_error(&s, &args);
    }
    // Flags that need a value, given none.
    for args in [
        vec!["push", "q", "--delay"],
        vec!["pop", "q", "--lease"],
        vec!["extend", "q", RECEIPT, "--lease"],
        vec!["nack", "q", RECEIPT, "--delay"],
    ] {
        usage_error(&s, &args);
    }
}

#[test]
fn bad_queue_names_are_usage_errors_that_create_nothing_for_every_command() {
    let s = Spool::new();
    let long = "x".repeat(65);
    let names = [
        "",
        "../escape",
        ".x",
        "-x",
        "a b",
        long.as_str(),
        "q/../../escape",
    ];
    for name in names {
        // `--` so that a name starting with `-` reaches the parser as a name.
        let cases: Vec<Vec<&str>> = vec![
            vec!["push", "--", name, "body"],
            vec!["pop", "--", name],
            vec!["ack", "--", name, RECEIPT],
            vec!["nack", "--", name, RECEIPT],
            vec!["extend", "--lease", "1m", "--", name, RECEIPT],
            vec!["retry", "--", name],
            vec!["stats", "--", name],
            vec!["exec", name, "--", "true"],
            vec!["peek", "--", name],
            vec!["purge", "--", name],
            vec!["fsck", "--", name],
            vec!["fsck", "--repair", "--", name],
        ];
        for args in cases {
            usage_error(&s, &args);
            assert!(
                !s.scratch().join("escape").exists(),
                "{args:?} wrote outside the spool"
            );
        }
    }
    // A name that is not UTF-8.
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"q\xff");
        for cmd in ["push", "pop", "peek", "stats", "purge", "retry", "fsck"] {
            let out = run(s.cmd().arg(cmd).arg(name));
            out.fails(2).stdout_empty();
            assert!(
                !s.dir.exists(),
                "{cmd} with a non-UTF-8 name created the spool"
            );
        }
    }
    // Names that reach the rule through the plain form too.
    for name in ["..", ".", "a\\b", "q:1", "ünï"] {
        for cmd in commands() {
            let args = with_queue(&cmd, name);
            let line = usage_error(&s, &args);
            assert!(line.contains("queue name"), "{args:?}: {line:?}");
        }
    }
}

#[test]
fn malformed_flags_and_arguments_are_usage_errors_for_every_command() {
    let s = Spool::new();
    // An unknown flag, in every command.
    for cmd in commands() {
        let mut args = with_queue(&cmd, "q");
        let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        args.insert(at, "--bogus");
        let line = usage_error(&s, &args);
        assert!(line.contains("--bogus"), "names the flag: {line:?}");
    }
    for args in [
        vec!["list", "--bogus"],
        vec!["list", "extra"],
        vec!["stats", "q", "extra"],
        vec!["fsck", "q", "extra"],
        vec!["peek", "q", "extra"],
        vec!["pop", "q", "extra"],
        vec!["purge", "q", "extra"],
        vec!["push", "q", "--lines", "body"],
        vec!["push"],
        vec!["ack", "q"],
        vec!["nack", "q"],
        vec!["extend", "q", RECEIPT],
        vec!["extend", "q", "--lease", "1m"],
        vec!["exec", "q"],
        vec!["exec", "q", "--"],
        vec!["exec", "q", "--loop", "--loop", "--", "true"],
        vec!["purge", "q", "--dead", "--dead"],
        vec!["fsck", "--repair", "--repair"],
        vec!["completions", "nosuchshell"],
        vec!["completions"],
        vec!["man", "extra"],
        vec!["frobnicate", "q"],
        vec!["PUSH", "q", "x"],
        vec!["-x"],
    ] {
        usage_error(&s, &args);
    }
}

#[test]
fn a_missing_or_empty_dir_is_a_usage_error() {
    let s = Spool::new();
    for args in [
        vec!["--dir"],
        vec!["list", "--dir"],
        vec!["push", "q", "x", "--dir"],
    ] {
        let out = run(bare_spoolmq().args(&args).env("HOME", s.scratch()));
        out.fails(2).stdout_empty();
    }
    for args in [vec!["push", "q", "x"], vec!["list"], vec!["pop", "q"]] {
        let out = run(bare_spoolmq()
            .arg("--dir")
            .arg("")
            .args(&args)
            .env("HOME", s.scratch()));
        out.fails(2).stdout_empty();
        // Nowhere to put a spool at all: no flag, no SPOOLMQ_DIR, no XDG_DATA_HOME, no HOME.
        let out = run(bare_spoolmq().args(&args).env_remove("HOME"));
        out.fails(2).stdout_empty();
    }
    assert!(walk(s.scratch()).is_empty(), "nothing created");
}

/// Every command (valid arguments) run against `dir`: exit 1, one line naming `names`, no
/// stdout.
#[track_caller]
fn every_command_fails_with_1(run_at: &dyn Fn(&[&str]) -> Out, names: &Path, what: &str) {
    let mut all: Vec<Vec<&str>> = commands().iter().map(|c| with_queue(c, "q")).collect();
    all.push(vec!["list"]);
    all.push(vec!["stats"]);
    all.push(vec!["fsck"]);
    all.push(vec!["fsck", "--repair"]);
    all.push(vec!["push", "fresh", "x"]);
    let mut wrong = Vec::new();
    for args in &all {
        let out = run_at(args);
        let lines: Vec<&str> = out.stderr.lines().collect();
        let ok = out.code == 1
            && out.stdout.is_empty()
            && lines.len() == 1
            && lines[0].starts_with("spoolmq: ")
            && lines[0].contains(&names.display().to_string());
        if !ok {
            wrong.push(format!(
                "{args:?}: exit {}, stdout {:?}, stderr {:?}",
                out.code,
                String::from_utf8_lossy(&out.stdout),
                out.stderr
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{what}: every command must exit 1 with one line naming {}; these did not:\n{}",
        names.display(),
        wrong.join("\n")
    );
}

#[test]
fn a_dir_that_is_a_regular_file_fails_every_command_with_exit_1() {
    let s = Spool::new();
    let file = s.scratch().join("a-file");
    fs::write(&file, b"precious").unwrap();
    every_command_fails_with_1(
        &|args| run(spoolmq(&file).args(args)),
        &file,
        "--dir is a file",
    );
    assert_eq!(
        fs::read(&file).unwrap(),
        b"precious",
        "the file is untouched"
    );
    assert_eq!(walk(s.scratch()), vec![file]);
}

#[test]
fn a_dir_inside_a_regular_file_fails_every_command_with_exit_1() {
    let s = Spool::new();
    let file = s.scratch().join("a-file");
    fs::write(&file, b"precious").unwrap();
    let inside = file.join("spool");
    every_command_fails_with_1(
        &|args| run(spoolmq(&inside).args(args)),
        &file,
        "--dir is below a file",
    );
    let deeper = file.join("a/b/spool");
    every_command_fails_with_1(
        &|args| run(spoolmq(&deeper).args(args)),
        &file,
        "--dir is deep below a file",
    );
    assert_eq!(
        fs::read(&file).unwrap(),
        b"precious",
        "the file is untouched"
    );
    assert_eq!(walk(s.scratch()), vec![file]);
}

/// Runs the binary as user `nobody` (65534) when we are root, so that mode 000 means
/// something; as ourselves otherwise.
fn as_unprivileged(dir: &Path, args: &[&str]) -> Out {
    let mut std = std::process::Command::new(BIN);
    std.arg("--dir")
        .arg(dir)
        .args(args)
        .env("SPOOLMQ_STORE", common::STORE)
        .env_remove("SPOOLMQ_DIR")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", "/nonexistent");
    // SAFETY: only async-signal-safe calls between fork and exec.
    if unsafe { libc::geteuid() } == 0 {
        unsafe {
            std.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut cmd = Command::from_std(std);
    cmd.timeout(RUN_TIMEOUT).write_stdin(Vec::<u8>::new());
    run(&mut cmd)
}

/// A spool with a queue `q` holding a message, whose spool directory (or queue directory) is
/// then made unreadable to the user running the commands. Returns None (after saying why)
/// when that cannot be arranged here.
fn unreadable_spool(s: &Spool, lock_queue_dir: bool) -> Option<std::path::PathBuf> {
    s.push("q", &["kept"]);
    // The temp dir is 0700: let the unprivileged user reach the spool inside it, and give
    // them the spool, as if it were their own.
    fs::set_permissions(s.scratch(), fs::Permissions::from_mode(0o755)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        for p in std::iter::once(s.dir.clone()).chain(walk(&s.dir)) {
            std::os::unix::fs::lchown(&p, Some(65534), Some(65534)).unwrap();
        }
    }
    let target = if lock_queue_dir {
        s.queue_dir("q")
    } else {
        s.dir.clone()
    };
    fs::set_permissions(&target, fs::Permissions::from_mode(0o000)).unwrap();
    // Check the arrangement works: the unprivileged user really cannot list it.
    let probe = as_unprivileged(&s.dir, &["--help"]);
    if probe.code != 0 {
        println!(
            "skipped: cannot run the binary as an unprivileged user here ({})",
            probe.stderr.trim()
        );
        return None;
    }
    Some(target)
}

fn restore(s: &Spool, target: &Path) {
    fs::set_permissions(target, fs::Permissions::from_mode(0o700)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        for p in std::iter::once(s.dir.clone()).chain(walk(&s.dir)) {
            std::os::unix::fs::lchown(&p, Some(0), Some(0)).unwrap();
        }
    }
    // The queue is untouched and still works for its owner.
    let m = s.pop_one("q", &[]);
    assert_eq!(body(&m), "kept");
    s.run(&["fsck"]).ok();
}

#[test]
fn an_unreadable_spool_directory_fails_every_command_with_exit_1() {
    let s = Spool::new();
    let Some(target) = unreadable_spool(&s, false) else {
        return;
    };
    let result = std::panic::catch_unwind(|| {
        every_command_fails_with_1(
            &|args| as_unprivileged(&s.dir, args),
            &s.dir,
            "spool directory mode 000",
        )
    });
    restore(&s, &target);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn an_unreadable_queue_directory_fails_every_command_on_it_with_exit_1() {
    if not_on_this_store("queue directories are the fs store's") {
        return;
    }
    let s = Spool::new();
    let Some(target) = unreadable_spool(&s, true) else {
        return;
    };
    let result = std::panic::catch_unwind(|| {
        let mut wrong = Vec::new();
        let mut all: Vec<Vec<&str>> = commands().iter().map(|c| with_queue(c, "q")).collect();
        // Commands over all queues must not silently skip one they cannot read.
        all.push(vec!["stats"]);
        all.push(vec!["fsck"]);
        for args in &all {
            let out = as_unprivileged(&s.dir, args);
            let lines: Vec<&str> = out.stderr.lines().collect();
            let ok = out.code == 1
                && out.stdout.is_empty()
                && lines.len() == 1
                && lines[0].starts_with("spoolmq: ")
                && lines[0].contains(&target.display().to_string());
            if !ok {
                wrong.push(format!(
                    "{args:?}: exit {}, stdout {:?}, stderr {:?}",
                    out.code,
                    String::from_utf8_lossy(&out.stdout),
                    out.stderr
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "queue directory mode 000: every command on it must exit 1 with one line naming {}; these did not:\n{}",
            target.display(),
            wrong.join("\n")
        );
    });
    restore(&s, &target);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn malformed_unknown_and_stale_receipts_exit_4_and_change_nothing() {
    let s = Spool::new();
    s.push("q", &["one", "two"]);
    s.push("other", &["x"]);
    let m = s.pop_one("q", &["--lease", "1h"]);
    let good = receipt(&m).to_string();
    let done = s.pop_one("q", &["--lease", "1h"]);
    s.ack("q", &[receipt(&done)]);
    let foreign = receipt(&s.pop_one("other", &["--lease", "1h"])).to_string();

    let flip_last = {
        let mut b = good.clone().into_bytes();
        let last = b.len() - 1;
        b[last] = if b[last] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    let right_id_wrong_tag = format!("{}{}", &good[..16], "0".repeat(24));
    let beyond = format!("{}{}", "f".repeat(16), &good[16..]);
    let padded = format!(" {good}");
    let trailing = format!("{good} ");
    let short = good[..39].to_string();
    let long = format!("{good}0");
    let non_hex = "g".repeat(40);
    let upper_z = "Z".repeat(40);
    let bad: Vec<&str> = vec![
        "",
        "x",
        // ("-" is not here: it reads the receipts from stdin.)
        &short,
        &long,
        &non_hex,
        &upper_z,
        &flip_last,
        &right_id_wrong_tag,
        &beyond,
        &padded,
        &trailing,
        &foreign,
        receipt(&done),
        RECEIPT,
        "0000000000000000000000000000000000000000",
        "ffffffffffffffffffffffffffffffffffffffff",
    ];
    let before = s.stats("q");
    for r in &bad {
        for args in [
            vec!["ack", "q", "--", r],
            vec!["nack", "q", "--", r],
            vec!["extend", "q", "--lease", "2h", "--", r],
        ] {
            let out = s.run(&args);
            assert_eq!(
                out.code, 4,
                "{args:?}: a malformed, unknown or stale receipt exits 4\nstderr: {}",
                out.stderr
            );
            out.stdout_empty();
            out.error_line();
        }
    }
    let after = s.stats("q");
    for k in ["ready", "leased", "dead", "acked", "delayed"] {
        assert_eq!(before[k], after[k], "{k} changed: {before} vs {after}");
    }
    // The real lease was not touched: it still works, once.
    s.run(&["extend", "q", &good, "--lease", "1h"])
        .ok()
        .stdout_empty();
    s.ack("q", &[&good]);
    s.run(&["ack", "q", &good]).fails(4).stdout_empty();
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 0), ("acked", 2)]);
}

#[test]
fn retry_of_ids_that_are_not_dead_letters_exits_1_with_one_line() {
    let s = Spool::new();
    let ids = s.push("q", &["a"]);
    for bad in [
        "not-an-id",
        "",
        "0123456789abcdef",
        &ids[0],
        "ffffffffffffffff",
    ] {
        let out = s.run(&["retry", "q", "--", bad]);
        assert_eq!(out.code, 1, "retry {bad:?}\nstderr: {}", out.stderr);
        out.error_line();
        assert_eq!(out.stdout_str().trim(), "0", "nothing moved");
    }
    assert_counts(&s.stats("q"), &[("ready", 1), ("dead", 0)]);
}

#[test]
fn a_receipt_with_a_newline_in_it_is_still_reported_on_one_line() {
    let s = Spool::new();
    s.push("q", &["one"]);
    let m = s.pop_one("q", &["--lease", "1h"]);
    // As a script might pass it, newline and all.
    for r in [
        format!("{}\n", receipt(&m)),
        "x\ny".to_string(),
        "\n".to_string(),
    ] {
        for args in [
            vec!["ack", "q", "--", &r],
            vec!["nack", "q", "--", &r],
            vec!["extend", "q", "--lease", "2h", "--", &r],
        ] {
            s.run(&args).fails(4).stdout_empty();
        }
    }
    assert_counts(&s.stats("q"), &[("leased", 1), ("acked", 0)]);
}

#[test]
fn a_receipt_that_is_not_utf8_is_a_malformed_receipt_exit_4() {
    use std::os::unix::ffi::OsStrExt;
    let s = Spool::new();
    s.push("q", &["one"]);
    let m = s.pop_one("q", &["--lease", "1h"]);
    let bad = std::ffi::OsStr::from_bytes(b"\xff\xfe0123456789abcdef0123456789abcdef012345");
    for cmd in [
        vec!["ack", "q"],
        vec!["nack", "q"],
        vec!["extend", "q", "--lease", "2h"],
    ] {
        // The README: "A malformed receipt is an unknown one (4)".
        let out = run(s.cmd().args(&cmd).arg(bad));
        out.fails(4).stdout_empty();
    }
    s.ack("q", &[receipt(&m)]);
}
