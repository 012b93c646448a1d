//! The key id file `QUEUE/key`, only in an encrypted queue: the id of its
//! key ([`crate::model::crypt`]), so that a wrong key is refused before any
//! body is opened, and `fsck` can tell which key a queue was sealed with.
//!
//! `key` is written once, by the queue's first push, before its records
//! (temporary file, fsync, rename, directory fsync), and never changes:
//!
//! ```text
//! +0        +8            +24
//! | SPMQKEY1| key id 16 B | crc32 of bytes 0..24 (u32 LE) |
//! ```
//!
//! Invariants: read by opening, not by testing that it exists (a link
//! planted as `key` is an error, not "not encrypted"); a file of another
//! length, magic or CRC is damaged (`fsck --repair` with the key rewrites it).

use crate::base::error::{Error, IoContext, Result};
use crate::base::io::{Fs, Open};
use crate::model::crypt::KeyId;
use crate::store::fs::record::{self};
use crate::store::fs::segment::{self, Found, sync_dir};
use std::path::Path;

const KEY_MAGIC: &[u8; 8] = b"SPMQKEY1";

const KEY_FILE_LEN: usize = 28;

/// The key id in `dir/key`, if the queue is encrypted.
pub(super) fn read_key_id(fs: &dyn Fs, dir: &Path) -> Result<Option<KeyId>> {
    let p = dir.join("key");
    // Opened, not tested with exists(): a link planted as `key`, even one
    // that points nowhere, is an error rather than "not encrypted".
    let f = match fs.open(&p, Open::Existing) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", &p, e)),
    };
    // One byte more than the record: a longer file is damaged too.
    let mut b = [0u8; KEY_FILE_LEN + 1];
    let n = segment::read_at_most(&*f, &p, &mut b, 0)?;
    if n != KEY_FILE_LEN
        || &b[..8] != KEY_MAGIC
        || crc32fast::hash(&b[..24]) != record::u32_at(&b, 24)
    {
        return Err(Error::corrupt(
            &p,
            "damaged key id: this queue's encryption key cannot be checked (`spoolmq --key-file KEY fsck --repair` rewrites it)",
        ));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[8..24]);
    Ok(Some(id))
}

/// Makes `dir/key` hold `id` (or removes it for `None`), durably.
pub(super) fn write_key_id(fs: &dyn Fs, dir: &Path, id: Option<KeyId>) -> Result<()> {
    let p = dir.join("key");
    match id {
        None => match fs.remove_file(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            r => r.ctx("remove", &p)?,
        },
        Some(id) => {
            let mut b = Vec::with_capacity(KEY_FILE_LEN);
            b.extend_from_slice(KEY_MAGIC);
            b.extend_from_slice(&id);
            b.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
            let tmp = dir.join("key.tmp");
            let _ = fs.remove_file(&tmp);
            let f = segment::open_file(fs, &tmp, Open::New)?;
            f.write_all_at(&b, 0).ctx("write", &tmp)?;
            f.sync_data().ctx("sync", &tmp)?;
            fs.rename(&tmp, &p).ctx("rename", &p)?;
        }
    }
    sync_dir(fs, dir)
}

/// The key id recorded in queue directory `dir`, for `fsck` (`Err` if
/// its file is damaged).
pub(crate) fn key_record(fs: &dyn Fs, dir: &Path) -> Result<Option<KeyId>> {
    read_key_id(fs, dir)
}

/// For `fsck` of a queue whose key id file is damaged or missing: of the
/// intact records in the segments of queue `name` (in `dir`), how many
/// bodies open with `key` and how many do not. Any that opens proves the
/// queue was encrypted with it (the tag covers the queue and the message id).
pub(crate) fn bodies_opening_with(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    key: &crate::model::crypt::Key,
) -> Result<(u64, u64)> {
    let Some(salt) = segment::find_salt(fs, dir)? else {
        return Ok((0, 0));
    };
    let sealer = crate::model::crypt::Sealer::new(name, Some(key));
    let (mut open, mut not) = (0, 0);
    for base in segment::list(fs, dir)? {
        let path = segment::path(dir, base);
        let (file, found, _) = segment::check(fs, &path)?;
        for f in found {
            let Found::Good { offset, header } = f else {
                continue;
            };
            let Ok((_, body)) =
                segment::read_record(&*file, &path, offset, header.body_len, header.kind())?
            else {
                continue;
            };
            match sealer.open(Some(key.id()), salt, header.seq, body) {
                Ok(_) => open += 1,
                Err(_) => not += 1,
            }
        }
    }
    Ok((open, not))
}

/// `fsck --repair`: records `id` as the key of the queue in `dir`, under
/// the queue's lock (a temporary file, fsynced, renamed into place).
pub(crate) fn restore_key_record(fs: &dyn Fs, dir: &Path, id: KeyId) -> Result<()> {
    let _lock = fs
        .lock(&dir.join("lock"), true)
        .ctx("lock", &dir.join("lock"))?;
    write_key_id(fs, dir, Some(id))
}
