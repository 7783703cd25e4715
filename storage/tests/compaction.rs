//! Compaction: dead bodies and covered log records are reclaimed from
//! sealed segments, live bodies read back byte-identical before and after
//! a reopen, bodies are counted by the messages that refer to them, and
//! writers keep appending while a large segment is compacted.

mod compaction_support;

use std::cell::Cell;
use std::rc::Rc;

use cairn_shards::local::block_on;
use cairn_storage::mailbox::{flags, FlagAction, Flags};
use cairn_storage::shard_store::CompactionConfig;
use compaction_support::{all_bodies, disk_usage, open};

const SEGMENT: u64 = 256 * 1024;

fn body(i: usize) -> Vec<u8> {
    let filler: String = (0..(2000 + i * 37 % 3000))
        .map(|k| (b'a' + ((i + k) % 26) as u8) as char)
        .collect();
    format!("Subject: message {i}\r\nX-Id: {i}\r\n\r\n{filler}\r\n").into_bytes()
}

fn account(a: usize) -> String {
    format!("user{a}@example.org")
}

async fn delete_uids(store: &cairn_storage::shard_store::ShardStore, acct: &str, uids: &[u32]) {
    store
        .mail
        .store_flags(
            acct,
            "INBOX",
            uids,
            FlagAction::Add,
            &Flags::new(flags::DELETED, &[]),
            None,
        )
        .await
        .expect("flag");
    store
        .mail
        .expunge(acct, "INBOX", None)
        .await
        .expect("expunge");
}

#[test]
fn compaction_reclaims_dead_bytes_and_keeps_every_live_body() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    block_on(async {
        let store = open(data, SEGMENT).await;
        for a in 0..4 {
            store
                .mail
                .create_account(&account(a), 0, 0)
                .await
                .expect("account");
        }
        // 400 deliveries; every tenth goes to two accounts (one body).
        for i in 0..400 {
            let mut rcpts = vec![(account(i % 4), "INBOX".to_string())];
            if i % 10 == 0 {
                rcpts.push((account((i + 1) % 4), "INBOX".to_string()));
            }
            for r in store.mail.deliver(&rcpts, &body(i), i as i64).await {
                r.expect("deliver");
            }
        }
        // Account 3 goes entirely; the others keep every fifth message.
        store
            .mail
            .delete_account(&account(3))
            .await
            .expect("delete account");
        for a in 0..3 {
            let uids: Vec<u32> = store
                .mail
                .messages(&account(a), "INBOX")
                .expect("messages")
                .iter()
                .map(|m| m.uid)
                .filter(|u| u % 5 != 0)
                .collect();
            delete_uids(&store, &account(a), &uids).await;
        }
        let want = all_bodies(&store).await;
        let live_bytes: u64 = {
            let mut seen = std::collections::HashSet::new();
            want.values()
                .filter(|b| seen.insert((*b).clone()))
                .map(|b| b.len() as u64)
                .sum()
        };
        let (before, segments_before) = disk_usage(data);
        let sizes_before: std::collections::HashMap<u64, u64> =
            store.log.segments().expect("segments").into_iter().collect();

        let report = store
            .compact(&CompactionConfig::default())
            .await
            .expect("compaction");
        let (after, segments_after) = disk_usage(data);
        let removed_sizes: u64 = report.removed.iter().map(|s| sizes_before[s]).sum();
        println!(
            "segments {segments_before} -> {segments_after}, bytes {before} -> {after}, \
             reclaimed {} in {} segments, {} bodies ({} bytes) moved, {} forgotten, live bodies {live_bytes} bytes",
            report.bytes_reclaimed,
            report.removed.len(),
            report.moved,
            report.moved_bytes,
            report.forgotten
        );
        assert!(!report.removed.is_empty(), "nothing removed: {report:?}");
        assert_eq!(report.bytes_reclaimed, removed_sizes, "reclaimed = removed files");
        assert!(report.forgotten > 0, "dead bodies forgotten");
        // What is left: the live bodies (moved or in segments that stayed),
        // the active segment's records, and block padding.
        let grew = after + report.bytes_reclaimed - before;
        assert!(
            grew <= report.moved_bytes + report.moved * 52 + 2 * 4096,
            "the log grew by {grew} bytes beyond the copies of {} bytes",
            report.moved_bytes
        );
        assert!(
            after < before / 3,
            "only {before} -> {after} bytes for ~80% dead mail"
        );
        assert!(after >= live_bytes, "live bodies are still stored");
        assert_eq!(store.log.stats().segments_removed, report.removed.len() as u64);

        assert_eq!(all_bodies(&store).await, want, "bodies after compaction");
        // Writes go on after compaction, and a second compaction finds
        // nothing more to do (or little).
        let d = store
            .mail
            .deliver(&[(account(0), "INBOX".into())], &body(1000), 0)
            .await;
        assert!(d[0].is_ok());
        let mut want = all_bodies(&store).await;
        let before_reopen = store.mail.snapshot();
        store.log.close().await;

        let store = open(data, SEGMENT).await;
        assert_eq!(store.mail.snapshot(), before_reopen, "state after reopen");
        assert_eq!(all_bodies(&store).await, want, "bodies after reopen");
        // The account deleted before can come back empty; nothing refers
        // to the old bodies.
        store
            .mail
            .create_account(&account(3), 0, 0)
            .await
            .expect("account again");
        let again = store
            .compact(&CompactionConfig {
                min_dead_fraction: 0.0,
                ..CompactionConfig::default()
            })
            .await
            .expect("compaction");
        println!("second compaction: {again:?}");
        want = all_bodies(&store).await;
        store.log.close().await;
        let store = open(data, SEGMENT).await;
        assert_eq!(all_bodies(&store).await, want, "bodies after a second compaction");
        store.log.close().await;
    })
    .expect("executor");
}

