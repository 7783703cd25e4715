//! Everything one shard persists, opened together: its segment log under
//! `DATA/shards/N/log` and the services rebuilt from it at start — from the
//! newest intact checkpoint in `DATA/shards/N` plus the log after it, or
//! from the whole log when there is none.

use std::path::{Path, PathBuf};

use cairn_shards::ShardId;

use crate::checkpoint::{self, CheckpointError, Image};
use crate::kinds;
use crate::log::{LogConfig, LogError, Position, RecoveryReport, SegmentLog};
use crate::mailbox::{MailError, MailRecovery, MailStore};
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
            mail: MailRecovery::from_checkpoint(image.state, image.blobs),
            tables: image.tables,
        }
    }
}

/// Replays the log after `start` onto it.
async fn replay(
    dir: &Path,
    shard: ShardId,
    start: Start,
) -> Result<(ShardStore, RecoveryReport), OpenError> {
    let Start {
        checkpoint,
        after,
        mut mail,
        mut tables,
    } = start;
    let mut failed = None;
    let (log, mut report) = SegmentLog::open_after(dir, LogConfig::default(), after, |r| {
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
    Ok((ShardStore { log, mail, tables }, report))
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
        let shard_dir = shard_dir(data_dir, shard);
        let dir = shard_dir.join("log");
        checkpoint::remove_leftovers(&shard_dir);
        for (_, path) in checkpoint::list(&shard_dir) {
            let image = match checkpoint::load(&path) {
                Ok(image) => image,
                Err(error) => {
                    tracing::warn!(shard, %error, "checkpoint ignored");
                    continue;
                }
            };
            match replay(&dir, shard, Start::from_image(path.clone(), image)).await {
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
        replay(&dir, shard, Start::empty()).await
    }

    /// Writes a checkpoint of this shard's state: at an instant when every
    /// durable record is applied, copies the state (on the shard) and the
    /// log position; serialises and writes it on a thread of its own
    /// (temporary file, fsync, rename, directory fsync) and keeps the newest
    /// [`checkpoint::KEEP`]. Returns the checkpoint's path.
    pub async fn checkpoint(&self) -> Result<PathBuf, CheckpointError> {
        let position = self.log.settled_position().await;
        let (state, blobs) = self.mail.checkpoint_parts();
        let image = Image {
            seq: position.seq,
            segment: position.segment,
            offset: position.offset,
            state,
            blobs,
            tables: self.tables.data(),
        };
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
        rx.await.unwrap_or(Err(CheckpointError::Lost))
    }
}
