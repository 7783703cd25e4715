//! Checkpoints: a shard reopened from its newest checkpoint plus the log
//! after it has exactly the state of a full replay; bad or unfinished
//! checkpoints are ignored without losing anything; a log opened after a
//! position does not read the segments before it.

use std::path::Path;

use cairn_shards::local::block_on;
use cairn_storage::checkpoint;
use cairn_storage::log::{LogConfig, SegmentLog};
use cairn_storage::mailbox::{FlagAction, Flags, State};
use cairn_storage::shard_store::{shard_dir, ShardStore};
use cairn_storage::table::Table;

struct Places;
impl Table for Places {
    const NAME: &'static str = "test-places";
    type Key = String;
    type Value = u32;
}

const SHARD: usize = 0;

fn body(account: usize, i: usize) -> Vec<u8> {
    format!("Subject: {account}-{i}\r\n\r\nbody of message {i} for {account}").into_bytes()
}

/// Writes a round of everything: accounts, messages, flags, expunges, a
/// mailbox, table puts and deletes.
async fn write_round(store: &ShardStore, round: usize) {
    for a in 0..3 {
        let account = format!("user{a}@example.org");
        if round == 0 {
            store
                .mail
                .create_account(&account, 0, 0)
                .await
                .expect("account");
        }
        for i in 0..5 {
            store
                .mail
                .append(
                    &account,
                    "INBOX",
                    &body(a, round * 10 + i),
                    Flags::default(),
                    i as i64,
                )
                .await
                .expect("append");
        }
        let uids: Vec<u32> = store
            .mail
            .messages(&account, "INBOX")
            .expect("messages")
            .iter()
            .map(|m| m.uid)
            .take(2)
            .collect();
        store
            .mail
            .store_flags(
                &account,
                "INBOX",
                &uids,
                FlagAction::Add,
                &Flags::new(cairn_storage::mailbox::flags::DELETED, &["work"]),
                None,
            )
            .await
            .expect("flags");
        store
            .mail
            .expunge(&account, "INBOX", None)
            .await
            .expect("expunge");
        store
            .mail
            .create_mailbox(&account, &format!("Round{round}"), None)
            .await
            .expect("mailbox");
        let mut batch = store.tables.batch();
        batch.put::<Places>(&format!("{account}/{round}"), &(round as u32));
        if round > 0 {
            batch.delete::<Places>(&format!("{account}/{}", round - 1));
        }
        store.tables.commit(batch).await.expect("table");
    }
}

type Seen = (State, Vec<(String, u32)>);

fn seen(store: &ShardStore) -> Seen {
    (
        store.mail.snapshot(),
        store.tables.scan::<Places>(None, usize::MAX).expect("scan"),
    )
}

async fn bodies_read_back(store: &ShardStore) {
    let state = store.mail.snapshot();
    let mut n = 0;
    for account in state.accounts.values() {
        for mailbox in account.mailboxes.values() {
            for m in mailbox.messages.values() {
                let b = store.mail.body(&m.blob).await.expect("body");
                assert!(b.starts_with(b"Subject: "));
                n += 1;
            }
        }
    }
    assert!(n > 0);
}

fn checkpoints(data: &Path) -> Vec<std::path::PathBuf> {
    checkpoint::list(&shard_dir(data, SHARD))
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

#[test]
fn reopening_from_a_checkpoint_equals_a_full_replay() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    block_on(async {
        let (store, _) = ShardStore::open(data, SHARD).await.expect("open");
        write_round(&store, 0).await;
        let path = store.checkpoint().await.expect("checkpoint");
        assert!(path.extension().is_some_and(|e| e == "ckpt"));
        let records_before = store.log.stats().records;
        write_round(&store, 1).await;
        let records_after = store.log.stats().records - records_before;
        let before = seen(&store);
        store.log.close().await;

        let (store, report) = ShardStore::open(data, SHARD).await.expect("reopen");
        assert_eq!(report.checkpoint.as_deref(), Some(path.as_path()));
        assert_eq!(report.records, records_after, "{report:?}");
        assert_eq!(seen(&store), before);
        bodies_read_back(&store).await;
        // Writing on after a checkpointed open goes on at the right place.
        write_round(&store, 2).await;
        let before = seen(&store);
        store.log.close().await;

        let (store, report) = ShardStore::open(data, SHARD).await.expect("reopen");
        assert!(report.checkpoint.is_some());
        assert_eq!(seen(&store), before);
        store.log.close().await;

        // The same log without any checkpoint replays to the same state.
        for p in checkpoints(data) {
            std::fs::remove_file(p).expect("rm");
        }
        let (store, report) = ShardStore::open(data, SHARD).await.expect("full replay");
        assert!(report.checkpoint.is_none());
        assert_eq!(seen(&store), before);
        bodies_read_back(&store).await;
        store.log.close().await;
    })
    .expect("runtime");
}

