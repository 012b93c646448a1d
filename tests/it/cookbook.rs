// Every recipe of the README's cookbook runs, exactly as written, with fake jobs, and does what the README says.

use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The `<!-- recipe: NAME -->` code blocks of the README.
fn recipes() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut out = BTreeMap::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("<!-- recipe: ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next(),
            Some("```sh"),
            "recipe {name} must be a sh block"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        out.insert(name.to_string(), body.join("\n") + "\n");
    }
    out
}

/// A scratch directory with the binary on PATH, `SPOOLMQ_DIR` set, and fake jobs.
struct Kitchen {
    s: Spool,
    work: std::path::PathBuf,
}

impl Kitchen {
    fn new() -> Kitchen {
        let s = Spool::new();
        let work = s.scratch().join("work");
        std::fs::create_dir_all(&work).unwrap();
        Kitchen { s, work }
    }

    /// Writes an executable script into the work directory.
    fn script(&self, name: &str, text: &str) {
        let p = self.work.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{text}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn file(&self, name: &str, text: &str) {
        let p = self.work.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Runs a recipe with bash; returns its stdout.
    fn cook(&self, name: &str) -> String {
        self.cook_with(name, &[])
    }

    /// [`Kitchen::cook`] with more environment variables.
    fn cook_with(&self, name: &str, env: &[(&str, &str)]) -> String {
        self.cook_both(name, env).0
    }

    /// [`Kitchen::cook_with`], giving back stdout and stderr.
    fn cook_both(&self, name: &str, env: &[(&str, &str)]) -> (String, String) {
        let all = recipes();
        let recipe = all
            .get(name)
            .unwrap_or_else(|| panic!("no recipe {name} in README.md"));
        let mut bash = Command::new("bash");
        if let Some(url) = self.s.url() {
            bash.env("SPOOLMQ_URL", url);
        }
        let out = bash
            .args(["-euo", "pipefail", "-c", recipe])
            .current_dir(&self.work)
            .env("PATH", path_with_bin())
            .env("SPOOLMQ_DIR", &self.s.dir)
            .env("SPOOLMQ_STORE", STORE)
            .env_remove("XDG_DATA_HOME")
            .envs(env.iter().copied())
            .output()
            .expect("bash");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "recipe {name} failed ({}):\n{recipe}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        (stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn stats(&self, q: &str) -> serde_json::Value {
        self.s.stats(q)
    }

    /// Lines the fake jobs logged.
    fn log(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_to_string(self.work.join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }
}

fn have_jq() -> bool {
    let ok = Command::new("jq").arg("--version").output().is_ok();
    if !ok {
        eprintln!("skipped: jq is not installed (.ci/run installs it)");
    }
    ok
}

#[test]
fn every_recipe_in_the_readme_has_a_test() {
    let names: Vec<String> = recipes().into_keys().collect();
    assert_eq!(
        names,
        [
            "batch",
            "ci",
            "cron",
            "dead-letters",
            "exec-loop",
            "expiry",
            "fan-out",
            "groups",
            "long-exec",
            "long-script",
            "monitoring",
            "priority",
            "redrive",
            "retention",
            "shell-loop",
            "xargs"
        ]
    );
}

#[test]
fn the_shell_loop_acks_what_imports_and_delays_what_fails() {
    if !have_jq() {
        return;
    }
    let k = Kitchen::new();
    k.file("incoming/a.csv", "a");
    k.file("incoming/b.csv", "b");
    k.file("incoming/bad.csv", "x");
    k.script(
        "import",
        "case \"$1\" in *bad*) exit 1;; esac; echo \"$1\" >> log",
    );
    k.cook("shell-loop");
    assert_eq!(k.log(), ["incoming/a.csv", "incoming/b.csv"]);
    assert_counts(&k.stats("imports"), &[("acked", 2), ("delayed", 1)]);
}

#[test]
fn the_exec_loop_acks_what_imports_and_delays_what_fails() {
    let k = Kitchen::new();
    k.file("incoming/a.csv", "a");
    k.file("incoming/bad.csv", "x");
    k.script(
        "import",
        "case \"$1\" in *bad*) exit 1;; esac; echo \"$1\" >> log",
    );
    let out = k.cook("exec-loop");
    assert!(out.contains("some imports failed"), "{out}");
    assert_eq!(k.log(), ["incoming/a.csv"]);
    // The failing one waits out its backoff (5-10s) before it is retried.
    assert_counts(
        &k.stats("imports"),
        &[("acked", 1), ("delayed", 1), ("dead", 0)],
    );
}

#[test]
fn the_batch_recipe_acks_each_batch_once_its_job_is_done() {
    if !have_jq() {
        return;
    }
    let k = Kitchen::new();
    k.script("job.sh", "cat >> log");
    k.cook("batch");
    let mut expect: Vec<String> = (1..=2500).map(|i| i.to_string()).collect();
    expect.sort();
    assert_eq!(k.log(), expect);
    assert_counts(&k.stats("backlog"), &[("acked", 2500), ("leased", 0), ("ready", 0)]);
}

#[test]
fn fan_out_processes_every_message_once_across_workers() {
    let k = Kitchen::new();
    // One write per line, so concurrent workers do not interleave.
    k.script("job.sh", "printf '%s\\n' \"$(cat)\" >> log");
    k.cook("fan-out");
    let expect: Vec<String> = {
        let mut v: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(k.log(), expect);
    assert_counts(&k.stats("work"), &[("acked", 20), ("ready", 0)]);
}

#[test]
fn xargs_fan_out_processes_every_message_once() {
    let k = Kitchen::new();
    k.script("job.sh", "printf '%s\\n' \"$(cat)\" >> log");
    k.cook("xargs");
    assert_eq!(k.log().len(), 8);
    assert_counts(&k.stats("pages"), &[("acked", 8), ("ready", 0)]);
}

/// The redrive recipe moves the dead letters into the slow queue, whose worker does them,
/// and leaves the fast queue with its live work only.
#[test]
fn the_priority_recipe_builds_the_hotfix_before_the_backlog() {
    let k = Kitchen::new();
    k.script("build", "cat >> log; echo >> log");
    for repo in ["alpha", "beta", "gamma"] {
        k.file(&format!("repos/{repo}"), "");
    }
    k.cook("priority");
    // In the order built (`log` sorts).
    let built = std::fs::read_to_string(k.work.join("log")).unwrap();
    assert_eq!(built, "hotfix-repo\nalpha\nbeta\ngamma\n");
    assert_counts(&k.stats("builds"), &[("ready", 0), ("acked", 4)]);
}

#[test]
fn the_groups_recipe_runs_one_customers_events_in_order_and_customers_side_by_side() {
    let k = Kitchen::new();
    // Each event logs its start and end, a moment apart.
    k.script(
        "apply-event",
        "e=$(cat); echo \"start $e\" >> log; sleep 0.3; echo \"end $e\" >> log",
    );
    k.cook("groups");
    let log = std::fs::read_to_string(k.work.join("log")).unwrap();
    let at = |line: &str| log.lines().position(|l| l == line).unwrap();
    // customer-42's second event starts only once its first is done ...
    assert!(at("end create 1001") < at("start pay 1001"), "{log}");
    // ... while customer-7's ran beside the first.
    assert!(at("start create 2001") < at("end create 1001"), "{log}");
    assert_counts(&k.stats("orders"), &[("ready", 0), ("acked", 3)]);
}

#[test]
fn the_redrive_recipe_hands_dead_letters_to_the_slow_worker() {
    let k = Kitchen::new();
    k.script("worker.sh", "cat >> log; echo >> log");
    k.s.make_dead("jobs", &["flaky-1", "flaky-2"]);
    k.s.push("jobs", &["fresh"]);
    assert_eq!(k.cook("redrive"), "2\n");
    assert_eq!(k.log(), ["flaky-1", "flaky-2"]);
    assert_counts(&k.stats("jobs"), &[("ready", 1), ("dead", 0), ("purged", 2)]);
    assert_counts(&k.stats("jobs-slow"), &[("ready", 0), ("acked", 2)]);
}

/// The retention recipe keeps a young dead letter and removes one two weeks old (the clock
/// moved 15 days on through the test builds' skew; PostgreSQL keeps its own clock, so there
/// only the first half is checked).
#[test]
fn the_retention_recipe_purges_only_dead_letters_older_than_two_weeks() {
    let k = Kitchen::new();
    k.s.push("thumbs", &["broken.png", "fine.png"]);
    let m = k.s.pop_one("thumbs", &["--max-attempts", "1"]);
    k.s.nack("thumbs", &[receipt(&m)], &["--max-attempts", "1"]);
    assert_eq!(k.cook("retention"), "0\n");
    assert_counts(&k.stats("thumbs"), &[("dead", 1), ("ready", 1)]);
    if STORE == "postgres" {
        return;
    }
    let skew = (15 * 86_400_000u64).to_string();
    let out = k.cook_with("retention", &[("SPOOLMQ_TEST_CLOCK_SKEW_MS", &skew)]);
    assert_eq!(out, "1\n");
    assert_counts(&k.stats("thumbs"), &[("dead", 0), ("ready", 1)]);
}

/// The expiry recipe pages what it can; an alert the pager could not take
/// within its 10 minutes (the clock moved 11 minutes on through the test
/// builds' skew; PostgreSQL keeps its own clock, so there only the first run
/// is checked) is counted as expired and never paged late.
#[test]
fn the_expiry_recipe_never_pages_an_alert_late() {
    if !have_jq() {
        return;
    }
    let k = Kitchen::new();
    k.script("check-disks", "echo \"/srv at $(cat level)%\"");
    k.file("level", "91");
    // The pager is down on the first run.
    k.script("page", "[ -e pager-up ] || exit 1; cat >> log; echo >> log");
    assert_eq!(k.cook("expiry"), "0 alerts expired unsent\n");
    assert_counts(&k.stats("alerts"), &[("delayed", 1), ("acked", 0)]);
    if STORE == "postgres" {
        return;
    }
    k.file("pager-up", "");
    k.file("level", "97");
    let skew = (11 * 60_000u64).to_string();
    let out = k.cook_with("expiry", &[("SPOOLMQ_TEST_CLOCK_SKEW_MS", &skew)]);
    assert_eq!(out, "1 alerts expired unsent\n");
    assert_eq!(k.log(), ["/srv at 97%"], "the stale alert was not paged");
    assert_counts(
        &k.stats("alerts"),
        &[("acked", 1), ("dead", 1), ("expired", 1)],
    );
}

#[test]
fn the_cron_pair_queues_each_file_once_and_thumbs_it_once() {
    let k = Kitchen::new();
    // The job leaves the file where it is: the next runs find it again.
    k.script("make-thumb.sh", "printf '%s\\n' \"$(cat)\" >> log");
    k.file("data/new/one.png", "1");
    k.cook("cron");
    // A file that arrives after the first run.
    k.file("data/new/two.png", "2");
    k.cook("cron");
    // Nothing new: the producer stores nothing and says nothing (that
    // would be cron mail), the consumer finds nothing to do, and that is fine.
    let (out, err) = k.cook_both("cron", &[]);
    assert_eq!(out, "");
    assert_eq!(err, "spoolmq: thumbs: nothing to do: no ready message\n");
    let log = k.log();
    for f in ["one.png", "two.png"] {
        let n = log.iter().filter(|l| l.ends_with(f)).count();
        assert_eq!(n, 1, "{f} thumbed once: {log:?}");
    }
    let st = k.stats("thumbs");
    assert_counts(&st, &[("pushed", 2), ("acked", 2)]);
}

#[test]
fn the_ci_recipe_fails_the_pipeline_only_when_a_shard_keeps_failing() {
    if !have_jq() {
        return;
    }
    let k = Kitchen::new();
    k.script("run-shard", "echo \"shard $1\" >> log");
    k.cook("ci");
    assert_eq!(k.log().len(), 6);
    let k = Kitchen::new();
    k.script("run-shard", "[ \"$1\" != 3 ]");
    let all = recipes();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &all["ci"]])
        .current_dir(&k.work)
        .env("PATH", path_with_bin())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a shard that always fails must fail the pipeline"
    );
}

/// The shell lines of a `<!-- recipe-yaml: NAME -->` block: `- run: ...` steps
/// (GitHub Actions) or the items of `script:` lists (GitLab CI), with the
/// YAML `variables:` exported first.
fn yaml_steps(name: &str) -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let marker = format!("<!-- recipe-yaml: {name} -->");
    let block: Vec<&str> = readme
        .lines()
        .skip_while(|l| *l != marker)
        .skip(2)
        .take_while(|l| *l != "```")
        .collect();
    assert!(!block.is_empty(), "no yaml recipe {name}");
    let mut script = String::new();
    let mut in_vars = false;
    let mut in_script = false;
    for line in block {
        let t = line.trim();
        if t == "variables:" {
            in_vars = true;
            continue;
        }
        if in_vars {
            if let Some((k, v)) = t.split_once(": ")
                && line.starts_with("  ")
            {
                let v = v.trim_matches('"').replace("$CI_PROJECT_DIR", "$PWD");
                script.push_str(&format!("export {k}=\"{v}\"\n"));
                continue;
            }
            in_vars = false;
        }
        if let Some(cmd) = t.strip_prefix("- run: ") {
            script.push_str(cmd);
            script.push('\n');
        } else if t == "script:" {
            in_script = true;
        } else if in_script && t.starts_with("- ") {
            script.push_str(&t[2..]);
            script.push('\n');
        } else {
            in_script = false;
        }
    }
    script
}

