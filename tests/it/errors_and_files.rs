// Proves the edges of the contract: queue-name and duration validation (exit 2, one line),
// unknown flags, an unusable `--dir` (exit 1), file modes 0700/0600, the spool resolution
// order, read-only commands creating nothing, and that nothing ever panics.


use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use assert_cmd::Command;
use common::*;

const RECEIPT: &str = "0123456789abcdef0123456789abcdef01234567";

fn bad_names() -> Vec<String> {
    vec![
        "../x".into(),
        "a/b".into(),
        "/abs".into(),
        "".into(),
        ".".into(),
        "..".into(),
        ".hidden".into(),
        "-x".into(),
        "a b".into(),
        "tab\tname".into(),
        "new\nline".into(),
        "caf\u{e9}".into(),
        "star*".into(),
        "x".repeat(65),
    ]
}

#[test]
fn push_rejects_bad_queue_names_with_exit_2_naming_the_rule() {
    let s = Spool::new();
    for name in bad_names() {
        let out = s.run(&["push", "--", &name, "body"]);
        out.code(2).stdout_empty();
        let line = out.error_line();
        assert!(
            line.to_lowercase().contains("queue name"),
            "the error for {name:?} should name the queue-name rule: {line:?}"
        );
    }
    // Nothing was written anywhere for them (`../x` would have been `<tmp>/x`).
    assert!(!s.scratch().join("x").exists());
    let list = s.run(&["list"]);
    list.ok();
    assert_eq!(list.stdout_str(), "");
}

#[test]
fn every_command_rejects_a_bad_queue_name_with_exit_2() {
    let s = Spool::new();
    s.push("ok", &["x"]);
    let cases: Vec<Vec<&str>> = vec![
        vec!["pop", "a/b"],
        vec!["peek", "a/b"],
        vec!["stats", "a/b"],
        vec!["ack", "a/b", RECEIPT],
        vec!["nack", "a/b", RECEIPT],
        vec!["extend", "a/b", RECEIPT, "--lease", "1m"],
        vec!["retry", "a/b"],
        vec!["purge", "a/b"],
        vec!["fsck", "a/b"],
        vec!["exec", "a/b", "--", "true"],
        vec!["pop", "../ok"],
        vec!["stats", ".hidden"],
    ];
    for args in cases {
        let out = s.run(&args);
        out.code(2);
        let line = out.error_line();
        assert!(
            line.to_lowercase().contains("queue name"),
            "{args:?}: {line:?}"
        );
    }
}

#[test]
fn queue_names_of_the_allowed_characters_up_to_64_long_work() {
    let s = Spool::new();
    let long = format!("L{}", "x".repeat(63));
    assert_eq!(long.len(), 64);
    let names = [
        "ABCXYZ",
        "abcxyz",
        "0123456789",
        "a.b_c-d",
        "Az09._-",
        "9lives",
        "_under",
        "x",
        "trailing.",
        "trailing-",
        long.as_str(),
    ];
    for name in names {
        let ids = s.push(name, &[name]);
        let m = s.pop_one(name, &[]);
        assert_eq!(id(&m), ids[0]);
        assert_eq!(body(&m), name);
        assert_eq!(s.stats(name)["queue"], name);
    }
    let out = s.run(&["list"]);
    out.ok();
    let mut listed = out.lines();
    listed.sort();
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
}

#[test]
fn bad_durations_are_usage_errors_that_change_nothing() {
    let s = Spool::new();
    s.push("q", &["x"]);
    let m = s.pop_one("q", &["--lease", "1h"]);
    s.push("q", &["y"]);
    let r = receipt(&m).to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["pop", "q", "--lease", "5x"],
        vec!["pop", "q", "--lease=-1"],
        vec!["pop", "q", "--lease", ""],
        vec!["pop", "q", "--lease", "s"],
        vec!["pop", "q", "--lease", "10y"],
        vec!["pop", "q", "--lease", "5 s"],
        vec!["pop", "q", "--wait", "soon"],
        vec!["push", "q", "--delay", "abc", "z"],
        vec!["push", "q", "--delay", "", "z"],
        vec!["nack", "q", &r, "--delay", "1q"],
        vec!["extend", "q", &r, "--lease", "forever"],
        vec!["exec", "q", "--lease", "5x", "--", "true"],
    ];
    for args in cases {
        s.run(&args).fails(2).stdout_empty();
    }
    // Nothing was pushed, popped, nacked or extended by the rejected commands.
    assert_counts(
        &s.stats("q"),
        &[("ready", 1), ("leased", 1), ("pushed", 2), ("delayed", 0)],
    );
    s.ack("q", &[&r]);
}

