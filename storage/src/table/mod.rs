//! Typed key-value tables of one shard, persisted in its segment log: the
//! directory, the placement table, the outbound queue, and later files,
//! tasks and chats.
//!
//! A [`Table`] names its key and value types; keys are stored in an
//! order-preserving encoding ([`key`]), values with postcard. Reads are
//! served from memory and never wait. Writes go in a [`Batch`] with
//! conditions (`require_absent`, `require_present`); [`Tables::commit`]
//! checks the conditions, appends the batch as one log record, and applies
//! it to memory only once that record is durable, so nothing is visible
//! before it would survive a crash.

mod batch;
mod claims;
mod data;
pub mod key;

use std::cell::RefCell;
use std::collections::HashSet;
use std::ops::Bound;
use std::rc::Rc;

use futures_channel::oneshot;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::kinds;
use crate::log::{LogError, SegmentLog};
pub use batch::Batch;
use claims::{ClaimKey, Claims};
use data::Map;
pub use data::TableData;
pub use key::{KeyPrefix, TableKey};

/// The longest encoded key.
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest encoded value.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// A table: its persisted name and its key and value types.
pub trait Table {
    /// The name its records carry: persisted, so it must never change, and
    /// no two tables may share it.
    const NAME: &'static str;
    type Key: TableKey;
    type Value: Serialize + DeserializeOwned + Clone;
}

/// Entries of table `T` in key order, as scans return them.
pub type Entries<T> = Vec<(<T as Table>::Key, <T as Table>::Value)>;

/// Why a table operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A condition of the batch did not hold; nothing was written.
    #[error("conflict in table {table} on key {}", key.escape_ascii())]
    Conflict { table: &'static str, key: Vec<u8> },
    /// A key is longer than [`MAX_KEY_BYTES`]; nothing was written.
    #[error("a key of {len} bytes in table {table} is larger than the limit of {max}")]
    KeyTooLarge {
        table: &'static str,
        len: usize,
        max: usize,
    },
    /// A value is longer than [`MAX_VALUE_BYTES`]; nothing was written.
    #[error("a value of {len} bytes in table {table} is larger than the limit of {max}")]
    ValueTooLarge {
        table: &'static str,
        len: usize,
        max: usize,
    },
    /// A value could not be encoded; nothing was written.
    #[error("cannot encode {0}")]
    Encode(String),
    /// The log refused or failed the append (a disk full is
    /// [`LogError::DiskFull`], a batch over the record limit
    /// [`LogError::TooLarge`]); nothing was acknowledged.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Stored bytes do not decode as what they should be.
    #[error("corrupt table data: {0}")]
    Corrupt(String),
}

/// The tables of one shard. Cheap to clone; every clone sees the same
/// tables.
#[derive(Clone)]
pub struct Tables {
    inner: Rc<Inner>,
}

struct Inner {
    log: SegmentLog,
    data: RefCell<TableData>,
    claims: Rc<Claims>,
}

fn decode_entry<T: Table>(key: &[u8], value: &[u8]) -> Result<(T::Key, T::Value), TableError> {
    let key = T::Key::decode(key).ok_or_else(|| {
        TableError::Corrupt(format!("a key of {}: {}", T::NAME, key.escape_ascii()))
    })?;
    Ok((key, decode_value::<T>(value)?))
}

fn decode_value<T: Table>(value: &[u8]) -> Result<T::Value, TableError> {
    postcard::from_bytes(value)
        .map_err(|e| TableError::Corrupt(format!("a value of {}: {e}", T::NAME)))
}

impl Tables {
    /// Tables holding `data` (recovered from `log`) and writing to `log`.
    pub fn new(log: SegmentLog, data: TableData) -> Self {
        Self {
            inner: Rc::new(Inner {
                log,
                data: RefCell::new(data),
                claims: Rc::default(),
            }),
        }
    }

    /// A copy of the committed contents, for a checkpoint.
    pub fn data(&self) -> TableData {
        self.inner.data.borrow().clone()
    }

    /// A new, empty batch (see [`Tables::commit`]).
    pub fn batch(&self) -> Batch {
        Batch::new()
    }

