//! Random deliveries (to one or several accounts: shared bodies), copies,
//! expunges, mailbox and account deletions interleaved with compactions,
//! checkpoints and reopenings, against a plain reference model of who
//! holds which body: after every step each message reads back its exact
//! body and each body's reference count is the number of messages holding
//! it; after each reopen the state is the one before.

mod compaction_support;

use std::collections::BTreeMap;
use std::path::Path;

use cairn_shards::local::block_on;
use cairn_storage::mailbox::{flags, FlagAction, Flags};
use cairn_storage::shard_store::{CompactionConfig, ShardStore};
use compaction_support::{all_bodies, open, Bodies};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

const SEGMENT: u64 = 24 * 1024;
const ACCOUNTS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Deliver { to: u8, body: usize },
    Copy { acct: usize, pick: u32 },
    Expunge { acct: usize, mb: usize, pick: u32 },
    DeleteArchive { acct: usize },
    DeleteAccount { acct: usize },
    Compact { fraction: u8 },
    Checkpoint,
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1..8u8, 0..40usize).prop_map(|(to, body)| Op::Deliver { to, body }),
        2 => (0..ACCOUNTS, 0..3u32).prop_map(|(acct, pick)| Op::Copy { acct, pick }),
        3 => (0..ACCOUNTS, 0..2usize, 0..3u32).prop_map(|(acct, mb, pick)| Op::Expunge { acct, mb, pick }),
        1 => (0..ACCOUNTS).prop_map(|acct| Op::DeleteArchive { acct }),
        1 => (0..ACCOUNTS).prop_map(|acct| Op::DeleteAccount { acct }),
        3 => (0..3u8).prop_map(|fraction| Op::Compact { fraction }),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
    ]
}

fn account(a: usize) -> String {
    format!("user{a}@example.org")
}

const MAILBOXES: [&str; 2] = ["INBOX", "Archive"];

fn body(i: usize) -> Vec<u8> {
    format!("Subject: {i}\r\n\r\n{}", "q".repeat(300 + i * 211 % 2500)).into_bytes()
}

/// The reference: (account, mailbox, uid) → body, and each mailbox's next UID.
#[derive(Default)]
struct Model {
    bodies: Bodies,
    uidnext: BTreeMap<(String, String), u32>,
}

impl Model {
    fn create(&mut self, a: usize) {
        for mb in ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"] {
            self.uidnext.insert((account(a), mb.to_string()), 1);
        }
    }

    fn add(&mut self, a: &str, mb: &str, body: Vec<u8>) -> u32 {
        let next = self.uidnext.entry((a.into(), mb.into())).or_insert(1);
        let uid = *next;
        *next += 1;
        self.bodies.insert((a.into(), mb.into(), uid), body);
        uid
    }

    fn uids(&self, a: &str, mb: &str) -> Vec<u32> {
        self.bodies
            .keys()
            .filter(|(x, m, _)| x == a && m == mb)
            .map(|k| k.2)
            .collect()
    }
}

