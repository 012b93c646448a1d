//! A spool of each local store made by the previous release (commit 42ec2a7,
//! `tests/fixtures/release-42ec2a7.tar.gz`: queue `work` with 3 ready
//! messages, 1 leased for ten years, 1 dead letter with its failure, 1
//! delayed ten years and 1 acked; the fs one with its last changes still in
//! the WAL) opens in this release and keeps every message, id, receipt and
//! state. Commands that only read change nothing; the first push rewrites
//! `.store` (as version 3 now; sqlite: schema 6), and then a message with
//! a TTL (a long record) is kept beside the old ones.
//!
//! And a spool of each local store made by the release before unique keys
//! (commit ad21395, `tests/fixtures/release-ad21395.tar.gz`, `.store`
//! version 2, sqlite schema 5: queue `work` with 3 ready messages, one
//! with a TTL of ten years, 1 leased for ten years, 1 failed dead letter,
//! 1 expired dead letter, 1 delayed ten years and 1 acked; the fs one with
//! its last changes in the WAL) opens the same way, and the first keyed
//! push of this release makes it version 3 (sqlite: schema 6).
//!
//! How the second fixture was made, with that commit's binary, for each
//! STORE (fs, sqlite), `SPOOLMQ_STORE=STORE` and `--dir STORE`:
//! `push work leased acked failing`; `push work --ttl 1s expires`;
//! `push work r1 r2`; `push work --ttl 3650d r-ttl`;
//! `push work --delay 3650d delayed`; `pop work --count 3 --lease 3650d
//! --max-attempts 1`, then ack `acked` and `nack --reason boom
//! --max-attempts 1` `failing`; two seconds on, `pop work` (which marks
//! `expires` expired and leases r1) and a nack of r1; then `export work`,
//! `stats work --json` and the leased receipt into the files beside.

//! And a spool of each local store made by the release before priorities
//! (commit a896c22, `tests/fixtures/release-a896c22.tar.gz`, `.store`
//! version 3, sqlite schema 6: queue `work` as the second fixture's, plus
//! a message waiting with a unique key and an acked one whose key is held
//! for ten years), made the same way and then: `push work --key k-held
//! keyed`; `push work --key k-window --unique-for 3650d windowed`, and
//! after the expiring pop, `pop work --count 10 --lease 1h` (r1, r2,
//! r-ttl, keyed, windowed), an ack of `windowed` and a nack of the rest.
//! It opens the same way, both keys stay held, and the first push with a
//! priority of this release makes it version 4 (sqlite: schema 7) and is
//! served first.
//!
//! And a spool of each local store made by the release before ordered
//! groups (commit e3749d0, `tests/fixtures/release-e3749d0.tar.gz`,
//! `.store` version 4, sqlite schema 7: queue `work` as the third
//! fixture's, plus messages pushed with priorities 5 (acked), 2 with a key
//! (nacked once, then acked) and 7 (waiting), the fs one with lane files),
//! made by `tests/fixtures/make-e3749d0.sh` with that commit's binary. It
//! opens the same way, its keys stay held and its priorities served first,
//! and the first push in a group of this release makes it version 5
//! (sqlite: schema 8).

use crate::env_fs as common;

use std::path::{Path, PathBuf};

use common::*;

struct Old {
    tmp: tempfile::TempDir,
    store: &'static str,
}

impl Old {
    fn open(store: &'static str) -> Old {
        Old::of("release-42ec2a7.tar.gz", store)
    }

    fn of(fixture_name: &str, store: &'static str) -> Old {
        Old {
            tmp: fixture(fixture_name),
            store,
        }
    }

    /// `.store` and the sqlite schema are this release's (the first push did it).
    #[track_caller]
    fn is_this_releases(&self) {
        let store = self.store;
        let record = std::fs::read_to_string(self.dir().join(".store")).unwrap();
        assert!(
            record.starts_with(&format!("spoolmq-store 5 {store} ")),
            "{store}: {record:?}"
        );
        if store == "sqlite" {
            let conn = rusqlite::Connection::open(self.dir().join(".spool.db")).unwrap();
            let v: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(v, 8, "the first write brought the schema up to date");
        }
    }