#[test]
fn only_the_newest_two_checkpoints_are_kept_and_a_corrupt_one_is_skipped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    block_on(async {
        let (store, _) = ShardStore::open(data, SHARD).await.expect("open");
        let mut paths = Vec::new();
        for round in 0..3 {
            write_round(&store, round).await;
            paths.push(store.checkpoint().await.expect("checkpoint"));
        }
        assert_eq!(checkpoints(data), vec![paths[2].clone(), paths[1].clone()]);
        write_round(&store, 3).await;
        let before = seen(&store);
        store.log.close().await;

        // Flip a byte inside the newest: the older one is used.
        let mut bytes = std::fs::read(&paths[2]).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&paths[2], &bytes).expect("write");
        let (store, report) = ShardStore::open(data, SHARD).await.expect("reopen");
        assert_eq!(report.checkpoint.as_deref(), Some(paths[1].as_path()));
        assert_eq!(seen(&store), before);
        store.log.close().await;

        // Both bad (one cut short, one with a bad header): a full replay.
        let older = std::fs::read(&paths[1]).expect("read");
        std::fs::write(&paths[1], &older[..older.len() - 7]).expect("write");
        bytes[0] = b'X';
        std::fs::write(&paths[2], &bytes).expect("write");
        let (store, report) = ShardStore::open(data, SHARD).await.expect("reopen");
        assert!(report.checkpoint.is_none());
        assert_eq!(seen(&store), before);
        bodies_read_back(&store).await;
        store.log.close().await;
    })
    .expect("runtime");
}

#[test]
fn a_leftover_temporary_file_is_ignored_and_removed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    block_on(async {
        let (store, _) = ShardStore::open(data, SHARD).await.expect("open");
        write_round(&store, 0).await;
        let path = store.checkpoint().await.expect("checkpoint");
        write_round(&store, 1).await;
        let before = seen(&store);
        store.log.close().await;

        // A crash while writing a newer checkpoint: half a file under the
        // temporary name.
        let half = std::fs::read(&path).expect("read");
        let leftover = shard_dir(data, SHARD).join("checkpoint-00000000000099999999-0.tmp");
        std::fs::write(&leftover, &half[..half.len() / 2]).expect("write");
        let (store, report) = ShardStore::open(data, SHARD).await.expect("reopen");
        assert_eq!(report.checkpoint.as_deref(), Some(path.as_path()));
        assert_eq!(seen(&store), before);
        assert!(!leftover.exists());
        store.log.close().await;
    })
    .expect("runtime");
}

#[test]
fn a_torn_tail_after_a_checkpoint_is_cut_and_the_rest_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    block_on(async {
        let (store, _) = ShardStore::open(data, SHARD).await.expect("open");
        write_round(&store, 0).await;
        let path = store.checkpoint().await.expect("checkpoint");
        write_round(&store, 1).await;
        let before = seen(&store);
        let end = store.log.position();
        store.log.close().await;

        // Half a record written past the durable end, never acknowledged.
        let segment = shard_dir(data, SHARD)
            .join("log")
            .join(format!("{:016}.seg", end.segment));
        let mut bytes = std::fs::read(&segment).expect("read");
        let at = end.offset as usize;
        bytes.truncate(at);
        bytes.extend_from_slice(&[0xa5; 40]);
        std::fs::write(&segment, &bytes).expect("write");

        let (store, report) = ShardStore::open(data, SHARD).await.expect("reopen");
        assert_eq!(report.checkpoint.as_deref(), Some(path.as_path()));
        let (_, offset, _, _) = report.torn_tail.clone().expect("torn tail");
        assert_eq!(offset, end.offset);
        assert_eq!(seen(&store), before);
        bodies_read_back(&store).await;
        write_round(&store, 2).await;
        let before = seen(&store);
        store.log.close().await;
        let (store, report) = ShardStore::open(data, SHARD).await.expect("reopen");
        assert!(report.torn_tail.is_none(), "{report:?}");
        assert_eq!(seen(&store), before);
        store.log.close().await;
    })
    .expect("runtime");
}

