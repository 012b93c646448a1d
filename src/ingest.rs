//! Feeding `push --lines` from a stream in batches.
//!
//! A reader thread splits the input into lines; the pushing side collects
//! lines until the input ends, pauses for 20 ms, or [`BATCH_BYTES`] are
//! waiting, and pushes them as one batch: one lock, one append, one fsync. An input that arrives at once
//! (a file, a fast pipe) under the batch size is therefore one push with one
//! fsync; a slow producer (`tail -f | spoolmq push q --lines`) gets its lines
//! pushed as they come, and the queue's lock is never held while waiting for
//! input. Memory stays bounded by the channel and one batch.

use crate::error::{IoContext, Result};
use crate::queue::{Queue, now_ms};
use crate::spool::Spool;
use std::io::BufRead;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// A batch is pushed once it holds this many body bytes.
pub const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// A batch is pushed once the input has been quiet this long.
const STALL: Duration = Duration::from_millis(20);
/// Lines the reader may run ahead of the pusher.
const CHANNEL_LINES: usize = 16 * 1024;

/// Pushes each line of `input` (newline, and a `\r` before it, stripped) as
/// one message. `on_ids` gets the ids of each batch once it is durable.
pub fn push_lines(
    spool: &Spool,
    queue: &str,
    input: impl BufRead + Send + 'static,
    delay: Duration,
    on_ids: &mut dyn FnMut(&[String]) -> Result<()>,
    warn: crate::exec::Warn,
) -> Result<u64> {
    let (tx, rx) = mpsc::sync_channel::<Result<Vec<u8>>>(CHANNEL_LINES);
    let reader = std::thread::spawn(move || {
        for line in input.split(b'\n') {
            let line = line.ctx("read", Path::new("<stdin>")).map(|mut l| {
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                l
            });
            let failed = line.is_err();
            if tx.send(line).is_err() || failed {
                return;
            }
        }
    });
    let mut total = 0u64;
    // Wait (without the lock) for the first line of a batch, then take what is ready.
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first?];
        let mut bytes = batch[0].len();
        while bytes < BATCH_BYTES {
            match rx.recv_timeout(STALL) {
                Ok(line) => {
                    let line = line?;
                    bytes += line.len();
                    batch.push(line);
                }
                Err(_) => break,
            }
        }
        let mut q = Queue::open(spool, queue, true)?
            .ok_or_else(|| crate::error::Error::NoSuchQueue(queue.to_string()))?;
        let mut bodies = batch.into_iter().map(Ok);
        let ids = q.push(&mut bodies, delay, now_ms());
        q.take_notices().into_iter().for_each(&mut *warn);
        drop(q);
        let ids = ids?;
        total += ids.len() as u64;
        on_ids(&ids)?;
    }
    let _ = reader.join();
    Ok(total)
}