#[test]
fn every_documented_duration_form_is_accepted() {
    let s = Spool::new();
    let forms = ["30", "30s", "500ms", "5m", "2h", "1d"];
    s.push("leases", &["1", "2", "3", "4", "5", "6"]);
    for d in forms {
        s.pop_one("leases", &["--lease", d]);
        s.run(&["push", "delays", "--delay", d, d]).ok();
    }
    assert_counts(&s.stats("leases"), &[("ready", 0), ("leased", 6)]);
    // Bare 30 means 30 seconds, not milliseconds; the others are long enough to be pending.
    sleep_ms(200);
    let v = s.stats("delays");
    assert!(num(&v, "delayed") >= 5, "{v}");
    assert!(num(&v, "ready") <= 1, "only 500ms may have come due: {v}");
    let ready = s.peek_json("delays", &["--count", "10"]);
    assert!(ready.iter().all(|m| body(m) == "500ms"), "{ready:?}");
}

#[test]
fn duration_units_mean_what_they_say() {
    let s = Spool::new();
    s.run(&["push", "q", "--delay", "500ms", "half"]).ok();
    s.run(&["push", "q", "--delay", "30", "thirty"]).ok();
    s.pop_nothing("q", &[]);
    sleep_ms(900);
    assert_eq!(bodies(&s.pop_json("q", &["--count", "10"])), ["half"]);
}

#[test]
fn unknown_flags_and_commands_are_usage_errors() {
    let s = Spool::new();
    for args in [
        vec!["push", "q", "--bogus", "x"],
        vec!["--frobnicate", "list"],
        vec!["pop", "q", "--count", "many"],
        vec!["frobnicate"],
    ] {
        s.run(&args).fails(2).stdout_empty();
    }
    assert!(!s.dir.exists(), "usage errors create nothing");
}

#[test]
fn missing_arguments_are_usage_errors() {
    let s = Spool::new();
    // No command at all: a usage error (help text may follow, so only the code is fixed).
    s.run(&[]).code(2);
    for args in [
        vec!["push"],
        vec!["pop"],
        vec!["ack", "q"],
        vec!["nack", "q"],
        vec!["exec", "q"],
    ] {
        s.run(&args).fails(2).stdout_empty();
    }
}

#[test]
fn a_dir_that_is_a_regular_file_is_a_runtime_error() {
    let s = Spool::new();
    let file = s.scratch().join("not-a-dir");
    fs::write(&file, b"hello").unwrap();
    let out = run(spoolmq(&file).args(["push", "q", "x"]));
    out.fails(1).stdout_empty();
    let line = out.error_line();
    assert!(line.contains("not-a-dir"), "the error says where: {line:?}");
    assert_eq!(fs::read(&file).unwrap(), b"hello", "the file is left alone");
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// `spoolmq --dir <spool>` run with umask 000, so only explicit modes keep files private.
fn open_umask(s: &Spool, args: &[&str], stdin: &[u8]) -> Out {
    let mut std = s.std_cmd();
    std.args(args);
    // SAFETY: umask is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        std.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let mut cmd = Command::from_std(std);
    cmd.timeout(RUN_TIMEOUT).write_stdin(stdin.to_vec());
    run(&mut cmd)
}

#[test]
fn the_spool_is_created_0700_and_every_file_in_it_0600() {
    let s = Spool::new();
    let push = open_umask(&s, &["push", "q", "a", "b", "c"], b"");
    push.ok();
    assert!(s.dir.is_dir());
    assert_eq!(mode(&s.dir), 0o700, "spool directory mode");
    open_umask(&s, &["push", "q", "--lines"], b"d\ne\n").ok();
    open_umask(&s, &["push", "other", "--delay", "1h", "z"], b"").ok();
    let popped = open_umask(&s, &["pop", "q", "--json", "--count", "3"], b"");
    popped.ok();
    let msgs = popped.json();
    open_umask(&s, &["ack", "q", receipt(&msgs[0])], b"").ok();
    open_umask(
        &s,
        &["nack", "q", receipt(&msgs[1]), "--max-attempts", "1"],
        b"",
    )
    .ok();
    open_umask(
        &s,
        &["extend", "q", receipt(&msgs[2]), "--lease", "1h"],
        b"",
    )
    .ok();
    open_umask(&s, &["retry", "q"], b"").ok();
    open_umask(&s, &["exec", "q", "--", "sh", "-c", "cat > /dev/null"], b"").ok();
    open_umask(&s, &["purge", "q"], b"").ok();
    open_umask(&s, &["stats"], b"").ok();
    open_umask(&s, &["fsck", "--repair"], b"").ok();
    let all = walk(&s.dir);
    let files: Vec<_> = all
        .iter()
        .filter(|p| fs::symlink_metadata(p).unwrap().is_file())
        .collect();
    assert!(!files.is_empty());
    for f in files {
        assert_eq!(mode(f), 0o600, "mode of {}", f.display());
    }
    assert_eq!(mode(&s.dir), 0o700, "spool directory mode afterwards");
}

/// A temp dir with `home/`, `xdg/`, `env/` and `flag/` candidates (none of them a spool yet).
struct Places {
    tmp: tempfile::TempDir,
}

impl Places {
    fn new() -> Places {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("home")).unwrap();
        fs::create_dir(tmp.path().join("xdg")).unwrap();
        Places { tmp }
    }
    fn p(&self, rel: &str) -> std::path::PathBuf {
        self.tmp.path().join(rel)
    }
    fn home_spool(&self) -> std::path::PathBuf {
        self.p("home/.local/share/spoolmq")
    }
    fn xdg_spool(&self) -> std::path::PathBuf {
        self.p("xdg/spoolmq")
    }
    /// Which candidate spools hold queue `q`.
    fn holders(&self, q: &str) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (name, dir) in [
            ("flag", self.p("flag")),
            ("env", self.p("env")),
            ("xdg", self.xdg_spool()),
            ("home", self.home_spool()),
        ] {
            // The fs store makes a directory per queue, sqlite a database.
            if dir.join(q).exists() || dir.join(".spool.db").exists() {
                v.push(name);
            }
        }
        v
    }
    fn list(&self, dir: &Path) -> String {
        let out = run(spoolmq(dir).args(["list"]));
        out.ok();
        out.stdout_str()
    }
}

