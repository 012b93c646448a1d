//! The model test: seeded random sequences of push (some with a delay, some
//! with a TTL, some with a unique key and window, some with a priority,
//! some in one of three ordered groups), pop, ack, nack (some recording a
//! failure), extend, ack-and-pop (one commit), retry, purge (of dead
//! letters, some only those dead for a while), `retry --to` a second queue
//! (all dead letters, or one named), peek, inspect, clock jumps, reopens
//! and power cuts, run against the engine (on [`SimFs`]) and against
//! [`Model`], a list of messages with states; every answer and every
//! counter must agree.
//!
//! Every operation that returns is durable, so a power cut *between*
//! operations must change nothing: after a cut (any subset of unsynced work
//! kept, writes torn) the reopened queue must still agree with the model.
//!
//! On a divergence the test prints the seed and a shrunk sequence of
//! operations. `cargo test --release model` runs at least 100,000
//! operations; `SPOOLMQ_MODEL_OPS=N` runs about N.

use crate::base::io::Fs as _;
use crate::base::notice::{Kept, Notices};
use crate::base::simfs::{SimFs, XorShift};
use crate::model::backoff::Retry;
use crate::model::failure::{Failure, How};
use crate::model::ttl;
use crate::queue::Queue;
use crate::store::fs::{FsStore, TEST_COMPACT_MIN, TEST_SEGMENT_LIMIT};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One step of a sequence.
#[derive(Clone, Debug)]
enum Op {
    Push {
        n: usize,
        delay: u64,
        size: usize,
        /// `--ttl` in ms (whole seconds; 0: none).
        ttl: u64,
        /// `--key k<N>` (every message of the push has it, so only the
        /// first can be stored) and `--unique-for` in ms (whole seconds).
        key: Option<(u8, u64)>,
        /// `--priority` (0: none).
        priority: u8,
        /// `--group g<N>` (then no priority).
        group: Option<u8>,
    },
    Pop {
        count: usize,
        lease: u64,
        max: u32,
    },
    /// 0 ack, 1 nack, 2 extend, 3 ack and pop (`ack_and_pop`, up to 1 +
    /// `pick % 3` for `delay + 1` ms), on the `pick`-th receipt seen so
    /// far; a nack with `reason` records a failure.
    Settle {
        which: u8,
        pick: usize,
        delay: u64,
        max: u32,
        reason: bool,
    },
    Retry,
    /// `retry --to` queue `r`: every dead letter, or (`pick`) the `pick`-th
    /// message pushed so far, whatever its state.
    Redrive {
        pick: Option<usize>,
    },
    /// With `older_than`, only dead letters dead for at least that many ms.
    Purge {
        dead: bool,
        older_than: Option<u64>,
    },
    Peek {
        count: usize,
    },
    /// `inspect` of the `pick`-th message pushed so far.
    Inspect {
        pick: usize,
    },
    Advance(u64),
    Reopen,
    PowerCut(u64),
}

fn generate(seed: u64, len: usize) -> Vec<Op> {
    let mut r = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..len)
        .map(|_| match r.below(16) {
            0..=2 => Op::Push {
                n: 1 + r.below(4) as usize,
                delay: if r.below(4) == 0 {
                    1 + r.below(3000)
                } else {
                    0
                },
                size: r.below(3) as usize,
                ttl: if r.below(3) == 0 {
                    1000 * (1 + r.below(3))
                } else {
                    0
                },
                key: (r.below(3) == 0).then(|| (r.below(4) as u8, 1000 * r.below(3))),
                priority: if r.below(3) == 0 {
                    1 + r.below(9) as u8
                } else {
                    0
                },
                group: (r.below(3) == 0).then(|| r.below(3) as u8),
            },
            3..=4 => Op::Pop {
                count: 1 + r.below(3) as usize,
                lease: 1 + r.below(2000),
                max: 1 + r.below(3) as u32,
            },
            5..=7 => Op::Settle {
                which: r.below(4) as u8,
                pick: r.below(1000) as usize,
                delay: if r.below(2) == 0 {
                    0
                } else {
                    1 + r.below(1000)
                },
                max: 1 + r.below(3) as u32,
                reason: r.below(2) == 0,
            },
            8 => Op::Retry,
            9 if r.below(4) == 0 => Op::Purge {
                dead: r.below(2) == 0,
                older_than: (r.below(2) == 0).then(|| r.below(3000)),
            },
            10 => Op::Peek {
                count: 1 + r.below(4) as usize,
            },
            11 => Op::Reopen,
            12 if r.below(2) == 0 => Op::PowerCut(r.next_u64()),
            13 => Op::Inspect {
                pick: r.below(1000) as usize,
            },
            14 if r.below(2) == 0 => Op::Redrive {
                pick: (r.below(2) == 0).then(|| r.below(1000) as usize),
            },
            _ => Op::Advance(r.below(800)),
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq)]
enum MState {
    Ready,
    Delayed(u64),
    Leased {
        until: u64,
        max: u32,
        receipt: String,
    },
    /// Since when (a nack's time, or the end of the lease that ran out).
    Dead(u64),
    /// Its TTL passed: since when (the TTL's end, the end of a lease that
    /// outlived it, or the nack after it).
    Expired(u64),
    Gone,
}

