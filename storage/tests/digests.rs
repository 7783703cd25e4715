//! Digests (parse caches) made at delivery: present and equal to the
//! digester's output, read without the body, kept across a replay, a
//! checkpoint and a compaction; none for a body stored without a digester
//! or for a reader of another version. They are made off the shard and
//! not waited for: a delivery is acknowledged before a slow digest is
//! made, a crash before it is durable leaves the message without one, and
//! bodies staged while too many are being made get none.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use cairn_shards::local::block_on;
use cairn_shards::BlockingPool;
use cairn_storage::log::LogConfig;
use cairn_storage::mailbox::{BlobRef, Digester};
use cairn_storage::shard_store::ShardStore;

mod common;
use common::{add_alice, compact_all, deliver, expunge, ALICE};

fn reversed(raw: &[u8]) -> Vec<u8> {
    raw.iter().rev().copied().collect()
}

const V1: Digester = Digester {
    version: 1,
    digest: reversed,
};

/// [`V1`]'s digest, made in 300 ms.
fn slowly_reversed(raw: &[u8]) -> Vec<u8> {
    std::thread::sleep(Duration::from_millis(300));
    reversed(raw)
}

const SLOW_V1: Digester = Digester {
    version: 1,
    digest: slowly_reversed,
};

/// A gate digests wait at until it is opened.
type Gate = (Mutex<bool>, Condvar);

/// Waits until `gate` is open.
fn pass(gate: &Gate) {
    let (open, opened) = gate;
    let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
    while !*open {
        open = opened.wait(open).unwrap_or_else(|e| e.into_inner());
    }
}

/// Opens `gate`, letting every digest waiting at it through.
fn open_gate(gate: &Gate) {
    let (open, opened) = gate;
    *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
    opened.notify_all();
}

/// Holds [`gated`] digests until opened.
static GATE: Gate = (Mutex::new(false), Condvar::new());

/// [`V1`]'s digest, made once [`GATE`] is open.
fn gated(raw: &[u8]) -> Vec<u8> {
    pass(&GATE);
    reversed(raw)
}

const GATED_V1: Digester = Digester {
    version: 1,
    digest: gated,
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
        let (pool, _workers) = BlockingPool::start(2, 1024).expect("pool");
        store.mail.digest_with(d, pool);
    }
    store
}

/// A new store under `data` (see [`open`]) with the account ALICE.
async fn opened_with_alice(data: &std::path::Path, digester: Option<Digester>) -> ShardStore {
    let store = open(data, digester).await;
    add_alice(&store).await;
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
        let store = opened_with_alice(tmp.path(), Some(V1)).await;
        for i in 0..40 {
            deliver(&store, &body(i)).await;
        }
        store.mail.digests_settled().await;
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
        expunge(&store, &uids).await;
        let report = compact_all(&store).await;
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
        let store = opened_with_alice(tmp.path(), None).await;
        deliver(&store, &body(0)).await;
        store.log.close().await;

        // Stored before any digester: none, even with one now.
        let store = open(tmp.path(), Some(V1)).await;
        let old = blobs(&store)[0];
        assert_eq!(store.mail.digest(&old).await.expect("read"), None);
        deliver(&store, &body(1)).await;
        store.mail.digests_settled().await;
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

#[test]
fn a_delivery_is_acknowledged_before_its_slow_digest_is_made() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let store = opened_with_alice(tmp.path(), Some(SLOW_V1)).await;
        let start = Instant::now();
        deliver(&store, &body(0)).await;
        let acknowledged = start.elapsed();
        assert!(
            acknowledged < Duration::from_millis(300),
            "acknowledged after {acknowledged:?}: it waited for the digest"
        );
        assert_eq!(store.mail.digests_in_flight(), 1);
        let blob = blobs(&store)[0];
        assert_eq!(store.mail.digest(&blob).await.expect("read"), None);
        assert_eq!(store.mail.body(&blob).await.expect("body"), body(0));

        store.mail.digests_settled().await;
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert_eq!(store.mail.digests_in_flight(), 0);
        assert_digests(&store, 1).await;
        store.log.close().await;

        // Durable: found again after a replay.
        let store = open(tmp.path(), Some(V1)).await;
        assert_digests(&store, 1).await;
        store.log.close().await;
    })
    .expect("runtime");
}

