//! Proves that damage to any file of a queue (segments, index, slots, wal, lock, reserve) — flipped
//! bytes, truncation at random offsets, appended garbage — never makes spoolmq panic, hang or
//! serve a wrong body; that every intact message is still delivered (before and after
//! `fsck --repair`), that each damaged record is reported on stderr with file and offset and
//! skipped, that `fsck` finds the damage (exit 1) and that `fsck --repair` leaves a sound spool.
//!
//! Each test builds one template queue (30 messages: acked, leased, dead, nacked and ready, so
//! every file has content), then runs seeded rounds: copy the template to a fresh spool, damage
//! one file, check. Damage is computed exactly from the documented layouts (README, module docs
//! of src/store/fs/record.rs and src/store/fs/index.rs), so for segments the test knows which records are intact.
//!
//! The spool's own files get the same treatment on both stores (`.store`, `.spool.lock`,
//! `.spool.bell`, the key id file of an encrypted queue, `.spool.db` and SQLite's WAL and shm
//! files): truncated, extended, a byte flipped, emptied, deleted. `COVERED` names a test for
//! every kind of file, and `every_file_a_full_workload_leaves_has_a_corruption_case` fails on
//! any file a full workload leaves that is of no kind it names.

use crate::env_fs as common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

const Q: &str = "q";
/// Shorter than the common timeout: a hang fails the round quickly.
const CMD_TIMEOUT: Duration = Duration::from_secs(10);
const SEG_HEADER: u64 = 16;
const REC_HEADER: u64 = 40;
const REGION: u64 = 64 * 1024;
const SLOT: u64 = 64;

/// CRC-32 (IEEE), as the on-disk formats use.
fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Runs spoolmq against `s` with a short timeout (panics on a hang, a signal or "panicked").
fn sm(s: &Spool, args: &[&str]) -> Out {
    let mut cmd = s.cmd();
    cmd.args(args).timeout(CMD_TIMEOUT);
    run(&mut cmd)
}

/// Every stderr line starts with `spoolmq: `.
#[track_caller]
fn stderr_well_formed(out: &Out) {
    for l in out.stderr.lines() {
        assert!(
            l.starts_with("spoolmq: "),
            "`spoolmq {}`: stderr line without the `spoolmq: ` prefix: {l:?}\nstderr: {}",
            out.what,
            out.stderr
        );
    }
}

/// Exit 0, or exit 1 with exactly one `spoolmq: ` line and no stdout.
#[track_caller]
fn ok_or_one_line_failure(out: &Out) -> bool {
    match out.code {
        0 => {
            stderr_well_formed(out);
            true
        }
        1 => {
            out.fails(1);
            true
        }
        c => panic!(
            "`spoolmq {}` exited {c}; expected 0 or 1\nstderr: {}",
            out.what, out.stderr
        ),
    }
}

