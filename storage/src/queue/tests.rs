//! The outbound queue: durable across reopens (from the log and from a
//! checkpoint), sequence numbers never reused, bodies kept by compaction
//! exactly while queued, due-time order, wake-ups, and the admin calls
//! across shards.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_shards::local::block_on;
use cairn_shards::{Runtime, RuntimeConfig, ShardContext, ShardId, Shutdown};
use futures_lite::future::poll_once;

use super::*;
use crate::directory::lockout::Policy;
use crate::log::LogConfig;
use crate::service::ServiceError;
use crate::services::{Meshes, Services};
use crate::shard_store::{CompactionConfig, ShardStore};

const SEGMENT: u64 = 64 * 1024;

/// Opens shard 0 under `data`; and whether it started from a checkpoint.
async fn open_reporting(data: &Path) -> (ShardStore, bool) {
    let config = LogConfig {
        segment_bytes: SEGMENT,
        ..LogConfig::default()
    };
    let (store, report) = ShardStore::open_with(data, 0, config)
        .await
        .expect("open the shard");
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
    (store, report.checkpoint.is_some())
}

async fn open(data: &Path) -> ShardStore {
    open_reporting(data).await.0
}

async fn reopen(data: &Path, store: ShardStore) -> ShardStore {
    store.log.close().await;
    open(data).await
}

fn body(i: usize, len: usize) -> Arc<[u8]> {
    let filler: String = (0..len)
        .map(|k| (b'a' + ((i * 7 + k) % 26) as u8) as char)
        .collect();
    Arc::from(format!("Subject: message {i}\r\n\r\n{filler}\r\n").into_bytes())
}

fn new_message(i: usize, now: i64) -> NewMessage {
    NewMessage {
        sender: format!("sender{i}@example.org"),
        recipients: vec![
            (
                format!("a{i}@example.net"),
                Some(format!("rfc822;a{i}@example.net")),
                Notify::default(),
            ),
            (format!("b{i}@example.com"), None, Notify::never()),
        ],
        envid: Some(format!("env{i}")),
        ret_full: i.is_multiple_of(2),
        now,
    }
}

fn blocking<T>(fut: impl Future<Output = T>) -> T {
    block_on(fut).expect("executor")
}

#[test]
fn queued_messages_survive_reopens_and_ids_are_never_reused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    blocking(async {
        let store = open(data).await;
        let shared = body(0, 500);
        let mut queued = Vec::new();
        for i in 0..3 {
            // Messages 0 and 2 share one body.
            let b = if i == 1 { body(1, 800) } else { shared.clone() };
            queued.push(
                store
                    .queue
                    .enqueue(new_message(i, 1000 + i as i64), b)
                    .await
                    .expect("enqueue"),
            );
        }
        assert!(queued.windows(2).all(|w| w[0].id < w[1].id), "{queued:?}");
        assert_eq!(queued[0].body, queued[2].body);
        assert_eq!(store.mail.blob_count(), 2, "a shared body is stored once");
        assert_eq!(store.mail.blob_references(&queued[0].body), 2);
        assert_eq!(queued[1].size, body(1, 800).len() as u64);
        assert_eq!(store.queue.get(queued[1].id).as_ref(), Some(&queued[1]));
        assert_eq!(store.queue.list(), queued);
        assert_eq!(store.queue.len(), 3);
        assert!(queued[0].recipients.iter().all(|r| r.state.is_pending()));

        // From the log.
        store.log.close().await;
        let (store, from_checkpoint) = open_reporting(data).await;
        assert!(!from_checkpoint);
        assert_eq!(store.queue.list(), queued);
        assert_eq!(store.mail.blob_references(&queued[0].body), 2);
        assert_eq!(store.mail.blob_references(&queued[1].body), 1);
        for m in &queued {
            let expect = if m.id == queued[1].id {
                body(1, 800)
            } else {
                shared.clone()
            };
            assert_eq!(store.queue.body(m).await.expect("body"), &expect[..]);
        }
        let fourth = store
            .queue
            .enqueue(new_message(3, 2000), body(3, 100))
            .await
            .expect("enqueue");
        assert!(fourth.id > queued[2].id);
        queued.push(fourth);

        // From a checkpoint, with more after it.
        store.checkpoint().await.expect("checkpoint");
        let fifth = store
            .queue
            .enqueue(new_message(4, 2001), body(4, 100))
            .await
            .expect("enqueue");
        assert!(fifth.id > queued[3].id);
        queued.push(fifth.clone());
        store.log.close().await;
        let (store, from_checkpoint) = open_reporting(data).await;
        assert!(from_checkpoint);
        assert_eq!(store.queue.list(), queued);
        assert_eq!(store.mail.blob_references(&queued[0].body), 2);
        assert_eq!(store.mail.blob_references(&fifth.body), 1);
        assert_eq!(
            store.queue.body(&fifth).await.expect("body"),
            &body(4, 100)[..]
        );

        // The highest id removed: a reopened shard does not hand it out again.
        store.queue.remove(fifth.id).await.expect("remove");
        let store = reopen(data, store).await;
        assert_eq!(store.queue.get(fifth.id), None);
        let sixth = store
            .queue
            .enqueue(new_message(5, 3000), body(5, 100))
            .await
            .expect("enqueue");
        assert!(sixth.id > fifth.id, "{} after {}", sixth.id, fifth.id);
        // Enough to use up a block of ids within one run.
        let mut last = sixth.id;
        for i in 0..(ID_BLOCK as usize + 3) {
            let m = store
                .queue
                .enqueue(new_message(i, 3000), body(5, 100))
                .await
                .expect("enqueue");
            assert!(m.id > last);
            last = m.id;
        }
        let store = reopen(data, store).await;
        let m = store
            .queue
            .enqueue(new_message(9, 4000), body(9, 10))
            .await
            .expect("enqueue");
        assert!(m.id > last);
        store.log.close().await;
    });
}

