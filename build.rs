//! Two things the code cannot know by itself:
//!
//! - Whether a PostgreSQL server was given to the tests
//!   (`SPOOLMQ_TEST_PG_URL`, set by `.ci/run` or `scripts/pg-server.sh`):
//!   the postgres store's tests are compiled in only then (`cfg(pg_server)`,
//!   see tests/it/main.rs).
//! - The commit `spoolmq --version` names (`SPOOLMQ_BUILD_COMMIT`): git's
//!   short hash of HEAD, with `, dirty` when tracked files differ from it;
//!   given from outside when there is no checkout (a source tarball), else
//!   `unknown commit`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(pg_server)");
    println!("cargo::rerun-if-env-changed=SPOOLMQ_TEST_PG_URL");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("SPOOLMQ_TEST_PG_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=pg_server");
    }

    println!("cargo::rerun-if-env-changed=SPOOLMQ_BUILD_COMMIT");
    let commit = match std::env::var("SPOOLMQ_BUILD_COMMIT") {
        Ok(given) if !given.is_empty() => given,
        _ => match git(&["rev-parse", "--short=12", "HEAD"]) {
            Some(hash) => {
                // A new commit moves HEAD or its branch; a change to a
                // tracked file shows in the sources or the index. (Paths
                // that do not exist are left out: cargo would rerun this
                // script on every build for them.)
                for p in [
                    ".git/HEAD",
                    ".git/index",
                    ".git/packed-refs",
                    ".git/refs",
                    "src",
                ] {
                    if Path::new(p).exists() {
                        println!("cargo::rerun-if-changed={p}");
                    }
                }
                let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                    .is_some_and(|s| !s.is_empty());
                if dirty {
                    format!("{hash}, dirty")
                } else {
                    hash
                }
            }
            None => "unknown commit".to_string(),
        },
    };
    println!("cargo::rustc-env=SPOOLMQ_BUILD_COMMIT={commit}");
}
