// `spoolmq doctor` says in plain words whether the spool's file system keeps spoolmq's promises.

use common::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn a_healthy_spool_passes_every_check() {
    // Under target/, on the project's disk (a /tmp on tmpfs would rightly fail).
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let s = Spool {
        dir: tmp.path().join("spool"),
        tmp,
        pg: None,
    };
    s.push("q", &["a"]);
    let out = s.run(&["doctor"]);
    out.ok();
    let text = out.stdout_str();
    for check in [
        "file system",
        "free space",
        "inodes",
        "ownership",
        "fsync",
        "clock",
    ] {
        assert!(text.contains(check), "{check} missing from {text}");
    }
    assert!(!text.contains("PROBLEM"), "{text}");
    // The scratch file of the fsync check is gone.
    assert_eq!(s.run(&["list"]).lines(), vec!["q"]);
    let names: Vec<String> = std::fs::read_dir(&s.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("doctor") || n.contains("fsync") || n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "left behind: {names:?}");
}

#[test]
fn a_spool_others_can_write_to_is_a_problem_with_its_fix() {
    let s = Spool::new();
    s.push("q", &["a"]);
    std::fs::set_permissions(&s.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = s.run(&["doctor", "--json"]);
    assert_eq!(out.code, 1);
    let findings = out.json();
    let bad: Vec<_> = findings
        .iter()
        .filter(|f| f["status"] == "problem")
        .collect();
    assert_eq!(bad.len(), 1, "{findings:?}");
    assert_eq!(bad[0]["check"], "ownership");
    assert!(bad[0]["detail"].as_str().unwrap().contains("chmod 700"));
}

#[test]
fn a_spool_on_tmpfs_is_a_problem() {
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("skipped: no /dev/shm here");
        return;
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    let out = run(spoolmq(&dir.path().join("spool")).arg("doctor"));
    assert_eq!(out.code, 1, "{}", out.stdout_str());
    assert!(out.stdout_str().contains("tmpfs"), "{}", out.stdout_str());
    assert!(out.stdout_str().contains("a known problem"), "{}", out.stdout_str());
}

#[test]
fn doctor_creates_no_spool() {
    let s = Spool::new();
    let out = s.run(&["doctor"]);
    out.ok();
    assert!(out.stdout_str().contains("does not exist yet"));
    assert!(!s.dir.exists());
}
