//! MULTIAPPEND in the store (`MailStore::append_many`): consecutive UIDs at
//! one MODSEQ, the quota checked for the whole batch (appends in flight
//! counted), all or none on a refusal and across a crash that tears the
//! batch's record, one wake-up for watchers; a body carried twice in a
//! batch is written once and referred to twice.

use std::path::Path;

use cairn_shards::local::block_on;
use cairn_storage::log::{LogConfig, RecoveryReport, SegmentLog};
use cairn_storage::mailbox::{flags, Flags, MailError, MailRecovery, MailStore};
use cairn_storage::shard_store::ShardStore;
use sha2::{Digest, Sha256};

mod common;
use common::{add_alice, compact_all, deliver, expunge, ALICE};

const ACCOUNT: &str = "multi@example.org";

async fn open(dir: &Path) -> (MailStore, SegmentLog, RecoveryReport) {
    let mut recovery = MailRecovery::new();
    let (log, report) = SegmentLog::open(dir, LogConfig::default(), |r| {
        recovery
            .replay(r.kind, r.location, r.payload)
            .expect("replay")
    })
    .await
    .expect("open log");
    (recovery.finish(log.clone()), log, report)
}

/// Shard 0 under `data`, with segments small enough to seal in a test.
async fn open_shard(data: &Path) -> ShardStore {
    let config = LogConfig {
        segment_bytes: 16 * 1024,
        ..LogConfig::default()
    };
    let (store, _) = ShardStore::open_with(data, 0, config).await.expect("open");
    store
}

fn body(tag: &str, len: usize) -> Vec<u8> {
    let mut b = format!("Subject: {tag}\r\n\r\n").into_bytes();
    b.resize(len.max(b.len()), b'x');
    b
}

fn batch(bodies: &[Vec<u8>]) -> Vec<(&[u8], Flags, i64)> {
    bodies
        .iter()
        .map(|b| (b.as_slice(), Flags::new(flags::SEEN, &[]), 7))
        .collect()
}

/// Whether `watch` has resolved, without waiting.
fn fired(watch: &mut cairn_storage::notify::Changed) -> bool {
    futures_lite::future::block_on(futures_lite::future::poll_once(watch)).is_some()
}

