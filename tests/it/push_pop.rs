// Proves that what `push` writes is what `pop` delivers: ids, bodies (text, binary, empty,
// huge), `--lines`, `--delay`, `--count`, `--json`, the plain output format, and `--wait`.


use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn push_prints_one_id_per_body() {
    let s = Spool::new();
    let out = s.run(&["push", "q", "one", "two", "three"]);
    out.ok();
    assert!(
        out.stderr.is_empty(),
        "push prints nothing on stderr: {:?}",
        out.stderr
    );
    let ids = out.lines();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        assert!(is_id(id), "id must be 16 lowercase hex chars: {id:?}");
    }
    assert_eq!(
        out.stdout_str(),
        format!("{}\n{}\n{}\n", ids[0], ids[1], ids[2])
    );
}

#[test]
fn push_ids_are_distinct_within_and_across_invocations() {
    let s = Spool::new();
    let mut all = s.push("q", &["a", "b", "c"]);
    all.extend(s.push("q", &["a", "b", "c"]));
    all.extend(s.push("other", &["a"]));
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "ids repeat: {all:?}");
}

#[test]
fn pop_delivers_the_ids_push_printed_in_push_order() {
    let s = Spool::new();
    let ids = s.push("q", &["first", "second", "third"]);
    let msgs = s.pop_json("q", &["--count", "3"]);
    let got: Vec<&str> = msgs.iter().map(id).collect();
    assert_eq!(got, ids);
    assert_eq!(bodies(&msgs), ["first", "second", "third"]);
    for m in &msgs {
        assert_eq!(attempt(m), 1);
    }
    let receipts: HashSet<&str> = msgs.iter().map(receipt).collect();
    assert_eq!(receipts.len(), 3, "each delivery has its own receipt");
}

#[test]
fn push_without_body_reads_stdin_whole_as_one_message() {
    let s = Spool::new();
    let text = "line one\nline two\n\n  indented\tand tabbed\nlast line without newline";
    let id = s.push_stdin("q", text.as_bytes());
    let m = s.pop_one("q", &[]);
    assert_eq!(common::id(&m), id);
    assert_eq!(body(&m), text);
    s.pop_nothing("q", &[]);
}

#[test]
fn push_keeps_the_trailing_newline_of_stdin() {
    let s = Spool::new();
    s.push_stdin("q", b"hello\n");
    assert_eq!(body(&s.pop_one("q", &[])), "hello\n");
}

#[test]
fn push_of_empty_stdin_is_one_empty_message() {
    let s = Spool::new();
    let id = s.push_stdin("q", b"");
    let m = s.pop_one("q", &[]);
    assert_eq!(common::id(&m), id);
    assert_eq!(body(&m), "");
    s.pop_nothing("q", &[]);
}

#[test]
fn push_of_an_empty_argument_is_one_empty_message() {
    let s = Spool::new();
    s.push("q", &["", "x"]);
    let msgs = s.pop_json("q", &["--count", "5"]);
    assert_eq!(bodies(&msgs), ["", "x"]);
}

#[test]
fn push_lines_makes_each_line_one_message_in_order() {
    let s = Spool::new();
    let out = s.run_stdin(&["push", "q", "--lines"], b"alpha\nbeta gamma\n  delta  \n");
    out.ok();
    let ids = out.lines();
    assert_eq!(ids.len(), 3, "one id per line");
    assert!(ids.iter().all(|i| is_id(i)));
    let msgs = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&msgs), ["alpha", "beta gamma", "  delta  "]);
    let got: Vec<&str> = msgs.iter().map(id).collect();
    assert_eq!(got, ids);
}

#[test]
fn push_lines_takes_a_last_line_without_newline() {
    let s = Spool::new();
    let out = s.run_stdin(&["push", "q", "--lines"], b"x\ny");
    out.ok();
    assert_eq!(out.lines().len(), 2);
    assert_eq!(bodies(&s.pop_json("q", &["--count", "10"])), ["x", "y"]);
}

#[test]
fn push_lines_handles_many_lines() {
    let s = Spool::new();
    let input: String = (0..500).map(|i| format!("message {i}\n")).collect();
    let out = s.run_stdin(&["push", "q", "--lines"], input.as_bytes());
    out.ok();
    assert_eq!(out.lines().len(), 500);
    let msgs = s.pop_json("q", &["--count", "1000"]);
    let expected: Vec<String> = (0..500).map(|i| format!("message {i}")).collect();
    assert_eq!(bodies(&msgs), expected);
}

