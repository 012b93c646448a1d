// Bounded memory: the real binary's peak RSS (its own `VmHWM`, which it
// writes at exit for the test: `failpoint::report_peak`) while it prints, exports or hands to `exec` a large body, refuses
// an endless stdin, or meets a sparse 200 GB segment.
//
// * `pop`, `pop --json`, `peek`, `export` and `exec` of a 64 MiB body stay
//   below 1.2 times the body plus 32 MiB (bodies of NUL bytes, the worst
//   case for escaping: 4 bytes of plain output and 6 of JSON per byte; and
//   a body with no valid UTF-8 at all, `\xff` per byte), on every store
//   this file runs on (`tests/it/bounded_memory.rs`).
// * `export` of twelve 16 MiB bodies stays below the same bound: it prints
//   as it reads once it holds 64 MiB.
// * `push` of an endless stdin stops one byte past the 1 GiB body limit;
//   `push --lines` of a line without a newline stops at the limit too, naming
//   the line. The input is generated here, a chunk at a time, never stored.
// * A segment made sparse and 200 GB long (`truncate -s 200G`) is damage
//   reported with file and offset, never a buffer of that size (fs store).
//
// The heavy cases run one at a time (a lock), so that their peaks do not add up.


use common::*;
use std::io::{Read, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The body size of the output cases.
const BODY: u64 = 64 << 20;
/// The bound on the peak RSS of a command that holds one body of `BODY` bytes.
const LIMIT: u64 = BODY * 6 / 5 + (32 << 20);
/// The body limit of the store (`spoolmq::store::fs::record::MAX_BODY`).
const MAX_BODY: u64 = 1 << 30;

static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one measured run gave.
struct Measured {
    what: String,
    code: i32,
    /// Peak resident set of the process (and the children it waited for), bytes.
    rss: u64,
    /// The first bytes of stdout, and how many bytes it had in all.
    head: Vec<u8>,
    stdout_len: u64,
    stderr: String,
    secs: f64,
}

impl Measured {
    #[track_caller]
    fn within(&self, limit: u64) -> &Self {
        assert!(
            !self.stderr.contains("panicked"),
            "{}: panicked: {}",
            self.what,
            self.stderr
        );
        assert!(
            self.rss <= limit,
            "{}: peak RSS {} MiB, more than {} MiB (exit {}, {:.1} s, stderr: {})",
            self.what,
            self.rss >> 20,
            limit >> 20,
            self.code,
            self.secs,
            self.stderr
        );
        eprintln!(
            "{}: peak RSS {} MiB (limit {} MiB), {:.2} s",
            self.what,
            self.rss >> 20,
            limit >> 20,
            self.secs
        );
        self
    }

    /// As [`Measured::within`], but a peak over `limit` is added to `over`
    /// (so that one run reports every command that is over).
    fn near(&self, limit: u64, over: &mut Vec<String>) -> &Self {
        if self.rss > limit {
            over.push(format!(
                "{}: peak RSS {} MiB, more than {} MiB",
                self.what,
                self.rss >> 20,
                limit >> 20
            ));
            eprintln!("{}", over[over.len() - 1]);
            return self;
        }
        self.within(limit)
    }

    #[track_caller]
    fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code, want,
            "{}: exit {} (stderr: {})",
            self.what, self.code, self.stderr
        );
        self
    }

    /// The value of `"key":"..."` in the JSON printed first.
    fn json_str(&self, key: &str) -> String {
        let text = String::from_utf8_lossy(&self.head);
        let pat = format!("\"{key}\":\"");
        let at = text
            .find(&pat)
            .unwrap_or_else(|| panic!("{}: no {key} in {text:.200}", self.what))
            + pat.len();
        text[at..].split('"').next().unwrap_or("").to_string()
    }

    /// Where the body starts in stdout: just past `marker` in its first bytes.
    fn body_at(&self, marker: &str) -> u64 {
        let text = String::from_utf8_lossy(&self.head);
        (text
            .find(marker)
            .unwrap_or_else(|| panic!("{}: no {marker:?} in {text:.200}", self.what))
            + marker.len()) as u64
    }

    /// The `n`-th tab-separated field of the first plain line.
    fn field(&self, n: usize) -> String {
        String::from_utf8_lossy(&self.head)
            .split('\t')
            .nth(n)
            .unwrap_or("")
            .to_string()
    }
}