#[derive(Clone, Debug)]
struct MMsg {
    id: String,
    body: Vec<u8>,
    state: MState,
    attempts: u32,
    /// The last failure recorded: its reason and the attempt it ended.
    failure: Option<(String, u32)>,
    /// Its TTL (ms, 0: none) and when it ends.
    ttl: u64,
    expires: u64,
    priority: u8,
    group: Option<u8>,
}

/// A unique key's hold in the model: the message that took it (its index),
/// its window (ms) and when the key is free once that message is done (0:
/// not done yet).
#[derive(Clone, Copy, Debug)]
struct MHold {
    idx: usize,
    window: u64,
    free_at: u64,
}

/// A queue in memory, with the contract's rules and nothing else.
#[derive(Default)]
struct Model {
    msgs: Vec<MMsg>,
    pushed: u64,
    acked: u64,
    purged: u64,
    /// Queue `r`, where `retry --to` moves dead letters: each body with its
    /// last failure and when its TTL ends there (0: none), in the order they
    /// arrived (all ready, never popped), and its priority.
    moved: Vec<Moved>,
    /// Unique keys: key -> its hold.
    holds: std::collections::HashMap<u8, MHold>,
}

/// A failure as the model keeps it ([`as_model`]).
type MFailure = (String, u32);

/// A message `retry --to` moved: its body, last failure, when its TTL
/// ends there, its priority and its group.
type Moved = (Vec<u8>, Option<MFailure>, u64, u8, Option<u8>);

