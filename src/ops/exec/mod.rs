//! Waiting for messages and the `exec` worker.
//!
//! Waiting uses a [`Watch`] (`crate::ops::wake`), so a message pushed by another
//! process wakes the waiter at once; it also looks again every so often, for
//! delays and leases that run out (and, where no watch is available, for
//! everything). Neither holds the queue lock while it waits or while the user's command
//! runs: each pop, extend, ack and nack opens the queue, does its short
//! critical section and closes it again.
//!
//! `exec` runs up to `--jobs` commands at once, each on a message of its own
//! with a lease of its own, and keeps every lease alive: every half lease it
//! extends the lease to a full lease from now, so a job that runs longer
//! than `--lease` is never delivered twice while its command is alive. A
//! failed attempt (non-zero exit, a signal, `--timeout`, a command that
//! could not start) is nacked with the `--backoff` delay and a
//! [`Failure`] saying what happened. A command that succeeded is acked by
//! the commit that leases the next message ([`crate::queue::Queue::ack_and_pop`],
//! one sync per job where there were two), in the same turn of the loop;
//! if no message is taken next (the run ends, every slot is busy), alone.
//!
//! Each command runs in a process group of its own (`child.rs`). On SIGTERM
//! or SIGINT (`signals.rs`) `exec` starts nothing more, forwards the signal
//! to every running command's group, waits up to `--kill-after` and then
//! kills the groups; a command that exits 0 is acked, any other outcome
//! gives its message back at once with the attempt not counted. So no
//! message is given back while its command is alive. If `exec` itself is
//! killed with SIGKILL, the extensions stop and the message is delivered
//! again when the lease runs out.

mod child;
mod signals;

use crate::base::error::{Error, Result};
use crate::model::backoff::{Backoff, Retry};
use crate::model::failure::{Failure, How};
use crate::ops::wake::{Waiter, Watch};
use crate::queue::{Delivery, now_ms};
use crate::spool::{Spool, StoreKind};
use std::ffi::OsString;
use std::process::ExitStatus;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A sink for lines meant for stderr (damage found and skipped, job failures).
pub type Warn<'a> = &'a mut dyn FnMut(String);

/// What `pop` was asked for.
#[derive(Debug, Clone)]
pub struct PopRequest {
    pub count: usize,
    pub lease: Duration,
    pub max_attempts: u32,
    /// `None`: do not wait. `Some(None)`: wait forever. `Some(Some(d))`: up to `d`.
    pub wait: Option<Option<Duration>>,
}

/// Pops, waiting as asked. An empty result means nothing came in time.
pub fn pop(spool: &Spool, queue: &str, req: &PopRequest) -> Result<Vec<Delivery>> {
    pop_until(spool, queue, req, None, &|| false, &mut Waiter::default())
}

/// Pops, waiting as asked but no later than `cap`, and no longer once
/// `stop()` says so (it is asked at least every poll interval). A caller
/// that pops again and again keeps one `waiter` for all of its pops.
pub fn pop_until(
    spool: &Spool,
    queue: &str,
    req: &PopRequest,
    cap: Option<Instant>,
    stop: &dyn Fn() -> bool,
    waiter: &mut Waiter,
) -> Result<Vec<Delivery>> {
    let deadline = match req.wait {
        None => Some(Instant::now()),
        Some(None) => cap,
        Some(Some(d)) => Some(cap.map_or(Instant::now() + d, |c| c.min(Instant::now() + d))),
    };
    let poll = Watch::poll_interval(spool);
    loop {
        // Watch first, then look: a push between the look and the wait still wakes us.
        if req.wait.is_some() {
            waiter.arm(spool, queue);
        }
        if let Some(mut q) = spool.open_queue(queue, false)? {
            let got = q.pop(req.count, req.lease, req.max_attempts, now_ms())?;
            if !got.is_empty() {
                return Ok(got);
            }
        }
        if stop() {
            return Ok(Vec::new());
        }
        let pause = match deadline {
            None => poll,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Vec::new());
                }
                left.min(poll)
            }
        };
        waiter.wait(pause);
    }
}