    /// Every message of `recorded` is exported as it was but the leased one
    /// (acked since), and one new message last, `new_id`: returned.
    #[track_caller]
    fn kept_all_but_the_leased(
        &self,
        recorded: &[serde_json::Value],
        new_id: &str,
    ) -> serde_json::Value {
        let store = self.store;
        let after = self.export();
        let want: Vec<&serde_json::Value> =
            recorded.iter().filter(|m| m["state"] != "leased").collect();
        assert_eq!(after.len(), want.len() + 1, "{store}: {after:?}");
        for (a, w) in after.iter().zip(&want) {
            assert_eq!(&a, w, "{store}");
        }
        let last = after.last().unwrap().clone();
        assert_eq!(last["id"].as_str(), Some(new_id));
        last
    }

    /// Commands that only read see the `n` messages the fixture recorded,
    /// the counters `counts` and a clean fsck, and change no byte. Returns
    /// the recorded export.
    #[track_caller]
    fn reads_as_it_was(&self, n: usize, counts: &[(&str, u64)]) -> Vec<serde_json::Value> {
        let store = self.store;
        let recorded = self.recorded_export();
        assert_eq!(recorded.len(), n, "{store}: the fixture's messages");
        let before = files(&self.dir());
        assert_eq!(self.export(), recorded, "{store}: export");
        let st = self.run(&["stats", "work", "--json"]);
        assert_counts(&st.ok().json()[0], counts);
        self.fsck_is_clean();
        assert!(
            files(&self.dir()) == before,
            "{store}: reading changed the spool"
        );
        recorded
    }

    /// `retry work` (which must bring back `dead` dead letters), then one
    /// pop of up to 10: the bodies popped.
    #[track_caller]
    fn retried_then_popped(&self, dead: usize) -> Vec<String> {
        let retried = self.run(&["retry", "work"]);
        assert_eq!(
            retried.ok().stdout_str(),
            format!("{dead}\n"),
            "{}",
            self.store
        );
        let out = self.run(&["pop", "work", "--count", "10", "--json"]);
        out.ok()
            .json()
            .iter()
            .map(|m| body(m).to_string())
            .collect()
    }

    fn recorded_export(&self) -> Vec<serde_json::Value> {
        self.recorded("export", ".jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join(self.store)
    }

    /// `spoolmq ARGS` on the spool, with the store its `.store` records.
    fn run(&self, args: &[&str]) -> Out {
        let mut cmd = spoolmq(&self.dir());
        cmd.env_remove("SPOOLMQ_STORE").args(args);
        run(&mut cmd)
    }

    /// A file the previous release wrote beside the spools.
    fn recorded(&self, what: &str, ext: &str) -> String {
        let name = format!("{what}-{}{ext}", self.store);
        std::fs::read_to_string(self.tmp.path().join(name)).unwrap()
    }

    #[track_caller]
    fn fsck_is_clean(&self) {
        let fsck = self.run(&["fsck"]);
        let (out, err) = (fsck.stdout_str(), &fsck.stderr);
        assert_eq!(fsck.code, 0, "{}: {out}{err}", self.store);
    }

    fn export(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["export", "work"]);
        out.ok();
        out.json()
    }
}

