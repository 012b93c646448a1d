//! The judgement of one crash state, through the real binary on the
//! mounted image: what a user would see after the power came back.
//!
//! For each queue of the journal:
//! - `export` lists every message; each must be one that was pushed, with
//!   its body byte for byte (nothing half-written is served), once, and in a
//!   state the journal allows: a command that ended before the state's
//!   acknowledged position decides it; one that began before the state's
//!   last write may or may not have (any subset of those); one that began
//!   later cannot have.
//! - `stats` must count what `export` shows (ready, leased, delayed, dead).
//! - `fsck` must be clean; if it reports damage, `fsck --repair` must leave
//!   every acknowledged message as it was and a clean `fsck` after it.
//!
//! Then the spool must still work: a push and a pop on a new queue.

use crate::plan::State;
use crate::workload::{Class, Journal, spoolmq};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub struct Outcome {
    pub violations: Vec<String>,
    pub repaired: Vec<String>,
}

/// The classes each message of `q` may be in at `st`.
fn allowed(j: &Journal, q: &str, st: &State) -> BTreeMap<String, BTreeSet<Class>> {
    let mut out: BTreeMap<String, BTreeSet<Class>> = BTreeMap::new();
    for id in j.bodies.get(q).into_iter().flat_map(|b| b.keys()) {
        out.insert(id.clone(), BTreeSet::from([Class::Absent]));
    }
    for op in &j.ops {
        let certain = op.end <= st.acked;
        let maybe = op.start < st.began;
        if !certain && !maybe {
            continue;
        }
        for (oq, id, class) in &op.effects {
            if oq != q {
                continue;
            }
            let set = out.entry(id.clone()).or_default();
            if certain {
                set.clear();
            }
            set.insert(*class);
        }
    }
    out
}

fn run(bin: &Path, spool: &Path, store: &str, args: &[&str]) -> (i32, String, String) {
    match spoolmq(bin, spool, store, args).output() {
        Ok(o) => (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).trim().to_string(),
        ),
        Err(e) => (-1, String::new(), e.to_string()),
    }
}

/// What `export q` shows: id -> (state, body), or why it could not be read.
fn export(
    bin: &Path,
    spool: &Path,
    store: &str,
    q: &str,
    bad: &mut Vec<String>,
) -> Option<BTreeMap<String, (String, String)>> {
    let (code, out, err) = run(bin, spool, store, &["export", q]);
    if code == 3 || (code == 1 && err.contains("no such queue")) {
        // Not made yet in this state: judged as empty (a push acknowledged
        // before it is then lost).
        return Some(BTreeMap::new());
    }
    if code != 0 {
        bad.push(format!("export {q} exited {code}: {err}"));
        return None;
    }
    let mut seen = BTreeMap::new();
    for line in out.lines() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                bad.push(format!("export {q} printed {line:?}: {e}"));
                continue;
            }
        };
        let id = v["id"].as_str().unwrap_or_default().to_string();
        let state = v["state"].as_str().unwrap_or_default().to_string();
        let body = v["body"].as_str().unwrap_or("<not utf-8>").to_string();
        if seen.insert(id.clone(), (state, body)).is_some() {
            bad.push(format!("{q}: message {id} is listed twice"));
        }
    }
    Some(seen)
}

fn judge(
    j: &Journal,
    q: &str,
    st: &State,
    seen: &BTreeMap<String, (String, String)>,
    bad: &mut Vec<String>,
) {
    let allow = allowed(j, q, st);
    let bodies = j.bodies.get(q);
    for (id, (state, body)) in seen {
        let Some(want) = bodies.and_then(|b| b.get(id)) else {
            bad.push(format!("{q}: message {id} ({state}) was never pushed"));
            continue;
        };
        if body != want {
            bad.push(format!(
                "{q}: message {id} has a body of {} bytes that is not the one pushed",
                body.len()
            ));
        }
        let classes = &allow[id];
        if !classes.iter().any(|c| c.shows_as(state)) {
            bad.push(format!(
                "{q}: message {id} is {state}, expected one of {classes:?}"
            ));
        }
    }
    for (id, classes) in &allow {
        if !seen.contains_key(id) && !classes.contains(&Class::Absent) {
            bad.push(format!(
                "{q}: message {id} is lost (expected one of {classes:?})"
            ));
        }
    }
}

