//! Proves damage handling: `fsck` passes a healthy spool, a flipped byte in a record (body or
//! header) or a torn tail is reported with file and offset, `pop` skips the damage and keeps
//! delivering the intact neighbours, and `fsck --repair` leaves a sound spool that still holds
//! every intact message (and no acked one).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const A: &str = "first-message-body-aaaaaaaaaaaa";
const B: &str = "second-message-body-bbbbbbbbbbbb";
const C: &str = "third-message-body-cccccccccccc";
const D: &str = "fourth-message-body-dddddddddddd";

/// The segment file holding `body`, and the body's byte offset in it.
fn locate(s: &Spool, q: &str, body: &str) -> (PathBuf, usize) {
    let segs = s.segment_files(q);
    assert!(
        !segs.is_empty(),
        "no .seg file under {}",
        s.queue_dir(q).display()
    );
    for seg in segs {
        let data = fs::read(&seg).unwrap();
        if let Some(pos) = find_bytes(&data, body.as_bytes()) {
            return (seg, pos);
        }
    }
    panic!("body {body:?} not found in any segment of {q}");
}

/// Flips one byte in the middle of `body` inside its segment; returns the segment path.
fn corrupt_body(s: &Spool, q: &str, body: &str) -> PathBuf {
    let (seg, pos) = locate(s, q, body);
    let mut data = fs::read(&seg).unwrap();
    data[pos + body.len() / 2] ^= 0x01;
    fs::write(&seg, &data).unwrap();
    seg
}

/// Damages the header of the record that follows `before` (its body_len becomes huge).
fn corrupt_next_header(s: &Spool, q: &str, before: &str) -> PathBuf {
    let (seg, pos) = locate(s, q, before);
    let mut data = fs::read(&seg).unwrap();
    let head = pos + before.len();
    assert_eq!(
        &data[head..head + 4],
        b"SPMR",
        "record header magic expected at {head}"
    );
    data[head + 7] ^= 0x7f; // high byte of the little-endian u32 body_len
    fs::write(&seg, &data).unwrap();
    seg
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Whether `line` contains `offset N` with N a number.
fn has_offset(line: &str) -> bool {
    line.match_indices("offset ").any(|(i, m)| {
        line[i + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// `fsck ARGS...` must exit 1 with a stdout line naming the segment and an offset.
#[track_caller]
fn fsck_finds(s: &Spool, args: &[&str], seg: &Path) {
    let mut full = vec!["fsck"];
    full.extend_from_slice(args);
    let out = s.run(&full);
    out.code(1);
    let name = file_name(seg);
    let text = out.stdout_str();
    assert!(
        text.lines().any(|l| l.contains(&name) && has_offset(l)),
        "fsck should report {name} with `offset N` on stdout:\n{text}\nstderr: {}",
        out.stderr
    );
}

#[track_caller]
fn repair_then_sound(s: &Spool) {
    s.run(&["fsck", "--repair"]).ok();
    let again = s.run(&["fsck"]);
    again.ok();
}

#[test]
fn fsck_on_a_healthy_spool_exits_0() {
    let s = Spool::new();
    s.push("q", &[A, B, C]);
    s.run(&["push", "q", "--delay", "1h", D]).ok();
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    let m = s.pop_one("q", &[]);
    s.nack("q", &[receipt(&m)], &["--max-attempts", "1"]);
    s.pop_one("q", &[]);
    s.push_stdin("bin", b"\xff\x00\x01binary");
    s.run(&["fsck"]).ok();
    s.run(&["fsck", "q"]).ok();
    s.run(&["fsck", "bin"]).ok();
    s.run(&["retry", "q"]).ok();
    s.run(&["purge", "q"]).ok();
    s.run(&["fsck"]).ok();
    // A repair of a sound spool changes nothing.
    s.run(&["fsck", "--repair"]).ok();
    assert_counts(
        &s.stats("q"),
        &[
            ("pushed", 4),
            ("acked", 1),
            ("leased", 1),
            ("ready", 0),
            ("dead", 0),
        ],
    );
    assert_eq!(body_bytes(&s.pop_one("bin", &[])), b"\xff\x00\x01binary");
}

#[test]
fn pop_reports_a_corrupt_body_and_still_delivers_its_neighbours() {
    let s = Spool::new();
    let ids = s.push("q", &[A, B, C]);
    let seg = corrupt_body(&s, "q", B);
    let out = s.run(&["pop", "q", "--json", "--count", "10"]);
    out.ok();
    let msgs = out.json();
    assert_eq!(
        bodies(&msgs),
        [A, C],
        "the intact neighbours are delivered, the damaged one is not"
    );
    assert_eq!(
        msgs.iter().map(id).collect::<Vec<_>>(),
        [ids[0].as_str(), ids[2].as_str()]
    );
    let name = file_name(&seg);
    assert!(
        out.stderr.lines().all(|l| l.starts_with("spoolmq: ")),
        "stderr lines start with `spoolmq: `: {:?}",
        out.stderr
    );
    assert!(
        out.stderr.lines().any(|l| l.starts_with("spoolmq: q: ")
            && l.contains(&name)
            && has_offset(l)
            && l.contains("skipped")),
        "pop should report `spoolmq: q: {name}: offset N: ...; skipped`, got {:?}",
        out.stderr
    );
    // Nothing panics around the damage and the delivered messages finish normally.
    s.run(&["stats", "q", "--json"]).ok();
    s.ack("q", &[receipt(&msgs[0]), receipt(&msgs[1])]);
    s.pop_nothing("q", &[]);
}

#[test]
fn pop_one_at_a_time_steps_over_a_corrupt_body() {
    let s = Spool::new();
    s.push("q", &[A, B, C]);
    corrupt_body(&s, "q", B);
    assert_eq!(body(&s.pop_one("q", &[])), A);
    assert_eq!(body(&s.pop_one("q", &[])), C);
    s.pop_nothing("q", &[]);
}

#[test]
fn fsck_names_the_damaged_file_and_repair_keeps_every_intact_unacked_message() {
    let s = Spool::new();
    s.push("q", &[A, B, C, D]);
    let first = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&first)]);
    let seg = corrupt_body(&s, "q", C);
    fsck_finds(&s, &[], &seg);
    fsck_finds(&s, &["q"], &seg);
    repair_then_sound(&s);
    // B and D survive; A stays acked; C is gone.
    let msgs = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&msgs), [B, D]);
    assert!(msgs.iter().all(|m| attempt(m) == 1));
    s.pop_nothing("q", &[]);
    assert_counts(&s.stats("q"), &[("acked", 1), ("leased", 2), ("ready", 0)]);
    s.ack("q", &[receipt(&msgs[0]), receipt(&msgs[1])]);
    s.run(&["fsck"]).ok();
}

