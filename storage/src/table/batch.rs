//! A batch of table changes with the conditions it is committed under, and
//! its record in the log: one batch is one record of kind
//! [`TABLE_BATCH`](crate::kinds::TABLE_BATCH), so after a crash either all
//! of its changes replay or none do.
//!
//! The record is a format byte followed by the postcard encoding of its
//! changes (table name, key bytes, value bytes or none for a delete).
//! Conditions are checked at commit time and are not persisted.

use serde::{Deserialize, Serialize};

use super::key::TableKey;
use super::{Table, TableError, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// The version of the record layout, its first byte.
const FORMAT: u8 = 1;

/// One change as persisted: a put when `value` is some, else a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Change {
    pub table: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// A key that must be present (or absent) when the batch commits.
#[derive(Debug)]
pub(super) struct Condition {
    pub table: &'static str,
    pub key: Vec<u8>,
    pub present: bool,
}

/// Changes to one or more tables, committed atomically with
/// [`Tables::commit`](super::Tables::commit). Every condition is checked
/// against the state before the batch; the changes then apply in the order
/// they were added (a later change to the same key wins). A key or value
/// over its limit, or a value that does not encode, is reported by the
/// commit, which then writes nothing.
#[derive(Debug, Default)]
pub struct Batch {
    pub(super) changes: Vec<Change>,
    pub(super) conditions: Vec<Condition>,
    pub(super) error: Option<TableError>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` of table `T` to `value`.
    pub fn put<T: Table>(&mut self, key: &T::Key, value: &T::Value) -> &mut Self {
        let Some(key) = self.key::<T>(key) else {
            return self;
        };
        match postcard::to_allocvec(value) {
            Ok(value) if value.len() > MAX_VALUE_BYTES => self.fail(TableError::ValueTooLarge {
                table: T::NAME,
                len: value.len(),
                max: MAX_VALUE_BYTES,
            }),
            Ok(value) => self.changes.push(Change {
                table: T::NAME.to_string(),
                key,
                value: Some(value),
            }),
            Err(e) => self.fail(TableError::Encode(format!("a value of {}: {e}", T::NAME))),
        }
        self
    }

    /// Removes `key` from table `T` (nothing happens if it is absent).
    pub fn delete<T: Table>(&mut self, key: &T::Key) -> &mut Self {
        if let Some(key) = self.key::<T>(key) {
            self.changes.push(Change {
                table: T::NAME.to_string(),
                key,
                value: None,
            });
        }
        self
    }

    /// Commits only if `key` is absent from table `T`.
    pub fn require_absent<T: Table>(&mut self, key: &T::Key) -> &mut Self {
        self.condition::<T>(key, false)
    }

    /// Commits only if `key` is present in table `T`.
    pub fn require_present<T: Table>(&mut self, key: &T::Key) -> &mut Self {
        self.condition::<T>(key, true)
    }

    /// Whether the batch has neither changes nor conditions.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.conditions.is_empty() && self.error.is_none()
    }

    fn condition<T: Table>(&mut self, key: &T::Key, present: bool) -> &mut Self {
        if let Some(key) = self.key::<T>(key) {
            self.conditions.push(Condition {
                table: T::NAME,
                key,
                present,
            });
        }
        self
    }

    /// Encodes `key`, or records why it cannot be used.
    fn key<T: Table>(&mut self, key: &T::Key) -> Option<Vec<u8>> {
        let bytes = key.to_bytes();
        if bytes.len() > MAX_KEY_BYTES {
            self.fail(TableError::KeyTooLarge {
                table: T::NAME,
                len: bytes.len(),
                max: MAX_KEY_BYTES,
            });
            return None;
        }
        Some(bytes)
    }

    /// Keeps the first error: the commit reports it.
    fn fail(&mut self, error: TableError) {
        self.error.get_or_insert(error);
    }
}

/// The record of `changes`.
pub(super) fn encode(changes: &[Change]) -> Result<Vec<u8>, TableError> {
    postcard::to_extend(changes, vec![FORMAT])
        .map_err(|e| TableError::Encode(format!("a table batch: {e}")))
}

/// Reads a record back; bytes that are not one are corrupt, never a panic.
pub(super) fn decode(payload: &[u8]) -> Result<Vec<Change>, TableError> {
    let corrupt = |reason: String| TableError::Corrupt(format!("table batch record: {reason}"));
    match payload.split_first() {
        Some((&FORMAT, body)) => match postcard::take_from_bytes::<Vec<Change>>(body) {
            Ok((changes, [])) => Ok(changes),
            Ok((_, rest)) => Err(corrupt(format!("{} trailing bytes", rest.len()))),
            Err(e) => Err(corrupt(e.to_string())),
        },
        Some((format, _)) => Err(corrupt(format!("unknown format {format}"))),
        None => Err(corrupt("empty".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(table: &str, key: &[u8], value: Option<&[u8]>) -> Change {
        Change {
            table: table.into(),
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn records_round_trip_and_garbage_is_corrupt() {
        let changes = vec![change("a", b"k", Some(b"v")), change("b", b"", None)];
        let bytes = encode(&changes).expect("encode");
        assert_eq!(decode(&bytes).expect("decode"), changes);
        for bad in [
            &[][..],
            &[9, 0][..],
            &bytes[..bytes.len() - 1],
            &[FORMAT, 200],
        ] {
            assert!(
                matches!(decode(bad), Err(TableError::Corrupt(_))),
                "{bad:?}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(decode(&trailing), Err(TableError::Corrupt(_))));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
