//! Message bodies stored once per shard: content-addressed by SHA-256, so a
//! message delivered to fifty local recipients on one shard is written
//! once. The index (hash → log location) is rebuilt from the log at start;
//! the hash is stored at the head of each blob record so that recovery does
//! not hash every body again.
//!
//! Bodies are reference-counted: the count of a body is the number of
//! messages (any account, any mailbox, and the shard's outbound queue)
//! that refer to its hash, kept in memory and rebuilt from the mail state
//! and the queue at start, never logged. A body
//! is also pinned while an operation that will refer to it is in flight.
//! A body neither referred to nor pinned is dead: compaction forgets it and
//! moves the live ones out of the segments it reclaims
//! (`mailbox::compaction`). The index is the authority on where a body
//! lies: reads and newly applied messages resolve a body by its hash, so a
//! body may move while a reference to its old place is held.
//!
//! A new body is staged: its record is queued in the log and the message
//! operations that refer to it can be queued right behind it, in the same
//! group commit (the log makes a record durable only with every earlier
//! one). Such an operation carries a pending [`BlobRef`] (hash only); it is
//! resolved to the body's location when applied, and by hash at replay.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::ops::BlobRef;
use super::MailError;
use crate::kinds;
use crate::log::{Appending, Location, SegmentLog};

/// The blob index of one shard, with the reference counts and pins.
#[derive(Default)]
pub struct Blobs {
    index: RefCell<HashMap<[u8; 32], BlobRef>>,
    /// Messages referring to each body (absent: none).
    counts: RefCell<HashMap<[u8; 32], u64>>,
    /// Operations in flight that will refer to each body (absent: none).
    pins: Rc<RefCell<HashMap<[u8; 32], u64>>>,
}

/// Keeps a body live (see [`Blobs::is_live`]) while it is held: taken when
/// a body is staged, held by each operation referring to it until that
/// operation is applied or has failed.
pub struct Pin {
    pins: Rc<RefCell<HashMap<[u8; 32], u64>>>,
    hash: [u8; 32],
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut pins = self.pins.borrow_mut();
        if let Some(n) = pins.get_mut(&self.hash) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.hash);
            }
        }
    }
}

fn to_ref(hash: [u8; 32], at: Location) -> BlobRef {
    BlobRef {
        hash,
        segment: at.segment,
        offset: at.offset,
        seq: at.seq,
        len: at.len,
    }
}

