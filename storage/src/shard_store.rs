//! Everything one shard persists, opened together: its segment log under
//! `DATA/shards/N/log` and the services rebuilt from it at start (mail, the
//! typed tables, the outbound queue over both, the accounts' Bayes
//! classifiers in the tables, taught by the mailstore) — from the
//! newest intact checkpoint in `DATA/shards/N` plus the log after it, or
//! from the whole log when there is none.
//!
//! Compaction ([`ShardStore::compact`]) reclaims sealed segments whose
//! bytes are mostly dead: everything in a sealed segment is either in the
//! next checkpoint (mail state, tables) or a body; the live bodies are
//! copied out (`mailbox::compaction`), a checkpoint covering the copies is
//! made durable, and only then are the segment files removed. A crash
//! before the removal leaves the old segments in place (replay takes the
//! newest copy of each body); after it, the checkpoint is what recovery
//! starts from. A checkpoint that refers to a removed segment (an older
//! one) is skipped at start, and a full replay of a log whose first
//! segments were removed is refused rather than half done.

use std::path::{Path, PathBuf};

use cairn_shards::ShardId;

use crate::bayes::BayesStore;
use crate::checkpoint::{self, CheckpointError, Image};
use crate::kinds;
use crate::log::{LogConfig, LogError, Position, RecoveryReport, SegmentLog};
use crate::mailbox::Evacuated;
use crate::mailbox::{MailError, MailRecovery, MailStore};
use crate::queue::QueueStore;
use crate::table::{TableData, TableError, Tables};

/// A shard's storage.
#[derive(Clone)]
pub struct ShardStore {
    /// The shard's log.
    pub log: SegmentLog,
    /// The shard's mail.
    pub mail: MailStore,
    /// The shard's typed tables (directory, placement, queues …).
    pub tables: Tables,
    /// The shard's outbound mail queue (in `tables`, its bodies in
    /// `mail`'s blob store).
    pub queue: QueueStore,
    /// The Bayes classifiers of the shard's accounts (in `tables`; `mail`
    /// teaches them).
    pub bayes: BayesStore,
}

/// The directory of shard `shard` under the data directory.
pub fn shard_dir(data_dir: &Path, shard: ShardId) -> PathBuf {
    data_dir.join("shards").join(shard.to_string())
}

/// How many shard directories the data directory holds.
pub fn shards_on_disk(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("shards"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
                .map(|n| n + 1)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Why a shard's storage did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("shard {shard}: {error}")]
    Mail { shard: ShardId, error: MailError },
    #[error("shard {shard}: {error}")]
    Table { shard: ShardId, error: TableError },
    /// No checkpoint fits, and the log alone is not whole (compaction
    /// removed segments a full replay needs).
    #[error(
        "shard {shard}: no usable checkpoint, and segment {first} of the log was compacted away"
    )]
    Compacted { shard: ShardId, first: u64 },
}

/// When and how compaction works.
#[derive(Debug, Clone)]
pub struct CompactionConfig {
    /// A sealed segment is compacted once at least this share of its bytes
    /// is dead (0.0: every sealed segment; 1.0: only wholly dead ones).
    pub min_dead_fraction: f64,
    /// Bytes of bodies copied per batch.
    pub batch_bytes: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            min_dead_fraction: 0.5,
            batch_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What a compaction did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    /// Sealed segments that qualified.
    pub candidates: Vec<u64>,
    /// Segment files removed.
    pub removed: Vec<u64>,
    /// Bytes those files held.
    pub bytes_reclaimed: u64,
    /// Live bodies copied, their bytes, and dead bodies forgotten.
    pub moved: u64,
    pub moved_bytes: u64,
    pub forgotten: u64,
    /// The checkpoint written for it.
    pub checkpoint: Option<PathBuf>,
}

/// Why a compaction stopped (nothing was removed that a durable checkpoint
/// still needs; it can be run again).
#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// The state to replay the log onto: where it comes from and how far it goes.
struct Start {
    checkpoint: Option<PathBuf>,
    after: Option<Position>,
    mail: MailRecovery,
    tables: TableData,
}

impl Start {
    fn empty() -> Self {
        Self {
            checkpoint: None,
            after: None,
            mail: MailRecovery::new(),
            tables: TableData::new(),
        }
    }

    fn from_image(path: PathBuf, image: Image) -> Self {
        let after = Some(image.position());
        Self {
            checkpoint: Some(path),
            after,
            mail: MailRecovery::from_checkpoint(image.state, image.blobs, image.digests),
            tables: image.tables,
        }
    }
}

