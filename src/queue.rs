//! Delivery, decided once, above the store: leases, attempts, receipts,
//! delays and dead letters. A [`Queue`] is one queue, open and locked; each
//! method is one command's critical section and commits its changes in one
//! atomic [`Store::commit`].
//!
//! Rules (SQS-style visibility timeouts):
//! * `pop` leases the oldest deliverable messages: ready ones, delayed ones
//!   whose time has come, and leased ones whose lease ran out. Each lease gets
//!   a fresh random 96-bit receipt tag and counts one attempt.
//! * A lease that ran out on a message whose attempts reached the
//!   `--max-attempts` of the pop that leased it makes a dead letter instead.
//! * `ack`, `nack` and `extend` take effect only if the receipt names the
//!   message's current delivery and its lease has not run out; otherwise the
//!   receipt is stale (exit 4) and nothing changes for it.
//! * `nack` of a message whose attempts reached `--max-attempts` makes a dead
//!   letter; `retry` makes dead letters ready again with no attempts.
//! * A message whose TTL (`push --ttl`, [`crate::model::ttl`]) passed with no
//!   live lease is a dead letter, expired (`State::Expired`): never delivered
//!   again until `retry`, which counts the TTL again. A live lease may still
//!   ack; a nack after the TTL, or the lease running out, makes it expired.
//! * Of an ordered group (`push --group`, [`crate::model::group`]) only the
//!   oldest pending message may be delivered, once it is ready: the next
//!   waits while it is leased or delayed for a retry. A dead letter lets
//!   its group go; `retry` brings one back as its group's head, delayed
//!   until the end of a later message's live lease, so a group never has
//!   two messages in flight.

use crate::base::error::{Error, Result};
use crate::base::notice::Notices;
use crate::model::backoff::{self, Retry};
use crate::model::crypt::{self, Key, Sealer};
use crate::model::failure::Failure;
use crate::model::group::{self, GroupKey};
use crate::model::ids::Ids;
use crate::model::ttl;
use crate::model::unique::{self, UniqueKey};
use crate::store::{
    Change, Counters, Incoming, MOVE_BATCH, MOVE_BATCH_BYTES, Meta, NewMessage, ReceiptTag, Scan,
    State, Step, Store,
};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the UNIX epoch: the one clock every command reads.
pub fn now_ms() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now.saturating_add_signed(crate::base::failpoint::clock_skew_ms())
}

/// How many of a pop's messages have their bodies read at once (see
/// [`Queue::ack_and_pop`]): 4,096 bodies of 100 bytes are under 1 MiB.
const BODIES_AT_ONCE: usize = 4096;

/// A set of one queue's seqs. Seqs are the queue's own counters, not
/// chosen by anyone who could aim at a collision, so SplitMix64's
/// finalizer hashes them (two multiplications and three shifts: every bit
/// of the hash, the low ones that pick the bucket and the high ones the
/// probes compare, depends on every bit of the seq, so seqs a power of two
/// apart do not collide): SipHash, the std default, was a tenth of a
/// 100,000-message `pop`.
type SeqSet = HashSet<u64, std::hash::BuildHasherDefault<SeqHasher>>;

#[derive(Default)]
struct SeqHasher(u64);

impl std::hash::Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, seq: u64) {
        let mut z = seq ^ self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// A receipt: the message id and the random tag of one delivery.
pub fn format_receipt(seq: u64, salt: u64, tag: &ReceiptTag) -> String {
    Ids::new(salt).format_receipt(seq, tag)
}

/// Parses a receipt printed by [`format_receipt`].
pub fn parse_receipt(r: &str, salt: u64) -> Option<(u64, ReceiptTag)> {
    Ids::new(salt).parse_receipt(r)
}

/// Receipt tags for one `pop`, drawn from the system's random source a
/// block at a time: one `getrandom` per tag was a fifth of the system time
/// of a 100,000-message `pop`.
struct Tags {
    block: Vec<u8>,
    used: usize,
    /// Tags per refill: as many as the pop may take, at most [`Tags::MAX`].
    per_block: usize,
}

impl Tags {
    /// 341 tags are 4,092 bytes, one page of randomness per refill.
    const MAX: usize = 341;

    fn for_count(count: usize) -> Tags {
        let per_block = count.clamp(1, Tags::MAX);
        Tags {
            block: Vec::new(),
            used: 0,
            per_block,
        }
    }

    fn next(&mut self) -> Result<ReceiptTag> {
        if self.used == self.block.len() {
            self.block.resize(self.per_block * 12, 0);
            getrandom::fill(&mut self.block).map_err(|e| {
                Error::Runtime(format!("cannot get random bytes for a receipt: {e}"))
            })?;
            self.used = 0;
        }
        let mut tag = [0u8; 12];
        tag.copy_from_slice(&self.block[self.used..self.used + 12]);
        self.used += 12;
        Ok(tag)
    }
}

/// The most dead letters one `pop` marks as it meets them (leases that ran
/// out on their last attempt, messages whose TTL passed): 10,000 changes are
/// one WAL record of about 650 KB on the fs store, under the 1 MiB that
/// starts a checkpoint.
const MAX_MADE_DEAD: usize = 10_000;

/// One leased message, as `pop` returns it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// It opens with the message id ([`Delivery::id`]).
    pub receipt: String,
    pub attempt: u32,
    pub body: Vec<u8>,
}

impl Delivery {
    /// The message id, which its receipt opens with (kept once, not as a
    /// string of its own: a `pop` of 100,000 messages made 100,000 more
    /// allocations).
    pub fn id(&self) -> &str {
        Ids::id_of_receipt(&self.receipt)
    }
}

/// One message as `peek` shows it.
#[derive(Debug, Clone)]
pub struct Peeked {
    pub id: String,
    /// The delivery a pop would make (`peek --dead`: the deliveries it had).
    pub attempt: u32,
    pub body: Vec<u8>,
    /// `peek --dead`: its last failure (`None` for other peeks).
    pub last_failure: Option<Failure>,
}

/// Everything known of one message, as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub id: String,
    /// "ready", "delayed", "leased" or "dead", as of now (as `export`).
    pub state: String,
    /// Deliveries so far.
    pub attempts: u32,
    pub pushed_at_ms: u64,
    /// Delayed: when it becomes ready.
    pub ready_at_ms: Option<u64>,
    /// Leased: when the lease ends.
    pub lease_until_ms: Option<u64>,
    /// Body length in bytes, as stored.
    pub len: u32,
    /// Dead: when it became a dead letter, if known ([`dead_since`]).
    pub dead_at_ms: Option<u64>,
    /// When its TTL ends (or, expired, ended); `None`: it has none.
    pub expires_at_ms: Option<u64>,
    /// A dead letter because its TTL passed.
    pub expired: bool,
    /// Its unique key (the hash stores keep) and window (ms).
    pub unique: Option<(UniqueKey, u64)>,
    /// Its `--priority` (0: a plain push).
    pub priority: u8,
    /// Its `--group`, as stores keep it.
    pub group: Option<GroupKey>,
    pub last_failure: Option<Failure>,
}

/// What `ack`, `nack` or `extend` did.
#[derive(Debug, Default)]
pub struct Settled {
    pub done: usize,
    /// Receipts that were stale or unknown; nothing changed for them.
    pub stale: Vec<String>,
}

impl Settled {
    /// `Ok` if every receipt took effect, else the contract's exit-4 error.
    pub fn into_result(self) -> Result<usize> {
        if self.stale.is_empty() {
            return Ok(self.done);
        }
        // One line however many there are: the first ten, and a count.
        const NAMED: usize = 10;
        let mut named = self.stale[..self.stale.len().min(NAMED)].join(", ");
        if self.stale.len() > NAMED {
            named.push_str(&format!(" and {} more", self.stale.len() - NAMED));
        }
        Err(Error::Stale(format!(
            "stale or unknown receipt{} {named} (the lease expired and the message may have been redelivered, or it was already acked)",
            if self.stale.len() > 1 { "s" } else { "" },
        )))
    }
}

/// What `retry` did.
#[derive(Debug, Default)]
pub struct Retried {
    pub moved: u64,
    /// Named ids that are not dead letters of this queue.
    pub missing: Vec<String>,
}

