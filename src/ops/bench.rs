//! `spoolmq bench`: push throughput and end-to-end latency on a scratch
//! queue of the chosen spool (removed afterwards), measured as a user would:
//!
//! * throughput = messages / seconds for `count` messages of `size` bytes,
//!   pushed `batch` per push (one fsync each);
//! * latency = time a consumer popped a message - time its producer pushed it
//!   (the producer writes its clock into the body), over `count` messages
//!   pushed one by one by `producers` processes and popped and acked by
//!   `consumers` processes (this binary, run with a hidden subcommand),
//!   each acking a message in the commit that leases its next one, as
//!   `exec --loop --wait` does; the run fails unless every message was
//!   acked;
//! * drain = the same count popped and acked by a plain pop+ack loop on a
//!   filled queue, never waiting (two commits per message).

use crate::base::error::{Error, Result};
use crate::ops::exec::{self, PopRequest};
use crate::queue::now_ms;
use crate::spool::Spool;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    pub count: u64,
    pub size: usize,
    pub batch: u64,
    pub producers: u64,
    pub consumers: u64,
}

/// What was measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub count: u64,
    pub size: usize,
    pub batch: u64,
    pub producers: u64,
    pub consumers: u64,
    pub push_seconds: f64,
    pub push_msgs_per_sec: f64,
    pub push_mb_per_sec: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    pub latency_seconds: f64,
    /// A pop+ack loop (a pop, then an ack: two commits per message) on a
    /// queue filled first, never waiting: what a script draining a backlog
    /// with `spoolmq pop` and `spoolmq ack` takes.
    pub drain_seconds: f64,
    pub drain_msgs_per_sec: f64,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A body of `size` bytes that starts with the current time in nanoseconds.
fn stamped(size: usize) -> Vec<u8> {
    let mut b = format!("{} ", now_ns()).into_bytes();
    b.resize(size.max(b.len()), b'x');
    b
}

/// Removes the scratch queue when dropped, whatever happened.
struct Scratch<'a>(&'a Spool, String);
impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = self.0.remove_queue(&self.1);
    }
}

/// Runs the benchmark on a scratch queue of `spool`.
pub fn run(spool: &Spool, req: &BenchRequest) -> Result<BenchReport> {
    let mut tag = [0u8; 6];
    getrandom::fill(&mut tag).map_err(|e| Error::Runtime(format!("random: {e}")))?;
    let name = format!(
        "bench-{}",
        tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let _scratch = Scratch(spool, name.clone());

    // Throughput: `batch` messages per push, one fsync each.
    let body = vec![b'x'; req.size];
    let mut q = spool
        .open_queue(&name, true)?
        .ok_or_else(|| Error::Runtime("cannot create the scratch queue".into()))?;
    let started = Instant::now();
    let mut left = req.count;
    while left > 0 {
        let n = left.min(req.batch.max(1));
        let mut bodies = (0..n).map(|_| body.as_slice());
        q.push(&mut bodies, Duration::ZERO, now_ms())?;
        left -= n;
    }
    let push_seconds = started.elapsed().as_secs_f64();
    q.purge(false, None, now_ms())?;
    drop(q);

    // Latency: producers and consumers in their own processes.
    let exe = std::env::current_exe()
        .map_err(|e| Error::Runtime(format!("cannot find this program: {e}")))?;
    let share = |i: u64, n: u64| req.count / n + u64::from(i < req.count % n);
    let started = Instant::now();
    // One process of this binary per worker, each with its share of the messages.
    let worker = |role: &str, share: u64, piped: bool| {
        let mut cmd = Command::new(&exe);
        // The spool in the environment: a URL (and its password) must not
        // go on a command line, and SPOOLMQ_DIR is made absolute.
        cmd.env_remove("SPOOLMQ_DIR")
            .env_remove("SPOOLMQ_URL")
            .envs(exec::spool_env(spool))
            .args(["bench-worker", role, &name])
            .arg(share.to_string())
            .arg(req.size.to_string());
        if piped {
            cmd.stdout(Stdio::piped());
        }
        cmd.spawn()
            .map_err(|e| Error::Runtime(format!("cannot start a bench {role}r: {e}")))
    };
    let consumers = (0..req.consumers)
        .map(|i| worker("consume", share(i, req.consumers), true))
        .collect::<Result<Vec<_>>>()?;
    let producers = (0..req.producers)
        .map(|i| worker("produce", share(i, req.producers), false))
        .collect::<Result<Vec<_>>>()?;
    let mut latencies: Vec<f64> = Vec::new();
    for mut c in consumers {
        if let Some(out) = c.stdout.take() {
            for line in BufReader::new(out)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if let Ok(ms) = line.trim().parse::<f64>() {
                    latencies.push(ms);
                }
            }
        }
        finished(c, "consumer")?;
    }
    for p in producers {
        finished(p, "producer")?;
    }
    let latency_seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let mut q = spool.open_existing_queue(&name)?;
    let st = q.stats(now_ms())?;
    if st.acked != req.count || st.ready + st.leased + st.delayed + st.dead > 0 {
        return Err(Error::Runtime(format!(
            "bench: after the latency run {} of {} messages were acked ({} ready, {} leased)",
            st.acked, req.count, st.ready, st.leased
        )));
    }

    // Drain: a pop+ack loop without waiting, in this process.
    let mut left = req.count;
    while left > 0 {
        let n = left.min(1000);
        let mut bodies = (0..n).map(|_| body.as_slice());
        q.push(&mut bodies, Duration::ZERO, now_ms())?;
        left -= n;
    }
    drop(q);
    let started = Instant::now();
    pop_acks(
        spool,
        &name,
        req.count,
        None,
        Settle::AckThenPop,
        &mut |_| Ok(()),
    )?;
    let drain_seconds = started.elapsed().as_secs_f64();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[i.clamp(1, latencies.len()) - 1]
    };
    let bytes = (req.count * req.size as u64) as f64;
    Ok(BenchReport {
        count: req.count,
        size: req.size,
        batch: req.batch,
        producers: req.producers,
        consumers: req.consumers,
        push_seconds,
        push_msgs_per_sec: req.count as f64 / push_seconds.max(1e-9),
        push_mb_per_sec: bytes / 1e6 / push_seconds.max(1e-9),
        latency_ms_p50: pct(50.0),
        latency_ms_p90: pct(90.0),
        latency_ms_p99: pct(99.0),
        latency_ms_max: latencies.last().copied().unwrap_or(0.0),
        latency_seconds,
        drain_seconds,
        drain_msgs_per_sec: req.count as f64 / drain_seconds.max(1e-9),
    })
}