/// Replays the log after `start` onto it.
async fn replay(
    dir: &Path,
    shard: ShardId,
    config: &LogConfig,
    start: Start,
) -> Result<(ShardStore, RecoveryReport), OpenError> {
    let Start {
        checkpoint,
        after,
        mut mail,
        mut tables,
    } = start;
    let mut failed = None;
    let (log, mut report) = SegmentLog::open_after(dir, config.clone(), after, |r| {
        if failed.is_some() {
            return;
        }
        failed = if r.kind == kinds::TABLE_BATCH {
            tables
                .replay(r.payload)
                .err()
                .map(|error| OpenError::Table { shard, error })
        } else {
            mail.replay(r.kind, r.location, r.payload)
                .err()
                .map(|error| OpenError::Mail { shard, error })
        };
    })
    .await?;
    if let Some(error) = failed {
        log.close().await;
        return Err(error);
    }
    report.checkpoint = checkpoint;
    let mail = mail.finish(log.clone());
    let tables = Tables::new(log.clone(), tables);
    // Queued messages refer to their bodies: counted before anything can
    // compact.
    let queue = match QueueStore::open(tables.clone(), mail.clone()) {
        Ok(queue) => queue,
        Err(error) => {
            log.close().await;
            return Err(OpenError::Table { shard, error });
        }
    };
    let bayes = BayesStore::new(tables.clone());
    mail.learn_into(bayes.clone());
    Ok((
        ShardStore {
            log,
            mail,
            tables,
            queue,
            bayes,
        },
        report,
    ))
}

impl ShardStore {
    /// Opens shard `shard`'s storage: loads its newest intact checkpoint
    /// and replays the log after it. A checkpoint that does not read back,
    /// or that the log does not continue, is reported and the next older
    /// one tried, down to a full replay of the log.
    pub async fn open(
        data_dir: &Path,
        shard: ShardId,
    ) -> Result<(Self, RecoveryReport), OpenError> {
        Self::open_with(data_dir, shard, LogConfig::default()).await
    }

    /// [`ShardStore::open`] with the log's batching and segment size.
    pub async fn open_with(
        data_dir: &Path,
        shard: ShardId,
        config: LogConfig,
    ) -> Result<(Self, RecoveryReport), OpenError> {
        let shard_dir = shard_dir(data_dir, shard);
        let dir = shard_dir.join("log");
        checkpoint::remove_leftovers(&shard_dir);
        let segments = crate::log::segment_indexes(&dir).unwrap_or_default();
        for (_, path) in checkpoint::list(&shard_dir) {
            let image = match checkpoint::load(&path) {
                Ok(image) => image,
                Err(error) => {
                    tracing::warn!(shard, %error, "checkpoint ignored");
                    continue;
                }
            };
            let missing = image
                .segments()
                .into_iter()
                .find(|s| segments.binary_search(s).is_err())
                .or_else(|| gap_after(&segments, image.segment));
            if let Some(segment) = missing {
                tracing::warn!(shard, checkpoint = %path.display(), segment, "checkpoint needs a compacted segment; ignored");
                continue;
            }
            match replay(&dir, shard, &config, Start::from_image(path.clone(), image)).await {
                Ok(opened) => return Ok(opened),
                Err(
                    error @ (OpenError::Log(LogError::Corrupt { .. })
                    | OpenError::Mail { .. }
                    | OpenError::Table { .. }),
                ) => {
                    tracing::warn!(shard, checkpoint = %path.display(), %error, "checkpoint does not fit the log; ignored");
                }
                Err(error) => return Err(error),
            }
        }
        if let Some(first) = gap_after(&segments, 0) {
            return Err(OpenError::Compacted { shard, first });
        }
        replay(&dir, shard, &config, Start::empty()).await
    }

    /// Writes a checkpoint of this shard's state: at an instant when every
    /// durable record is applied, copies the state (on the shard) and the
    /// log position; serialises and writes it on a thread of its own
    /// (temporary file, fsync, rename, directory fsync) and keeps the newest
    /// [`checkpoint::KEEP`]. Returns the checkpoint's path.
    pub async fn checkpoint(&self) -> Result<PathBuf, CheckpointError> {
        self.write_checkpoint().await.map(|(path, _, _)| path)
    }