async fn step(store: &ShardStore, model: &mut Model, op: &Op) {
    match op {
        Op::Deliver { to, body: b } => {
            let rcpts: Vec<(String, String)> = (0..ACCOUNTS)
                .filter(|a| to & (1 << a) != 0)
                .map(|a| (account(a), "INBOX".to_string()))
                .collect();
            let bytes = body(*b);
            for (r, (a, mb)) in store
                .mail
                .deliver(&rcpts, &bytes, 0)
                .await
                .iter()
                .zip(&rcpts)
            {
                let d = r.as_ref().expect("deliver");
                assert_eq!(d.uid, model.add(a, mb, bytes.clone()));
            }
        }
        Op::Copy { acct, pick } => {
            let a = account(*acct);
            let uids: Vec<u32> = model
                .uids(&a, "INBOX")
                .into_iter()
                .filter(|u| u % 3 == *pick)
                .collect();
            let pairs = store
                .mail
                .copy(&a, "INBOX", "Archive", &uids, false)
                .await
                .expect("copy");
            assert_eq!(pairs.len(), uids.len());
            for (src, dst) in pairs {
                let b = model.bodies[&(a.clone(), "INBOX".to_string(), src)].clone();
                assert_eq!(dst, model.add(&a, "Archive", b));
            }
        }
        Op::Expunge { acct, mb, pick } => {
            let (a, mb) = (account(*acct), MAILBOXES[*mb]);
            let uids: Vec<u32> = model
                .uids(&a, mb)
                .into_iter()
                .filter(|u| u % 3 != *pick)
                .collect();
            store
                .mail
                .store_flags(
                    &a,
                    mb,
                    &uids,
                    FlagAction::Add,
                    &Flags::new(flags::DELETED, &[]),
                    None,
                )
                .await
                .expect("flag");
            let gone = store.mail.expunge(&a, mb, None).await.expect("expunge");
            assert_eq!(gone, uids);
            for u in uids {
                model.bodies.remove(&(a.clone(), mb.to_string(), u));
            }
        }
        Op::DeleteArchive { acct } => {
            let a = account(*acct);
            store
                .mail
                .delete_mailbox(&a, "Archive")
                .await
                .expect("delete");
            store
                .mail
                .create_mailbox(&a, "Archive", None)
                .await
                .expect("create");
            model
                .bodies
                .retain(|(x, m, _), _| !(x == &a && m == "Archive"));
            model.uidnext.insert((a, "Archive".into()), 1);
        }
        Op::DeleteAccount { acct } => {
            let a = account(*acct);
            store.mail.delete_account(&a).await.expect("delete account");
            store.mail.create_account(&a, 0, 0).await.expect("account");
            model.bodies.retain(|(x, _, _), _| x != &a);
            model.create(*acct);
        }
        Op::Compact { fraction } => {
            store
                .compact(&CompactionConfig {
                    min_dead_fraction: f64::from(*fraction) / 2.0,
                    batch_bytes: 8 * 1024,
                })
                .await
                .expect("compact");
        }
        Op::Checkpoint => {
            store.checkpoint().await.expect("checkpoint");
        }
        Op::Reopen => unreachable!("handled by the caller"),
    }
}

async fn agree(store: &ShardStore, model: &Model, after: &Op) {
    assert_eq!(
        all_bodies(store).await,
        model.bodies,
        "bodies after {after:?}"
    );
    let mut counts: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    for b in model.bodies.values() {
        *counts.entry(Sha256::digest(b).into()).or_insert(0) += 1;
    }
    for i in 0..40 {
        let hash: [u8; 32] = Sha256::digest(body(i)).into();
        assert_eq!(
            store.mail.blob_references(&hash),
            counts.get(&hash).copied().unwrap_or(0),
            "references to body {i} after {after:?}"
        );
    }
}

async fn reopen(data: &Path, store: ShardStore) -> ShardStore {
    let before = store.mail.snapshot();
    store.log.close().await;
    let store = open(data, SEGMENT).await;
    assert_eq!(
        store.mail.snapshot(),
        before,
        "reopen rebuilt a different state"
    );
    store
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn compaction_keeps_the_store_equal_to_the_model(ops in proptest::collection::vec(op_strategy(), 1..70)) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path();
        block_on(async {
            let mut store = open(data, SEGMENT).await;
            let mut model = Model::default();
            for a in 0..ACCOUNTS {
                store.mail.create_account(&account(a), 0, 0).await.expect("account");
                model.create(a);
            }
            for op in &ops {
                if matches!(op, Op::Reopen) {
                    store = reopen(data, store).await;
                } else {
                    step(&store, &mut model, op).await;
                }
                agree(&store, &model, op).await;
            }
            store
                .compact(&CompactionConfig { min_dead_fraction: 0.0, batch_bytes: 8 * 1024 })
                .await
                .expect("final compaction");
            let store = reopen(data, store).await;
            agree(&store, &model, &Op::Reopen).await;
            store.log.close().await;
        }).expect("executor");
    }
}