impl Blobs {
    /// Records a blob found by recovery.
    pub fn replay(&self, at: Location, payload: &[u8]) -> Result<(), MailError> {
        let hash: [u8; 32] = payload
            .get(..32)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| MailError::Corrupt("blob record shorter than its hash".into()))?;
        self.index.borrow_mut().insert(hash, to_ref(hash, at));
        Ok(())
    }

    /// The stored body with `hash`, if any.
    pub fn find(&self, hash: &[u8; 32]) -> Option<BlobRef> {
        self.index.borrow().get(hash).copied()
    }

    /// Resolves a reference to the body's current location in the index (a
    /// body moved by compaction is found at its new place); a reference to
    /// a body the index does not hold is returned as it is, unless it is
    /// pending (see [`BlobRef::pending`]).
    pub fn resolve(&self, blob: &BlobRef) -> Result<BlobRef, MailError> {
        match self.find(&blob.hash) {
            Some(found) => Ok(found),
            None if !blob.is_pending() => Ok(*blob),
            None => Err(MailError::Corrupt(
                "a message refers to a missing body".into(),
            )),
        }
    }

    /// Adds `delta` to the number of messages referring to `hash`.
    pub fn count(&self, hash: &[u8; 32], delta: i64) {
        let mut counts = self.counts.borrow_mut();
        let n = counts
            .get(hash)
            .copied()
            .unwrap_or(0)
            .saturating_add_signed(delta);
        if n == 0 {
            counts.remove(hash);
        } else {
            counts.insert(*hash, n);
        }
    }

    /// The number of messages referring to `hash`.
    pub fn references(&self, hash: &[u8; 32]) -> u64 {
        self.counts.borrow().get(hash).copied().unwrap_or(0)
    }

    /// Whether some message refers to the body, or some operation in
    /// flight will.
    pub fn is_live(&self, hash: &[u8; 32]) -> bool {
        self.counts.borrow().contains_key(hash) || self.pins.borrow().contains_key(hash)
    }

    /// Pins a body (see [`Pin`]).
    pub fn pin(&self, hash: [u8; 32]) -> Rc<Pin> {
        *self.pins.borrow_mut().entry(hash).or_insert(0) += 1;
        Rc::new(Pin {
            pins: self.pins.clone(),
            hash,
        })
    }

    /// The bodies stored in `segment`, in their order there.
    pub fn in_segment(&self, segment: u64) -> Vec<BlobRef> {
        let mut found: Vec<BlobRef> = self
            .index
            .borrow()
            .values()
            .filter(|b| b.segment == segment)
            .copied()
            .collect();
        found.sort_unstable_by_key(|b| b.offset);
        found
    }

    /// Frame bytes of the live bodies, per segment.
    pub fn live_bytes(&self) -> HashMap<u64, u64> {
        let mut out = HashMap::new();
        for b in self.index.borrow().values() {
            if self.is_live(&b.hash) {
                *out.entry(b.segment).or_insert(0) +=
                    crate::record::encoded_len(b.len as usize) as u64;
            }
        }
        out
    }

    /// Forgets a dead body lying at `at` (compaction). Returns false (and
    /// changes nothing) if the index holds it elsewhere, or it is live.
    pub(super) fn forget(&self, at: &BlobRef) -> bool {
        let mut index = self.index.borrow_mut();
        if index.get(&at.hash) != Some(at) || self.is_live(&at.hash) {
            return false;
        }
        index.remove(&at.hash);
        true
    }

    /// Records that the body at `from` was copied to `to` (compaction):
    /// the index points at the copy if it still held the original.
    pub(super) fn moved(&self, from: &BlobRef, to: Location) -> bool {
        let mut index = self.index.borrow_mut();
        if index.get(&from.hash) != Some(from) {
            return false;
        }
        index.insert(from.hash, to_ref(from.hash, to));
        true
    }

    /// Stores `body` unless the same bytes are stored already: queues its
    /// record and returns at once, with the body pinned; see [`Staged`].
    pub fn stage(&self, log: &SegmentLog, body: &[u8]) -> (Staged, Rc<Pin>) {
        let hash: [u8; 32] = Sha256::digest(body).into();
        let pin = self.pin(hash);
        (self.stage_hashed(log, hash, body), pin)
    }

    fn stage_hashed(&self, log: &SegmentLog, hash: [u8; 32], body: &[u8]) -> Staged {
        if let Some(found) = self.find(&hash) {
            return Staged::Stored(found);
        }
        let mut payload = Vec::with_capacity(32 + body.len());
        payload.extend_from_slice(&hash);
        payload.extend_from_slice(body);
        let failures = log.stats().failed_commits;
        let appending = log.start_append(kinds::BLOB, &payload);
        Staged::Pending(Rc::new(PendingBlob {
            hash,
            failures,
            appending: RefCell::new(Some(appending)),
            outcome: RefCell::new(None),
            taking: Cell::new(false),
        }))
    }

    fn record(&self, hash: [u8; 32], at: Location) -> BlobRef {
        let blob = to_ref(hash, at);
        self.index.borrow_mut().insert(hash, blob);
        blob
    }

    /// Reads a body back (from where the index says it lies now) and checks
    /// it against its hash. A body moved by compaction while it was read is
    /// read again from its new place.
    pub async fn get(&self, log: &SegmentLog, blob: &BlobRef) -> Result<Vec<u8>, MailError> {
        let first = self.resolve(blob)?;
        match self.get_at(log, &first).await {
            Err(e) => match self.resolve(blob) {
                Ok(now) if now != first => self.get_at(log, &now).await,
                _ => Err(e),
            },
            done => done,
        }
    }

    async fn get_at(&self, log: &SegmentLog, blob: &BlobRef) -> Result<Vec<u8>, MailError> {
        let at = Location {
            seq: blob.seq,
            segment: blob.segment,
            offset: blob.offset,
            len: blob.len,
        };
        let mut payload = log.read(at).await?;
        if payload.get(..32) != Some(&blob.hash[..]) {
            return Err(MailError::Corrupt("blob hash does not match".into()));
        }
        let body = payload.split_off(32);
        let hash: [u8; 32] = Sha256::digest(&body).into();
        if hash != blob.hash {
            return Err(MailError::Corrupt(
                "blob content does not match its hash".into(),
            ));
        }
        Ok(body)
    }

    /// Every stored body's reference (for a checkpoint).
    pub(super) fn refs(&self) -> Vec<BlobRef> {
        self.index.borrow().values().copied().collect()
    }

    /// The index of these references (loaded from a checkpoint).
    pub(super) fn from_refs(refs: Vec<BlobRef>) -> Self {
        Self {
            index: RefCell::new(refs.into_iter().map(|b| (b.hash, b)).collect()),
            ..Self::default()
        }
    }

    /// How many distinct bodies are stored.
    pub fn len(&self) -> usize {
        self.index.borrow().len()
    }
}