impl Model {
    /// The messages in the order `pop` serves them: the highest priority
    /// first, in push order within one.
    fn delivery_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.msgs.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(self.msgs[i].priority), i));
        order
    }

    /// What a pop (or, with `mark` false, a peek) of up to `count` at
    /// `now` takes, in order, in delivery order: a message met on the way
    /// whose last lease ran out or whose TTL passed is a dead letter (made
    /// one with `mark`) and lets go of its group; of each group only the
    /// first pending message met may go, if it is ready.
    fn deliverable(&mut self, count: usize, now: u64, mark: bool) -> Vec<usize> {
        let mut met = std::collections::HashSet::new();
        let mut out = Vec::new();
        for i in self.delivery_order() {
            if out.len() == count {
                break;
            }
            let m = &mut self.msgs[i];
            let pending = matches!(
                m.state,
                MState::Ready | MState::Delayed(_) | MState::Leased { .. }
            );
            if !pending {
                continue;
            }
            let s = Model::eff(m, now);
            if matches!(s, MState::Expired(_) | MState::Dead(_)) {
                if mark {
                    m.state = s;
                }
                continue;
            }
            if m.group.is_some_and(|g| !met.insert(g)) {
                continue;
            }
            if s == MState::Ready {
                out.push(i);
            }
        }
        out
    }

    /// Groups whose oldest pending message is leased or delayed while
    /// another waits behind it, at `now`.
    fn blocked(&self, now: u64) -> u64 {
        let mut heads: std::collections::HashMap<u8, (bool, bool)> = Default::default();
        for m in &self.msgs {
            let (Some(g), true) = (
                m.group,
                matches!(
                    m.state,
                    MState::Ready | MState::Delayed(_) | MState::Leased { .. }
                ),
            ) else {
                continue;
            };
            let free = !matches!(
                Model::eff(m, now),
                MState::Leased { .. } | MState::Delayed(_)
            );
            heads
                .entry(g)
                .and_modify(|(_, behind)| *behind = true)
                .or_insert((free, false));
        }
        heads
            .values()
            .filter(|(free, behind)| !free && *behind)
            .count() as u64
    }

    /// The state as of `now`: a message whose TTL passed with no live
    /// lease is expired, a lapsed last attempt is a dead letter, a due delay
    /// or a lapsed lease is ready.
    fn eff(m: &MMsg, now: u64) -> MState {
        let ttl_over = m.expires > 0 && m.expires <= now;
        match &m.state {
            MState::Ready | MState::Delayed(_) if ttl_over => MState::Expired(m.expires),
            MState::Delayed(t) if *t <= now => MState::Ready,
            MState::Leased { until, max, .. } if *until <= now => {
                if ttl_over {
                    MState::Expired(m.expires.max(*until))
                } else if m.attempts >= *max {
                    MState::Dead(*until)
                } else {
                    MState::Ready
                }
            }
            s => s.clone(),
        }
    }

    /// (ready, leased, delayed, dead, expired, bytes) as `stats` counts
    /// them: a ready message whose TTL passed counts as ready until a pop
    /// meets it (stats reads no ready message to find it), the rest as of now.
    fn stats(&self, now: u64) -> (u64, u64, u64, u64, u64, u64) {
        let (mut r, mut l, mut d, mut dead, mut exp, mut bytes) = (0, 0, 0, 0, 0, 0);
        for m in &self.msgs {
            match Model::eff(m, now) {
                MState::Expired(_) if m.state == MState::Ready => r += 1,
                MState::Ready => r += 1,
                MState::Delayed(_) => d += 1,
                MState::Leased { .. } => l += 1,
                MState::Dead(_) => dead += 1,
                MState::Expired(_) => {
                    dead += 1;
                    exp += 1;
                }
                MState::Gone => continue,
            }
            bytes += m.body.len() as u64;
        }
        (r, l, d, dead, exp, bytes)
    }

    /// The index of the message holding `key` at `now`: one that is
    /// pending (as of now: a lapsed last lease or a passed TTL is a dead
    /// letter), or acked with its window not over.
    fn holder(&self, key: u8, now: u64) -> Option<usize> {
        let h = self.holds.get(&key)?;
        let pending = || {
            matches!(
                Model::eff(&self.msgs[h.idx], now),
                MState::Ready | MState::Delayed(_) | MState::Leased { .. }
            )
        };
        let held = if h.free_at == 0 {
            pending()
        } else {
            now < h.free_at
        };
        held.then_some(h.idx)
    }

    /// Message `i` is done (acked at `acked`, or else): a hold it has lets
    /// go of its key, at once or after its window.
    fn release(&mut self, i: usize, acked: Option<u64>) {
        if let Some(h) = self
            .holds
            .values_mut()
            .find(|h| h.idx == i && h.free_at == 0)
        {
            h.free_at = crate::model::unique::free_at(acked, h.window);
        }
    }

    fn live_receipt(&self, r: &str, now: u64) -> Option<usize> {
        self.msgs.iter().position(
            |m| matches!(Model::eff(m, now), MState::Leased { ref receipt, .. } if receipt == r),
        )
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/spool/q")
}

/// The queue `retry --to` moves dead letters into.
fn target_dir() -> PathBuf {
    PathBuf::from("/spool/r")
}

/// Opens the queue on `fs`, its notices kept in the list returned.
fn open(fs: &SimFs) -> Result<(Queue, Kept), String> {
    let (sink, kept) = Notices::collected();
    FsStore::open_with(Arc::new(fs.clone()), &dir(), true)
        .map_err(|e| format!("open: {e}"))?
        .map(|s| (Queue::with_store("q", Box::new(s), sink), kept))
        .ok_or_else(|| "open: no queue".to_string())
}

/// A failure as the model keeps it: the reason the test gave (or how it
/// ended, for any other kind) and the attempt it ended.
fn as_model(f: Failure) -> (String, u32) {
    match f.how {
        How::Reason(r) => (r, f.attempt),
        other => (format!("{other:?}"), f.attempt),
    }
}

/// The engine under test and the model it must agree with.
struct World {
    fs: SimFs,
    /// `None` only while the queue is closed to be opened again.
    q: Option<Queue>,
    model: Model,
    now: u64,
    /// Every receipt handed out so far (stale ones too).
    receipts: Vec<String>,
}

fn e(what: &str, err: crate::base::error::Error) -> String {
    format!("{what}: {err}")
}

