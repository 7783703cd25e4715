//! Digests (parse caches) made at delivery: present and equal to the
//! digester's output, read without the body, kept across a replay, a
//! checkpoint and a compaction; none for a body stored without a digester
//! or for a reader of another version.

use cairn_shards::local::block_on;
use cairn_storage::log::LogConfig;
use cairn_storage::mailbox::{BlobRef, Digester};
use cairn_storage::shard_store::{CompactionConfig, ShardStore};

const ALICE: &str = "alice@example.org";

fn reversed(raw: &[u8]) -> Vec<u8> {
    raw.iter().rev().copied().collect()
}

const V1: Digester = Digester {
    version: 1,
    digest: reversed,
};

fn body(i: usize) -> Vec<u8> {
    format!("Subject: m{i}\r\n\r\n{}", "x".repeat(1000 + i)).into_bytes()
}

async fn open(data: &std::path::Path, digester: Option<Digester>) -> ShardStore {
    let config = LogConfig {
        segment_bytes: 16 * 1024,
        ..LogConfig::default()
    };
    let (store, _) = ShardStore::open_with(data, 0, config).await.expect("open");
    if let Some(d) = digester {
        store.mail.digest_with(d);
    }
    store
}

fn blobs(store: &ShardStore) -> Vec<BlobRef> {
    store
        .mail
        .messages(ALICE, "INBOX")
        .expect("inbox")
        .iter()
        .map(|m| m.blob)
        .collect()
}

/// Every message's digest is the digester's output of its body, read
/// with no body read.
async fn assert_digests(store: &ShardStore, n: usize) {
    let before = store.mail.reads();
    let found = blobs(store);
    assert_eq!(found.len(), n);
    for (i, blob) in found.iter().enumerate() {
        let digest = store.mail.digest(blob).await.expect("read");
        assert_eq!(digest, Some(reversed(&body(i))), "message {i}");
    }
    let after = store.mail.reads();
    assert_eq!(after.bodies, before.bodies, "no body read");
    assert_eq!(after.digests, before.digests + n as u64);
}

#[test]
fn digests_survive_replay_checkpoint_and_compaction() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let store = open(tmp.path(), Some(V1)).await;
        store
            .mail
            .create_account(ALICE, 0, 0)
            .await
            .expect("account");
        for i in 0..40 {
            let rcpt = [(ALICE.to_string(), "INBOX".to_string())];
            store.mail.deliver(&rcpt, &body(i), 0).await[0]
                .as_ref()
                .expect("delivered");
        }
        assert_digests(&store, 40).await;
        for (i, blob) in blobs(&store).iter().enumerate() {
            assert_eq!(store.mail.body(blob).await.expect("body"), body(i));
        }
        store.log.close().await;

        let store = open(tmp.path(), Some(V1)).await;
        assert_digests(&store, 40).await;
        store.checkpoint().await.expect("checkpoint");
        store.log.close().await;

        let store = open(tmp.path(), Some(V1)).await;
        assert_digests(&store, 40).await;
        // Half the messages go: their segments qualify and are emptied.
        let uids: Vec<u32> = (1..=40).filter(|u| u % 2 == 0).collect();
        let deleted =
            cairn_storage::mailbox::Flags::new(cairn_storage::mailbox::flags::DELETED, &[]);
        store
            .mail
            .store_flags(
                ALICE,
                "INBOX",
                &uids,
                cairn_storage::mailbox::FlagAction::Add,
                &deleted,
                None,
            )
            .await
            .expect("flag");
        store
            .mail
            .expunge(ALICE, "INBOX", None)
            .await
            .expect("expunge");
        let config = CompactionConfig {
            min_dead_fraction: 0.0,
            ..CompactionConfig::default()
        };
        let report = store.compact(&config).await.expect("compact");
        assert!(!report.removed.is_empty(), "{report:?}");
        let kept: Vec<usize> = (0..40).filter(|i| (i + 1) % 2 == 1).collect();
        for (blob, i) in blobs(&store).iter().zip(&kept) {
            assert_eq!(
                store.mail.digest(blob).await.expect("read"),
                Some(reversed(&body(*i)))
            );
        }
        store.log.close().await;

        let store = open(tmp.path(), Some(V1)).await;
        for (blob, i) in blobs(&store).iter().zip(&kept) {
            assert_eq!(
                store.mail.digest(blob).await.expect("read"),
                Some(reversed(&body(*i)))
            );
            assert_eq!(store.mail.body(blob).await.expect("body"), body(*i));
        }
        store.log.close().await;
    })
    .expect("runtime");
}

#[test]
fn no_digest_without_a_digester_or_for_another_version() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let store = open(tmp.path(), None).await;
        store
            .mail
            .create_account(ALICE, 0, 0)
            .await
            .expect("account");
        let rcpt = [(ALICE.to_string(), "INBOX".to_string())];
        store.mail.deliver(&rcpt, &body(0), 0).await[0]
            .as_ref()
            .expect("delivered");
        store.log.close().await;

        // Stored before any digester: none, even with one now.
        let store = open(tmp.path(), Some(V1)).await;
        let old = blobs(&store)[0];
        assert_eq!(store.mail.digest(&old).await.expect("read"), None);
        store.mail.deliver(&rcpt, &body(1), 0).await[0]
            .as_ref()
            .expect("delivered");
        let new = blobs(&store)[1];
        assert_eq!(
            store.mail.digest(&new).await.expect("read"),
            Some(reversed(&body(1)))
        );
        store.log.close().await;

        // A reader of another version gets none, and reads nothing.
        let v2 = Digester { version: 2, ..V1 };
        let store = open(tmp.path(), Some(v2)).await;
        assert_eq!(store.mail.digest(&new).await.expect("read"), None);
        assert_eq!(store.mail.reads().digests, 0);
        store.log.close().await;
    })
    .expect("runtime");
}
