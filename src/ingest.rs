//! Feeding `push --lines` from a stream in batches.
//!
//! A reader thread reads the input a chunk at a time and splits it into
//! lines; the pushing side collects lines until the input ends, pauses for
//! 20 ms, or [`BATCH_BYTES`] are waiting, and pushes them as one batch: one
//! lock, one append, one fsync. An input that arrives at once
//! (a file, a fast pipe) under the batch size is therefore one push with one
//! fsync; a slow producer (`tail -f | spoolmq push q --lines`) gets its lines
//! pushed as they come, and the queue's lock is never held while waiting for
//! input. Memory stays bounded by the channel and one batch.

use crate::error::{Error, Result};
use crate::queue::{Queue, now_ms};
use crate::spool::Spool;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// A batch is pushed once it holds this many body bytes.
pub const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// A batch is pushed once the input has been quiet this long.
const STALL: Duration = Duration::from_millis(20);
/// Bytes of input read at a time.
const CHUNK: usize = 256 * 1024;
/// Chunks the reader may run ahead of the pusher.
const CHANNEL_CHUNKS: usize = 4;

/// Reads `input` in chunks of up to [`CHUNK`] bytes (what is available, not
/// waiting for more) and sends the whole lines of each chunk together.
fn read_lines(mut input: impl Read, tx: mpsc::SyncSender<Result<Vec<Vec<u8>>>>) {
    let mut buf = vec![0u8; CHUNK];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Err(Error::io("read", Path::new("<stdin>"), e)));
                return;
            }
        };
        let mut lines = Vec::new();
        if n == 0 {
            if !partial.is_empty() {
                lines.push(strip_cr(std::mem::take(&mut partial)));
            }
            if !lines.is_empty() {
                let _ = tx.send(Ok(lines));
            }
            return;
        }
        let mut rest = &buf[..n];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut partial);
            line.extend_from_slice(&rest[..i]);
            lines.push(strip_cr(line));
            rest = &rest[i + 1..];
        }
        partial.extend_from_slice(rest);
        if !lines.is_empty() && tx.send(Ok(lines)).is_err() {
            return;
        }
    }
}

fn strip_cr(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// Pushes each line of `input` (newline, and a `\r` before it, stripped) as
/// one message. `on_ids` gets the ids of each batch once it is durable.
pub fn push_lines(
    spool: &Spool,
    queue: &str,
    input: impl Read + Send + 'static,
    delay: Duration,
    on_ids: &mut dyn FnMut(&[String]) -> Result<()>,
    warn: crate::exec::Warn,
) -> Result<u64> {
    let (tx, rx) = mpsc::sync_channel::<Result<Vec<Vec<u8>>>>(CHANNEL_CHUNKS);
    let reader = std::thread::spawn(move || read_lines(input, tx));
    let mut total = 0u64;
    // Wait (without the lock) for the first lines of a batch, then take what comes
    // until the input pauses or the batch is full.
    while let Ok(first) = rx.recv() {
        let mut batch = first?;
        let mut bytes: usize = batch.iter().map(Vec::len).sum();
        while bytes < BATCH_BYTES {
            match rx.recv_timeout(STALL) {
                Ok(lines) => {
                    let lines = lines?;
                    bytes += lines.iter().map(Vec::len).sum::<usize>();
                    batch.extend(lines);
                }
                Err(_) => break,
            }
        }
        let mut q = Queue::open(spool, queue, true)?
            .ok_or_else(|| Error::NoSuchQueue(queue.to_string()))?;
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