#[test]
fn push_json_prints_an_id_object_per_line() {
    let s = Spool::new();
    let out = s.run(&["push", "q", "a", "b", "--json"]);
    out.ok();
    let objs = out.json();
    assert_eq!(objs.len(), 2);
    let ids: Vec<&str> = objs
        .iter()
        .map(|o| o["id"].as_str().unwrap_or_else(|| panic!("no id in {o}")))
        .collect();
    assert!(ids.iter().all(|i| is_id(i)), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
    let msgs = s.pop_json("q", &["--count", "2"]);
    let got: Vec<&str> = msgs.iter().map(id).collect();
    assert_eq!(got, ids);
}

#[test]
fn push_lines_json_prints_an_id_object_per_line() {
    let s = Spool::new();
    let out = s.run_stdin(&["push", "q", "--lines", "--json"], b"a\nb\nc\n");
    out.ok();
    let objs = out.json();
    assert_eq!(objs.len(), 3);
    assert!(objs.iter().all(|o| o["id"].as_str().is_some_and(is_id)));
}

#[test]
fn push_delay_hides_the_message_until_the_delay_passed() {
    let s = Spool::new();
    let start = Instant::now();
    let out = s.run(&["push", "q", "--delay", "1s", "later"]);
    out.ok();
    let id = out.lines();
    assert_eq!(id.len(), 1);
    s.pop_nothing("q", &[]);
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "machine too slow to check the delay"
    );
    thread::sleep(
        Duration::from_millis(1000).saturating_sub(start.elapsed()) + Duration::from_millis(300),
    );
    let m = s.pop_one("q", &[]);
    assert_eq!(common::id(&m), id[0]);
    assert_eq!(body(&m), "later");
    assert_eq!(attempt(&m), 1);
}

#[test]
fn push_delay_does_not_hold_back_earlier_or_undelayed_messages() {
    let s = Spool::new();
    s.run(&["push", "q", "--delay", "1h", "delayed"]).ok();
    s.push("q", &["now"]);
    let msgs = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&msgs), ["now"]);
}