/// Writes `len` bytes of `byte` (after `first`) to a child's stdin, a chunk
/// at a time; stops quietly when the child stops reading.
fn generate(first: &'static [u8], byte: u8, len: u64) -> Box<dyn FnOnce(ChildStdin) + Send> {
    Box::new(move |mut stdin: ChildStdin| {
        if stdin.write_all(first).is_err() {
            return;
        }
        let chunk = vec![byte; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if stdin.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n as u64;
        }
    })
}

/// Runs `cmd` (stdin fed by `feed`, or empty), reads its stdout as it comes
/// (keeping the first 4 KiB), reaps exactly this child with `wait4`, and
/// takes the peak RSS it reported. Killed and failed after 120 s.
fn measure(
    mut cmd: std::process::Command,
    feed: Option<Box<dyn FnOnce(ChildStdin) + Send>>,
) -> Measured {
    let what = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| !a.contains('/'))
        .collect::<Vec<_>>()
        .join(" ");
    let err = tempfile::NamedTempFile::new().expect("a stderr file");
    // The binary's own peak (`failpoint::report_peak`): `wait4`'s ru_maxrss
    // would count this test process's peak too, which other tests raise.
    let peak = tempfile::NamedTempFile::new().expect("a peak file");
    cmd.env("SPOOLMQ_PEAK_FILE", peak.path());
    cmd.stdout(Stdio::piped())
        .stderr(err.reopen().expect("stderr file"))
        .stdin(if feed.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spoolmq starts");
    let pid = child.id() as libc::pid_t;
    let feeder = match (feed, child.stdin.take()) {
        (Some(f), Some(stdin)) => Some(std::thread::spawn(move || f(stdin))),
        _ => None,
    };
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let (mut head, mut total) = (Vec::new(), 0u64);
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            let keep = n.min(4096usize.saturating_sub(head.len()));
            head.extend_from_slice(&buf[..keep]);
            total += n as u64;
        }
        (head, total)
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 on our own child's pid with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        assert!(r == 0, "{what}: wait4: {}", std::io::Error::last_os_error());
        if start.elapsed() > Duration::from_secs(120) {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::wait4(pid, &mut status, 0, &mut ru);
            }
            panic!("{what}: still running after 120 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = start.elapsed().as_secs_f64();
    drop(child);
    let (head, stdout_len) = reader.join().expect("the reader");
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
    // "VmHWM:   12345 kB"; a run that did not get to write it (killed)
    // falls back to ru_maxrss, an upper bound.
    let hwm = std::fs::read_to_string(peak.path()).ok().and_then(|l| {
        l.split_whitespace()
            .nth(1)
            .and_then(|kb| kb.parse::<u64>().ok())
    });
    Measured {
        what,
        code,
        rss: hwm.unwrap_or(ru.ru_maxrss as u64) * 1024,
        head,
        stdout_len,
        stderr,
        secs,
    }
}

/// `spoolmq ARGS` on spool `s`, with `key` if given.
fn cmd(s: &Spool, key: Option<&std::path::Path>, args: &[&str]) -> std::process::Command {
    let mut c = s.std_cmd();
    if let Some(k) = key {
        c.arg("--key-file").arg(k);
    }
    c.args(args);
    c
}

/// Pushes one body of `len` bytes of `byte` (after `first`) from a generator.
fn push_big(s: &Spool, key: Option<&std::path::Path>, q: &str, first: &'static [u8], byte: u8) {
    let len = BODY - first.len() as u64;
    let m = measure(cmd(s, key, &["push", q]), Some(generate(first, byte, len)));
    m.code(0);
}

fn nack(s: &Spool, key: Option<&std::path::Path>, q: &str, receipt: &str) {
    measure(cmd(s, key, &["nack", q, receipt]), None).code(0);
}

