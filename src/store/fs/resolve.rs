//! Deciding the state of every message whose slot was lost or cannot be
//! trusted, for the slots rebuild on open ([`super::reconcile`]) and for
//! `fsck --repair` ([`super::rebuild()`]). Pure but for reading the WAL.
//!
//! Invariants: no acked message is delivered again and nothing is lost for
//! want of its slot (a message the counters cannot place is kept as a dead
//! letter); the counters come out adding up. Writes nothing.

use super::wal::read_wal;
use crate::base::error::Result;
use crate::base::io::FileIo;
use crate::store::fs::index::Header;
use crate::store::fs::record::{self};
use crate::store::{Counters, Loc, Meta, State};
use std::collections::HashMap;
use std::path::Path;

/// Whether a message in `state` is finished for good: nothing but a
/// `retry` of a dead letter (which is live) moves a message again, so a
/// stale copy of its slot is still right.
pub(super) fn is_final(state: State) -> bool {
    matches!(state, State::Acked | State::Purged | State::Corrupt)
}

/// Puts the WAL's slot images on top of what the slots say, for messages
/// `lo ..` (`exact` and `hint` as in [`resolve`]; `exact` holds only slots
/// that are trusted). A record with lsn above `applied` (what the trusted
/// slots already hold) is newer than any slot; for a message with no
/// trusted slot, the last image above `ckpt_lsn` is its state (the WAL holds
/// every change since the checkpoint), an older one is a hint, and a
/// finished state is final whatever its age.
pub(super) fn merge_wal(
    wal: &dyn FileIo,
    path: &Path,
    lo: u64,
    exact: &mut [Option<Meta>],
    hint: &mut [Option<Meta>],
    ckpt_lsn: u64,
    applied: u64,
) -> Result<()> {
    let had_slot: Vec<bool> = exact.iter().map(Option::is_some).collect();
    read_wal(wal, path, 0, &mut |_, lsn, entries| {
        for (_, m) in entries {
            let Some(i) = m.seq.checked_sub(lo).map(|i| i as usize) else {
                continue;
            };
            if i >= exact.len() {
                continue;
            }
            if had_slot[i] {
                if lsn > applied {
                    exact[i] = Some(*m);
                }
            } else if lsn > ckpt_lsn || is_final(m.state) {
                exact[i] = Some(*m);
            } else if exact[i].is_none() {
                hint[i] = Some(*m);
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// What [`resolve`] decided for the messages from `lo` to `end`.
pub(super) struct Resolved {
    /// The slot of each message, in seq order from `lo`.
    pub(super) metas: Vec<Meta>,
    pub(super) counters: Counters,
    /// Live messages per segment base.
    pub(super) live: HashMap<u64, u64>,
    pub(super) scan_lo: u64,
    pub(super) notes: Vec<String>,
}

/// Decides the slot of every message from `lo` to `end` when some slots
/// were lost or cannot be trusted. `exact[i]` is the state of message
/// `lo + i` where something durable says it (the WAL since the checkpoint,
/// a trusted slot, a finished state); `hint[i]` a state it had once (a
/// stale copy); `record(seq)` its good record in a segment. With `relocate`
/// (a repair that rewrote segments) every live message takes its location
/// from its record, and one without a record is lost.
///
/// A message with no exact state and a good record is inferred from the
/// header `old`: its counters say how many messages are in each live
/// state, so those with no exact state need `old.ready - known ready` and
/// so on, and the rest of them are finished (acked or purged). Every
/// message below `old.scan_lo` is known not to be pending. When all of them
/// must be live they are given their stale state, or ready (delayed if
/// their record says so); when all of them must be finished they stay
/// acked; when the counters cannot say which are which, they are kept as
/// dead letters, so that no acked message is delivered again and nothing
/// is lost (`retry` delivers them again). Without a header: ready.
///
/// The counters come out adding up: the live ones counted, `pushed` and
/// `purged` from `old`, `corrupt` from `old` plus the messages lost now,
/// and `acked` the rest.
pub(super) fn resolve(
    lo: u64,
    end: u64,
    exact: Vec<Option<Meta>>,
    hint: Vec<Option<Meta>>,
    record: &dyn Fn(u64) -> Option<(Loc, record::RecordHeader)>,
    old: Option<&Header>,
    relocate: bool,
) -> Resolved {
    let scan_lo_old = old.map_or(lo, |h| h.scan_lo);
    // The header's counters cover the messages below its next_seq; later
    // ones were never counted (records a crash left past its end): those
    // are adopted, as recovery does.
    let counted_below = old.map_or(lo, |h| h.next_seq);
    let t = tally(lo, &exact, record, scan_lo_old, counted_below);
    let (fate_lo, fate_hi) = match old {
        None => (Fate::Live, Fate::Live),
        Some(h) => fates(&h.counters, &t),
    };
    let mut metas = Vec::with_capacity(exact.len());
    let mut counters = Counters::default();
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut scan_lo = end;
    let mut n = Outcomes::default();
    for (i, (e, h)) in exact.into_iter().zip(hint).enumerate() {
        let seq = lo + i as u64;
        let fate = if e.is_some() || seq >= counted_below {
            // A corrupt slot whose record is intact again (repair),
            // or a record the header never counted.
            Fate::Live
        } else if seq < scan_lo_old {
            fate_lo
        } else {
            fate_hi
        };
        let (m, outcome) = decide(seq, e, h, record(seq), fate, relocate);
        n.count(outcome);
        counters.add(m.state, m.len);
        if m.state.is_live() {
            *live.entry(m.loc.segment).or_default() += 1;
        }
        if m.state.is_pending() && scan_lo == end {
            scan_lo = seq;
        }
        metas.push(m);
    }
    if let Some(h) = old {
        add_up(&mut counters, &h.counters, end, n.lost);
    }
    Resolved {
        metas,
        counters,
        live,
        scan_lo,
        notes: n.notes(),
    }
}

/// What [`tally`] counts of the messages the old header's counters cover.
#[derive(Debug, Default)]
struct Tally {
    /// Messages with an exact state, per live state (ready, delayed,
    /// leased, dead).
    known: [u64; 5],
    /// Messages with no exact state, with or without a record.
    unknown_all: u64,
    /// Of those, the ones with a good record below the old `scan_lo`...
    n_lo: u64,
    /// ... and at or above it.
    n_hi: u64,
}

/// The live states, in the order of [`Tally::known`].
const LIVE: [State; 5] = [
    State::Ready,
    State::Delayed,
    State::Leased,
    State::Dead,
    State::Expired,
];

/// Counts the messages from `lo` up to `counted_below` (the old header's
/// `next_seq`): how many are known in each live state, and how many have no
/// exact state (those with a record, below `scan_lo_old` and from it).
fn tally(
    lo: u64,
    exact: &[Option<Meta>],
    record: &dyn Fn(u64) -> Option<(Loc, record::RecordHeader)>,
    scan_lo_old: u64,
    counted_below: u64,
) -> Tally {
    let mut t = Tally::default();
    for (i, e) in exact.iter().enumerate() {
        let seq = lo + i as u64;
        if seq >= counted_below {
            break;
        }
        match e {
            Some(m) => {
                if let Some(k) = LIVE.iter().position(|l| *l == m.state) {
                    t.known[k] += 1;
                }
            }
            None => {
                t.unknown_all += 1;
                if record(seq).is_some() {
                    if seq < scan_lo_old {
                        t.n_lo += 1;
                    } else {
                        t.n_hi += 1;
                    }
                }
            }
        }
    }
    t
}

/// How the messages with no exact state split: live, finished, or unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Live,
    Finished,
    Held,
}

/// The fate of the messages with no exact state and a good record, below
/// the old `scan_lo` and from it, from the old header's counters `c` (see
/// [`resolve`]).
fn fates(c: &Counters, t: &Tally) -> (Fate, Fate) {
    let need: Vec<u64> = [c.ready, c.delayed, c.leased, c.dead, c.expired]
        .iter()
        .zip(t.known)
        .map(|(have, k)| have.saturating_sub(k))
        .collect();
    let n_live: u64 = need.iter().sum();
    let (n_lo, n_hi) = (t.n_lo, t.n_hi);
    let n_rec = n_lo + n_hi;
    // At most this many of them are finished, at least that many.
    let fin_max = n_rec.min(t.unknown_all.saturating_sub(n_live));
    let fin_min = n_rec.saturating_sub(n_live);
    if fin_max == 0 {
        (Fate::Live, Fate::Live)
    } else if fin_min == n_rec {
        (Fate::Finished, Fate::Finished)
    } else {
        // Below scan_lo a message is dead or finished.
        // Dead letters, failed or expired.
        let need_dead = need[3] + need[4];
        let (lo_fate, fin_lo_min) = if need_dead == 0 {
            (Fate::Finished, n_lo)
        } else {
            (Fate::Held, n_lo.saturating_sub(need_dead))
        };
        let fin_hi_max = fin_max.saturating_sub(fin_lo_min);
        let hi_fate = if fin_hi_max == 0 {
            Fate::Live
        } else if n_hi.saturating_sub(n_live) == n_hi {
            Fate::Finished
        } else {
            Fate::Held
        };
        (lo_fate, hi_fate)
    }
}

/// How [`decide`] came to a message's slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// As something durable says (or already lost, or never live).
    Known,
    /// Lost now: it was live and no intact record of it is left.
    Lost,
    /// Its state was lost and is inferred from its record and `fate`.
    Inferred(Fate),
}

/// The slot of one message, `seq`, from its exact state (`exact`: the WAL
/// since the checkpoint, a trusted slot, a finished state), a state it had
/// once (`hint`), its good record in a segment (`rec`: where, and its
/// header) and, for a message whose state is lost, the `fate` the counters
/// give it. With `relocate` (a repair that rewrote segments) a live message
/// takes its location from its record. This is the per-message rule of
/// [`super::rebuild::rebuild`] (and [`resolve`]):
/// * an exact state is kept as it is without `relocate`, and a finished
///   one (acked, purged) always;
/// * a good record and a live exact state: the state is kept, its location
///   updated to where the record now is;
/// * no good record: a corrupt state stays so; a live one is lost (marked
///   corrupt, never served); with no exact state the message is corrupt, and
///   counted lost if its stale state was live;
/// * a good record and no exact state (or a corrupt one, whose record is
///   intact again): by `fate`: live is its stale state if that was live,
///   else ready, attempts 0 (delayed if its record says so); finished is
///   acked; held is a dead letter keeping its stale attempts.
fn decide(
    seq: u64,
    exact: Option<Meta>,
    hint: Option<Meta>,
    rec: Option<(Loc, record::RecordHeader)>,
    fate: Fate,
    relocate: bool,
) -> (Meta, Outcome) {
    let lost_meta = |pushed_at_ms: u64| Meta {
        seq,
        state: State::Corrupt,
        attempts: 0,
        max_attempts: 0,
        pushed_at_ms,
        until_ms: 0,
        receipt: [0; 12],
        len: 0,
        loc: Loc::default(),
        expires_at_ms: 0,
        keyed: false,
        priority: 0,
        group: None,
    };
    match (exact, rec) {
        (Some(m), _) if !relocate || (is_final(m.state) && m.state != State::Corrupt) => {
            (m, Outcome::Known)
        }
        (Some(m), Some((loc, r))) if m.state != State::Corrupt => (
            Meta {
                loc,
                len: r.body_len,
                keyed: r.unique.is_some(),
                priority: r.priority,
                group: r.group,
                ..m
            },
            Outcome::Known,
        ),
        (Some(m), None) if m.state == State::Corrupt => (m, Outcome::Known),
        (Some(m), None) => (lost_meta(m.pushed_at_ms), Outcome::Lost),
        (_, Some((loc, r))) => (infer(seq, hint, loc, &r, fate), Outcome::Inferred(fate)),
        (None, None) => {
            let outcome = if hint.is_some_and(|h| h.state.is_live()) {
                Outcome::Lost
            } else {
                Outcome::Known
            };
            (lost_meta(hint.map_or(0, |h| h.pushed_at_ms)), outcome)
        }
    }
}

/// The slot of message `seq`, whose state was lost, from its record `r`
/// (at `loc`), its stale state `hint` and its `fate` (see [`decide`]).
fn infer(seq: u64, hint: Option<Meta>, loc: Loc, r: &record::RecordHeader, fate: Fate) -> Meta {
    let base = Meta {
        seq,
        state: State::Ready,
        attempts: 0,
        max_attempts: 0,
        pushed_at_ms: r.pushed_at_ms,
        until_ms: 0,
        receipt: [0; 12],
        len: r.body_len,
        loc,
        expires_at_ms: r.expires_at_ms,
        keyed: r.unique.is_some(),
        priority: r.priority,
        group: r.group,
    };
    match fate {
        Fate::Live => match hint {
            Some(h) if h.state.is_live() => Meta {
                loc,
                len: r.body_len,
                keyed: base.keyed,
                priority: base.priority,
                group: base.group,
                ..h
            },
            _ if r.not_before_ms > 0 => Meta {
                state: State::Delayed,
                until_ms: r.not_before_ms,
                ..base
            },
            _ => base,
        },
        Fate::Finished => Meta {
            state: State::Acked,
            ..base
        },
        Fate::Held => Meta {
            state: State::Dead,
            attempts: hint.map_or(0, |h| h.attempts),
            ..base
        },
    }
}

/// How many messages came to each [`Outcome`] worth a note.
#[derive(Debug, Default)]
struct Outcomes {
    lost: u64,
    inferred_live: u64,
    inferred_done: u64,
    held: u64,
}

impl Outcomes {
    fn count(&mut self, o: Outcome) {
        match o {
            Outcome::Known => {}
            Outcome::Lost => self.lost += 1,
            Outcome::Inferred(Fate::Live) => self.inferred_live += 1,
            Outcome::Inferred(Fate::Finished) => self.inferred_done += 1,
            Outcome::Inferred(Fate::Held) => self.held += 1,
        }
    }

    /// A line for each kind of message whose state was decided here.
    fn notes(&self) -> Vec<String> {
        let Outcomes {
            lost,
            inferred_live,
            inferred_done,
            held,
        } = *self;
        let mut notes = Vec::new();
        if lost > 0 {
            notes.push(format!(
                "{lost} messages had no intact record left and are marked lost"
            ));
        }
        if inferred_live > 0 {
            notes.push(format!(
                "{inferred_live} messages whose state was lost are pending again (from their records)"
            ));
        }
        if inferred_done > 0 {
            notes.push(format!(
                "{inferred_done} messages whose state was lost are finished (the counters say so) and stay so"
            ));
        }
        if held > 0 {
            notes.push(format!(
                "{held} messages whose state was lost may each have been acked (the counters cannot say which): \
                 they are kept as dead letters so that none is delivered again; `spoolmq retry` delivers them, \
                 acked ones included, `spoolmq purge --dead` drops them"
            ));
        }
        notes
    }
}

/// Makes `counters` (the live ones counted from the slots) add up with the
/// old header's `old`: `pushed` and `purged` from it, `corrupt` from it plus
/// the `lost` messages, and `acked` the rest.
fn add_up(counters: &mut Counters, old: &Counters, end: u64, lost: u64) {
    // Live states are counted; the totals come from the header and add up.
    let live_total =
        counters.ready + counters.delayed + counters.leased + counters.dead + counters.expired;
    // Seqs are given out from 1: every one below `end` was pushed.
    let pushed = old.pushed.max(end.saturating_sub(1)).max(live_total);
    let finished = pushed - live_total;
    let purged = old.purged.min(finished);
    let corrupt = (old.corrupt + lost)
        .max(counters.corrupt)
        .min(finished - purged);
    counters.pushed = pushed;
    counters.purged = purged;
    counters.corrupt = corrupt;
    counters.acked = finished - purged - corrupt;
}

#[cfg(test)]
mod tests {
    //! [`decide`] against the rules of [`super::super::rebuild::rebuild`]
    //! (quoted above each test), and [`fates`] against those of [`resolve`].
    use super::*;
    use crate::store::fs::record::RecordHeader;
    use State::*;

    /// Where the good record of each message is now (a repair moved it).
    const NOW: Loc = Loc {
        segment: 7,
        offset: 500,
        long: false,
    };

    fn rec(seq: u64, not_before_ms: u64) -> Option<(Loc, RecordHeader)> {
        Some((
            NOW,
            RecordHeader {
                body_len: 9,
                seq,
                pushed_at_ms: 1000,
                not_before_ms,
                body_crc: 0,
                ttl_ms: 0,
                expires_at_ms: 0,
                unique: None,
                priority: 0,
                group: None,
            },
        ))
    }

    /// A slot as it was, at the record's old place.
    fn slot(seq: u64, state: State) -> Meta {
        Meta {
            seq,
            state,
            attempts: 3,
            max_attempts: 5,
            pushed_at_ms: 1000,
            until_ms: 77,
            receipt: [1; 12],
            len: 9,
            loc: Loc {
                segment: 1,
                offset: 16,
                long: false,
            },
            expires_at_ms: 0,
            priority: 0,
            group: None,
            keyed: false,
        }
    }

    const LIVE_STATES: [State; 4] = [Ready, Delayed, Leased, Dead];

    /// Expired dead letters are live: counted, never taken for acked.
    #[test]
    fn the_counters_add_up_with_expired_dead_letters_among_the_live() {
        let mut c = Counters {
            ready: 1,
            expired: 2,
            ..Counters::default()
        };
        let old = Counters {
            pushed: 3,
            ..Counters::default()
        };
        add_up(&mut c, &old, 4, 0);
        assert_eq!(
            (c.pushed, c.acked, c.purged, c.corrupt),
            (3, 0, 0, 0),
            "{c:?}"
        );
    }

    /// "a good record and a good slot: the slot's state is kept (its
    /// location updated to where the record now is)"
    #[test]
    fn a_good_record_and_a_good_slot_keep_the_slots_state_where_the_record_now_is() {
        for state in LIVE_STATES {
            for fate in [Fate::Live, Fate::Finished, Fate::Held] {
                let (m, o) = decide(5, Some(slot(5, state)), None, rec(5, 0), fate, true);
                assert_eq!(
                    m,
                    Meta {
                        loc: NOW,
                        ..slot(5, state)
                    },
                    "{state:?}"
                );
                assert_eq!(o, Outcome::Known);
            }
        }
        for state in [Acked, Purged] {
            let (m, o) = decide(5, Some(slot(5, state)), None, rec(5, 0), Fate::Live, true);
            assert_eq!((m.state, o), (state, Outcome::Known));
        }
    }

    /// "a good record and no good slot: ready, attempts 0 (at-least-once: a
    /// message is never lost for want of its slot); delayed if the record
    /// says so, or the state of a stale slot if that was live"
    #[test]
    fn a_good_record_and_no_good_slot_is_pending_again() {
        let (m, o) = decide(5, None, None, rec(5, 0), Fate::Live, true);
        assert_eq!(
            (m.state, m.attempts, m.loc, m.len, m.pushed_at_ms),
            (Ready, 0, NOW, 9, 1000)
        );
        assert_eq!(o, Outcome::Inferred(Fate::Live));
        let (m, _) = decide(5, None, None, rec(5, 4242), Fate::Live, true);
        assert_eq!((m.state, m.until_ms, m.attempts), (Delayed, 4242, 0));
        let (m, _) = decide(5, None, Some(slot(5, Leased)), rec(5, 0), Fate::Live, true);
        assert_eq!(
            m,
            Meta {
                loc: NOW,
                ..slot(5, Leased)
            }
        );
        // A stale slot that was finished is no state to go back to.
        let (m, _) = decide(5, None, Some(slot(5, Acked)), rec(5, 0), Fate::Live, true);
        assert_eq!((m.state, m.attempts), (Ready, 0));
    }

    /// "unless the old header's counters say it was finished (then acked)
    /// or cannot say (then a dead letter)"
    #[test]
    fn a_good_record_and_no_good_slot_follows_the_counters() {
        let (m, o) = decide(
            5,
            None,
            Some(slot(5, Ready)),
            rec(5, 0),
            Fate::Finished,
            true,
        );
        assert_eq!(
            (m.state, m.loc, o),
            (Acked, NOW, Outcome::Inferred(Fate::Finished))
        );
        let (m, o) = decide(5, None, Some(slot(5, Leased)), rec(5, 0), Fate::Held, true);
        assert_eq!(
            (m.state, m.attempts, o),
            (Dead, 3, Outcome::Inferred(Fate::Held))
        );
        let (m, _) = decide(5, None, None, rec(5, 0), Fate::Held, true);
        assert_eq!((m.state, m.attempts), (Dead, 0));
    }

    /// "A corrupt slot whose record is intact again counts as no good slot"
    #[test]
    fn a_corrupt_slot_whose_record_is_intact_again_is_pending_again() {
        let (m, o) = decide(5, Some(slot(5, Corrupt)), None, rec(5, 0), Fate::Live, true);
        assert_eq!(
            (m.state, m.loc, o),
            (Ready, NOW, Outcome::Inferred(Fate::Live))
        );
    }

    /// "no good record: an acked or purged slot stays so"
    #[test]
    fn no_good_record_keeps_an_acked_or_purged_slot() {
        for state in [Acked, Purged] {
            let (m, o) = decide(5, Some(slot(5, state)), None, None, Fate::Live, true);
            assert_eq!((m, o), (slot(5, state), Outcome::Known));
        }
    }

    /// "anything else is marked corrupt (lost) and never served"
    #[test]
    fn no_good_record_and_anything_else_is_marked_lost() {
        for state in LIVE_STATES {
            let (m, o) = decide(5, Some(slot(5, state)), None, None, Fate::Live, true);
            assert_eq!(
                (m.state, m.len, m.loc, o),
                (Corrupt, 0, Loc::default(), Outcome::Lost)
            );
            assert!(!m.state.is_live() && !m.state.is_pending());
        }
        let (m, o) = decide(5, Some(slot(5, Corrupt)), None, None, Fate::Live, true);
        assert_eq!((m.state, o), (Corrupt, Outcome::Known));
        // No slot at all: lost, and counted so if its stale state was live.
        let (m, o) = decide(5, None, Some(slot(5, Leased)), None, Fate::Live, true);
        assert_eq!((m.state, m.pushed_at_ms, o), (Corrupt, 1000, Outcome::Lost));
        let (m, o) = decide(5, None, None, None, Fate::Live, true);
        assert_eq!((m.state, o), (Corrupt, Outcome::Known));
    }

    /// Without `relocate` (the slots rebuild on open, segments untouched):
    /// an exact state is kept as it is, record or not.
    #[test]
    fn without_relocate_an_exact_state_is_kept_as_it_is() {
        for state in [Ready, Delayed, Leased, Dead, Acked, Purged, Corrupt] {
            for r in [rec(5, 0), None] {
                let (m, o) = decide(5, Some(slot(5, state)), None, r, Fate::Held, false);
                assert_eq!((m, o), (slot(5, state), Outcome::Known));
            }
        }
    }

    fn tally_of(n_lo: u64, n_hi: u64, unknown_all: u64) -> Tally {
        Tally {
            known: [0; 5],
            unknown_all,
            n_lo,
            n_hi,
        }
    }

    /// [`resolve`]: "When all of them must be live they are given their
    /// stale state, or ready"; "when all of them must be finished they stay
    /// acked"; "when the counters cannot say which are which, they are kept
    /// as dead letters"; "Every message below `old.scan_lo` is known not to
    /// be pending."
    #[test]
    fn the_counters_say_which_messages_with_no_state_are_live() {
        let ready = |n| Counters {
            ready: n,
            ..Counters::default()
        };
        assert_eq!(
            fates(&ready(2), &tally_of(0, 2, 2)),
            (Fate::Live, Fate::Live)
        );
        assert_eq!(
            fates(&ready(0), &tally_of(1, 2, 3)),
            (Fate::Finished, Fate::Finished)
        );
        assert_eq!(
            fates(&ready(1), &tally_of(0, 2, 2)),
            (Fate::Finished, Fate::Held)
        );
        assert_eq!(
            fates(&ready(1), &tally_of(1, 1, 2)),
            (Fate::Finished, Fate::Live)
        );
        let dead = Counters {
            dead: 1,
            ..Counters::default()
        };
        assert_eq!(fates(&dead, &tally_of(2, 0, 2)), (Fate::Held, Fate::Live));
    }
}