/// Waits for a bench worker; a failure is the benchmark's failure.
fn finished(mut child: std::process::Child, role: &str) -> Result<()> {
    let status = child
        .wait()
        .map_err(|e| Error::Runtime(format!("{role}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Runtime(format!("a {role} failed ({status})")))
    }
}

/// The producer side of the latency run: `count` pushes of one message each.
pub fn produce(spool: &Spool, queue: &str, count: u64, size: usize) -> Result<()> {
    for _ in 0..count {
        let mut q = spool
            .open_queue(queue, true)?
            .ok_or_else(|| Error::NoSuchQueue(queue.to_string()))?;
        let body = stamped(size);
        q.push(
            &mut std::iter::once(body.as_slice()),
            Duration::ZERO,
            now_ms(),
        )?;
    }
    Ok(())
}

/// The consumer side: pops and acks `count` messages, printing each one's
/// latency in milliseconds, one per line.
pub fn consume(spool: &Spool, queue: &str, count: u64, out: &mut dyn std::io::Write) -> Result<()> {
    let wait = Some(Some(Duration::from_secs(60)));
    pop_acks(
        spool,
        queue,
        count,
        wait,
        Settle::InTheNextLease,
        &mut |d| {
            let received = now_ns();
            let sent: u128 = d
                .body
                .split(|&b| b == b' ')
                .next()
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(|t| t.parse().ok())
                .unwrap_or(received);
            let ms = received.saturating_sub(sent) as f64 / 1e6;
            writeln!(out, "{ms:.3}").map_err(|e| Error::Runtime(format!("stdout: {e}")))
        },
    )
}

/// How a consumer loop settles each message it was given.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// An `ack` of its own, then a `pop`: two commits per message, what a
    /// script running `spoolmq pop` and `spoolmq ack` does.
    AckThenPop,
    /// The ack in the commit that leases the next message when one is
    /// there, alone when none is (and only then a wait): what
    /// `exec --loop --wait` does (`Queue::ack_and_pop`).
    InTheNextLease,
}

/// Pops `count` messages one at a time (waiting as `wait` says), calls
/// `each` on each as it comes, and acks it as `settle` says, the queue
/// opened for each step as a worker opens it.
fn pop_acks(
    spool: &Spool,
    queue: &str,
    count: u64,
    wait: Option<Option<Duration>>,
    settle: Settle,
    each: &mut dyn FnMut(&crate::queue::Delivery) -> Result<()>,
) -> Result<()> {
    let req = PopRequest {
        count: 1,
        lease: Duration::from_secs(60),
        max_attempts: 5,
        wait,
    };
    // One watch for every pop, as a worker keeps it (`ops::wake::Waiter`).
    let mut waiter = crate::ops::wake::Waiter::default();
    // The receipt of the message handled last, not acked yet.
    let mut done: Option<String> = None;
    for _ in 0..count {
        let mut got = Vec::new();
        if let Some(receipt) = done.take() {
            let mut q = spool.open_existing_queue(queue)?;
            let receipts = std::slice::from_ref(&receipt);
            if settle == Settle::InTheNextLease {
                let (settled, next) =
                    q.ack_and_pop(receipts, 1, req.lease, req.max_attempts, now_ms())?;
                settled.into_result()?;
                got = next;
            } else {
                q.ack(receipts, now_ms())?.into_result()?;
            }
        }
        if got.is_empty() {
            got = exec::pop_until(spool, queue, &req, None, &|| false, &mut waiter)?;
        }
        let Some(d) = got.into_iter().next() else {
            return Err(Error::Empty(format!(
                "{queue}: no message came within a minute"
            )));
        };
        each(&d)?;
        done = Some(d.receipt);
    }
    if let Some(receipt) = done {
        let mut q = spool.open_existing_queue(queue)?;
        q.ack(&[receipt], now_ms())?.into_result()?;
    }
    Ok(())
}

/// The report as a table.
pub fn table(r: &BenchReport) -> String {
    format!(
        "spoolmq bench: {} messages of {} bytes, {} per push; {} producer(s), {} consumer(s)\n\
         push throughput   {:>12.0} msg/s  {:>8.1} MB/s  ({:.2} s, {} fsyncs)\n\
         latency push->pop p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({:.2} s)\n\
         pop+ack, no wait  {:>12.0} msg/s  ({:.2} s; the latency run took {:.2}x that)\n",
        r.count,
        r.size,
        r.batch,
        r.producers,
        r.consumers,
        r.push_msgs_per_sec,
        r.push_mb_per_sec,
        r.push_seconds,
        r.count.div_ceil(r.batch.max(1)),
        r.latency_ms_p50,
        r.latency_ms_p90,
        r.latency_ms_p99,
        r.latency_ms_max,
        r.latency_seconds,
        r.drain_msgs_per_sec,
        r.drain_seconds,
        r.latency_seconds / r.drain_seconds.max(1e-9)
    )
}