/// Writes and removes queued messages until the log has moved past the
/// segment it was in.
async fn seal_active_segment(store: &ShardStore, seed: usize) {
    let start = store.log.active_segment();
    let mut i = seed;
    while store.log.active_segment() == start {
        let m = store
            .queue
            .enqueue(new_message(i, 0), body(i, 8 * 1024))
            .await
            .expect("filler");
        store.queue.remove(m.id).await.expect("remove filler");
        i += 1;
    }
}

#[test]
fn compaction_keeps_a_queued_body_and_reclaims_it_after_removal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    let all = CompactionConfig {
        min_dead_fraction: 0.0,
        ..CompactionConfig::default()
    };
    blocking(async {
        let store = open(data).await;
        let kept = store
            .queue
            .enqueue(new_message(0, 100), body(0, 20 * 1024))
            .await
            .expect("enqueue");
        let mut updated = kept.clone();
        updated.attempts = 1;
        updated.next_attempt = 400;
        updated.last_error = Some("451 4.3.0 try later".into());
        updated.recipients[1].state = RecipientState::Delivered {
            at: 200,
            reply: "250 2.0.0 ok".into(),
            mx: "mx.example.com".into(),
        };
        store.queue.update(updated.clone()).await.expect("update");
        seal_active_segment(&store, 100).await;

        let report = store.compact(&all).await.expect("compact");
        assert!(!report.removed.is_empty(), "{report:?}");
        assert!(report.moved >= 1, "{report:?}");
        assert_eq!(
            store.queue.body(&kept).await.expect("body kept"),
            &body(0, 20 * 1024)[..]
        );

        // Reopened from the compaction's checkpoint: still counted.
        store.log.close().await;
        let (store, from_checkpoint) = open_reporting(data).await;
        assert!(from_checkpoint);
        assert_eq!(store.queue.get(kept.id), Some(updated.clone()));
        seal_active_segment(&store, 200).await;
        store.compact(&all).await.expect("compact");
        assert_eq!(
            store.queue.body(&kept).await.expect("body kept"),
            &body(0, 20 * 1024)[..]
        );
        assert_eq!(store.mail.blob_references(&kept.body), 1);

        // Removed: the next compaction forgets it.
        store.queue.remove(kept.id).await.expect("remove");
        assert_eq!(store.mail.blob_references(&kept.body), 0);
        assert_eq!(
            store.queue.remove(kept.id).await,
            Err(QueueError::NotFound(kept.id))
        );
        seal_active_segment(&store, 300).await;
        let report = store.compact(&all).await.expect("compact");
        assert!(report.forgotten >= 1, "{report:?}");
        assert!(store.queue.body(&kept).await.is_err(), "body reclaimed");
        let store = reopen(data, store).await;
        assert!(store.queue.is_empty());
        assert_eq!(store.queue.get(kept.id), None);
        store.log.close().await;
    });
}

