//! Helpers shared by the compaction tests: a shard store with small
//! segments, its disk usage, and every message body it holds.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use cairn_storage::log::LogConfig;
use cairn_storage::shard_store::{shard_dir, ShardStore};

pub const SHARD: usize = 0;

/// A log config with segments of `segment_bytes`.
pub fn small_segments(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..LogConfig::default()
    }
}

/// Opens shard 0 under `data` with segments of `segment_bytes`.
pub async fn open(data: &Path, segment_bytes: u64) -> ShardStore {
    let (store, report) = ShardStore::open_with(data, SHARD, small_segments(segment_bytes))
        .await
        .expect("open the shard");
    assert!(
        report.damaged.is_empty(),
        "damage found: {:?}",
        report.damaged
    );
    store
}

/// The segment files' total size and count.
pub fn disk_usage(data: &Path) -> (u64, usize) {
    let dir = shard_dir(data, SHARD).join("log");
    let mut total = 0;
    let mut count = 0;
    for e in std::fs::read_dir(dir).expect("log dir").flatten() {
        if e.file_name().to_string_lossy().ends_with(".seg") {
            total += e.metadata().expect("metadata").len();
            count += 1;
        }
    }
    (total, count)
}

/// Every message of every account: (account, mailbox, uid) → body.
pub type Bodies = BTreeMap<(String, String, u32), Vec<u8>>;

/// Reads every message body the store holds.
pub async fn all_bodies(store: &ShardStore) -> Bodies {
    let mut out = Bodies::new();
    let state = store.mail.snapshot();
    for (account, a) in &state.accounts {
        for (mailbox, mb) in &a.mailboxes {
            for m in mb.messages.values() {
                let body = store
                    .mail
                    .body(&m.blob)
                    .await
                    .unwrap_or_else(|e| panic!("body of {account}/{mailbox}/{}: {e}", m.uid));
                out.insert((account.clone(), mailbox.clone(), m.uid), body);
            }
        }
    }
    out
}