/// Every file of the spool, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = Vec::new();
    for e in walkdir(dir) {
        v.push((e.clone(), std::fs::read(&e).unwrap()));
    }
    v.sort();
    v
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_spool_of_the_previous_release_keeps_every_message_id_receipt_and_state() {
    for store in ["fs", "sqlite"] {
        let old = Old::open(store);
        let recorded = old.recorded_export();
        assert_eq!(recorded.len(), 6, "{store}: the fixture's messages");
        // Commands that only read see it as the previous release did, and
        // change no byte (an older spoolmq can still open it).
        let before = files(&old.dir());
        assert_eq!(old.export(), recorded, "{store}: export");
        let st = old.run(&["stats", "work", "--json"]);
        assert_counts(
            &st.ok().json()[0],
            &[
                ("ready", 3),
                ("leased", 1),
                ("delayed", 1),
                ("dead", 1),
                ("expired", 0),
                ("pushed", 7),
                ("acked", 1),
            ],
        );
        old.run(&["peek", "work", "--dead"]).ok();
        let dead = recorded.iter().find(|m| m["state"] == "dead").unwrap();
        let v = old.run(&["inspect", "work", dead["id"].as_str().unwrap(), "--json"]);
        assert_eq!(v.ok().json()[0]["last_failure"]["text"], "boom", "{store}");
        old.fsck_is_clean();
        assert!(
            files(&old.dir()) == before,
            "{store}: reading changed the spool"
        );

        // The receipt the previous release handed out still acks its message.
        let receipt = old.recorded("leased-receipt", "");
        old.run(&["ack", "work", receipt.trim()]).ok();
        // A push of this release: the record says so, and a TTL is kept.
        let record = std::fs::read_to_string(old.dir().join(".store")).unwrap();
        assert!(
            record.starts_with("spoolmq-store 1 "),
            "{store}: {record:?}"
        );
        let out = old.run(&["push", "work", "--ttl", "1h", "new"]);
        let new_id = out.ok().lines().remove(0);
        old.is_this_releases();
        // Every old message is as it was (but the acked one), and the new
        // one has its TTL.
        let last = old.kept_all_but_the_leased(&recorded, &new_id);
        assert_eq!(last["ttl_ms"], 3_600_000, "{store}: {last}");
        // The old messages deliver as before, the new one after them.
        let got = old.retried_then_popped(1);
        assert_eq!(got, ["dead", "r1", "r2", "r3", "new"], "{store}");
        old.fsck_is_clean();
    }
}

#[test]
fn a_spool_of_the_release_before_unique_keys_keeps_every_message_and_takes_keys() {
    for store in ["fs", "sqlite"] {
        let old = Old::of("release-ad21395.tar.gz", store);
        let recorded = old.reads_as_it_was(
            7,
            &[
                ("ready", 3),
                ("leased", 1),
                ("delayed", 1),
                ("dead", 2),
                ("expired", 1),
                ("pushed", 8),
                ("acked", 1),
            ],
        );
        let expired = recorded.iter().find(|m| m["expired"] == true).unwrap();
        let v = old.run(&["inspect", "work", expired["id"].as_str().unwrap(), "--json"]);
        assert_eq!(v.ok().json()[0]["expired"], true, "{store}");
        // The receipt that release handed out still acks its message.
        let receipt = old.recorded("leased-receipt", "");
        old.run(&["ack", "work", receipt.trim()]).ok();
        assert!(
            std::fs::read_to_string(old.dir().join(".store"))
                .unwrap()
                .starts_with(&format!("spoolmq-store 2 {store} ")),
            "{store}: an ack writes no new format"
        );
        // A keyed push of this release: the record says so, the key holds.
        let out = old.run(&["push", "work", "--key", "k", "new"]);
        let new_id = out.ok().lines().remove(0);
        old.is_this_releases();
        let dup = old.run(&["push", "work", "--key", "k", "again"]);
        assert_eq!(
            dup.ok().lines(),
            std::slice::from_ref(&new_id),
            "{store}: the key is held"
        );
        // Every old message is as it was (but the acked one), the new one last.
        let last = old.kept_all_but_the_leased(&recorded, &new_id);
        assert!(last["key_hash"].is_string(), "{store}: {last}");
        // Both dead letters come back; everything delivers in order, the
        // TTL of ten years kept.
        let got = old.retried_then_popped(2);
        assert_eq!(
            got,
            ["failing", "expires", "r1", "r2", "r-ttl", "new"],
            "{store}"
        );
        old.fsck_is_clean();
    }
}

