//! The placement table: which shard owns each account and each media room.
//!
//! Explicit entries (assigned or moved) win; a key never placed falls to a
//! stable default, FNV-1a of the key modulo the *base* shard count (the
//! count the node first ran with), the same on every run, machine and Rust
//! version: growing the shard count moves no default placement, and keys
//! placed after a growth get an explicit entry ([`PlacementTable::home_of_new`]).
//! Each shard keeps its own replica,
//! no state is shared: a change is a [`PlacementUpdate`] that the changing
//! shard broadcasts (over a [`crate::mesh::Mesh`]) and every replica
//! [`apply`](PlacementTable::apply)s. The last writer wins by
//! `(version, origin)`, so replicas agree whatever order updates come in.

use std::collections::BTreeMap;

use crate::ShardId;

/// What is placed: an account or a media room, by id. Ids are compared as
/// given; normalise them (case, domain) before placing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlacementKey {
    Account(String),
    Room(String),
}

impl PlacementKey {
    /// The key of account `id`.
    pub fn account(id: impl Into<String>) -> Self {
        Self::Account(id.into())
    }

    /// The key of media room `id`.
    pub fn room(id: impl Into<String>) -> Self {
        Self::Room(id.into())
    }

    /// The stable hash behind the default placement: 64-bit FNV-1a over
    /// `account:` or `room:` followed by the id's UTF-8 bytes.
    pub fn stable_hash(&self) -> u64 {
        let (kind, id): (&[u8], &str) = match self {
            Self::Account(id) => (b"account:", id),
            Self::Room(id) => (b"room:", id),
        };
        fnv1a64(fnv1a64(FNV_OFFSET, kind), id.as_bytes())
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Continues an FNV-1a hash from `state` over `bytes`.
fn fnv1a64(state: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(state, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// When and where a placement was written: a Lamport version and the shard
/// that wrote it. Compared as `(version, origin)`; the greater wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub version: u64,
    pub origin: ShardId,
}

/// One placement, as broadcast to the replicas and as persisted: replaying
/// the [`entries`](PlacementTable::entries) of a table with `apply` rebuilds
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementUpdate {
    pub key: PlacementKey,
    pub shard: ShardId,
    pub stamp: Stamp,
}

/// The outcome of [`PlacementTable::move_to`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Where the key was (explicitly or by default) before the move.
    pub previous: ShardId,
    /// The update to broadcast to the other replicas.
    pub update: PlacementUpdate,
}

/// Why a placement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("shard {shard} does not exist (there are {shards})")]
    NoSuchShard { shard: ShardId, shards: usize },
    #[error("{key:?} is already placed on shard {shard}; move it instead")]
    AlreadyPlaced { key: PlacementKey, shard: ShardId },
    #[error(
        "default placement is over {base} shards but only {shards} run; move the accounts off the last shards first"
    )]
    BaseAboveShards { base: usize, shards: usize },
}

/// Where a new key goes (see [`PlacementTable::home_of_new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// It already has an entry, or its default is right: nothing to write.
    Placed(ShardId),
    /// It needs an explicit entry on this shard.
    Assign(ShardId),
}

