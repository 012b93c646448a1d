// Who may touch a spool (StrictModes-like checks, `init --group`), symlinks
// planted in a spool, and ids that reveal nothing. The PostgreSQL store has
// no spool directory: there, only the id test applies.


use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;

fn no_spool_directory() -> bool {
    if STORE == "postgres" {
        eprintln!("skipped on the postgres store: it has no spool directory");
        return true;
    }
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_spool_others_or_its_group_can_write_to_is_refused_with_the_fix() {
    if no_spool_directory() {
        return;
    }
    let s = Spool::new();
    s.push("q", &["kept"]);
    for (m, fix) in [
        (0o777, "chmod 700"),
        (0o770, "init --group"),
        (0o730, "init --group"),
    ] {
        fs::set_permissions(&s.dir, fs::Permissions::from_mode(m)).unwrap();
        for args in [
            vec!["push", "q", "x"],
            vec!["pop", "q"],
            vec!["stats"],
            vec!["list"],
        ] {
            let out = s.run(&args);
            out.fails(1).stdout_empty();
            let line = out.error_line();
            assert!(
                line.contains(&format!("{m:04o}")) && line.contains(fix),
                "mode {m:o}, {args:?}: {line}"
            );
        }
    }
    fs::set_permissions(&s.dir, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(body(&s.pop_one("q", &[])), "kept");
    // Read-only for others is the owner's choice, not a danger to the queue.
    fs::set_permissions(&s.dir, fs::Permissions::from_mode(0o755)).unwrap();
    s.push("q", &["fine"]);
}

#[test]
fn a_spool_owned_by_another_user_is_refused() {
    if no_spool_directory() {
        return;
    }
    if !is_root() {
        eprintln!("skipped: needs root to give the spool to another user");
        return;
    }
    let s = Spool::new();
    s.push("q", &["kept"]);
    std::os::unix::fs::lchown(&s.dir, Some(65534), None).unwrap();
    let out = s.run(&["pop", "q"]);
    out.fails(1).stdout_empty();
    assert!(
        out.error_line().contains("not to you"),
        "{}",
        out.error_line()
    );
    std::os::unix::fs::lchown(&s.dir, Some(0), None).unwrap();
    assert_eq!(body(&s.pop_one("q", &[])), "kept");
}

#[test]
fn a_shared_spool_works_for_two_members_of_its_group_and_not_for_a_third() {
    if no_spool_directory() {
        return;
    }
    if !is_root() {
        eprintln!("skipped: needs root to run commands as other users");
        return;
    }
    const GROUP: u32 = 60100;
    let (alice, bob, eve) = (60001, 60002, 60003);
    let s = Spool::new();
    fs::set_permissions(s.scratch(), fs::Permissions::from_mode(0o755)).unwrap();
    let probe = as_user(&s, alice, &[GROUP], &["--version"]);
    if probe.code != 0 {
        eprintln!("skipped: cannot run as another user here: {}", probe.stderr);
        return;
    }
    // Root gives alice an empty directory for the spool (she cannot create
    // one in the root-owned scratch directory).
    fs::create_dir(&s.dir).unwrap();
    std::os::unix::fs::lchown(&s.dir, Some(alice), Some(alice)).unwrap();
    let out = as_user(&s, alice, &[GROUP], &["init", "--group", "60100"]);
    out.ok();
    assert!(
        out.stdout_str().contains("shared with group"),
        "{}",
        out.stdout_str()
    );
    let meta = fs::metadata(&s.dir).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), mode(&s.dir)),
        (alice, GROUP, 0o2770)
    );

    let pushed = as_user(&s, alice, &[GROUP], &["push", "q", "from alice"]);
    pushed.ok();
    let got = as_user(&s, bob, &[GROUP], &["pop", "q", "--json"]);
    got.ok();
    let m = &got.json()[0];
    assert_eq!(body(m), "from alice");
    as_user(&s, bob, &[GROUP], &["ack", "q", receipt(m)]).ok();
    as_user(&s, bob, &[GROUP], &["push", "q", "from bob"]).ok();
    let got = as_user(&s, alice, &[GROUP], &["pop", "q", "--json"]);
    got.ok();
    assert_eq!(body(&got.json()[0]), "from bob");

    // Everything in it is the group's: files 0660, directories 2770.
    for p in walk(&s.dir) {
        let m = fs::symlink_metadata(&p).unwrap();
        let want = if m.is_dir() { 0o2770 } else { 0o660 };
        assert_eq!((mode(&p), m.gid()), (want, GROUP), "{}", p.display());
    }

    // Not a member: refused, and nothing changed.
    for args in [vec!["push", "q", "from eve"], vec!["pop", "q"]] {
        let out = as_user(&s, eve, &[60200], &args);
        out.fails(1).stdout_empty();
        assert!(
            out.error_line().contains("not in it"),
            "{}",
            out.error_line()
        );
    }
    let stats = as_user(&s, alice, &[GROUP], &["stats", "q", "--json"]);
    assert_counts(
        &stats.json()[0],
        &[("pushed", 2), ("acked", 1), ("leased", 1)],
    );
}

