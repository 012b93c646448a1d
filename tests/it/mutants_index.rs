//! Proves the index formats (slots and headers) keep every field and size the
//! format documents, in the corners the module's own tests leave out; each
//! test here kills a mutant that `cargo mutants` found surviving.

use spoolmq::store::fs::index::{self, Header, SegmentEntry};
use spoolmq::store::{Counters, Loc, Meta, State};

fn slot(max_attempts: u32) -> Meta {
    Meta {
        seq: 9,
        state: State::Leased,
        attempts: 2,
        max_attempts,
        pushed_at_ms: 1_700_000_000_000,
        until_ms: 1_700_000_060_000,
        receipt: [0x5a; 12],
        len: 12,
        loc: Loc {
            segment: 1,
            offset: 16,
            long: false,
        },
        expires_at_ms: 0,
        keyed: false,
        priority: 0,
        group: None,
    }
}

#[test]
fn a_max_attempts_above_255_survives_a_slot_round_trip() {
    for max in [256, 300, 0x1234, u32::from(u16::MAX)] {
        let s = slot(max);
        let b = index::encode_slot(&s);
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), max as u16);
        assert_eq!(index::decode_slot(&b), Ok(s), "max_attempts {max}");
    }
}

#[test]
fn a_max_attempts_too_large_for_the_slot_is_stored_as_65535() {
    let b = index::encode_slot(&slot(100_000));
    let back = index::decode_slot(&b).unwrap();
    assert_eq!(back.max_attempts, 65_535);
}

fn header(segments: usize) -> Header {
    Header {
        generation: 3,
        lsn: 2,
        wal_len: 1,
        boot_id: [9; 16],
        next_seq: 40,
        active: 30,
        active_len: 500,
        scan_lo: 31,
        counters: Counters {
            ready: 1,
            ..Counters::default()
        },
        punched: 0,
        salt: 77,
        segments: (0..segments as u64)
            .map(|i| SegmentEntry {
                base: 1 + i * 10,
                live: i,
            })
            .collect(),
        lanes: Default::default(),
        lanes_epoch: 0,
    }
}

#[test]
fn a_header_with_no_segments_decodes_from_exactly_its_own_bytes() {
    let h = header(0);
    let b = h.encode().unwrap();
    assert_eq!(b.len(), 184);
    assert_eq!(Header::decode(&b), Some(h.clone()));
    // And from a whole zero-padded region, as it sits in the index file.
    let mut region = b.clone();
    region.resize(index::REGION_LEN, 0);
    assert_eq!(Header::decode(&region), Some(h));
}

#[test]
fn a_header_listing_as_many_segments_as_fit_in_a_64_kib_region_round_trips() {
    assert_eq!(index::REGION_LEN, 64 * 1024);
    assert_eq!(index::MAX_SEGMENTS, (64 * 1024 - 184) / 16);
    assert_eq!(index::MAX_SEGMENTS_WITH_LANES, (64 * 1024 - 344) / 16);
    for n in [
        1,
        100,
        1000,
        index::MAX_SEGMENTS_WITH_LANES,
        index::MAX_SEGMENTS,
    ] {
        for lanes in [false, true] {
            if lanes && n > index::MAX_SEGMENTS_WITH_LANES {
                let mut h = header(n);
                h.lanes[0].len = 1;
                assert!(h.encode().is_none(), "{n} segments and lanes");
                continue;
            }
            let mut h = header(n);
            if lanes {
                h.lanes[4] = index::Lane { len: 3, cursor: 1 };
                h.lanes_epoch = 5;
            }
            let b = h.encode().expect("fits in a region");
            let fixed = if lanes { 344 } else { 184 };
            assert_eq!(b.len(), fixed + 16 * n);
            assert!(b.len() <= 64 * 1024);
            let mut region = b.clone();
            region.resize(index::REGION_LEN, 0);
            assert_eq!(Header::decode(&region), Some(h), "{n} segments");
        }
    }
    assert!(header(index::MAX_SEGMENTS + 1).encode().is_none());
}

/// A WAL record whose length field is below the 12-byte minimum but whose CRC
/// checks out (the CRC of no bytes is 0, so eight zero bytes are one).
fn short_wal(payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    b.extend_from_slice(payload);
    b
}

#[test]
fn a_wal_record_shorter_than_its_fixed_part_is_rejected_even_with_a_good_crc() {
    assert_eq!(index::decode_wal(&[0; 8]), None);
    for len in 0..12 {
        let payload: Vec<u8> = (0..len as u8).collect();
        let b = short_wal(&payload);
        assert_eq!(index::decode_wal(&b), None, "payload of {len} bytes");
    }
}

#[test]
fn a_wal_record_with_no_entries_round_trips() {
    let b = index::encode_wal(5, std::iter::empty());
    assert_eq!(b.len(), 8 + 12);
    let r = index::decode_wal(&b).expect("an empty change set decodes");
    assert_eq!((r.lsn, r.entries.len(), r.len), (5, 0, 20));
}
