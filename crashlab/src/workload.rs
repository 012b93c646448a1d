//! The workload: real `spoolmq` commands on the recorded file system, one at
//! a time, each journalled with the log positions it began and ended at and
//! what it did to which message, so a crash state can be judged.
//!
//! Invariants: every command must succeed here (the recording is of a
//! healthy machine; the crash comes later, in the replay), and every body is
//! distinct, so a message is known by its id and its body both.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a message may be after a command, as `export` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Class {
    /// Not pushed yet, or acked, or purged: not in the queue.
    Absent,
    Ready,
    Delayed,
    /// Leased for an hour: still leased when the checks run.
    Leased,
    /// Leased for a second with its last attempt: by the time of the checks
    /// its lease ran out, so it shows leased, ready or dead.
    Expiring,
    Dead,
}

impl Class {
    pub fn shows_as(self, state: &str) -> bool {
        match self {
            Class::Absent => false,
            Class::Ready => state == "ready",
            Class::Delayed => state == "delayed",
            Class::Leased => state == "leased",
            Class::Expiring => matches!(state, "leased" | "ready" | "dead"),
            Class::Dead => state == "dead",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Op {
    pub what: String,
    pub start: usize,
    pub end: usize,
    /// (queue, id, what the message is after this command)
    pub effects: Vec<(String, String, Class)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Journal {
    pub store: String,
    pub ops: Vec<Op>,
    /// queue -> id -> body
    pub bodies: BTreeMap<String, BTreeMap<String, String>>,
}

pub struct Driver {
    pub bin: PathBuf,
    pub spool: PathBuf,
    pub store: String,
    pub pos: PathBuf,
    pub journal: Journal,
    next_body: usize,
}

fn fail(what: String) -> String {
    what
}

impl Driver {
    pub fn new(bin: &Path, spool: &Path, store: &str, pos: &Path) -> Driver {
        Driver {
            bin: bin.into(),
            spool: spool.into(),
            store: store.into(),
            pos: pos.into(),
            journal: Journal {
                store: store.into(),
                ..Journal::default()
            },
            next_body: 0,
        }
    }

    pub fn position(&self) -> Result<usize, String> {
        let t = std::fs::read_to_string(&self.pos)
            .map_err(|e| fail(format!("{}: {e}", self.pos.display())))?;
        t.trim()
            .parse()
            .map_err(|_| fail(format!("{}: not a number: {t:?}", self.pos.display())))
    }

    pub fn mark(&self, n: u64) -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.pos)
            .map_err(|e| format!("{}: {e}", self.pos.display()))?;
        f.write_all(format!("{n}\n").as_bytes())
            .map_err(|e| format!("{}: {e}", self.pos.display()))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        spoolmq(&self.bin, &self.spool, &self.store, args)
    }

    /// Runs one command, which must exit `want`; returns its stdout.
    fn run(
        &mut self,
        args: &[&str],
        stdin: &str,
        want: i32,
    ) -> Result<(String, usize, usize), String> {
        let start = self.position()?;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.display()))?;
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let end = self.position()?;
        let code = out.status.code().unwrap_or(-1);
        if code != want {
            return Err(format!(
                "spoolmq {} exited {code}, not {want}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok((
            String::from_utf8_lossy(&out.stdout).into_owned(),
            start,
            end,
        ))
    }

    fn record(
        &mut self,
        args: &[&str],
        start: usize,
        end: usize,
        effects: Vec<(String, String, Class)>,
    ) {
        self.journal.ops.push(Op {
            what: args.join(" "),
            start,
            end,
            effects,
        });
    }

    fn body(&mut self, size: usize) -> String {
        self.next_body += 1;
        let mut b = format!("b{:05}-", self.next_body);
        while b.len() < size {
            b.push(char::from(b'a' + (b.len() % 26) as u8));
        }
        b
    }

    /// Pushes `bodies` (one command; `--lines` when more than one), with
    /// `extra` flags; the messages become `class`.
    fn push(
        &mut self,
        q: &str,
        bodies: Vec<String>,
        extra: &[&str],
        class: Class,
    ) -> Result<Vec<String>, String> {
        let mut args = vec!["push", q];
        args.extend_from_slice(extra);
        let stdin = if bodies.len() == 1 {
            args.push(&bodies[0]);
            String::new()
        } else {
            args.push("--lines");
            bodies.iter().map(|b| format!("{b}\n")).collect()
        };
        let (out, start, end) = self.run(&args.clone(), &stdin, 0)?;
        let ids: Vec<String> = out.lines().map(String::from).collect();
        if ids.len() != bodies.len() {
            return Err(format!(
                "push printed {} ids for {} bodies",
                ids.len(),
                bodies.len()
            ));
        }
        let known = self.journal.bodies.entry(q.into()).or_default();
        for (id, b) in ids.iter().zip(&bodies) {
            known.insert(id.clone(), b.clone());
        }
        let effects = ids
            .iter()
            .map(|id| (q.to_string(), id.clone(), class))
            .collect();
        self.record(&args, start, end, effects);
        Ok(ids)
    }

    /// Pops up to `n`; returns (id, receipt) of each.
    fn pop(
        &mut self,
        q: &str,
        n: usize,
        extra: &[&str],
        class: Class,
    ) -> Result<Vec<(String, String)>, String> {
        let count = n.to_string();
        let mut args = vec!["pop", q, "--count", &count, "--json"];
        args.extend_from_slice(extra);
        let (out, start, end) = self.run(&args.clone(), "", 0)?;
        let mut got = Vec::new();
        for line in out.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("pop printed {line:?}: {e}"))?;
            let id = v["id"].as_str().unwrap_or_default().to_string();
            let r = v["receipt"].as_str().unwrap_or_default().to_string();
            got.push((id, r));
        }
        let effects = got
            .iter()
            .map(|(id, _)| (q.to_string(), id.clone(), class))
            .collect();
        self.record(&args, start, end, effects);
        Ok(got)
    }

    /// `ack`, `nack` or `extend` of `msgs`: receipts as arguments, or on
    /// stdin with `-` when `stdin` is set.
    fn settle(
        &mut self,
        verb: &str,
        q: &str,
        msgs: &[(String, String)],
        extra: &[&str],
        class: Class,
        stdin: bool,
    ) -> Result<(), String> {
        let mut args = vec![verb, q];
        let text: String = if stdin {
            args.push("-");
            msgs.iter().map(|(_, r)| format!("{r}\n")).collect()
        } else {
            args.extend(msgs.iter().map(|(_, r)| r.as_str()));
            String::new()
        };
        args.extend_from_slice(extra);
        let (_, start, end) = self.run(&args.clone(), &text, 0)?;
        let effects = msgs
            .iter()
            .map(|(id, _)| (q.to_string(), id.clone(), class))
            .collect();
        self.record(&args, start, end, effects);
        Ok(())
    }

    /// The queue's segment count (`stats`; not journalled, it writes nothing).
    fn segments(&mut self, q: &str) -> Result<u64, String> {
        let (out, _, _) = self.run(&["stats", q, "--json"], "", 0)?;
        let v: serde_json::Value = serde_json::from_str(out.trim()).map_err(|e| e.to_string())?;
        Ok(v["segments"].as_u64().unwrap_or(0))
    }

    fn plain(
        &mut self,
        args: &[&str],
        want: i32,
        effects: Vec<(String, String, Class)>,
    ) -> Result<String, String> {
        let (out, start, end) = self.run(args, "", want)?;
        self.record(args, start, end, effects);
        Ok(out)
    }

    /// The whole workload (README of the lab: docs/CRASHLAB.md).
    pub fn run_all(&mut self) -> Result<(), String> {
        use Class::*;
        self.mark(1)?;
        // Single pushes, each its own process and fsync.
        for _ in 0..6 {
            let b = vec![self.body(40)];
            self.push("q", b, &[], Ready)?;
        }
        // A batch, then the everyday cycle: pop, ack, nack (at once and
        // delayed), extend, ack from stdin.
        let batch = (0..20).map(|_| self.body(1000)).collect();
        self.push("q", batch, &[], Ready)?;
        let got = self.pop("q", 8, &["--lease", "1h"], Leased)?;
        self.settle("ack", "q", &got[0..3], &[], Absent, false)?;
        self.settle("nack", "q", &got[3..4], &["--delay", "1h"], Delayed, false)?;
        self.settle("nack", "q", &got[4..5], &[], Ready, false)?;
        self.settle("extend", "q", &got[5..6], &["--lease", "2h"], Leased, false)?;
        self.settle("ack", "q", &got[6..8], &[], Absent, true)?;
        let b = vec![self.body(60)];
        self.push("q", b, &["--delay", "1h"], Delayed)?;
        // Enough to roll segments over (64 KiB each here), then most of it
        // acked in one commit so the drained segments are reclaimed.
        let big = (0..120).map(|_| self.body(1500)).collect();
        self.push("q", big, &[], Ready)?;
        let rolled = self.segments("q")?;
        let all = self.pop("q", 1000, &["--lease", "1h"], Leased)?;
        let keep = 4.min(all.len());
        self.settle("ack", "q", &all[keep..], &[], Absent, true)?;
        let reclaimed = self.segments("q")?;
        if self.store == "fs" && (rolled < 3 || reclaimed >= rolled) {
            return Err(format!(
                "the workload meant to roll segments over and reclaim them: {rolled} segments, then {reclaimed}"
            ));
        }
        // A lease that runs out on its last attempt: a dead letter, retried.
        let x = vec![self.body(30)];
        let xid = self.push("d", x, &[], Ready)?;
        self.pop("d", 1, &["--lease", "1s", "--max-attempts", "1"], Expiring)?;
        std::thread::sleep(std::time::Duration::from_millis(1300));
        let dead: Vec<_> = xid
            .iter()
            .map(|id| ("d".to_string(), id.clone(), Dead))
            .collect();
        self.plain(&["pop", "d"], 3, dead)?;
        let back: Vec<_> = xid
            .iter()
            .map(|id| ("d".to_string(), id.clone(), Ready))
            .collect();
        self.plain(&["retry", "d"], 0, back)?;
        // A purge.
        let ps = (0..5).map(|_| self.body(50)).collect();
        let pids = self.push("p", ps, &[], Ready)?;
        let gone = pids
            .iter()
            .map(|id| ("p".to_string(), id.clone(), Absent))
            .collect();
        self.plain(&["purge", "p"], 0, gone)?;
        // A repair pass over a healthy queue changes nothing.
        self.plain(&["fsck", "q", "--repair"], 0, vec![])?;
        // A new queue, late.
        let ns = (0..3).map(|_| self.body(20)).collect();
        self.push("n", ns, &[], Ready)?;
        let one = self.pop("n", 1, &["--lease", "1h"], Leased)?;
        self.settle("ack", "n", &one, &[], Absent, false)?;
        // One message at a time, end to end.
        for _ in 0..5 {
            let b = vec![self.body(200)];
            self.push("q", b, &[], Ready)?;
            let m = self.pop("q", 1, &["--lease", "1h"], Leased)?;
            self.settle("ack", "q", &m, &[], Absent, false)?;
        }
        self.mark(2)?;
        Ok(())
    }
}

pub fn spoolmq(bin: &Path, spool: &Path, store: &str, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env("SPOOLMQ_DIR", spool)
        .env("SPOOLMQ_STORE", store)
        .env_remove("SPOOLMQ_URL")
        .env_remove("SPOOLMQ_KEY_FILE")
        // Segments of 64 KiB (a test build's knob), so a few hundred
        // kilobytes roll over and reclaim.
        .env("SPOOLMQ_TEST_SEGMENT_BYTES", "65536");
    c
}
