//! When each shard writes a checkpoint of its storage: in the background
//! once enough has been logged since the last one, and at a clean stop, so
//! that the next start replays little or nothing.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use cairn_shards::ShardContext;
use cairn_storage::shard_store::ShardStore;

/// Log bytes after which a background checkpoint is written.
const EVERY_BYTES: u64 = 64 * 1024 * 1024;
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
}

impl Checkpoints {
    /// Starts counting for `store`, which replayed `replayed` records after
    /// its checkpoint when it opened.
    pub fn new(store: ShardStore, shard: usize, replayed: u64) -> Self {
        Self {
            store,
            shard,
            replayed,
            last: Rc::new(Cell::new(None)),
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

    /// Writes a checkpoint at a clean stop if anything is not covered yet.
    pub async fn at_stop(&self) {
        if self.uncovered().1 > 0 {
            self.write().await;
        }
    }

    /// The background task: a checkpoint whenever [`EVERY_BYTES`] have been
    /// logged since the last one; ends at shutdown.
    pub async fn run(self, ctx: ShardContext) {
        loop {
            let stopped = cairn_shards::time::timeout(LOOK_EVERY, ctx.shutdown().wait()).await;
            if stopped.is_ok() {
                return;
            }
            if self.uncovered().0 >= EVERY_BYTES {
                self.write().await;
            }
        }
    }
}