#[test]
fn pop_peek_export_and_exec_of_a_large_body_stay_near_its_size() {
    let _heavy = heavy();
    let s = Spool::new();
    let started = Instant::now();
    let mut over = Vec::new();
    push_big(&s, None, "q", b"", 0);

    // Plain: 4 bytes of output per NUL byte, one line.
    let m = measure(cmd(&s, None, &["peek", "q"]), None);
    m.code(0).near(LIMIT, &mut over);
    let at = m.field(0).len() as u64 + m.field(1).len() as u64 + 2;
    assert_eq!(m.stdout_len, at + 4 * BODY + 1, "peek: escaped whole");
    assert!(m.head[at as usize..].starts_with(b"\\x00\\x00"));

    // JSON: 6 bytes per NUL byte.
    let m = measure(cmd(&s, None, &["peek", "q", "--json"]), None);
    m.code(0).near(LIMIT, &mut over);
    assert_eq!(
        m.stdout_len,
        m.body_at("\"body\":\"") + 6 * BODY + 3,
        "peek --json"
    );
    let m = measure(cmd(&s, None, &["export", "q"]), None);
    m.code(0).near(LIMIT, &mut over);
    assert_eq!(
        m.stdout_len,
        m.body_at("\"body\":\"") + 6 * BODY + 3,
        "export"
    );

    let m = measure(cmd(&s, None, &["pop", "q"]), None);
    m.code(0).near(LIMIT, &mut over);
    let at = (0..3).map(|i| m.field(i).len() as u64 + 1).sum::<u64>();
    assert_eq!(m.stdout_len, at + 4 * BODY + 1, "pop");
    nack(&s, None, "q", &m.field(1));

    let m = measure(cmd(&s, None, &["pop", "q", "--json"]), None);
    m.code(0).near(LIMIT, &mut over);
    assert_eq!(
        m.stdout_len,
        m.body_at("\"body\":\"") + 6 * BODY + 3,
        "pop --json"
    );
    nack(&s, None, "q", &m.json_str("receipt"));

    // exec hands its command the body itself: `wc -c` counts all of it.
    let m = measure(cmd(&s, None, &["exec", "q", "--", "wc", "-c"]), None);
    m.code(0).near(LIMIT, &mut over);
    assert_eq!(
        String::from_utf8_lossy(&m.head).trim(),
        BODY.to_string(),
        "exec: the command read the whole body"
    );

    // A body that is not UTF-8: base64, a chunk at a time.
    push_big(&s, None, "bin", b"\xff", b'A');
    let m = measure(cmd(&s, None, &["pop", "bin", "--json"]), None);
    m.code(0).near(LIMIT, &mut over);
    assert_eq!(
        m.stdout_len,
        m.body_at("\"body_base64\":\"") + BODY.div_ceil(3) * 4 + 3,
        "pop --json of a binary body"
    );
    assert!(m.json_str("body_base64").starts_with("/0FBQUFB"));
    // Plain, of a body with no valid UTF-8 at all: `\xff` per byte.
    push_big(&s, None, "ff", b"", 0xff);
    let m = measure(cmd(&s, None, &["peek", "ff"]), None);
    m.code(0).near(LIMIT, &mut over);
    let at = m.field(0).len() as u64 + m.field(1).len() as u64 + 2;
    assert_eq!(m.stdout_len, at + 4 * BODY + 1, "peek of bytes not UTF-8");
    assert!(m.head[at as usize..].starts_with(b"\\xff\\xff"));

    // An encrypted body is opened where it lies.
    let key = keygen_into(&s.scratch().join("key"));
    push_big(&s, Some(&key), "sealed", b"", b'x');
    let m = measure(cmd(&s, Some(&key), &["pop", "sealed", "--json"]), None);
    m.code(0).near(LIMIT, &mut over);
    assert_eq!(
        m.stdout_len,
        m.body_at("\"body\":\"") + BODY + 3,
        "encrypted pop"
    );
    assert!(m.json_str("body").starts_with("xxxx"));
    eprintln!("all cases: {:.1} s", started.elapsed().as_secs_f64());
    assert!(over.is_empty(), "over the bound: {over:#?}");
}

/// `export` of a queue whose bodies add up to far more than the bound holds
/// a bounded part of them (64 MiB held to print once the lock is let go,
/// then one body at a time): 12 bodies of 16 MiB, 192 MiB in all.
#[test]
fn export_of_a_queue_larger_than_the_bound_streams_it() {
    let _heavy = heavy();
    let s = Spool::new();
    let body = vec![b'e'; 16 << 20];
    for _ in 0..12 {
        s.push_stdin("big", &body);
    }
    let m = measure(cmd(&s, None, &["export", "big"]), None);
    m.code(0).within(LIMIT);
    assert!(
        m.stdout_len > 12 * (16 << 20),
        "export printed {} bytes",
        m.stdout_len
    );
}

#[test]
fn push_of_an_endless_stdin_stops_one_byte_past_the_limit() {
    if not_on_this_store("reading stdin is above the store") {
        return;
    }
    let _heavy = heavy();
    let s = Spool::new();
    // Twice the limit is offered; the old push read all of it.
    let m = measure(
        cmd(&s, None, &["push", "q"]),
        Some(generate(b"", 0, 2 * MAX_BODY)),
    );
    m.code(2).within(MAX_BODY + (64 << 20));
    assert_eq!(m.stderr.lines().count(), 1, "one line: {}", m.stderr);
    assert!(
        m.stderr
            .contains(&format!("larger than the limit of {MAX_BODY} bytes")),
        "{}",
        m.stderr
    );
    assert_eq!(m.stdout_len, 0, "no id printed");
    // Nothing was pushed: the queue does not exist.
    s.run(&["stats", "q", "--json"]).fails(1);
}

