//! Proves the segment file reader and writer keep their contracts (the
//! record-length limit, error messages naming what was being done) in the
//! corners the module's own tests leave out; each test here kills a mutant
//! that `cargo mutants` found surviving.

use spoolmq::Error;
use spoolmq::base::io::{self, Open};
use spoolmq::store::fs::record::{self, Damage, MAX_BODY};
use spoolmq::store::fs::segment;
use tempfile::TempDir;

#[test]
fn a_failed_open_says_open_and_a_failed_create_says_create() {
    let tmp = TempDir::new().unwrap();
    let fs = io::real(tmp.path()).unwrap();
    let missing = tmp.path().join("missing.seg");
    match segment::open_rw(&*fs, &missing) {
        Err(Error::Io { what, path, .. }) => {
            assert_eq!(what, "open");
            assert_eq!(path, missing);
        }
        other => panic!("expected an I/O error, got {:?}", other.err()),
    }
    let no_dir = tmp.path().join("no-such-dir").join("x.seg");
    for how in [Open::New, Open::OrCreate] {
        match segment::open_file(&*fs, &no_dir, how) {
            Err(Error::Io { what, .. }) => assert_eq!(what, "create", "{how:?}"),
            other => panic!("expected an I/O error, got {:?}", other.err()),
        }
    }
    match segment::create(&*fs, &tmp.path().join("no-such-dir"), 1, 5) {
        Err(Error::Io { what, .. }) => assert_eq!(what, "create"),
        other => panic!("expected an I/O error, got {:?}", other.err()),
    }
}

/// A segment file holding one record header that claims `body_len` bytes
/// (good header CRC) and no body.
fn segment_claiming(tmp: &TempDir, body_len: u32) -> std::path::PathBuf {
    let mut rec = Vec::new();
    record::encode(1, 2, 0, b"", &mut rec);
    rec[4..8].copy_from_slice(&body_len.to_le_bytes());
    let crc = crc32fast::hash(&rec[0..36]);
    rec[36..40].copy_from_slice(&crc.to_le_bytes());
    let mut file = record::segment_header(9).to_vec();
    file.extend_from_slice(&rec);
    let p = tmp.path().join(segment::file_name(1));
    std::fs::write(&p, file).unwrap();
    p
}

#[test]
fn reading_a_record_of_more_than_1_gib_is_refused_before_any_read() {
    let tmp = TempDir::new().unwrap();
    let fs = io::real(tmp.path()).unwrap();
    for claim in [MAX_BODY as u32 + 1, u32::MAX] {
        let p = segment_claiming(&tmp, claim);
        let f = segment::open_rw(&*fs, &p).unwrap();
        let r = segment::read_record(
            &*f,
            &p,
            segment::FIRST_RECORD,
            claim,
            spoolmq::store::fs::record::Kind::Short,
        )
        .unwrap();
        assert_eq!(r.err(), Some(Damage::TooLong), "{claim}");
    }
}

#[test]
fn a_record_of_exactly_1_gib_is_read_and_a_missing_body_is_a_torn_write() {
    let tmp = TempDir::new().unwrap();
    let fs = io::real(tmp.path()).unwrap();
    let claim = MAX_BODY as u32;
    let p = segment_claiming(&tmp, claim);
    let f = segment::open_rw(&*fs, &p).unwrap();
    // The buffer is allocated (1 GiB, untouched past the file's 56 bytes) and
    // the header is read: the body is missing, not too long.
    let r = segment::read_record(
        &*f,
        &p,
        segment::FIRST_RECORD,
        claim,
        spoolmq::store::fs::record::Kind::Short,
    )
    .unwrap();
    assert_eq!(r.err(), Some(Damage::Short));
}

/// A file that holds `data`, returns at most `chunk` bytes per read, and
/// fails the first `interruptions` reads with `EINTR`.
struct Flaky {
    data: Vec<u8>,
    chunk: usize,
    interruptions: std::sync::atomic::AtomicUsize,
}

impl io::FileIo for Flaky {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering;
        if self
            .interruptions
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let from = (offset as usize).min(self.data.len());
        let n = buf.len().min(self.chunk).min(self.data.len() - from);
        buf[..n].copy_from_slice(&self.data[from..from + n]);
        Ok(n)
    }
    fn write_all_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
        unimplemented!()
    }
    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn set_len(&self, _: u64) -> std::io::Result<()> {
        unimplemented!()
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.data.len() as u64)
    }
    fn punch_hole(&self, _: u64, _: u64) -> std::io::Result<bool> {
        Ok(false)
    }
}

#[test]
fn a_read_interrupted_by_a_signal_is_retried_not_reported() {
    let data: Vec<u8> = (0..100u8).collect();
    let f = Flaky {
        data: data.clone(),
        chunk: 7,
        interruptions: 3.into(),
    };
    let mut buf = [0u8; 60];
    let n = segment::read_at_most(&f, std::path::Path::new("x"), &mut buf, 10).unwrap();
    assert_eq!(n, 60);
    assert_eq!(&buf[..], &data[10..70]);
    // Past the end: what there is, then 0.
    let mut buf = [0u8; 60];
    let n = segment::read_at_most(&f, std::path::Path::new("x"), &mut buf, 80).unwrap();
    assert_eq!(n, 20);
    assert_eq!(&buf[..20], &data[80..]);
}

