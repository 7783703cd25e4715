//! Deliveries to one account pipeline: concurrent deliveries get distinct,
//! increasing UIDs, share group commits (fewer commits than records), are
//! all there after a reopen (from the log, and from a checkpoint taken
//! under load), respect the quota with appends in flight, and mix safely
//! with flag changes and expunges.

use std::collections::BTreeSet;

use cairn_shards::local::block_on;
use cairn_storage::mailbox::{FlagAction, Flags, MailError};
use cairn_storage::shard_store::ShardStore;

const ALICE: &str = "alice@example.org";

fn body(i: usize) -> Vec<u8> {
    format!("Subject: m{i}\r\n\r\n{}", "x".repeat(i * 7 % 3000)).into_bytes()
}

/// Delivers `n` distinct messages to ALICE's INBOX concurrently.
async fn deliver_many(
    store: &ShardStore,
    from: usize,
    n: usize,
) -> Vec<Result<cairn_storage::mailbox::Delivered, MailError>> {
    let tasks: Vec<_> = (from..from + n)
        .map(|i| {
            let mail = store.mail.clone();
            cairn_shards::spawn(async move {
                let rcpt = [(ALICE.to_string(), "INBOX".to_string())];
                let mut r = mail.deliver(&rcpt, &body(i), i as i64).await;
                r.pop().expect("one result")
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await);
    }
    out
}

#[test]
fn concurrent_deliveries_to_one_account_share_commits_and_survive_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
        store.mail.create_account(ALICE, 0, 0).await.expect("account");
        let before = store.log.stats();
        let results = deliver_many(&store, 0, 64).await;
        let uids: Vec<u32> = results
            .iter()
            .map(|r| r.as_ref().expect("delivered").uid)
            .collect();
        let distinct: BTreeSet<u32> = uids.iter().copied().collect();
        assert_eq!(distinct.len(), 64, "{uids:?}");
        assert_eq!(distinct, (1..=64).collect(), "no gaps without failures");
        let after = store.log.stats();
        let (commits, records) = (
            after.commits - before.commits,
            after.records - before.records,
        );
        assert_eq!(records, 128, "one body and one append each");
        assert!(
            commits < records / 2,
            "deliveries to one account shared group commits: {commits} commits for {records} records"
        );

        let messages = store.mail.messages(ALICE, "INBOX").expect("messages");
        assert_eq!(messages.len(), 64);
        // MODSEQs increase with UIDs: applied in log order.
        assert!(messages.windows(2).all(|w| w[0].modseq < w[1].modseq));
        for m in &messages {
            let i = m.internal_date as usize;
            assert_eq!(store.mail.body(&m.blob).await.expect("body"), body(i));
            assert_eq!(
                uids.get(i).copied(),
                Some(m.uid),
                "message {i} has the UID its delivery returned"
            );
        }
        let status = store.mail.status(ALICE, "INBOX").expect("status");
        assert_eq!(status.uidnext, 65);
        let (used_bytes, _, used_messages, _) = store.mail.quota(ALICE).expect("quota");
        assert_eq!(used_messages, 64);
        assert_eq!(
            used_bytes,
            (0..64).map(|i| body(i).len() as u64).sum::<u64>()
        );
        let snapshot = store.mail.snapshot();
        store.log.close().await;

        let (store, report) = ShardStore::open(tmp.path(), 0).await.expect("reopen");
        assert!(report.damaged.is_empty());
        assert_eq!(store.mail.snapshot(), snapshot);
        let messages = store.mail.messages(ALICE, "INBOX").expect("messages");
        for m in &messages {
            let i = m.internal_date as usize;
            assert_eq!(store.mail.body(&m.blob).await.expect("body"), body(i));
        }
        // The same bodies again are stored once: deduplicated.
        let blobs = store.mail.blob_count();
        let again = deliver_many(&store, 0, 8).await;
        assert!(again.iter().all(Result::is_ok), "{again:?}");
        assert_eq!(store.mail.blob_count(), blobs);
        store.log.close().await;
    })
    .expect("executor");
}

