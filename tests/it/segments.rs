//! Segments roll over at 64 MiB and a segment is unlinked once nothing in it is live.

use crate::env_fs as common;
use common::*;

#[test]
fn a_full_segment_rolls_over_and_is_reclaimed_when_acked() {
    let s = Spool::new();
    let body = vec![b'x'; 10 * 1024 * 1024];
    for _ in 0..7 {
        s.push_stdin("q", &body);
    }
    // 6 bodies of 10 MiB fit in the first 64 MiB segment, the 7th opens a second.
    let st = s.stats("q");
    assert_eq!(num(&st, "segments"), 2);
    assert_eq!(s.segment_files("q").len(), 2);
    let first = s.segment_files("q")[0].clone();
    let msgs = s.pop_json("q", &["--count", "6"]);
    assert_eq!(msgs.len(), 6);
    let receipts: Vec<&str> = msgs.iter().map(receipt).collect();
    s.ack("q", &receipts);
    assert!(!first.exists(), "the drained segment is still there");
    assert_eq!(s.segment_files("q").len(), 1);
    let st = s.stats("q");
    assert_counts(&st, &[("segments", 1), ("ready", 1), ("acked", 6)]);
    assert_eq!(num(&st, "bytes"), 10 * 1024 * 1024);
    let last = s.pop_one("q", &[]);
    assert_eq!(body_bytes(&last), body);
}