#[test]
fn a_crash_before_the_digest_is_durable_leaves_the_message_without_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let store = opened_with_alice(tmp.path(), Some(SLOW_V1)).await;
        deliver(&store, &body(0)).await;
        // The log goes while the digest is being made: its record is never
        // written (the late append is refused, nothing is indexed).
        assert_eq!(store.mail.digests_in_flight(), 1);
        store.log.close().await;
        store.mail.digests_settled().await;
        let blob = blobs(&store)[0];
        assert_eq!(store.mail.digest(&blob).await.expect("read"), None);

        let store = open(tmp.path(), Some(V1)).await;
        let found = blobs(&store);
        assert_eq!(found.len(), 1);
        assert_eq!(store.mail.body(&found[0]).await.expect("body"), body(0));
        assert_eq!(store.mail.digest(&found[0]).await.expect("read"), None);
        // A new body still gets its digest.
        deliver(&store, &body(1)).await;
        store.mail.digests_settled().await;
        let found = blobs(&store);
        assert_eq!(
            store.mail.digest(&found[1]).await.expect("read"),
            Some(reversed(&body(1)))
        );
        store.log.close().await;
    })
    .expect("runtime");
}

#[test]
fn bodies_staged_while_too_many_digests_are_made_get_none() {
    const IN_FLIGHT: usize = cairn_storage::mailbox::MAX_DIGESTS_IN_FLIGHT;
    let tmp = tempfile::tempdir().expect("tempdir");
    block_on(async {
        let store = opened_with_alice(tmp.path(), Some(GATED_V1)).await;
        for i in 0..IN_FLIGHT + 6 {
            deliver(&store, &body(i)).await;
        }
        assert_eq!(store.mail.digests_in_flight(), IN_FLIGHT);
        assert_eq!(store.mail.reads().skipped_digests, 6);
        open_gate(&GATE);
        store.mail.digests_settled().await;
        for (i, blob) in blobs(&store).iter().enumerate() {
            let want = (i < IN_FLIGHT).then(|| reversed(&body(i)));
            assert_eq!(store.mail.digest(blob).await.expect("read"), want, "{i}");
            assert_eq!(store.mail.body(blob).await.expect("body"), body(i));
        }
        store.log.close().await;
    })
    .expect("runtime");
}

/// Holds [`gated_too`] digests until opened.
static OTHER_GATE: Gate = (Mutex::new(false), Condvar::new());

/// [`V1`]'s digest, made once [`OTHER_GATE`] is open.
fn gated_too(raw: &[u8]) -> Vec<u8> {
    pass(&OTHER_GATE);
    reversed(raw)
}

#[test]
fn a_digest_made_after_its_body_was_forgotten_is_dropped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let digester = Digester {
        version: 1,
        digest: gated_too,
    };
    block_on(async {
        let store = opened_with_alice(tmp.path(), Some(digester)).await;
        deliver(&store, &body(0)).await;
        let gone = blobs(&store)[0].hash;
        expunge(&store, &[1]).await;
        // Enough mail after it to seal its segment.
        for i in 1..=30 {
            deliver(&store, &body(i)).await;
        }
        let report = compact_all(&store).await;
        assert!(!report.removed.is_empty(), "{report:?}");
        assert_eq!(store.mail.blob_count(), 30, "the dead body is forgotten");

        // Its digest is made and written now: not indexed.
        open_gate(&OTHER_GATE);
        store.mail.digests_settled().await;
        let orphan = BlobRef::pending(gone);
        assert_eq!(store.mail.digest(&orphan).await.expect("read"), None);
        let check = |store: ShardStore| async move {
            let found = blobs(&store);
            assert_eq!(found.len(), 30);
            for (i, blob) in found.iter().enumerate() {
                assert_eq!(
                    store.mail.digest(blob).await.expect("read"),
                    Some(reversed(&body(i + 1)))
                );
            }
            store
        };
        let store = check(store).await;
        store.log.close().await;

        // Nor at replay (its record lies after the checkpoint), nor in the
        // next checkpoint.
        let store = open(tmp.path(), Some(V1)).await;
        assert_eq!(store.mail.digest(&orphan).await.expect("read"), None);
        let store = check(store).await;
        store.checkpoint().await.expect("checkpoint");
        store.log.close().await;
        let store = open(tmp.path(), Some(V1)).await;
        assert_eq!(store.mail.digest(&orphan).await.expect("read"), None);
        let store = check(store).await;
        store.log.close().await;
    })
    .expect("runtime");
}
