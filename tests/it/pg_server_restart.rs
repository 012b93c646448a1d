// The PostgreSQL server restarted while producers push and consumers pop and
// ack through it: commands that meet the outage fail with exit 1 and one
// line, the next ones work once the server is back, and nothing that was
// pushed or acknowledged with exit 0 is lost. It restarts the server the
// other PostgreSQL tests use, so it runs alone (`common::pg_server_alone`).

use crate::env_pg::*;
use std::collections::HashSet;
use std::time::Duration;

#[test]
fn a_server_restart_midway_loses_nothing_pushed_or_acked() {
    let _alone = pg_server_alone();
    let s = Spool::new();
    let Ok(restart) = std::env::var("SPOOLMQ_TEST_PG_RESTART") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but SPOOLMQ_TEST_PG_RESTART is not set");
        }
        eprintln!("skipped: set SPOOLMQ_TEST_PG_RESTART to a command that restarts the server");
        return;
    };
    s.push("q", &["first"]);
    let work = s.scratch().to_path_buf();
    let bash = |name: &str, script: &str| {
        let mut cmd = std::process::Command::new("bash");
        cmd.args(["-c", script])
            .current_dir(&work)
            .env("PATH", path_with_bin())
            .env("SPOOLMQ_URL", s.url().unwrap())
            .stdin(std::process::Stdio::null());
        Bg::spawn(cmd, name.to_string())
    };
    // A push that exited 0 is logged; one that failed is tried again.
    let producer = bash(
        "producer",
        "for i in $(seq 1 300); do \
           until spoolmq push q \"m$i\" >/dev/null 2>>push.err; do sleep 0.1; done; \
           echo \"m$i\" >> pushed.log; \
         done; touch producer.done",
    );
    // Bodies are logged once their ack exited 0. It stops when the producer
    // is done and nothing is left, leased ones included: a batch whose ack
    // met the outage comes back when its 3 s lease runs out.
    let consumer = bash(
        "consumer",
        "while true; do \
           out=$(spoolmq pop q --count 10 --lease 3s --json 2>>pop.err); rc=$?; \
           if [ $rc -eq 3 ]; then \
             left=$(spoolmq stats q --json 2>/dev/null | jq '.ready + .leased + .delayed'); \
             [ -e producer.done ] && [ \"$left\" = 0 ] && exit 0; sleep 0.05; continue; fi; \
           if [ $rc -ne 0 ]; then sleep 0.1; continue; fi; \
           if spoolmq ack q $(printf '%s\\n' \"$out\" | jq -r .receipt) 2>ack.last; then \
             printf '%s\\n' \"$out\" | jq -r .body >> acked.log; \
           elif grep -q \"outcome is unknown\" ack.last; then \
             printf '%s\\n' \"$out\" | jq -r .body >> unknown.log; \
           fi; cat ack.last >> ack.err; \
         done",
    );
    std::thread::sleep(Duration::from_millis(800));
    let status = std::process::Command::new("sh")
        .args(["-c", &restart])
        .status()
        .expect("the restart command runs");
    assert!(status.success(), "`{restart}` failed");
    producer.wait(Duration::from_secs(120)).ok();
    consumer.wait(Duration::from_secs(120)).ok();
    let read = |f: &str| std::fs::read_to_string(work.join(f)).unwrap_or_default();
    let pushed: HashSet<String> = read("pushed.log").lines().map(String::from).collect();
    let acked: HashSet<String> = read("acked.log").lines().map(String::from).collect();
    assert_eq!(pushed.len(), 300);
    let errors = read("push.err") + &read("pop.err") + &read("ack.err");
    // An ack whose commit met the outage says its outcome is unknown: the
    // server may have taken it (then the message is never seen again, and
    // the final counters below show it acked) or not (then it comes back).
    let unknown: HashSet<String> = read("unknown.log").lines().map(String::from).collect();
    let lost: Vec<&String> = pushed
        .iter()
        .filter(|b| !acked.contains(*b) && !unknown.contains(*b))
        .collect();
    assert!(
        lost.is_empty(),
        "pushed but never delivered and acked: {lost:?}; the errors:\n{errors}"
    );
    // The outage was seen, as one line per failed command.
    assert!(
        !errors.is_empty(),
        "the restart went unnoticed: was the server restarted?"
    );
    for line in errors.lines() {
        assert!(
            line.starts_with("spoolmq: "),
            "one readable line each: {line:?}"
        );
    }
    // Everything acked stays acked: the queue is drained (a push that failed
    // may still have been stored, and was then delivered too).
    let v = s.stats("q");
    assert_eq!(
        (v["ready"].as_u64(), v["leased"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(v["acked"], v["pushed"], "{v}");
    assert!(v["pushed"].as_u64().unwrap() > 300, "{v}");
}