#[test]
fn push_lines_stops_at_a_line_longer_than_the_limit_and_names_it() {
    if not_on_this_store("reading stdin is above the store") {
        return;
    }
    let _heavy = heavy();
    let s = Spool::new();
    // Two lines, then a third that never ends (twice the limit, no newline).
    let m = measure(
        cmd(&s, None, &["push", "q", "--lines"]),
        Some(generate(b"one\ntwo\n", b'z', 2 * MAX_BODY)),
    );
    m.code(2).within(MAX_BODY + (96 << 20));
    assert_eq!(m.stderr.lines().count(), 1, "one line: {}", m.stderr);
    assert!(
        m.stderr.contains("line 3 ")
            && m.stderr
                .contains(&format!("longer than the limit of {MAX_BODY} bytes")),
        "{}",
        m.stderr
    );
    // The lines before it were pushed, and their ids printed.
    assert_eq!(String::from_utf8_lossy(&m.head).lines().count(), 2);
    let msgs = s.pop_json("q", &["--count", "5"]);
    assert_eq!(bodies(&msgs), ["one", "two"]);
}

/// Makes the file at `p` sparse and 200 GB long, as `truncate -s 200G` does.
fn make_sparse_200g(p: &std::path::Path) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .expect("segment opens");
    f.set_len(200 << 30).expect("truncate -s 200G");
}

#[test]
fn a_sparse_200_gb_active_segment_is_a_dropped_tail_not_an_allocation() {
    if not_on_this_store("segment files are the fs store's") {
        return;
    }
    let _heavy = heavy();
    let s = Spool::new();
    s.push("q", &["a", "b", "c"]);
    let seg = s.segment_files("q").pop().expect("a segment");
    let len = std::fs::metadata(&seg).unwrap().len();
    make_sparse_200g(&seg);
    let m = measure(cmd(&s, None, &["pop", "q", "--json"]), None);
    m.code(0).within(64 << 20);
    assert_eq!(m.json_str("body"), "a");
    // Reported once, with the file and the offset where the damage starts.
    assert_eq!(m.stderr.lines().count(), 1, "{}", m.stderr);
    assert!(
        m.stderr.contains(&seg.display().to_string())
            && m.stderr.contains(&format!("offset {len}")),
        "{}",
        m.stderr
    );
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        len,
        "the tail is cut off"
    );
    s.run(&["fsck"]).ok();
    assert_eq!(bodies(&s.pop_json("q", &["--count", "5"])), ["b", "c"]);
}

#[test]
fn fsck_reports_a_sparse_200_gb_segment_with_file_and_offset_and_repair_keeps_its_records() {
    if not_on_this_store("segment files are the fs store's") {
        return;
    }
    let _heavy = heavy();
    let s = Spool::new();
    s.push("q", &["a", "b", "c"]);
    // A body past the segment limit (64 MiB) rolls to a new segment, so the
    // first one is not the active one (recovery does not look at it).
    let m = measure(
        cmd(&s, None, &["push", "q"]),
        Some(generate(b"", b'y', 65 << 20)),
    );
    m.code(0);
    let segs = s.segment_files("q");
    assert!(segs.len() >= 2, "{segs:?}");
    let first = segs[0].clone();
    let len = std::fs::metadata(&first).unwrap().len();
    make_sparse_200g(&first);

    let m = measure(cmd(&s, None, &["fsck"]), None);
    m.code(1).within(64 << 20);
    let report = String::from_utf8_lossy(&m.head).to_string();
    let name = first.display().to_string();
    assert!(
        report.contains(&format!("{name}: offset {len}: ")),
        "{report}"
    );
    assert!(
        report.contains("bytes past the largest size a segment file can have"),
        "{report}"
    );
    // pop is not disturbed: the records are where the index says.
    let m = measure(cmd(&s, None, &["pop", "q", "--json"]), None);
    m.code(0).within(64 << 20);
    assert_eq!(m.json_str("body"), "a");

    let m = measure(cmd(&s, None, &["fsck", "--repair"]), None);
    m.code(0).within(64 << 20);
    assert!(std::fs::metadata(&first).unwrap().len() < 1 << 20);
    s.run(&["fsck"]).ok();
    assert_eq!(bodies(&s.pop_json("q", &["--count", "2"])), ["b", "c"]);
}