#[test]
fn the_github_and_gitlab_snippets_run_the_ci_steps() {
    if !have_jq() {
        return;
    }
    for name in ["github", "gitlab"] {
        let k = Kitchen::new();
        k.script("run-shard", "echo \"shard $1\" >> log");
        let steps = yaml_steps(name);
        assert!(steps.contains("push shards"), "{name}: {steps}");
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &steps])
            .current_dir(&k.work)
            .env("PATH", path_with_bin())
            .env_remove("SPOOLMQ_DIR")
            .env("HOME", k.s.scratch())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}:\n{steps}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(k.log().len(), 6, "{name}");
        assert!(
            k.work.join(".spool").is_dir(),
            "{name}: the spool is the cached directory"
        );
    }
}

#[test]
fn dead_letters_are_shown_then_retried() {
    if !have_jq() {
        return;
    }
    let k = Kitchen::new();
    k.s.make_dead("jobs", &["broken"]);
    k.s.push("jobs", &["fine"]);
    let out = k.cook("dead-letters");
    assert!(
        out.contains("\"body\":\"broken\"") && !out.contains("fine"),
        "{out}"
    );
    assert_counts(&k.stats("jobs"), &[("dead", 0), ("ready", 2)]);
}

#[test]
fn monitoring_says_when_the_oldest_message_waits_too_long() {
    if !have_jq() {
        return;
    }
    let k = Kitchen::new();
    k.s.push("jobs", &["fresh"]);
    assert_eq!(k.cook("monitoring"), "");
}

#[test]
fn a_long_exec_keeps_its_lease_and_a_script_extends_its_own() {
    let k = Kitchen::new();
    k.s.push("jobs", &["long one"]);
    k.script("long-job.sh", "sleep 3; cat >> log");
    let mut thief = None;
    std::thread::scope(|scope| {
        let t = scope.spawn(|| {
            sleep_ms(2500);
            k.s.run(&["pop", "jobs", "--json"]).code
        });
        k.cook("long-exec");
        thief = Some(t.join().unwrap());
    });
    assert_eq!(
        thief,
        Some(3),
        "another worker got the message while its job ran"
    );
    assert_eq!(k.log(), ["long one"]);
    if !have_jq() {
        return;
    }
    k.s.push("jobs", &["stepwise"]);
    // Three steps of 1 s each: longer than the 2 s lease, kept alive by extend.
    k.script(
        "step.sh",
        "n=$(cat steps 2>/dev/null || echo 0); n=$((n+1)); echo $n > steps; sleep 1; [ $n -ge 3 ]",
    );
    k.cook("long-script");
    assert_counts(
        &k.stats("jobs"),
        &[("acked", 2), ("ready", 0), ("leased", 0)],
    );
}