#[test]
fn a_batch_gets_consecutive_uids_at_one_modseq_and_one_wake_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, log, _) = open(tmp.path()).await;
        store.create_account(ACCOUNT, 0, 0).await.expect("account");
        let first = store
            .append(ACCOUNT, "INBOX", &body("one", 50), Flags::default(), 0)
            .await
            .expect("append");
        let mut watch = store.watch(ACCOUNT);
        let bodies: Vec<Vec<u8>> = (0..3).map(|i| body(&format!("m{i}"), 100)).collect();
        let done = store
            .append_many(ACCOUNT, "inbox", &batch(&bodies))
            .await
            .expect("append_many");
        let uids: Vec<u32> = done.iter().map(|d| d.uid).collect();
        assert_eq!(uids, [2, 3, 4]);
        assert!(done.iter().all(|d| d.uidvalidity == first.uidvalidity));
        assert!(fired(&mut watch), "the batch wakes watchers");
        let messages = store.messages(ACCOUNT, "INBOX").expect("messages");
        assert_eq!(messages.len(), 4);
        let batched = &messages[1..];
        assert!(batched.iter().all(|m| m.modseq == batched[0].modseq));
        assert!(batched[0].modseq > messages[0].modseq);
        for (m, b) in batched.iter().zip(&bodies) {
            assert_eq!((m.internal_date, m.flags.seen()), (7, true));
            assert_eq!(&store.body(&m.blob).await.expect("body"), b);
        }
        let status = store.status(ACCOUNT, "INBOX").expect("status");
        assert_eq!(status.uidnext, 5);
        assert_eq!(status.highest_modseq, batched[0].modseq);
        // Nothing to append is no change.
        assert_eq!(store.append_many(ACCOUNT, "INBOX", &[]).await, Ok(vec![]));
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn a_batch_over_quota_or_with_a_bad_message_appends_none() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let (store, log, _) = open(tmp.path()).await;
        store
            .create_account(ACCOUNT, 1000, 0)
            .await
            .expect("account");
        // Over quota by the last message.
        let bodies = [body("a", 300), body("b", 300), body("c", 500)];
        let got = store.append_many(ACCOUNT, "INBOX", &batch(&bodies)).await;
        assert!(matches!(got, Err(MailError::OverQuota { .. })), "{got:?}");
        // Too many keywords on the second.
        let many: Vec<String> = (0..=flags::MAX_KEYWORDS).map(|i| format!("k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let small = [body("d", 10), body("e", 10)];
        let mut request = batch(&small);
        request[1].1 = Flags::new(0, &many);
        let got = store.append_many(ACCOUNT, "INBOX", &request).await;
        assert!(matches!(got, Err(MailError::TooManyKeywords(_))), "{got:?}");
        // A missing mailbox.
        let got = store.append_many(ACCOUNT, "Nowhere", &batch(&small)).await;
        assert!(matches!(got, Err(MailError::NoSuchMailbox(_))), "{got:?}");
        let status = store.status(ACCOUNT, "INBOX").expect("status");
        assert_eq!((status.messages, status.uidnext), (0, 1));
        assert_eq!(store.quota(ACCOUNT).expect("quota").0, 0);

        // A batch and a single append racing: the appends in flight count,
        // so that exactly one of them fits.
        let pair = [body("f", 300), body("g", 300)];
        let single = body("h", 500);
        let (many, one) = futures_lite::future::zip(
            store.append_many(ACCOUNT, "INBOX", &batch(&pair)),
            store.append(ACCOUNT, "INBOX", &single, Flags::default(), 0),
        )
        .await;
        assert!(many.is_ok() != one.is_ok(), "{many:?} {one:?}");
        let used = store.quota(ACCOUNT).expect("quota").0;
        assert!(used <= 1000, "{used}");
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn a_batch_torn_by_a_crash_leaves_none_and_a_whole_one_survives() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    block_on(async {
        let (store, log, _) = open(&dir).await;
        store.create_account(ACCOUNT, 0, 0).await.expect("account");
        let whole: Vec<Vec<u8>> = (0..3).map(|i| body(&format!("w{i}"), 200)).collect();
        store
            .append_many(ACCOUNT, "INBOX", &batch(&whole))
            .await
            .expect("whole batch");
        log.close().await;

        let (store, log, _) = open(&dir).await;
        let messages = store.messages(ACCOUNT, "INBOX").expect("messages");
        assert_eq!(messages.len(), 3, "a whole batch survives reopen");
        for (m, b) in messages.iter().zip(&whole) {
            assert_eq!(&store.body(&m.blob).await.expect("body"), b);
        }
        let before = store.snapshot();
        let torn: Vec<Vec<u8>> = (0..3).map(|i| body(&format!("t{i}"), 200)).collect();
        store
            .append_many(ACCOUNT, "INBOX", &batch(&torn))
            .await
            .expect("second batch");
        let end = log.settled_position().await;
        log.close().await;

        // A crash while the batch's record (the last one) was half written.
        let segment = dir.join(format!("{:016}.seg", end.segment));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .expect("open segment");
        f.set_len(end.offset - 5).expect("truncate");
        drop(f);

        let (store, log, report) = open(&dir).await;
        assert!(report.torn_tail.is_some(), "{report:?}");
        assert_eq!(store.snapshot(), before, "none of a torn batch is left");
        for b in &torn {
            let hash: [u8; 32] = Sha256::digest(b).into();
            assert_eq!(store.blob_references(&hash), 0, "its bodies are garbage");
        }
        // The UIDs it never took are given out again.
        let again = store
            .append_many(ACCOUNT, "INBOX", &batch(&torn[..2]))
            .await
            .expect("after recovery");
        let uids: Vec<u32> = again.iter().map(|d| d.uid).collect();
        assert_eq!(uids, [4, 5]);
        log.close().await;
    })
    .expect("executor");
}

#[test]
fn a_body_carried_twice_in_a_batch_is_written_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let store = open_shard(tmp.path()).await;
        add_alice(&store).await;
        let twice = body("twice", 4000);
        let bodies = [twice.clone(), body("once", 4000), twice.clone()];
        let before = store.log.stats();
        let done = store
            .mail
            .append_many(ALICE, "INBOX", &batch(&bodies))
            .await
            .expect("append_many");
        let after = store.log.stats();
        // Two bodies and the batch's operation.
        assert_eq!(after.records - before.records, 3);
        let written = after.bytes - before.bytes;
        assert!(written < 3 * 4000, "{written} bytes: a body written twice");
        let hash: [u8; 32] = Sha256::digest(&twice).into();
        assert_eq!(store.mail.blob_references(&hash), 2);
        let messages = store.mail.messages(ALICE, "INBOX").expect("messages");
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0].blob, messages[2].blob);
        for (m, b) in messages.iter().zip(&bodies) {
            assert_eq!(&store.mail.body(&m.blob).await.expect("body"), b);
        }

        // One copy expunged, the body's segment sealed and compacted: the
        // body is still referred to, so it is moved, not forgotten.
        expunge(&store, &[done[0].uid]).await;
        assert_eq!(store.mail.blob_references(&hash), 1);
        let segment = messages[0].blob.segment;
        for i in 0.. {
            if store.log.active_segment() > segment {
                break;
            }
            deliver(&store, &body(&format!("filler {i}"), 4000)).await;
        }
        let report = compact_all(&store).await;
        assert!(report.removed.contains(&segment), "{report:?}");
        store.log.close().await;

        let store = open_shard(tmp.path()).await;
        assert_eq!(store.mail.blob_references(&hash), 1);
        let messages = store.mail.messages(ALICE, "INBOX").expect("messages");
        let kept = messages
            .iter()
            .find(|m| m.uid == done[2].uid)
            .expect("the other copy");
        assert_eq!(store.mail.body(&kept.blob).await.expect("body"), twice);
        assert!(messages.iter().all(|m| m.uid != done[0].uid));
        store.log.close().await;
    })
    .expect("executor");
}
