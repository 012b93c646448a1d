//! Proves the delivery rules of `spoolmq::queue` (receipts, settling, the
//! clock) in the corners the unit and model tests leave out; each test here
//! kills a mutant that `cargo mutants` found surviving.

use spoolmq::model::backoff::Retry;
use spoolmq::queue::{self, Queue};
use spoolmq::{Error, Spool};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

/// Every message `export` hands over, collected.
fn export(q: &mut Queue, now: u64) -> Vec<queue::Exported> {
    let mut all = Vec::new();
    q.export(now, &mut |m| {
        all.push(m);
        spoolmq::store::Step::Continue
    })
    .unwrap();
    all
}

const T0: u64 = 1_800_000_000_000;

fn queue() -> (TempDir, Queue) {
    let tmp = TempDir::new().unwrap();
    let spool = Spool::new(tmp.path().join("spool"));
    let q = spool.open_queue("q", true).unwrap().unwrap();
    (tmp, q)
}

fn push(q: &mut Queue, bodies: &[&str], delay: Duration, now: u64) -> Vec<String> {
    let mut it = bodies.iter().map(|b| b.as_bytes());
    q.push(&mut it, delay, now).unwrap()
}

#[test]
fn now_ms_reads_the_system_clock_in_milliseconds() {
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let now = queue::now_ms();
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        before <= now && now <= after,
        "{before} <= {now} <= {after}"
    );
}

#[test]
fn a_receipt_of_the_wrong_length_or_with_non_hex_digits_is_refused() {
    let tag = [0x1f; 12];
    let good = queue::format_receipt(3, 1000, &tag);
    assert_eq!(queue::parse_receipt(&good, 1000), Some((3, tag)));
    // All hex digits, but too short or too long.
    for bad in ["", "ff", &good[..16], &good[..39], &format!("{good}00")] {
        assert_eq!(queue::parse_receipt(bad, 1000), None, "{bad:?}");
    }
    // The right length, but a sign where a digit should be
    // (u8::from_str_radix would take "+f").
    let mut plus = good.clone();
    plus.replace_range(16..17, "+");
    assert_eq!(queue::parse_receipt(&plus, 1000), None);
    // The right length in bytes, not in characters.
    let wide = format!("{}é{}", &good[..16], &good[18..]);
    assert_eq!(wide.len(), 40);
    assert_eq!(queue::parse_receipt(&wide, 1000), None);
}

#[test]
fn each_delivery_gets_a_fresh_random_receipt_and_the_old_one_goes_stale() {
    let (_tmp, mut q) = queue();
    push(&mut q, &["m"], Duration::ZERO, T0);
    let first = q.pop(1, Duration::from_secs(1), 0, T0).unwrap();
    assert_eq!(first.len(), 1);
    // The lease runs out and the message is delivered again.
    let second = q.pop(1, Duration::from_secs(1), 0, T0 + 5_000).unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(first[0].id(), second[0].id());
    assert_eq!(second[0].attempt, 2);
    assert_ne!(first[0].receipt, second[0].receipt);
    // The tag (after the 16-digit id) is random, not zeros.
    assert_ne!(&first[0].receipt[16..], "0".repeat(24));
    assert_ne!(&second[0].receipt[16..], "0".repeat(24));
    let stale = q
        .ack(std::slice::from_ref(&first[0].receipt), T0 + 5_001)
        .unwrap();
    assert_eq!(stale.done, 0);
    assert_eq!(stale.stale.len(), 1);
    let ok = q
        .ack(std::slice::from_ref(&second[0].receipt), T0 + 5_001)
        .unwrap();
    assert_eq!(ok.done, 1);
}