#[test]
fn updates_persist_and_are_checked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    blocking(async {
        let store = open(data).await;
        let m = store
            .queue
            .enqueue(new_message(0, 100), body(0, 10))
            .await
            .expect("enqueue");
        let mut changed = m.clone();
        changed.recipients[0].state = RecipientState::Failed {
            at: 150,
            reply: format!("550 5.1.1 {}", "x".repeat(2 * MAX_REPLY)),
            mx: "mx.example.net".into(),
        };
        changed.delay_notified = true;
        store.queue.update(changed.clone()).await.expect("update");
        let stored = store.queue.get(m.id).expect("queued");
        let RecipientState::Failed { reply, .. } = &stored.recipients[0].state else {
            panic!("{stored:?}");
        };
        assert_eq!(reply.len(), MAX_REPLY);
        assert!(stored.delay_notified);

        let mut other_body = stored.clone();
        other_body.body = [7; 32];
        assert_eq!(
            store.queue.update(other_body).await,
            Err(QueueError::BodyChanged(m.id))
        );
        let mut missing = stored.clone();
        missing.id = 999_999;
        assert_eq!(
            store.queue.update(missing).await,
            Err(QueueError::NotFound(999_999))
        );
        assert_eq!(
            store
                .queue
                .enqueue(
                    NewMessage {
                        recipients: Vec::new(),
                        ..new_message(1, 0)
                    },
                    body(1, 1)
                )
                .await,
            Err(QueueError::NoRecipients)
        );

        let store = reopen(data, store).await;
        assert_eq!(store.queue.get(m.id), Some(stored));
        store.log.close().await;
    });
}

#[test]
fn due_order_next_due_and_wake_ups() {
    let tmp = tempfile::tempdir().expect("tempdir");
    blocking(async {
        let store = open(tmp.path()).await;
        let queue = &store.queue;
        assert_eq!(queue.next_due(), None);
        assert!(queue.due(i64::MAX, 10).is_empty());

        let changed = queue.changed();
        let mut changed = std::pin::pin!(changed);
        assert_eq!(poll_once(changed.as_mut()).await, None);
        let late = queue
            .enqueue(new_message(0, 300), body(0, 10))
            .await
            .expect("enqueue");
        assert_eq!(poll_once(changed.as_mut()).await, Some(()), "woken");
        let early = queue
            .enqueue(new_message(1, 100), body(1, 10))
            .await
            .expect("enqueue");
        let middle = queue
            .enqueue(new_message(2, 200), body(2, 10))
            .await
            .expect("enqueue");
        let tie = queue
            .enqueue(new_message(3, 200), body(3, 10))
            .await
            .expect("enqueue");
        let ids = |v: Vec<QueuedMessage>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(queue.next_due(), Some(100));
        assert_eq!(ids(queue.due(99, 10)), Vec::<u64>::new());
        assert_eq!(ids(queue.due(200, 10)), vec![early.id, middle.id, tie.id]);
        assert_eq!(ids(queue.due(1000, 2)), vec![early.id, middle.id]);
        assert_eq!(
            ids(queue.due(1000, 10)),
            vec![early.id, middle.id, tie.id, late.id]
        );

        // Later attempts move a message back; an update wakes too.
        let mut later = early.clone();
        later.next_attempt = 500;
        later.attempts = 1;
        let woken = queue.changed();
        queue.update(later).await.expect("update");
        assert_eq!(poll_once(woken).await, Some(()));
        assert_eq!(queue.next_due(), Some(200));
        assert_eq!(
            ids(queue.due(1000, 10)),
            vec![middle.id, tie.id, late.id, early.id]
        );

        // A retry makes it due now and wakes the runner.
        let woken = queue.changed();
        assert_eq!(queue.retry(Some(early.id), 150).await, Ok(1));
        assert_eq!(poll_once(woken).await, Some(()));
        assert_eq!(queue.next_due(), Some(150));
        assert_eq!(ids(queue.due(150, 10)), vec![early.id]);
        assert_eq!(queue.retry(Some(999_999), 150).await, Ok(0));
        assert_eq!(queue.retry(None, 10).await, Ok(4));
        assert_eq!(queue.next_due(), Some(10));
        assert_eq!(ids(queue.due(10, 10)).len(), 4);

        let woken = queue.changed();
        queue.remove(middle.id).await.expect("remove");
        assert_eq!(poll_once(woken).await, Some(()));
        assert!(!ids(queue.due(i64::MAX, 10)).contains(&middle.id));
        assert_eq!(queue.delete(middle.id).await, Ok(false));
        assert_eq!(queue.delete(tie.id).await, Ok(true));
        assert_eq!(queue.len(), 2);
        store.log.close().await;
    });
}

