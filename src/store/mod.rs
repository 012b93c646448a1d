//! The seam between queue logic and storage.
//!
//! [`crate::queue`] decides everything about delivery (leases, attempts, dead
//! letters, delays, receipts) in terms of [`Meta`] values; a [`Store`] only
//! keeps them durable, finds them in delivery order and returns bodies. The
//! default store is [`crate::store::fs::FsStore`] (segment files plus an index).
//!
//! Invariants every store keeps:
//! * `commit` is atomic: after a crash either every change of a call is seen or
//!   none is, and it is on stable storage when `commit` returns.
//! * `push` is durable when it returns.
//! * [`Counters`] always equal what applying [`Counters::apply`] to every
//!   transition ever committed gives; they are never recomputed by a scan.

pub mod fs;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use crate::base::error::Result;
use crate::model::crypt::KeyId;
use crate::model::failure::Failure;
pub use crate::model::unique::{Hold, UniqueKey};
use std::borrow::Cow;
use std::path::PathBuf;

/// Where a message is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    Ready = 1,
    Delayed = 2,
    Leased = 3,
    Dead = 4,
    Acked = 5,
    Purged = 6,
    /// Its record is damaged: reported once and never served.
    Corrupt = 7,
    /// A dead letter because its `--ttl` passed before it was acked: kept,
    /// never delivered again until `retry` (which counts the TTL again).
    Expired = 8,
}

impl State {
    pub fn from_u8(b: u8) -> Option<State> {
        Some(match b {
            1 => State::Ready,
            2 => State::Delayed,
            3 => State::Leased,
            4 => State::Dead,
            5 => State::Acked,
            6 => State::Purged,
            7 => State::Corrupt,
            8 => State::Expired,
            _ => return None,
        })
    }

    /// Whether the message still holds a body (not acked, purged or lost).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            State::Ready | State::Delayed | State::Leased | State::Dead | State::Expired
        )
    }

    /// Whether the message is a dead letter (failed, or past its TTL):
    /// kept until `retry` or `purge --dead`.
    pub fn is_dead(self) -> bool {
        matches!(self, State::Dead | State::Expired)
    }

    /// Whether the message may yet be delivered (without a `retry`).
    pub fn is_pending(self) -> bool {
        matches!(self, State::Ready | State::Delayed | State::Leased)
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Delayed => "delayed",
            State::Leased => "leased",
            State::Dead => "dead",
            State::Acked => "acked",
            State::Purged => "purged",
            State::Corrupt => "corrupt",
            State::Expired => "expired",
        }
    }
}

/// The largest body accepted (1 GiB), on every store (the fs store's record
/// format, [`crate::store::fs::record`], has room for no more).
pub const MAX_BODY: u64 = 1 << 30;

pub use crate::model::ids::ReceiptTag;

/// What the queue logic knows of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Sequence number in the queue: the message id.
    pub seq: u64,
    pub state: State,
    /// Deliveries so far.
    pub attempts: u32,
    /// For a leased message: the `--max-attempts` of the pop that leased it,
    /// applied if the lease expires.
    pub max_attempts: u32,
    pub pushed_at_ms: u64,
    /// Leased: when the lease ends. Delayed: when it becomes ready. Dead:
    /// when it became a dead letter (0 if not known). Else 0.
    pub until_ms: u64,
    /// Leased: the current delivery's receipt tag. Else zero.
    pub receipt: ReceiptTag,
    /// Body length in bytes.
    pub len: u32,
    /// Where the store keeps the body; the queue logic only copies it along.
    pub loc: Loc,
    /// When its `--ttl` ends (a whole second, in ms since the epoch; 0: it
    /// has none). Expired: when it expired.
    pub expires_at_ms: u64,
    /// It was pushed with a unique key (`push --key`): the store keeps the
    /// key and its window with it ([`Store::unique`]). Acked: `until_ms`
    /// is when it was acked, which starts its window.
    pub keyed: bool,
    /// Its `push --priority`, 0 to [`MAX_PRIORITY`] (0 for a plain push):
    /// [`Scan::Delivery`] visits higher ones first.
    pub priority: u8,
    /// Its `push --group` ([`crate::model::group`]); a grouped message has
    /// priority 0, so every scan meets a group's messages in push order.
    pub group: Option<GroupKey>,
}

pub use crate::model::group::GroupKey;
pub use crate::model::input::MAX_PRIORITY;

impl Meta {
    /// The message moved to `state`, its delivery fields (deadline,
    /// receipt) reset.
    pub fn moved(&self, state: State) -> Meta {
        Meta {
            state,
            until_ms: 0,
            receipt: [0; 12],
            ..*self
        }
    }
}

