//! Everything one shard persists, opened together: its segment log under
//! `DATA/shards/N/log` and the services rebuilt from it at start.

use std::path::{Path, PathBuf};

use cairn_shards::ShardId;

use crate::kinds;
use crate::log::{LogConfig, LogError, RecoveryReport, SegmentLog};
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

impl ShardStore {
    /// Opens shard `shard`'s log, replaying it into the services.
    pub async fn open(
        data_dir: &Path,
        shard: ShardId,
    ) -> Result<(Self, RecoveryReport), OpenError> {
        let mut mail = MailRecovery::new();
        let mut tables = TableData::new();
        let mut failed = None;
        let dir = shard_dir(data_dir, shard).join("log");
        let (log, report) = SegmentLog::open(&dir, LogConfig::default(), |r| {
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
        let mail = mail.finish(log.clone());
        let tables = Tables::new(log.clone(), tables);
        Ok((Self { log, mail, tables }, report))
    }
}