impl World {
    fn q(&mut self) -> &mut Queue {
        self.q.as_mut().expect("the queue is open between steps")
    }

    fn push(&mut self, ctx: &str, step: usize, op: &Op) -> Result<(), String> {
        let &Op::Push {
            n,
            delay,
            size,
            ttl,
            key,
            priority,
            group,
        } = op
        else {
            return Ok(());
        };
        let priority = if group.is_some() { 0 } else { priority };
        let now = self.now;
        let bodies: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("m{step}-{i}").repeat(size).into_bytes())
            .collect();
        let mut it = bodies.iter().map(Vec::as_slice);
        let keys = match key {
            Some((k, _)) => {
                crate::queue::Keys::One(crate::model::unique::UniqueKey::of(&[b'k', k]))
            }
            None => crate::queue::Keys::None,
        };
        let how = crate::queue::Pushing {
            delay: Duration::from_millis(delay),
            ttl_ms: ttl,
            keys,
            unique_for_ms: key.map_or(0, |(_, w)| w),
            priority,
            group: group.map(|g| crate::model::group::GroupKey::of(&[b'g', g])),
        };
        let (cipher, placed) = self
            .q()
            .push_seqs(&mut it, how, now)
            .map_err(|x| e(ctx, x))?;
        let ids: Vec<String> = placed.seqs.iter().map(|&s| cipher.format(s)).collect();
        for (i, (id, body)) in ids.into_iter().zip(bodies).enumerate() {
            if let Some((k, window)) = key {
                // Held (by an earlier message, or by the first of this
                // push): nothing stored, the holder's id printed.
                if let Some(h) = self.model.holder(k, now) {
                    let want = &self.model.msgs[h].id;
                    if &id != want || !placed.duplicates.contains(&i) {
                        return Err(format!(
                            "{ctx}: message {i} of key k{k} should be a duplicate of {want}, got {id} (duplicates {:?})",
                            placed.duplicates
                        ));
                    }
                    continue;
                }
                let idx = self.model.msgs.len();
                self.model.holds.insert(
                    k,
                    MHold {
                        idx,
                        window,
                        free_at: 0,
                    },
                );
            }
            if placed.duplicates.contains(&i) {
                return Err(format!(
                    "{ctx}: message {i} stored as a duplicate, model: stored"
                ));
            }
            self.model.pushed += 1;
            self.model.msgs.push(MMsg {
                id,
                body,
                state: if delay > 0 {
                    MState::Delayed(now + delay)
                } else {
                    MState::Ready
                },
                attempts: 0,
                failure: None,
                ttl,
                expires: ttl::expiry(now, ttl),
                priority,
                group,
            });
        }
        Ok(())
    }

    fn pop(&mut self, ctx: &str, count: usize, lease: u64, max: u32) -> Result<(), String> {
        let now = self.now;
        let got = self
            .q()
            .pop(count, Duration::from_millis(lease), max, now)
            .map_err(|x| e(ctx, x))?;
        self.popped(ctx, got, count, lease, max)
    }

    /// Checks what a pop of `count` for `lease` returned against the model,
    /// and applies it.
    fn popped(
        &mut self,
        ctx: &str,
        got: Vec<crate::queue::Delivery>,
        count: usize,
        lease: u64,
        max: u32,
    ) -> Result<(), String> {
        let now = self.now;
        let mut expect = Vec::new();
        // Met on the way: a lapsed last attempt is marked dead, a message
        // whose TTL passed expired (and stays so).
        for i in self.model.deliverable(count, now, true) {
            let m = &mut self.model.msgs[i];
            let receipt = got
                .get(expect.len())
                .map(|d| d.receipt.clone())
                .unwrap_or_default();
            expect.push(m.id.clone());
            m.attempts += 1;
            m.state = MState::Leased {
                until: now + lease,
                max,
                receipt,
            };
        }
        let ids: Vec<String> = got.iter().map(|d| d.id().to_string()).collect();
        if ids != expect {
            return Err(format!("{ctx}: popped {ids:?}, model says {expect:?}"));
        }
        for d in &got {
            let Some(m) = self.model.msgs.iter().find(|m| m.id == d.id()) else {
                return Err(format!("{ctx}: unknown id {}", d.id()));
            };
            if d.attempt != m.attempts || d.body != m.body {
                return Err(format!("{ctx}: {} attempt/body differ", d.id()));
            }
            self.receipts.push(d.receipt.clone());
        }
        Ok(())
    }

    fn settle(&mut self, ctx: &str, step: usize, op: &Op) -> Result<(), String> {
        let &Op::Settle {
            which,
            pick,
            delay,
            max,
            reason,
        } = op
        else {
            return Ok(());
        };
        let now = self.now;
        if self.receipts.is_empty() {
            return Ok(());
        }
        // Half the time one of the three latest (most likely still live),
        // else any receipt handed out so far (most likely stale).
        let n = self.receipts.len();
        let at = if pick.is_multiple_of(2) {
            n - 1 - (pick / 2) % n.min(3)
        } else {
            pick % n
        };
        let r = self.receipts[at].clone();
        let expect = self.model.live_receipt(&r, now);
        let one = std::slice::from_ref(&r);
        let failure = reason.then(|| Failure {
            at_ms: now,
            attempt: 0,
            how: How::Reason(format!("failed at step {step}")),
            stderr: Vec::new(),
        });
        // 3: `ack_and_pop`, which must do what an ack and then a pop do.
        let count = 1 + pick % 3;
        let mut got = None;
        let s = match which {
            0 => self.q().ack(one, now),
            3 => self
                .q()
                .ack_and_pop(one, count, Duration::from_millis(delay + 1), max, now)
                .map(|(s, d)| {
                    got = Some(d);
                    s
                }),
            1 => self.q().nack(
                one,
                Retry::After(Duration::from_millis(delay)),
                failure.as_ref(),
                max,
                now,
            ),
            _ => self.q().extend(one, Duration::from_millis(delay + 1), now),
        }
        .map_err(|x| e(ctx, x))?;
        if s.done != usize::from(expect.is_some()) {
            return Err(format!(
                "{ctx}: done {} but model expects {expect:?}",
                s.done
            ));
        }
        if let Some(i) = expect {
            let m = &mut self.model.msgs[i];
            match which {
                0 | 3 => {
                    m.state = MState::Gone;
                    self.model.acked += 1;
                }
                1 => {
                    if reason {
                        m.failure = Some((format!("failed at step {step}"), m.attempts));
                    }
                    m.state = if m.expires > 0 && m.expires <= now {
                        MState::Expired(now)
                    } else if m.attempts >= max {
                        MState::Dead(now)
                    } else if delay > 0 {
                        MState::Delayed(now + delay)
                    } else {
                        MState::Ready
                    }
                }
                _ => {
                    if let MState::Leased { until, .. } = &mut m.state {
                        *until = now + delay + 1;
                    }
                }
            }
            if which == 0 || which == 3 {
                self.model.release(i, Some(now));
            }
        }
        match got {
            Some(got) => self.popped(ctx, got, count, delay + 1, max),
            None => Ok(()),
        }
    }

    fn retry(&mut self, ctx: &str) -> Result<(), String> {
        let now = self.now;
        let moved = self.q().retry(&[], now).map_err(|x| e(ctx, x))?.moved;
        let mut n = 0;
        let mut retried = Vec::new();
        // One in a group waits for the end of its group's live leases.
        let mut leased: std::collections::HashMap<u8, u64> = Default::default();
        for m in &self.model.msgs {
            if let (Some(g), MState::Leased { until, .. }) = (m.group, Model::eff(m, now)) {
                let u = leased.entry(g).or_default();
                *u = (*u).max(until);
            }
        }
        for (i, m) in self.model.msgs.iter_mut().enumerate() {
            if matches!(Model::eff(m, now), MState::Dead(_) | MState::Expired(_)) {
                // Brought back without its key.
                retried.push(i);
                m.state = match m.group.and_then(|g| leased.get(&g)) {
                    Some(&until) => MState::Delayed(until),
                    None => MState::Ready,
                };
                m.attempts = 0;
                // Its TTL counted again from the retry.
                m.expires = ttl::expiry(now, m.ttl);
                n += 1;
            }
        }
        for i in retried {
            self.model.release(i, None);
        }
        if moved != n {
            return Err(format!("{ctx}: retry moved {moved}, model {n}"));
        }
        Ok(())
    }

    fn redrive(&mut self, ctx: &str, pick: Option<usize>) -> Result<(), String> {
        let now = self.now;
        let named: Vec<String> = match pick {
            Some(p) if !self.model.msgs.is_empty() => {
                vec![self.model.msgs[p % self.model.msgs.len()].id.clone()]
            }
            _ => Vec::new(),
        };
        let got = self.q().retry_to("r", &named, now).map_err(|x| e(ctx, x))?;
        let mut n = 0;
        for m in self.model.msgs.iter_mut() {
            let chosen = named.is_empty() || named.contains(&m.id);
            if chosen && matches!(Model::eff(m, now), MState::Dead(_) | MState::Expired(_)) {
                m.state = MState::Gone;
                let expires = ttl::expiry(now, m.ttl);
                (self.model.moved).push((
                    m.body.clone(),
                    m.failure.clone(),
                    expires,
                    m.priority,
                    m.group,
                ));
                n += 1;
            }
        }
        self.model.purged += n;
        let missing = named.len() as u64 - n.min(named.len() as u64);
        if got.moved != n || (!named.is_empty() && got.missing.len() as u64 != missing) {
            return Err(format!(
                "{ctx}: moved {} (missing {:?}), model {n}",
                got.moved, got.missing
            ));
        }
        self.check_target(ctx)
    }

    /// Queue `r` holds what the model moved there, in order: ready, no
    /// attempts, each with its last failure; and its counters agree. Opened
    /// for the check alone (as a command would), so that the move's own
    /// handle on it is the only one while it runs.
    fn check_target(&mut self, ctx: &str) -> Result<(), String> {
        if self.model.moved.is_empty()
            && !self.fs.exists(&target_dir().join("index")).unwrap_or(false)
        {
            return Ok(());
        }
        let now = self.now;
        let store = FsStore::open_with(Arc::new(self.fs.clone()), &target_dir(), true)
            .map_err(|x| e(ctx, x))?
            .ok_or_else(|| format!("{ctx}: queue r is missing"))?;
        let mut r = Queue::with_store("r", Box::new(store), Notices::to(|_| {}));
        let mut got = Vec::new();
        r.export(now, &mut |m| {
            let failure = m.last_failure.map(as_model);
            let group = m.group;
            got.push((m.body, m.state, m.attempts, failure, m.priority, group));
            crate::store::Step::Continue
        })
        .map_err(|x| e(ctx, x))?;
        // Never popped there: ready, or (its TTL passed) a dead letter.
        let want: Vec<_> = (self.model.moved.iter())
            .map(|(b, f, expires, priority, group)| {
                let state = if *expires > 0 && *expires <= now {
                    "dead"
                } else {
                    "ready"
                };
                let group = group.map(|g| crate::model::group::GroupKey::of(&[b'g', g]));
                (b.clone(), state.to_string(), 0, f.clone(), *priority, group)
            })
            .collect();
        if got != want {
            return Err(format!("{ctx}: queue r holds {got:?}, model {want:?}"));
        }
        let s = r.stats(now).map_err(|x| e(ctx, x))?;
        let n = self.model.moved.len() as u64;
        if (s.ready, s.pushed, s.dead, s.purged) != (n, n, 0, 0) {
            return Err(format!("{ctx}: queue r's stats {s:?}, model {n} ready"));
        }
        Ok(())
    }

    fn purge(&mut self, ctx: &str, dead: bool, older_than: Option<u64>) -> Result<(), String> {
        let now = self.now;
        let n = self
            .q()
            .purge(dead, older_than.map(Duration::from_millis), now)
            .map_err(|x| e(ctx, x))?;
        let mut m_n = 0;
        for m in self.model.msgs.iter_mut() {
            let s = Model::eff(m, now);
            let take = if dead {
                matches!(s, MState::Dead(t) | MState::Expired(t) if older_than.is_none_or(|o| t + o <= now))
            } else {
                matches!(s, MState::Ready | MState::Delayed(_))
            };
            if take {
                m.state = MState::Gone;
                m_n += 1;
            }
        }
        self.model.purged += m_n;
        if n != m_n {
            return Err(format!("{ctx}: purged {n}, model {m_n}"));
        }
        Ok(())
    }

    fn peek(&mut self, ctx: &str, count: usize) -> Result<(), String> {
        let now = self.now;
        let got: Vec<String> = self
            .q()
            .peek(count, now)
            .map_err(|x| e(ctx, x))?
            .into_iter()
            .map(|p| p.id)
            .collect();
        let expect: Vec<String> = (self.model.deliverable(count, now, false).into_iter())
            .map(|i| self.model.msgs[i].id.clone())
            .collect();
        if got != expect {
            return Err(format!("{ctx}: peeked {got:?}, model {expect:?}"));
        }
        Ok(())
    }

    /// `inspect` of one message: state, attempts and last failure as the
    /// model has them; nothing for a message acked or purged.
    fn inspect(&mut self, ctx: &str, pick: usize) -> Result<(), String> {
        let now = self.now;
        if self.model.msgs.is_empty() {
            return Ok(());
        }
        // Half the time a message still there, else any (most are gone).
        let live: Vec<&MMsg> = (self.model.msgs.iter())
            .filter(|m| m.state != MState::Gone)
            .collect();
        let m = if pick.is_multiple_of(2) && !live.is_empty() {
            live[(pick / 2) % live.len()].clone()
        } else {
            self.model.msgs[pick % self.model.msgs.len()].clone()
        };
        let got = self.q().inspect(&m.id, now).map_err(|x| e(ctx, x))?;
        let s = Model::eff(&m, now);
        let (want_state, dead_at) = match s {
            MState::Ready => (Some("ready"), None),
            MState::Delayed(_) => (Some("delayed"), None),
            MState::Leased { .. } => (Some("leased"), None),
            MState::Dead(t) | MState::Expired(t) => (Some("dead"), Some(t)),
            MState::Gone => (None, None),
        };
        let expired = matches!(s, MState::Expired(_));
        let got = got.map(|i| {
            let f = i.last_failure.map(as_model);
            (
                i.state,
                i.attempts,
                i.dead_at_ms,
                f,
                i.expired,
                i.expires_at_ms,
            )
        });
        let expires = (m.expires > 0).then_some(m.expires);
        let want = want_state.map(|s| {
            (
                s.to_string(),
                m.attempts,
                dead_at,
                m.failure.clone(),
                expired,
                expires,
            )
        });
        if got != want {
            return Err(format!(
                "{ctx}: inspect {} gave (state, attempts, dead since, failure, expired, expires) {got:?}, model {want:?}",
                m.id
            ));
        }
        Ok(())
    }

    /// The last failure of every message still there, as the model has it
    /// (after each step that may change one: a settle, retry, purge, reopen).
    fn check_failures(&mut self, ctx: &str) -> Result<(), String> {
        let now = self.now;
        let msgs: Vec<(String, Option<(String, u32)>)> = (self.model.msgs.iter())
            .filter(|m| m.state != MState::Gone)
            .map(|m| (m.id.clone(), m.failure.clone()))
            .collect();
        for (id, want) in msgs {
            let got = self
                .q()
                .inspect(&id, now)
                .map_err(|x| e(ctx, x))?
                .and_then(|i| i.last_failure)
                .map(as_model);
            if got != want {
                return Err(format!(
                    "{ctx}: the last failure of {id} is {got:?}, model {want:?}"
                ));
            }
        }
        Ok(())
    }

    /// Closes the queue (as a command's exit does), then opens it again;
    /// with `power_cut`, the power is cut in between (the sim file system
    /// keeps what was synced and a random part of the rest), and recovery
    /// may cut torn tails and unfinished changes, nothing else.
    fn reopen(&mut self, ctx: &str, power_cut: Option<u64>) -> Result<(), String> {
        drop(self.q.take());
        if let Some(seed) = power_cut {
            self.fs = self.fs.crash(&mut XorShift(seed | 1));
        }
        // As the next command's spool lock would: every move returned, so
        // there is none to finish.
        let fs: Arc<dyn crate::base::io::Fs> = Arc::new(self.fs.clone());
        let notes = crate::store::fs::moves::finish(&fs, std::path::Path::new("/spool"))
            .map_err(|x| e(ctx, x))?;
        if !notes.is_empty() {
            return Err(format!("{ctx}: a move was left to finish: {notes:?}"));
        }
        self.check_target(ctx)?;
        let (mut q, kept) = open(&self.fs)?;
        q.flush_notices();
        self.q = Some(q);
        let notices = kept.lock().map(|n| n.clone()).unwrap_or_default();
        if power_cut.is_some()
            && notices
                .iter()
                .any(|n| !n.contains("torn tail") && !n.contains("unfinished change"))
        {
            return Err(format!("{ctx}: recovery reported damage: {notices:?}"));
        }
        Ok(())
    }

    /// The engine's figures against the model's, after every step.
    fn check_stats(&mut self, ctx: &str) -> Result<(), String> {
        let now = self.now;
        let s = self.q().stats(now).map_err(|x| e(ctx, x))?;
        let (r, l, d, dead, exp, bytes) = self.model.stats(self.now);
        let got = (
            (s.ready, s.leased, s.delayed, s.dead, s.expired, s.bytes),
            (s.pushed, s.acked, s.purged, s.groups_blocked),
        );
        let want = (
            (r, l, d, dead, exp, bytes),
            (
                self.model.pushed,
                self.model.acked,
                self.model.purged,
                self.model.blocked(now),
            ),
        );
        if got != want {
            return Err(format!(
                "{ctx}: stats ((ready, leased, delayed, dead, expired, bytes), (pushed, acked, purged, groups blocked)) {got:?}, model {want:?}"
            ));
        }
        Ok(())
    }
}