#[test]
fn pop_count_leases_the_oldest_first_and_no_more_than_asked() {
    let s = Spool::new();
    s.push("q", &["m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(
        bodies(&s.pop_json("q", &["--count", "3"])),
        ["m1", "m2", "m3"]
    );
    assert_eq!(bodies(&s.pop_json("q", &["--count", "10"])), ["m4", "m5"]);
    s.pop_nothing("q", &["--count", "10"]);
}

#[test]
fn pop_takes_one_message_by_default() {
    let s = Spool::new();
    s.push("q", &["m1", "m2"]);
    assert_eq!(bodies(&s.pop_json("q", &[])), ["m1"]);
    assert_eq!(bodies(&s.pop_json("q", &[])), ["m2"]);
}

#[test]
fn pop_order_spans_separate_pushes() {
    let s = Spool::new();
    s.push("q", &["a"]);
    s.push_stdin("q", b"b");
    s.run_stdin(&["push", "q", "--lines"], b"c\nd\n").ok();
    s.push("q", &["e"]);
    assert_eq!(
        bodies(&s.pop_json("q", &["--count", "10"])),
        ["a", "b", "c", "d", "e"]
    );
}

#[test]
fn pop_json_has_id_receipt_attempt_and_body() {
    let s = Spool::new();
    let ids = s.push("q", &["hello world"]);
    let out = s.run(&["pop", "q", "--json"]);
    out.ok();
    let objs = out.json();
    assert_eq!(objs.len(), 1);
    let m = &objs[0];
    check_delivery(m);
    assert_eq!(m["id"], ids[0].as_str());
    assert_eq!(m["attempt"], 1);
    assert_eq!(m["body"], "hello world");
    assert!(m.get("body_base64").is_none());
    assert!(is_receipt(receipt(m)));
}

#[test]
fn pop_json_keeps_unicode_and_nul_in_body() {
    let s = Spool::new();
    let text = "nul\u{0}inside, caf\u{e9}, \u{2713}, \u{1f980}, \"quotes\" and \\back";
    s.push_stdin("q", text.as_bytes());
    assert_eq!(body(&s.pop_one("q", &[])), text);
}

#[test]
fn pop_json_gives_a_non_utf8_body_as_body_base64() {
    let s = Spool::new();
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend((0..=255u8).rev());
    s.push_stdin("q", &bytes);
    let m = s.pop_one("q", &[]);
    assert!(
        m.get("body").is_none(),
        "a non-UTF-8 body must not come as body: {m}"
    );
    assert_eq!(body_bytes(&m), bytes);
}

#[test]
fn pop_json_gives_a_lone_invalid_byte_as_body_base64() {
    let s = Spool::new();
    s.push_stdin("q", b"abc\xffdef");
    let m = s.pop_one("q", &[]);
    assert_eq!(
        m["body_base64"].as_str().map(base64_decode),
        Some(b"abc\xffdef".to_vec())
    );
}

#[test]
fn a_ten_mebibyte_body_round_trips_exactly() {
    let s = Spool::new();
    let size = 10 * 1024 * 1024;
    let mut text = String::with_capacity(size + 64);
    text.push_str("caf\u{e9} \u{1f980}\n");
    let mut i = 0u64;
    while text.len() < size {
        text.push_str(&format!("line {i:09}\t\"x\" \\ /\n"));
        i += 1;
    }
    text.truncate(size);
    assert_eq!(text.len(), size);
    let id = s.push_stdin("big", text.as_bytes());
    assert_eq!(num(&s.stats("big"), "bytes"), size as u64);
    let m = s.pop_one("big", &[]);
    assert_eq!(common::id(&m), id);
    let got = body(&m);
    assert!(
        got.len() == text.len(),
        "length {} != {}",
        got.len(),
        text.len()
    );
    assert!(got == text, "the 10 MiB body came back different");
}

#[test]
fn pop_on_a_queue_that_does_not_exist_exits_3() {
    let s = Spool::new();
    s.pop_nothing("nosuch", &[]);
    s.push("q", &["x"]);
    s.pop_nothing("nosuch", &[]);
}

#[test]
fn pop_on_an_empty_queue_exits_3() {
    let s = Spool::new();
    s.push("q", &["x"]);
    s.pop_one("q", &[]);
    s.pop_nothing("q", &[]);
    let out = s.run(&["pop", "q"]);
    out.code(3).stdout_empty();
}

#[test]
fn pop_plain_prints_tab_separated_fields_with_an_escaped_body() {
    let s = Spool::new();
    let raw: &[u8] = b"tab\there\nnew\\back\rcr\x01ctl\x1besc\xffbin";
    let id = s.push_stdin("q", raw);
    let out = s.run(&["pop", "q"]);
    out.ok();
    let text = out.stdout_str();
    assert!(text.ends_with('\n'));
    let lines = out.lines();
    assert_eq!(
        lines.len(),
        1,
        "the escaped body stays on one line: {text:?}"
    );
    let fields: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(
        fields.len(),
        4,
        "ID<TAB>RECEIPT<TAB>ATTEMPT<TAB>BODY: {text:?}"
    );
    assert_eq!(fields[0], id);
    assert!(is_receipt(fields[1]), "{text:?}");
    assert_eq!(fields[2], "1");
    assert_eq!(
        fields[3].to_lowercase(),
        "tab\\there\\nnew\\\\back\\rcr\\x01ctl\\x1besc\\xffbin"
    );
    // The receipt printed in plain mode is a real receipt.
    s.ack("q", &[fields[1]]);
    assert_eq!(num(&s.stats("q"), "acked"), 1);
}

#[test]
fn pop_plain_prints_one_line_per_message() {
    let s = Spool::new();
    let ids = s.push("q", &["a", "b"]);
    let out = s.run(&["pop", "q", "--count", "5"]);
    out.ok();
    let lines = out.lines();
    assert_eq!(lines.len(), 2);
    for (line, (id, body)) in lines.iter().zip(ids.iter().zip(["a", "b"])) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "{line:?}");
        assert_eq!(f[0], id);
        assert_eq!(f[2], "1");
        assert_eq!(f[3], body);
    }
}