#[test]
fn init_makes_a_private_spool_and_refuses_an_unknown_group() {
    if no_spool_directory() {
        return;
    }
    let s = Spool::new();
    s.run(&["init"]).ok();
    assert_eq!(mode(&s.dir), 0o700);
    s.run(&["init", "--group", "no-such-group-here"]).fails(2);
    assert_eq!(mode(&s.dir), 0o700);
}

/// A file outside the spool that a planted link points at; it must stay as it is.
fn bait(s: &Spool, name: &str) -> PathBuf {
    let p = s.scratch().join(name);
    fs::write(&p, b"outside the spool").unwrap();
    p
}

fn assert_refused_link(out: &Out, link: &Path) {
    out.fails(1).stdout_empty();
    let line = out.error_line();
    assert!(
        line.contains(&link.display().to_string()) && line.contains("symbolic link"),
        "{line}"
    );
}

#[test]
fn a_symlink_in_place_of_a_segment_or_the_index_is_refused() {
    if not_on_this_store("segments and the index are the fs store's") {
        return;
    }
    for name in ["segment", "index", "key", "dangling"] {
        let s = Spool::new();
        s.push("q", &["a", "b"]);
        let target = match name {
            "segment" => s.segment_files("q").remove(0),
            "dangling" => s.queue_dir("q").join("key"),
            other => s.queue_dir("q").join(other),
        };
        let outside = bait(&s, name);
        let _ = fs::remove_file(&target);
        if name == "dangling" {
            // A link to nowhere must not read as "no key file".
            std::os::unix::fs::symlink(s.scratch().join("nowhere"), &target).unwrap();
        } else {
            std::os::unix::fs::symlink(&outside, &target).unwrap();
        }
        for args in [vec!["pop", "q"], vec!["push", "q", "c"]] {
            let out = s.run(&args);
            assert_refused_link(&out, &target);
        }
        assert_eq!(fs::read(&outside).unwrap(), b"outside the spool", "{name}");
    }
}

#[test]
fn a_symlink_in_place_of_a_queue_directory_is_refused() {
    if not_on_this_store("queue directories are the fs store's") {
        return;
    }
    let s = Spool::new();
    s.push("q", &["a"]);
    // A whole queue outside the spool, linked in under a new name.
    let outside = s.scratch().join("elsewhere");
    fs::rename(s.queue_dir("q"), &outside).unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = walk(&outside)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    let link = s.queue_dir("q");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    for args in [
        vec!["pop", "q"],
        vec!["push", "q", "b"],
        vec!["peek", "q"],
        vec!["list"],
        vec!["stats"],
    ] {
        assert_refused_link(&s.run(&args), &link);
    }
    for (p, bytes) in before {
        assert_eq!(fs::read(&p).unwrap(), bytes, "{}", p.display());
    }
}

#[test]
fn a_symlink_in_place_of_the_database_is_refused() {
    if STORE != "sqlite" {
        eprintln!("skipped on the {STORE} store: the database file is the sqlite store's");
        return;
    }
    let s = Spool::new();
    s.push("q", &["a"]);
    let db = s.dir.join(".spool.db");
    let elsewhere = s.scratch().join("db");
    fs::copy(&db, &elsewhere).unwrap();
    fs::remove_file(&db).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &db).unwrap();
    let before = fs::read(&elsewhere).unwrap();
    let out = s.run(&["push", "q", "b"]);
    assert_refused_link(&out, &db);
    assert_eq!(fs::read(&elsewhere).unwrap(), before);
}

#[test]
fn ids_and_receipts_reveal_nothing_of_the_order_or_count() {
    let s = Spool::new();
    let bodies: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    let ids = s.push("q", &refs);
    let values: Vec<u64> = ids
        .iter()
        .map(|i| u64::from_str_radix(i, 16).unwrap())
        .collect();
    let mut sorted = values.clone();
    sorted.sort();
    assert_ne!(sorted, values, "ids must not sort in push order");
    assert!(
        values.windows(2).all(|w| w[0].abs_diff(w[1]) > 1 << 16),
        "neighbouring ids must not be close: {ids:?}"
    );
    // Receipts: the id and 96 random bits; two deliveries differ.
    let a = s.pop_one("q", &[]);
    s.nack("q", &[receipt(&a)], &[]);
    let b = s.pop_one("q", &[]);
    assert_eq!(id(&a), id(&b));
    assert_ne!(receipt(&a)[16..], receipt(&b)[16..]);
    assert_eq!(receipt(&a).len(), 40);
}

#[test]
fn a_spool_migrated_out_of_a_shared_one_is_private() {
    if not_on_this_store("migrate --into is run from the fs store here") {
        return;
    }
    let s = Spool::new();
    // SAFETY: getegid has no preconditions.
    let gid = unsafe { libc::getegid() }.to_string();
    s.run(&["init", "--group", &gid]).ok();
    s.push("q", &["a"]);
    assert_eq!(mode(&s.dir), 0o2770);
    let into = s.scratch().join("new/deeper");
    let out = run(s
        .cmd()
        .env_remove("SPOOLMQ_STORE")
        .args(["migrate", "--to", "sqlite", "--into"])
        .arg(&into));
    out.ok();
    assert_eq!(mode(&into), 0o700);
    for p in walk(&into) {
        assert_eq!(mode(&p) & 0o077, 0, "{} is {:o}", p.display(), mode(&p));
    }
}
