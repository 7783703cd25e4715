//! When each shard writes a checkpoint of its storage: in the background
//! once enough has been logged since the last one, and at a clean stop, so
//! that the next start replays little or nothing. After each background
//! checkpoint the shard's sealed segments are looked at, and those mostly
//! dead (expunged mail, deleted accounts, records the checkpoint covers)
//! are compacted.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use cairn_config::StorageConfig;
use cairn_shards::ShardContext;
use cairn_storage::log::LogConfig;
use cairn_storage::shard_store::{CompactionConfig, ShardStore};

const MIB: u64 = 1024 * 1024;

/// How often the background task looks.
const LOOK_EVERY: Duration = Duration::from_secs(10);

/// What the shard has logged that no checkpoint covers yet.
#[derive(Clone)]
pub struct Checkpoints {
    store: ShardStore,
    shard: usize,
    /// Records replayed at start after the newest checkpoint.
    replayed: u64,
    /// The log's byte and record counters at this run's last checkpoint.
    last: Rc<Cell<Option<(u64, u64)>>>,
    /// Log bytes after which a background checkpoint is written.
    every_bytes: u64,
    /// When compaction takes a sealed segment.
    compaction: CompactionConfig,
}

/// The segment log's batching and segment size of `[storage]`.
pub fn log_config(storage: &StorageConfig) -> LogConfig {
    LogConfig {
        segment_bytes: storage.segment_mib.saturating_mul(MIB),
        max_batch_bytes: storage.group_commit_max_kib.saturating_mul(1024),
        max_batch_wait: Duration::from_micros(storage.group_commit_max_wait_us),
    }
}

impl Checkpoints {
    /// Starts counting for `store`, which replayed `replayed` records after
    /// its checkpoint when it opened; checkpoints and compacts as
    /// `[storage]` says.
    pub fn new(store: ShardStore, shard: usize, replayed: u64, storage: &StorageConfig) -> Self {
        Self {
            store,
            shard,
            replayed,
            last: Rc::new(Cell::new(None)),
            every_bytes: storage.checkpoint_every_mib.saturating_mul(MIB),
            compaction: CompactionConfig {
                min_dead_fraction: f64::from(storage.compaction_min_dead_percent) / 100.0,
                ..CompactionConfig::default()
            },
        }
    }

    /// Bytes and records logged that no checkpoint covers.
    fn uncovered(&self) -> (u64, u64) {
        let stats = self.store.log.stats();
        match self.last.get() {
            Some((bytes, records)) => (stats.bytes - bytes, stats.records - records),
            None => (stats.bytes, stats.records + self.replayed),
        }
    }

    /// Writes a checkpoint now.
    pub async fn write(&self) {
        let stats = self.store.log.stats();
        match self.store.checkpoint().await {
            Ok(path) => {
                self.last.set(Some((stats.bytes, stats.records)));
                tracing::info!(shard = self.shard, path = %path.display(), "checkpoint written");
            }
            Err(e) => tracing::error!(shard = self.shard, error = %e, "checkpoint failed"),
        }
    }

    /// Compacts the sealed segments whose dead share reaches the
    /// configured threshold, if any (compaction writes its own checkpoint).
    pub async fn compact(&self) {
        let config = &self.compaction;
        match self.store.compaction_candidates(config) {
            Ok(found) if found.is_empty() => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(shard = self.shard, error = %e, "compaction not looked at");
                return;
            }
        }
        let stats = self.store.log.stats();
        match self.store.compact(config).await {
            Ok(report) => {
                if report.checkpoint.is_some() {
                    self.last.set(Some((stats.bytes, stats.records)));
                }
                tracing::info!(
                    shard = self.shard,
                    segments = report.removed.len(),
                    bytes = report.bytes_reclaimed,
                    "compaction done"
                );
            }
            Err(e) => tracing::error!(shard = self.shard, error = %e, "compaction failed"),
        }
    }

    /// Writes a checkpoint at a clean stop if anything is not covered yet.
    pub async fn at_stop(&self) {
        if self.uncovered().1 > 0 {
            self.write().await;
        }
    }

    /// The background task: a checkpoint whenever `checkpoint_every_mib` have been
    /// logged since the last one, then a compaction if one is due; ends at
    /// shutdown.
    pub async fn run(self, ctx: ShardContext) {
        loop {
            let stopped = cairn_shards::time::timeout(LOOK_EVERY, ctx.shutdown().wait()).await;
            if stopped.is_ok() {
                return;
            }
            if self.uncovered().0 >= self.every_bytes {
                self.write().await;
                self.compact().await;
            }
        }
    }
}
