//! Every saved fuzz input in tests/fuzz_regressions/ goes through its fuzz target's own checks (record, index and duration decoders) without a panic.
//!
//! A file is named `<target>-<short-name>.bin` and holds the whole input of
//! that target, first byte (the target's mode) included. The checks are the
//! fuzz crate's own code, fuzz/src/lib.rs, included here by path, so a crash
//! found by `fuzz/run.sh` is replayed exactly: copy it from
//! fuzz/artifacts/<target>/ to tests/fuzz_regressions/<target>-<what>.bin.

#[path = "../../fuzz/src/lib.rs"]
mod fuzz_checks;

use spoolmq::store::fs::index::{self, Header, SlotDamage};
use spoolmq::store::fs::record::{self, Damage};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions")
}

fn input(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_saved_input_passes_its_target() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("tests/fuzz_regressions/")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    names.sort();
    let mut failed = Vec::new();
    let mut per_target = [0usize; 5];
    for name in &names {
        let data = input(name);
        let (i, target): (usize, fn(&[u8])) = match name.split('-').next().unwrap() {
            "record_decode" => (0, fuzz_checks::record_decode),
            "index_decode" => (1, fuzz_checks::index_decode),
            "duration_parse" => (2, fuzz_checks::duration_parse),
            "journal_decode" => (3, fuzz_checks::journal_decode),
            "holds_decode" => (4, fuzz_checks::holds_decode),
            other => panic!("{name}: no fuzz target named {other:?}"),
        };
        per_target[i] += 1;
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            failed.push(name.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "these inputs fail their target's checks: {failed:?}"
    );
    assert!(
        per_target.iter().all(|&n| n > 0),
        "every target keeps at least one input: {per_target:?}"
    );
}

/// The hand-made inputs are what their names say (so the replay above
/// really takes the paths it is meant to).
#[test]
fn the_hand_made_inputs_reach_what_they_are_named_for() {
    let r = input("record_decode-header-claims-4gib.bin");
    assert_eq!(record::decode_header(&r[1..]), Err(Damage::TooLong));
    let r = input("record_decode-header-claims-1gib-short.bin");
    assert_eq!(record::decode(&r[1..]).map(|_| ()), Err(Damage::Short));

    let w = input("index_decode-wal-n-u32max.bin");
    assert_eq!(u32::from_le_bytes(w[17..21].try_into().unwrap()), u32::MAX);
    assert_eq!(index::decode_wal(&w[1..]), None);
    let w = input("index_decode-wal-two-records.bin");
    let first = index::decode_wal(&w[1..]).expect("the first record is good");
    assert_eq!(first.entries.len(), 1);

    let h = input("index_decode-header-nsegs-u32max.bin");
    assert_eq!(
        u32::from_le_bytes(h[177..181].try_into().unwrap()),
        u32::MAX
    );
    assert_eq!(Header::decode(&h[1..]), None);
    let h = input("index_decode-header-max-segments.bin");
    assert_eq!(
        Header::decode(&h[1..]).unwrap().segments.len(),
        index::MAX_SEGMENTS
    );
    let h = input("index_decode-header-one-segment-too-many.bin");
    assert_eq!(Header::decode(&h[1..]), None);

    let s = input("index_decode-slot-state-zero-good-crc.bin");
    assert_eq!(index::decode_slot(&s[1..]), Err(SlotDamage::Bad));

    use spoolmq::store::fs::holds::{self, Entry};
    let e = input("holds_decode-entry-whole.bin");
    assert!(matches!(holds::decode_entry(&e[1..]), Entry::Full(_, h) if h.seq == 258));
    let e = input("holds_decode-entry-reserved-word.bin");
    assert_eq!(holds::decode_entry(&e[1..]), Entry::Damaged);
    let h = input("holds_decode-header-whole.bin");
    assert_eq!(holds::decode_header(&h[1..]), Some(12));

    assert!(spoolmq::model::input::duration("3153600000000ms").is_ok());
    assert!(spoolmq::model::input::duration("3153600000001ms").is_err());
}

/// The one finding of the fuzzer so far (fuzz/README.md, "Findings"): a slot
/// whose reserved byte (+1) is not 0 but whose CRC is good is accepted, and
/// `encode_slot` of what it decodes to is not the same 64 bytes.
#[test]
fn a_slot_with_a_nonzero_reserved_byte_is_rejected() {
    for name in [
        "index_decode-slot-reserved-byte.bin",
        "index_decode-slot-reserved-byte-found.bin",
    ] {
        let s = input(name);
        let mut slot = s[1..65].to_vec();
        if name.ends_with("-found.bin") {
            // The fuzzer's input is in the "fix the CRC" mode: fix it here.
            let crc = crc32fast::hash(&slot[..60]);
            slot[60..].copy_from_slice(&crc.to_le_bytes());
        }
        assert_ne!(slot[1], 0);
        assert_eq!(index::decode_slot(&slot), Err(SlotDamage::Bad), "{name}");
    }
}