/// One message as `export` writes it and `import` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub id: String,
    /// "ready", "delayed", "leased" or "dead", as of the export.
    pub state: String,
    /// Deliveries so far.
    pub attempts: u32,
    pub pushed_at_ms: u64,
    /// For a delayed message: when it becomes ready.
    pub ready_at_ms: Option<u64>,
    /// For a dead letter: when it became one, if known ([`dead_since`]).
    pub dead_at_ms: Option<u64>,
    /// Its `--ttl` (ms) and when that ends (or ended); `None`: it has none.
    pub ttl: Option<(u64, u64)>,
    /// Its unique key and window (ms); `import` pushes it with them, so a
    /// key the target queue holds is not stored twice.
    pub unique: Option<(UniqueKey, u64)>,
    /// A dead letter because its TTL passed.
    pub expired: bool,
    /// Its `--priority` (0: a plain push).
    pub priority: u8,
    /// Its `--group`; `import` pushes it in the same group.
    pub group: Option<GroupKey>,
    pub body: Vec<u8>,
    /// Its last failure, if it had one.
    pub last_failure: Option<Failure>,
}

/// How `push` stores its messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pushing {
    /// Not deliverable before then (zero: at once).
    pub delay: Duration,
    /// `--ttl`, as [`ttl::ttl_ms`] keeps it (0: none).
    pub ttl_ms: u64,
    /// Where each message's unique key comes from.
    pub keys: Keys,
    /// `--unique-for`, as [`unique::unique_for_ms`] keeps it (0: none).
    pub unique_for_ms: u64,
    /// `--priority`: 0 (the default, the lowest) to
    /// [`crate::store::MAX_PRIORITY`] (the most urgent).
    pub priority: u8,
    /// `--group`: every message of the push in this group (its priority
    /// is then 0).
    pub group: Option<GroupKey>,
}

/// Where the unique keys of a push come from (`--key`, `--key-from-line`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Keys {
    /// No keys.
    #[default]
    None,
    /// Every message has this key (so only the first can be stored).
    One(UniqueKey),
    /// Each message's body (a line) is its key.
    FromBody,
}

/// Where the messages of a push went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placed {
    /// One seq per message, in order: the message's own, or for one not
    /// stored because its key was held, the seq of the message holding it.
    pub seqs: Vec<u64>,
    /// Positions in `seqs` of the messages not stored (duplicates), in order.
    pub duplicates: Vec<usize>,
}

impl Placed {
    /// Each message's seq, in order, and whether it is a duplicate (its
    /// holder's seq, nothing stored).
    pub fn each(&self) -> impl Iterator<Item = (u64, bool)> + '_ {
        let mut dups = self.duplicates.iter().peekable();
        self.seqs
            .iter()
            .enumerate()
            .map(move |(i, &seq)| (seq, dups.next_if_eq(&&i).is_some()))
    }
}

/// What `import` did: an id per message (for one not stored because the
/// queue held its key, the id of the message holding it) and which were
/// not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub ids: Vec<String>,
    pub duplicates: Vec<usize>,
}

/// One message for [`Queue::push_sealed`]: its body, times and unique key
/// and window.
type Item<'a> = (&'a [u8], Times, Option<(UniqueKey, u64)>);

/// The times a message is pushed with.
#[derive(Debug, Clone, Copy)]
struct Times {
    pushed_at_ms: u64,
    not_before_ms: u64,
    ttl_ms: u64,
    expires_at_ms: u64,
    /// Its `--priority` (0 to [`crate::store::MAX_PRIORITY`]).
    priority: u8,
    /// Its `--group`.
    group: Option<GroupKey>,
}

/// A queue's figures, as `stats` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub queue: String,
    pub ready: u64,
    pub leased: u64,
    pub delayed: u64,
    /// Dead letters, failed or expired.
    pub dead: u64,
    /// Of the dead letters, those whose TTL passed.
    pub expired: u64,
    pub pushed: u64,
    pub acked: u64,
    pub purged: u64,
    pub corrupt: u64,
    pub bytes: u64,
    pub segments: u64,
    pub disk_bytes: u64,
    pub oldest_ready_age_ms: u64,
    /// Groups whose oldest message is leased or delayed while more of the
    /// group wait behind it ([`group::Blocked`]).
    pub groups_blocked: u64,
}

/// How a message stands at time `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// May be delivered now.
    Deliverable,
    /// A lease ran out on its last allowed attempt: it is a dead letter.
    Lapsed,
    /// Its TTL passed and no lease is live: it is a dead letter, expired
    /// (a lease still live when the TTL passes may yet ack it).
    Expired,
    /// Leased or delayed, not yet due.
    Waiting,
    /// Dead (failed or expired), acked, purged or corrupt.
    Done,
}

/// Whether the TTL of `m` (if it has one) has passed at `now`.
fn ttl_over(m: &Meta, now: u64) -> bool {
    m.expires_at_ms > 0 && m.expires_at_ms <= now
}

fn standing(m: &Meta, now: u64) -> Standing {
    let ttl_over = ttl_over(m, now);
    match m.state {
        State::Ready | State::Delayed if ttl_over => Standing::Expired,
        State::Ready => Standing::Deliverable,
        State::Delayed if m.until_ms <= now => Standing::Deliverable,
        State::Leased if m.until_ms <= now => {
            if ttl_over {
                Standing::Expired
            } else if m.max_attempts > 0 && m.attempts >= m.max_attempts {
                Standing::Lapsed
            } else {
                Standing::Deliverable
            }
        }
        State::Delayed | State::Leased => Standing::Waiting,
        _ => Standing::Done,
    }
}

/// When a message whose TTL passed expired: when the TTL ended, or the
/// lease that outlived it.
fn expired_at(m: &Meta) -> u64 {
    match m.state {
        State::Leased => m.expires_at_ms.max(m.until_ms),
        _ => m.expires_at_ms,
    }
}

/// An acked message, as `ack` at `now` leaves it. A keyed message keeps
/// when it was acked: its key's window starts then.
fn acked(now: u64) -> impl Fn(&Meta) -> Meta {
    move |m| Meta {
        until_ms: if m.keyed { now } else { 0 },
        ..m.moved(State::Acked)
    }
}

/// The dead letter `m` (standing [`Standing::Lapsed`] or
/// [`Standing::Expired`]) becomes when a command meets it: dead since its
/// lease ran out, or expired since [`expired_at`].
fn made_dead(m: &Meta, s: Standing) -> Meta {
    if s == Standing::Expired {
        Meta {
            until_ms: expired_at(m),
            ..m.moved(State::Expired)
        }
    } else {
        Meta {
            until_ms: m.until_ms,
            ..m.moved(State::Dead)
        }
    }
}

/// When a dead letter (or a lease that ran out on its last attempt, or a
/// message whose TTL passed) became one: a dead letter keeps that time in
/// `until_ms` (a nack's time, the end of the lease that ran out, or when
/// it expired). `None` for any other state, and for a dead letter whose
/// time is not known (0: made by a release before dead letters kept it,
/// or rebuilt by `fsck --repair`).
fn dead_since(m: &Meta, now: u64) -> Option<u64> {
    match standing(m, now) {
        Standing::Lapsed => Some(m.until_ms),
        Standing::Expired => Some(expired_at(m)),
        Standing::Done if m.state.is_dead() && m.until_ms > 0 => Some(m.until_ms),
        _ => None,
    }
}

/// Whether `m` is, at `now`, a dead letter because its TTL passed.
fn is_expired(m: &Meta, now: u64) -> bool {
    m.state == State::Expired || standing(m, now) == Standing::Expired
}

/// Bodies sealed for seqs from `first` on were stored as `seqs`: an error
/// if those start elsewhere. Cannot happen under the queue's lock (and a
/// move's); if it did, the bodies would not open, so say so rather than
/// hide it.
fn sealed_for(queue: &str, seqs: &[u64], first: u64) -> Result<()> {
    match seqs.first() {
        Some(&s) if s != first => Err(Error::Runtime(format!(
            "{queue}: the store gave the messages seqs from {s} instead of {first}; they were sealed for the wrong ids"
        ))),
        _ => Ok(()),
    }
}

/// Whether `retry` may take `m`: a dead letter, a lease that ran out on
/// its last attempt, or a message whose TTL passed.
fn is_dead(m: &Meta, now: u64) -> bool {
    m.state.is_dead() || matches!(standing(m, now), Standing::Lapsed | Standing::Expired)
}

