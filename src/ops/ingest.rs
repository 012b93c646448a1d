//! Feeding `push --lines` from a stream in batches.
//!
//! A reader thread reads the input a chunk at a time and splits it into
//! lines; the pushing side collects lines until the input ends, pauses for
//! 20 ms, or [`BATCH_BYTES`] are waiting, and pushes them as one batch: one
//! lock, one append, one fsync. An input that arrives at once
//! (a file, a fast pipe) under the batch size is therefore one push with one
//! fsync; a slow producer (`tail -f | spoolmq push q --lines`) gets its lines
//! pushed as they come, and the queue's lock is never held while waiting for
//! input. The pushing thread hands each stored batch's seqs back to the
//! caller, which prints their ids while the next batch is pushed. Memory
//! stays bounded by the channel (8 MiB of input read ahead), one batch and
//! the write buffers of one push (crate::base::io::Appender), plus one line, which
//! may not be longer than the body limit: the reader stops with an error
//! naming the line once it has read that much of it without a newline.

use crate::base::error::{Error, Result};
use crate::model::ids::Ids;
use crate::queue::{Placed, Pushing, now_ms};
use crate::spool::Spool;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A batch is pushed once it holds this many body bytes.
pub const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// A batch is pushed once the input has been quiet this long.
const STALL: Duration = Duration::from_millis(20);
/// Bytes of input read at a time.
const CHUNK: usize = 256 * 1024;
/// Chunks the reader may run ahead of the pusher.
const CHANNEL_CHUNKS: usize = 32;

/// Whole lines read from the input: their bytes back to back in `data`, and
/// where each line's text lies in it (newline and a `\r` before it left out).
struct Chunk {
    data: Vec<u8>,
    lines: Vec<(usize, usize)>,
}

/// The error for line `n` (counted from 1) of the input, longer than a body may be.
fn line_too_long(n: u64) -> Error {
    Error::usage(format!(
        "<stdin>: line {n} is longer than the limit of {} bytes for a message body; the lines before it were pushed",
        crate::store::MAX_BODY
    ))
}

/// Reads `input` in chunks of up to [`CHUNK`] bytes (what is available, not
/// waiting for more) and sends the whole lines of each chunk together. A line
/// longer than a chunk grows the chunk until its newline (or the end) comes,
/// up to the body limit ([`crate::store::MAX_BODY`]): a longer line is an
/// error sent in its place, as soon as that many bytes of it are read.
fn read_lines(mut input: impl Read, tx: mpsc::SyncSender<Result<Chunk>>) {
    let mut carry: Vec<u8> = Vec::new();
    // Lines sent so far.
    let mut sent = 0u64;
    let too_long = |start: usize, end: usize| (end - start) as u64 > crate::store::MAX_BODY;
    loop {
        // A `\r` at its end would not count: one byte of grace.
        if carry.len() as u64 > crate::store::MAX_BODY + 1 {
            let _ = tx.send(Err(line_too_long(sent + 1)));
            return;
        }
        // `carry` holds the start of a line whose newline has not come yet.
        let mut data = std::mem::take(&mut carry);
        let old = data.len();
        data.resize(old + CHUNK, 0);
        let n = match input.read(&mut data[old..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                data.truncate(old);
                carry = data;
                continue;
            }
            Err(e) => {
                let _ = tx.send(Err(Error::io("read", Path::new("<stdin>"), e)));
                return;
            }
        };
        data.truncate(old + n);
        if n == 0 {
            // The end: a last line without a newline is still a line.
            if !data.is_empty() {
                let lines = vec![without_cr(&data, 0, data.len())];
                if too_long(lines[0].0, lines[0].1) {
                    let _ = tx.send(Err(line_too_long(sent + 1)));
                    return;
                }
                let _ = tx.send(Ok(Chunk { data, lines }));
            }
            return;
        }
        let mut lines = Vec::new();
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &data[old..]) {
            let (s, e) = without_cr(&data, start, old + nl);
            if too_long(s, e) {
                // The lines before it in this chunk are still pushed.
                let n = sent + lines.len() as u64 + 1;
                if !lines.is_empty() {
                    data.truncate(start);
                    let _ = tx.send(Ok(Chunk { data, lines }));
                }
                let _ = tx.send(Err(line_too_long(n)));
                return;
            }
            lines.push((s, e));
            start = old + nl + 1;
        }
        if lines.is_empty() {
            carry = data;
            continue;
        }
        carry.extend_from_slice(&data[start..]);
        data.truncate(start);
        sent += lines.len() as u64;
        if tx.send(Ok(Chunk { data, lines })).is_err() {
            return;
        }
    }
}

/// The line `data[start..end]` without a `\r` at its end.
fn without_cr(data: &[u8], start: usize, end: usize) -> (usize, usize) {
    if end > start && data[end - 1] == b'\r' {
        (start, end - 1)
    } else {
        (start, end)
    }
}

/// What the pushing thread of [`push_lines`] hands back, in order: a
/// durable batch, where each message went, and the cipher that makes their ids. (The
/// queue's notices go straight to the spool's sink.)
struct Pushed(Ids, Placed);

