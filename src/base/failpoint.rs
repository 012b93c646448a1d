//! Crash points for tests: with the `failpoints` feature (on for `cargo test`,
//! off in the installed tool), `SPOOLMQ_FAILPOINT=NAME` makes the process
//! abort the first time it reaches the step called NAME, and
//! `SPOOLMQ_FAILPOINT=NAME:N` the N-th time. Without the feature every
//! function here is an empty inline function.
//!
//! Names, in the order a write path meets them (see `crate::store::fs`):
//!
//! | name | where |
//! |---|---|
//! | `push.after-append` | records appended, segment not yet fsynced |
//! | `push.after-sync` | segment fsynced, index not yet updated |
//! | `roll.after-create` | a new segment created, nothing appended to it yet |
//! | `header.torn` | half of the live header written |
//! | `checkpoint.torn` | half of a checkpoint header written |
//! | `wal.torn` | half of a WAL record written |
//! | `commit.after-wal` | WAL record written (and synced), slots not yet updated |
//! | `commit.mid-slots` | half of a change set's slots written |
//! | `checkpoint.after-header` | checkpoint header synced, WAL not yet truncated |
//! | `reclaim.after-unlink` | an empty segment unlinked, header not yet written |
//! | `reconcile.after-slots` | lost or stale slots rebuilt from the WAL and segments, not yet synced or checkpointed |
//! | `failures.torn` | half of a nack's failure frames appended (the nack not yet committed) |
//! | `failures.after-sync` | failure frames appended and synced, the nack not yet committed |
//! | `failures.before-rename` | a compacted failures file written and synced as `failures.tmp`, not renamed |
//! | `failures.after-rename` | the compacted file renamed into place, directory not yet synced |
//! | `repair.after-segments` | `fsck --repair` rewrote segments, index not yet rebuilt |
//! | `migrate.after-copy` | the new store built in `SPOOL/.migrate/`, nothing moved |
//! | `migrate.before-switch` | the new store moved into the spool, `.store` not yet replaced |
//! | `migrate.after-switch` | `.store` replaced, the old store's files not yet removed |
//! | `pg.before-commit` | not an abort: the server ends a PostgreSQL write's connection before its `COMMIT` |
//! | `pg.after-commit` | not an abort: a PostgreSQL write committed, then the server ends the connection before the next `BEGIN` |

#[cfg(feature = "failpoints")]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};

    static HITS: AtomicU64 = AtomicU64::new(0);

    /// Whether the crash point `name` fires now.
    pub fn armed(name: &str) -> bool {
        let Ok(spec) = std::env::var("SPOOLMQ_FAILPOINT") else {
            return false;
        };
        let (want, nth) = match spec.split_once(':') {
            Some((w, n)) => (w, n.parse::<u64>().unwrap_or(1)),
            None => (spec.as_str(), 1),
        };
        want == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth
    }
}

/// A skew added to this host's clock, in ms: `SPOOLMQ_TEST_CLOCK_SKEW_MS`
/// (test builds only), to show that a store with a clock of its own
/// (PostgreSQL) does not use the host's. Always 0 without the feature.
#[inline(always)]
pub fn clock_skew_ms() -> i64 {
    #[cfg(feature = "failpoints")]
    if let Ok(v) = std::env::var("SPOOLMQ_TEST_CLOCK_SKEW_MS") {
        return v.parse().unwrap_or(0);
    }
    0
}

/// Whether the fault point `name` is armed now, for a fault other than an
/// abort (the caller makes it: `pg.after-commit` ends its own connection).
#[inline(always)]
pub fn armed(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    return imp::armed(name);
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        false
    }
}

/// A planted bug, for the crash lab to show it catches one (test builds
/// only; `SPOOLMQ_TEST_PLANT=NAME`): `segment-sync` skips a push's
/// `fdatasync` of the segment, `segment-dir-sync` the directory `fsync`
/// after a new segment is created. Always false without the feature.
#[inline(always)]
pub fn planted(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    return std::env::var("SPOOLMQ_TEST_PLANT").is_ok_and(|v| v == name);
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        false
    }
}

/// Segments roll over past this many bytes instead of 64 MiB
/// (`SPOOLMQ_TEST_SEGMENT_BYTES`, test builds only), so that the crash lab
/// rolls and reclaims segments with a few hundred kilobytes. (Unit tests
/// set the limit directly.)
#[cfg(not(test))]
#[inline(always)]
pub fn segment_bytes() -> Option<u64> {
    #[cfg(feature = "failpoints")]
    if let Ok(v) = std::env::var("SPOOLMQ_TEST_SEGMENT_BYTES") {
        return v.parse().ok();
    }
    None
}

/// Aborts the process if the crash point `name` is armed.
#[inline(always)]
pub fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    if imp::armed(name) {
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// Writes `buf` at `offset`; if the crash point `name` is armed, writes only
/// the first half and aborts (a torn write).
#[inline(always)]
pub fn write_at(
    name: &str,
    file: &dyn crate::base::io::FileIo,
    buf: &[u8],
    offset: u64,
) -> std::io::Result<()> {
    #[cfg(feature = "failpoints")]
    if imp::armed(name) {
        let _ = file.write_all_at(&buf[..buf.len() / 2], offset);
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
    file.write_all_at(buf, offset)
}

/// For the bounded-memory tests: with `SPOOLMQ_PEAK_FILE` set, writes this
/// process's peak RSS (the `VmHWM:` line of `/proc/self/status`) to that
/// file. `wait4`'s `ru_maxrss` cannot be used for it: Linux counts in it the
/// peak of the process that spawned this one (the test binary, holding
/// other tests' buffers), while `VmHWM` is the peak of this program's own
/// memory since it started. A no-op without the `failpoints` feature.
pub fn report_peak() {
    #[cfg(feature = "failpoints")]
    if let Some(path) = std::env::var_os("SPOOLMQ_PEAK_FILE")
        && let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
    {
        let _ = std::fs::write(path, line);
    }
}