#[test]
fn a_body_lives_while_any_message_refers_to_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    block_on(async {
        let store = open(data, 16 * 1024).await;
        let rcpts: Vec<(String, String)> = (0..3).map(|a| (account(a), "INBOX".into())).collect();
        for (a, _) in &rcpts {
            store.mail.create_account(a, 0, 0).await.expect("account");
        }
        let shared = body(7);
        for r in store.mail.deliver(&rcpts, &shared, 0).await {
            r.expect("deliver");
        }
        let hash = store.mail.messages(&account(0), "INBOX").expect("messages")[0]
            .blob
            .hash;
        assert_eq!(store.mail.blob_references(&hash), 3);
        store
            .mail
            .copy(&account(0), "INBOX", "Archive", &[1], false)
            .await
            .expect("copy");
        assert_eq!(store.mail.blob_references(&hash), 4);
        // Fill segments so that the shared body lies in a sealed one.
        for i in 0..30 {
            store
                .mail
                .append(&account(2), "Junk", &body(100 + i), Flags::default(), 0)
                .await
                .expect("append");
        }
        delete_uids(&store, &account(0), &[1]).await;
        store
            .mail
            .delete_mailbox(&account(0), "Archive")
            .await
            .expect("delete mailbox");
        store
            .mail
            .delete_account(&account(1))
            .await
            .expect("delete account");
        assert_eq!(store.mail.blob_references(&hash), 1);
        store
            .mail
            .delete_mailbox(&account(2), "Junk")
            .await
            .expect("delete junk");
        let report = store
            .compact(&CompactionConfig::default())
            .await
            .expect("compaction");
        assert!(report.moved >= 1 && report.forgotten >= 20, "{report:?}");
        let m = &store.mail.messages(&account(2), "INBOX").expect("messages")[0];
        assert_eq!(store.mail.body(&m.blob).await.expect("body"), shared);
        store.log.close().await;

        let store = open(data, 16 * 1024).await;
        assert_eq!(
            store.mail.blob_references(&hash),
            1,
            "counts rebuilt at start"
        );
        let m = &store.mail.messages(&account(2), "INBOX").expect("messages")[0];
        assert_eq!(store.mail.body(&m.blob).await.expect("body"), shared);
        delete_uids(&store, &account(2), &[m.uid]).await;
        assert_eq!(store.mail.blob_references(&hash), 0);
        // Seal the segment holding it: the dead body is forgotten, the
        // segment removed.
        let mut i = 0;
        let active = store.log.active_segment();
        while store.log.active_segment() == active {
            store
                .mail
                .append(&account(0), "Drafts", &body(200 + i), Flags::default(), 0)
                .await
                .expect("append");
            i += 1;
        }
        let report = store
            .compact(&CompactionConfig {
                min_dead_fraction: 0.0,
                ..CompactionConfig::default()
            })
            .await
            .expect("compaction");
        assert!(report.forgotten >= 1, "{report:?}");
        assert!(report.removed.contains(&active), "{report:?}");
        store.log.close().await;
    })
    .expect("executor");
}

#[test]
fn writers_keep_appending_while_a_large_segment_is_compacted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    block_on(async {
        const BIG: u64 = 16 * 1024 * 1024;
        let store = open(data, BIG).await;
        store
            .mail
            .create_account("big@example.org", 0, 0)
            .await
            .expect("account");
        store
            .mail
            .create_account("w@example.org", 0, 0)
            .await
            .expect("account");
        // ~15 MiB of live bodies in segment 0, then roll to segment 1.
        let mut i = 0;
        while store.log.active_segment() == 0 {
            let mut b = body(i);
            b.resize(60 * 1024, b'x' + (i % 3) as u8);
            b.extend_from_slice(format!("{i}").as_bytes());
            store
                .mail
                .append("big@example.org", "INBOX", &b, Flags::default(), 0)
                .await
                .expect("append");
            i += 1;
        }
        let want = all_bodies(&store).await;
        let done = Rc::new(Cell::new(false));
        let compaction = {
            let (store, done) = (store.clone(), done.clone());
            cairn_shards::spawn(async move {
                let r = store
                    .compact(&CompactionConfig {
                        min_dead_fraction: 0.0,
                        batch_bytes: 256 * 1024,
                    })
                    .await;
                done.set(true);
                r
            })
        };
        let mut during = 0u64;
        let mut n = 0;
        while !done.get() {
            store
                .mail
                .append(
                    "w@example.org",
                    "INBOX",
                    &body(5000 + n),
                    Flags::default(),
                    0,
                )
                .await
                .expect("append during compaction");
            n += 1;
            if !done.get() {
                during += 1;
            }
        }
        let report = compaction.await.expect("compaction");
        println!(
            "{during} appends completed during a compaction moving {} bytes",
            report.moved_bytes
        );
        assert!(report.moved_bytes > 10 * 1024 * 1024, "{report:?}");
        assert_eq!(report.removed, vec![0]);
        assert!(
            during >= 5,
            "only {during} appends completed during compaction"
        );
        let mut got = all_bodies(&store).await;
        got.retain(|(a, _, _), _| a == "big@example.org");
        assert_eq!(got, want);
        store.log.close().await;
    })
    .expect("executor");
}
