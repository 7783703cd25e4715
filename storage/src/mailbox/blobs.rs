//! Message bodies stored once per shard: content-addressed by SHA-256, so a
//! message delivered to fifty local recipients on one shard is written
//! once. The index (hash → log location) is rebuilt from the log at start;
//! the hash is stored at the head of each blob record so that recovery does
//! not hash every body again.
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

/// The blob index of one shard.
#[derive(Default)]
pub struct Blobs {
    index: RefCell<HashMap<[u8; 32], BlobRef>>,
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

    /// Resolves a pending reference (see [`BlobRef::pending`]) against the
    /// index; a reference with a location is returned as it is.
    pub fn resolve(&self, blob: &BlobRef) -> Result<BlobRef, MailError> {
        if !blob.is_pending() {
            return Ok(*blob);
        }
        self.find(&blob.hash)
            .ok_or_else(|| MailError::Corrupt("a message refers to a missing body".into()))
    }

    /// Stores `body` unless the same bytes are stored already: queues its
    /// record and returns at once; see [`Staged`].
    pub fn stage(&self, log: &SegmentLog, body: &[u8]) -> Staged {
        let hash: [u8; 32] = Sha256::digest(body).into();
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

    /// Reads a body back and checks it against its hash.
    pub async fn get(&self, log: &SegmentLog, blob: &BlobRef) -> Result<Vec<u8>, MailError> {
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
