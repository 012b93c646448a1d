//! Crash states: which images of a log the lab mounts and checks.
//!
//! Two kinds, both after the workload's first command began (the log's
//! mark 1; what `mkfs` and `mount` did before it is the same in every
//! state):
//! - *at a flush* F: every entry before F applied, nothing after. What was
//!   acknowledged before F was made durable by F (or earlier) and must be
//!   there; a command that began after F cannot have left anything.
//! - *torn* between two consecutive flushes P < K: the image at P plus a
//!   random subset of the writes between P and K, each one whole, torn (a
//!   random subset of its 4 KiB units) or missing: the disk's volatile
//!   cache may have written any of them before the power went. What was
//!   acknowledged before P must be there; a command that began before K may
//!   have left some of its work or none.
//!
//! A state is a pure function of the log and its fields (the subset comes
//! from `seed`), so a failing one is rebuilt from its name alone.

use crate::log::{Kind, Log, SECTOR};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The unit a torn write keeps or loses: one 4 KiB physical sector.
pub const TEAR: u64 = 4096;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub name: String,
    /// Entries before this position are applied.
    pub upto: usize,
    /// Commands that ended at or before this position must be intact.
    pub acked: usize,
    /// Commands that began before this position may have left some work.
    pub began: usize,
    /// Torn states: the writes in `tail.0..tail.1` taken in part, by `seed`.
    pub tail: Option<(usize, usize, u64)>,
}

/// A small, fixed pseudo-random sequence (splitmix64): the same seed gives
/// the same states on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl State {
    /// The sectors the torn tail sets, to where their bytes are in the log
    /// (or `ZEROED`), later writes over earlier ones.
    pub fn tail_sectors(&self, log: &Log) -> HashMap<u64, usize> {
        let mut out = HashMap::new();
        let Some((from, to, seed)) = self.tail else {
            return out;
        };
        let mut rng = Rng(seed);
        for e in &log.entries[from..to] {
            if !matches!(e.kind, Kind::Write | Kind::Zero) {
                continue;
            }
            let how = rng.next() % 4;
            let mut unit = u64::MAX;
            let mut take = false;
            for i in 0..e.len / SECTOR {
                // A torn write keeps or loses whole 4 KiB units (by offset
                // on the disk): the atomic unit of a disk with 4 KiB
                // physical sectors, which these file systems' superblocks
                // rely on (docs/CRASHLAB.md: Assumptions).
                let u = (e.offset + i * SECTOR) / TEAR;
                if u != unit {
                    unit = u;
                    take = match how {
                        0 | 1 => true,
                        2 => rng.next().is_multiple_of(2),
                        _ => false,
                    };
                }
                if take {
                    let at = if e.kind == Kind::Zero {
                        crate::log::ZEROED
                    } else {
                        e.data_at + (i * SECTOR) as usize
                    };
                    out.insert(e.offset / SECTOR + i, at);
                }
            }
        }
        out
    }

    pub fn describe(&self) -> String {
        match self.tail {
            None => format!("the image at flush entry {}", self.upto),
            Some((from, to, seed)) => format!(
                "the image at flush entry {} plus part of the writes in entries {from}..{to} (seed {seed})",
                self.upto
            ),
        }
    }
}

/// Up to `flushes` states at flushes and `torn` torn states of `log`, from
/// the workload's start on, spread evenly, chosen by `seed`. With `all`,
/// every flush and a torn state between every two that have writes between.
pub fn plan(log: &Log, flushes: usize, torn: usize, seed: u64, all: bool) -> Vec<State> {
    let start = log.mark(1).unwrap_or(0);
    let fl: Vec<usize> = log.flushes().into_iter().filter(|&f| f > start).collect();
    let mut out = Vec::new();
    let pick = |n: usize, want: usize| -> Vec<usize> {
        if all || want >= n {
            (0..n).collect()
        } else {
            (0..want).map(|i| i * n / want).collect()
        }
    };
    for i in pick(fl.len(), flushes) {
        let f = fl[i];
        out.push(State {
            name: format!("f{f}"),
            upto: f,
            acked: f,
            began: f,
            tail: None,
        });
    }
    // Pairs of consecutive flushes with writes between them.
    let pairs: Vec<(usize, usize)> = fl
        .windows(2)
        .map(|w| (w[0], w[1]))
        .filter(|&(p, k)| {
            log.entries[p + 1..k]
                .iter()
                .any(|e| matches!(e.kind, Kind::Write | Kind::Zero))
        })
        .collect();
    let mut rng = Rng(seed);
    for i in pick(pairs.len(), torn) {
        let (p, k) = pairs[i];
        let s = rng.next() % 1_000_000;
        out.push(State {
            name: format!("t{p}-{k}-{s}"),
            upto: p,
            acked: p,
            began: k,
            tail: Some((p + 1, k, s)),
        });
    }
    out
}

/// The state a name stands for (`f123`, `t120-130-77`), for a re-run.
pub fn parse(name: &str) -> Option<State> {
    if let Some(f) = name.strip_prefix('f') {
        let f: usize = f.parse().ok()?;
        return Some(State {
            name: name.into(),
            upto: f,
            acked: f,
            began: f,
            tail: None,
        });
    }
    let mut it = name.strip_prefix('t')?.split('-');
    let p: usize = it.next()?.parse().ok()?;
    let k: usize = it.next()?.parse().ok()?;
    let s: u64 = it.next()?.parse().ok()?;
    Some(State {
        name: name.into(),
        upto: p,
        acked: p,
        began: k,
        tail: Some((p + 1, k, s)),
    })
}