/// Runs `ops` against the engine and the model; `Err` describes the first
/// divergence. Returns how many operations ran.
fn run(ops: &[Op]) -> Result<usize, String> {
    let fs = SimFs::new();
    let q = Some(open(&fs)?.0);
    let mut w = World {
        fs,
        q,
        model: Model::default(),
        now: 1_000_000,
        receipts: Vec::new(),
    };
    for (step, op) in ops.iter().enumerate() {
        let ctx = &format!("step {step} ({op:?})");
        match op.clone() {
            Op::Push { .. } => w.push(ctx, step, op)?,
            Op::Pop { count, lease, max } => w.pop(ctx, count, lease, max)?,
            Op::Settle { .. } => w.settle(ctx, step, op)?,
            Op::Inspect { pick } => w.inspect(ctx, pick)?,
            Op::Retry => w.retry(ctx)?,
            Op::Redrive { pick } => w.redrive(ctx, pick)?,
            Op::Purge { dead, older_than } => w.purge(ctx, dead, older_than)?,
            Op::Peek { count } => w.peek(ctx, count)?,
            Op::Advance(ms) => w.now += ms,
            Op::Reopen => w.reopen(ctx, None)?,
            Op::PowerCut(seed) => w.reopen(ctx, Some(seed))?,
        }
        w.check_stats(ctx)?;
        if matches!(
            op,
            Op::Settle { .. }
                | Op::Retry
                | Op::Redrive { .. }
                | Op::Purge { .. }
                | Op::Reopen
                | Op::PowerCut(_)
        ) {
            w.check_failures(ctx)?;
        }
    }
    Ok(ops.len())
}