    /// Writes a checkpoint; returns its path, the log position it covers
    /// and the segments its blob and digest indexes refer to.
    async fn write_checkpoint(&self) -> Result<(PathBuf, Position, Vec<u64>), CheckpointError> {
        let position = self.log.settled_position().await;
        let (state, blobs, digests) = self.mail.checkpoint_parts();
        let image = Image {
            seq: position.seq,
            segment: position.segment,
            offset: position.offset,
            state,
            blobs,
            tables: self.tables.data(),
            digests,
        };
        let used = image.segments();
        let dir = self
            .log
            .dir()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let (tx, rx) = futures_channel::oneshot::channel();
        std::thread::Builder::new()
            .name("cairn-checkpoint".into())
            .spawn(move || {
                let _ = tx.send(checkpoint::write(&dir, &image));
            })
            .map_err(|error| CheckpointError::Io {
                path: PathBuf::from("cairn-checkpoint thread"),
                error,
            })?;
        let path = rx.await.unwrap_or(Err(CheckpointError::Lost))?;
        Ok((path, position, used))
    }

    /// Sealed segments worth compacting under `config`: those whose dead
    /// bytes (everything but live bodies: the mail operations and table
    /// batches in them go into the next checkpoint) reach the threshold.
    pub fn compaction_candidates(&self, config: &CompactionConfig) -> Result<Vec<u64>, LogError> {
        let active = self.log.active_segment();
        let live = self.mail.live_blob_bytes();
        Ok(self
            .log
            .segments()?
            .into_iter()
            .filter(|&(index, size)| {
                let live = live.get(&index).copied().unwrap_or(0);
                let dead = size.saturating_sub(live);
                index < active && size > 0 && dead as f64 >= config.min_dead_fraction * size as f64
            })
            .map(|(index, _)| index)
            .collect())
    }

    /// Compacts the sealed segments that qualify (see
    /// [`ShardStore::compaction_candidates`]): copies their live bodies
    /// into the active segment and forgets the dead ones, writes a
    /// checkpoint covering that, and removes the segment files the
    /// checkpoint no longer needs. Writers keep going throughout. Nothing
    /// is removed, and no checkpoint written, when nothing qualifies.
    pub async fn compact(
        &self,
        config: &CompactionConfig,
    ) -> Result<CompactionReport, CompactionError> {
        let mut report = CompactionReport {
            candidates: self.compaction_candidates(config)?,
            ..CompactionReport::default()
        };
        if report.candidates.is_empty() {
            return Ok(report);
        }
        let mut emptied = Vec::new();
        for &segment in &report.candidates {
            let done: Evacuated = self.mail.evacuate(segment, config.batch_bytes).await?;
            report.moved += done.moved;
            report.moved_bytes += done.moved_bytes;
            report.forgotten += done.forgotten;
            if done.left == 0 {
                emptied.push(segment);
            }
        }
        self.mail.relink();
        let (path, covered, used) = self.write_checkpoint().await?;
        report.checkpoint = Some(path);
        let removable: Vec<u64> = emptied
            .into_iter()
            .filter(|s| *s < covered.segment && used.binary_search(s).is_err())
            .collect();
        report.bytes_reclaimed = self.log.remove_segments(&removable).await?;
        report.removed = removable;
        tracing::info!(
            segments = report.removed.len(),
            bytes = report.bytes_reclaimed,
            moved = report.moved,
            forgotten = report.forgotten,
            "compaction done"
        );
        Ok(report)
    }
}

/// The first segment from `start` on that a replay from `start` would miss
/// (compaction removed it while later ones remain); `None` when the
/// segments from `start` to the last are all there (or there are none).
fn gap_after(segments: &[u64], start: u64) -> Option<u64> {
    let last = *segments.last()?;
    let from = segments.partition_point(|&s| s < start);
    let present = segments.len() - from;
    if last < start || present as u64 == last - start + 1 {
        return None;
    }
    (start..=last).find(|s| segments.binary_search(s).is_err())
}

#[cfg(test)]
mod tests {
    use super::gap_after;

    #[test]
    fn gaps_in_the_log_are_found() {
        assert_eq!(gap_after(&[], 0), None);
        assert_eq!(gap_after(&[0, 1, 2], 0), None);
        assert_eq!(gap_after(&[3, 4, 5], 0), Some(0));
        assert_eq!(gap_after(&[3, 4, 5], 3), None);
        assert_eq!(gap_after(&[0, 3, 5], 3), Some(4));
        assert_eq!(gap_after(&[0, 3, 4], 9), None);
    }
}
