//! Encrypted bodies: keys, the sealed body format, and which queues need a key.
//!
//! A key is 32 random bytes, kept in a file made by `spoolmq keygen`:
//!
//! ```text
//! # comment lines are ignored
//! spoolmq-key-v1 <64 hex digits>
//! ```
//!
//! With a key, every body is sealed with XChaCha20-Poly1305 before it
//! reaches a store, so stores only ever hold this:
//!
//! ```text
//! +0        +1                 +25
//! | version | nonce            | ciphertext (as long as the body) | tag    |
//! | 0x01    | 24 random bytes  |                                  | 16 B   |
//! associated data: "spoolmq body v1" | len(queue) u8 | queue | salt u64 LE | seq u64 LE
//! ```
//!
//! The associated data names the queue and the message id (an id is the
//! queue's salt and the message's seq, see [`crate::model::ids`]), so a record
//! copied to another queue or another position fails to open, as does any
//! changed byte. A body that fails to open is treated like a damaged record:
//! reported, marked corrupt, never served.
//!
//! A queue's first push decides whether it is encrypted: the store records
//! the key's [`KeyId`] (or that there was none) with that push, and every
//! later push must agree ([`Sealer::agree`]). Commands that read bodies check
//! the key before they change anything, so a missing or wrong key leases
//! nothing and counts no attempt. The key id is the Poly1305 tag of an empty
//! message under the key with an all-zero nonce: it tells keys apart and
//! reveals nothing about them (record nonces are random, never zero).

use crate::base::error::{Error, Result};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// What a store records about a queue's key: its id, or `None` for a queue
/// that keeps bodies in plain text.
pub type KeyId = [u8; 16];

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes a sealed body has beyond the plain one.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
const KEY_PREFIX: &str = "spoolmq-key-v1 ";
/// The most a key file may hold: a key file is one line and a comment or two.
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// A key loaded from a key file.
#[derive(Clone)]
pub struct Key {
    cipher: XChaCha20Poly1305,
    id: KeyId,
    path: PathBuf,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.path.display())
    }
}

fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Runtime(format!("cannot get random bytes: {e}")))
}

/// The text of a new key file: a fresh random key.
pub fn generate() -> Result<String> {
    let mut k = [0u8; 32];
    random(&mut k)?;
    let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "# spoolmq key: keep it secret, keep a copy; without it encrypted queues cannot be read\n{KEY_PREFIX}{hex}\n"
    ))
}