/// What `exec` was asked for.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub lease: Duration,
    pub max_attempts: u32,
    pub wait: Option<Option<Duration>>,
    pub repeat: bool,
    /// How a failed attempt's message comes back.
    pub backoff: Backoff,
    /// A command still running after this long is stopped (SIGTERM, then
    /// SIGKILL after `kill_after`) and its attempt failed.
    pub timeout: Option<Duration>,
    /// From SIGTERM to SIGKILL, for `timeout` and when `exec` is stopped.
    pub kill_after: Duration,
    /// Commands run at once (at least 1).
    pub jobs: usize,
    /// Start no more than this many messages.
    pub max_messages: Option<u64>,
    /// Start no message after this long.
    pub max_time: Option<Duration>,
    pub cmd: Vec<OsString>,
}

/// What an `exec` run did.
#[derive(Debug, Default)]
pub struct Ran {
    /// Messages whose command was started (or could not be).
    pub started: u64,
    pub acked: u64,
    /// Failed attempts, nacked.
    pub failed: u64,
    /// Messages whose lease was lost before their command ended.
    pub stale: u64,
    /// Messages given back unattempted because `exec` was stopped.
    pub given_back: u64,
    /// The signal that stopped `exec`.
    pub signal: Option<i32>,
    /// The last command's own exit status, as a shell reports it (128+N
    /// for signal N, 124 timed out, 126/127 could not start).
    pub last_status: Option<u8>,
    /// The command could not be started: no more were.
    pub not_started: bool,
    /// An error that ended the run (the running commands were waited for).
    pub error: Option<Error>,
}

impl Ran {
    /// The exit code of the run, or the error to print and exit with: the
    /// signal's (128+N) when one stopped `exec`; 4 when a lease was lost;
    /// with `own_status` (and no `--loop`) the command's own status,
    /// else 1 when a command failed; 3 when there was nothing to do.
    pub fn exit_code(self, queue: &str, own_status: bool) -> Result<u8> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if let Some(s) = self.signal {
            return Ok(128u8.saturating_add(s as u8));
        }
        let ran = self.started;
        if ran == 0 {
            return Err(Error::Empty(format!(
                "{queue}: nothing to do: no ready message"
            )));
        }
        if self.stale > 0 {
            return Err(Error::Stale(format!(
                "{queue}: {} of {ran} messages lost their lease before the command finished; they may be delivered again",
                self.stale
            )));
        }
        if own_status {
            return Ok(self.last_status.unwrap_or(0));
        }
        if self.failed > 0 {
            let why = if self.not_started {
                " (stopped: the command could not be started)"
            } else {
                ""
            };
            return Err(Error::Runtime(format!(
                "{queue}: {} of {ran} commands failed; their messages were nacked{why}",
                self.failed
            )));
        }
        Ok(0)
    }
}

/// Runs `exec` until the queue is empty (one message without `--loop`), a
/// bound is reached or a signal stops it. Commands that were started are
/// always waited for.
pub fn exec(spool: &Spool, queue: &str, req: &ExecRequest, warn: Warn) -> Result<Ran> {
    if req.cmd.is_empty() {
        return Err(Error::usage("exec: no command given after --"));
    }
    let (tx, rx) = mpsc::channel();
    let signalled = tx.clone();
    signals::install(move |sig, nth| {
        let _ = signalled.send(Event::Signal { sig, nth });
    })
    .map_err(|e| Error::Runtime(format!("cannot catch SIGTERM and SIGINT: {e}")))?;
    let mut w = Worker {
        spool,
        queue,
        req,
        warn,
        tx,
        jobs: Vec::new(),
        next_key: 0,
        ran: Ran::default(),
        stopping: None,
        drained: false,
        ends: req.max_time.map(|d| Instant::now() + d),
        waiter: Waiter::default(),
        path: child::find_on_path(&req.cmd[0]),
        open: None,
        to_ack: Vec::new(),
    };
    w.run(&rx);
    w.ran.signal = w.ran.signal.or(signals::first());
    Ok(w.ran)
}

enum Event {
    Exited {
        key: u64,
        status: std::io::Result<ExitStatus>,
    },
    Signal {
        sig: i32,
        nth: u32,
    },
}

/// A running command and its message.
struct Job {
    key: u64,
    /// Its message's delivery (id, receipt, attempt), the body handed over.
    leased: Delivery,
    child: child::Child,
    next_extend: Instant,
    lease_ok: bool,
    /// When `--timeout` runs out (`None` once it has, or without one).
    timeout_at: Option<Instant>,
    timed_out: bool,
    /// When the group gets SIGKILL.
    kill_at: Option<Instant>,
}