#[test]
fn admin_calls_reach_every_shard() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().to_path_buf();
    let meshes = Meshes::new(2);
    let ready = Arc::new(AtomicUsize::new(0));
    let config = RuntimeConfig {
        shards: 2,
        pin: false,
        blocking_threads: 1,
        ..RuntimeConfig::default()
    };
    // Far in the future, so that a retry changes them.
    const LATER: i64 = 4_000_000_000;
    let rt = Runtime::start(&config, Shutdown::new(), move |ctx: ShardContext| {
        let (meshes, data, ready) = (meshes.clone(), data.clone(), ready.clone());
        async move {
            let (store, _) = ShardStore::open(&data, ctx.id()).await.expect("open");
            let policy = Policy {
                per_account: 1000,
                per_address: 1000,
                window: Duration::from_secs(60),
            };
            let services = Services::start(&ctx, &store, &meshes, policy)
                .await
                .expect("services");
            let local = services.queue.local().clone();
            for i in 0..=ctx.id() {
                local
                    .enqueue(new_message(i, LATER), body(ctx.id() * 10 + i, 100))
                    .await
                    .expect("enqueue");
            }
            let woken = Rc::new(Cell::new(false));
            {
                let (changed, woken) = (local.changed(), woken.clone());
                cairn_shards::spawn_detached(async move {
                    changed.await;
                    woken.set(true);
                });
            }
            ready.fetch_add(1, Ordering::SeqCst);
            if ctx.id() == 0 {
                while ready.load(Ordering::SeqCst) < 2 {
                    cairn_shards::time::sleep(Duration::from_millis(5)).await;
                }
                let queue = &services.queue;
                let all = queue.list().await.expect("list");
                let shards: Vec<ShardId> = all.iter().map(|(s, _)| *s).collect();
                assert_eq!(shards, vec![0, 1, 1]);
                let on_1: Vec<u64> = all
                    .iter()
                    .filter(|(s, _)| *s == 1)
                    .map(|(_, m)| m.id)
                    .collect();

                assert_eq!(queue.retry(1, Some(on_1[0])).await, Ok(1));
                let now = now_secs();
                let after = queue.list().await.expect("list");
                let retried = after
                    .iter()
                    .find(|(s, m)| *s == 1 && m.id == on_1[0])
                    .expect("still queued");
                assert!(retried.1.next_attempt <= now, "{retried:?}");
                assert!(after
                    .iter()
                    .filter(|(s, m)| !(*s == 1 && m.id == on_1[0]))
                    .all(|(_, m)| m.next_attempt == LATER));
                assert_eq!(queue.retry(1, None).await, Ok(2));
                assert_eq!(queue.retry(1, Some(999_999)).await, Ok(0));

                assert_eq!(queue.delete(1, on_1[1]).await, Ok(true));
                assert_eq!(queue.delete(1, on_1[1]).await, Ok(false));
                assert!(matches!(
                    queue.retry(5, None).await,
                    Err(ServiceError::Mesh(_))
                ));
                let left = queue.list().await.expect("list");
                assert_eq!(left.len(), 2);
                assert_eq!(queue.local().len(), 1);
                ctx.shutdown().trigger();
            }
            ctx.shutdown().wait().await;
            let (len, was_woken) = (local.len(), woken.get());
            drop(services);
            store.log.close().await;
            (len, was_woken)
        }
    })
    .expect("start");
    let per_shard = rt.join().expect("join");
    assert_eq!(per_shard, vec![(1, false), (1, true)]);
}

#[test]
fn a_caller_going_away_leaves_the_queue_consistent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    blocking(async {
        let store = open(data).await;
        {
            let enqueue = store.queue.enqueue(new_message(0, 5), body(0, 100));
            let mut enqueue = std::pin::pin!(enqueue);
            assert_eq!(poll_once(enqueue.as_mut()).await, None, "in flight");
        }
        // Dropped in flight: it still completes, counted.
        while store.queue.is_empty() {
            cairn_shards::time::sleep(Duration::from_millis(1)).await;
        }
        let m = store.queue.list().remove(0);
        while store.mail.blob_references(&m.body) == 0 {
            cairn_shards::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(store.queue.next_due(), Some(5));
        {
            let remove = store.queue.remove(m.id);
            let mut remove = std::pin::pin!(remove);
            assert_eq!(poll_once(remove.as_mut()).await, None, "in flight");
        }
        while store.mail.blob_references(&m.body) != 0 {
            cairn_shards::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(store.queue.is_empty());
        assert_eq!(store.queue.next_due(), None);
        let store = reopen(data, store).await;
        assert!(store.queue.is_empty());
        store.log.close().await;
    });
}