/// A store's own address for a message's body (for the file store: the
/// segment's base seq and the record's offset in it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loc {
    pub segment: u64,
    pub offset: u32,
    /// The record has the long header (a TTL), so the slot has the long
    /// layout (`crate::store::fs::record`, `crate::store::fs::index`).
    pub long: bool,
}

/// One state change, as committed.
#[derive(Clone, Copy, Debug)]
pub struct Change {
    pub old: State,
    pub new: Meta,
}

/// A message to push.
pub struct NewMessage<'a> {
    /// As the store keeps it (sealed by [`crate::model::crypt`] in an encrypted queue).
    pub body: Cow<'a, [u8]>,
    pub pushed_at_ms: u64,
    /// 0 for ready at once.
    pub not_before_ms: u64,
    /// Its `--ttl` in ms, a whole number of seconds (0: none).
    pub ttl_ms: u64,
    /// When the TTL ends: [`crate::model::ttl::expiry`] of the push (or the
    /// retry that brought it back), 0 with no TTL.
    pub expires_at_ms: u64,
    /// Its unique key and `--unique-for` window (ms), if it has one: the
    /// store keeps both with the message and makes it the key's
    /// [`Hold`], replacing the key's hold of an earlier message (the queue
    /// pushes a keyed message only once the key is free).
    pub unique: Option<(UniqueKey, u64)>,
    /// Its `--priority`, 0 to [`MAX_PRIORITY`].
    pub priority: u8,
    /// Its `--group` (then its priority is 0).
    pub group: Option<GroupKey>,
}

impl NewMessage<'_> {
    /// What a store keeps of the message once pushed as `seq`, its body at
    /// `loc`: ready, or delayed until `not_before_ms`, never delivered. The
    /// same on every store.
    pub fn meta(&self, seq: u64, loc: Loc) -> Meta {
        Meta {
            seq,
            state: if self.not_before_ms > 0 {
                State::Delayed
            } else {
                State::Ready
            },
            attempts: 0,
            max_attempts: 0,
            pushed_at_ms: self.pushed_at_ms,
            until_ms: self.not_before_ms,
            receipt: [0; 12],
            len: self.body.len() as u32,
            loc,
            // An expiry comes with a TTL only (retry counts it again from that).
            expires_at_ms: if self.ttl_ms > 0 {
                self.expires_at_ms
            } else {
                0
            },
            keyed: self.unique.is_some(),
            priority: self.priority,
            group: self.group,
        }
    }

    /// A usage error if the body is over the limit every store keeps.
    pub fn check_size(&self) -> Result<()> {
        if self.body.len() as u64 > MAX_BODY {
            return Err(crate::base::error::Error::usage(format!(
                "message body of {} bytes is larger than the limit of {} bytes",
                self.body.len(),
                MAX_BODY
            )));
        }
        Ok(())
    }
}

/// Counts by stored state, and totals since the queue was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub ready: u64,
    pub delayed: u64,
    pub leased: u64,
    pub dead: u64,
    pub pushed: u64,
    pub acked: u64,
    pub purged: u64,
    pub corrupt: u64,
    /// Body bytes of live messages.
    pub bytes: u64,
    /// Dead letters that expired ([`State::Expired`]); not in `dead`.
    pub expired: u64,
}

impl Counters {
    fn slot(&mut self, s: State) -> &mut u64 {
        match s {
            State::Ready => &mut self.ready,
            State::Delayed => &mut self.delayed,
            State::Leased => &mut self.leased,
            State::Dead => &mut self.dead,
            State::Acked => &mut self.acked,
            State::Purged => &mut self.purged,
            State::Corrupt => &mut self.corrupt,
            State::Expired => &mut self.expired,
        }
    }

    /// What a check of a database store says when its stored counters
    /// disagree with what its rows hold (`None`: they agree).
    pub fn rows_disagree(&self, rows: &Counters) -> Option<String> {
        let live = |c: &Counters| (c.ready, c.delayed, c.leased, c.dead, c.expired, c.bytes);
        let (want, got) = (live(self), live(rows));
        (want != got).then(|| {
            format!(
                "counters (ready, delayed, leased, dead, expired, bytes) say {want:?} but the rows hold {got:?}"
            )
        })
    }

    /// A message of `len` bytes enters the queue in state `s`.
    pub fn add(&mut self, s: State, len: u32) {
        self.pushed += 1;
        *self.slot(s) += 1;
        if s.is_live() {
            self.bytes += u64::from(len);
        }
    }