#[test]
fn pop_wait_on_an_empty_queue_exits_3_after_about_that_long() {
    let s = Spool::new();
    s.push("q", &["x"]);
    s.pop_one("q", &[]);
    let start = Instant::now();
    let out = s.run(&["pop", "q", "--wait", "300ms"]);
    let took = start.elapsed();
    out.code(3).stdout_empty();
    assert!(
        took >= Duration::from_millis(280),
        "returned too early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(3000),
        "waited far too long: {took:?}"
    );
}

#[test]
fn pop_wait_on_a_queue_that_does_not_exist_exits_3_after_about_that_long() {
    let s = Spool::new();
    let start = Instant::now();
    let out = s.run(&["pop", "nosuch", "--wait", "300ms"]);
    let took = start.elapsed();
    out.code(3).stdout_empty();
    assert!(
        took >= Duration::from_millis(280),
        "returned too early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(3000),
        "waited far too long: {took:?}"
    );
}

#[test]
fn pop_wait_returns_at_once_when_a_message_is_ready() {
    let s = Spool::new();
    s.push("q", &["ready"]);
    let start = Instant::now();
    let m = s.pop_one("q", &["--wait", "5s"]);
    assert_eq!(body(&m), "ready");
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    // `--wait` without a duration, given last.
    s.push("q", &["again"]);
    let m = s.pop_one("q", &["--wait"]);
    assert_eq!(body(&m), "again");
}

fn receive_while_waiting(s: &Spool, queue: &str) {
    let start = Instant::now();
    let out = thread::scope(|scope| {
        scope.spawn(|| {
            thread::sleep(Duration::from_millis(300));
            let status = s
                .std_cmd()
                .args(["push", queue, "arrived"])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("push could be run");
            assert!(status.success(), "the concurrent push failed: {status:?}");
        });
        s.run(&["pop", queue, "--wait", "5s", "--json"])
    });
    let took = start.elapsed();
    out.ok();
    let msgs = out.json();
    assert_eq!(msgs.len(), 1);
    assert_eq!(body(&msgs[0]), "arrived");
    assert_eq!(attempt(&msgs[0]), 1);
    assert!(
        took >= Duration::from_millis(250),
        "pop returned before the push: {took:?}"
    );
    assert!(
        took < Duration::from_millis(3000),
        "pop noticed the push too late: {took:?}"
    );
}

#[test]
fn pop_wait_receives_a_message_pushed_later_by_another_process() {
    let s = Spool::new();
    s.push("q", &["warmup"]);
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    receive_while_waiting(&s, "q");
}

#[test]
fn pop_wait_receives_the_first_message_of_a_queue_created_while_waiting() {
    let s = Spool::new();
    s.push("other", &["keeps the spool existing"]);
    receive_while_waiting(&s, "q");
}

#[test]
fn push_with_stdin_closed_is_refused_and_an_empty_stdin_is_still_an_empty_message() {
    let s = Spool::new();
    for args in [&["push", "q"][..], &["push", "q", "--lines"]] {
        let out = s.run_redirected("<&-", args);
        out.fails(1).stdout_empty();
        assert!(
            out.error_line().contains("stdin is closed"),
            "{}",
            out.stderr
        );
    }
    let out = s.run_redirected("0>/dev/null", &["push", "q"]);
    out.fails(1);
    assert!(
        out.error_line().contains("not open for reading"),
        "{}",
        out.stderr
    );
    s.run(&["stats", "q"]).fails(1);
    // A readable empty input is an empty message; bodies given as arguments need no stdin.
    s.run_redirected("</dev/null", &["push", "q"]).ok();
    s.run_redirected("<&-", &["push", "q", "arg"]).ok();
    assert_eq!(bodies(&s.pop_json("q", &["--count", "5"])), ["", "arg"]);
}

/// `spoolmq pop ARGS` with stdout the write end of a pipe whose reader
/// reads `lines` lines (none: the read end is closed before pop starts)
/// and then closes it.
fn pop_to_a_reader_that_leaves(s: &Spool, lines: usize, args: &[&str]) -> (Out, Vec<String>) {
    use std::io::BufRead;
    let (reader, writer) = std::io::pipe().unwrap();
    let mut reader = (lines > 0).then_some(std::io::BufReader::new(reader));
    let mut cmd = s.std_cmd();
    cmd.args(["pop"]).args(args).stdout(writer);
    let bg = Bg::spawn_with_stdout(cmd, format!("pop {}", args.join(" ")));
    let mut got = Vec::new();
    if let Some(r) = reader.as_mut() {
        for _ in 0..lines {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            got.push(line);
        }
    }
    drop(reader);
    (bg.wait(RUN_TIMEOUT), got)
}

