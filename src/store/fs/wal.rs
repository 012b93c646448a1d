//! Reading `QUEUE/wal` (record layout in [`super::index`]) in bounded
//! chunks whatever its length: recovery replays it, the slots rebuild
//! merges its images, `fsck` checks it.
//!
//! Invariants: memory stays bounded (at most [`WAL_CHUNK`] bytes read at a
//! time); a record is handed on only after its CRC and every entry were
//! checked; whatever lies past the last whole record is a torn tail, for
//! the caller to report or cut. Never writes: appending is
//! [`super::commit`]'s, emptying the WAL the checkpoint's.

use crate::base::error::{IoContext, Result};
use crate::base::io::FileIo;
use crate::store::fs::index::{self};
use crate::store::fs::record::{self};
use crate::store::fs::segment::{self};
use crate::store::{Meta, State};
use std::path::Path;

/// What [`read_wal`] hands each record to: its offset, its lsn, its entries.
pub(super) type WalVisitor<'a> = dyn FnMut(u64, u64, &[(State, Meta)]) -> Result<()> + 'a;

/// Bytes of the WAL read at a time: memory stays bounded whatever its length.
pub(super) const WAL_CHUNK: usize = 1 << 20;

/// Reads the WAL from offset `from` to its end in chunks of at most
/// [`WAL_CHUNK`] bytes and hands each whole record to `visit` (its offset,
/// its lsn and its entries; a record longer than a chunk comes in several
/// calls, all made after its CRC and every entry were checked). Returns the
/// offset just past the last whole record and the file's length: whatever
/// lies between them (a record cut by a crash, the zeros of a sparse file,
/// garbage) is a torn tail. Never writes.
pub(super) fn read_wal(
    wal: &dyn FileIo,
    path: &Path,
    from: u64,
    visit: &mut WalVisitor<'_>,
) -> Result<(u64, u64)> {
    use index::{WAL_ENTRY_LEN, WAL_HEAD_LEN};
    let size = wal.len().ctx("stat", path)?;
    let per_chunk = WAL_CHUNK / WAL_ENTRY_LEN;
    let mut buf = Vec::new();
    let mut entries = Vec::new();
    let mut pos = from;
    'records: while pos.saturating_add(WAL_HEAD_LEN as u64 + 12) <= size {
        let mut head = [0u8; WAL_HEAD_LEN + 12];
        if segment::read_at_most(wal, path, &mut head, pos)? < head.len() {
            break;
        }
        let payload_len = u64::from(record::u32_at(&head, 0));
        let total = WAL_HEAD_LEN as u64 + payload_len;
        let lsn = record::u64_at(&head, WAL_HEAD_LEN);
        let n = u64::from(record::u32_at(&head, WAL_HEAD_LEN + 8));
        if payload_len < 12 || pos + total > size || 12 + n * WAL_ENTRY_LEN as u64 != payload_len {
            break;
        }
        // Pass 1: the CRC and every entry, in chunks of whole entries.
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head[WAL_HEAD_LEN..]);
        let fits = n as usize <= per_chunk;
        entries.clear();
        let mut done = 0u64;
        while done < n {
            let k = (n - done).min(per_chunk as u64) as usize;
            buf.resize(k * WAL_ENTRY_LEN, 0);
            let at = pos + (WAL_HEAD_LEN + 12) as u64 + done * WAL_ENTRY_LEN as u64;
            if segment::read_at_most(wal, path, &mut buf, at)? < buf.len() {
                break 'records;
            }
            crc.update(&buf);
            for e in buf.chunks_exact(WAL_ENTRY_LEN) {
                match index::decode_wal_entry(e) {
                    Some(entry) if fits => entries.push(entry),
                    Some(_) => {}
                    None => break 'records,
                }
            }
            done += k as u64;
        }
        if crc.finalize() != record::u32_at(&head, 4) {
            break;
        }
        if fits {
            visit(pos, lsn, &entries)?;
        } else {
            // Pass 2 for a record too long to hold: the same bytes, checked.
            let mut done = 0u64;
            while done < n {
                let k = (n - done).min(per_chunk as u64) as usize;
                buf.resize(k * WAL_ENTRY_LEN, 0);
                let at = pos + (WAL_HEAD_LEN + 12) as u64 + done * WAL_ENTRY_LEN as u64;
                segment::read_at_most(wal, path, &mut buf, at)?;
                entries.clear();
                entries.extend(
                    buf.chunks_exact(WAL_ENTRY_LEN)
                        .filter_map(index::decode_wal_entry),
                );
                visit(pos, lsn, &entries)?;
                done += k as u64;
            }
        }
        pos += total;
    }
    Ok((pos.max(from), size))
}