/// The state a user is shown for a live message at `now`: a lease that
/// ran out is ready again (or dead, on its last attempt), a delay that
/// passed is ready.
fn shown_state(m: &Meta, now: u64) -> &'static str {
    match standing(m, now) {
        Standing::Deliverable => "ready",
        Standing::Lapsed | Standing::Expired => "dead",
        Standing::Waiting if m.state == State::Delayed => "delayed",
        Standing::Waiting => "leased",
        Standing::Done => "dead",
    }
}

/// One queue, open and locked for the duration of a command.
pub struct Queue {
    name: String,
    store: Box<dyn Store>,
    /// Lines the queue itself has for the user, until [`Queue::flush_notices`].
    notices: Vec<String>,
    /// Where notices go.
    sink: Notices,
    /// The id cipher for the store's salt, made on first use.
    ids: Option<Ids>,
    /// The key given with `--key-file`, for bodies (see [`crate::model::crypt`]).
    key: Option<Key>,
    /// The spool lock (see [`crate::spool::Spool::lock`]), released after the store.
    _spool_lock: Option<crate::base::lock::QueueLock>,
}

/// See [`Queue::reporting`].
struct Reporting<'a>(&'a mut Queue);

impl std::ops::Deref for Reporting<'_> {
    type Target = Queue;
    fn deref(&self) -> &Queue {
        self.0
    }
}

impl std::ops::DerefMut for Reporting<'_> {
    fn deref_mut(&mut self) -> &mut Queue {
        self.0
    }
}

impl Drop for Reporting<'_> {
    fn drop(&mut self) {
        self.0.flush_notices();
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.flush_notices();
    }
}

impl Queue {
    /// The time to judge by: the store's clock where it has one (PostgreSQL,
    /// so that hosts with skewed clocks agree), else `now` from the caller.
    fn clock(&mut self, now: u64) -> Result<u64> {
        Ok(self.store.now()?.unwrap_or(now))
    }

    /// A queue over an already open store; its notices go to `sink`.
    pub fn with_store(name: &str, store: Box<dyn Store>, sink: Notices) -> Queue {
        Queue {
            name: name.to_string(),
            store,
            notices: Vec::new(),
            sink,
            ids: None,
            key: None,
            _spool_lock: None,
        }
    }

    /// Keeps `lock` (the spool's, taken by [`crate::spool::Spool::open_queue`])
    /// for as long as the queue is open.
    pub fn hold(&mut self, lock: Option<crate::base::lock::QueueLock>) {
        self._spool_lock = lock;
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Uses `key` to encrypt bodies pushed and decrypt bodies read.
    pub fn set_key(&mut self, key: Option<Key>) {
        self.key = key;
    }

    /// The id cipher for the store's salt (which a PostgreSQL store learns
    /// only when its first push creates the queue).
    fn ids(&mut self) -> Ids {
        let salt = self.store.salt();
        match self.ids {
            Some(ids) if ids.salt() == salt => ids,
            _ => *self.ids.insert(Ids::new(salt)),
        }
    }

    /// Hands the lines about damage found and skipped so far (by the store,
    /// or by the queue: a body that did not open) to the queue's
    /// [`Notices`]. Every public operation does this as it returns, even
    /// when it fails (see [`Queue::reporting`]), and so does dropping the
    /// queue (for what opening it found), so no caller can forget them.
    pub fn flush_notices(&mut self) {
        let name = &self.name;
        for n in self.store.take_notices() {
            self.sink.send(&format!("{name}: {n}"));
        }
        for n in self.notices.drain(..) {
            self.sink.send(&n);
        }
    }

    /// The queue, borrowed for one public operation: when the borrow ends,
    /// however the operation returns (`?` included), its notices go out.
    fn reporting(&mut self) -> Reporting<'_> {
        Reporting(self)
    }

    /// Pushes bodies (one message each); durable on return. Returns their ids.
    pub fn push(
        &mut self,
        bodies: &mut dyn Iterator<Item = &[u8]>,
        delay: Duration,
        now: u64,
    ) -> Result<Vec<String>> {
        let how = Pushing {
            delay,
            ..Pushing::default()
        };
        let (ids, placed) = self.push_seqs(bodies, how, now)?;
        Ok(placed.seqs.into_iter().map(|s| ids.format(s)).collect())
    }

    /// [`Queue::push`] with a TTL and unique keys too, giving back where
    /// each message went and the cipher that makes ids, for a caller that
    /// formats a million ids straight into its output.
    pub fn push_seqs(
        &mut self,
        bodies: &mut dyn Iterator<Item = &[u8]>,
        how: Pushing,
        now: u64,
    ) -> Result<(Ids, Placed)> {
        let q = &mut self.reporting();
        let now = q.clock(now)?;
        let not_before = if how.delay.is_zero() {
            0
        } else {
            now + ms(how.delay)
        };
        let times = Times {
            pushed_at_ms: now,
            not_before_ms: not_before,
            ttl_ms: how.ttl_ms,
            expires_at_ms: ttl::expiry(now, how.ttl_ms),
            priority: how.priority,
            group: how.group,
        };
        let keyed = how.keys != Keys::None;
        let window = how.unique_for_ms;
        let mut failed = None;
        let mut items = bodies.map_while(|b| {
            let key = match how.keys {
                Keys::None => None,
                Keys::One(k) => Some(k),
                Keys::FromBody => match unique::key(b, "--key-from-line") {
                    Ok(k) => Some(k),
                    Err(e) => {
                        failed = Some(e);
                        return None;
                    }
                },
            };
            Some((b, times, key.map(|k| (k, window))))
        });
        let items: &mut dyn Iterator<Item = Item<'_>> = &mut items;
        if keyed {
            // Every key is checked before anything is stored.
            let all: Vec<Item<'_>> = items.collect();
            if let Some(e) = failed {
                return Err(e);
            }
            let placed = q.push_sealed(&mut all.into_iter(), true, now)?;
            return Ok((q.ids(), placed));
        }
        let placed = q.push_sealed(items, false, now)?;
        Ok((q.ids(), placed))
    }

    /// The unique key and window of `m` if it holds its key (a message
    /// brought back by `retry`, or a dead letter, holds none): what
    /// `export` writes, so that `import` takes only keys that were held.
    fn held_key(&mut self, m: &Meta) -> Result<Option<(UniqueKey, u64)>> {
        if !m.keyed || !m.state.is_pending() {
            return Ok(None);
        }
        let Some((key, window)) = self.store.unique(m)? else {
            return Ok(None);
        };
        let holds = self
            .store
            .hold(&key)?
            .is_some_and(|h| h.seq == m.seq && h.free_at_ms == 0);
        Ok(holds.then_some((key, window)))
    }

    /// The seq of the message that holds `key` at `now`, if one does (the
    /// rules are in [`crate::model::unique`]): a pending message that took
    /// it (one whose lease ran out on its last attempt, or whose TTL
    /// passed, is a dead letter already), or an acked one in its window.
    fn key_holder(&mut self, key: &UniqueKey, now: u64) -> Result<Option<u64>> {
        let Some(h) = self.store.hold(key)? else {
            return Ok(None);
        };
        let mut held = if h.free_at_ms == 0 {
            self.store.get(h.seq)?.is_some_and(|m| {
                m.pushed_at_ms == h.pushed_at_ms && m.state.is_pending() && !is_dead(&m, now)
            })
        } else {
            now < h.free_at_ms
        };
        if !held && h.free_at_ms == 0 {
            // Its message done since the hold was read (an ack committed
            // by another host in between, on PostgreSQL): its window, if
            // any, as the hold now says.
            held = self
                .store
                .hold(key)?
                .is_some_and(|h2| h2.seq == h.seq && now < h2.free_at_ms);
        }
        Ok(held.then_some(h.seq))
    }

