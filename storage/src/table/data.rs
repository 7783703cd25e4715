//! The committed contents of every table of a shard, in memory: one ordered
//! map of key bytes to value bytes per table name, rebuilt from the log's
//! table records at recovery and changed only by batches that are durable.

use std::collections::{BTreeMap, HashMap};

use super::batch::{self, Change};
use super::TableError;

/// Keys to values, both encoded, in key order.
pub(super) type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// The tables' contents. Build it by feeding [`TableData::replay`] every
/// record of kind [`TABLE_BATCH`](crate::kinds::TABLE_BATCH) while the log
/// opens, then hand it to [`Tables::new`](super::Tables::new).
#[derive(
    Debug, Default, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct TableData {
    tables: HashMap<String, Map>,
}

impl TableData {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one batch record found by recovery. A record that does not
    /// decode is a [`TableError::Corrupt`] and changes nothing.
    pub fn replay(&mut self, payload: &[u8]) -> Result<(), TableError> {
        let changes = batch::decode(payload)?;
        self.apply(changes);
        Ok(())
    }

    /// Applies changes in order.
    pub(super) fn apply(&mut self, changes: Vec<Change>) {
        for change in changes {
            match change.value {
                Some(value) => {
                    self.tables
                        .entry(change.table)
                        .or_default()
                        .insert(change.key, value);
                }
                None => {
                    if let Some(map) = self.tables.get_mut(&change.table) {
                        map.remove(&change.key);
                    }
                }
            }
        }
    }

    /// The map of one table, if it ever had a key.
    pub(super) fn table(&self, name: &str) -> Option<&Map> {
        self.tables.get(name)
    }
}