/// Pushes each line of `input` (newline, and a `\r` before it, stripped) as
/// one message. `on_ids` gets each batch once it is durable, as where each message went and
/// the cipher that turns them into ids ([`Ids::format_into`]).
///
/// Three threads share the work: one reads and splits the input, one pushes
/// batches, and the calling one formats and prints the ids of each batch
/// (a million ids cost about 40 ms) while the next batch is pushed.
pub fn push_lines(
    spool: &Spool,
    queue: &str,
    input: impl Read + Send + 'static,
    how: Pushing,
    on_ids: &mut dyn FnMut(&Ids, &Placed) -> Result<()>,
) -> Result<u64> {
    keep_freed_memory();
    let (tx, rx) = mpsc::sync_channel::<Result<Chunk>>(CHANNEL_CHUNKS);
    let reader = std::thread::spawn(move || read_lines(input, tx));
    // Set when the ids cannot be printed: no batch is started after that
    // (the one being pushed at that moment is still stored).
    let stop = AtomicBool::new(false);
    let total = std::thread::scope(|scope| -> Result<u64> {
        let (done_tx, done_rx) = mpsc::sync_channel::<Pushed>(2);
        let stop = &stop;
        let pusher = scope.spawn(move || push_batches(spool, queue, &rx, how, &done_tx, stop));
        let mut total = 0u64;
        for Pushed(ids, placed) in done_rx {
            total += placed.seqs.len() as u64;
            if let Err(e) = on_ids(&ids, &placed) {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        match pusher.join() {
            Ok(r) => r.map(|()| total),
            Err(_) => Err(Error::Runtime("the pushing thread panicked".into())),
        }
    })?;
    let _ = reader.join();
    Ok(total)
}

/// Makes glibc's malloc keep the memory a bulk push frees for the next
/// allocation instead of giving it back to the kernel. By default every
/// 256 KiB input chunk and write buffer above its (adaptive) mmap threshold
/// was a fresh mapping, and the helper threads' arenas were trimmed with
/// `madvise` after each batch: `perf` of a 1,000,000-line push showed 23%
/// of its time in page faults zeroing new pages (48,000 faults; 10,000
/// with this). The peak RSS does not change: the memory is reused, not
/// added to.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is thread-safe.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// The pushing side of [`push_lines`]: waits (without the queue's lock) for
/// the first lines of a batch, takes what comes until the input pauses or
/// the batch is full, and pushes it.
fn push_batches(
    spool: &Spool,
    queue: &str,
    rx: &mpsc::Receiver<Result<Chunk>>,
    how: Pushing,
    done: &mpsc::SyncSender<Pushed>,
    stop: &AtomicBool,
) -> Result<()> {
    while let Ok(first) = rx.recv() {
        let first = first?;
        let mut bytes = first.data.len();
        let mut batch = vec![first];
        // An error from the reader ends the input: the lines before it are
        // pushed first.
        let mut failed = None;
        while bytes < BATCH_BYTES {
            match rx.recv_timeout(STALL) {
                Ok(Ok(chunk)) => {
                    bytes += chunk.data.len();
                    batch.push(chunk);
                }
                Ok(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                Err(_) => break,
            }
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut q = spool
            .open_queue(queue, true)?
            .ok_or_else(|| Error::NoSuchQueue(queue.to_string()))?;
        let mut bodies = batch
            .iter()
            .flat_map(|c| c.lines.iter().map(|&(start, end)| &c.data[start..end]));
        let pushed = q.push_seqs(&mut bodies, how, now_ms());
        drop(q);
        let (ids, seqs) = pushed?;
        // The caller has stopped listening: it has its reason to give.
        if done.send(Pushed(ids, seqs)).is_err() {
            return Ok(());
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::simfs::XorShift;

    /// Hands out its bytes a few at a time, as a pipe does.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        rng: XorShift,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = (self.rng.below(3 * CHUNK as u64) as usize + 1)
                .min(buf.len())
                .min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn lines_of(data: Vec<u8>, seed: u64) -> Vec<Vec<u8>> {
        let (tx, rx) = mpsc::sync_channel(CHANNEL_CHUNKS);
        let input = Trickle {
            data,
            at: 0,
            rng: XorShift(seed),
        };
        let reader = std::thread::spawn(move || read_lines(input, tx));
        let mut got = Vec::new();
        for chunk in rx {
            let chunk = chunk.unwrap();
            got.extend(chunk.lines.iter().map(|&(s, e)| chunk.data[s..e].to_vec()));
        }
        reader.join().unwrap();
        got
    }

    #[test]
    fn lines_come_out_as_they_went_in_however_the_input_is_cut() {
        let mut rng = XorShift(7);
        for seed in 0..40 {
            let mut want: Vec<Vec<u8>> = Vec::new();
            let mut data = Vec::new();
            for _ in 0..rng.below(300) {
                // Mostly short lines, some empty, some longer than a chunk.
                let len = match rng.below(10) {
                    0 => 0,
                    1 => CHUNK + rng.below(2 * CHUNK as u64) as usize,
                    _ => rng.below(200) as usize,
                };
                let line: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                data.extend_from_slice(&line);
                data.extend_from_slice(if rng.below(4) == 0 { b"\r\n" } else { b"\n" });
                want.push(line);
            }
            if rng.below(2) == 0 {
                // A last line without a newline is a line too.
                data.extend_from_slice(b"last\r");
                want.push(b"last".to_vec());
            }
            assert_eq!(lines_of(data, seed + 1), want, "seed {seed}");
        }
    }
}