    /// A message of `len` bytes moves from `old` to `new`. Acked, purged and
    /// corrupt are running totals: nothing leaves them except by `retry`
    /// of a dead letter, which is live.
    pub fn apply(&mut self, old: State, new: State, len: u32) {
        if old == new {
            return;
        }
        let from = self.slot(old);
        *from = from.saturating_sub(1);
        *self.slot(new) += 1;
        match (old.is_live(), new.is_live()) {
            (true, false) => self.bytes = self.bytes.saturating_sub(u64::from(len)),
            (false, true) => self.bytes += u64::from(len),
            _ => {}
        }
    }
}

/// A new queue's salt: random, so that ids (made from the salt and the seq, see crate::model::ids) of different
/// queues do not collide.
pub fn new_salt() -> Result<u64> {
    getrandom::u64()
        .map_err(|e| crate::base::error::Error::Runtime(format!("cannot get random bytes: {e}")))
}

/// Whether a scan goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Continue,
    Stop,
}

/// Where a scan starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// The oldest message that may still be delivered (ready, delayed, leased).
    Pending,
    /// The oldest message that still holds a body (dead letters included).
    Live,
    /// The pending messages in the order `pop` serves them: the highest
    /// priority first, oldest first within one. A store reaches the first
    /// message of each priority without reading those of the others (a
    /// lane per priority), so a pop stays O(1) in the messages waiting.
    Delivery,
}

/// The most messages `retry --to` moves in one step ([`Store::move_out`]).
pub const MOVE_BATCH: usize = 1000;

/// Body bytes after which `retry --to` ends a step (a body over it moves
/// alone): what a move holds in memory.
pub const MOVE_BATCH_BYTES: u64 = 64 << 20;

/// The target of a move ([`Store::move_target`]): what sealing bodies for it
/// needs, as of the lock the move holds on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub salt: u64,
    /// The seq the first message moved in gets (the rest follow in order).
    pub next_seq: u64,
    pub key_id: Option<KeyId>,
    /// Messages ever pushed to it: 0 for a new queue, which takes the key id
    /// the move gives.
    pub pushed: u64,
}

/// One message a move brings into its target.
pub struct Incoming<'a> {
    pub msg: NewMessage<'a>,
    /// Its last failure, kept for reference.
    pub failure: Option<Failure>,
}

/// The messages of a move and, apart, the failures of those that have one
/// (by their place in the move).
pub fn split_incoming(msgs: Vec<Incoming<'_>>) -> (Vec<NewMessage<'_>>, Vec<(usize, Failure)>) {
    let mut failures = Vec::new();
    let news = msgs
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            if let Some(f) = m.failure {
                failures.push((i, f));
            }
            m.msg
        })
        .collect();
    (news, failures)
}

/// The error of a move of a queue into itself.
pub fn into_itself(name: &str) -> crate::base::error::Error {
    crate::base::error::Error::usage(format!("{name}: a queue cannot be moved into itself"))
}

/// The error of a [`Store::move_out`] with no [`Store::move_target`] before it.
pub fn no_target(place: &dyn std::fmt::Display) -> crate::base::error::Error {
    crate::base::error::Error::Runtime(format!("{place}: a move without a target"))
}

/// The failures [`split_incoming`] set apart, by the seqs their messages got.
pub fn failures_at(seqs: &[u64], failures: Vec<(usize, Failure)>) -> Vec<(u64, Failure)> {
    failures
        .into_iter()
        .filter_map(|(i, f)| Some((*seqs.get(i)?, f)))
        .collect()
}

/// What [`Store::restore`] asks for each message: its body as the store
/// keeps it, its `--ttl` in ms (0: none) and its unique key and window.
pub struct Restored {
    pub body: Vec<u8>,
    pub ttl_ms: u64,
    pub unique: Option<(UniqueKey, u64)>,
}

/// Whether a change lets go of a key's hold: a keyed message that was
/// pending is done (acked, dead, expired, purged, corrupt). A store then
/// sets the hold's `free_at_ms` to [`crate::model::unique::free_at`] (of the ack time for an
/// ack), if the hold is still this message's and still live (`free_at_ms`
/// 0): a message brought back by `retry` holds no key.
pub fn releases(c: &Change) -> bool {
    c.new.keyed && c.old.is_pending() && !c.new.state.is_pending()
}