/// Shrinks a failing sequence: drops chunks, then single ops, while it still fails.
fn shrink(mut ops: Vec<Op>) -> Vec<Op> {
    let mut chunk = ops.len() / 2;
    while chunk >= 1 {
        let mut i = 0;
        while i < ops.len() {
            let mut shorter = ops.clone();
            shorter.drain(i..(i + chunk).min(ops.len()));
            if run(&shorter).is_err() {
                ops = shorter;
            } else {
                i += chunk;
            }
        }
        chunk /= 2;
    }
    ops
}

#[test]
fn model_random_operations_agree_with_an_in_memory_queue() {
    // Small segments, so that roll-over and reclaim happen all the time.
    TEST_SEGMENT_LIMIT.with(|l| l.set(300));
    // And a failures file compacted as soon as it has a few dead frames.
    TEST_COMPACT_MIN.with(|l| l.set(4));
    let target: usize = std::env::var("SPOOLMQ_MODEL_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let per_seed = 500;
    let seeds = target.div_ceil(per_seed) as u64;
    let mut total = 0;
    let mut report = String::new();
    let mut divergences = 0;
    for seed in 1..=seeds {
        let ops = generate(seed, per_seed);
        match run(&ops) {
            Ok(n) => total += n,
            Err(first) => {
                divergences += 1;
                if divergences <= 3 {
                    let small = shrink(ops);
                    let _ = writeln!(
                        report,
                        "seed {seed}: {first}\n  shrunk to {} ops: {small:?}\n  which fails with: {}",
                        small.len(),
                        run(&small).err().unwrap_or_default()
                    );
                }
            }
        }
    }
    TEST_SEGMENT_LIMIT.with(|l| l.set(crate::store::fs::SEGMENT_LIMIT));
    TEST_COMPACT_MIN.with(|l| l.set(crate::store::fs::FAILURES_COMPACT_MIN));
    println!("model: {total} operations over {seeds} seeds, {divergences} divergences");
    assert_eq!(divergences, 0, "{report}");
}