#[test]
fn into_result_counts_what_was_settled_or_fails_with_exit_4() {
    let (_tmp, mut q) = queue();
    push(&mut q, &["a", "b", "c"], Duration::ZERO, T0);
    let d = q.pop(3, Duration::from_secs(30), 0, T0).unwrap();
    let receipts: Vec<String> = d.iter().map(|d| d.receipt.clone()).collect();
    let settled = q.ack(&receipts, T0 + 1).unwrap();
    assert_eq!(settled.into_result().unwrap(), 3);
    // Acking them again: every receipt is stale now.
    let again = q.ack(&receipts[..2], T0 + 2).unwrap();
    match again.into_result() {
        Err(e @ Error::Stale(_)) => {
            assert_eq!(e.exit_code(), 4);
            let text = e.to_string();
            assert!(text.contains("receipts "), "{text}");
            assert!(
                text.contains(&receipts[0]) && text.contains(&receipts[1]),
                "{text}"
            );
        }
        other => panic!("expected a stale error, got {other:?}"),
    }
    let one = q.ack(&receipts[2..], T0 + 3).unwrap().into_result();
    let text = one.unwrap_err().to_string();
    assert!(
        text.contains("receipt ") && !text.contains("receipts"),
        "{text}"
    );
}

#[test]
fn a_lease_taken_with_no_attempt_limit_that_runs_out_is_delivered_again_not_dead() {
    let (_tmp, mut q) = queue();
    push(&mut q, &["m"], Duration::ZERO, T0);
    let mut now = T0;
    for attempt in 1..=5 {
        let d = q.pop(1, Duration::from_secs(1), 0, now).unwrap();
        assert_eq!(d.len(), 1, "attempt {attempt}");
        assert_eq!(d[0].attempt, attempt);
        now += 2_000;
    }
    let s = q.stats(now).unwrap();
    assert_eq!((s.ready, s.leased, s.dead), (1, 0, 0));
    assert_eq!(q.retry(&[], now).unwrap().moved, 0);
}

fn spool(tmp: &TempDir) -> Spool {
    Spool::new(tmp.path().join("spool"))
}

#[test]
fn open_without_create_finds_a_queue_only_once_something_was_pushed_to_it() {
    let tmp = TempDir::new().unwrap();
    let sp = spool(&tmp);
    // No spool at all.
    assert!(sp.open_queue("q", false).unwrap().is_none());
    assert!(matches!(
        sp.open_existing_queue("q"),
        Err(Error::NoSuchQueue(n)) if n == "q"
    ));
    // Created, nothing pushed: not a queue yet.
    let q = sp.open_queue("q", true).unwrap().expect("created");
    assert_eq!(q.name(), "q");
    drop(q);
    assert!(sp.open_queue("q", false).unwrap().is_none());
    // One push: now it is.
    let mut q = sp.open_queue("q", true).unwrap().unwrap();
    push(&mut q, &["x"], Duration::ZERO, T0);
    drop(q);
    let mut q = sp.open_queue("q", false).unwrap().expect("exists");
    assert_eq!(q.name(), "q");
    assert_eq!(
        q.pop(1, Duration::from_secs(1), 0, T0).unwrap()[0].body,
        b"x"
    );
    drop(q);
    let q = sp.open_existing_queue("q").unwrap();
    assert_eq!(q.name(), "q");
    // Another queue of the same spool is still missing.
    assert!(sp.open_queue("other", false).unwrap().is_none());
}

#[test]
fn a_queue_keeps_the_name_it_was_opened_with() {
    let tmp = TempDir::new().unwrap();
    let q = spool(&tmp).open_queue("jobs-2", true).unwrap().unwrap();
    assert_eq!(q.name(), "jobs-2");
}

/// The one segment file of queue `q`.
fn segment_file(tmp: &TempDir) -> std::path::PathBuf {
    let dir = tmp.path().join("spool").join("q");
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs.pop().unwrap()
}

#[test]
fn a_damaged_body_met_by_pop_is_skipped_and_reported_once_as_a_notice_naming_the_queue() {
    let tmp = TempDir::new().unwrap();
    let mut sp = spool(&tmp);
    let (sink, seen) = spoolmq::base::notice::Notices::collected();
    sp.notices = sink;
    let mut q = sp.open_queue("q", true).unwrap().unwrap();
    push(&mut q, &["first body", "second body"], Duration::ZERO, T0);
    drop(q);
    // Flip the first byte of the first body: 16-byte file header, 40-byte record header.
    let seg = segment_file(&tmp);
    let mut bytes = std::fs::read(&seg).unwrap();
    assert_eq!(&bytes[56..66], b"first body");
    bytes[56] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();

    let mut q = sp.open_existing_queue("q").unwrap();
    let d = q.pop(2, Duration::from_secs(10), 0, T0).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].body, b"second body");
    // Sent as pop returned, not held until the queue is dropped.
    let notices = seen.lock().unwrap().clone();
    assert!(
        notices
            .iter()
            .any(|n| n.starts_with("q: ") && n.contains("skipped") && n.contains(".seg")),
        "{notices:?}"
    );
    let s = q.stats(T0).unwrap();
    assert_eq!((s.corrupt, s.leased, s.ready), (1, 1, 0));
    drop(q);
    assert_eq!(*seen.lock().unwrap(), notices, "reported once");
}