#[test]
fn dir_flag_beats_spoolmq_dir_xdg_data_home_and_home() {
    let pl = Places::new();
    let mut cmd = bare_spoolmq();
    cmd.arg("--dir")
        .arg(pl.p("flag"))
        .args(["push", "q", "x"])
        .env("SPOOLMQ_DIR", pl.p("env"))
        .env("XDG_DATA_HOME", pl.p("xdg"))
        .env("HOME", pl.p("home"));
    run(&mut cmd).ok();
    assert_eq!(pl.holders("q"), ["flag"]);
    assert_eq!(pl.list(&pl.p("flag")), "q\n");
    assert!(!pl.p("env").exists() && !pl.xdg_spool().exists() && !pl.home_spool().exists());
}

#[test]
fn spoolmq_dir_beats_xdg_data_home_and_home() {
    let pl = Places::new();
    let mut cmd = bare_spoolmq();
    cmd.args(["push", "q", "x"])
        .env("SPOOLMQ_DIR", pl.p("env"))
        .env("XDG_DATA_HOME", pl.p("xdg"))
        .env("HOME", pl.p("home"));
    run(&mut cmd).ok();
    assert_eq!(pl.holders("q"), ["env"]);
    assert_eq!(pl.list(&pl.p("env")), "q\n");
    assert_eq!(mode(&pl.p("env")), 0o700);
    // And the same environment finds it again for reading.
    let mut cmd = bare_spoolmq();
    cmd.args(["pop", "q", "--json"])
        .env("SPOOLMQ_DIR", pl.p("env"))
        .env("XDG_DATA_HOME", pl.p("xdg"))
        .env("HOME", pl.p("home"));
    let out = run(&mut cmd);
    out.ok();
    assert_eq!(body(&out.json()[0]), "x");
}

#[test]
fn xdg_data_home_beats_home() {
    let pl = Places::new();
    let mut cmd = bare_spoolmq();
    cmd.args(["push", "q", "x"])
        .env("XDG_DATA_HOME", pl.p("xdg"))
        .env("HOME", pl.p("home"));
    run(&mut cmd).ok();
    assert_eq!(pl.holders("q"), ["xdg"]);
    assert_eq!(pl.list(&pl.xdg_spool()), "q\n");
    assert_eq!(mode(&pl.xdg_spool()), 0o700);
}

#[test]
fn home_local_share_is_the_last_resort() {
    let pl = Places::new();
    let mut cmd = bare_spoolmq();
    cmd.args(["push", "q", "x"]).env("HOME", pl.p("home"));
    run(&mut cmd).ok();
    assert_eq!(pl.holders("q"), ["home"]);
    assert_eq!(pl.list(&pl.home_spool()), "q\n");
    assert_eq!(mode(&pl.home_spool()), 0o700);
}