#[test]
fn any_other_read_error_is_reported_with_the_path() {
    struct Broken;
    impl io::FileIo for Broken {
        fn read_at(&self, _: &mut [u8], _: u64) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(libc::EIO))
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
            unimplemented!()
        }
        fn sync_data(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _: u64) -> std::io::Result<()> {
            unimplemented!()
        }
        fn len(&self) -> std::io::Result<u64> {
            Ok(10)
        }
        fn punch_hole(&self, _: u64, _: u64) -> std::io::Result<bool> {
            Ok(false)
        }
    }
    let mut buf = [0u8; 4];
    match segment::read_at_most(&Broken, std::path::Path::new("/q/x.seg"), &mut buf, 0) {
        Err(Error::Io { what, path, .. }) => {
            assert_eq!(what, "read");
            assert_eq!(path, std::path::Path::new("/q/x.seg"));
        }
        other => panic!("expected a read error, got {other:?}"),
    }
}

fn rec(seq: u64, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    record::encode(seq, 5, 0, body, &mut v);
    v
}

#[test]
fn garbage_between_two_records_is_reported_with_its_exact_extent() {
    let mut buf = rec(1, b"one");
    let junk_at = buf.len();
    buf.extend_from_slice(b"not a record at all, just junk bytes");
    let second = buf.len();
    buf.extend(rec(2, b"two"));
    let (found, end) = segment::scan(&buf, 16);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(
        found[1],
        segment::Found::Garbage {
            offset: 16 + junk_at as u64,
            len: (second - junk_at) as u64,
            damage: Damage::BadMagic,
        }
    );
    assert!(
        matches!(found[2], segment::Found::Good { offset, .. } if offset == 16 + second as u64)
    );
    assert_eq!(end, 16 + buf.len() as u64);
}

#[test]
fn a_rewrite_keeps_the_good_records_and_quarantines_exactly_the_damaged_bytes() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let fs = io::real(tmp.path()).unwrap();
    let mut file = record::segment_header(77).to_vec();
    let r1 = rec(1, b"one");
    file.extend_from_slice(&r1);
    let junk_at = file.len();
    let junk = b"junk junk junk junk".to_vec();
    file.extend_from_slice(&junk);
    let bad_at = file.len();
    let mut r2 = rec(2, b"two, damaged");
    r2[40] ^= 0xff;
    file.extend_from_slice(&r2);
    let r3 = rec(3, b"three");
    file.extend_from_slice(&r3);
    let p = segment::path(dir, 1);
    std::fs::write(&p, &file).unwrap();

    let (bytes, found, salt) = segment::check(&*fs, &p).unwrap();
    assert_eq!(salt, Ok(77));
    assert_eq!(found.len(), 4, "{found:?}");
    let good = segment::rewrite_good(&*fs, 77, dir, &p, &bytes, &found).unwrap();

    // The good records, back to back after a fresh header, at their new offsets.
    let seqs: Vec<(u64, u64)> = good.iter().map(|(o, h)| (*o, h.seq)).collect();
    assert_eq!(seqs, [(16, 1), (16 + r1.len() as u64, 3)]);
    let mut want = record::segment_header(77).to_vec();
    want.extend_from_slice(&r1);
    want.extend_from_slice(&r3);
    assert_eq!(std::fs::read(&p).unwrap(), want);
    assert!(!dir.join(format!("{}.tmp", segment::file_name(1))).exists());

    // Each damaged range, byte for byte, in quarantine/<name>-<offset>.bad.
    let q = dir.join("quarantine");
    let name = segment::file_name(1);
    assert_eq!(
        std::fs::read(q.join(format!("{name}-{junk_at}.bad"))).unwrap(),
        junk
    );
    assert_eq!(
        std::fs::read(q.join(format!("{name}-{bad_at}.bad"))).unwrap(),
        r2
    );
    assert_eq!(std::fs::read_dir(&q).unwrap().count(), 2);
}

#[test]
fn a_rewrite_of_a_segment_with_nothing_damaged_makes_no_quarantine() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let fs = io::real(tmp.path()).unwrap();
    let mut file = record::segment_header(3).to_vec();
    file.extend(rec(1, b"a"));
    file.extend(rec(2, b"b"));
    let p = segment::path(dir, 1);
    std::fs::write(&p, &file).unwrap();
    let (bytes, found, _) = segment::check(&*fs, &p).unwrap();
    let good = segment::rewrite_good(&*fs, 3, dir, &p, &bytes, &found).unwrap();
    assert_eq!(good.len(), 2);
    assert_eq!(std::fs::read(&p).unwrap(), file);
    assert!(!dir.join("quarantine").exists());
}

#[test]
fn the_salt_comes_from_the_first_segment_whose_header_checks_out() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let fs = io::real(tmp.path()).unwrap();
    assert_eq!(segment::find_salt(&*fs, dir).unwrap(), None);
    // Segment 1: damaged header; segment 5: good (salt 0xabc); segment 9: another salt.
    let mut bad = record::segment_header(0x111).to_vec();
    bad[6] ^= 1;
    std::fs::write(segment::path(dir, 1), &bad).unwrap();
    assert_eq!(segment::find_salt(&*fs, dir).unwrap(), None);
    std::fs::write(segment::path(dir, 9), record::segment_header(0x999)).unwrap();
    std::fs::write(segment::path(dir, 5), record::segment_header(0xabc)).unwrap();
    std::fs::write(dir.join("notes.txt"), record::segment_header(0x777)).unwrap();
    assert_eq!(segment::find_salt(&*fs, dir).unwrap(), Some(0xabc));
    assert_eq!(segment::list(&*fs, dir).unwrap(), [1, 5, 9]);
}