/// The stored slot of message `id` of queue `q`, read with the queue closed.
fn stored(tmp: &TempDir, id: &str) -> spoolmq::store::Meta {
    use spoolmq::store::Store;
    let dir = tmp.path().join("spool").join("q");
    let mut store = spoolmq::store::fs::FsStore::open(&dir, false)
        .unwrap()
        .unwrap();
    let seq = spoolmq::model::ids::parse_id(id, store.salt()).unwrap();
    store.get(seq).unwrap().expect("the slot is there")
}

#[test]
fn a_message_leaving_its_lease_keeps_no_lease_end_and_no_receipt_tag_in_its_slot() {
    use spoolmq::store::State;
    let tmp = TempDir::new().unwrap();
    let sp = spool(&tmp);
    let mut q = sp.open_queue("q", true).unwrap().unwrap();
    let ids = push(&mut q, &["nacked", "dead"], Duration::ZERO, T0);
    let d = q.pop(2, Duration::from_secs(60), 1, T0).unwrap();
    assert_eq!(d.len(), 2);
    drop(q);
    let leased = stored(&tmp, &ids[0]);
    assert_eq!(leased.state, State::Leased);
    assert_eq!(leased.until_ms, T0 + 60_000);
    assert_ne!(leased.receipt, [0; 12]);

    let mut q = sp.open_existing_queue("q").unwrap();
    // Back to ready (attempt 1 of up to 5), and to a dead letter (attempt 1 of 1).
    q.nack(
        std::slice::from_ref(&d[0].receipt),
        Retry::After(Duration::ZERO),
        None,
        5,
        T0 + 1,
    )
    .unwrap()
    .into_result()
    .unwrap();
    q.nack(
        std::slice::from_ref(&d[1].receipt),
        Retry::After(Duration::ZERO),
        None,
        1,
        T0 + 1,
    )
    .unwrap()
    .into_result()
    .unwrap();
    drop(q);
    // A dead letter keeps, in place of the lease end, when it died (the nack's time).
    for (id, state, until) in [(&ids[0], State::Ready, 0), (&ids[1], State::Dead, T0 + 1)] {
        let m = stored(&tmp, id);
        assert_eq!(m.state, state);
        assert_eq!(m.until_ms, until, "{state:?}");
        assert_eq!(m.receipt, [0; 12], "{state:?}");
    }
}

/// A queue holding `bodies`, the first one's body damaged on disk.
fn queue_with_a_damaged_first_body(bodies: &[&str]) -> (TempDir, Queue) {
    let tmp = TempDir::new().unwrap();
    let sp = spool(&tmp);
    let mut q = sp.open_queue("q", true).unwrap().unwrap();
    push(&mut q, bodies, Duration::ZERO, T0);
    drop(q);
    let seg = segment_file(&tmp);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[56] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let q = sp.open_existing_queue("q").unwrap();
    (tmp, q)
}

#[test]
fn pop_past_a_damaged_body_still_leases_exactly_the_count_asked_for() {
    let (_tmp, mut q) = queue_with_a_damaged_first_body(&["m0", "m1", "m2", "m3", "m4", "m5"]);
    let d = q.pop(2, Duration::from_secs(10), 0, T0).unwrap();
    let bodies: Vec<&[u8]> = d.iter().map(|d| d.body.as_slice()).collect();
    assert_eq!(bodies, [b"m1", b"m2"]);
    let s = q.stats(T0).unwrap();
    assert_eq!((s.leased, s.ready, s.corrupt), (2, 3, 1));
}

