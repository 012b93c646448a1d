//! Waiting for messages and the `exec` work loop.
//!
//! Waiting uses a [`Watch`] (`crate::ops::wake`), so a message pushed by another
//! process wakes the waiter at once; it also looks again every so often, for
//! delays and leases that run out (and, where no watch is available, for
//! everything). Neither holds the queue lock while it waits or while the user's command
//! runs: each pop, extend, ack and nack opens the queue, does its short
//! critical section and closes it again.
//!
//! `exec` keeps the lease alive: every half lease it extends the lease to a
//! full lease from now, so a job that runs longer than `--lease` is never
//! delivered twice while its command is alive. If `exec` itself dies, the
//! extensions stop and the message is delivered again when the lease runs out.

use crate::base::error::{Error, Result};
use crate::ops::wake::Watch;
use crate::queue::{Delivery, now_ms};
use crate::spool::{Spool, StoreKind};
use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};
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
pub fn pop(spool: &Spool, queue: &str, req: &PopRequest, warn: Warn) -> Result<Vec<Delivery>> {
    let deadline = match req.wait {
        None => Some(Instant::now()),
        Some(None) => None,
        Some(Some(d)) => Some(Instant::now() + d),
    };
    let poll = Watch::poll_interval(spool);
    let mut watch: Option<Watch> = None;
    loop {
        // Watch first, then look: a push between the look and the wait still wakes us.
        if watch.as_ref().is_none_or(|w| !w.lasts()) {
            watch = req.wait.and_then(|_| Watch::new(spool, queue));
        }
        if let Some(mut q) = spool.open_queue(queue, false)? {
            let got = q.pop(req.count, req.lease, req.max_attempts, now_ms());
            q.take_notices().into_iter().for_each(&mut *warn);
            let got = got?;
            if !got.is_empty() {
                return Ok(got);
            }
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
        match watch.as_mut() {
            Some(w) => w.wait(pause),
            None => std::thread::sleep(pause),
        }
    }
}

/// What `exec` was asked for.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub lease: Duration,
    pub max_attempts: u32,
    pub wait: Option<Option<Duration>>,
    pub repeat: bool,
    pub cmd: Vec<OsString>,
}

/// Runs `exec`. Returns how many messages were handled; `Err(Empty)` when
/// there was nothing to do, an exit-1 error when a command failed.
pub fn exec(spool: &Spool, queue: &str, req: &ExecRequest, warn: Warn) -> Result<u64> {
    let pop_req = PopRequest {
        count: 1,
        lease: req.lease,
        max_attempts: req.max_attempts,
        wait: req.wait,
    };
    let mut ran = 0u64;
    let mut failed = 0u64;
    let mut stale = 0u64;
    while let Some(mut d) = pop(spool, queue, &pop_req, warn)?.into_iter().next() {
        ran += 1;
        match run_one(spool, queue, req, &mut d, warn)? {
            Handled::Acked => {}
            Handled::Nacked => failed += 1,
            Handled::LostLease => stale += 1,
        }
        if !req.repeat {
            break;
        }
    }
    if ran == 0 {
        return Err(Error::Empty(format!(
            "{queue}: nothing to do: no ready message"
        )));
    }
    if stale > 0 {
        return Err(Error::Stale(format!(
            "{queue}: {stale} of {ran} messages lost their lease before the command finished; they may be delivered again"
        )));
    }
    if failed > 0 {
        return Err(Error::Runtime(format!(
            "{queue}: {failed} of {ran} commands failed; their messages were nacked"
        )));
    }
    Ok(ran)
}

enum Handled {
    Acked,
    Nacked,
    LostLease,
}

fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".into(),
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