    fn read<R>(&self, table: &str, f: impl FnOnce(&Map) -> R) -> Option<R> {
        self.inner.data.borrow().table(table).map(f)
    }

    /// The value of `key`, if present.
    pub fn get<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, TableError> {
        let key = key.to_bytes();
        self.read(T::NAME, |map| map.get(&key).map(|v| decode_value::<T>(v)))
            .flatten()
            .transpose()
    }

    /// Whether `key` is present.
    pub fn contains<T: Table>(&self, key: &T::Key) -> bool {
        let key = key.to_bytes();
        self.read(T::NAME, |map| map.contains_key(&key))
            .unwrap_or(false)
    }

    /// How many keys the table holds.
    pub fn len<T: Table>(&self) -> usize {
        self.read(T::NAME, Map::len).unwrap_or(0)
    }

    /// Whether the table holds no key.
    pub fn is_empty<T: Table>(&self) -> bool {
        self.len::<T>() == 0
    }

    /// Up to `limit` entries in key order, starting after `after` (from the
    /// first when `None`): pass the last key of a page to get the next.
    pub fn scan<T: Table>(
        &self,
        after: Option<&T::Key>,
        limit: usize,
    ) -> Result<Entries<T>, TableError> {
        let start = match after {
            Some(key) => Bound::Excluded(key.to_bytes()),
            None => Bound::Unbounded,
        };
        self.read(T::NAME, |map| {
            map.range((start, Bound::Unbounded))
                .take(limit)
                .map(|(k, v)| decode_entry::<T>(k, v))
                .collect()
        })
        .unwrap_or(Ok(Vec::new()))
    }

    /// Like [`Tables::scan`], over the keys that begin with `prefix` only
    /// (for a key `(a, b)`, those whose first element is `a`).
    pub fn scan_prefix<T: Table, P: KeyPrefix<T::Key>>(
        &self,
        prefix: &P,
        after: Option<&T::Key>,
        limit: usize,
    ) -> Result<Entries<T>, TableError> {
        let prefix = prefix.to_bytes();
        let start = match after.map(TableKey::to_bytes) {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix.clone()),
        };
        self.read(T::NAME, |map| {
            map.range((start, Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(&prefix))
                .take(limit)
                .map(|(k, v)| decode_entry::<T>(k, v))
                .collect()
        })
        .unwrap_or(Ok(Vec::new()))
    }

    /// Commits `batch` atomically: waits for commits in flight on any of
    /// its keys, checks its conditions (a failed one is a
    /// [`TableError::Conflict`] and writes nothing), appends it as one
    /// record and resolves once that record is durable and its changes are
    /// visible. Commits on disjoint keys proceed together and share group
    /// commits.
    ///
    /// Once the record is queued, dropping this future does not stop it:
    /// the changes still apply when the record is durable, so memory never
    /// disagrees with the log.
    pub async fn commit(&self, batch: Batch) -> Result<(), TableError> {
        let Batch {
            changes,
            conditions,
            error,
        } = batch;
        if let Some(error) = error {
            return Err(error);
        }
        let keys: Vec<ClaimKey> = conditions
            .iter()
            .map(|c| (c.table.to_string(), c.key.clone()))
            .chain(changes.iter().map(|c| (c.table.clone(), c.key.clone())))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let claim = self.inner.claims.claim(keys).await;
        {
            let data = self.inner.data.borrow();
            for condition in conditions {
                let present = data
                    .table(condition.table)
                    .is_some_and(|map| map.contains_key(&condition.key));
                if present != condition.present {
                    return Err(TableError::Conflict {
                        table: condition.table,
                        key: condition.key,
                    });
                }
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        let append = self
            .inner
            .log
            .append(kinds::TABLE_BATCH, &batch::encode(&changes)?);
        let inner = self.inner.clone();
        let (tx, rx) = oneshot::channel();
        cairn_shards::spawn_detached(async move {
            let result = append.await;
            if result.is_ok() {
                inner.data.borrow_mut().apply(changes);
            }
            drop(claim);
            let _ = tx.send(result);
        });
        rx.await.unwrap_or(Err(LogError::Closed))?;
        Ok(())
    }
}
