//! Proves the record format's limits and messages in the corners the module's
//! own tests leave out; each test here kills a mutant that `cargo mutants`
//! found surviving.

use spoolmq::store::fs::record::{self, Damage, MAX_BODY, RECORD_HEADER_LEN};

/// A record header claiming `body_len` bytes, with a good header CRC.
fn header_claiming(body_len: u32) -> Vec<u8> {
    let mut b = Vec::new();
    record::encode(7, 1, 0, b"", &mut b);
    b[4..8].copy_from_slice(&body_len.to_le_bytes());
    let crc = crc32fast::hash(&b[0..36]);
    b[36..40].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(b.len(), RECORD_HEADER_LEN);
    b
}

#[test]
fn a_header_may_claim_exactly_1_gib_but_not_one_byte_more() {
    assert_eq!(MAX_BODY, 1 << 30);
    let h = record::decode_header(&header_claiming(MAX_BODY as u32)).unwrap();
    assert_eq!(u64::from(h.body_len), MAX_BODY);
    assert_eq!(h.record_len(), 40 + MAX_BODY);
    for len in [MAX_BODY as u32 + 1, 3 << 30, u32::MAX] {
        assert_eq!(
            record::decode_header(&header_claiming(len)),
            Err(Damage::TooLong),
            "{len}"
        );
    }
}

#[test]
fn each_kind_of_damage_is_described_in_its_own_words() {
    let all = [
        (Damage::Short, "cut short"),
        (Damage::BadMagic, "no record header"),
        (Damage::BadHeaderCrc, "header checksum"),
        (Damage::TooLong, "impossible length"),
        (Damage::BadBodyCrc, "body checksum"),
        (Damage::OutOfSequence, "out of sequence"),
    ];
    for (d, words) in all {
        assert!(d.describe().contains(words), "{d:?}: {}", d.describe());
    }
}

/// Runs `f` on another thread; fails (instead of hanging) if it takes over 10 s.
fn within_10_s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("finished within 10 s (not looping forever on one spot)")
}

#[test]
fn resync_steps_past_a_record_whose_header_checksum_is_bad() {
    let mut buf = Vec::new();
    record::encode(1, 5, 0, b"first", &mut buf);
    let second = buf.len();
    record::encode(2, 5, 0, b"second", &mut buf);
    let third = buf.len();
    record::encode(3, 5, 0, b"third", &mut buf);
    // Magic intact, header CRC broken, in the first two records.
    buf[8] ^= 1;
    buf[second + 8] ^= 1;
    let b = buf.clone();
    assert_eq!(within_10_s(move || record::find_next(&b, 0)), Some(third));
    let b = buf.clone();
    assert_eq!(within_10_s(move || record::find_next(&b, 1)), Some(third));
    // And a segment scan over them finds the third record.
    let (found, end) = within_10_s(move || spoolmq::store::fs::segment::scan(&buf, 16));
    assert!(
        matches!(found.last(), Some(spoolmq::store::fs::segment::Found::Good { header, offset })
            if header.seq == 3 && *offset == 16 + third as u64),
        "{found:?}"
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(end > 16 + third as u64);
}
