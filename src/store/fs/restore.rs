//! `migrate` into a new fs queue ([`crate::store::Store::restore`]):
//! every message pushed again in seq order (fillers for the seqs between
//! them), then its delivery state committed, the fillers acked.
//!
//! Invariants: only into a queue that is new; seqs, ids (the salt) and
//! counters come out as in the source. It has no format of its own: it
//! writes through the push and commit paths ([`super::write`],
//! [`super::commit`]).

use super::FsStore;
use crate::base::error::{Error, Result};
use crate::store::{Change, Counters, Meta, NewMessage, State, Store};
use std::borrow::Cow;

impl FsStore {
    /// [`Store::restore`].
    pub(super) fn restore_messages(
        &mut self,
        salt: u64,
        next_seq: u64,
        counters: Counters,
        metas: &[Meta],
        body: &mut dyn FnMut(&Meta) -> Result<crate::store::Restored>,
    ) -> Result<()> {
        if self.h.counters.pushed != 0 || !self.h.segments.is_empty() {
            return Err(Error::Runtime(format!(
                "{}: cannot restore into a queue that is not new",
                self.dir.display()
            )));
        }
        let first = metas.first().map_or(next_seq, |m| m.seq);
        self.h.salt = salt;
        self.h.next_seq = first;
        self.h.scan_lo = first;
        let mut want = metas.iter().peekable();
        let mut seq = first;
        while seq < next_seq {
            // A batch of up to 8 MiB of bodies per push (one fsync each).
            let mut batch: Vec<(Option<&Meta>, crate::store::Restored)> = Vec::new();
            let mut bytes = 0;
            while seq < next_seq && bytes < 8 << 20 {
                match want.next_if(|m| m.seq == seq) {
                    Some(m) => {
                        let r = body(m)?;
                        bytes += r.body.len();
                        batch.push((Some(m), r));
                    }
                    None => batch.push((
                        None,
                        crate::store::Restored {
                            body: Vec::new(),
                            ttl_ms: 0,
                            unique: None,
                        },
                    )),
                }
                seq += 1;
            }
            let mut news = batch.iter().map(|(m, r)| {
                Ok(NewMessage {
                    ttl_ms: r.ttl_ms,
                    unique: r.unique,
                    priority: m.map_or(0, |m| m.priority),
                    group: m.and_then(|m| m.group),
                    // The expiry the source kept (its state is committed below).
                    expires_at_ms: m.map_or(0, |m| m.expires_at_ms),
                    body: Cow::Borrowed(&r.body[..]),
                    pushed_at_ms: m.map_or(0, |m| m.pushed_at_ms),
                    not_before_ms: match m {
                        Some(m) if m.state == State::Delayed => m.until_ms.max(1),
                        _ => 0,
                    },
                })
            });
            self.push(&mut news)?;
        }
        if let Some(m) = want.next() {
            return Err(Error::Runtime(format!(
                "message {} is not below the next seq {next_seq}",
                m.seq
            )));
        }
        // Now the delivery state of each message, and the fillers acked.
        let mut want = metas.iter().peekable();
        let mut changes = Vec::new();
        for seq in first..next_seq {
            let Some(got) = self.get(seq)? else {
                return Err(Error::Runtime(format!("message {seq} was not restored")));
            };
            let new = match want.next_if(|m| m.seq == seq) {
                Some(m) => Meta { loc: got.loc, ..*m },
                None => Meta {
                    state: State::Acked,
                    ..got
                },
            };
            if new != got {
                changes.push(Change {
                    old: got.state,
                    new,
                });
            }
            if changes.len() >= 4096 {
                self.commit(&changes)?;
                changes.clear();
            }
        }
        self.commit(&changes)?;
        self.h.counters = counters;
        self.h.next_seq = next_seq;
        self.checkpoint()
    }
}