#[test]
fn a_relative_xdg_data_home_is_ignored_as_the_xdg_spec_says() {
    // Run from inside the temp dir so that the relative path, if it were
    // used, would make `xdg/spoolmq` there (and a new spool in every other
    // directory the command is run from).
    let pl = Places::new();
    let mut cmd = bare_spoolmq();
    cmd.args(["push", "q", "x"])
        .current_dir(pl.p(""))
        .env("XDG_DATA_HOME", "xdg")
        .env("HOME", pl.p("home"));
    run(&mut cmd).ok();
    assert_eq!(pl.holders("q"), ["home"]);
    assert!(!pl.xdg_spool().exists(), "a spool was made under ./xdg");
    let mut cmd = bare_spoolmq();
    cmd.args(["pop", "q", "--json"])
        .current_dir(pl.p("xdg"))
        .env("XDG_DATA_HOME", ".")
        .env("HOME", pl.p("home"));
    let out = run(&mut cmd);
    out.ok();
    assert_eq!(body(&out.json()[0]), "x");
}

#[test]
fn read_only_commands_create_nothing() {
    let s = Spool::new();
    s.run(&["stats"]).ok();
    s.run(&["stats", "--json"]).ok().stdout_empty();
    s.run(&["stats", "q"]).fails(1);
    let list = s.run(&["list"]);
    list.ok().stdout_empty();
    s.run(&["list", "--json"]).ok().stdout_empty();
    let peek = s.run(&["peek", "q", "--json"]);
    assert!(
        peek.code == 0 || peek.code == 3,
        "peek on nothing: exit {}",
        peek.code
    );
    peek.stdout_empty();
    s.pop_nothing("q", &[]);
    s.pop_nothing("q", &["--wait", "200ms"]);
    s.run(&["fsck"]).ok();
    s.run(&["fsck", "q"]);
    assert!(
        !s.dir.exists(),
        "read-only commands created {}",
        s.dir.display()
    );
    assert_eq!(walk(s.scratch()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_failed_ack_on_a_missing_spool_creates_nothing() {
    let s = Spool::new();
    s.run(&["ack", "q", RECEIPT]).fails(4);
    s.run(&["nack", "q", RECEIPT]).fails(4);
    s.run(&["extend", "q", RECEIPT, "--lease", "1m"]).fails(4);
    assert!(!s.dir.exists());
}

#[test]
fn nothing_panics_on_odd_invocations() {
    let s = Spool::new();
    s.push("q", &["x"]);
    // `run` fails the test if stderr mentions a panic or the process dies by a signal.
    let odd: Vec<Vec<&str>> = vec![
        vec!["pop", "q", "--count", "0"],
        vec!["pop", "q", "--count", "99999999999999999999"],
        vec!["pop", "q", "--lease", "99999999999d"],
        vec!["pop", "q", "--max-attempts", "0"],
        vec!["push", "q", "--delay", "99999999999999999999s", "x"],
        vec!["peek", "q", "--count", "0"],
        vec!["retry", "q", "not-an-id"],
        vec!["retry", "q", "0123456789abcdef"],
        vec!["stats", "q", "--json", "--json"],
        vec!["--help"],
        vec!["push", "--help"],
        vec!["exec", "q", "--", "/nonexistent/command"],
    ];
    for args in odd {
        let out = s.run(&args);
        assert!((0..=4).contains(&out.code), "{args:?} exited {}", out.code);
    }
}

#[test]
fn garbage_in_the_spool_does_not_cause_a_panic() {
    let s = Spool::new();
    s.push("q", &["x", "y"]);
    for seg in s.segment_files("q") {
        fs::write(&seg, b"this is not a segment file at all").unwrap();
    }
    for entry in walk(&s.queue_dir("q")) {
        if entry.is_file() && !entry.to_string_lossy().ends_with(".seg") {
            fs::write(&entry, b"\xff\x00garbage").unwrap();
        }
    }
    fs::create_dir_all(s.dir.join("stray")).unwrap();
    fs::write(s.dir.join("stray").join("junk"), b"junk").unwrap();
    for args in [
        vec!["pop", "q"],
        vec!["peek", "q"],
        vec!["stats"],
        vec!["stats", "q"],
        vec!["list"],
        vec!["fsck"],
        vec!["push", "q", "z"],
        vec!["fsck", "--repair"],
        vec!["pop", "q"],
    ] {
        let out = s.run(&args);
        assert!((0..=4).contains(&out.code), "{args:?} exited {}", out.code);
    }
}

#[test]
fn a_killed_waiter_leaves_no_trace_or_lock_behind() {
    let s = Spool::new();
    s.push("other", &["x"]);
    let bg = s.spawn(&["pop", "q", "--wait", "10s"]);
    sleep_ms(300);
    bg.kill9();
    s.push("q", &["after"]);
    let m = s.pop_one("q", &["--wait", "2s"]);
    assert_eq!(body(&m), "after");
    assert_eq!(attempt(&m), 1);
}
