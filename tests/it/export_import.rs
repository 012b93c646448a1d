// `export` writes every message that holds a body as JSON lines and `import` reads them back into a queue, losing nothing.

use common::*;

#[test]
fn export_then_import_moves_every_message_with_its_body_and_state() {
    let s = Spool::new();
    s.make_dead("jobs", &["dead one"]);
    s.push("jobs", &["acked"]);
    let m = s.pop_one("jobs", &[]);
    s.ack("jobs", &[receipt(&m)]);
    s.push("jobs", &["ready one"]);
    s.push_stdin("jobs", &[0xff, 0x00, 0x80]);
    s.run(&["push", "jobs", "--delay", "1h", "later"]).ok();
    let leased = s.pop_one("jobs", &["--lease", "1h"]);
    assert_eq!(body(&leased), "ready one");

    let out = s.run(&["export", "jobs"]);
    out.ok();
    let lines = out.json();
    let by_state = |st: &str| lines.iter().filter(|l| l["state"] == st).count();
    assert_eq!(lines.len(), 4, "acked messages are not exported: {lines:?}");
    assert_eq!(
        (
            by_state("dead"),
            by_state("leased"),
            by_state("delayed"),
            by_state("ready")
        ),
        (1, 1, 1, 1)
    );
    let binary = lines
        .iter()
        .find(|l| l.get("body_base64").is_some())
        .unwrap();
    assert_eq!(
        base64_decode(binary["body_base64"].as_str().unwrap()),
        vec![0xff, 0x00, 0x80]
    );

    let out = s.run_stdin(&["import", "copy"], &out.stdout);
    out.ok();
    assert_eq!(out.stdout_str(), "4\n");
    let st = s.stats("copy");
    // The lease does not travel: that message is ready in the copy.
    assert_counts(
        &st,
        &[
            ("ready", 2),
            ("delayed", 1),
            ("dead", 1),
            ("leased", 0),
            ("pushed", 4),
        ],
    );
    let got = s.pop_json("copy", &["--count", "10"]);
    assert_eq!(got.len(), 2);
    assert!(got.iter().any(|m| body(m) == "ready one"));
    assert!(got.iter().any(|m| body_bytes(m) == vec![0xff, 0x00, 0x80]));
    s.run(&["retry", "copy"]).ok();
    assert_eq!(bodies(&s.pop_json("copy", &[])), vec!["dead one"]);
}

#[test]
fn a_malformed_import_imports_nothing() {
    let s = Spool::new();
    let input = b"{\"id\":\"x\",\"state\":\"ready\",\"body\":\"fine\"}\n{\"state\":\"ready\"}\n";
    let out = s.run_stdin(&["import", "q"], input);
    out.fails(1);
    assert!(out.error_line().contains("line 2"), "{}", out.stderr);
    s.run(&["stats", "q"]).fails(1);
}

#[test]
fn an_import_line_with_a_number_spoolmq_cannot_keep_is_refused_with_its_line_number() {
    // Never clamped, never taken as "ready at once": the line is refused,
    // with the field named, and nothing is imported.
    let s = Spool::new();
    let good = r#"{"id":"x","state":"ready","body":"fine"}"#;
    let bad = [
        (
            r#"{"state":"delayed","ready_at_ms":99999999999999999999,"body":"b"}"#,
            "ready_at_ms",
        ),
        (
            r#"{"state":"delayed","ready_at_ms":18446744073709551615,"body":"b"}"#,
            "ready_at_ms",
        ),
        (
            r#"{"state":"delayed","ready_at_ms":1.5,"body":"b"}"#,
            "ready_at_ms",
        ),
        (
            r#"{"state":"delayed","ready_at_ms":-1,"body":"b"}"#,
            "ready_at_ms",
        ),
        (
            r#"{"state":"delayed","ready_at_ms":"soon","body":"b"}"#,
            "ready_at_ms",
        ),
        (r#"{"state":"delayed","body":"b"}"#, "ready_at_ms"),
        (
            r#"{"state":"dead","attempt":99999999999,"body":"b"}"#,
            "attempt",
        ),
        (r#"{"state":"dead","attempt":-3,"body":"b"}"#, "attempt"),
        (
            r#"{"state":"ready","pushed_at_ms":18446744073709551615,"body":"b"}"#,
            "pushed_at_ms",
        ),
    ];
    for (line, field) in bad {
        let input = format!("{good}\n{line}\n");
        let out = s.run_stdin(&["import", "q"], input.as_bytes());
        out.fails(1);
        let err = out.error_line();
        assert!(
            err.contains("line 2") && err.contains(field) && err.contains("nothing imported"),
            "{line}: {err}"
        );
        s.run(&["stats", "q"]).fails(1);
    }
    // At the edges: 4294967295 attempts and a time an hour ahead are kept.
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000;
    let input = format!(
        "{{\"state\":\"delayed\",\"ready_at_ms\":{later},\"body\":\"later\"}}\n{{\"state\":\"dead\",\"attempt\":4294967295,\"body\":\"d\"}}\n"
    );
    let out = s.run_stdin(&["import", "q"], input.as_bytes());
    out.ok();
    assert_counts(&s.stats("q"), &[("delayed", 1), ("dead", 1), ("ready", 0)]);
    let exported = s.run(&["export", "q"]).json();
    let delayed = exported.iter().find(|m| m["state"] == "delayed").unwrap();
    assert_eq!(delayed["ready_at_ms"], later);
    let dead = exported.iter().find(|m| m["state"] == "dead").unwrap();
    assert_eq!(dead["attempt"], 4294967295u64);
}
