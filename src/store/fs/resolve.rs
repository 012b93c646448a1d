//! Deciding the state of every message whose slot was lost or cannot be
//! trusted, for the slots rebuild on open ([`super::reconcile`]) and for
//! `fsck --repair` ([`super::rebuild`]). Pure but for reading the WAL.
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
    const LIVE: [State; 4] = [State::Ready, State::Delayed, State::Leased, State::Dead];
    let idx = |s: State| LIVE.iter().position(|l| *l == s);
    let mut known = [0u64; 4];
    let mut unknown_all = 0u64;
    let mut u_lo: Vec<u64> = Vec::new();
    let mut u_hi: Vec<u64> = Vec::new();
    let scan_lo_old = old.map_or(lo, |h| h.scan_lo);
    // The header's counters cover the messages below its next_seq; later
    // ones were never counted (records a crash left past its end): those
    // are adopted, as recovery does.
    let counted_below = old.map_or(lo, |h| h.next_seq);
    for (i, e) in exact.iter().enumerate() {
        let seq = lo + i as u64;
        if seq >= counted_below {
            break;
        }
        match e {
            Some(m) => {
                if let Some(k) = idx(m.state) {
                    known[k] += 1;
                }
            }
            None => {
                unknown_all += 1;
                if record(seq).is_some() {
                    if seq < scan_lo_old {
                        u_lo.push(seq);
                    } else {
                        u_hi.push(seq);
                    }
                }
            }
        }
    }
    // How the messages with no exact state split: live, finished, or unknown.
    #[derive(Clone, Copy, PartialEq)]
    enum Fate {
        Live,
        Finished,
        Held,
    }
    let (fate_lo, fate_hi) = match old {
        None => (Fate::Live, Fate::Live),
        Some(h) => {
            let c = &h.counters;
            let need: Vec<u64> = [c.ready, c.delayed, c.leased, c.dead]
                .iter()
                .zip(known)
                .map(|(have, k)| have.saturating_sub(k))
                .collect();
            let n_live: u64 = need.iter().sum();
            let n_lo = u_lo.len() as u64;
            let n_hi = u_hi.len() as u64;
            let n_rec = n_lo + n_hi;
            // At most this many of them are finished, at least that many.
            let fin_max = n_rec.min(unknown_all.saturating_sub(n_live));
            let fin_min = n_rec.saturating_sub(n_live);
            if fin_max == 0 {
                (Fate::Live, Fate::Live)
            } else if fin_min == n_rec {
                (Fate::Finished, Fate::Finished)
            } else {
                // Below scan_lo a message is dead or finished.
                let need_dead = need[3];
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
    };
    let mut metas = Vec::with_capacity(exact.len());
    let mut counters = Counters::default();
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut scan_lo = end;
    let (mut lost, mut inferred_live, mut inferred_done, mut held) = (0u64, 0u64, 0u64, 0u64);
    for (i, (e, h)) in exact.into_iter().zip(hint).enumerate() {
        let seq = lo + i as u64;
        let rec = record(seq);
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
        };
        let m = match (e, rec) {
            (Some(m), _) if !relocate || (is_final(m.state) && m.state != State::Corrupt) => m,
            (Some(m), Some((loc, r))) if m.state != State::Corrupt => Meta {
                loc,
                len: r.body_len,
                ..m
            },
            (Some(m), None) if m.state == State::Corrupt => m,
            (Some(m), None) => {
                lost += 1;
                lost_meta(m.pushed_at_ms)
            }
            (e, Some((loc, r))) => {
                let fate = if e.is_some() || seq >= counted_below {
                    // A corrupt slot whose record is intact again (repair),
                    // or a record the header never counted.
                    Fate::Live
                } else if seq < scan_lo_old {
                    fate_lo
                } else {
                    fate_hi
                };
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
                };
                match fate {
                    Fate::Live => {
                        inferred_live += 1;
                        match h {
                            Some(h) if h.state.is_live() => Meta {
                                loc,
                                len: r.body_len,
                                ..h
                            },
                            _ if r.not_before_ms > 0 => Meta {
                                state: State::Delayed,
                                until_ms: r.not_before_ms,
                                ..base
                            },
                            _ => base,
                        }
                    }
                    Fate::Finished => {
                        inferred_done += 1;
                        Meta {
                            state: State::Acked,
                            ..base
                        }
                    }
                    Fate::Held => {
                        held += 1;
                        Meta {
                            state: State::Dead,
                            attempts: h.map_or(0, |h| h.attempts),
                            ..base
                        }
                    }
                }
            }
            (None, None) => {
                if h.is_some_and(|h| h.state.is_live()) {
                    lost += 1;
                }
                lost_meta(h.map_or(0, |h| h.pushed_at_ms))
            }
        };
        counters.add(m.state, m.len);
        if m.state.is_live() {
            *live.entry(m.loc.segment).or_default() += 1;
        }
        if m.state.is_pending() && scan_lo == end {
            scan_lo = seq;
        }
        metas.push(m);
    }
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
    if let Some(h) = old {
        // Live states are counted; the totals come from the header and add up.
        let live_total = counters.ready + counters.delayed + counters.leased + counters.dead;
        // Seqs are given out from 1: every one below `end` was pushed.
        let pushed = h.counters.pushed.max(end.saturating_sub(1)).max(live_total);
        let finished = pushed - live_total;
        let purged = h.counters.purged.min(finished);
        let corrupt = (h.counters.corrupt + lost)
            .max(counters.corrupt)
            .min(finished - purged);
        counters.pushed = pushed;
        counters.purged = purged;
        counters.corrupt = corrupt;
        counters.acked = finished - purged - corrupt;
    }
    Resolved {
        metas,
        counters,
        live,
        scan_lo,
        notes,
    }
}