#[test]
fn a_spool_of_the_release_before_priorities_keeps_every_message_and_key_and_takes_priorities() {
    for store in ["fs", "sqlite"] {
        let old = Old::of("release-a896c22.tar.gz", store);
        let recorded = old.reads_as_it_was(
            8,
            &[
                ("ready", 4),
                ("leased", 1),
                ("delayed", 1),
                ("dead", 2),
                ("expired", 1),
                ("pushed", 10),
                ("acked", 2),
            ],
        );
        // The receipt that release handed out still acks its message.
        let receipt = old.recorded("leased-receipt", "");
        old.run(&["ack", "work", receipt.trim()]).ok();
        // Both keys are held: by the waiting message, and in the acked
        // one's window.
        let keyed = recorded.iter().find(|m| m["body"] == "keyed").unwrap();
        for key in ["k-held", "k-window"] {
            let out = old.run(&["push", "work", "--key", key, "again", "--json"]);
            assert_eq!(out.ok().json()[0]["duplicate"], true, "{store}: {key}");
        }
        let out = old.run(&["push", "work", "--key", "k-held", "again"]);
        assert_eq!(out.ok().lines(), [keyed["id"].as_str().unwrap()], "{store}");
        // A push with a priority of this release: the record says so.
        let out = old.run(&["push", "work", "--priority", "9", "urgent"]);
        let new_id = out.ok().lines().remove(0);
        old.is_this_releases();
        let last = old.kept_all_but_the_leased(&recorded, &new_id);
        assert_eq!(last["priority"], 9, "{store}: {last}");
        // Dead letters come back; the urgent one is served first, the old
        // ones after it in their order.
        let got = old.retried_then_popped(2);
        assert_eq!(
            got,
            ["urgent", "failing", "expires", "r1", "r2", "r-ttl", "keyed"],
            "{store}"
        );
        old.fsck_is_clean();
    }
}

#[test]
fn a_spool_of_the_release_before_groups_keeps_every_message_key_and_priority_and_takes_groups() {
    for store in ["fs", "sqlite"] {
        let old = Old::of("release-e3749d0.tar.gz", store);
        let recorded = old.reads_as_it_was(
            9,
            &[
                ("ready", 5),
                ("leased", 1),
                ("delayed", 1),
                ("dead", 2),
                ("expired", 1),
                ("pushed", 13),
                ("acked", 4),
            ],
        );
        let receipt = old.recorded("leased-receipt", "");
        old.run(&["ack", "work", receipt.trim()]).ok();
        // The waiting message's key and the acked one's window are held;
        // the key of the one acked without a window is free.
        for (key, held) in [("k-held", true), ("k-window", true)] {
            let out = old.run(&["push", "work", "--key", key, "again", "--json"]);
            assert_eq!(out.ok().json()[0]["duplicate"], held, "{store}: {key}");
        }
        let waiting = recorded.iter().find(|m| m["body"] == "waiting-7").unwrap();
        assert_eq!(waiting["priority"], 7, "{store}");
        // A push in a group of this release: the record says so.
        let out = old.run(&["push", "work", "--group", "g", "grouped"]);
        let new_id = out.ok().lines().remove(0);
        old.is_this_releases();
        let last = old.kept_all_but_the_leased(&recorded, &new_id);
        assert_eq!(last["group_hash"], "f352b8786350040e", "{store}: {last}");
        // Dead letters come back; the priority 7 one is served first, the
        // rest in their order, the grouped one among them.
        let got = old.retried_then_popped(2);
        assert_eq!(
            got,
            [
                "waiting-7",
                "failing",
                "expires",
                "r1",
                "r2",
                "r-ttl",
                "keyed",
                "grouped"
            ],
            "{store}"
        );
        old.fsck_is_clean();
    }
}