    /// Pushes `(body, times)` items, each body sealed with the key if the
    /// queue is encrypted (see [`crate::model::crypt`]): the queue's first
    /// push records whether it is; later ones must agree.
    ///
    /// With `keyed`, messages whose key is held (by a message of the queue
    /// or one earlier in `items`) are not stored: the check and the push
    /// are under one lock (the queue's; PostgreSQL: its row's, taken by
    /// `prepare_push`), so two pushes never both take a key.
    fn push_sealed(
        &mut self,
        items: &mut dyn Iterator<Item = Item<'_>>,
        keyed: bool,
        now: u64,
    ) -> Result<Placed> {
        self.store.prepare_push()?;
        let (name, key) = (self.name.clone(), self.key.clone());
        let mut sealer = Sealer::new(&name, key.as_ref());
        if self.store.counters().pushed == 0 {
            self.store.set_key_id(sealer.key_id())?;
        } else {
            sealer.agree(self.store.key_id())?;
        }
        let (salt, first) = (self.store.salt(), self.store.next_seq());
        // Where each keyed message goes: `Some(holder)` for a duplicate.
        let mut plan: Vec<Option<u64>> = Vec::new();
        let mut kept: std::vec::IntoIter<Item<'_>>;
        let items: &mut dyn Iterator<Item = Item<'_>> = if keyed {
            let all: Vec<Item<'_>> = items.collect();
            let mut taken: HashMap<UniqueKey, u64> = HashMap::new();
            let mut next = first;
            for (_, _, unique) in &all {
                let holder = match unique {
                    None => None,
                    Some((k, _)) => match taken.get(k) {
                        Some(&s) => Some(s),
                        None => self.key_holder(k, now)?,
                    },
                };
                if holder.is_none() {
                    if let Some((k, _)) = unique {
                        taken.insert(*k, next);
                    }
                    next += 1;
                }
                plan.push(holder);
            }
            let free = all.into_iter().zip(&plan);
            kept = free
                .filter_map(|(item, holder)| holder.is_none().then_some(item))
                .collect::<Vec<_>>()
                .into_iter();
            &mut kept
        } else {
            items
        };
        let encrypted = self.key.is_some();
        let mut seq = first;
        let mut msgs = items.map(|(body, t, unique)| {
            if encrypted && body.len() as u64 > crate::store::MAX_BODY - crypt::OVERHEAD as u64 {
                return Err(Error::usage(format!(
                    "message body of {} bytes is larger than the limit of {} bytes for an encrypted queue",
                    body.len(),
                    crate::store::MAX_BODY - crypt::OVERHEAD as u64
                )));
            }
            let body = sealer.seal(salt, seq, body)?;
            seq += 1;
            Ok(NewMessage {
                body,
                pushed_at_ms: t.pushed_at_ms,
                not_before_ms: t.not_before_ms,
                ttl_ms: t.ttl_ms,
                expires_at_ms: t.expires_at_ms,
                unique,
                priority: t.priority,
                group: t.group,
            })
        });
        let stored = self.store.push(&mut msgs)?;
        drop(msgs);
        if encrypted {
            sealed_for(&self.name, &stored, first)?;
        }
        if plan.is_empty() {
            return Ok(Placed {
                seqs: stored,
                duplicates: Vec::new(),
            });
        }
        let mut placed = Placed::default();
        let mut mine = stored.into_iter();
        for (i, holder) in plan.into_iter().enumerate() {
            match holder {
                Some(s) => {
                    placed.duplicates.push(i);
                    placed.seqs.push(s);
                }
                None => placed.seqs.extend(mine.next()),
            }
        }
        Ok(placed)
    }

    /// For `fsck`: opens every body still held in an encrypted queue with the
    /// key; those that fail their authentication tag (changed, forged or
    /// moved on disk) are returned as `(id, why)` and, with `mark`, marked
    /// corrupt, as `pop` would. Records a store finds damaged are left to
    /// the store's own check. `Ok(Err(why))`: nothing was checked (an
    /// encrypted queue without its key, or a key given for another queue).
    pub fn verify_bodies(
        &mut self,
        mark: bool,
    ) -> Result<std::result::Result<Vec<(String, String)>, String>> {
        let q = &mut self.reporting();
        match (q.store.key_id(), &q.key) {
            (None, None) => return Ok(Ok(Vec::new())),
            (Some(_), None) => {
                return Ok(Err(
                    "encrypted: give its key (--key-file) to check the bodies' authentication tags too".into(),
                ));
            }
            _ => {}
        }
        if let Err(e) = q.check_key() {
            return Ok(Err(format!("bodies not checked: {e}")));
        }
        let mut metas = Vec::new();
        q.store.scan(Scan::Live, &mut |m| {
            metas.push(*m);
            Step::Continue
        })?;
        let (mut bad, mut changes) = (Vec::new(), Vec::new());
        for m in metas {
            match q.open_body(&m) {
                Ok(Ok(_)) | Err(Error::Corrupt { .. }) => {}
                Ok(Err(why)) => {
                    bad.push((q.ids().format(m.seq), why));
                    changes.push(Change {
                        old: m.state,
                        new: m.moved(State::Corrupt),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        if mark && !changes.is_empty() {
            q.store.commit(&changes)?;
        }
        Ok(Ok(bad))
    }

    /// Fails (changing nothing) unless the key given can read this queue's
    /// bodies: commands that read bodies call it before anything else.
    fn check_key(&self) -> Result<()> {
        Sealer::new(&self.name, self.key.as_ref()).agree(self.store.key_id())
    }

    /// Finds up to `count` deliverable messages not in `seen`, the highest
    /// priority first and oldest first within one ([`Scan::Delivery`]);
    /// lapsed last attempts found on the way become dead letters in `changes`.
    /// Every message returned or changed is added to `seen`, so that calling
    /// again finds the next ones and changes nothing twice. Of a group only
    /// its oldest pending message may be delivered ([`group::Order`], which
    /// `order` keeps across the calls of one command, so a group's next
    /// message is not taken once its head was met). Messages in `gone`
    /// (acked by the same commit) are passed over as if already gone.
    fn deliverable(
        &mut self,
        count: usize,
        now: u64,
        gone: &SeqSet,
        seen: &mut SeqSet,
        order: &mut group::Order,
        changes: &mut Vec<Change>,
    ) -> Result<Vec<Meta>> {
        let mut found = Vec::new();
        self.store.scan_delivery(count, &mut |m| {
            if gone.contains(&m.seq) {
                return Step::Continue;
            }
            if seen.contains(&m.seq) {
                // Delivered by this command (its group is taken) or marked
                // dead by it.
                order.turn(m.group);
                return Step::Continue;
            }
            let s = standing(m, now);
            if matches!(s, Standing::Lapsed | Standing::Expired) {
                seen.insert(m.seq);
                // Marked dead as met, up to a bound: a million messages
                // whose TTL passed unseen must not make one pop hold (and
                // commit) a million changes. The rest are skipped all the
                // same, and marked by the pops that follow. One marked lets
                // go of its group (the next may go in this same pop); one
                // not marked yet still holds it.
                if changes.len() < MAX_MADE_DEAD {
                    changes.push(Change {
                        old: m.state,
                        new: made_dead(m, s),
                    });
                    return Step::Continue;
                }
            }
            if order.turn(m.group) == group::Turn::Behind {
                return Step::Continue;
            }
            if s == Standing::Deliverable {
                seen.insert(m.seq);
                found.push(*m);
                if found.len() >= count {
                    return Step::Stop;
                }
            }
            Step::Continue
        })?;
        Ok(found)
    }

    /// The body of `m` as it was pushed: read from the store (a damaged
    /// record is the store's `Error::Corrupt`) and opened with the key in an
    /// encrypted queue; `Ok(Err(why))` if it does not open.
    fn open_body(&mut self, m: &Meta) -> Result<std::result::Result<Vec<u8>, String>> {
        let stored = self.store.body(m)?;
        Ok(self.opened(m, stored))
    }

    /// A body as the store gave it, opened with the queue's key (as it is,
    /// if the queue has none), or why it cannot be.
    fn opened(&self, m: &Meta, stored: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
        let sealer = Sealer::new(&self.name, self.key.as_ref());
        sealer.open(self.store.key_id(), self.store.salt(), m.seq, stored)
    }

    /// Reads the bodies of `metas`; damaged ones are reported, marked corrupt
    /// in `changes` and left out.
    fn bodies(
        &mut self,
        metas: &[Meta],
        changes: &mut Vec<Change>,
    ) -> Result<Vec<(Meta, Vec<u8>)>> {
        let stored = self.store.bodies(metas);
        let mut out = Vec::with_capacity(metas.len());
        for (m, got) in metas.iter().zip(stored) {
            if let Some(b) = self.opened_or_skip(m, got, changes)? {
                out.push((*m, b));
            }
        }
        Ok(out)
    }

    /// The body of `m`, or `None` if it is damaged: reported, and marked
    /// corrupt in `changes`.
    fn body_or_skip(&mut self, m: &Meta, changes: &mut Vec<Change>) -> Result<Option<Vec<u8>>> {
        let stored = self.store.body(m);
        self.opened_or_skip(m, stored, changes)
    }

    /// [`Queue::body_or_skip`] of a body already read from the store.
    fn opened_or_skip(
        &mut self,
        m: &Meta,
        stored: Result<Vec<u8>>,
        changes: &mut Vec<Change>,
    ) -> Result<Option<Vec<u8>>> {
        {
            match stored.map(|b| self.opened(m, b)) {
                Ok(Ok(b)) => return Ok(Some(b)),
                Ok(Err(why)) => {
                    let id = self.ids().format(m.seq);
                    self.notices.push(format!(
                        "{}: message {id} cannot be decrypted: {why}; skipped",
                        self.name
                    ));
                    changes.push(Change {
                        old: m.state,
                        new: m.moved(State::Corrupt),
                    });
                }
                Err(Error::Corrupt { path, detail }) => {
                    let line = format!("{}: {}: {detail}; skipped", self.name, path.display());
                    self.notices.push(line);
                    changes.push(Change {
                        old: m.state,
                        new: m.moved(State::Corrupt),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Leases up to `count` messages for `lease`.
    pub fn pop(
        &mut self,
        count: usize,
        lease: Duration,
        max_attempts: u32,
        now: u64,
    ) -> Result<Vec<Delivery>> {
        Ok(self.ack_and_pop(&[], count, lease, max_attempts, now)?.1)
    }

    /// Acks the leased messages `receipts` name and leases up to `count`
    /// messages for `lease`, in one commit (one sync where there were two:
    /// a worker's finished job and its next one). It does what [`Queue::ack`]
    /// and then [`Queue::pop`] would: an acked message of an ordered group
    /// lets the group's next message be delivered by the same call. Stale
    /// receipts change nothing and are returned in the [`Settled`], as by
    /// `ack`; nothing is stored if anything fails (a queue whose key does
    /// not open it included).
    pub fn ack_and_pop(
        &mut self,
        receipts: &[String],
        count: usize,
        lease: Duration,
        max_attempts: u32,
        now: u64,
    ) -> Result<(Settled, Vec<Delivery>)> {
        let q = &mut self.reporting();
        q.check_key()?;
        let now = q.clock(now)?;
        let mut changes = Vec::new();
        let settled = q.settled(receipts, now, None, &mut changes, acked(now))?;
        // Acked by this call: met by the scan below as still leased, but
        // no longer their group's head.
        let gone: SeqSet = changes.iter().map(|c| c.new.seq).collect();
        let mut seen = SeqSet::default();
        let mut order = group::Order::default();
        let mut out = Vec::new();
        let mut tags = Tags::for_count(count);
        while out.len() < count {
            let found = q.deliverable(
                count - out.len(),
                now,
                &gone,
                &mut seen,
                &mut order,
                &mut changes,
            )?;
            if found.is_empty() {
                break;
            }
            out.reserve(found.len());
            changes.reserve(found.len());
            // A part at a time: the bodies read and the list of them are
            // then memory used again, not a fresh mapping each, whose page
            // faults were a fifth of `pop --count 100000`.
            for part in found.chunks(BODIES_AT_ONCE) {
                for (m, body) in q.bodies(part, &mut changes)? {
                    let tag = tags.next()?;
                    let new = Meta {
                        state: State::Leased,
                        attempts: m.attempts.saturating_add(1),
                        max_attempts,
                        until_ms: now.saturating_add(ms(lease)),
                        receipt: tag,
                        ..m
                    };
                    changes.push(Change { old: m.state, new });
                    out.push(Delivery {
                        receipt: q.ids().format_receipt(m.seq, &tag),
                        attempt: new.attempts,
                        body,
                    });
                }
            }
        }
        q.store.commit(&changes)?;
        Ok((settled, out))
    }

    /// Shows up to `count` deliverable messages without leasing them.
    pub fn peek(&mut self, count: usize, now: u64) -> Result<Vec<Peeked>> {
        let q = &mut self.reporting();
        q.check_key()?;
        let now = q.clock(now)?;
        let mut ignored = Vec::new();
        let mut seen = SeqSet::default();
        let mut order = group::Order::default();
        let mut out = Vec::new();
        while out.len() < count {
            let found = q.deliverable(
                count - out.len(),
                now,
                &SeqSet::default(),
                &mut seen,
                &mut order,
                &mut ignored,
            )?;
            if found.is_empty() {
                break;
            }
            for (m, body) in q.bodies(&found, &mut ignored)? {
                out.push(Peeked {
                    id: q.ids().format(m.seq),
                    attempt: m.attempts.saturating_add(1),
                    body,
                    last_failure: None,
                });
            }
        }
        Ok(out)
    }

    /// Shows up to `count` dead letters (leases that ran out on their last
    /// attempt included), oldest first, each with its last failure.
    pub fn peek_dead(&mut self, count: usize, now: u64) -> Result<Vec<Peeked>> {
        let q = &mut self.reporting();
        q.check_key()?;
        let now = q.clock(now)?;
        let mut dead = Vec::new();
        q.store.scan(Scan::Live, &mut |m| {
            if is_dead(m, now) {
                dead.push(*m);
            }
            if dead.len() >= count {
                Step::Stop
            } else {
                Step::Continue
            }
        })?;
        let mut ignored = Vec::new();
        let mut out = Vec::new();
        for (m, body) in q.bodies(&dead, &mut ignored)? {
            let last_failure = q.store.failure(m.seq)?;
            out.push(Peeked {
                id: q.ids().format(m.seq),
                attempt: m.attempts,
                body,
                last_failure,
            });
        }
        Ok(out)
    }

    /// Everything known of the message `id` (no body), or `None` if the
    /// queue holds no such message (never pushed, acked, purged).
    pub fn inspect(&mut self, id: &str, now: u64) -> Result<Option<Inspected>> {
        let q = &mut self.reporting();
        let now = q.clock(now)?;
        let Some(seq) = q.ids().parse(id) else {
            return Ok(None);
        };
        let Some(m) = q.store.get(seq)?.filter(|m| m.state.is_live()) else {
            return Ok(None);
        };
        let state = shown_state(&m, now);
        let last_failure = q.store.failure(seq)?;
        let unique = if m.keyed { q.store.unique(&m)? } else { None };
        Ok(Some(Inspected {
            unique,
            id: q.ids().format(seq),
            state: state.to_string(),
            attempts: m.attempts,
            pushed_at_ms: m.pushed_at_ms,
            ready_at_ms: (state == "delayed").then_some(m.until_ms),
            lease_until_ms: (state == "leased").then_some(m.until_ms),
            len: m.len,
            dead_at_ms: dead_since(&m, now),
            expires_at_ms: (m.expires_at_ms > 0).then_some(m.expires_at_ms),
            expired: is_expired(&m, now),
            priority: m.priority,
            group: m.group,
            last_failure,
        }))
    }

    /// Applies `decide` to the live delivery each receipt names, in one
    /// commit; stale or unknown receipts change nothing and are returned.
    fn settle(
        &mut self,
        receipts: &[String],
        now: u64,
        failure: Option<&Failure>,
        decide: impl FnMut(&Meta) -> Meta,
    ) -> Result<Settled> {
        let mut changes = Vec::new();
        let settled = self.settled(receipts, now, failure, &mut changes, decide)?;
        self.store.commit(&changes)?;
        Ok(settled)
    }

    /// [`Queue::settle`]'s changes, added to `changes` for the caller to
    /// commit. With `failure`, it is recorded as the last failure of each
    /// message settled (durably, before the commit: if a crash falls
    /// between, the record is still true, that attempt failed).
    fn settled(
        &mut self,
        receipts: &[String],
        now: u64,
        failure: Option<&Failure>,
        changes: &mut Vec<Change>,
        mut decide: impl FnMut(&Meta) -> Meta,
    ) -> Result<Settled> {
        let first = changes.len();
        let mut seen = SeqSet::default();
        let mut settled = Settled::default();
        if receipts.is_empty() {
            return Ok(settled);
        }
        let ids = self.ids();
        let parsed: Vec<Option<(u64, ReceiptTag)>> =
            receipts.iter().map(|r| ids.parse_receipt(r)).collect();
        let seqs: Vec<u64> = parsed.iter().flatten().map(|(seq, _)| *seq).collect();
        let mut metas = self.store.get_each(&seqs)?.into_iter();
        for (r, p) in receipts.iter().zip(parsed) {
            let live = match p {
                Some((_, tag)) => metas
                    .next()
                    .flatten()
                    .filter(|m| m.state == State::Leased && m.receipt == tag && m.until_ms > now),
                None => None,
            };
            match live {
                Some(m) => {
                    if seen.insert(m.seq) {
                        changes.push(Change {
                            old: m.state,
                            new: decide(&m),
                        });
                        settled.done += 1;
                    }
                }
                // Escaped: whatever was typed, the error stays one line.
                None => settled.stale.push(r.escape_debug().to_string()),
            }
        }
        if let Some(f) = failure {
            let kept: Vec<(u64, Failure)> = changes[first..]
                .iter()
                .map(|c| (c.new.seq, f.kept(c.new.attempts)))
                .collect();
            self.store.record_failures(&kept)?;
        }
        Ok(settled)
    }

    /// Deletes the leased messages the receipts name.
    pub fn ack(&mut self, receipts: &[String], now: u64) -> Result<Settled> {
        let q = &mut self.reporting();
        let now = q.clock(now)?;
        q.settle(receipts, now, None, acked(now))
    }

    /// Gives leased messages back, each after the delay `retry` gives for
    /// its attempts (a backoff grows with them, with its own random jitter
    /// per message); dead letters at `max_attempts`. `failure` says what
    /// went wrong with the attempt.
    pub fn nack(
        &mut self,
        receipts: &[String],
        retry: Retry,
        failure: Option<&Failure>,
        max_attempts: u32,
        now: u64,
    ) -> Result<Settled> {
        let q = &mut self.reporting();
        let now = q.clock(now)?;
        let mut seed = [0u8; 8];
        if matches!(retry, Retry::Backoff(_)) {
            getrandom::fill(&mut seed).map_err(|e| {
                Error::Runtime(format!("cannot get random bytes for a backoff: {e}"))
            })?;
        }
        let seed = u64::from_le_bytes(seed);
        q.settle(receipts, now, failure, |m| {
            let delay = retry.delay(m.attempts, backoff::unit(seed, m.seq));
            // 0 means no limit, as for a lease that runs out (`standing`).
            if ttl_over(m, now) {
                // Its TTL passed during the attempt: not delivered again
                // (first, as when a lease runs out: `standing`).
                Meta {
                    until_ms: now,
                    ..m.moved(State::Expired)
                }
            } else if max_attempts > 0 && m.attempts >= max_attempts {
                // Dead since now (`dead_since`).
                Meta {
                    until_ms: now,
                    ..m.moved(State::Dead)
                }
            } else if delay.is_zero() {
                m.moved(State::Ready)
            } else {
                Meta {
                    until_ms: now.saturating_add(ms(delay)),
                    ..m.moved(State::Delayed)
                }
            }
        })
    }

    /// Undoes a pop whose messages never reached anyone (`pop` could not
    /// write its output): the leased messages the receipts name are ready
    /// again at once, and the delivery is not counted (`attempts` goes back
    /// to what it was before the pop), so it cannot make a dead letter.
    pub fn give_back(&mut self, receipts: &[String], now: u64) -> Result<Settled> {
        let q = &mut self.reporting();
        let now = q.clock(now)?;
        q.settle(receipts, now, None, |m| Meta {
            attempts: m.attempts.saturating_sub(1),
            ..m.moved(State::Ready)
        })
    }

    /// Makes leases end `lease` from now.
    pub fn extend(&mut self, receipts: &[String], lease: Duration, now: u64) -> Result<Settled> {
        let q = &mut self.reporting();
        let now = q.clock(now)?;
        q.settle(receipts, now, None, |m| Meta {
            until_ms: now.saturating_add(ms(lease)),
            ..*m
        })
    }

    /// Moves dead letters (all, or those named) back to ready with no
    /// attempts; each keeps its last failure.
    pub fn retry(&mut self, ids: &[String], now: u64) -> Result<Retried> {
        let q = &mut self.reporting();
        let now = q.clock(now)?;
        let (mut dead, missing) = q.dead_letters(ids, now)?;
        // A keyed one that is a dead letter only by the clock (its last
        // lease ran out, its TTL passed) is made one first, so that it
        // lets go of its key as every dead letter does: `retry` brings a
        // message back without its key (crate::model::unique).
        let mut made = Vec::new();
        for m in dead.iter_mut().filter(|m| m.keyed && m.state.is_pending()) {
            let new = made_dead(m, standing(m, now));
            made.push(Change { old: m.state, new });
            *m = new;
        }
        q.store.commit(&made)?;
        // One in a group comes back as its group's oldest message, so it
        // is next; while a later one of its group is leased, it waits for
        // that lease's end (as a retry delay), so a group never has two in
        // flight.
        let mut leased: HashMap<GroupKey, u64> = HashMap::new();
        if dead.iter().any(|m| m.group.is_some()) {
            q.store.scan(Scan::Pending, &mut |m| {
                if let (Some(g), State::Leased, true) = (m.group, m.state, m.until_ms > now) {
                    let until = leased.entry(g).or_default();
                    *until = (*until).max(m.until_ms);
                }
                Step::Continue
            })?;
        }
        let mut changes = Vec::with_capacity(dead.len());
        for m in &dead {
            let (_, expires_at_ms) = q.ttl_again(m, now)?;
            let back = match m.group.and_then(|g| leased.get(&g)) {
                Some(&until) => Meta {
                    until_ms: until,
                    ..m.moved(State::Delayed)
                },
                None => m.moved(State::Ready),
            };
            changes.push(Change {
                old: m.state,
                new: Meta {
                    attempts: 0,
                    max_attempts: 0,
                    expires_at_ms,
                    ..back
                },
            });
        }
        q.store.commit(&changes)?;
        Ok(Retried {
            moved: changes.len() as u64,
            missing,
        })
    }

    /// The TTL of `m` (ms) and its expiry counted again from `now`, for a
    /// `retry` that brings it back: (0, 0) for a message without one. A
    /// record too damaged to say comes back without one: the next `pop`
    /// finds the damage and sets it aside, as for any damaged record.
    fn ttl_again(&mut self, m: &Meta, now: u64) -> Result<(u64, u64)> {
        if m.expires_at_ms == 0 {
            return Ok((0, 0));
        }
        let ttl_ms = match self.store.ttl_ms(m) {
            Err(Error::Corrupt { .. }) => 0,
            r => r?,
        };
        Ok((ttl_ms, ttl::expiry(now, ttl_ms)))
    }

    /// The dead letters `retry` takes, oldest first: all (leases that ran out
    /// on their last attempt, and messages whose TTL passed, included), or
    /// those `ids` name; and the ids named that are not dead letters of
    /// this queue.
    fn dead_letters(&mut self, ids: &[String], now: u64) -> Result<(Vec<Meta>, Vec<String>)> {
        let mut dead = Vec::new();
        let mut missing = Vec::new();
        if ids.is_empty() {
            self.store.scan(Scan::Live, &mut |m| {
                if m.state.is_dead() {
                    dead.push(*m);
                }
                Step::Continue
            })?;
            // Leases that ran out on their last attempt, and messages whose
            // TTL passed, are dead letters too. (A scan of the pending ones
            // of its own: on the fs store it moves the pending cursor past
            // finished messages, which a rebuild of lost slots relies on.)
            let mut lapsed = Vec::new();
            self.store.scan(Scan::Pending, &mut |m| {
                if matches!(standing(m, now), Standing::Lapsed | Standing::Expired) {
                    lapsed.push(*m);
                }
                Step::Continue
            })?;
            dead.extend(lapsed);
            dead.sort_by_key(|m| m.seq);
        } else {
            let mut seen = HashSet::new();
            for id in ids {
                let m = match self.ids().parse(id) {
                    Some(seq) => self.store.get(seq)?,
                    None => None,
                };
                match m {
                    Some(m) if is_dead(&m, now) => {
                        if seen.insert(m.seq) {
                            dead.push(m);
                        }
                    }
                    _ => missing.push(id.escape_debug().to_string()),
                }
            }
        }
        Ok((dead, missing))
    }

    /// `retry --to`: moves dead letters (all, or those named) into queue
    /// `to` of the same spool, where each starts over as a new message
    /// (ready, no attempts, a new id; its push time and last failure kept),
    /// and leaves this queue (counted as purged here). Each batch of up to
    /// [`MOVE_BATCH`] messages (or [`MOVE_BATCH_BYTES`] of bodies) moves in
    /// one step a crash cannot split ([`Store::move_out`]). Bodies are opened
    /// with the key and sealed again for their new queue and id.
    pub fn retry_to(&mut self, to: &str, ids: &[String], now: u64) -> Result<Retried> {
        let q = &mut self.reporting();
        if to == q.name {
            return Err(crate::store::into_itself(to));
        }
        q.check_key()?;
        let now = q.clock(now)?;
        let (dead, missing) = q.dead_letters(ids, now)?;
        // What finding them locked (PostgreSQL: every live row) is let go:
        // each batch locks its own messages again, below.
        q.store.end_reads()?;
        let mut out = Retried { moved: 0, missing };
        let key = q.key.clone();
        let mut rest = &dead[..];
        while !rest.is_empty() {
            // The batch, each message read again under its lock (another
            // command may have retried or purged it since the list was
            // made), before the queues' own rows are locked: the order
            // every commit takes its locks in, so none waits on another.
            let (mut batch, mut bytes) = (Vec::new(), 0u64);
            while let Some((m, tail)) = rest.split_first() {
                if batch.len() >= MOVE_BATCH || (bytes >= MOVE_BATCH_BYTES && !batch.is_empty()) {
                    break;
                }
                rest = tail;
                match q.store.get(m.seq)?.filter(|m| is_dead(m, now)) {
                    Some(m) => {
                        bytes += u64::from(m.len);
                        batch.push(m);
                    }
                    None if !ids.is_empty() => out.missing.push(q.ids().format(m.seq)),
                    None => {}
                }
            }
            if batch.is_empty() {
                continue;
            }
            let target = q.store.move_target(to)?;
            let mut sealer = Sealer::new(to, key.as_ref());
            let key_id = if target.pushed == 0 {
                Some(sealer.key_id())
            } else {
                sealer.agree(target.key_id)?;
                None
            };
            let (mut msgs, mut changes) = (Vec::new(), Vec::new());
            for m in batch {
                let Some(body) = q.body_or_skip(&m, &mut changes)? else {
                    continue;
                };
                let seq = target.next_seq + msgs.len() as u64;
                let body = sealer.seal(target.salt, seq, &body)?.into_owned();
                let (ttl_ms, expires_at_ms) = q.ttl_again(&m, now)?;
                msgs.push(Incoming {
                    msg: NewMessage {
                        body: body.into(),
                        pushed_at_ms: m.pushed_at_ms,
                        not_before_ms: 0,
                        ttl_ms,
                        expires_at_ms,
                        // A key belongs to its queue: it does not move.
                        unique: None,
                        priority: m.priority,
                        group: m.group,
                    },
                    failure: q.store.failure(m.seq)?,
                });
                changes.push(Change {
                    old: m.state,
                    new: m.moved(State::Purged),
                });
            }
            let n = msgs.len() as u64;
            let seqs = q.store.move_out(key_id, msgs, &changes)?;
            sealed_for(to, &seqs, target.next_seq)?;
            out.moved += n;
        }
        Ok(out)
    }

    /// Deletes every ready and delayed message (or, with `dead`, every dead
    /// letter; with `older_than` too, only those dead for at least that
    /// long, as [`dead_since`] knows: one whose time is unknown is kept).
    /// Returns how many.
    pub fn purge(&mut self, dead: bool, older_than: Option<Duration>, now: u64) -> Result<u64> {
        let q = &mut self.reporting();
        let now = q.clock(now)?;
        let mut changes = Vec::new();
        let from = if dead { Scan::Live } else { Scan::Pending };
        let cutoff = older_than.map(|d| now.saturating_sub(ms(d)));
        q.store.scan(from, &mut |m| {
            let take = if dead {
                is_dead(m, now) && cutoff.is_none_or(|c| dead_since(m, now).is_some_and(|t| t <= c))
            } else {
                // Ready and delayed ones; one whose TTL passed is a dead letter.
                let s = standing(m, now);
                (matches!(m.state, State::Ready | State::Delayed) && s != Standing::Expired)
                    || s == Standing::Deliverable
            };
            if take {
                changes.push(Change {
                    old: m.state,
                    new: m.moved(State::Purged),
                });
            }
            Step::Continue
        })?;
        q.store.commit(&changes)?;
        Ok(changes.len() as u64)
    }

    /// Every message that still holds a body, oldest first, as of `now`,
    /// handed to `emit` as soon as its body is read (one body in memory at
    /// a time; [`Step::Stop`] ends the export early).
    pub fn export(&mut self, now: u64, emit: &mut dyn FnMut(Exported) -> Step) -> Result<()> {
        let q = &mut self.reporting();
        q.check_key()?;
        let now = q.clock(now)?;
        let mut metas = Vec::new();
        q.store.scan(Scan::Live, &mut |m| {
            metas.push(*m);
            Step::Continue
        })?;
        let mut changes = Vec::new();
        for m in metas {
            let Some(body) = q.body_or_skip(&m, &mut changes)? else {
                continue;
            };
            let state = shown_state(&m, now);
            let last_failure = q.store.failure(m.seq)?;
            let ttl = if m.expires_at_ms > 0 {
                Some((q.store.ttl_ms(&m)?, m.expires_at_ms))
            } else {
                None
            };
            let step = emit(Exported {
                id: q.ids().format(m.seq),
                state: state.to_string(),
                attempts: m.attempts,
                pushed_at_ms: m.pushed_at_ms,
                ready_at_ms: (state == "delayed").then_some(m.until_ms),
                dead_at_ms: dead_since(&m, now),
                ttl,
                expired: is_expired(&m, now),
                unique: q.held_key(&m)?,
                priority: m.priority,
                group: m.group,
                body,
                last_failure,
            });
            if step == Step::Stop {
                break;
            }
        }
        // Damaged records found on the way are marked, as pop would.
        q.store.commit(&changes)
    }

    /// Pushes exported messages back, in order, in one push (one fsync):
    /// delayed ones keep their time, dead ones come back dead with their
    /// attempts (expired ones expired), the rest ready (a lease does not
    /// survive an export); each keeps its last failure and its TTL, which
    /// ends when it did, and a waiting one its unique key (one the queue
    /// holds already is not stored). Returns the new ids (a duplicate's is
    /// its holder's) and which were not stored.
    pub fn import(&mut self, msgs: Vec<Exported>, now: u64) -> Result<Imported> {
        let q = &mut self.reporting();
        let now = q.clock(now)?;
        let plan: Vec<(String, u32, u64, bool)> = msgs
            .iter()
            .map(|m| {
                let dead_at = m.dead_at_ms.unwrap_or(0);
                (m.state.clone(), m.attempts, dead_at, m.expired)
            })
            .collect();
        let mut news = msgs.iter().map(|m| {
            let not_before = m
                .ready_at_ms
                .filter(|&t| t > now && m.state == "delayed")
                .unwrap_or(0);
            let (ttl_ms, expires_at_ms) = m.ttl.unwrap_or((0, 0));
            let times = Times {
                pushed_at_ms: m.pushed_at_ms,
                not_before_ms: not_before,
                ttl_ms,
                expires_at_ms,
                priority: m.priority,
                group: m.group,
            };
            // A dead letter holds no key.
            let unique = m.unique.filter(|_| m.state != "dead");
            (&m.body[..], times, unique)
        });
        let keyed = msgs.iter().any(|m| m.unique.is_some() && m.state != "dead");
        let placed = q.push_sealed(&mut news, keyed, now)?;
        // Those whose key the queue held were not stored: nothing more of them.
        let stored: Vec<Option<u64>> = placed.each().map(|(s, dup)| (!dup).then_some(s)).collect();
        let failures: Vec<(u64, Failure)> = stored
            .iter()
            .zip(&msgs)
            .filter_map(|(seq, m)| Some(((*seq)?, m.last_failure.clone()?)))
            .collect();
        q.store.record_failures(&failures)?;
        let mut changes = Vec::new();
        for (seq, (state, attempts, dead_at, expired)) in stored.iter().zip(&plan) {
            if state == "dead"
                && let Some(seq) = seq
                && let Some(m) = q.store.get(*seq)?
            {
                changes.push(Change {
                    old: m.state,
                    new: Meta {
                        attempts: *attempts,
                        // Unknown (an export made before it was kept) stays unknown.
                        until_ms: *dead_at,
                        ..m.moved(if *expired {
                            State::Expired
                        } else {
                            State::Dead
                        })
                    },
                });
            }
        }
        q.store.commit(&changes)?;
        let ids = q.ids();
        Ok(Imported {
            ids: placed.seqs.into_iter().map(|s| ids.format(s)).collect(),
            duplicates: placed.duplicates,
        })
    }

    /// The queue's figures at time `now`. Counters come from the index;
    /// only leased and delayed messages (whose standing depends on the
    /// clock) are visited, oldest first, plus the oldest ready one.
    pub fn stats(&mut self, now: u64) -> Result<Stats> {
        let q = &mut self.reporting();
        let now = q.clock(now)?;
        let c: Counters = q.store.counters();
        let mut s = Stats {
            queue: q.name.clone(),
            ready: c.ready,
            leased: c.leased,
            delayed: c.delayed,
            dead: c.dead + c.expired,
            expired: c.expired,
            pushed: c.pushed,
            acked: c.acked,
            purged: c.purged,
            corrupt: c.corrupt,
            bytes: c.bytes,
            segments: q.store.segments(),
            disk_bytes: q.store.disk_bytes()?,
            oldest_ready_age_ms: 0,
            groups_blocked: 0,
        };
        // A queue that has had groups is read whole, to find each group's
        // head: O(pending), where one without reads only what the timed
        // messages' count needs.
        let grouped = q.store.grouped()?;
        let mut heads = group::Blocked::default();
        let timed = c.leased + c.delayed;
        let mut seen_timed = 0;
        let mut oldest: Option<u64> = None;
        q.store.scan(Scan::Pending, &mut |m| {
            let was_timed = matches!(m.state, State::Leased | State::Delayed);
            if was_timed {
                seen_timed += 1;
            }
            match (m.state, standing(m, now)) {
                (State::Leased, Standing::Deliverable) => {
                    s.leased -= 1;
                    s.ready += 1;
                }
                (State::Leased, Standing::Lapsed) => {
                    s.leased -= 1;
                    s.dead += 1;
                }
                // Ready ones past their TTL are counted when a pop meets
                // them: finding them all would read every ready message.
                (State::Leased | State::Delayed, Standing::Expired) => {
                    if m.state == State::Leased {
                        s.leased -= 1;
                    } else {
                        s.delayed -= 1;
                    }
                    s.dead += 1;
                    s.expired += 1;
                }
                (State::Delayed, Standing::Deliverable) => {
                    s.delayed -= 1;
                    s.ready += 1;
                }
                _ => {}
            }
            if oldest.is_none() && standing(m, now) == Standing::Deliverable {
                oldest = Some(m.pushed_at_ms);
            }
            if let Some(g) = m.group {
                heads.add(g, standing(m, now) != Standing::Waiting);
            }
            if seen_timed >= timed && (oldest.is_some() || c.ready == 0) && !grouped {
                Step::Stop
            } else {
                Step::Continue
            }
        })?;
        s.oldest_ready_age_ms = oldest.map_or(0, |t| now.saturating_sub(t));
        s.groups_blocked = heads.count();
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::{format_id, parse_id};

    #[test]
    fn ids_and_receipts_round_trip() {
        assert_eq!(parse_id(&format_id(5, u64::MAX), u64::MAX), Some(5));
        assert_eq!(parse_id("ff", 0), None);
        let tag = [0xab; 12];
        let r = format_receipt(7, 99, &tag);
        assert_eq!(r.len(), 40);
        assert_eq!(parse_receipt(&r, 99), Some((7, tag)));
        assert_eq!(parse_receipt("zz", 0), None);
        assert_eq!(parse_receipt(&"g".repeat(40), 0), None);
    }

    #[test]
    fn seqs_a_power_of_two_apart_spread_over_the_buckets() {
        use std::hash::BuildHasher;
        let hasher = std::hash::BuildHasherDefault::<SeqHasher>::default();
        for stride in [1u64, 2, 1 << 10, 1 << 20, 1 << 32, 3 << 40] {
            // 4,096 seqs in 4,096 buckets (the hash's low 12 bits): at
            // random about 2,590 are taken; a bare multiplication leaves
            // seqs 2^k apart in 2^(12-k) of them, one folded multiplication
            // seqs 2^20 apart in 2,286.
            let taken: HashSet<u64> = (1..=4096u64)
                .map(|i| hasher.hash_one(i * stride) & 4095)
                .collect();
            assert!(
                taken.len() > 2400,
                "stride {stride}: {} buckets",
                taken.len()
            );
        }
        let mut set = SeqSet::default();
        assert!(set.insert(1 << 40) && !set.insert(1 << 40) && set.contains(&(1 << 40)));
    }

    fn meta(state: State, attempts: u32, max: u32, until: u64) -> Meta {
        Meta {
            seq: 1,
            state,
            attempts,
            max_attempts: max,
            pushed_at_ms: 0,
            until_ms: until,
            receipt: [0; 12],
            len: 0,
            loc: Default::default(),
            expires_at_ms: 0,
            keyed: false,
            priority: 0,
            group: None,
        }
    }

    #[test]
    fn standing_follows_the_clock() {
        assert_eq!(
            standing(&meta(State::Ready, 0, 0, 0), 10),
            Standing::Deliverable
        );
        assert_eq!(
            standing(&meta(State::Delayed, 0, 0, 20), 10),
            Standing::Waiting
        );
        assert_eq!(
            standing(&meta(State::Delayed, 0, 0, 10), 10),
            Standing::Deliverable
        );
        assert_eq!(
            standing(&meta(State::Leased, 1, 5, 20), 10),
            Standing::Waiting
        );
        assert_eq!(
            standing(&meta(State::Leased, 1, 5, 10), 10),
            Standing::Deliverable
        );
        assert_eq!(
            standing(&meta(State::Leased, 5, 5, 10), 10),
            Standing::Lapsed
        );
        assert_eq!(standing(&meta(State::Dead, 5, 5, 0), 10), Standing::Done);
        assert_eq!(standing(&meta(State::Acked, 1, 5, 0), 10), Standing::Done);
    }

    #[test]
    fn a_ttl_ends_delivery_but_not_a_live_lease() {
        let ttl = |m: Meta, at: u64| Meta {
            expires_at_ms: at,
            ..m
        };
        let ready = ttl(meta(State::Ready, 0, 0, 0), 10);
        assert_eq!(standing(&ready, 9), Standing::Deliverable);
        assert_eq!(standing(&ready, 10), Standing::Expired);
        // A delay that would end after the TTL: expired once the TTL ends.
        let delayed = ttl(meta(State::Delayed, 1, 0, 50), 10);
        assert_eq!(standing(&delayed, 9), Standing::Waiting);
        assert_eq!(standing(&delayed, 10), Standing::Expired);
        // A live lease may still be acked; when it runs out, expired then.
        let leased = ttl(meta(State::Leased, 5, 5, 20), 10);
        assert_eq!(standing(&leased, 15), Standing::Waiting);
        assert_eq!(standing(&leased, 20), Standing::Expired);
        assert_eq!(expired_at(&leased), 20);
        assert_eq!(dead_since(&leased, 25), Some(20));
        let dead = made_dead(&leased, Standing::Expired);
        assert_eq!(
            (dead.state, dead.until_ms, dead.expires_at_ms),
            (State::Expired, 20, 10)
        );
        assert!(is_dead(&dead, 30) && is_expired(&dead, 30));
        assert_eq!(shown_state(&dead, 30), "dead");
    }
}