#[test]
fn a_checkpoint_under_pipelined_load_restores_exactly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
        store
            .mail
            .create_account(ALICE, 0, 0)
            .await
            .expect("account");
        let load = {
            let tasks: Vec<_> = (0..4)
                .map(|k| {
                    let (tmp_store, from) = (&store, k * 40);
                    deliver_many(tmp_store, from, 40)
                })
                .collect();
            tasks
        };
        let mut checkpoints = 0;
        let (results, _) = futures_lite::future::zip(
            async {
                let mut all = Vec::new();
                for batch in load {
                    all.extend(batch.await);
                }
                all
            },
            async {
                for _ in 0..3 {
                    store.checkpoint().await.expect("checkpoint");
                    checkpoints += 1;
                }
            },
        )
        .await;
        assert_eq!(checkpoints, 3);
        assert!(results.iter().all(Result::is_ok));
        let snapshot = store.mail.snapshot();
        store.log.close().await;
        let (store, report) = ShardStore::open(tmp.path(), 0).await.expect("reopen");
        assert!(report.checkpoint.is_some(), "restored from a checkpoint");
        assert_eq!(store.mail.snapshot(), snapshot);
        for m in store.mail.messages(ALICE, "INBOX").expect("messages") {
            let i = m.internal_date as usize;
            assert_eq!(store.mail.body(&m.blob).await.expect("body"), body(i));
        }
        store.log.close().await;
    })
    .expect("executor");
}

#[test]
fn the_quota_counts_appends_in_flight() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
        store
            .mail
            .create_account(ALICE, 0, 10)
            .await
            .expect("account");
        let results = deliver_many(&store, 0, 25).await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 10, "{results:?}");
        assert!(results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, MailError::OverQuota { .. })));
        assert_eq!(
            store.mail.status(ALICE, "INBOX").expect("status").messages,
            10
        );
        // Room again after an expunge.
        let uids: Vec<u32> = store
            .mail
            .messages(ALICE, "INBOX")
            .expect("messages")
            .iter()
            .map(|m| m.uid)
            .take(3)
            .collect();
        let mut deleted = Flags::default();
        deleted.system |= cairn_storage::mailbox::flags::DELETED;
        store
            .mail
            .store_flags(ALICE, "INBOX", &uids, FlagAction::Add, &deleted, None)
            .await
            .expect("flag");
        assert_eq!(
            store
                .mail
                .expunge(ALICE, "INBOX", None)
                .await
                .expect("expunge"),
            uids
        );
        let results = deliver_many(&store, 100, 5).await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        store.log.close().await;
    })
    .expect("executor");
}

#[test]
fn flag_changes_and_expunges_interleave_with_pipelined_deliveries() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("open");
        store
            .mail
            .create_account(ALICE, 0, 0)
            .await
            .expect("account");
        let mut deleted = Flags::default();
        deleted.system |= cairn_storage::mailbox::flags::DELETED;
        let (results, gone) = futures_lite::future::zip(deliver_many(&store, 0, 60), async {
            let mut gone = Vec::new();
            for _ in 0..10 {
                let uids: Vec<u32> = store
                    .mail
                    .messages(ALICE, "INBOX")
                    .expect("messages")
                    .iter()
                    .map(|m| m.uid)
                    .filter(|u| u % 2 == 0)
                    .collect();
                store
                    .mail
                    .store_flags(ALICE, "INBOX", &uids, FlagAction::Add, &deleted, None)
                    .await
                    .expect("flags");
                gone.extend(
                    store
                        .mail
                        .expunge(ALICE, "INBOX", None)
                        .await
                        .expect("expunge"),
                );
                futures_lite::future::yield_now().await;
            }
            gone
        })
        .await;
        assert!(results.iter().all(Result::is_ok));
        let left: Vec<u32> = store
            .mail
            .messages(ALICE, "INBOX")
            .expect("messages")
            .iter()
            .map(|m| m.uid)
            .collect();
        assert_eq!(left.len() + gone.len(), 60);
        assert!(gone.iter().all(|u| u % 2 == 0));
        let snapshot = store.mail.snapshot();
        store.log.close().await;
        let (store, _) = ShardStore::open(tmp.path(), 0).await.expect("reopen");
        assert_eq!(store.mail.snapshot(), snapshot);
        store.log.close().await;
    })
    .expect("executor");
}