#[test]
fn peek_past_a_damaged_body_still_shows_exactly_the_count_asked_for() {
    let (_tmp, mut q) = queue_with_a_damaged_first_body(&["m0", "m1", "m2", "m3", "m4", "m5"]);
    let p = q.peek(2, T0).unwrap();
    let bodies: Vec<&[u8]> = p.iter().map(|p| p.body.as_slice()).collect();
    assert_eq!(bodies, [b"m1", b"m2"]);
}

#[test]
fn a_receipt_presented_at_the_very_millisecond_its_lease_ends_is_stale() {
    let (_tmp, mut q) = queue();
    push(&mut q, &["a", "b"], Duration::ZERO, T0);
    let d = q.pop(2, Duration::from_millis(1_000), 0, T0).unwrap();
    // One millisecond before the end: still good.
    let ok = q.extend(
        std::slice::from_ref(&d[0].receipt),
        Duration::from_millis(1),
        T0 + 999,
    );
    assert_eq!(ok.unwrap().done, 1);
    // d[0] now ends at T0 + 1000 too; at that millisecond both leases are over.
    let late = q
        .ack(&[d[0].receipt.clone(), d[1].receipt.clone()], T0 + 1_000)
        .unwrap();
    assert_eq!((late.done, late.stale.len()), (0, 2));
    // And both messages are deliverable again at that millisecond.
    assert_eq!(
        q.pop(2, Duration::from_secs(1), 0, T0 + 1_000)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn retry_by_id_moves_dead_letters_and_lapsed_last_attempts_and_names_everything_else_missing() {
    let (_tmp, mut q) = queue();
    let ids = push(
        &mut q,
        &["dead", "lapsing", "leased", "ready"],
        Duration::ZERO,
        T0,
    );
    // "dead" and "lapsing" are leased with a limit of one attempt; "leased"
    // with no limit and a long lease.
    let d = q.pop(2, Duration::from_secs(1), 1, T0).unwrap();
    let long = q.pop(1, Duration::from_secs(600), 0, T0).unwrap();
    assert_eq!(long[0].id(), ids[2]);
    q.nack(
        std::slice::from_ref(&d[0].receipt),
        Retry::After(Duration::ZERO),
        None,
        1,
        T0 + 1,
    )
    .unwrap()
    .into_result()
    .unwrap();
    let now = T0 + 5_000; // the lease of "lapsing" ran out on its last attempt
    let s = q.stats(now).unwrap();
    assert_eq!((s.dead, s.leased, s.ready), (2, 1, 1));

    let asked: Vec<String> = vec![
        ids[0].clone(),
        ids[1].clone(),
        ids[0].clone(), // named twice, moved once
        ids[2].clone(),
        ids[3].clone(),
        "not-an-id".into(),
        "ffffffffffffffff".into(),
    ];
    let r = q.retry(&asked, now).unwrap();
    assert_eq!(r.moved, 2);
    assert_eq!(
        r.missing,
        [
            ids[2].clone(),
            ids[3].clone(),
            "not-an-id".into(),
            "ffffffffffffffff".into()
        ]
    );
    let s = q.stats(now).unwrap();
    assert_eq!((s.dead, s.leased, s.ready), (0, 1, 3));
    // Moved back with no attempts: the next delivery is attempt 1.
    let again = q.pop(3, Duration::from_secs(1), 1, now).unwrap();
    let got: Vec<(&str, u32)> = again.iter().map(|d| (d.id(), d.attempt)).collect();
    assert_eq!(
        got,
        [
            (ids[0].as_str(), 1),
            (ids[1].as_str(), 1),
            (ids[3].as_str(), 1)
        ]
    );
}

#[test]
fn a_retried_dead_letter_is_stored_as_a_fresh_ready_message() {
    use spoolmq::store::State;
    let tmp = TempDir::new().unwrap();
    let sp = spool(&tmp);
    let mut q = sp.open_queue("q", true).unwrap().unwrap();
    let ids = push(&mut q, &["m"], Duration::ZERO, T0);
    let d = q.pop(1, Duration::from_secs(60), 3, T0).unwrap();
    q.nack(
        std::slice::from_ref(&d[0].receipt),
        Retry::After(Duration::ZERO),
        None,
        1,
        T0 + 1,
    )
    .unwrap()
    .into_result()
    .unwrap();
    assert_eq!(
        q.retry(std::slice::from_ref(&ids[0]), T0 + 2)
            .unwrap()
            .moved,
        1
    );
    drop(q);
    let m = stored(&tmp, &ids[0]);
    assert_eq!(m.state, State::Ready);
    assert_eq!((m.attempts, m.max_attempts, m.until_ms), (0, 0, 0));
    assert_eq!(m.receipt, [0; 12]);
}

#[test]
fn the_oldest_ready_age_looks_past_leased_messages_ahead_of_it() {
    let (_tmp, mut q) = queue();
    push(&mut q, &["leased"], Duration::ZERO, T0);
    assert_eq!(q.pop(1, Duration::from_secs(60), 0, T0).unwrap().len(), 1);
    push(&mut q, &["r1"], Duration::ZERO, T0 + 1_000);
    push(&mut q, &["r2"], Duration::ZERO, T0 + 2_000);
    let s = q.stats(T0 + 5_000).unwrap();
    assert_eq!((s.ready, s.leased), (2, 1));
    assert_eq!(s.oldest_ready_age_ms, 4_000);
    // Once the lease runs out, that message is the oldest ready one.
    let s = q.stats(T0 + 60_000).unwrap();
    assert_eq!((s.ready, s.leased), (3, 0));
    assert_eq!(s.oldest_ready_age_ms, 60_000);
}

/// A store that counts the messages its scans show to the queue.
struct Counting {
    inner: spoolmq::store::fs::FsStore,
    visits: std::rc::Rc<std::cell::Cell<usize>>,
}

impl spoolmq::store::Store for Counting {
    fn push(
        &mut self,
        msgs: &mut dyn Iterator<Item = spoolmq::Result<spoolmq::store::NewMessage>>,
    ) -> spoolmq::Result<Vec<u64>> {
        self.inner.push(msgs)
    }
    fn scan(
        &mut self,
        from: spoolmq::store::Scan,
        visit: &mut dyn FnMut(&spoolmq::store::Meta) -> spoolmq::store::Step,
    ) -> spoolmq::Result<()> {
        let visits = self.visits.clone();
        self.inner.scan(from, &mut |m| {
            visits.set(visits.get() + 1);
            visit(m)
        })
    }
    fn get(&mut self, seq: u64) -> spoolmq::Result<Option<spoolmq::store::Meta>> {
        self.inner.get(seq)
    }
    fn body(&mut self, meta: &spoolmq::store::Meta) -> spoolmq::Result<Vec<u8>> {
        self.inner.body(meta)
    }
    fn ttl_ms(&mut self, meta: &spoolmq::store::Meta) -> spoolmq::Result<u64> {
        self.inner.ttl_ms(meta)
    }
    fn commit(&mut self, changes: &[spoolmq::store::Change]) -> spoolmq::Result<()> {
        self.inner.commit(changes)
    }
    fn counters(&self) -> spoolmq::store::Counters {
        self.inner.counters()
    }
    fn salt(&self) -> u64 {
        self.inner.salt()
    }
    fn next_seq(&self) -> u64 {
        self.inner.next_seq()
    }
    fn key_id(&self) -> Option<spoolmq::model::crypt::KeyId> {
        self.inner.key_id()
    }
    fn set_key_id(&mut self, id: Option<spoolmq::model::crypt::KeyId>) -> spoolmq::Result<()> {
        self.inner.set_key_id(id)
    }
    fn restore(
        &mut self,
        salt: u64,
        next_seq: u64,
        counters: spoolmq::store::Counters,
        metas: &[spoolmq::store::Meta],
        body: &mut dyn FnMut(&spoolmq::store::Meta) -> spoolmq::Result<spoolmq::store::Restored>,
        holds: &[(spoolmq::store::UniqueKey, spoolmq::store::Hold)],
    ) -> spoolmq::Result<()> {
        self.inner
            .restore(salt, next_seq, counters, metas, body, holds)
    }
    fn hold(
        &mut self,
        key: &spoolmq::store::UniqueKey,
    ) -> spoolmq::Result<Option<spoolmq::store::Hold>> {
        self.inner.hold(key)
    }
    fn grouped(&mut self) -> spoolmq::Result<bool> {
        self.inner.grouped()
    }
    fn unique(
        &mut self,
        m: &spoolmq::store::Meta,
    ) -> spoolmq::Result<Option<(spoolmq::store::UniqueKey, u64)>> {
        self.inner.unique(m)
    }
    fn holds(
        &mut self,
        visit: &mut dyn FnMut(&spoolmq::store::UniqueKey, &spoolmq::store::Hold),
    ) -> spoolmq::Result<()> {
        self.inner.holds(visit)
    }
    fn segments(&self) -> u64 {
        self.inner.segments()
    }
    fn disk_bytes(&mut self) -> spoolmq::Result<u64> {
        self.inner.disk_bytes()
    }
    fn record_failures(
        &mut self,
        items: &[(u64, spoolmq::model::failure::Failure)],
    ) -> spoolmq::Result<()> {
        self.inner.record_failures(items)
    }
    fn failure(&mut self, seq: u64) -> spoolmq::Result<Option<spoolmq::model::failure::Failure>> {
        self.inner.failure(seq)
    }
    fn end_reads(&mut self) -> spoolmq::Result<()> {
        self.inner.end_reads()
    }
    fn move_target(&mut self, to: &str) -> spoolmq::Result<spoolmq::store::Target> {
        self.inner.move_target(to)
    }
    fn move_out(
        &mut self,
        key_id: Option<Option<spoolmq::model::crypt::KeyId>>,
        msgs: Vec<spoolmq::store::Incoming<'_>>,
        changes: &[spoolmq::store::Change],
    ) -> spoolmq::Result<Vec<u64>> {
        self.inner.move_out(key_id, msgs, changes)
    }
    fn take_notices(&mut self) -> Vec<String> {
        self.inner.take_notices()
    }
}

#[test]
fn stats_visits_only_the_leased_and_delayed_messages_and_the_oldest_ready_one() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("q");
    std::fs::create_dir(&dir).unwrap();
    let store = spoolmq::store::fs::FsStore::open(&dir, true)
        .unwrap()
        .unwrap();
    let visits = std::rc::Rc::new(std::cell::Cell::new(0));
    let mut q = Queue::with_store(
        "q",
        Box::new(Counting {
            inner: store,
            visits: visits.clone(),
        }),
        spoolmq::base::notice::Notices::stderr(),
    );
    push(&mut q, &["leased"], Duration::ZERO, T0);
    assert_eq!(q.pop(1, Duration::from_secs(60), 0, T0).unwrap().len(), 1);
    let bodies: Vec<String> = (0..100).map(|i| format!("ready {i}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    push(&mut q, &refs, Duration::ZERO, T0 + 1_000);
    push(&mut q, &["delayed"], Duration::from_secs(60), T0 + 1_000);

    visits.set(0);
    let s = q.stats(T0 + 2_000).unwrap();
    assert_eq!((s.ready, s.leased, s.delayed), (100, 1, 1));
    assert_eq!(s.oldest_ready_age_ms, 1_000);
    // The delayed message is last, so every message is visited here.
    assert_eq!(visits.get(), 102);

    // With the delayed one gone: the two leased ones and the first ready one.
    let d = q.pop(1, Duration::from_secs(60), 0, T0 + 2_000).unwrap();
    q.ack(&[d[0].receipt.clone()], T0 + 2_000)
        .unwrap()
        .into_result()
        .unwrap();
    q.purge(false, None, T0 + 2_000).unwrap();
    push(
        &mut q,
        &["r0", "r1", "r2", "r3"],
        Duration::ZERO,
        T0 + 3_000,
    );
    assert_eq!(
        q.pop(1, Duration::from_secs(60), 0, T0 + 3_000)
            .unwrap()
            .len(),
        1
    );
    visits.set(0);
    let s = q.stats(T0 + 4_000).unwrap();
    assert_eq!((s.ready, s.leased, s.delayed), (3, 2, 0));
    assert_eq!(visits.get(), 3, "the leased ones and the oldest ready one");
    assert_eq!(s.oldest_ready_age_ms, 1_000);
}

#[test]
fn export_names_each_message_by_its_standing_and_gives_a_time_only_to_delayed_ones() {
    let (_tmp, mut q) = queue();
    let d = push(&mut q, &["dead"], Duration::ZERO, T0);
    let r = q.pop(1, Duration::from_secs(60), 1, T0).unwrap();
    q.nack(
        &[r[0].receipt.clone()],
        Retry::After(Duration::ZERO),
        None,
        1,
        T0,
    )
    .unwrap()
    .into_result()
    .unwrap();
    let a = push(&mut q, &["leased"], Duration::ZERO, T0);
    assert_eq!(
        q.pop(1, Duration::from_secs(60), 5, T0).unwrap()[0].id(),
        a[0]
    );
    let b = push(&mut q, &["ready"], Duration::ZERO, T0);
    let c = push(&mut q, &["delayed"], Duration::from_secs(60), T0);
    let e = export(&mut q, T0 + 1_000);
    let got: Vec<Row> = e
        .iter()
        .map(|m| {
            (
                m.id.as_str(),
                m.state.as_str(),
                m.attempts,
                m.ready_at_ms,
                m.body.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (d[0].as_str(), "dead", 1, None, b"dead".as_slice()),
            (a[0].as_str(), "leased", 1, None, b"leased".as_slice()),
            (b[0].as_str(), "ready", 0, None, b"ready".as_slice()),
            (
                c[0].as_str(),
                "delayed",
                0,
                Some(T0 + 60_000),
                b"delayed".as_slice()
            ),
        ]
    );
}

/// One exported message: id, state, attempts, ready time, body.
type Row<'a> = (&'a str, &'a str, u32, Option<u64>, &'a [u8]);

fn exported(state: &str, attempts: u32, ready_at_ms: Option<u64>, body: &str) -> queue::Exported {
    queue::Exported {
        id: "0000000000000001".into(),
        state: state.into(),
        attempts,
        pushed_at_ms: T0 - 10_000,
        ready_at_ms,
        dead_at_ms: None,
        ttl: None,
        expired: false,
        unique: None,
        priority: 0,
        group: None,
        body: body.as_bytes().to_vec(),
        last_failure: None,
    }
}

#[test]
fn import_keeps_future_delays_and_dead_letters_with_their_attempts_and_makes_the_rest_ready() {
    use spoolmq::store::State;
    let tmp = TempDir::new().unwrap();
    let sp = spool(&tmp);
    let mut q = sp.open_queue("q", true).unwrap().unwrap();
    let now = T0;
    let ids = q
        .import(
            vec![
                exported("delayed", 0, Some(now + 30_000), "later"),
                exported("delayed", 0, Some(now), "due now"),
                exported("delayed", 0, Some(now - 1), "overdue"),
                exported("ready", 0, Some(now + 30_000), "ready, stray time"),
                exported("leased", 2, None, "was leased"),
                exported("dead", 3, None, "dead"),
            ],
            now,
        )
        .unwrap()
        .ids;
    assert_eq!(ids.len(), 6);
    let s = q.stats(now).unwrap();
    assert_eq!((s.delayed, s.ready, s.dead, s.leased), (1, 4, 1, 0));
    let e = export(&mut q, now);
    let got: Vec<(&str, u32, Option<u64>)> = e
        .iter()
        .map(|m| (m.state.as_str(), m.attempts, m.ready_at_ms))
        .collect();
    assert_eq!(
        got,
        [
            ("delayed", 0, Some(now + 30_000)),
            ("ready", 0, None),
            ("ready", 0, None),
            ("ready", 0, None),
            ("ready", 0, None),
            ("dead", 3, None),
        ]
    );
    assert_eq!(e[0].pushed_at_ms, T0 - 10_000);
    drop(q);
    // Stored as ready, not as a delay that is already over.
    for id in &ids[1..5] {
        assert_eq!(stored(&tmp, id).state, State::Ready, "{id}");
    }
    let dead = stored(&tmp, &ids[5]);
    assert_eq!((dead.state, dead.attempts), (State::Dead, 3));
}