struct Worker<'a, 'w> {
    spool: &'a Spool,
    queue: &'a str,
    req: &'a ExecRequest,
    warn: Warn<'w>,
    tx: mpsc::Sender<Event>,
    jobs: Vec<Job>,
    next_key: u64,
    ran: Ran,
    /// The signal that stopped the run.
    stopping: Option<i32>,
    /// A look found the queue empty (without `--wait`: the run ends once
    /// the running commands do).
    drained: bool,
    /// `--max-time`: no message is started after this.
    ends: Option<Instant>,
    /// The watch that wakes every `--wait` of this run (see [`Waiter`]).
    waiter: Waiter,
    /// Where the command is on `PATH`, found once for the run.
    path: Option<std::path::PathBuf>,
    /// The queue, while a turn of the loop has it open ([`Worker::on_queue`]).
    open: Option<crate::queue::Queue>,
    /// Receipts of commands that succeeded, acked by the next pop's commit
    /// (or alone, if no pop follows) before this turn of the loop ends.
    to_ack: Vec<String>,
}

impl Worker<'_, '_> {
    fn run(&mut self, rx: &mpsc::Receiver<Event>) {
        loop {
            self.start_what_we_may();
            if self.jobs.is_empty() && !self.may_start() {
                // Take a signal that came while idle, for its exit code.
                while let Ok(ev) = rx.try_recv() {
                    self.on_event(ev);
                }
                return;
            }
            let wake = self.next_timer();
            let left = wake.map_or(Duration::from_secs(3600), |t| {
                t.saturating_duration_since(Instant::now())
            });
            match rx.recv_timeout(left) {
                Ok(ev) => self.on_event(ev),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            self.on_timers();
        }
    }

    /// Whether another message may be started now.
    fn may_start(&self) -> bool {
        self.stopping.is_none()
            && signals::first().is_none()
            && self.ran.error.is_none()
            && !self.ran.not_started
            && !(self.drained && self.jobs.is_empty())
            && (self.req.repeat || self.ran.started == 0)
            && self.jobs.len() < self.req.jobs.max(1)
            && self.req.max_messages.is_none_or(|n| self.ran.started < n)
            && self.ends.is_none_or(|t| Instant::now() < t)
    }

    /// Pops and starts messages while a slot is free: waiting (`--wait`)
    /// only when nothing runs, else one look.
    fn start_what_we_may(&mut self) {
        self.start_while_we_may();
        if !self.to_ack.is_empty() {
            // No pop took them (the run is ending, or every slot is busy).
            let receipts = std::mem::take(&mut self.to_ack);
            let r = self.on_queue(|q| q.ack(&receipts, now_ms()));
            self.acked(r);
        }
        // Closed before the worker waits or its command runs alone.
        self.open = None;
    }

    fn start_while_we_may(&mut self) {
        while self.may_start() {
            // A queue left open by this turn's last step, or a finished
            // job to ack, is looked at first: the ack and the next lease
            // are one commit.
            if self.open.is_some() || !self.to_ack.is_empty() {
                let (lease, max) = (self.req.lease, self.req.max_attempts);
                let receipts = std::mem::take(&mut self.to_ack);
                let r = self.on_queue(|q| q.ack_and_pop(&receipts, 1, lease, max, now_ms()));
                let got = match r {
                    Ok((settled, got)) => {
                        self.acked(Ok(settled));
                        got
                    }
                    Err(e) => {
                        self.acked(Err(e));
                        return;
                    }
                };
                self.open = None;
                if let Some(d) = got.into_iter().next() {
                    self.drained = false;
                    self.start(d);
                    continue;
                }
            }
            let idle = self.jobs.is_empty();
            let req = PopRequest {
                count: 1,
                lease: self.req.lease,
                max_attempts: self.req.max_attempts,
                wait: if idle { self.req.wait } else { None },
            };
            let stop = || signals::first().is_some();
            match pop_until(
                self.spool,
                self.queue,
                &req,
                self.ends,
                &stop,
                &mut self.waiter,
            ) {
                Ok(got) => match got.into_iter().next() {
                    Some(d) => {
                        self.drained = false;
                        self.start(d);
                    }
                    None => {
                        self.drained = self.req.wait.is_none() || idle;
                        return;
                    }
                },
                Err(e) => {
                    self.ran.error = Some(e);
                    return;
                }
            }
        }
    }

    /// Starts the command on `d`; one that cannot be started is a failed
    /// attempt, and no further message is started.
    fn start(&mut self, mut d: Delivery) {
        if signals::first().is_some() {
            // Stopped between the pop and now: nobody saw it.
            self.give_back(&d.receipt);
            return;
        }
        self.ran.started += 1;
        self.next_key += 1;
        let key = self.next_key;
        let mut env = vec![
            ("SPOOLMQ_ID", OsString::from(d.id())),
            ("SPOOLMQ_RECEIPT", OsString::from(&d.receipt)),
            ("SPOOLMQ_ATTEMPT", OsString::from(d.attempt.to_string())),
            ("SPOOLMQ_QUEUE", OsString::from(self.queue)),
        ];
        env.extend(spool_env(self.spool));
        let spec = child::Spec {
            cmd: &self.req.cmd,
            path: self.path.as_deref(),
            env,
            remove: &["SPOOLMQ_DIR", "SPOOLMQ_URL"],
            // The body itself goes to the writer, not a copy (it may be 1 GiB).
            body: std::mem::take(&mut d.body),
        };
        let tx = self.tx.clone();
        match child::spawn(spec, move |status| {
            let _ = tx.send(Event::Exited { key, status });
        }) {
            Ok(child) => {
                let now = Instant::now();
                self.jobs.push(Job {
                    key,
                    leased: d,
                    child,
                    next_extend: now + self.half_lease(),
                    lease_ok: true,
                    timeout_at: self.req.timeout.map(|t| now + t),
                    timed_out: false,
                    kill_at: None,
                });
            }
            Err(e) => {
                // Give the message back at once rather than hold it for a whole lease.
                self.ran.not_started = true;
                let code = if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
                let how = How::NotStarted(e.to_string());
                self.failed(d.id(), &d.receipt, d.attempt, how, Vec::new(), code);
            }
        }
    }

    /// Runs `op` on the queue: the one still open from the last step of
    /// this turn of the loop, or opened for it (the queue's notices go to
    /// the spool's sink when it is closed). It stays open, under its lock,
    /// only until [`Worker::start_what_we_may`] is done, never while the
    /// worker waits: so the pop after an ack needs no second open (a third
    /// of the system calls of a job), and other workers are not held up.
    fn on_queue<T>(&mut self, op: impl FnOnce(&mut crate::queue::Queue) -> Result<T>) -> Result<T> {
        let mut q = match self.open.take() {
            Some(q) => q,
            None => self.spool.open_existing_queue(self.queue)?,
        };
        let r = op(&mut q);
        // After a failed step the next one opens the queue afresh, as it
        // did when every step opened its own (a failed commit poisons the
        // handle it was made on).
        if r.is_ok() {
            self.open = Some(q);
        }
        r
    }

    fn half_lease(&self) -> Duration {
        (self.req.lease / 2).max(Duration::from_millis(50))
    }

    /// The earliest moment something is due: a lease to extend, a timeout,
    /// a SIGKILL, or (with a free slot) the next look at the queue.
    fn next_timer(&self) -> Option<Instant> {
        let mut due: Option<Instant> = None;
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                due = Some(due.map_or(t, |d| d.min(t)));
            }
        };
        for j in &self.jobs {
            at(j.lease_ok.then_some(j.next_extend));
            at(j.timeout_at);
            at(j.kill_at);
        }
        if self.may_start() {
            at(Some(Instant::now() + Watch::poll_interval(self.spool)));
        }
        due
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Exited { key, status } => self.on_exit(key, status),
            Event::Signal { sig, nth } => self.on_signal(sig, nth),
        }
    }

    /// The first signal: forward it to every command and give them
    /// `--kill-after`; a second one: SIGKILL now.
    fn on_signal(&mut self, sig: i32, nth: u32) {
        let name = crate::model::failure::signal_name(sig).unwrap_or("a signal");
        let running = self.jobs.len();
        if nth == 1 {
            self.stopping = Some(sig);
            self.ran.signal = Some(sig);
            let kill_at = Instant::now() + self.req.kill_after;
            for j in &mut self.jobs {
                j.child.signal(sig);
                j.kill_at = Some(j.kill_at.map_or(kill_at, |k| k.min(kill_at)));
            }
            if running > 0 {
                (self.warn)(format!(
                    "{}: {name}: stopping; sent it to {running} running command{}, SIGKILL in {}",
                    self.queue,
                    if running == 1 { "" } else { "s" },
                    approx(self.req.kill_after)
                ));
            }
        } else {
            for j in &mut self.jobs {
                j.child.signal(libc::SIGKILL);
                j.kill_at = None;
            }
            if running > 0 {
                (self.warn)(format!(
                    "{}: {name} again: killed {running} running command{}",
                    self.queue,
                    if running == 1 { "" } else { "s" }
                ));
            }
        }
    }

    /// Extends the leases that are due; sends the timeouts' SIGTERM and the
    /// SIGKILLs that are due.
    fn on_timers(&mut self) {
        let now = Instant::now();
        let kill_after = self.req.kill_after;
        for j in &mut self.jobs {
            if j.timeout_at.is_some_and(|t| t <= now) {
                j.timeout_at = None;
                j.timed_out = true;
                j.child.signal(libc::SIGTERM);
                let k = now + kill_after;
                j.kill_at = Some(j.kill_at.map_or(k, |old| old.min(k)));
            }
            if j.kill_at.is_some_and(|t| t <= now) {
                j.kill_at = None;
                j.child.signal(libc::SIGKILL);
            }
        }
        self.extend_due(now);
    }

    /// One extend for every lease that is due.
    fn extend_due(&mut self, now: Instant) {
        let due: Vec<String> = self
            .jobs
            .iter()
            .filter(|j| j.lease_ok && j.next_extend <= now)
            .map(|j| j.leased.receipt.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let lease = self.req.lease;
        let result = self.on_queue(|q| q.extend(&due, lease, now_ms()));
        let next = now + self.half_lease();
        for j in self
            .jobs
            .iter_mut()
            .filter(|j| due.contains(&j.leased.receipt))
        {
            j.next_extend = next;
            let lost = match &result {
                Ok(s) if s.stale.contains(&j.leased.receipt) => {
                    Some("the lease ran out".to_string())
                }
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = lost {
                j.lease_ok = false;
                (self.warn)(format!(
                    "{}: message {}: cannot extend the lease: {why}",
                    self.queue,
                    j.leased.id()
                ));
            }
        }
    }

    /// A command ended: ack, nack with the backoff, or (when stopped by a
    /// signal) give the message back.
    fn on_exit(&mut self, key: u64, status: std::io::Result<ExitStatus>) {
        let Some(at) = self.jobs.iter().position(|j| j.key == key) else {
            return;
        };
        // Look at the queue again: this job's message may be ready again.
        self.drained = false;
        let job = self.jobs.swap_remove(at);
        let tail = job.child.stderr_tail(Duration::from_millis(200));
        let (how, code) = match &status {
            Ok(s) if s.success() && !job.timed_out => {
                self.ran.last_status = Some(0);
                return self.ack(&job);
            }
            _ if job.timed_out => {
                let after_ms = self.req.timeout.map_or(0, |t| t.as_millis() as u64);
                (How::TimedOut { after_ms }, 124)
            }
            Ok(s) => how_it_ended(s),
            Err(e) => (How::Reason(format!("cannot wait for the command: {e}")), 1),
        };
        // A signal counts from when it came, even if it has not been handled
        // yet (systemd may send it to the command and to `exec` at once).
        if self.stopping.is_some() || signals::first().is_some() {
            self.ran.last_status = Some(code);
            self.give_back(&job.leased.receipt);
            return;
        }
        let d = &job.leased;
        self.failed(d.id(), &d.receipt, d.attempt, how, tail, code);
    }

    /// A command succeeded: its message is acked with the next pop
    /// ([`Worker::start_what_we_may`], in this same turn of the loop).
    fn ack(&mut self, job: &Job) {
        self.to_ack.push(job.leased.receipt.clone());
    }

    /// Counts what an ack did: acked, lost leases ([`Worker::settle_error`]),
    /// or an error that ends the run.
    fn acked(&mut self, r: Result<crate::queue::Settled>) {
        match r {
            Ok(settled) => {
                self.ran.acked += settled.done as u64;
                if let Err(e) = settled.into_result() {
                    self.settle_error(e);
                }
            }
            Err(e) => self.settle_error(e),
        }
    }

    /// Nacks a failed attempt with the backoff and says so, on one line.
    fn failed(&mut self, id: &str, receipt: &str, attempt: u32, how: How, tail: Vec<u8>, code: u8) {
        self.ran.failed += 1;
        self.ran.last_status = Some(code);
        let (max, backoff) = (self.req.max_attempts, self.req.backoff);
        let fate = if attempt >= max {
            format!("it is now a dead letter after {attempt} attempts")
        } else {
            let step = backoff.step(attempt);
            let back = if step.is_zero() {
                "ready again at once".to_string()
            } else {
                format!("back in {}-{}", approx(step / 2), approx(step))
            };
            format!("nacked (attempt {attempt} of {max}), {back}")
        };
        let what = match &how {
            How::NotStarted(_) => format!("{}: ", self.req.cmd[0].to_string_lossy()),
            _ => String::new(),
        };
        (self.warn)(format!("{}: message {id}: {what}{how}; {fate}", self.queue));
        let failure = Failure {
            at_ms: now_ms(),
            attempt,
            how,
            stderr: tail,
        };
        let receipts = [receipt.to_string()];
        let r = self.on_queue(|q| {
            q.nack(
                &receipts,
                Retry::Backoff(backoff),
                Some(&failure),
                max,
                now_ms(),
            )?
            .into_result()
        });
        if let Err(e) = r {
            self.settle_error(e);
        }
    }

    /// Gives a message back unattempted (ready at once).
    fn give_back(&mut self, receipt: &str) {
        let receipts = [receipt.to_string()];
        let r = self.on_queue(|q| q.give_back(&receipts, now_ms())?.into_result());
        match r {
            Ok(_) => self.ran.given_back += 1,
            Err(e) => self.settle_error(e),
        }
    }

    /// A lost lease is counted and said; any other error ends the run
    /// (after the running commands).
    fn settle_error(&mut self, e: Error) {
        match e {
            Error::Stale(m) => {
                self.ran.stale += 1;
                (self.warn)(m);
            }
            e if self.ran.error.is_none() => self.ran.error = Some(e),
            e => (self.warn)(e.to_string()),
        }
    }
}

/// The environment that tells a child process which spool this is, so that
/// a `spoolmq` it runs (`spoolmq extend "$SPOOLMQ_QUEUE" "$SPOOLMQ_RECEIPT"`)
/// reaches this spool from whatever directory it is in: `SPOOLMQ_URL` for a
/// PostgreSQL spool (in the environment, which only the same user can read,
/// never on a command line, where `ps` would show a password in it), else
/// `SPOOLMQ_DIR` as an absolute path. The caller removes both variables
/// first, so a PostgreSQL spool's child gets no `SPOOLMQ_DIR`.
///
/// A relative spool path is joined to the working directory (which the
/// kernel reports without symlinks) and nothing else: this names exactly
/// the directory the relative path named, and a symlink the user chose for
/// the spool stays a symlink, as for every other command. If the working
/// directory cannot be found (it was removed), the path goes as given.
pub fn spool_env(spool: &Spool) -> Vec<(&'static str, OsString)> {
    match (spool.kind, &spool.url) {
        (StoreKind::Postgres, Some(url)) => vec![("SPOOLMQ_URL", OsString::from(url))],
        _ => {
            let dir = std::path::absolute(&spool.root).unwrap_or_else(|_| spool.root.clone());
            vec![("SPOOLMQ_DIR", dir.into_os_string())]
        }
    }
}

/// How a command that did not succeed ended, and the status a shell would
/// report for it.
fn how_it_ended(status: &ExitStatus) -> (How, u8) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => (How::Exit(c), c as u8),
        (None, Some(s)) => (How::Signal(s), 128u8.saturating_add(s as u8)),
        _ => (How::Reason("failed".into()), 1),
    }
}

/// A duration for a person: `750ms`, `12s`, `5m`, `2h`.
fn approx(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..120_000 => format!("{}s", (ms + 500) / 1000),
        120_000..7_200_000 => format!("{}m", (ms + 30_000) / 60_000),
        _ => format!("{}h", (ms + 1_800_000) / 3_600_000),
    }
}