#[test]
fn pop_whose_output_cannot_be_written_gives_the_messages_back_and_exits_1() {
    let s = Spool::new();
    s.push("q", &["a", "b", "c"]);
    let out = s.run_redirected(">&-", &["pop", "q"]);
    out.fails(1);
    assert!(
        out.error_line().contains("stdout is closed"),
        "{}",
        out.stderr
    );
    assert_counts(&s.stats("q"), &[("ready", 3), ("leased", 0)]);
    assert!(
        std::path::Path::new("/dev/full").exists(),
        "no /dev/full here"
    );
    for args in [
        &["pop", "q"][..],
        &["pop", "q", "--count", "2", "--json"],
        &["pop", "q", "--max-attempts", "1"],
    ] {
        let out = s.run_redirected(">/dev/full", args);
        out.fails(1);
        assert!(out.error_line().contains("given back"), "{}", out.stderr);
        assert_counts(&s.stats("q"), &[("ready", 3), ("leased", 0), ("dead", 0)]);
    }
    let (out, _) = pop_to_a_reader_that_leaves(&s, 0, &["q", "--count", "3"]);
    out.fails(1);
    assert!(out.error_line().contains("given back"), "{}", out.stderr);
    // Not one of those pops counted as a delivery.
    let all = s.pop_json("q", &["--count", "3"]);
    assert_eq!(bodies(&all), ["a", "b", "c"]);
    assert!(all.iter().all(|m| attempt(m) == 1), "{all:?}");
}

#[test]
fn pop_whose_reader_left_after_one_message_keeps_that_one_leased_and_gives_back_the_rest() {
    let s = Spool::new();
    // Bodies larger than a pipe's buffer: the second cannot be written whole
    // before the reader has gone.
    let big = |c: char| c.to_string().repeat(300_000);
    for c in ['a', 'b', 'c'] {
        s.push_stdin("q", big(c).as_bytes());
    }
    let (out, got) = pop_to_a_reader_that_leaves(&s, 1, &["q", "--count", "3", "--json"]);
    out.fails(1);
    assert!(
        out.error_line().contains("2 popped messages not written"),
        "{}",
        out.stderr
    );
    let first: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(body(&first), big('a'));
    assert_counts(&s.stats("q"), &[("ready", 2), ("leased", 1)]);
    // The reader got that message and its receipt: it can ack it.
    s.ack("q", &[receipt(&first)]);
    let rest = s.pop_json("q", &["--count", "3"]);
    assert_eq!(bodies(&rest), [big('b'), big('c')]);
    assert!(rest.iter().all(|m| attempt(m) == 1), "attempts");
}

#[test]
fn pop_of_many_small_messages_whose_reader_leaves_gives_back_exactly_those_not_written() {
    // Small messages are written in chunks of many: those whose last byte
    // reached the pipe stay leased, the rest are given back, none lost.
    let s = Spool::new();
    let n = 20_000;
    let lines: String = (0..n).map(|i| format!("{i:0>99}\n")).collect();
    s.run_stdin(&["push", "q", "--lines"], lines.as_bytes()).ok();
    let (out, got) = pop_to_a_reader_that_leaves(&s, 1000, &["q", "--count", "20000", "--json"]);
    out.fails(1);
    assert!(out.error_line().contains("not written"), "{}", out.stderr);
    let stats = s.stats("q");
    let (ready, leased) = (num(&stats, "ready"), num(&stats, "leased"));
    assert_eq!(ready + leased, n, "{stats}");
    // What the reader got stays leased (the pipe held some more, written
    // whole before the reader left); the rest were given back uncounted.
    assert!(leased >= 1000 && ready > 0, "{stats}");
    for line in &got {
        let m: serde_json::Value = serde_json::from_str(line).unwrap();
        s.ack("q", &[receipt(&m)]);
    }
    let rest = s.pop_json("q", &["--count", "20000"]);
    assert_eq!(rest.len() as u64, ready);
    assert!(rest.iter().all(|m| attempt(m) == 1), "attempts");
    // Given back from one message on: the ready ones are the last pushed.
    let first_back = n - ready;
    assert_eq!(body(&rest[0]), format!("{first_back:0>99}"));
}