/// Runs `op` on queue `queue`, then hands the queue's notices to `warn`
/// whatever `op` returned (a damaged record skipped, a torn WAL tail cut
/// while the queue was opened): none is lost.
fn on_queue<T>(
    spool: &Spool,
    queue: &str,
    warn: Warn,
    op: impl FnOnce(&mut crate::queue::Queue) -> Result<T>,
) -> Result<T> {
    let mut q = spool.open_existing_queue(queue)?;
    let r = op(&mut q);
    q.take_notices().into_iter().for_each(warn);
    r
}

/// Acks (`ok`) or nacks the delivery `receipt`.
fn settle(
    spool: &Spool,
    queue: &str,
    receipt: &str,
    ok: bool,
    req: &ExecRequest,
    warn: Warn,
) -> Result<usize> {
    on_queue(spool, queue, warn, |q| settle_on(q, receipt, ok, req))
}

fn settle_on(
    q: &mut crate::queue::Queue,
    receipt: &str,
    ok: bool,
    req: &ExecRequest,
) -> Result<usize> {
    let receipts = [receipt.to_string()];
    let s = if ok {
        q.ack(&receipts, now_ms())?
    } else {
        q.nack(
            &receipts,
            crate::model::backoff::Retry::After(Duration::ZERO),
            None,
            req.max_attempts,
            now_ms(),
        )?
    };
    s.into_result()
}

fn run_one(
    spool: &Spool,
    queue: &str,
    req: &ExecRequest,
    d: &mut Delivery,
    warn: Warn,
) -> Result<Handled> {
    let (program, args) = req
        .cmd
        .split_first()
        .ok_or_else(|| Error::usage("exec: no command given after --"))?;
    let spawned = Command::new(program)
        .args(args)
        .env("SPOOLMQ_ID", &d.id)
        .env("SPOOLMQ_RECEIPT", &d.receipt)
        .env("SPOOLMQ_ATTEMPT", d.attempt.to_string())
        .env("SPOOLMQ_QUEUE", queue)
        .env_remove("SPOOLMQ_DIR")
        .env_remove("SPOOLMQ_URL")
        .envs(spool_env(spool))
        .stdin(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            // Give the message back at once rather than hold it for a whole lease.
            let _ = settle(spool, queue, &d.receipt, false, req, &mut *warn);
            return Err(Error::Runtime(format!(
                "cannot run {}: {e}; message {} was nacked",
                program.to_string_lossy(),
                d.id
            )));
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // The body itself goes to the writer, not a copy (it may be 1 GiB).
        let body = std::mem::take(&mut d.body);
        // A command that does not read its stdin is fine: ignore EPIPE.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let half = (req.lease / 2).max(Duration::from_millis(50));
    let mut lease_ok = true;
    let status = loop {
        match rx.recv_timeout(half) {
            Ok(status) => break status,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if lease_ok {
                    let extended = on_queue(spool, queue, &mut *warn, |q| {
                        q.extend(std::slice::from_ref(&d.receipt), req.lease, now_ms())?
                            .into_result()
                    });
                    if let Err(e) = extended {
                        lease_ok = false;
                        warn(format!(
                            "{queue}: message {}: cannot extend the lease: {e}",
                            d.id
                        ));
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Runtime("lost track of the command".into()));
            }
        }
    };
    let status = status.map_err(|e| Error::Runtime(format!("waiting for the command: {e}")))?;
    let ok = status.success();
    if !ok {
        let fate = if d.attempt >= req.max_attempts {
            format!("it is now a dead letter after {} attempts", d.attempt)
        } else {
            format!("nacked (attempt {} of {})", d.attempt, req.max_attempts)
        };
        warn(format!(
            "{queue}: message {}: command {}; {fate}",
            d.id,
            describe(&status)
        ));
    }
    match settle(spool, queue, &d.receipt, ok, req, &mut *warn) {
        Ok(_) if ok => Ok(Handled::Acked),
        Ok(_) => Ok(Handled::Nacked),
        Err(Error::Stale(m)) => {
            warn(m);
            Ok(Handled::LostLease)
        }
        Err(e) => Err(e),
    }
}