/// A body being stored.
#[derive(Clone)]
pub enum Staged {
    /// Stored already (the same bytes were, before).
    Stored(BlobRef),
    /// Its record is queued; operations referring to it may be queued after
    /// it (see [`PendingBlob::reference`]).
    Pending(Rc<PendingBlob>),
}

/// A body record in flight, shared by the operations that refer to it.
pub struct PendingBlob {
    hash: [u8; 32],
    /// The log's failed commits when the record was queued.
    failures: u64,
    appending: RefCell<Option<Appending>>,
    outcome: RefCell<Option<Result<BlobRef, MailError>>>,
    /// Someone waits in [`PendingBlob::finish`].
    taking: Cell<bool>,
}

impl PendingBlob {
    /// Its outcome if the log has answered, without waiting: records the
    /// body in the index once durable.
    pub fn poll(&self, blobs: &Blobs) -> Option<Result<BlobRef, MailError>> {
        if let Some(done) = self.outcome.borrow().as_ref() {
            return Some(done.clone());
        }
        let answer = self.appending.borrow_mut().as_mut()?.try_take()?;
        let done = answer
            .map(|at| blobs.record(self.hash, at))
            .map_err(MailError::from);
        *self.outcome.borrow_mut() = Some(done.clone());
        Some(done)
    }

    /// What an operation appended now should carry: the body's location if
    /// it is durable, a pending reference while it is in flight. Fails if
    /// the body's record failed, or may have (a commit failed since it was
    /// queued and its answer is not in: never expected, as a failed commit
    /// answers everything queued).
    pub fn reference(&self, blobs: &Blobs, log: &SegmentLog) -> Result<BlobRef, MailError> {
        match self.poll(blobs) {
            Some(done) => done,
            None if log.stats().failed_commits == self.failures && !self.taking.get() => {
                Ok(BlobRef::pending(self.hash))
            }
            None => Err(MailError::Corrupt(
                "the body's record is in an unknown state".into(),
            )),
        }
    }

    /// Waits for the outcome (once every operation referring to it is
    /// queued).
    pub async fn finish(&self, blobs: &Blobs) -> Result<BlobRef, MailError> {
        if let Some(done) = self.poll(blobs) {
            return done;
        }
        let Some(appending) = self.appending.borrow_mut().take() else {
            return Err(MailError::Corrupt("a body's record was lost".into()));
        };
        self.taking.set(true);
        let done = appending
            .wait()
            .await
            .map(|at| blobs.record(self.hash, at))
            .map_err(MailError::from);
        *self.outcome.borrow_mut() = Some(done.clone());
        done
    }
}