/// Whether `text` mentions `offset N` for exactly this N.
fn mentions_offset(text: &str, n: u64) -> bool {
    let needle = format!("offset {n}");
    text.match_indices(&needle).any(|(i, m)| {
        !text[i + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

#[derive(Clone, Debug, PartialEq)]
enum St {
    Acked,
    Leased(String),
    Dead,
    Ready,
}

/// The template queue and everything the test knows about it.
struct Fixture {
    template: Spool,
    /// Indexed by seq - 1.
    bodies: Vec<Vec<u8>>,
    ids: Vec<String>,
    states: Vec<St>,
    /// (offset, length) of each message's record in the one segment.
    records: Vec<(u64, u64)>,
    seg_name: String,
    stats: Value,
    peek: Vec<String>,
    /// (old id, new id) of messages served under an id other than the one push printed.
    renamed: RefCell<BTreeSet<(String, String)>>,
}

/// What a round may tolerate.
#[derive(Clone, Debug, Default)]
struct Allow {
    /// Messages whose record was damaged: they must never be served.
    lost: BTreeSet<usize>,
    /// Acked messages that may come back (their slot was damaged: at-least-once).
    acked_may_return: BTreeSet<usize>,
    /// Every acked message may come back.
    any_acked_may_return: bool,
    /// Exact bookkeeping expected (retry counts, receipts still valid).
    strict: bool,
}

impl Fixture {
    fn build(seed: u64) -> Fixture {
        let mut rng = Rng::new(seed);
        let template = Spool::new();
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        let text_body = |rng: &mut Rng, i: usize| -> Vec<u8> {
            let len = rng.range(0, 180) as usize;
            let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 _-";
            let mut b = format!("m{i:03}:").into_bytes();
            b.extend((0..len).map(|_| alphabet[rng.below(alphabet.len() as u64) as usize]));
            b
        };
        // Three pushes of text bodies and two binary bodies (NULs, not UTF-8) through stdin.
        for (count, binary) in [(10, true), (10, true), (8, false)] {
            let batch: Vec<Vec<u8>> = (0..count)
                .map(|k| text_body(&mut rng, bodies.len() + k))
                .collect();
            let args: Vec<&str> = batch
                .iter()
                .map(|b| std::str::from_utf8(b).unwrap())
                .collect();
            ids.extend(template.push(Q, &args));
            bodies.extend(batch);
            if binary {
                let mut b = vec![0u8, 0xff, 0xfe, b'\n', 0];
                b.extend(format!("bin{:03}", bodies.len()).bytes());
                b.extend(rng.garbage(1, 300));
                while find_bytes(&b, b"SPMR").is_some() {
                    b = rng.bytes(64);
                }
                ids.push(template.push_stdin(Q, &b));
                bodies.push(b);
            }
        }
        assert_eq!(bodies.len(), 30);
        let mut states = vec![St::Ready; 30];
        let idx = |ids: &[String], m: &Value| ids.iter().position(|i| i == id(m)).unwrap();
        // 1-5 acked.
        let msgs = template.pop_json(Q, &["--count", "5"]);
        let rs: Vec<&str> = msgs.iter().map(receipt).collect();
        template.ack(Q, &rs);
        for m in &msgs {
            states[idx(&ids, m)] = St::Acked;
        }
        // 6-9 leased for an hour.
        for m in template.pop_json(Q, &["--count", "4", "--lease", "1h"]) {
            states[idx(&ids, &m)] = St::Leased(receipt(&m).to_string());
        }
        // 10-12 dead.
        let msgs = template.pop_json(Q, &["--count", "3", "--max-attempts", "1"]);
        let rs: Vec<&str> = msgs.iter().map(receipt).collect();
        template.nack(Q, &rs, &["--max-attempts", "1", "--reason", "gave up"]);
        for m in &msgs {
            states[idx(&ids, m)] = St::Dead;
        }
        // 13-14 delivered once and given back, with a reason (the failures file); 15-30 never
        // delivered.
        let msgs = template.pop_json(Q, &["--count", "2"]);
        let rs: Vec<&str> = msgs.iter().map(receipt).collect();
        template.nack(Q, &rs, &["--reason", "flaky upstream"]);

        let segs = template.segment_files(Q);
        assert_eq!(segs.len(), 1, "one segment expected: {segs:?}");
        let data = fs::read(&segs[0]).unwrap();
        let mut records = Vec::new();
        let mut at = SEG_HEADER;
        for (i, b) in bodies.iter().enumerate() {
            let a = at as usize;
            assert_eq!(&data[a..a + 4], b"SPMR", "record {i} at {at}");
            assert_eq!(u32_at(&data, a + 4) as usize, b.len());
            assert_eq!(u64_at(&data, a + 8), i as u64 + 1, "seq of record at {at}");
            assert_eq!(&data[a + 40..a + 40 + b.len()], &b[..]);
            let len = REC_HEADER + b.len() as u64;
            records.push((at, len));
            at += len;
        }
        assert_eq!(
            at,
            data.len() as u64,
            "the segment holds exactly the 30 records"
        );
        let dir = template.queue_dir(Q);
        assert!(
            fs::metadata(dir.join("wal")).unwrap().len() > 0,
            "the WAL has records"
        );
        assert_eq!(
            fs::metadata(dir.join("slots")).unwrap().len(),
            31 * SLOT,
            "slots up to seq 30"
        );
        template.run(&["fsck"]).ok();
        let stats = template.stats(Q);
        assert_counts(
            &stats,
            &[
                ("ready", 18),
                ("leased", 4),
                ("dead", 3),
                ("acked", 5),
                ("pushed", 30),
            ],
        );
        let peek: Vec<String> = template
            .peek_json(Q, &["--count", "1000"])
            .iter()
            .map(|m| id(m).to_string())
            .collect();
        let f = Fixture {
            seg_name: segs[0].file_name().unwrap().to_string_lossy().into_owned(),
            template,
            bodies,
            ids,
            states,
            records,
            stats,
            peek,
            renamed: RefCell::new(BTreeSet::new()),
        };
        assert_eq!(f.peek, f.ready_ids(&BTreeSet::new()));
        f
    }

    /// A fresh spool holding a copy of the template queue.
    fn copy(&self) -> Spool {
        self.renamed.borrow_mut().clear();
        let s = Spool::new();
        let from = self.template.queue_dir(Q);
        let to = s.queue_dir(Q);
        fs::create_dir_all(&to).unwrap();
        for e in fs::read_dir(&from).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
            }
        }
        s
    }

    fn file(&self, s: &Spool, name: &str) -> PathBuf {
        if name == "seg" {
            s.queue_dir(Q).join(&self.seg_name)
        } else {
            s.queue_dir(Q).join(name)
        }
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|i| i == id)
    }

    /// Ids of the ready messages not in `lost`, oldest first (what peek/pop must show).
    fn ready_ids(&self, lost: &BTreeSet<usize>) -> Vec<String> {
        (0..30)
            .filter(|i| self.states[*i] == St::Ready && !lost.contains(i))
            .map(|i| self.ids[i].clone())
            .collect()
    }

    /// Every served message is one that was pushed, with exactly the body pushed under its id;
    /// damaged records are never served. Returns the indexes served.
    #[track_caller]
    fn check_served(&self, msgs: &[Value], allow: &Allow, what: &str) -> Vec<usize> {
        let mut out = Vec::new();
        for m in msgs {
            let i = match self.index_of(id(m)) {
                Some(i) => i,
                None => {
                    // A pushed body under another id: remember it, fail at the end of the
                    // round (after the other checks) in `check_ids_kept`.
                    let b = body_bytes(m);
                    let i = self.bodies.iter().position(|x| *x == b).unwrap_or_else(|| {
                        panic!("{what}: served a message that was never pushed: {m}")
                    });
                    self.renamed
                        .borrow_mut()
                        .insert((self.ids[i].clone(), id(m).to_string()));
                    i
                }
            };
            assert_eq!(
                body_bytes(m),
                self.bodies[i],
                "{what}: message {} served with a wrong body",
                self.ids[i]
            );
            assert!(
                !allow.lost.contains(&i),
                "{what}: message {} (record damaged) was served",
                self.ids[i]
            );
            out.push(i);
        }
        out
    }

    /// `peek` and `pop` before repair: exactly the intact ready messages, in order, each
    /// damaged ready record reported on stderr with the segment's name and its offset. The
    /// popped messages are given back with `nack`.
    #[track_caller]
    fn check_before_repair_exact(&self, s: &Spool, allow: &Allow, ctx: &str) {
        let expect = self.ready_ids(&allow.lost);
        for cmd in ["peek", "pop"] {
            let mut args = vec![cmd, Q, "--json", "--count", "1000"];
            if cmd == "pop" {
                args.extend(["--lease", "1h"]);
            }
            let out = sm(s, &args);
            if cmd == "pop" && expect.is_empty() {
                out.code(3).stdout_empty();
            } else {
                out.ok();
            }
            stderr_well_formed(&out);
            let msgs = out.json();
            self.check_served(&msgs, allow, &format!("{ctx}: {cmd} before repair"));
            let got: Vec<&str> = msgs.iter().map(id).collect();
            assert_eq!(
                got, expect,
                "{ctx}: {cmd} before repair must deliver exactly the intact ready messages\nstderr: {}",
                out.stderr
            );
            for &i in &allow.lost {
                if self.states[i] != St::Ready {
                    continue;
                }
                let off = self.records[i].0;
                assert!(
                    out.stderr
                        .lines()
                        .any(|l| l.contains(&self.seg_name) && mentions_offset(l, off)),
                    "{ctx}: {cmd} must report the damaged record of message {} at offset {off} of {}\nstderr: {}",
                    self.ids[i],
                    self.seg_name,
                    out.stderr
                );
            }
            if cmd == "pop" && !msgs.is_empty() {
                let mut args = vec!["nack", Q];
                args.extend(msgs.iter().map(receipt));
                sm(s, &args).ok().stdout_empty();
            }
        }
    }

    /// Before repair, with weaker promises: each command exits 0 (serving only right bodies) or
    /// 1 with one line. Popped messages are given back.
    #[track_caller]
    fn check_before_repair_weak(&self, s: &Spool, allow: &Allow, ctx: &str) {
        for args in [
            vec!["stats", Q, "--json"],
            vec!["list"],
            vec!["peek", Q, "--json", "--count", "1000"],
        ] {
            let out = sm(s, &args);
            ok_or_one_line_failure(&out);
            if out.code == 0 && args[0] == "peek" {
                self.check_served(&out.json(), allow, &format!("{ctx}: peek before repair"));
            }
        }
        let out = sm(s, &["pop", Q, "--json", "--count", "1000", "--lease", "1h"]);
        match out.code {
            3 => out.stdout_empty(),
            _ => {
                ok_or_one_line_failure(&out);
                &out
            }
        };
        if out.code == 0 {
            let msgs = out.json();
            self.check_served(&msgs, allow, &format!("{ctx}: pop before repair"));
            let mut args = vec!["nack", Q];
            args.extend(msgs.iter().map(receipt));
            // A pop that worked leaves a queue whose leases can be given back.
            sm(s, &args).ok().stdout_empty();
        }
    }

    /// After repair (or with no repair needed): the spool is sound, every message that must
    /// survive is delivered exactly once with its body, later pushes work.
    #[track_caller]
    fn check_all_delivered(&self, s: &Spool, allow: &Allow, ctx: &str) {
        let retry = sm(s, &["retry", Q]);
        retry.ok();
        if allow.strict {
            let dead_intact = (0..30)
                .filter(|i| self.states[*i] == St::Dead && !allow.lost.contains(i))
                .count();
            assert_eq!(
                retry.stdout_str().trim(),
                dead_intact.to_string(),
                "{ctx}: retry moves every intact dead letter"
            );
        }
        for (i, st) in self.states.iter().enumerate() {
            if let St::Leased(r) = st {
                let out = sm(s, &["nack", Q, r]);
                out.stdout_empty();
                if allow.strict && !allow.lost.contains(&i) {
                    assert_eq!(
                        out.code, 0,
                        "{ctx}: the receipt of intact leased message {} still works\nstderr: {}",
                        self.ids[i], out.stderr
                    );
                } else if out.code != 0 {
                    out.fails(4);
                }
            }
        }
        let mut served: BTreeMap<usize, u32> = BTreeMap::new();
        for round in 0.. {
            assert!(round < 5, "{ctx}: pop keeps delivering");
            let out = sm(s, &["pop", Q, "--json", "--count", "1000", "--lease", "1h"]);
            if out.code == 3 {
                out.stdout_empty();
                break;
            }
            out.ok();
            stderr_well_formed(&out);
            for i in self.check_served(&out.json(), allow, &format!("{ctx}: pop after repair")) {
                *served.entry(i).or_default() += 1;
            }
        }
        for (i, n) in &served {
            assert_eq!(
                *n, 1,
                "{ctx}: message {} delivered twice while leased",
                self.ids[*i]
            );
        }
        self.check_ids_kept(ctx);
        for i in 0..30 {
            let got = served.contains_key(&i);
            match (&self.states[i], allow.lost.contains(&i)) {
                (St::Acked, _) => assert!(
                    !got || allow.any_acked_may_return || allow.acked_may_return.contains(&i),
                    "{ctx}: acked message {} was delivered again",
                    self.ids[i]
                ),
                (_, true) => {}
                (st, false) => assert!(
                    got,
                    "{ctx}: intact {st:?} message {} was not delivered; served: {:?}",
                    self.ids[i],
                    served.keys().map(|i| &self.ids[*i]).collect::<Vec<_>>()
                ),
            }
        }
        // Later pushes work and the spool stays sound.
        let fresh = s.push(Q, &["pushed-after-the-damage"]);
        let m = s.pop_one(Q, &[]);
        assert_eq!(
            (id(&m), body_bytes(&m)),
            (fresh[0].as_str(), b"pushed-after-the-damage".to_vec())
        );
        s.ack(Q, &[receipt(&m)]);
        let fsck = sm(s, &["fsck"]);
        assert_eq!(
            fsck.code,
            0,
            "{ctx}: fsck at the end\n{}\n{}",
            fsck.stdout_str(),
            fsck.stderr
        );
    }

    /// Every message was served under the id `push` printed for it.
    #[track_caller]
    fn check_ids_kept(&self, ctx: &str) {
        let renamed = self.renamed.borrow();
        assert!(
            renamed.is_empty(),
            "{ctx}: messages are served under ids other than the ones push printed \
             (old id -> new id): {:?}",
            renamed.iter().take(5).collect::<Vec<_>>()
        );
    }

    /// `fsck --repair` exits 0 and a following `fsck` exits 0.
    #[track_caller]
    fn repair(&self, s: &Spool, ctx: &str) {
        let out = sm(s, &["fsck", "--repair"]);
        assert_eq!(
            out.code,
            0,
            "{ctx}: fsck --repair must repair everything\nstdout: {}\nstderr: {}",
            out.stdout_str(),
            out.stderr
        );
        stderr_well_formed(&out);
        let again = sm(s, &["fsck"]);
        assert_eq!(
            again.code,
            0,
            "{ctx}: fsck after fsck --repair must find a sound spool\nstdout: {}\nstderr: {}",
            again.stdout_str(),
            again.stderr
        );
    }

    /// No damage visible at all: fsck passes, stats and peek are as in the template, nothing
    /// on stderr, every message where it was.
    #[track_caller]
    fn check_transparent(&self, s: &Spool, ctx: &str) {
        self.check_transparent_to_messages(s, false, ctx)
    }

    /// Every message as before. With `fsck_may_report`, `fsck` may find the damage (exit 1,
    /// naming the file); `fsck --repair` must then fix it without changing any message.
    #[track_caller]
    fn check_transparent_to_messages(&self, s: &Spool, fsck_may_report: bool, ctx: &str) {
        let fsck = sm(s, &["fsck"]);
        if fsck_may_report && fsck.code == 1 {
            stderr_well_formed(&fsck);
            self.repair(s, ctx);
        }
        assert_eq!(
            fsck.code,
            if fsck_may_report && fsck.code == 1 {
                1
            } else {
                0
            },
            "{ctx}: fsck must pass\nstdout: {}\nstderr: {}",
            fsck.stdout_str(),
            fsck.stderr
        );
        let stats = sm(s, &["stats", Q, "--json"]);
        stats.ok();
        let v = &stats.json()[0];
        for k in [
            "ready", "leased", "delayed", "dead", "pushed", "acked", "corrupt", "bytes",
        ] {
            assert_eq!(
                v[k], self.stats[k],
                "{ctx}: stats field {k}: {v} vs {}",
                self.stats
            );
        }
        let peek = sm(s, &["peek", Q, "--json", "--count", "1000"]);
        peek.ok();
        // Read-only commands write nothing (src/base/overlay.rs): an unfinished
        // change at the end of the WAL is cut by the next writing command,
        // and until then each command says what it will cut. Nothing else.
        let other: Vec<&str> = peek
            .stderr
            .lines()
            .filter(|l| !l.contains("of an unfinished change"))
            .collect();
        assert!(other.is_empty(), "{ctx}: peek reports nothing: {other:?}");
        let got: Vec<String> = peek.json().iter().map(|m| id(m).to_string()).collect();
        assert_eq!(
            got, self.peek,
            "{ctx}: peek shows what it showed before the damage"
        );
        self.check_served(&peek.json(), &Allow::default(), ctx);
        self.check_all_delivered(
            s,
            &Allow {
                strict: true,
                ..Allow::default()
            },
            ctx,
        );
    }

    /// Indexes of messages whose record overlaps byte range `from..to` of the segment.
    fn records_touching(&self, from: u64, to: u64) -> BTreeSet<usize> {
        (0..30)
            .filter(|&i| {
                let (off, len) = self.records[i];
                off < to && from < off + len
            })
            .collect()
    }
}

fn flip(path: &Path, positions: &[u64], rng: &mut Rng) {
    let mut data = fs::read(path).unwrap();
    for &p in positions {
        data[p as usize] ^= rng.byte_nonzero();
    }
    fs::write(path, data).unwrap();
}

fn truncate(path: &Path, len: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// Runs `n` rounds, each to its end even when an earlier one failed, then fails with a line
/// per failed round (the full message of each is printed above by the panic hook).
fn rounds(n: usize, mut round: impl FnMut(usize)) {
    let mut failed = Vec::new();
    for r in 0..n {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| round(r))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let short: Vec<&str> = msg.lines().take(3).collect();
            failed.push(format!("round {r}: {}", short.join(" | ")));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} rounds failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// `fsck` must exit 1 and name `file` on stdout.
#[track_caller]
fn fsck_finds(s: &Spool, file: &str, ctx: &str) -> String {
    let out = sm(s, &["fsck"]);
    let text = out.stdout_str();
    assert_eq!(
        out.code, 1,
        "{ctx}: fsck must find the damage\nstdout: {text}\nstderr: {}",
        out.stderr
    );
    assert!(
        text.lines().any(|l| l.contains(file)),
        "{ctx}: fsck must name {file}\nstdout: {text}"
    );
    text
}

// ---------------------------------------------------------------- segments

/// Segment damage: everything about the outcome is known exactly.
/// `present`: the segment's length after the damage (records wholly past it are gone).
fn segment_round(
    f: &Fixture,
    s: &Spool,
    lost: BTreeSet<usize>,
    header_damaged: bool,
    present: u64,
    ctx: &str,
) {
    let allow = Allow {
        lost: lost.clone(),
        strict: true,
        ..Allow::default()
    };
    if !lost.is_empty() || header_damaged {
        // Records cut away whole (a cut at a record boundary) leave nothing to see in the
        // segment: their slots are what points at the missing data.
        let only_whole_records_gone =
            !header_damaged && lost.iter().all(|&i| f.records[i].0 >= present);
        let named = if only_whole_records_gone {
            "slots"
        } else {
            &f.seg_name
        };
        let text = fsck_finds(s, named, ctx);
        // Every damaged record that follows an intact one is reported at its own offset.
        // A live message whose record is gone altogether is reported at its slot.
        for &i in &lost {
            let off = f.records[i].0;
            if off >= present {
                if f.states[i] != St::Acked {
                    let slot = (i as u64 + 1) * SLOT;
                    assert!(
                        text.lines()
                            .any(|l| l.contains("slots") && mentions_offset(l, slot)),
                        "{ctx}: fsck must report the slot of message {} (offset {slot}), whose record is gone\n{text}",
                        f.ids[i]
                    );
                }
            } else if i == 0 || !lost.contains(&(i - 1)) {
                assert!(
                    text.lines()
                        .any(|l| l.contains(&f.seg_name) && mentions_offset(l, off)),
                    "{ctx}: fsck must report offset {off} (message {}) of {}\n{text}",
                    f.ids[i],
                    f.seg_name
                );
            }
        }
        if header_damaged {
            assert!(
                text.lines()
                    .any(|l| l.contains(&f.seg_name) && mentions_offset(l, 0)),
                "{ctx}: fsck must report the damaged segment header at offset 0\n{text}"
            );
        }
    }
    f.check_before_repair_exact(s, &allow, ctx);
    f.repair(s, ctx);
    f.check_all_delivered(s, &allow, ctx);
}

#[test]
fn flipped_bytes_in_a_segment_skip_exactly_the_damaged_records_and_repair_keeps_the_rest() {
    let f = Fixture::build(1);
    let mut rng = Rng::new(101);
    let seg_len = f.records[29].0 + f.records[29].1;
    rounds(16, |round| {
        let s = f.copy();
        let n = rng.range(1, 3);
        let positions: Vec<u64> = (0..n)
            .map(|_| match round % 4 {
                // Anywhere, the segment header included.
                0 => rng.below(seg_len),
                // In the segment header.
                1 if rng.below(2) == 0 => rng.below(SEG_HEADER),
                // In some record header.
                1 | 2 => {
                    let (off, _) = f.records[rng.below(30) as usize];
                    off + rng.below(REC_HEADER)
                }
                // In some body (or header, for an empty body).
                _ => {
                    let (off, len) = f.records[rng.below(30) as usize];
                    off + REC_HEADER.min(len - 1) + rng.below(len - REC_HEADER.min(len - 1))
                }
            })
            .collect();
        let mut lost = BTreeSet::new();
        for &p in &positions {
            lost.extend(f.records_touching(p, p + 1));
        }
        let header_damaged = positions.iter().any(|&p| p < SEG_HEADER);
        flip(&f.file(&s, "seg"), &positions, &mut rng);
        let ctx = format!("segment flip round {round} at {positions:?} (damaged {lost:?})");
        segment_round(&f, &s, lost, header_damaged, u64::MAX, &ctx);
    });
}

#[test]
fn a_segment_truncated_at_a_random_offset_keeps_every_record_before_the_cut() {
    let f = Fixture::build(2);
    let mut rng = Rng::new(202);
    let seg_len = f.records[29].0 + f.records[29].1;
    rounds(16, |round| {
        let s = f.copy();
        let cut = match round {
            0 => 0,
            1 => rng.below(SEG_HEADER),
            // Exactly at a record boundary.
            2 | 3 => f.records[rng.range(5, 29) as usize].0,
            _ => rng.range(SEG_HEADER, seg_len - 1),
        };
        truncate(&f.file(&s, "seg"), cut);
        let lost = f.records_touching(cut, u64::MAX);
        let ctx = format!("segment truncated at {cut} of {seg_len} (damaged {lost:?})");
        segment_round(&f, &s, lost, cut < SEG_HEADER, cut, &ctx);
    });
}

#[test]
fn garbage_appended_to_a_segment_loses_no_record() {
    let f = Fixture::build(3);
    let mut rng = Rng::new(303);
    rounds(10, |round| {
        let s = f.copy();
        let n = rng.range(1, 400) as usize;
        let mut garbage = rng.bytes(n);
        if round % 3 == 1 {
            // Garbage that starts like a record header.
            garbage.splice(0..0, b"SPMR".iter().copied());
        }
        append(&f.file(&s, "seg"), &garbage);
        let ctx = format!(
            "segment round {round}: {} garbage bytes appended",
            garbage.len()
        );
        // The garbage is past every record. fsck either reports it (exit 1) or its recovery
        // cuts it off as the torn tail of an unfinished push and says so, with the offset.
        let seg_len = f.records[29].0 + f.records[29].1;
        let out = sm(&s, &["fsck"]);
        stderr_well_formed(&out);
        let in_report = out.code == 1 && out.stdout_str().lines().any(|l| l.contains(&f.seg_name));
        let as_torn_tail = out.code == 0
            && out
                .stderr
                .lines()
                .any(|l| l.contains(&f.seg_name) && mentions_offset(l, seg_len));
        assert!(
            in_report || as_torn_tail,
            "{ctx}: fsck must report the garbage (or say it cut it at offset {seg_len})\nexit {}\nstdout: {}\nstderr: {}",
            out.code,
            out.stdout_str(),
            out.stderr
        );
        segment_round(&f, &s, BTreeSet::new(), false, u64::MAX, &ctx);
    });
}

#[test]
fn a_copy_of_an_old_record_appended_to_a_segment_is_not_delivered_twice() {
    let f = Fixture::build(4);
    let sources = [0usize, 7, 15, 29];
    rounds(sources.len(), |round| {
        let src = sources[round];
        let s = f.copy();
        let seg = f.file(&s, "seg");
        let data = fs::read(&seg).unwrap();
        let (off, len) = f.records[src];
        append(&seg, &data[off as usize..(off + len) as usize]);
        let ctx = format!(
            "round {round}: record of message {} appended again",
            f.ids[src]
        );
        let pre = sm(&s, &["fsck"]);
        assert!(pre.code <= 1, "{ctx}: fsck exits 0 or 1");
        f.check_before_repair_exact(&s, &Allow::default(), &ctx);
        f.repair(&s, &ctx);
        f.check_all_delivered(
            &s,
            &Allow {
                strict: true,
                ..Allow::default()
            },
            &ctx,
        );
    });
}

/// The cut makes what follows it lost; a message pushed after the cut must survive as any
/// other message that `push` reported durable, before and after repair.
#[test]
fn a_message_pushed_after_a_segment_was_truncated_survives_repair() {
    let f = Fixture::build(5);
    let mut rng = Rng::new(505);
    let (last_off, last_len) = f.records[29];
    let cuts = [
        // Inside the last record's header, inside its body, at its start.
        last_off + rng.range(1, REC_HEADER - 1),
        last_off
            + REC_HEADER
            + rng
                .below(last_len - REC_HEADER)
                .max(1)
                .min(last_len - REC_HEADER - 1),
        last_off,
        // Inside a body further back.
        f.records[20].0 + REC_HEADER + 1,
    ];
    rounds(cuts.len(), |round| {
        let cut = cuts[round];
        let s = f.copy();
        truncate(&f.file(&s, "seg"), cut);
        let ctx = format!("segment truncated at {cut}, then a push");
        let new_id = s.push(Q, &["pushed-after-the-cut"])[0].clone();
        let peek = sm(&s, &["peek", Q, "--json", "--count", "1000"]);
        peek.ok();
        assert!(
            peek.json().iter().any(|m| id(m) == new_id),
            "{ctx}: the new message is visible before repair"
        );
        f.repair(&s, &ctx);
        let out = sm(&s, &["pop", Q, "--json", "--count", "1000"]);
        out.ok();
        let msgs = out.json();
        let mine: Vec<&Value> = msgs.iter().filter(|m| id(m) == new_id).collect();
        assert_eq!(
            mine.len(),
            1,
            "{ctx}: the message pushed (exit 0) after the damage must survive `fsck --repair`; delivered: {:?}",
            msgs.iter().map(id).collect::<Vec<_>>()
        );
        assert_eq!(body_bytes(mine[0]), b"pushed-after-the-cut");
    });
}

/// The segment header holds the queue's salt (ids are salt + seq), kept so that ids survive
/// the loss of the index. Damage to it must be found while the index can still fix it, or a
/// later rebuild silently gives every message a new id.
#[test]
fn a_damaged_salt_in_a_segment_header_is_found_before_it_can_change_ids() {
    let f = Fixture::build(20);
    let mut rng = Rng::new(2020);
    rounds(4, |round| {
        let s = f.copy();
        let at = 8 + rng.below(8);
        flip(&f.file(&s, "seg"), &[at], &mut rng);
        let ctx = format!("round {round}: segment header byte {at} flipped");
        let text = fsck_finds(&s, &f.seg_name, &ctx);
        assert!(
            text.lines()
                .any(|l| l.contains(&f.seg_name) && mentions_offset(l, 0)),
            "{ctx}: reported at offset 0\n{text}"
        );
        f.repair(&s, &ctx);
        // Now lose the whole index: the rebuilt queue keeps every id.
        truncate(&f.file(&s, "index"), 0);
        f.repair(&s, &format!("{ctx}, then the index lost"));
        f.check_all_delivered(&s, &Allow::default(), &ctx);
    });
}

// ---------------------------------------------------------------- index

fn header_len(f: &Fixture) -> u64 {
    let data = fs::read(f.template.queue_dir(Q).join("index")).unwrap();
    let len = u32_at(&data, 12) as u64;
    assert!((180..4096).contains(&len), "header length {len}");
    len
}

/// Makes the live headers look written before a reboot (another boot id, CRC re-sealed), so
/// the next command recovers from the checkpoint, as after a machine crash.
fn simulate_reboot(index: &Path) {
    let mut data = fs::read(index).unwrap();
    for region in 0..2 {
        let at = (region * REGION) as usize;
        if data.len() < at + 16 || &data[at..at + 8] != b"SPMQIDX1" {
            continue;
        }
        let len = u32_at(&data, at + 12) as usize;
        if len < 184 || at + len > data.len() {
            continue;
        }
        let h = &mut data[at..at + len];
        if crc32(&h[..len - 4]) != u32_at(h, len - 4) {
            continue;
        }
        h[40..56].copy_from_slice(&[0xee; 16]);
        let crc = crc32(&h[..len - 4]);
        h[len - 4..].copy_from_slice(&crc.to_le_bytes());
    }
    fs::write(index, data).unwrap();
}

#[test]
fn damage_to_one_live_header_copy_alone_is_fully_transparent() {
    let f = Fixture::build(6);
    let hlen = header_len(&f);
    let mut rng = Rng::new(606);
    rounds(8, |round| {
        let s = f.copy();
        let index = f.file(&s, "index");
        let region = (round % 2) as u64;
        let at = region * REGION;
        let what = match round / 2 {
            0 => {
                let p: Vec<u64> = (0..rng.range(1, 3)).map(|_| at + rng.below(hlen)).collect();
                flip(&index, &p, &mut rng);
                format!("flipped {p:?}")
            }
            1 => {
                let mut data = fs::read(&index).unwrap();
                let from = (at + rng.below(hlen)) as usize;
                let g = rng.bytes(hlen as usize);
                data[from..from + g.len()].copy_from_slice(&g);
                fs::write(&index, data).unwrap();
                format!("garbage from {from}")
            }
            2 => {
                let mut data = fs::read(&index).unwrap();
                data[at as usize..(at + REGION) as usize].fill(0);
                fs::write(&index, data).unwrap();
                "zeroed".to_string()
            }
            _ => {
                let mut data = fs::read(&index).unwrap();
                data[at as usize..(at + 8) as usize].copy_from_slice(b"NOTANIDX");
                fs::write(&index, data).unwrap();
                "bad magic".to_string()
            }
        };
        f.check_transparent(&s, &format!("live header region {region} {what}"));
    });
}

#[test]
fn a_reboot_with_intact_files_is_transparent() {
    // Checks the test's own reboot simulation against an undamaged queue.
    let f = Fixture::build(7);
    let s = f.copy();
    simulate_reboot(&f.file(&s, "index"));
    f.check_transparent(&s, "reboot without damage");
}

#[test]
fn a_damaged_checkpoint_found_after_a_reboot_is_repaired_without_losing_messages() {
    let f = Fixture::build(8);
    let hlen = header_len(&f);
    let mut rng = Rng::new(808);
    rounds(4, |round| {
        let s = f.copy();
        let index = f.file(&s, "index");
        let p: Vec<u64> = (0..rng.range(1, 3))
            .map(|_| 2 * REGION + rng.below(hlen))
            .collect();
        flip(&index, &p, &mut rng);
        if round % 2 == 1 {
            // The other checkpoint copy too (it was never written: zeros).
            let q: Vec<u64> = (0..3).map(|_| 3 * REGION + rng.below(hlen)).collect();
            flip(&index, &q, &mut rng);
        }
        simulate_reboot(&index);
        let ctx = format!("round {round}: checkpoint flipped at {p:?}, then a reboot");
        let allow = Allow::default();
        f.check_before_repair_weak(&s, &allow, &ctx);
        f.repair(&s, &ctx);
        f.check_all_delivered(&s, &allow, &ctx);
    });
}

/// Index damage: states may be rebuilt; nothing not acked is lost after repair.
fn weak_round(f: &Fixture, s: &Spool, allow: &Allow, ctx: &str) {
    f.check_before_repair_weak(s, allow, ctx);
    f.repair(s, ctx);
    f.check_all_delivered(s, allow, ctx);
}

#[test]
fn flipped_bytes_in_the_index_never_lose_a_message_after_repair() {
    let f = Fixture::build(9);
    let hlen = header_len(&f);
    let mut rng = Rng::new(909);
    rounds(12, |round| {
        let s = f.copy();
        let index = f.file(&s, "index");
        // Each position in the used part of a random region.
        let p: Vec<u64> = (0..rng.range(1, 6))
            .map(|_| rng.below(4) * REGION + rng.below(hlen))
            .collect();
        flip(&index, &p, &mut rng);
        weak_round(
            &f,
            &s,
            &Allow::default(),
            &format!("round {round}: index flipped at {p:?}"),
        );
    });
}

#[test]
fn an_index_truncated_at_a_random_offset_never_loses_a_message_after_repair() {
    let f = Fixture::build(10);
    let hlen = header_len(&f);
    let mut rng = Rng::new(1010);
    rounds(12, |round| {
        let s = f.copy();
        let cut = match round % 3 {
            // Every header gone.
            _ if round == 0 => 0,
            0 => rng.below(4 * REGION),
            1 => rng.below(4) * REGION + rng.below(hlen),
            _ => rng.below(4) * REGION,
        };
        truncate(&f.file(&s, "index"), cut);
        weak_round(
            &f,
            &s,
            &Allow::default(),
            &format!("index truncated at {cut}"),
        );
    });
}

#[test]
fn garbage_appended_to_the_index_never_loses_a_message() {
    let f = Fixture::build(11);
    let mut rng = Rng::new(1111);
    rounds(6, |round| {
        let s = f.copy();
        let g = rng.garbage(1, 70_000);
        append(&f.file(&s, "index"), &g);
        weak_round(
            &f,
            &s,
            &Allow::default(),
            &format!("round {round}: {} bytes appended to the index", g.len()),
        );
    });
}

// ---------------------------------------------------------------- slots

#[test]
fn flipped_bytes_in_slots_are_found_by_fsck_and_repair_delivers_every_unacked_message() {
    let f = Fixture::build(12);
    let mut rng = Rng::new(1212);
    rounds(12, |round| {
        let s = f.copy();
        let slots = f.file(&s, "slots");
        let p: Vec<u64> = (0..rng.range(1, 4))
            .map(|_| rng.range(1, 30) * SLOT + rng.below(SLOT))
            .collect();
        flip(&slots, &p, &mut rng);
        let damaged: BTreeSet<usize> = p.iter().map(|x| (x / SLOT - 1) as usize).collect();
        let ctx = format!("round {round}: slots flipped at {p:?} (messages {damaged:?})");
        fsck_finds(&s, "slots", &ctx);
        // The WAL holds every change of the template: no acked message comes back.
        let _ = damaged;
        weak_round(&f, &s, &Allow::default(), &ctx);
    });
}

#[test]
fn slots_truncated_at_a_random_offset_are_found_by_fsck_and_repaired() {
    let f = Fixture::build(13);
    let mut rng = Rng::new(1313);
    rounds(12, |round| {
        let s = f.copy();
        let cut = if round % 3 == 0 {
            rng.range(1, 30) * SLOT
        } else {
            rng.below(31 * SLOT)
        };
        truncate(&f.file(&s, "slots"), cut);
        let damaged: BTreeSet<usize> = (0..30).filter(|i| (*i as u64 + 2) * SLOT > cut).collect();
        let ctx = format!("slots truncated at {cut} (messages {damaged:?})");
        fsck_finds(&s, "slots", &ctx);
        let _ = damaged;
        weak_round(&f, &s, &Allow::default(), &ctx);
    });
}

#[test]
fn garbage_appended_to_slots_is_transparent() {
    let f = Fixture::build(14);
    let mut rng = Rng::new(1414);
    rounds(6, |round| {
        let s = f.copy();
        let g = rng.garbage(1, 700);
        append(&f.file(&s, "slots"), &g);
        f.check_transparent(
            &s,
            &format!("round {round}: {} bytes appended to slots", g.len()),
        );
    });
}

// ---------------------------------------------------------------- wal

#[test]
fn a_wal_truncated_at_a_random_offset_is_transparent_for_applied_changes() {
    let f = Fixture::build(15);
    let mut rng = Rng::new(1515);
    let wal_len = fs::metadata(f.template.queue_dir(Q).join("wal"))
        .unwrap()
        .len();
    rounds(10, |round| {
        let s = f.copy();
        let cut = if round == 0 { 0 } else { rng.below(wal_len) };
        truncate(&f.file(&s, "wal"), cut);
        // fsck may report the torn record left at the cut; a repair must change no message.
        f.check_transparent_to_messages(&s, true, &format!("wal truncated at {cut} of {wal_len}"));
    });
}

#[test]
fn garbage_appended_to_the_wal_is_transparent_for_applied_changes() {
    let f = Fixture::build(16);
    let mut rng = Rng::new(1616);
    rounds(10, |round| {
        let s = f.copy();
        let mut g = rng.garbage(1, 600);
        if round % 2 == 1 && g.len() >= 8 {
            // A length field that claims a plausible record.
            let claimed = (g.len() as u32).saturating_sub(8);
            g[0..4].copy_from_slice(&claimed.to_le_bytes());
        }
        append(&f.file(&s, "wal"), &g);
        f.check_transparent(
            &s,
            &format!("round {round}: {} bytes appended to the wal", g.len()),
        );
    });
}

#[test]
fn flipped_bytes_in_the_wal_never_lose_a_message() {
    let f = Fixture::build(17);
    let mut rng = Rng::new(1717);
    let wal_len = fs::metadata(f.template.queue_dir(Q).join("wal"))
        .unwrap()
        .len();
    rounds(10, |round| {
        let s = f.copy();
        let p: Vec<u64> = (0..rng.range(1, 3)).map(|_| rng.below(wal_len)).collect();
        flip(&f.file(&s, "wal"), &p, &mut rng);
        let ctx = format!("wal flipped at {p:?}");
        if round % 2 == 0 {
            // The changes were applied already: no message may change (fsck may report the
            // damaged record, which would matter after a machine crash).
            f.check_transparent_to_messages(&s, true, &ctx);
        } else {
            // After a machine crash the WAL is replayed over the checkpoint: a damaged record
            // may lose later acks (at-least-once), never a message.
            simulate_reboot(&f.file(&s, "index"));
            let allow = Allow {
                any_acked_may_return: true,
                ..Allow::default()
            };
            weak_round(&f, &s, &allow, &format!("{ctx}, then a reboot"));
        }
    });
}

/// `spoolmq ARGS` with its address space limited to 1 GiB (RLIMIT_AS): a command that sized
/// a buffer from a file's length would fail to allocate.
fn sm_bounded(s: &Spool, args: &[&str]) -> Out {
    use std::os::unix::process::CommandExt;
    let mut std = s.std_cmd();
    std.args(args);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        std.pre_exec(|| {
            let rl = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut cmd = assert_cmd::Command::from_std(std);
    cmd.timeout(CMD_TIMEOUT);
    run(&mut cmd)
}

#[test]
fn a_sparse_3_gib_wal_is_read_in_bounded_memory_and_only_a_command_that_writes_cuts_it() {
    let f = Fixture::build(24);
    let s = f.copy();
    let wal = f.file(&s, "wal");
    let wal_len = fs::metadata(&wal).unwrap().len();
    let big = 3u64 << 30;
    fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(big)
        .unwrap();
    // fsck only reads: the zeros past the last record are a torn tail, not damage, and stay.
    let out = sm_bounded(&s, &["fsck"]);
    assert_eq!(
        out.code,
        0,
        "fsck of a sparse wal\nstdout: {}\nstderr: {}",
        out.stdout_str(),
        out.stderr
    );
    assert_eq!(
        fs::metadata(&wal).unwrap().len(),
        big,
        "fsck wrote to the wal"
    );
    // The first command that writes cuts the tail, in bounded memory too.
    let leased = f
        .states
        .iter()
        .find_map(|st| match st {
            St::Leased(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    let out = sm_bounded(&s, &["extend", Q, &leased, "--lease", "1h"]);
    assert!(
        out.code == 0,
        "extend with a sparse wal\nstderr: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("wal") && mentions_offset(&out.stderr, wal_len),
        "the cut is reported at offset {wal_len}
stderr: {}",
        out.stderr
    );
    // Cut at the last record, then the extend's own record appended.
    let now = fs::metadata(&wal).unwrap().len();
    assert!(
        now > wal_len && now < wal_len + 4096,
        "the wal is {now} bytes"
    );
    f.check_all_delivered(
        &s,
        &Allow {
            strict: true,
            ..Allow::default()
        },
        "a sparse wal",
    );
}

// ---------------------------------------------------------------- missing files

/// A file of the queue removed altogether (a stray `rm`, a lost directory entry after a
/// crash): fsck finds it and `fsck --repair` rebuilds what is missing from what is left.
#[test]
fn a_missing_index_slots_or_wal_file_is_found_by_fsck_and_repaired() {
    let f = Fixture::build(19);
    let files = ["index", "slots", "wal"];
    rounds(files.len(), |round| {
        let name = files[round];
        let s = f.copy();
        fs::remove_file(f.file(&s, name)).unwrap();
        let ctx = format!("{name} removed");
        let out = sm(&s, &["fsck"]);
        assert_eq!(
            out.code,
            1,
            "{ctx}: fsck must find that the queue lost its {name}\nstdout: {}\nstderr: {}",
            out.stdout_str(),
            out.stderr
        );
        // Without slots, the states of messages are in the WAL: no acked message comes back.
        weak_round(&f, &s, &Allow::default(), &ctx);
    });
}

// ---------------------------------------------------------------- reserve

/// fs store: `reserve` only holds allocated space for draining a full disk; its contents
/// never matter.
#[test]
fn damage_to_the_reserve_file_is_transparent() {
    let f = Fixture::build(25);
    let mut rng = Rng::new(2525);
    rounds(3, |round| {
        let s = f.copy();
        let reserve = f.file(&s, "reserve");
        assert!(reserve.exists(), "the template has a reserve");
        let what = match round {
            0 => {
                fs::write(&reserve, rng.bytes(5000)).unwrap();
                "garbage"
            }
            1 => {
                truncate(&reserve, rng.below(1000));
                "truncated"
            }
            _ => {
                fs::remove_file(&reserve).unwrap();
                "removed"
            }
        };
        f.check_transparent(&s, &format!("reserve {what}"));
    });
}

// ---------------------------------------------------------------- failures

/// The failures file holds only what went wrong with past attempts: damage to it (a byte
/// flipped anywhere, cut anywhere, garbage appended, garbage in its place, deleted) changes no
/// message; `inspect` and `peek --dead` still answer (a damaged record is a notice naming the
/// file and offset, its failure unknown); `fsck` may find it and `--repair` leaves a sound file.
#[test]
fn damage_to_the_failures_file_loses_no_message() {
    let f = Fixture::build(26);
    let mut rng = Rng::new(2626);
    rounds(12, |round| {
        let s = f.copy();
        let path = f.file(&s, "failures");
        let len = fs::metadata(&path).unwrap().len();
        let what = match round % 6 {
            0 | 1 => {
                let at = rng.below(len);
                flip(&path, &[at], &mut rng);
                format!("byte {at} flipped")
            }
            2 | 3 => {
                let at = rng.below(len);
                truncate(&path, at);
                format!("cut at {at}")
            }
            4 if round < 6 => {
                append(&path, &rng.bytes(200));
                "garbage appended".into()
            }
            4 => {
                fs::write(&path, rng.bytes(3000)).unwrap();
                "garbage in its place".into()
            }
            _ => {
                fs::remove_file(&path).unwrap();
                "removed".into()
            }
        };
        let ctx = format!("failures {what}");
        for args in [vec!["peek", Q, "--dead", "--json"], vec!["export", Q]] {
            let out = sm(&s, &args);
            out.ok();
            stderr_well_formed(&out);
            for l in out.stderr.lines() {
                assert!(l.contains("failures: offset "), "{ctx}: {l}");
            }
        }
        f.check_transparent_to_messages(&s, true, &ctx);
        let out = sm(&s, &["export", Q]);
        assert!(out.stderr.is_empty(), "{ctx}: repaired, yet {}", out.stderr);
    });
}

// ---------------------------------------------------------------- holds

/// Damage to the holds file (the unique keys' table: flipped bytes, cut short, garbage
/// appended or in its place, removed) never panics and loses no message; `fsck` names the
/// file when it finds damage, and after `fsck --repair` (or, for a lost file, the next keyed
/// push, which makes it again from the slots) every key whose message waits is held again.
#[test]
fn damage_to_the_holds_file_loses_no_message_and_repair_holds_every_waiting_key_again() {
    let template = Spool::new();
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let input = keys.join("\n") + "\n";
    let out = template.run_stdin(&["push", Q, "--lines", "--key-from-line"], input.as_bytes());
    let ids = out.ok().lines();
    // Ten done: five acked, five dead letters (their keys free); thirty wait.
    let popped = template.pop_json(Q, &["--count", "10", "--max-attempts", "1"]);
    template.ack(Q, &popped[..5].iter().map(receipt).collect::<Vec<_>>());
    template.nack(
        Q,
        &popped[5..].iter().map(receipt).collect::<Vec<_>>(),
        &["--max-attempts", "1"],
    );
    let waiting: Vec<(String, String)> = keys[10..]
        .iter()
        .cloned()
        .zip(ids[10..].iter().cloned())
        .collect();
    let path = |s: &Spool| s.queue_dir(Q).join("holds");
    let len = fs::metadata(path(&template)).unwrap().len();
    let mut rng = Rng::new(4242);
    rounds(12, |round| {
        let s = Spool::new();
        copy_tree(&template.dir, &s.dir);
        let p = path(&s);
        let what = match round % 6 {
            0 | 1 => {
                // An entry's bytes (the header is round 5's).
                let at = 32 + rng.below(len - 32);
                flip(&p, &[at], &mut rng);
                format!("byte {at} flipped")
            }
            2 => {
                let at = rng.below(len);
                truncate(&p, at);
                format!("cut at {at}")
            }
            3 => {
                append(&p, &rng.bytes(200));
                "garbage appended".into()
            }
            4 => {
                fs::write(&p, rng.bytes(3000)).unwrap();
                "garbage in its place".into()
            }
            _ => {
                fs::remove_file(&p).unwrap();
                "removed".into()
            }
        };
        let ctx = format!("holds {what}");
        let out = sm(&s, &["export", Q]);
        out.ok();
        assert_eq!(out.json().len(), 35, "{ctx}: every message is there");
        let fsck = sm(&s, &["fsck"]);
        assert!([0, 1].contains(&fsck.code), "{ctx}: {}", fsck.stderr);
        if fsck.code == 1 {
            assert!(
                fsck.stdout_str().contains("holds"),
                "{ctx}: {}",
                fsck.stdout_str()
            );
        }
        sm(&s, &["fsck", "--repair"]).ok();
        sm(&s, &["fsck"]).ok();
        for (key, id) in &waiting {
            let out = sm(&s, &["push", Q, "--key", key, "again"]);
            assert_eq!(
                out.ok().lines(),
                std::slice::from_ref(id),
                "{ctx}: {key} is held by {id}"
            );
        }
        // The keys of done messages are free.
        let out = sm(&s, &["push", Q, "--key", &keys[0], "again"]);
        assert_ne!(out.ok().lines(), [ids[0].clone()], "{ctx}");
        assert_counters_add_up(&s, &ctx);
    });
}

/// A lane file (`QUEUE/lane-P`) damaged in any way: every message is still
/// served, the next command that writes makes the lanes again (the most
/// urgent first again), and fsck finds nothing after it. Round 0 leaves the
/// file alone: the order a pop gives is then the one to keep.
/// Damages the cache file `p` the `case`-th way of seven (0 leaves it
/// alone; a byte flipped, twice as often; cut; garbage appended; garbage in
/// its place; removed): what was done, for messages.
fn damage_case(p: &Path, case: usize, rng: &mut Rng) -> String {
    let len = fs::metadata(p).unwrap().len();
    match case {
        0 => "left alone".to_string(),
        1 | 2 => {
            let at = rng.below(len);
            flip(p, &[at], rng);
            format!("byte {at} flipped")
        }
        3 => {
            let at = rng.below(len);
            truncate(p, at);
            format!("cut at {at}")
        }
        4 => {
            append(p, &rng.bytes(100));
            "garbage appended".into()
        }
        5 => {
            fs::write(p, rng.bytes(200)).unwrap();
            "garbage in its place".into()
        }
        _ => {
            fs::remove_file(p).unwrap();
            "removed".into()
        }
    }
}

#[test]
fn damage_to_a_lane_file_loses_no_message_and_the_order_comes_back() {
    let template = Spool::new();
    let plain: Vec<String> = (0..20).map(|i| format!("plain-{i}")).collect();
    let lines = |v: &[String]| v.join("\n") + "\n";
    template
        .run_stdin(&["push", Q, "--lines"], lines(&plain).as_bytes())
        .ok();
    let p3: Vec<String> = (0..10).map(|i| format!("p3-{i}")).collect();
    let p9: Vec<String> = (0..10).map(|i| format!("p9-{i}")).collect();
    for (p, v) in [("3", &p3), ("9", &p9)] {
        template
            .run_stdin(
                &["push", Q, "--lines", "--priority", p],
                lines(v).as_bytes(),
            )
            .ok();
    }
    // Three of priority 9 done: its cursor is past them.
    let done = template.pop_json(Q, &["--count", "3"]);
    template.ack(Q, &done.iter().map(receipt).collect::<Vec<_>>());
    let late = ["late-9".to_string()];
    let want: Vec<String> = (p9[3..].iter())
        .chain(&late)
        .chain(&p3)
        .chain(&plain)
        .cloned()
        .collect();
    let mut rng = Rng::new(99);
    rounds(14, |round| {
        let s = Spool::new();
        copy_tree(&template.dir, &s.dir);
        let lane = if round % 2 == 0 { "lane-9" } else { "lane-3" };
        let p = s.queue_dir(Q).join(lane);
        let what = damage_case(&p, round % 7, &mut rng);
        let ctx = format!("{lane} {what}");
        // A push with a priority into the damaged lanes: made again, or
        // appended, and served in its place either way.
        sm(&s, &["push", Q, "--priority", "9", "late-9"]).ok();
        if lane == "lane-9" && [3, 5, 6].contains(&(round % 7)) {
            // Cut, replaced or removed: the push saw it and made the lanes
            // again, holding its own message once.
            sm(&s, &["fsck"]).ok();
        }
        let out = sm(&s, &["export", Q]);
        assert_eq!(out.ok().json().len(), 38, "{ctx}: every message is there");
        let fsck = sm(&s, &["fsck"]);
        assert!([0, 1].contains(&fsck.code), "{ctx}: {}", fsck.stderr);
        if fsck.code == 1 {
            assert!(
                fsck.stdout_str().contains(lane),
                "{ctx}: {}",
                fsck.stdout_str()
            );
        }
        let got = sm(&s, &["pop", Q, "--count", "100", "--json"]);
        assert_eq!(bodies(&got.ok().json()), want, "{ctx}");
        sm(&s, &["fsck"]).ok();
        assert_counters_add_up(&s, &ctx);
    });
}

/// The groups cache (`QUEUE/groups`) damaged every way: it only saves
/// record reads, so every message is there, each group still goes one at
/// a time in push order, and fsck is clean.
#[test]
fn damage_to_the_groups_cache_loses_no_message_and_keeps_each_group_in_order() {
    let template = Spool::new();
    for g in ["a", "b"] {
        let lines: String = (0..20).map(|i| format!("{g}-{i:02}\n")).collect();
        template
            .run_stdin(&["push", Q, "--lines", "--group", g], lines.as_bytes())
            .ok();
    }
    template.run(&["push", Q, "plain"]).ok();
    let mut rng = Rng::new(77);
    rounds(14, |round| {
        let s = Spool::new();
        copy_tree(&template.dir, &s.dir);
        let p = s.queue_dir(Q).join("groups");
        let what = damage_case(&p, round % 7, &mut rng);
        // Each pop takes the head of each group (and the plain one first
        // time): 20 pops, each acked.
        let mut got: BTreeMap<char, Vec<String>> = BTreeMap::new();
        for i in 0..25 {
            let out = sm(&s, &["pop", Q, "--count", "10", "--json"]);
            if out.code == 3 {
                break;
            }
            let ms = out.ok().json();
            let mut groups = BTreeSet::new();
            for m in &ms {
                let b = body(m).to_string();
                if b != "plain" {
                    let g = b.chars().next().unwrap();
                    assert!(groups.insert(g), "{what}: pop {i} took two of group {g}");
                    got.entry(g).or_default().push(b);
                }
            }
            let mut args = vec!["ack", Q];
            args.extend(ms.iter().map(receipt));
            sm(&s, &args).ok();
        }
        for g in ['a', 'b'] {
            let want: Vec<String> = (0..20).map(|i| format!("{g}-{i:02}")).collect();
            assert_eq!(got.get(&g), Some(&want), "{what}: group {g}");
        }
        sm(&s, &["fsck"]).ok();
        assert_counters_add_up(&s, &what);
    });
}

// ---------------------------------------------------------------- lock

#[test]
fn damage_to_the_lock_file_is_transparent() {
    let f = Fixture::build(18);
    let mut rng = Rng::new(1818);
    rounds(4, |round| {
        let s = f.copy();
        let lock = f.file(&s, "lock");
        let what = match round {
            0 => {
                append(&lock, &rng.bytes(100));
                "garbage appended"
            }
            1 => {
                fs::write(&lock, rng.bytes(5000)).unwrap();
                truncate(&lock, rng.below(5000));
                "garbage, truncated"
            }
            2 => {
                fs::remove_file(&lock).unwrap();
                "removed"
            }
            _ => {
                fs::write(&lock, vec![0xff; 1 << 16]).unwrap();
                "64 KiB of 0xff"
            }
        };
        f.check_transparent(&s, &format!("lock {what}"));
    });
}

// ---------------------------------------------------------------- the spool's own files

/// Runs spoolmq on the spool at `s` as a user would, with no store named (so the store is
/// what the spool records, or what its files say), with a short timeout and an optional key.
fn user(s: &Spool, key: Option<&Path>, args: &[&str]) -> Out {
    let mut cmd = s.cmd();
    cmd.env_remove("SPOOLMQ_STORE").timeout(CMD_TIMEOUT);
    if let Some(k) = key {
        cmd.arg("--key-file").arg(k);
    }
    cmd.args(args);
    run(&mut cmd)
}

/// Copies the directory tree `from` to `to` (files and directories only, modes kept).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::metadata(from).unwrap().permissions()).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            copy_tree(&p, &dst);
        } else if m.is_file() {
            fs::copy(&p, &dst).unwrap();
        }
    }
}

/// A spool of either store with three queues: `a` (5 pushed: 1 acked, 1 leased for an hour,
/// 1 delayed for an hour, 2 ready), `b` (3 ready) and `sec`, encrypted (2 ready). What each
/// queue shows is kept, to compare after the damage.
struct RootFixture {
    template: Spool,
    key: PathBuf,
    /// queue -> ids `peek` shows.
    peek: BTreeMap<String, Vec<String>>,
    stats: Vec<Value>,
}

const ROOT_QUEUES: [&str; 3] = ["a", "b", "sec"];

impl RootFixture {
    fn build(store: &'static str) -> RootFixture {
        let template = Spool::new();
        let key = keygen_into(&template.scratch().join("k.key"));
        let go = |args: &[&str], k: bool| {
            let mut cmd = template.cmd();
            cmd.env("SPOOLMQ_STORE", store);
            if k {
                cmd.arg("--key-file").arg(&key);
            }
            let out = run(cmd.args(args));
            out.ok();
            out
        };
        go(&["push", "a", "a1", "a2", "a3", "a4"], false);
        go(&["push", "a", "--delay", "1h", "a-later"], false);
        let popped = go(&["pop", "a", "--json", "--lease", "1h"], false).json();
        go(&["ack", "a", receipt(&popped[0])], false);
        go(&["pop", "a", "--json", "--lease", "1h"], false);
        go(&["push", "b", "b1", "b2", "b3"], false);
        go(&["push", "sec", "secret-1", "secret-2"], true);
        // The rest of a full workload: a nack, a dead letter, a purge.
        go(&["push", "c", "c1", "c2"], false);
        let popped = go(&["pop", "c", "--json"], false).json();
        go(
            &["nack", "c", "--reason", "flaky", receipt(&popped[0])],
            false,
        );
        let popped = go(&["pop", "c", "--json", "--max-attempts", "1"], false).json();
        go(
            &["nack", "c", "--max-attempts", "1", receipt(&popped[0])],
            false,
        );
        go(&["push", "d", "d1"], false);
        go(&["purge", "d"], false);
        go(
            &["push", "e", "--key", "e1", "--unique-for", "1h", "e1"],
            false,
        );
        go(&["push", "g", "--group", "x", "g1", "g2"], false);
        let mut f = RootFixture {
            template,
            key,
            peek: BTreeMap::new(),
            stats: Vec::new(),
        };
        let s = &f.template;
        f.peek = f.peek_all(s);
        f.stats = f.stats_of(s);
        f
    }

    fn copy(&self) -> Spool {
        let s = Spool::new();
        copy_tree(&self.template.dir, &s.dir);
        s
    }

    fn key_for(&self, q: &str) -> Option<&Path> {
        (q == "sec").then_some(self.key.as_path())
    }

    fn peek_all(&self, s: &Spool) -> BTreeMap<String, Vec<String>> {
        ROOT_QUEUES
            .iter()
            .map(|q| {
                let out = user(s, self.key_for(q), &["peek", q, "--json", "--count", "100"]);
                out.ok();
                let ids = out.json().iter().map(|m| id(m).to_string()).collect();
                (q.to_string(), ids)
            })
            .collect()
    }

    fn stats_of(&self, s: &Spool) -> Vec<Value> {
        let out = user(s, None, &["stats", "--json"]);
        out.ok();
        out.json()
            .into_iter()
            .map(|mut v| {
                // Age and disk use move on by themselves.
                v.as_object_mut().map(|o| {
                    o.remove("oldest_ready_age_ms");
                    o.remove("disk_bytes")
                });
                v
            })
            .collect()
    }

    /// Every queue but `except` shows what it showed before: the same ids to peek, the same
    /// counters, and a pop and an ack of each works.
    #[track_caller]
    fn intact(&self, s: &Spool, except: Option<&str>, ctx: &str) {
        let now = ROOT_QUEUES
            .iter()
            .filter(|q| Some(**q) != except)
            .map(|q| {
                let out = user(s, self.key_for(q), &["peek", q, "--json", "--count", "100"]);
                assert_eq!(out.code, 0, "{ctx}: peek {q}\nstderr: {}", out.stderr);
                let ids: Vec<String> = out.json().iter().map(|m| id(m).to_string()).collect();
                (q.to_string(), ids)
            })
            .collect::<BTreeMap<_, _>>();
        let want = self
            .peek
            .iter()
            .filter(|(q, _)| Some(q.as_str()) != except)
            .map(|(q, v)| (q.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>();
        assert_eq!(now, want, "{ctx}: the intact queues show what they showed");
        if except.is_none() {
            assert_eq!(self.stats_of(s), self.stats, "{ctx}: stats as before");
        }
    }

    /// A pop and an ack in every queue but `except`, then a push to a new queue: the spool works.
    #[track_caller]
    fn usable(&self, s: &Spool, except: Option<&str>, ctx: &str) {
        for q in ROOT_QUEUES.iter().filter(|q| Some(**q) != except) {
            let out = user(s, self.key_for(q), &["pop", q, "--json"]);
            assert_eq!(out.code, 0, "{ctx}: pop {q}\nstderr: {}", out.stderr);
            let m = &out.json()[0];
            assert!(
                self.peek[*q].contains(&id(m).to_string()),
                "{ctx}: pop {q}: {m}"
            );
            user(s, None, &["ack", q, receipt(m)]).ok();
        }
        user(s, None, &["push", "fresh", "after-the-damage"]).ok();
        let m = user(s, None, &["pop", "fresh", "--json"]);
        m.ok();
        assert_eq!(body(&m.json()[0]), "after-the-damage", "{ctx}");
    }
}

/// The ways a file is damaged here.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Harm {
    Truncate,
    Append,
    Flip,
    Empty,
    Delete,
}

const HARMS: [Harm; 5] = [
    Harm::Truncate,
    Harm::Append,
    Harm::Flip,
    Harm::Empty,
    Harm::Delete,
];

/// Damages `path` as `harm` says (a file of at least one byte, except for `Empty` and
/// `Delete`); returns what was done, for messages.
fn harm(path: &Path, harm: Harm, rng: &mut Rng) -> String {
    let len = fs::metadata(path).unwrap().len();
    match harm {
        Harm::Truncate if len > 1 => {
            let to = rng.range(1, len - 1);
            truncate(path, to);
            format!("truncated from {len} to {to} bytes")
        }
        Harm::Truncate | Harm::Empty => {
            truncate(path, 0);
            "emptied".into()
        }
        Harm::Append => {
            let n = rng.range(1, 64) as usize;
            append(path, &rng.bytes(n));
            format!("{n} random bytes appended")
        }
        Harm::Flip if len > 0 => {
            let at = rng.below(len);
            flip(path, &[at], rng);
            format!("byte {at} flipped")
        }
        Harm::Flip => {
            fs::write(path, [rng.byte_nonzero()]).unwrap();
            "one random byte written".into()
        }
        Harm::Delete => {
            fs::remove_file(path).unwrap();
            "deleted".into()
        }
    }
}

/// No command panics, hangs or fails with more than one line, whatever the damage; returns
/// the `fsck` run among them.
#[track_caller]
fn nothing_panics(f: &RootFixture, s: &Spool, ctx: &str) -> Out {
    for q in ROOT_QUEUES {
        for args in [
            vec!["stats", q, "--json"],
            vec!["peek", q, "--json"],
            vec!["list"],
        ] {
            let out = user(s, f.key_for(q), &args);
            assert!(
                out.code == 0 || (out.code == 1 && out.stderr.lines().count() == 1),
                "{ctx}: `spoolmq {}` exited {}\nstderr: {}",
                out.what,
                out.code,
                out.stderr
            );
            stderr_well_formed(&out);
        }
    }
    let fsck = user(s, None, &["fsck"]);
    assert!(fsck.code <= 1, "{ctx}: fsck exited {}", fsck.code);
    stderr_well_formed(&fsck);
    fsck
}

/// Damage to `.store`, `.spool.lock` and (sqlite) `.spool.bell`: truncated, garbage appended,
/// a byte flipped, emptied, deleted. Every queue stays reachable and shows what it showed (the
/// store is told from the files on disk: queue directories mean fs, `.spool.db` sqlite);
/// `fsck` reports a damaged `.store` (and a missing one on sqlite, where no older spoolmq left
/// it out), `fsck --repair` rewrites it, and the spool is as it was.
fn spool_root_files_may_be_damaged(store: &'static str) {
    let f = RootFixture::build(store);
    let mut files = vec![".store", ".spool.lock"];
    if store == "sqlite" {
        files.push(".spool.bell");
    }
    let cases: Vec<(&str, Harm)> = files
        .iter()
        .flat_map(|file| HARMS.iter().map(move |h| (*file, *h)))
        .collect();
    let mut rng = Rng::new(0x5707e);
    rounds(cases.len(), |round| {
        let (file, h) = cases[round];
        let s = f.copy();
        let path = s.dir.join(file);
        let what = harm(&path, h, &mut rng);
        let ctx = format!("{store} store: {file} {what}");
        let fsck = nothing_panics(&f, &s, &ctx);
        f.intact(&s, None, &ctx);
        let reported = file == ".store" && (h != Harm::Delete || store == "sqlite");
        let text = fsck.stdout_str();
        if reported {
            assert_eq!(
                fsck.code, 1,
                "{ctx}: fsck must report it\n{text}{}",
                fsck.stderr
            );
            assert!(
                text.lines()
                    .any(|l| l.contains(".store")
                        && (l.contains("damaged") || l.contains("missing"))),
                "{ctx}: fsck names the file and what is wrong\n{text}"
            );
        } else {
            assert_eq!(fsck.code, 0, "{ctx}: fsck\n{text}{}", fsck.stderr);
        }
        if file == ".store" && h != Harm::Delete {
            let warned = user(&s, None, &["list"]);
            assert!(
                warned.stderr.contains(".store is damaged") && !warned.stderr.contains("newer"),
                "{ctx}: commands say the record is damaged, not newer\n{}",
                warned.stderr
            );
        }
        let repair = user(&s, None, &["fsck", "--repair"]);
        assert_eq!(
            repair.code,
            0,
            "{ctx}: fsck --repair\n{}{}",
            repair.stdout_str(),
            repair.stderr
        );
        let again = user(&s, None, &["fsck"]);
        assert_eq!(
            again.code,
            0,
            "{ctx}: fsck after the repair\n{}",
            again.stdout_str()
        );
        if reported {
            let record = fs::read_to_string(s.dir.join(".store")).unwrap();
            assert!(
                record.starts_with(&format!("spoolmq-store 5 {store} ")),
                "{ctx}: the repair recorded the store: {record:?}"
            );
            assert_eq!(
                user(&s, None, &["list"]).stderr,
                "",
                "{ctx}: no more warnings"
            );
        }
        f.intact(&s, None, &format!("{ctx}, repaired"));
        f.usable(&s, None, &format!("{ctx}, repaired"));
    });
}

#[test]
fn the_spool_root_files_of_an_fs_spool_may_be_damaged() {
    spool_root_files_may_be_damaged("fs");
}

#[test]
fn the_spool_root_files_of_a_sqlite_spool_may_be_damaged() {
    spool_root_files_may_be_damaged("sqlite");
}

/// The key id file of an encrypted fs queue truncated, extended, flipped, emptied, deleted:
/// nothing panics, the other queues show what they showed, the queue itself is refused with
/// one line (never served as plain text to a reader with the key); `fsck` finds the damage
/// (a deleted file when given the key: the bodies open with it), and `fsck --repair` with the
/// key rewrites the file, after which the queue is as it was.
#[test]
fn a_damaged_or_missing_key_id_file_is_found_and_repaired_with_the_key() {
    let f = RootFixture::build("fs");
    let mut rng = Rng::new(0x6e7);
    rounds(HARMS.len(), |round| {
        let h = HARMS[round];
        let s = f.copy();
        let what = harm(&s.queue_dir("sec").join("key"), h, &mut rng);
        let ctx = format!("sec/key {what}");
        let fsck = nothing_panics(&f, &s, &ctx);
        f.intact(&s, Some("sec"), &ctx);
        let peek = user(&s, Some(&f.key), &["peek", "sec", "--json"]);
        peek.fails(1);
        let keyed_fsck = user(&s, Some(&f.key), &["fsck"]);
        let found = if h == Harm::Delete {
            &keyed_fsck
        } else {
            &fsck
        };
        assert_eq!(
            found.code,
            1,
            "{ctx}: fsck finds it\n{}",
            found.stdout_str()
        );
        assert!(
            found.stdout_str().lines().any(|l| l.contains("sec/key")),
            "{ctx}: fsck names the file\n{}",
            found.stdout_str()
        );
        let repair = user(&s, Some(&f.key), &["fsck", "--repair"]);
        assert_eq!(
            repair.code,
            0,
            "{ctx}: fsck --repair with the key\n{}{}",
            repair.stdout_str(),
            repair.stderr
        );
        let again = user(&s, Some(&f.key), &["fsck"]);
        assert_eq!(
            again.code,
            0,
            "{ctx}: fsck after the repair\n{}",
            again.stdout_str()
        );
        user(&s, None, &["fsck"]).ok();
        f.intact(&s, None, &format!("{ctx}, repaired"));
        f.usable(&s, None, &format!("{ctx}, repaired"));
    });
}

/// The database of a sqlite spool truncated, extended, flipped, emptied, deleted: nothing
/// panics or hangs, each command exits 0 or 1 with one line, and what is served is what was
/// pushed. `fsck` either finds the damage (exit 1, naming `.spool.db`) or every queue shows
/// what it showed; after `fsck --repair`, whatever it kept is sound.
#[test]
fn damage_to_the_sqlite_database_never_panics_and_fsck_finds_what_it_changed() {
    let f = RootFixture::build("sqlite");
    let mut rng = Rng::new(0xdb);
    rounds(HARMS.len() + 2, |round| {
        let h = HARMS[round % HARMS.len()];
        let s = f.copy();
        let what = harm(&s.dir.join(".spool.db"), h, &mut rng);
        let ctx = format!(".spool.db {what}");
        let fsck = nothing_panics(&f, &s, &ctx);
        for q in ROOT_QUEUES {
            let out = user(&s, f.key_for(q), &["peek", q, "--json", "--count", "100"]);
            if out.code == 0 {
                for m in out.json() {
                    assert!(
                        f.peek[q].contains(&id(&m).to_string()),
                        "{ctx}: {q}: served {m}"
                    );
                }
            }
        }
        if fsck.code == 1 {
            assert!(
                fsck.stdout_str().contains(".spool.db") || fsck.stderr.contains(".spool.db"),
                "{ctx}: fsck names the database\n{}{}",
                fsck.stdout_str(),
                fsck.stderr
            );
        } else if h != Harm::Delete && h != Harm::Empty {
            f.intact(&s, None, &ctx);
        }
        let repair = user(&s, None, &["fsck", "--repair"]);
        assert!(
            repair.code <= 1,
            "{ctx}: fsck --repair exited {}",
            repair.code
        );
        stderr_well_formed(&repair);
        if repair.code == 0 {
            user(&s, None, &["fsck"]).ok();
        }
    });
}

/// SQLite's write-ahead log and its index, left beside the database full of garbage (a crash,
/// a bad restore): SQLite checks their checksums and ignores them, so every queue is intact.
#[test]
fn garbage_wal_and_shm_files_beside_the_database_change_nothing() {
    let f = RootFixture::build("sqlite");
    let mut rng = Rng::new(0x5a1);
    rounds(3, |round| {
        let s = f.copy();
        let files: &[&str] = match round {
            0 => &[".spool.db-wal"],
            1 => &[".spool.db-shm"],
            _ => &[".spool.db-wal", ".spool.db-shm"],
        };
        for name in files {
            let n = rng.range(1, 40_000) as usize;
            fs::write(s.dir.join(name), rng.bytes(n)).unwrap();
        }
        let ctx = format!("garbage in {files:?}");
        let fsck = nothing_panics(&f, &s, &ctx);
        assert_eq!(
            fsck.code,
            0,
            "{ctx}: fsck\n{}{}",
            fsck.stdout_str(),
            fsck.stderr
        );
        f.intact(&s, None, &ctx);
        f.usable(&s, None, &ctx);
    });
}

// ---------------------------------------------------------------- every kind of file

/// Each kind of file a spool may hold (by name: `Q/` stands for any queue directory) and a
/// test above that damages it. A file a store starts to write needs a line here, or
/// [`every_file_a_full_workload_leaves_has_a_corruption_case`] fails.
const COVERED: &[(&str, fn())] = &[
    (".store", the_spool_root_files_of_an_fs_spool_may_be_damaged),
    (
        ".spool.lock",
        the_spool_root_files_of_a_sqlite_spool_may_be_damaged,
    ),
    (
        ".spool.bell",
        the_spool_root_files_of_a_sqlite_spool_may_be_damaged,
    ),
    (
        ".spool.db",
        damage_to_the_sqlite_database_never_panics_and_fsck_finds_what_it_changed,
    ),
    (
        ".spool.db-wal",
        garbage_wal_and_shm_files_beside_the_database_change_nothing,
    ),
    (
        ".spool.db-shm",
        garbage_wal_and_shm_files_beside_the_database_change_nothing,
    ),
    ("Q/lock", damage_to_the_lock_file_is_transparent),
    (
        "Q/index",
        flipped_bytes_in_the_index_never_lose_a_message_after_repair,
    ),
    (
        "Q/slots",
        flipped_bytes_in_slots_are_found_by_fsck_and_repair_delivers_every_unacked_message,
    ),
    ("Q/wal", flipped_bytes_in_the_wal_never_lose_a_message),
    (
        "Q/*.seg",
        flipped_bytes_in_a_segment_skip_exactly_the_damaged_records_and_repair_keeps_the_rest,
    ),
    (
        "Q/key",
        a_damaged_or_missing_key_id_file_is_found_and_repaired_with_the_key,
    ),
    ("Q/reserve", damage_to_the_reserve_file_is_transparent),
    ("Q/failures", damage_to_the_failures_file_loses_no_message),
    (
        "Q/holds",
        damage_to_the_holds_file_loses_no_message_and_repair_holds_every_waiting_key_again,
    ),
    (
        "Q/lane-*",
        damage_to_a_lane_file_loses_no_message_and_the_order_comes_back,
    ),
    (
        "Q/groups",
        damage_to_the_groups_cache_loses_no_message_and_keeps_each_group_in_order,
    ),
];

/// The kind of file at `rel` (a path in the spool): its name at the root, `Q/NAME` in a queue
/// directory (`Q/*.seg` for segments); `None` for a directory of queues itself.
fn kind_of(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [name] => name.clone(),
        [_, name] if name.ends_with(".seg") => "Q/*.seg".into(),
        [_, name] if name.starts_with("lane-") => "Q/lane-*".into(),
        [_, name] => format!("Q/{name}"),
        _ => format!("Q/{}", parts[1..].join("/")),
    }
}

/// "Every kind of file" means every file any store writes, including ones added later: a
/// full workload (push, delayed push, pop, ack, nack, a dead letter, an encrypted queue, a
/// purge) on each store, then every file in the spool must be of a kind [`COVERED`] names.
#[test]
fn every_file_a_full_workload_leaves_has_a_corruption_case() {
    let mut seen = BTreeSet::new();
    for store in ["fs", "sqlite"] {
        let f = RootFixture::build(store);
        for p in walk(&f.template.dir) {
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(&f.template.dir).unwrap();
            if m.is_dir() && rel.components().count() == 1 {
                continue;
            }
            assert!(
                m.is_file(),
                "{store}: {} is neither a file nor a queue directory",
                rel.display()
            );
            let kind = kind_of(rel);
            assert!(
                COVERED.iter().any(|(k, _)| *k == kind),
                "{store} store: {} (a file of kind {kind:?}) has no corruption case: add one to \
                 tests/it/corruption.rs and a line to COVERED",
                rel.display()
            );
            seen.insert(kind);
        }
    }
    // What the workload must have made, so that the listing is worth something.
    for kind in [
        ".store",
        ".spool.lock",
        ".spool.bell",
        ".spool.db",
        "Q/index",
        "Q/slots",
        "Q/wal",
        "Q/*.seg",
        "Q/key",
        "Q/reserve",
        "Q/lock",
        "Q/failures",
        "Q/holds",
        "Q/groups",
    ] {
        assert!(
            seen.contains(kind),
            "the workload made no file of kind {kind}: {seen:?}"
        );
    }
}

// ---------------------------------------------------------------- slots are derived data

/// The first command that writes after the slots were damaged: exit 0, exactly the intact
/// ready messages, the rebuild reported once on stderr (naming `slots`). The popped messages
/// are given back.
#[track_caller]
fn pop_rebuilds_the_slots(f: &Fixture, s: &Spool, expect: &[String], ctx: &str) {
    let out = sm(s, &["pop", Q, "--json", "--count", "1000", "--lease", "1h"]);
    out.ok();
    stderr_well_formed(&out);
    let msgs = out.json();
    f.check_served(&msgs, &Allow::default(), ctx);
    let got: Vec<&str> = msgs.iter().map(id).collect();
    assert_eq!(
        got, expect,
        "{ctx}: pop must deliver exactly the ready messages\nstderr: {}",
        out.stderr
    );
    let rebuilt: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("slots") && l.contains("rebuilt"))
        .collect();
    assert_eq!(
        rebuilt.len(),
        1,
        "{ctx}: the rebuild is reported once\nstderr: {}",
        out.stderr
    );
    let mut args = vec!["nack", Q];
    args.extend(msgs.iter().map(receipt));
    sm(s, &args).ok().stdout_empty();
    // Reported once: the next command finds nothing to say.
    let again = sm(s, &["stats", Q, "--json"]);
    again.ok();
    assert_eq!(again.stderr, "", "{ctx}: nothing left to report");
}

#[test]
fn a_lost_slots_file_is_rebuilt_by_the_next_command_that_writes_without_help() {
    let f = Fixture::build(20);
    let s = f.copy();
    fs::remove_file(f.file(&s, "slots")).unwrap();
    let ctx = "slots removed";
    pop_rebuilds_the_slots(&f, &s, &f.ready_ids(&BTreeSet::new()), ctx);
    // Every state was in the WAL: counters, leases (their receipts still work), dead letters.
    let stats = s.stats(Q);
    for k in ["ready", "leased", "dead", "acked", "pushed", "bytes"] {
        assert_eq!(stats[k], f.stats[k], "{ctx}: stats field {k}: {stats}");
    }
    let strict = Allow {
        strict: true,
        ..Allow::default()
    };
    f.check_all_delivered(&s, &strict, ctx);
}

#[test]
fn a_flipped_byte_in_a_slot_is_rebuilt_by_the_next_command_that_writes() {
    let f = Fixture::build(21);
    let mut rng = Rng::new(2121);
    rounds(6, |round| {
        let s = f.copy();
        // Messages 15-30 (indexes 14..) were never delivered: their slots are in no WAL record.
        let i = if round < 3 {
            rng.range(14, 30) as usize
        } else {
            rng.range(0, 14) as usize
        };
        let at = (i as u64 + 1) * SLOT + rng.below(SLOT);
        flip(&f.file(&s, "slots"), &[at], &mut rng);
        let ctx = format!(
            "round {round}: slot of message {i} ({:?}) flipped at {at}",
            f.states[i]
        );
        if f.states[i] == St::Acked {
            // Below the pending cursor: no delivery reads it; fsck finds it, its repair keeps
            // the message acked (the WAL says so).
            fsck_finds(&s, "slots", &ctx);
            f.repair(&s, &ctx);
        } else {
            pop_rebuilds_the_slots(&f, &s, &f.ready_ids(&BTreeSet::new()), &ctx);
        }
        let strict = Allow {
            strict: true,
            ..Allow::default()
        };
        f.check_all_delivered(&s, &strict, &ctx);
    });
}

#[test]
fn an_old_copy_of_slots_restored_after_more_pushes_and_acks_is_rebuilt_without_redelivering() {
    let f = Fixture::build(22);
    let s = f.copy();
    let slots = f.file(&s, "slots");
    let old = fs::read(&slots).unwrap();
    // Three more messages, and the two oldest ready ones acked.
    let more = s.push(Q, &["later-1", "later-2", "later-3"]);
    let two = s.pop_json(Q, &["--count", "2"]);
    let rs: Vec<&str> = two.iter().map(receipt).collect();
    s.ack(Q, &rs);
    let acked: Vec<String> = two.iter().map(|m| id(m).to_string()).collect();
    fs::write(&slots, &old).unwrap();
    let mut expect: Vec<String> = f
        .ready_ids(&BTreeSet::new())
        .into_iter()
        .filter(|i| !acked.contains(i))
        .collect();
    expect.extend(more.iter().cloned());
    let ctx = "an old copy of slots";
    let out = sm(
        &s,
        &["pop", Q, "--json", "--count", "1000", "--lease", "1h"],
    );
    out.ok();
    let got: Vec<String> = out.json().iter().map(|m| id(m).to_string()).collect();
    assert_eq!(
        got, expect,
        "{ctx}: pop delivers the ready messages, not the acked ones\nstderr: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("slots") && l.contains("stale")),
        "{ctx}: the stale copy is reported\nstderr: {}",
        out.stderr
    );
    s.run(&["fsck"]).ok();
    let stats = s.stats(Q);
    assert_counts(
        &stats,
        &[
            ("acked", 7),
            ("pushed", 33),
            ("leased", 4 + got.len() as u64),
        ],
    );
}

/// Counters as `stats --json` shows them add up: every message pushed is in one state.
#[track_caller]
fn assert_counters_add_up(s: &Spool, ctx: &str) {
    let v = s.stats(Q);
    let sum: u64 = [
        "ready", "delayed", "leased", "dead", "acked", "purged", "corrupt",
    ]
    .iter()
    .map(|k| num(&v, k))
    .sum();
    assert_eq!(sum, num(&v, "pushed"), "{ctx}: counters do not add up: {v}");
}

/// The case: the acks are in the WAL, the slots are gone, `fsck --repair` runs first.
#[test]
fn fsck_repair_after_the_slots_were_lost_replays_the_acks_in_the_wal() {
    let s = Spool::new();
    let ids = s.push(Q, &["m1", "m2", "m3", "m4", "m5"]);
    let two = s.pop_json(Q, &["--count", "2"]);
    let rs: Vec<&str> = two.iter().map(receipt).collect();
    s.ack(Q, &rs);
    fs::remove_file(s.queue_dir(Q).join("slots")).unwrap();
    let out = sm(&s, &["fsck"]);
    assert_eq!(
        out.code,
        1,
        "fsck finds the lost slots\n{}",
        out.stdout_str()
    );
    sm(&s, &["fsck", "--repair"]).ok();
    sm(&s, &["fsck"]).ok();
    assert_counts(&s.stats(Q), &[("ready", 3), ("acked", 2), ("pushed", 5)]);
    assert_counters_add_up(&s, "after repair");
    let got: Vec<String> = s
        .pop_json(Q, &["--count", "10"])
        .iter()
        .map(|m| id(m).to_string())
        .collect();
    assert_eq!(
        got,
        ids[2..].to_vec(),
        "the acked messages are not delivered again"
    );
}

/// Once a checkpoint emptied the WAL, the slots were the only place that said which message
/// is in which state. The header's counters still say how many: when they leave no doubt
/// (here the acked messages are the oldest, below the pending cursor), the states are exact.
#[test]
fn slots_lost_after_a_checkpoint_keep_acked_messages_acked_when_the_counters_tell() {
    let s = Spool::new();
    let ids = s.push(Q, &["m1", "m2", "m3", "m4", "m5"]);
    for _ in 0..2 {
        let m = s.pop_one(Q, &[]);
        s.ack(Q, &[receipt(&m)]);
    }
    // A reboot: the next command that writes recovers from the checkpoint and checkpoints.
    simulate_reboot(&s.queue_dir(Q).join("index"));
    s.run(&["retry", Q]).ok();
    assert_eq!(
        fs::metadata(s.queue_dir(Q).join("wal")).unwrap().len(),
        0,
        "the checkpoint emptied the WAL"
    );
    fs::remove_file(s.queue_dir(Q).join("slots")).unwrap();
    let out = sm(&s, &["pop", Q, "--json", "--count", "10"]);
    out.ok();
    let got: Vec<String> = out.json().iter().map(|m| id(m).to_string()).collect();
    assert_eq!(
        got,
        ids[2..].to_vec(),
        "exactly the unacked messages\n{}",
        out.stderr
    );
    assert_counters_add_up(&s, "after the rebuild");
    s.run(&["fsck"]).ok();
}

/// Expired dead letters (a TTL passed), then a checkpoint, then the slots lost: their states
/// are lost with the slots, and the rebuild takes each expiry from its record, so they are
/// expired again at the next pop; nothing is taken for acked and the counters add up.
#[test]
fn slots_lost_after_a_checkpoint_keep_each_expiry_from_its_record() {
    let s = Spool::new();
    s.run(&["push", Q, "--ttl", "1s", "e1", "e2"]).ok();
    s.push(Q, &["live"]);
    sleep_ms(2_100);
    assert_eq!(body(&s.pop_one(Q, &["--lease", "1h"])), "live");
    simulate_reboot(&s.queue_dir(Q).join("index"));
    // A command that writes and changes nothing: it recovers and checkpoints.
    s.run(&["purge", Q]).ok();
    assert_eq!(
        fs::metadata(s.queue_dir(Q).join("wal")).unwrap().len(),
        0,
        "the checkpoint emptied the WAL"
    );
    fs::remove_file(s.queue_dir(Q).join("slots")).unwrap();
    s.push(Q, &["after"]);
    assert_counters_add_up(&s, "after the rebuild");
    // The lease is lost with the slots (ready again, as any lease a rebuild cannot see).
    let out = s.run(&["pop", Q, "--json", "--count", "10"]);
    assert_eq!(bodies(&out.ok().json()), ["live", "after"]);
    assert_counts(
        &s.stats(Q),
        &[("leased", 2), ("dead", 2), ("expired", 2), ("acked", 0)],
    );
    assert_counters_add_up(&s, "after the pop");
    s.run(&["fsck"]).ok();
}

/// The limit: acks out of order, then a checkpoint, then the slots lost. The counters say two
/// of five messages were acked but not which: none of the five is delivered (they are kept as
/// dead letters, reported), so no acked message is; `retry` is the operator's call.
#[test]
fn slots_lost_after_a_checkpoint_with_acks_out_of_order_deliver_no_acked_message() {
    let s = Spool::new();
    let ids = s.push(Q, &["m1", "m2", "m3", "m4", "m5"]);
    let all = s.pop_json(Q, &["--count", "5"]);
    let by_id = |i: &str| all.iter().find(|m| id(m) == i).unwrap();
    s.ack(Q, &[receipt(by_id(&ids[1])), receipt(by_id(&ids[3]))]);
    let rest: Vec<&str> = [0, 2, 4].iter().map(|&k| receipt(by_id(&ids[k]))).collect();
    s.nack(Q, &rest, &[]);
    simulate_reboot(&s.queue_dir(Q).join("index"));
    s.run(&["retry", Q]).ok();
    fs::remove_file(s.queue_dir(Q).join("slots")).unwrap();
    let out = sm(&s, &["pop", Q, "--json", "--count", "10"]);
    out.code(3).stdout_empty();
    assert!(
        out.stderr.contains("dead letters") && out.stderr.contains("retry"),
        "the held messages and the way out are reported\n{}",
        out.stderr
    );
    assert_counts(&s.stats(Q), &[("dead", 5), ("ready", 0), ("pushed", 5)]);
    assert_counters_add_up(&s, "after the rebuild");
    s.run(&["fsck"]).ok();
    // The operator decides: retry delivers all five, the acked ones included.
    s.run(&["retry", Q]).ok();
    assert_eq!(s.pop_json(Q, &["--count", "10"]).len(), 5);
}
