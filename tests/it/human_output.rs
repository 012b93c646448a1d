// Output for people on a terminal, stable tab-separated lines in a pipe, and errors that suggest the fix.

use common::*;

#[test]
fn stats_in_a_pipe_is_one_tab_separated_line_per_queue() {
    let s = Spool::new();
    s.push("jobs", &["a", "bb"]);
    s.push("mail", &["c"]);
    let out = s.run(&["stats"]);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let f: Vec<&str> = lines[0].split('\t').collect();
    // queue ready leased delayed dead pushed acked bytes segments oldest_ready_age_ms
    assert_eq!(&f[..9], ["jobs", "2", "0", "0", "0", "2", "0", "3", "1"]);
    assert!(f[9].parse::<u64>().is_ok(), "{f:?}");
    assert!(lines[1].starts_with("mail\t1\t"));
}

#[test]
fn stats_on_a_terminal_is_an_aligned_table_with_human_sizes() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: the `script` program (util-linux) is not installed");
        return;
    }
    let s = Spool::new();
    s.push_stdin("jobs", &vec![b'x'; 3 * 1024]);
    let cmd = format!("{} --dir '{}' stats", BIN, s.dir.display());
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("QUEUE") && text.contains("READY"), "{text}");
    assert!(text.contains("3.0 KiB"), "{text}");
    // `list` on a terminal is the same table; in a pipe, names only.
    let cmd = format!("{} --dir '{}' list", BIN, s.dir.display());
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("QUEUE") && text.contains("jobs"), "{text}");
    assert_eq!(s.run(&["list"]).lines(), vec!["jobs"]);
}

#[test]
fn an_unknown_queue_error_names_the_queues_that_exist() {
    let s = Spool::new();
    let out = s.run(&["stats", "nope"]);
    out.fails(1);
    assert!(out.error_line().contains("no queues"), "{}", out.stderr);
    s.push("jobs", &["a"]);
    let out = s.run(&["stats", "jbos"]);
    out.fails(1);
    let line = out.error_line();
    assert!(line.contains("jbos") && line.contains("jobs"), "{line}");
}

#[test]
fn a_long_push_shows_progress_on_a_terminal_and_nothing_in_a_pipe() {
    let s = Spool::new();
    let input = s.scratch().join("lines.txt");
    let text: String = (0..400_000).map(|i| format!("{i:099}\n")).collect();
    std::fs::write(&input, text).unwrap();
    // In a pipe: stderr stays empty.
    let out = std::process::Command::new(BIN)
        .arg("--dir")
        .arg(&s.dir)
        .env("SPOOLMQ_STORE", common::STORE)
        .args(["push", "piped", "--lines"])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped the terminal half: the `script` program (util-linux) is not installed");
        return;
    }
    let cmd = format!(
        "{} --dir '{}' push tty --lines < '{}' > /dev/null",
        BIN,
        s.dir.display(),
        input.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("pushed") && shown.contains("messages"),
        "{shown:?}"
    );
}

#[test]
fn stats_watch_refreshes_with_rates_until_interrupted() {
    let s = Spool::new();
    s.push("q", &["first"]);
    let log = s.scratch().join("watch.out");
    let mut child = s
        .std_cmd()
        .args(["stats", "q", "--watch", "200ms", "--json"])
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    sleep_ms(300);
    s.push("q", &["a", "b", "c", "d"]);
    sleep_ms(700);
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let samples: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(samples.len() >= 3, "{text}");
    assert!(
        samples[0].get("pushed_per_sec").is_none(),
        "no rate before a second sample"
    );
    assert_eq!(samples.last().unwrap()["pushed"], 5);
    let rates: Vec<f64> = samples[1..]
        .iter()
        .map(|v| v["pushed_per_sec"].as_f64().unwrap())
        .collect();
    assert!(
        rates.iter().any(|&r| r > 0.0),
        "the push shows as a rate: {rates:?}"
    );
}

#[test]
fn stats_prometheus_prints_one_family_per_figure_and_one_sample_per_queue() {
    let s = Spool::new();
    s.push("jobs", &["a", "b"]);
    s.push("mail", &["c"]);
    let out = s.run(&["stats", "--prometheus"]);
    out.ok();
    let text = out.stdout_str();
    assert!(text.contains("# TYPE spoolmq_ready gauge\n"), "{text}");
    assert!(
        text.contains("# TYPE spoolmq_pushed_total counter\n"),
        "{text}"
    );
    assert!(text.contains("spoolmq_ready{queue=\"jobs\"} 2\n"), "{text}");
    assert!(
        text.contains("spoolmq_pushed_total{queue=\"mail\"} 1\n"),
        "{text}"
    );
    // Every line is a comment or `name{labels} number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (metric, value) = line.rsplit_once(' ').unwrap();
        assert!(
            metric.starts_with("spoolmq_") && metric.ends_with("\"}"),
            "{line}"
        );
        value.parse::<f64>().unwrap();
    }
}

#[test]
fn every_command_help_ends_with_at_least_two_examples() {
    for c in spoolmq::cli::man_commands() {
        let out = bare_spoolmq()
            .args([c.as_str(), "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{c} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        let tail = text
            .split("Examples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("`spoolmq {c} --help` has no Examples section:\n{text}"));
        let examples = tail
            .lines()
            .filter(|l| l.starts_with("  spoolmq") || l.contains(" spoolmq "))
            .count();
        assert!(
            examples >= 2,
            "`spoolmq {c} --help` shows {examples} examples:\n{tail}"
        );
    }
    // The top-level help lists every command with one line each.
    let out = bare_spoolmq().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for c in spoolmq::cli::man_commands() {
        assert!(
            text.contains(&format!("  {c} ")),
            "{c} missing from --help:\n{text}"
        );
    }
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = run(bare_spoolmq().arg("--version"));
    out.ok();
    let line = out.stdout_str();
    let line = line.trim_end();
    let rest = line
        .strip_prefix(concat!("spoolmq ", env!("CARGO_PKG_VERSION"), " ("))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line:?}"));
    let hash = rest.strip_suffix(", dirty").unwrap_or(rest);
    assert!(
        hash == "unknown commit" || (hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
        "{line:?}"
    );
    // `-V` stays the plain version (the man pages carry it too).
    let short = run(bare_spoolmq().arg("-V"));
    assert_eq!(short.stdout_str().trim_end(), concat!("spoolmq ", env!("CARGO_PKG_VERSION")));
}