#[test]
fn fsck_of_another_queue_is_not_affected_by_damage_elsewhere() {
    let s = Spool::new();
    s.push("bad", &[A, B]);
    s.push("good", &[C, D]);
    let seg = corrupt_body(&s, "bad", A);
    s.run(&["fsck", "good"]).ok();
    fsck_finds(&s, &["bad"], &seg);
    fsck_finds(&s, &[], &seg);
}

#[test]
fn fsck_json_exits_1_on_damage_too() {
    let s = Spool::new();
    s.push("q", &[A, B]);
    corrupt_body(&s, "q", B);
    let out = s.run(&["fsck", "--json"]);
    out.code(1);
    assert!(!out.stdout.is_empty(), "the problem is reported");
}

#[test]
fn a_corrupt_record_header_is_skipped_and_the_records_after_it_survive() {
    let s = Spool::new();
    // Same content in two queues: one is read before repair, the other after.
    s.push("pre", &[A, B, C]);
    s.push("post", &[A, B, C]);
    corrupt_next_header(&s, "pre", A);
    let seg = corrupt_next_header(&s, "post", A);

    let out = s.run(&["pop", "pre", "--json", "--count", "10"]);
    out.ok();
    assert_eq!(bodies(&out.json()), [A, C]);
    assert!(
        out.stderr.lines().any(has_offset),
        "damage reported: {:?}",
        out.stderr
    );

    fsck_finds(&s, &["post"], &seg);
    repair_then_sound(&s);
    assert_eq!(bodies(&s.pop_json("post", &["--count", "10"])), [A, C]);
}

