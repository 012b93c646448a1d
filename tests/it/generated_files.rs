//! The checked-in completions and man page are exactly what the current binary generates.

use assert_cmd::Command;
use std::path::Path;

const FILES: [(&[&str], &str); 6] = [
    (&["completions", "bash"], "completions/spoolmq.bash"),
    (&["completions", "zsh"], "completions/_spoolmq"),
    (&["completions", "fish"], "completions/spoolmq.fish"),
    (&["completions", "elvish"], "completions/spoolmq.elv"),
    (&["completions", "powershell"], "completions/_spoolmq.ps1"),
    (&["man"], "man/spoolmq.1"),
];

#[test]
fn checked_in_completions_and_man_page_match_the_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (args, file) in FILES {
        let out = Command::cargo_bin("spoolmq")
            .unwrap()
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "spoolmq {args:?} failed");
        let on_disk = std::fs::read(root.join(file)).unwrap_or_default();
        assert!(
            out.stdout == on_disk,
            "{file} is stale: regenerate it with `spoolmq {} > {file}`",
            args.join(" ")
        );
    }
}

#[test]
fn every_command_has_a_checked_in_man_page_of_its_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let commands = spoolmq::cli::man_commands();
    assert!(commands.len() >= 12, "{commands:?}");
    for c in commands {
        let file = format!("man/spoolmq-{c}.1");
        let out = Command::cargo_bin("spoolmq")
            .unwrap()
            .args(["man", &c])
            .output()
            .unwrap();
        assert!(out.status.success(), "spoolmq man {c} failed");
        let on_disk = std::fs::read(root.join(&file)).unwrap_or_default();
        assert!(
            out.stdout == on_disk,
            "{file} is stale: regenerate it with `spoolmq man {c} > {file}`"
        );
    }
}

#[test]
fn completions_and_man_need_no_spool() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("spool");
    Command::cargo_bin("spoolmq")
        .unwrap()
        .arg("--dir")
        .arg(&spool)
        .args(["completions", "bash"])
        .assert()
        .success();
    assert!(!spool.exists());
}