fn counted(
    bin: &Path,
    spool: &Path,
    store: &str,
    q: &str,
    seen: &BTreeMap<String, (String, String)>,
    bad: &mut Vec<String>,
) {
    if seen.is_empty() {
        return;
    }
    let (code, out, err) = run(bin, spool, store, &["stats", q, "--json"]);
    if code != 0 {
        bad.push(format!("stats {q} exited {code}: {err}"));
        return;
    }
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
    for state in ["ready", "leased", "delayed", "dead"] {
        let n = seen.values().filter(|(s, _)| s == state).count() as u64;
        if v[state].as_u64() != Some(n) {
            bad.push(format!(
                "{q}: stats says {state} {}, export shows {n}",
                v[state]
            ));
        }
    }
}

pub fn check(bin: &Path, spool: &Path, j: &Journal, st: &State) -> Outcome {
    let store = j.store.as_str();
    let mut bad = Vec::new();
    let mut repaired = Vec::new();
    for q in j.bodies.keys() {
        let Some(seen) = export(bin, spool, store, q, &mut bad) else {
            continue;
        };
        judge(j, q, st, &seen, &mut bad);
        counted(bin, spool, store, q, &seen, &mut bad);
        if seen.is_empty() {
            continue;
        }
        let (code, _, err) = run(bin, spool, store, &["fsck", q]);
        if code == 0 {
            continue;
        }
        // Damage reported: a repair may drop only what was not acknowledged.
        repaired.push(format!("fsck {q} exited {code}: {err}"));
        let (code, _, err) = run(bin, spool, store, &["fsck", q, "--repair"]);
        if code != 0 {
            bad.push(format!("fsck {q} --repair exited {code}: {err}"));
            continue;
        }
        let (code, _, err) = run(bin, spool, store, &["fsck", q]);
        if code != 0 {
            bad.push(format!("fsck {q} after --repair exited {code}: {err}"));
        }
        if let Some(after) = export(bin, spool, store, q, &mut bad) {
            judge(j, q, st, &after, &mut bad);
        }
    }
    // The spool still takes work.
    let (code, _, err) = run(bin, spool, store, &["push", "lab-after", "x"]);
    if code != 0 {
        bad.push(format!("a push after the crash exited {code}: {err}"));
    } else {
        let (code, out, err) = run(bin, spool, store, &["pop", "lab-after"]);
        if code != 0 || !out.contains('x') {
            bad.push(format!("a pop after the crash exited {code}: {err}"));
        }
    }
    Outcome {
        violations: bad,
        repaired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Op;

    fn op(start: usize, end: usize, id: &str, class: Class) -> Op {
        Op {
            what: String::new(),
            start,
            end,
            effects: vec![("q".into(), id.into(), class)],
        }
    }

    #[test]
    fn a_state_allows_what_ended_before_it_and_maybe_what_began_before_its_last_write() {
        let mut j = Journal::default();
        j.bodies
            .entry("q".into())
            .or_default()
            .insert("a".into(), "x".into());
        // push a (ends at 10), pop a (15..20), ack a (25..30).
        j.ops = vec![
            op(0, 10, "a", Class::Ready),
            op(15, 20, "a", Class::Leased),
            op(25, 30, "a", Class::Absent),
        ];
        let at = |acked, began| {
            let st = State {
                name: String::new(),
                upto: acked,
                acked,
                began,
                tail: None,
            };
            allowed(&j, "q", &st)["a"]
                .iter()
                .copied()
                .collect::<Vec<_>>()
        };
        // Before the push began: not there.
        assert_eq!(at(0, 0), vec![Class::Absent]);
        // The push in flight: either.
        assert_eq!(at(5, 5), vec![Class::Absent, Class::Ready]);
        // Pushed, nothing else begun.
        assert_eq!(at(12, 12), vec![Class::Ready]);
        // Torn between 12 and 27: the pop and the ack may each have happened.
        assert_eq!(at(12, 27), vec![Class::Absent, Class::Ready, Class::Leased]);
        // All done: acked, whatever was in flight before.
        assert_eq!(at(30, 30), vec![Class::Absent]);
        assert_eq!(at(20, 20), vec![Class::Leased]);
    }
}