#[test]
fn a_checkpoint_taken_during_concurrent_writes_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    block_on(async {
        let (store, _) = ShardStore::open(data, SHARD).await.expect("open");
        write_round(&store, 0).await;
        let writers: Vec<_> = (0..3)
            .map(|a| {
                let mail = store.mail.clone();
                cairn_shards::spawn(async move {
                    let account = format!("user{a}@example.org");
                    for i in 100..160 {
                        mail.append(&account, "INBOX", &body(a, i), Flags::default(), 0)
                            .await
                            .expect("append");
                    }
                })
            })
            .collect();
        let mut taken = Vec::new();
        for _ in 0..4 {
            taken.push(store.checkpoint().await.expect("checkpoint"));
        }
        for w in writers {
            w.await;
        }
        let before = seen(&store);
        store.log.close().await;
        let (store, report) = ShardStore::open(data, SHARD).await.expect("reopen");
        assert!(report.checkpoint.is_some());
        assert_eq!(seen(&store), before);
        bodies_read_back(&store).await;
        store.log.close().await;
    })
    .expect("runtime");
}

#[test]
fn a_log_opened_after_a_position_skips_the_segments_before_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let config = LogConfig {
        segment_bytes: 8192,
        max_batch_bytes: 4096,
        ..LogConfig::default()
    };
    block_on(async {
        let (log, _) = SegmentLog::open(&dir, config.clone(), |_| {})
            .await
            .expect("open");
        let mut early = Vec::new();
        for i in 0..40u32 {
            early.push(log.append(1, &[i as u8; 500]).await.expect("append"));
        }
        let cut = log.settled_position().await;
        assert_eq!(cut.seq, 40);
        for i in 40..50u32 {
            log.append(1, &[i as u8; 500]).await.expect("append");
        }
        log.close().await;

        let mut replayed = Vec::new();
        let (log, report) = SegmentLog::open_after(&dir, config.clone(), Some(cut), |r| {
            replayed.push(r.location.seq)
        })
        .await
        .expect("open after");
        assert_eq!(replayed, (41..=50).collect::<Vec<u64>>());
        assert!(report.skipped_segments >= 2, "{report:?}");
        assert_eq!(report.records, 10);
        assert_eq!(log.read(early[0]).await.expect("read"), vec![0u8; 500]);
        let next = log.append(1, b"after").await.expect("append");
        assert_eq!(next.seq, 51);
        log.close().await;

        // A position past the end of the log is refused before any replay.
        let beyond = cairn_storage::log::Position {
            segment: cut.segment + 100,
            ..cut
        };
        let mut any = false;
        let refused = SegmentLog::open_after(&dir, config, Some(beyond), |_| any = true).await;
        assert!(refused.is_err());
        assert!(!any);
    })
    .expect("runtime");
}

#[test]
fn the_settled_position_waits_for_answers_not_yet_taken() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    block_on(async {
        let (log, _) = SegmentLog::open(&dir, LogConfig::default(), |_| {})
            .await
            .expect("open");
        let first = log.append(1, b"first");
        let second = log.append(1, b"second");
        let sleep = || cairn_shards::time::sleep(std::time::Duration::from_millis(2));
        while log.position().seq < 2 {
            sleep().await;
        }
        // Both are durable, but their appenders have not taken the answers
        // (so have applied nothing): the settled position waits.
        let settled = std::rc::Rc::new(std::cell::Cell::new(None));
        let waiter = {
            let (log, settled) = (log.clone(), settled.clone());
            cairn_shards::spawn(async move { settled.set(Some(log.settled_position().await)) })
        };
        for _ in 0..5 {
            sleep().await;
        }
        assert_eq!(settled.get(), None);
        first.await.expect("first");
        sleep().await;
        assert_eq!(settled.get(), None);
        // An appender that goes away counts as having taken its answer.
        drop(second);
        waiter.await;
        assert_eq!(settled.get().map(|p| p.seq), Some(2));
        log.close().await;
    })
    .expect("runtime");
}