/// The `free_at_ms` a change that [`releases`] a hold of window
/// `window_ms` gives it.
pub fn released_at(c: &Change, window_ms: u64) -> u64 {
    let acked = (c.new.state == State::Acked).then_some(c.new.until_ms);
    crate::model::unique::free_at(acked, window_ms)
}

/// Storage for one queue, held under the queue's lock.
pub trait Store {
    /// Appends messages in order and makes them durable. Returns their seqs.
    fn push(&mut self, msgs: &mut dyn Iterator<Item = Result<NewMessage<'_>>>) -> Result<Vec<u64>>;

    /// Visits messages in seq order from `from`, skipping finished ones
    /// (acked, purged, corrupt) where it cheaply can, until `visit` says stop.
    fn scan(&mut self, from: Scan, visit: &mut dyn FnMut(&Meta) -> Step) -> Result<()>;

    /// [`Store::scan`] of [`Scan::Delivery`] by a caller that means to
    /// take up to `want` of the messages shown: a store that locks each
    /// row just before showing it (PostgreSQL) may lock up to that many
    /// of the next candidates at once.
    fn scan_delivery(&mut self, want: usize, visit: &mut dyn FnMut(&Meta) -> Step) -> Result<()> {
        let _ = want;
        self.scan(Scan::Delivery, visit)
    }

    /// The message with this seq, if the store holds one.
    fn get(&mut self, seq: u64) -> Result<Option<Meta>>;

    /// [`Store::get`] of each of `seqs`, in their order. A store may read
    /// neighbouring messages together.
    fn get_each(&mut self, seqs: &[u64]) -> Result<Vec<Option<Meta>>> {
        seqs.iter().map(|&s| self.get(s)).collect()
    }

    /// The body of a message. A damaged record is an `Error::Corrupt` naming
    /// the file and offset.
    fn body(&mut self, meta: &Meta) -> Result<Vec<u8>>;

    /// The bodies of `metas`, in their order, each as [`Store::body`]
    /// returns it. A store may read neighbouring records together.
    fn bodies(&mut self, metas: &[Meta]) -> Vec<Result<Vec<u8>>> {
        metas.iter().map(|m| self.body(m)).collect()
    }

    /// Applies `changes` atomically; durable on return.
    fn commit(&mut self, changes: &[Change]) -> Result<()>;

    /// The counters as of the last commit.
    fn counters(&self) -> Counters;

    /// A random number fixed when the queue was created (ids are made from it and the seq: crate::model::ids).
    fn salt(&self) -> u64;

    /// The seq the next pushed message gets.
    fn next_seq(&self) -> u64;

    /// Locks what a push changes, where other processes could change it
    /// between `open` and `push` (PostgreSQL: the queue's row), and reloads
    /// the salt, next seq, counters and key id. The next `push` then gives
    /// its messages seqs from `next_seq()` on, as [`crate::model::crypt`] needs.
    fn prepare_push(&mut self) -> Result<()> {
        Ok(())
    }

    /// The id of the key the queue's first push used; `None` for a queue
    /// that keeps bodies in plain text (or has had no push yet).
    fn key_id(&self) -> Option<KeyId>;

    /// Records the key id of the queue's first push: durable when this
    /// returns, or (PostgreSQL) with that push's transaction.
    fn set_key_id(&mut self, id: Option<KeyId>) -> Result<()>;

    /// Number of segment files (or the store's equivalent).
    fn segments(&self) -> u64;

    /// Bytes the queue takes on disk.
    fn disk_bytes(&mut self) -> Result<u64>;

    /// Takes over another store's queue as it is, for `migrate`: `metas` (in
    /// seq order, bodies fetched by `body`) keep their seq, and so their id
    /// (made from the salt and seq), state, attempts, receipt and deadline; the queue gets
    /// `salt`, `next_seq` and `counters`. `body` gives each message's body,
    /// TTL (ms) and unique key; the queue's key holds are `holds`
    /// (those of acked messages whose window is not over included). Only
    /// into a new queue; durable on return.
    fn restore(
        &mut self,
        salt: u64,
        next_seq: u64,
        counters: Counters,
        metas: &[Meta],
        body: &mut dyn FnMut(&Meta) -> Result<Restored>,
        holds: &[(UniqueKey, Hold)],
    ) -> Result<()>;

    /// Keeps `failure` as the last failure of each message `seq` named
    /// (replacing any it had): durable on return, or (PostgreSQL) with the
    /// next `commit`'s transaction (`commit(&[])` commits it alone), so that
    /// a nack's failures and state change are one. Messages not held are
    /// skipped. A message's failure goes when the message does (acked,
    /// purged, corrupt); `retry` keeps it.
    fn record_failures(&mut self, failures: &[(u64, Failure)]) -> Result<()>;

    /// The last failure kept for message `seq`, if any.
    fn failure(&mut self, seq: u64) -> Result<Option<Failure>>;

    /// The `--ttl` message `m` was pushed with, in ms (0: none), for `retry`
    /// to count it again. Read only for a message with a TTL.
    fn ttl_ms(&mut self, m: &Meta) -> Result<u64>;

    /// The hold of unique key `key`, if the store has one (a hold whose
    /// key is long free may have been dropped). Read under the lock that
    /// the next `push` holds, so the check and the insert are one step.
    fn hold(&mut self, key: &UniqueKey) -> Result<Option<Hold>>;

    /// Whether the queue may hold messages in a group (`push --group`):
    /// `stats` then reads every pending message to count blocked groups.
    /// Cheap; `true` once a grouped message was pushed is never wrong.
    fn grouped(&mut self) -> Result<bool>;

    /// The unique key and window (ms) message `m` was pushed with. Read
    /// only for a keyed message.
    fn unique(&mut self, m: &Meta) -> Result<Option<(UniqueKey, u64)>>;

    /// Visits every hold the store keeps, for `migrate`.
    fn holds(&mut self, visit: &mut dyn FnMut(&UniqueKey, &Hold)) -> Result<()>;

    /// Lets go of what reads since the last commit locked (PostgreSQL: the
    /// rows a scan read `FOR UPDATE`), before a long operation that locks
    /// again what it changes. Nothing for a store whose lock is the queue's.
    fn end_reads(&mut self) -> Result<()> {
        Ok(())
    }

    /// For `retry --to`: takes queue `to` of the same spool (made if missing)
    /// as the target of [`Store::move_out`], locked against pushes until the
    /// move commits or the store is dropped, and says what sealing bodies
    /// for it needs.
    fn move_target(&mut self, to: &str) -> Result<Target>;

    /// Moves messages out of this queue into the target, in one step a crash
    /// cannot split (never lost, never in both queues): pushes `msgs` there
    /// (ready, with their failures; `key_id` recorded first if given, for a
    /// target that is new) and commits `changes` here (the messages
    /// leaving). Durable on return. Returns their seqs in the target, from
    /// [`Target::next_seq`] on.
    fn move_out(
        &mut self,
        key_id: Option<Option<KeyId>>,
        msgs: Vec<Incoming<'_>>,
        changes: &[Change],
    ) -> Result<Vec<u64>>;

    /// The store's own clock in ms since the epoch, if it has one that all
    /// its users share (a database server's); `None`: the caller's is used.
    fn now(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Things noticed and repaired on the way (torn tails, damaged records),
    /// each one line, for stderr. Drained by the caller.
    fn take_notices(&mut self) -> Vec<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_transitions() {
        let mut c = Counters::default();
        c.add(State::Ready, 10);
        c.add(State::Delayed, 5);
        assert_eq!((c.ready, c.delayed, c.pushed, c.bytes), (1, 1, 2, 15));
        c.apply(State::Ready, State::Leased, 10);
        c.apply(State::Leased, State::Acked, 10);
        assert_eq!((c.ready, c.leased, c.acked, c.bytes), (0, 0, 1, 5));
        c.apply(State::Delayed, State::Dead, 5);
        c.apply(State::Dead, State::Ready, 5);
        assert_eq!((c.ready, c.dead, c.bytes), (1, 0, 5));
        c.apply(State::Ready, State::Purged, 5);
        assert_eq!((c.ready, c.purged, c.bytes), (0, 1, 0));
    }

    #[test]
    fn states_round_trip_through_bytes() {
        for b in 0..=255u8 {
            if let Some(s) = State::from_u8(b) {
                assert_eq!(s as u8, b);
            }
        }
        assert_eq!(State::from_u8(0), None);
    }
}

// ---------------------------------------------------------------- checks

/// One problem `fsck` found (each store checks its own files and rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub queue: String,
    pub file: PathBuf,
    pub offset: Option<u64>,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Problems of the spool's own files belong to no queue.
        if !self.queue.is_empty() {
            write!(f, "{}: ", self.queue)?;
        }
        write!(f, "{}", self.file.display())?;
        if let Some(o) = self.offset {
            write!(f, ": offset {o}")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// What checking one queue found.
#[derive(Debug, Default)]
pub struct QueueReport {
    pub records: u64,
    pub problems: Vec<Problem>,
    /// Lines about things recovery or repair did on the way.
    pub notes: Vec<String>,
}