/// `spoolmq keygen --output FILE`: a new key in a new file, never an
/// existing one. The file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`
/// (so a file or a symlink already there is refused, not followed or
/// overwritten) and mode 0600, made exactly 0600 whatever the umask by
/// `fchmod` of the new descriptor before the key is written; then the key
/// is written and fsynced, and its directory fsynced. No other user can
/// open the file at any moment: it never had more than its owner's bits.
/// A write that fails removes the file.
pub fn create_key_file(path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let shown = path.display();
    let text = generate()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Runtime(format!(
                "{shown} already exists; refused (keygen never overwrites a file, least of all a key): give a new file name"
            )),
            _ => Error::Runtime(format!("cannot create key file {shown}: {e}")),
        })?;
    let written = file
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(Error::Runtime(format!(
            "cannot write key file {shown}: {e}; nothing kept"
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| {
            Error::Runtime(format!(
                "key file {shown} written, but its directory {} could not be synced: {e}",
                dir.display()
            ))
        })
}

impl Key {
    fn from_bytes(k: &[u8; 32], path: &Path) -> Key {
        let cipher = XChaCha20Poly1305::new(k.into());
        let mut empty = [0u8; 0];
        let tag = cipher
            .encrypt_in_place_detached(&XNonce::default(), b"spoolmq key id v1", &mut empty)
            .unwrap_or_default();
        Key {
            cipher,
            id: tag.into(),
            path: path.to_path_buf(),
        }
    }

    /// Reads a key file, through one descriptor: opened without following
    /// a symlink, without blocking (a FIFO or a device opens and is then
    /// refused, never waited on) and close-on-exec; then `fstat` of that
    /// descriptor decides, before a byte is read: a regular file, owned by
    /// you, root or `trusted_owner` (the spool's owner, who may share a key
    /// with its group), that others may not read and its group may not
    /// write. At most [`MAX_KEY_FILE`] bytes are read (a key file is one
    /// line). Refused (exit 1, naming the fix): anything else, a missing
    /// file, text that is not a key.
    pub fn load(path: &Path, trusted_owner: Option<u32>) -> Result<Key> {
        use std::io::Read;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let shown = path.display();
        let cannot = |e: std::io::Error| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Runtime(format!(
                    "key file {shown} is a symbolic link; refused: give the path of the file itself"
                ))
            } else {
                Error::Runtime(format!("cannot read key file {shown}: {e}"))
            }
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(cannot)?;
        let meta = file.metadata().map_err(cannot)?;
        if !meta.file_type().is_file() {
            return Err(Error::Runtime(format!(
                "key file {shown} is not a regular file; refused (make one with: spoolmq keygen --output FILE)"
            )));
        }
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let owner = meta.uid();
        if owner != me && owner != 0 && Some(owner) != trusted_owner {
            return Err(Error::Runtime(format!(
                "key file {shown} belongs to uid {owner}, not to you (uid {me}), root or the spool's owner, so they could change it; refused"
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o027 != 0 {
            let who = if mode & 0o007 != 0 {
                "others may read or write it"
            } else {
                "its group may write it"
            };
            return Err(Error::Runtime(format!(
                "key file {shown} has mode {mode:04o} ({who}); run: chmod 600 {shown} (or 640 to share it with the spool's group)"
            )));
        }
        let mut bytes = Vec::with_capacity(256);
        file.take(MAX_KEY_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(cannot)?;
        if bytes.len() as u64 > MAX_KEY_FILE {
            return Err(Error::Runtime(format!(
                "key file {shown} is larger than {MAX_KEY_FILE} bytes, so it is not a spoolmq key (make one with: spoolmq keygen --output FILE)"
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::Runtime(format!(
                "key file {shown} does not hold a spoolmq key (make one with: spoolmq keygen --output FILE)"
            ))
        })?;
        let bad = || {
            Error::Runtime(format!(
                "key file {shown} does not hold a spoolmq key (make one with: spoolmq keygen --output FILE)"
            ))
        };
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next().ok_or_else(bad)?;
        if lines.next().is_some() {
            return Err(bad());
        }
        let hex = line.strip_prefix(KEY_PREFIX).ok_or_else(bad)?.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Key::from_bytes(&k, path))
    }

    pub fn id(&self) -> KeyId {
        self.id
    }
}

fn associated_data(queue: &str, salt: u64, seq: u64) -> Vec<u8> {
    let mut ad = Vec::with_capacity(15 + 1 + queue.len() + 16);
    ad.extend_from_slice(b"spoolmq body v1");
    ad.push(queue.len() as u8);
    ad.extend_from_slice(queue.as_bytes());
    ad.extend_from_slice(&salt.to_le_bytes());
    ad.extend_from_slice(&seq.to_le_bytes());
    ad
}

/// Random nonces, drawn from the kernel a few thousand bytes at a time
/// (one `getrandom` call per record would dominate a bulk push).
#[derive(Default)]
struct Nonces {
    pool: Vec<u8>,
}

impl Nonces {
    fn next(&mut self) -> Result<[u8; NONCE_LEN]> {
        if self.pool.len() < NONCE_LEN {
            self.pool = vec![0u8; NONCE_LEN * 256];
            random(&mut self.pool)?;
        }
        let at = self.pool.len() - NONCE_LEN;
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&self.pool[at..]);
        self.pool.truncate(at);
        Ok(n)
    }
}

/// How bodies of one queue are sealed on push and opened on read.
pub struct Sealer<'a> {
    queue: &'a str,
    key: Option<&'a Key>,
    nonces: Nonces,
    /// The associated data of the last body sealed (only salt and seq
    /// change), made by the first `seal`: a sealer that only opens or
    /// checks costs no allocation.
    ad: Vec<u8>,
}

impl<'a> Sealer<'a> {
    pub fn new(queue: &'a str, key: Option<&'a Key>) -> Sealer<'a> {
        Sealer {
            queue,
            key,
            nonces: Nonces::default(),
            ad: Vec::new(),
        }
    }

    /// What the store records with a queue's first push.
    pub fn key_id(&self) -> Option<KeyId> {
        self.key.map(Key::id)
    }

    /// Whether this key may be used with a queue whose store recorded
    /// `stored`: an encrypted queue needs its own key; a plain-text queue
    /// takes no key, neither for a push (its bodies would be stored in
    /// plain text while the user believes them encrypted) nor for reading
    /// (someone who can write the spool could remove the record of its key
    /// and push forged plain-text bodies: a reader with a key expects an
    /// encrypted queue and is told it is not).
    pub fn agree(&self, stored: Option<KeyId>) -> Result<()> {
        let q = self.queue;
        match (stored, self.key) {
            (Some(_), None) => Err(Error::Runtime(format!(
                "queue {q} is encrypted: give its key with --key-file FILE (or SPOOLMQ_KEY_FILE)"
            ))),
            (Some(id), Some(k)) if id != k.id => Err(Error::Runtime(format!(
                "the key in {} is not the key of queue {q} (it was encrypted with another one)",
                k.path.display()
            ))),
            (None, Some(k)) => Err(Error::Runtime(format!(
                "queue {q} keeps its messages in plain text (its first push had no key), so the key in {} does not apply; use it without --key-file, or use a new queue for encrypted messages",
                k.path.display()
            ))),
            _ => Ok(()),
        }
    }

    /// The body as the store keeps it: sealed with the key, or as it is.
    pub fn seal<'b>(&mut self, salt: u64, seq: u64, body: &'b [u8]) -> Result<Cow<'b, [u8]>> {
        let Some(key) = self.key else {
            return Ok(Cow::Borrowed(body));
        };
        let nonce = self.nonces.next()?;
        let mut out = Vec::with_capacity(OVERHEAD + body.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(body);
        if self.ad.is_empty() {
            self.ad = associated_data(self.queue, salt, seq);
        }
        let at = self.ad.len() - 16;
        self.ad[at..at + 8].copy_from_slice(&salt.to_le_bytes());
        self.ad[at + 8..].copy_from_slice(&seq.to_le_bytes());
        let tag = key
            .cipher
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                &self.ad,
                &mut out[1 + NONCE_LEN..],
            )
            .map_err(|_| Error::Runtime("cannot encrypt a message body".into()))?;
        out.extend_from_slice(&tag);
        Ok(Cow::Owned(out))
    }

    /// The plain body of a stored one; `Err` with the reason if it does not
    /// open (changed on disk, moved from elsewhere, or not sealed at all).
    /// Bodies of plain-text queues (`stored` id `None`) come back as they are.
    pub fn open(
        &self,
        stored: Option<KeyId>,
        salt: u64,
        seq: u64,
        mut body: Vec<u8>,
    ) -> std::result::Result<Vec<u8>, String> {
        if stored.is_none() {
            return Ok(body);
        }
        let Some(key) = self.key else {
            return Err("no key to decrypt it".into());
        };
        if body.len() < OVERHEAD || body[0] != VERSION {
            return Err("not an encrypted record".into());
        }
        let tag_at = body.len() - TAG_LEN;
        let nonce = XNonce::clone_from_slice(&body[1..1 + NONCE_LEN]);
        let tag = Tag::clone_from_slice(&body[tag_at..]);
        let ad = associated_data(self.queue, salt, seq);
        // Decrypted where it lies, then moved to the front: no second copy
        // of a body that may be 1 GiB.
        key.cipher
            .decrypt_in_place_detached(&nonce, &ad, &mut body[1 + NONCE_LEN..tag_at], &tag)
            .map_err(
                |_| "its authentication tag does not match (the record was changed or moved)",
            )?;
        body.truncate(tag_at);
        body.drain(..1 + NONCE_LEN);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from_bytes(&[byte; 32], Path::new("test.key"))
    }

    #[test]
    fn a_sealed_body_opens_only_where_it_was_sealed() {
        let k = key(1);
        let mut s = Sealer::new("orders", Some(&k));
        let sealed = s.seal(7, 3, b"pay 10 EUR").unwrap().into_owned();
        assert_eq!(sealed.len(), 10 + OVERHEAD);
        assert!(!sealed.windows(3).any(|w| w == b"pay"));
        let id = Some(k.id());
        assert_eq!(s.open(id, 7, 3, sealed.clone()).unwrap(), b"pay 10 EUR");
        // Another position, another salt, another queue, another key.
        assert!(s.open(id, 7, 4, sealed.clone()).is_err());
        assert!(s.open(id, 8, 3, sealed.clone()).is_err());
        assert!(
            Sealer::new("other", Some(&k))
                .open(id, 7, 3, sealed.clone())
                .is_err()
        );
        let k2 = key(2);
        assert!(
            Sealer::new("orders", Some(&k2))
                .open(id, 7, 3, sealed.clone())
                .is_err()
        );
        // Any changed byte.
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(s.open(id, 7, 3, bad).is_err(), "byte {i}");
        }
        assert!(s.open(id, 7, 3, sealed[..OVERHEAD - 1].to_vec()).is_err());
    }

    #[test]
    fn nonces_differ_and_key_ids_tell_keys_apart() {
        let k = key(1);
        let mut s = Sealer::new("q", Some(&k));
        let a = s.seal(1, 1, b"x").unwrap().into_owned();
        let b = s.seal(1, 1, b"x").unwrap().into_owned();
        assert_ne!(a, b);
        assert_eq!(key(1).id(), k.id());
        assert_ne!(key(2).id(), k.id());
        // Without a key, bodies pass through.
        assert_eq!(&*Sealer::new("q", None).seal(1, 1, b"x").unwrap(), b"x");
    }

    #[test]
    fn keys_must_agree_with_the_queue() {
        let k = key(1);
        let k2 = key(2);
        let with = Sealer::new("q", Some(&k));
        let without = Sealer::new("q", None);
        assert!(with.agree(Some(k.id())).is_ok());
        assert!(with.agree(Some(k2.id())).is_err());
        assert!(without.agree(Some(k.id())).is_err());
        assert!(without.agree(None).is_ok());
        assert!(with.agree(None).is_err());
    }

    #[test]
    fn generated_keys_load_and_bad_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, generate().unwrap()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let k = Key::load(&p, None).unwrap();
        assert_eq!(Key::load(&p, None).unwrap().id(), k.id());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Key::load(&p, None).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::write(&p, "spoolmq-key-v1 abc\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            Key::load(&p, None)
                .unwrap_err()
                .to_string()
                .contains("keygen")
        );
    }
}