impl Home {
    /// The shard the key goes to.
    pub fn shard(self) -> ShardId {
        match self {
            Self::Placed(shard) | Self::Assign(shard) => shard,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    shard: ShardId,
    stamp: Stamp,
}

/// One shard's replica of the placement table.
#[derive(Debug, Clone)]
pub struct PlacementTable {
    shards: usize,
    base: usize,
    replica: ShardId,
    version: u64,
    entries: BTreeMap<PlacementKey, Entry>,
}

impl PlacementTable {
    /// An empty table over `shards` shards (at least one), kept by shard
    /// `replica` (which stamps its own changes), whose default placement is
    /// over all of them.
    pub fn new(shards: usize, replica: ShardId) -> Self {
        let shards = shards.max(1);
        Self {
            shards,
            base: shards,
            replica,
            version: 0,
            entries: BTreeMap::new(),
        }
    }

    /// An empty table over `shards` shards whose default placement is over
    /// the first `base` of them (at least one): the count the node first
    /// ran with. A base above `shards` is refused: keys would default to
    /// shards that do not run.
    pub fn with_base(shards: usize, base: usize, replica: ShardId) -> Result<Self, PlacementError> {
        let mut table = Self::new(shards, replica);
        let base = base.max(1);
        if base > table.shards {
            return Err(PlacementError::BaseAboveShards {
                base,
                shards: table.shards,
            });
        }
        table.base = base;
        Ok(table)
    }

    /// The shard count placements are made over.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The shard count default placement is over.
    pub fn base(&self) -> usize {
        self.base
    }

    /// A Lamport clock: every change made here increments it, and applying
    /// an update raises it to at least that update's version. With a single
    /// writer, every replica ends at the writer's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The shard that owns `key`: its explicit entry, or the stable default.
    pub fn shard_of(&self, key: &PlacementKey) -> ShardId {
        match self.entries.get(key) {
            Some(entry) => entry.shard,
            None => (key.stable_hash() % self.base as u64) as ShardId,
        }
    }

    /// Where a key that is being created (a new account) goes: where its
    /// entry says if it has one; its default while the shard count is the
    /// base; after a growth, the stable hash over the current count, as an
    /// explicit entry (so that the new shards take their share of new keys
    /// without moving any old one).
    pub fn home_of_new(&self, key: &PlacementKey) -> Home {
        match self.entries.get(key) {
            Some(entry) => Home::Placed(entry.shard),
            None if self.base == self.shards => Home::Placed(self.shard_of(key)),
            None => Home::Assign((key.stable_hash() % self.shards as u64) as ShardId),
        }
    }

    /// The update that would place `key` on `shard`, stamped after
    /// everything this replica has seen, without applying it: for a writer
    /// that persists an update before [`apply`](Self::apply)ing it.
    pub fn prepare(
        &self,
        key: PlacementKey,
        shard: ShardId,
    ) -> Result<PlacementUpdate, PlacementError> {
        self.check_shard(shard)?;
        Ok(PlacementUpdate {
            key,
            shard,
            stamp: Stamp {
                version: self.version + 1,
                origin: self.replica,
            },
        })
    }

    /// Places a key that has no explicit entry yet (e.g. a new account) on
    /// `shard`; returns the update to broadcast.
    pub fn assign(
        &mut self,
        key: PlacementKey,
        shard: ShardId,
    ) -> Result<PlacementUpdate, PlacementError> {
        self.check_shard(shard)?;
        if let Some(entry) = self.entries.get(&key) {
            return Err(PlacementError::AlreadyPlaced {
                key,
                shard: entry.shard,
            });
        }
        Ok(self.write(key, shard))
    }

    /// Moves `key` to `shard`, wherever it was; returns where it was and the
    /// update to broadcast.
    pub fn move_to(&mut self, key: PlacementKey, shard: ShardId) -> Result<Moved, PlacementError> {
        self.check_shard(shard)?;
        let previous = self.shard_of(&key);
        Ok(Moved {
            previous,
            update: self.write(key, shard),
        })
    }

    /// Applies an update from any replica (this one included); returns
    /// whether it changed this replica (false for one older than the entry
    /// already here, or already applied).
    pub fn apply(&mut self, update: &PlacementUpdate) -> Result<bool, PlacementError> {
        self.check_shard(update.shard)?;
        self.version = self.version.max(update.stamp.version);
        let newer = self
            .entries
            .get(&update.key)
            .is_none_or(|entry| update.stamp > entry.stamp);
        if newer {
            self.entries.insert(
                update.key.clone(),
                Entry {
                    shard: update.shard,
                    stamp: update.stamp,
                },
            );
        }
        Ok(newer)
    }

    /// Every explicit placement, in key order, as the update that recreates
    /// it: what storage persists and replays with [`apply`](Self::apply).
    pub fn entries(&self) -> impl Iterator<Item = PlacementUpdate> + '_ {
        self.entries.iter().map(|(key, entry)| PlacementUpdate {
            key: key.clone(),
            shard: entry.shard,
            stamp: entry.stamp,
        })
    }

    fn check_shard(&self, shard: ShardId) -> Result<(), PlacementError> {
        if shard < self.shards {
            Ok(())
        } else {
            Err(PlacementError::NoSuchShard {
                shard,
                shards: self.shards,
            })
        }
    }

    /// Records a change made on this replica under a fresh stamp.
    fn write(&mut self, key: PlacementKey, shard: ShardId) -> PlacementUpdate {
        let update = PlacementUpdate {
            key,
            shard,
            stamp: Stamp {
                version: self.version + 1,
                origin: self.replica,
            },
        };
        self.version = update.stamp.version;
        self.entries.insert(
            update.key.clone(),
            Entry {
                shard,
                stamp: update.stamp,
            },
        );
        update
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_hash_is_fnv1a_and_stable() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
        // The key hash is the hash of "account:<id>", continued or not.
        let key = PlacementKey::account("alice@example.com");
        assert_eq!(
            key.stable_hash(),
            fnv1a64(FNV_OFFSET, b"account:alice@example.com")
        );
        // An account and a room with the same id are different keys.
        assert_ne!(
            key.stable_hash(),
            PlacementKey::room("alice@example.com").stable_hash()
        );
    }

    #[test]
    fn unplaced_keys_fall_to_the_default_spread_over_all_shards() {
        let t = PlacementTable::new(4, 0);
        let mut seen = [0usize; 4];
        for i in 0..400 {
            let key = PlacementKey::account(format!("user{i}@example.com"));
            let shard = t.shard_of(&key);
            assert_eq!(shard, (key.stable_hash() % 4) as usize);
            seen[shard] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
        assert_eq!(t.version(), 0);
        assert_eq!(t.entries().count(), 0);
    }

    #[test]
    fn assign_then_move_counts_versions_and_reports_the_previous_shard() {
        let mut t = PlacementTable::new(4, 2);
        let key = PlacementKey::room("standup");
        let default = t.shard_of(&key);
        let target = (default + 1) % 4;
        let up = t.assign(key.clone(), target).expect("assign");
        assert_eq!(
            up.stamp,
            Stamp {
                version: 1,
                origin: 2
            }
        );
        assert_eq!(t.shard_of(&key), target);
        assert_eq!(
            t.assign(key.clone(), default),
            Err(PlacementError::AlreadyPlaced {
                key: key.clone(),
                shard: target
            })
        );
        let moved = t.move_to(key.clone(), default).expect("move");
        assert_eq!(moved.previous, target);
        assert_eq!(moved.update.stamp.version, 2);
        assert_eq!(t.shard_of(&key), default);
        assert_eq!(t.version(), 2);
        assert_eq!(
            t.move_to(key, 4),
            Err(PlacementError::NoSuchShard {
                shard: 4,
                shards: 4
            })
        );
        assert_eq!(t.version(), 2, "a refused change is no change");
    }

    #[test]
    fn replicas_converge_whatever_the_order_of_updates() {
        let key = PlacementKey::account("bob");
        let mut a = PlacementTable::new(3, 0);
        let mut b = PlacementTable::new(3, 1);
        // Both move the same key concurrently, then exchange updates in
        // opposite orders.
        let from_a = a.move_to(key.clone(), 1).expect("move").update;
        let from_b = b.move_to(key.clone(), 2).expect("move").update;
        let mut c = PlacementTable::new(3, 2);
        let mut d = PlacementTable::new(3, 2);
        assert!(c.apply(&from_a).expect("apply"));
        assert!(c.apply(&from_b).expect("apply"));
        assert!(d.apply(&from_b).expect("apply"));
        assert!(!d.apply(&from_a).expect("apply"), "older update ignored");
        assert!(a.apply(&from_b).expect("apply"));
        assert!(!b.apply(&from_a).expect("apply"));
        for t in [&a, &b, &c, &d] {
            assert_eq!(t.shard_of(&key), 2, "(1, origin 1) beats (1, origin 0)");
        }
        // Applying one's own update again changes nothing.
        assert!(!b.apply(&from_b).expect("apply"));
        // The next change made on c is stamped after everything it has seen.
        let next = c.move_to(key.clone(), 0).expect("move").update;
        assert_eq!(
            next.stamp,
            Stamp {
                version: 2,
                origin: 2
            }
        );
    }

    #[test]
    fn entries_replayed_rebuild_the_table() {
        let mut t = PlacementTable::new(8, 0);
        t.assign(PlacementKey::account("x"), 3).expect("assign");
        t.assign(PlacementKey::room("y"), 5).expect("assign");
        t.move_to(PlacementKey::account("x"), 6).expect("move");
        let mut rebuilt = PlacementTable::new(8, 0);
        for up in t.entries() {
            assert!(rebuilt.apply(&up).expect("apply"));
        }
        assert_eq!(rebuilt.shard_of(&PlacementKey::account("x")), 6);
        assert_eq!(rebuilt.shard_of(&PlacementKey::room("y")), 5);
        assert_eq!(rebuilt.version(), t.version());
        assert_eq!(
            rebuilt.entries().collect::<Vec<_>>(),
            t.entries().collect::<Vec<_>>()
        );
    }

    #[test]
    fn growing_keeps_defaults_on_the_base_and_places_new_keys_over_all() {
        let grown = PlacementTable::with_base(4, 2, 0).expect("base");
        let same = PlacementTable::new(2, 0);
        assert_eq!((grown.shards(), grown.base()), (4, 2));
        let mut assigned = [0usize; 4];
        for i in 0..200 {
            let key = PlacementKey::account(format!("user{i}@example.com"));
            // Every key placed before the growth stays where it was.
            assert_eq!(grown.shard_of(&key), same.shard_of(&key));
            assert_eq!(same.home_of_new(&key), Home::Placed(same.shard_of(&key)));
            // A new key gets an entry over the current count.
            let home = grown.home_of_new(&key);
            assert_eq!(home, Home::Assign((key.stable_hash() % 4) as usize));
            assigned[home.shard()] += 1;
        }
        assert!(assigned.iter().all(|&n| n > 0), "{assigned:?}");
        // A key with an entry stays on it.
        let mut t = grown;
        let key = PlacementKey::account("placed");
        let up = t.prepare(key.clone(), 3).expect("prepare");
        assert_eq!(t.version(), 0, "prepare changes nothing");
        assert_eq!(t.entries().count(), 0);
        assert!(t.apply(&up).expect("apply"));
        assert_eq!(t.home_of_new(&key), Home::Placed(3));
        assert_eq!(t.version(), 1);
        assert_eq!(
            t.prepare(key.clone(), 4),
            Err(PlacementError::NoSuchShard {
                shard: 4,
                shards: 4
            })
        );
    }

    #[test]
    fn a_base_above_the_shard_count_is_refused() {
        assert_eq!(
            PlacementTable::with_base(2, 4, 0).map(|t| t.base()),
            Err(PlacementError::BaseAboveShards { base: 4, shards: 2 })
        );
        assert_eq!(PlacementTable::with_base(2, 0, 0).map(|t| t.base()), Ok(1));
    }

    #[test]
    fn apply_refuses_an_unknown_shard() {
        let mut t = PlacementTable::new(2, 0);
        let up = PlacementUpdate {
            key: PlacementKey::account("z"),
            shard: 9,
            stamp: Stamp {
                version: 1,
                origin: 1,
            },
        };
        assert!(t.apply(&up).is_err());
        assert_eq!(t.version(), 0);
        assert_eq!(t.shard_of(&up.key), (up.key.stable_hash() % 2) as usize);
    }
}