#[test]
fn a_torn_tail_is_reported_and_repaired_without_losing_earlier_messages() {
    let s = Spool::new();
    s.push("q", &[A, B, C]);
    let (seg, pos) = locate(&s, "q", C);
    let data = fs::read(&seg).unwrap();
    assert_eq!(
        data.len(),
        pos + C.len(),
        "C is the last record of its segment"
    );
    fs::write(&seg, &data[..pos + C.len() / 2]).unwrap();

    let out = s.run(&["pop", "q", "--json", "--count", "10"]);
    out.ok();
    let msgs = out.json();
    assert_eq!(bodies(&msgs), [A, B]);
    // The damage is reported where it is met, with the file and offset.
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains(&name) && has_offset(l)),
        "damage reported: {:?}",
        out.stderr
    );
    assert_eq!(
        num(&s.stats("q"), "corrupt"),
        1,
        "the cut message is counted as lost"
    );
    s.ack("q", &[receipt(&msgs[0]), receipt(&msgs[1])]);

    // Nothing live is left in the damaged segment: it is reclaimed, and new
    // pushes never follow its torn bytes (they go to a new segment).
    assert!(!seg.exists(), "the drained damaged segment is reclaimed");
    repair_then_sound(&s);
    s.pop_nothing("q", &[]);
    s.push("q", &[D]);
    assert_eq!(bodies(&s.pop_json("q", &["--count", "10"])), [D]);
    s.run(&["fsck"]).ok();
}

#[test]
fn a_push_after_a_torn_header_is_still_delivered() {
    let s = Spool::new();
    s.push("q", &[A, B, C]);
    let (seg, pos) = locate(&s, "q", C);
    let head = pos - 40;
    let data = fs::read(&seg).unwrap();
    assert_eq!(&data[head..head + 4], b"SPMR");
    // A crash in the middle of writing C's header.
    fs::write(&seg, &data[..head + 20]).unwrap();
    s.push("q", &[D]);
    let msgs = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&msgs), [A, B, D]);
    let rs: Vec<&str> = msgs.iter().map(receipt).collect();
    s.ack("q", &rs);
    s.run(&["fsck", "--repair"]).ok();
    s.run(&["fsck"]).ok();
    s.pop_nothing("q", &[]);
    assert_counts(&s.stats("q"), &[("ready", 0), ("leased", 0)]);
}

/// Adds `delta` to the `acked` counter of every valid header in the index (the layout in
/// src/index.rs: counters from offset 88, acked the sixth) and re-seals its CRC: the index
/// then checks out while its counters no longer add up.
fn skew_acked_counter(index: &Path, delta: u64) {
    let mut data = fs::read(index).unwrap();
    for region in 0..4usize {
        let at = region * 64 * 1024;
        if data.len() < at + 184 || &data[at..at + 8] != b"SPMQIDX1" {
            continue;
        }
        let len = u32::from_le_bytes(data[at + 12..at + 16].try_into().unwrap()) as usize;
        let h = &mut data[at..at + len];
        let crc = u32::from_le_bytes(h[len - 4..].try_into().unwrap());
        if crc32fast_like(&h[..len - 4]) != crc {
            continue;
        }
        let acked = u64::from_le_bytes(h[128..136].try_into().unwrap());
        h[128..136].copy_from_slice(&(acked + delta).to_le_bytes());
        let crc = crc32fast_like(&h[..len - 4]);
        h[len - 4..].copy_from_slice(&crc.to_le_bytes());
    }
    fs::write(index, data).unwrap();
}

/// CRC-32 (IEEE), as the index uses.
fn crc32fast_like(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// fs store: the counters in the index are checked to add up (every message pushed is in
/// exactly one state), and `--repair` makes them add up again.
#[test]
fn fsck_finds_counters_that_do_not_add_up_and_repair_fixes_them() {
    let s = Spool::new();
    if not_on_this_store("the index counters are the fs store's") {
        return;
    }
    s.push("q", &[A, B, C, D]);
    let m = s.pop_one("q", &[]);
    s.ack("q", &[receipt(&m)]);
    skew_acked_counter(&s.queue_dir("q").join("index"), 2);
    assert_eq!(num(&s.stats("q"), "acked"), 3, "the skewed index is read");
    let out = s.run(&["fsck"]);
    out.fails(1);
    assert!(
        out.stdout_str().contains("counters do not add up"),
        "fsck names the problem\n{}",
        out.stdout_str()
    );
    s.run(&["fsck", "--repair"]).ok();
    s.run(&["fsck"]).ok();
    assert_counts(
        &s.stats("q"),
        &[("ready", 3), ("acked", 1), ("pushed", 4), ("leased", 0)],
    );
    let got = s.pop_json("q", &["--count", "10"]);
    assert_eq!(bodies(&got), vec![B, C, D]);
}
