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
//!
//! With a [`Digester`], a new body's digest is made after it is staged, on
//! the shard's blocking pool, and its record appended once made (see
//! `digests`): it is indexed once durable if its body is stored by then.
//! At most [`MAX_DIGESTS_IN_FLIGHT`] are made at a time; a body staged
//! beyond that gets none (it is parsed when read, and counted in
//! [`Reads::skipped_digests`]). The index of digests (hash → log location
//! and version) is kept here beside the bodies', and moved and forgotten
//! with them; a digest whose body is not stored is dropped.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use cairn_shards::BlockingPool;
use event_listener::Event;
use sha2::{Digest, Sha256};

use super::digests::{self, DigestRef, Digester};
use super::ops::BlobRef;
use super::MailError;
use crate::kinds;
use crate::log::{Appending, Location, LogError, SegmentLog};

/// The blob index of one shard, with the reference counts and pins.
#[derive(Default)]
pub struct Blobs {
    index: RefCell<HashMap<[u8; 32], BlobRef>>,
    /// Messages referring to each body (absent: none).
    counts: RefCell<HashMap<[u8; 32], u64>>,
    /// Operations in flight that will refer to each body (absent: none).
    pins: Rc<RefCell<HashMap<[u8; 32], u64>>>,
    /// Where each body's digest lies (absent: none).
    digests: RefCell<HashMap<[u8; 32], DigestRef>>,
    /// What digests new bodies (none: no digests are made).
    digester: Cell<Option<Digester>>,
    /// Where digests are made (set with the digester).
    pool: RefCell<Option<BlockingPool>>,
    /// The bodies whose digest is being made or appended.
    digesting: RefCell<HashSet<[u8; 32]>>,
    /// Notified when `digesting` empties.
    digests_settled: Event,
    reads: Cell<Reads>,
}

/// Digests made at a time per shard (see [`Blobs::start_digest`]).
pub const MAX_DIGESTS_IN_FLIGHT: usize = 64;

/// Reads of bodies and of digests since the store opened, and digests
/// their reader could not decode (it parsed the body instead). `bodies`
/// counts bodies read whole into memory, `streams` bodies (or ranges of
/// them) opened for reading in chunks (`stream`); `skipped_digests` new
/// bodies left without a digest because too many were being made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    pub bodies: u64,
    pub digests: u64,
    pub rejected_digests: u64,
    pub streams: u64,
    pub skipped_digests: u64,
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

/// A body's SHA-256: the key it is stored under.
pub fn hash_of(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
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

    /// Records a digest found by recovery (the newest record of a body's
    /// digest wins, as for bodies). It may come before or after its body's
    /// record; one whose body is not found is dropped at the end
    /// ([`Blobs::drop_orphan_digests`]).
    pub fn replay_digest(&self, at: Location, payload: &[u8]) -> Result<(), MailError> {
        let (hash, version, _) = digests::decode(payload)
            .ok_or_else(|| MailError::Corrupt("digest record shorter than its header".into()))?;
        self.record_digest(DigestRef::new(hash, version, at));
        Ok(())
    }

    fn record_digest(&self, digest: DigestRef) {
        self.digests.borrow_mut().insert(digest.hash, digest);
    }

    /// Records a durable digest if its body is stored (a body forgotten
    /// meanwhile, or whose record failed, leaves it out).
    fn record_digest_if_stored(&self, digest: DigestRef) {
        if self.index.borrow().contains_key(&digest.hash) {
            self.record_digest(digest);
        }
    }

    /// Forgets the digests whose body is not stored (end of recovery).
    pub(super) fn drop_orphan_digests(&self) {
        let index = self.index.borrow();
        self.digests
            .borrow_mut()
            .retain(|hash, _| index.contains_key(hash));
    }

    /// Digests the bodies stored from now on with `digester`, on `pool`;
    /// only digests of its version are read back.
    pub fn digest_with(&self, digester: Digester, pool: BlockingPool) {
        self.digester.set(Some(digester));
        *self.pool.borrow_mut() = Some(pool);
    }

    /// Takes a place for making the digest of the new body `hash`: the
    /// digester and the pool to make it on, or `None` when there is no
    /// digester, the digest is being made already, or
    /// [`MAX_DIGESTS_IN_FLIGHT`] are (counted as skipped). The caller
    /// gives the place back with [`Blobs::end_digest`].
    pub(super) fn start_digest(&self, hash: [u8; 32]) -> Option<(Digester, BlockingPool)> {
        let digester = self.digester.get()?;
        let pool = self.pool.borrow().clone()?;
        let mut digesting = self.digesting.borrow_mut();
        if digesting.contains(&hash) {
            return None;
        }
        if digesting.len() >= MAX_DIGESTS_IN_FLIGHT {
            drop(digesting);
            self.count_read(|r| r.skipped_digests += 1);
            return None;
        }
        digesting.insert(hash);
        Some((digester, pool))
    }

    /// Gives back the place taken by [`Blobs::start_digest`].
    pub(super) fn end_digest(&self, hash: &[u8; 32]) {
        let mut digesting = self.digesting.borrow_mut();
        digesting.remove(hash);
        if digesting.is_empty() {
            drop(digesting);
            self.digests_settled.notify(usize::MAX);
        }
    }

    /// Digests being made or appended.
    pub fn digests_in_flight(&self) -> usize {
        self.digesting.borrow().len()
    }

    /// Resolves once no digest is being made or appended.
    pub async fn digests_settled(&self) {
        loop {
            if self.digesting.borrow().is_empty() {
                return;
            }
            let listener = self.digests_settled.listen();
            if self.digesting.borrow().is_empty() {
                return;
            }
            listener.await;
        }
    }

    /// Counts reads (see [`Reads`]).
    pub fn count_read(&self, count: impl FnOnce(&mut Reads)) {
        let mut reads = self.reads.get();
        count(&mut reads);
        self.reads.set(reads);
    }

    /// The reads so far.
    pub fn reads(&self) -> Reads {
        self.reads.get()
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

    /// The digests stored in `segment`, in their order there.
    pub fn digests_in_segment(&self, segment: u64) -> Vec<DigestRef> {
        let mut found: Vec<DigestRef> = self
            .digests
            .borrow()
            .values()
            .filter(|d| d.segment == segment)
            .copied()
            .collect();
        found.sort_unstable_by_key(|d| d.offset);
        found
    }

    /// Frame bytes of the live bodies and their digests, per segment.
    pub fn live_bytes(&self) -> HashMap<u64, u64> {
        let mut out = HashMap::new();
        let places = self
            .index
            .borrow()
            .values()
            .map(|b| (b.hash, b.segment, b.len))
            .chain(
                self.digests
                    .borrow()
                    .values()
                    .map(|d| (d.hash, d.segment, d.len)),
            )
            .collect::<Vec<_>>();
        for (hash, segment, len) in places {
            if self.is_live(&hash) {
                *out.entry(segment).or_insert(0) += crate::record::encoded_len(len as usize) as u64;
            }
        }
        out
    }

    /// Forgets a dead body lying at `at`, and its digest (compaction).
    /// Returns false (and changes nothing) if the index holds it elsewhere,
    /// or it is live.
    pub(super) fn forget(&self, at: &BlobRef) -> bool {
        let mut index = self.index.borrow_mut();
        if index.get(&at.hash) != Some(at) || self.is_live(&at.hash) {
            return false;
        }
        index.remove(&at.hash);
        self.digests.borrow_mut().remove(&at.hash);
        true
    }

    /// Forgets the digest at `at` if its body is dead or it was made by
    /// another version than the digester's (compaction). Returns false (and
    /// changes nothing) if the index holds it elsewhere, or it is kept.
    pub(super) fn forget_digest(&self, at: &DigestRef) -> bool {
        let stale = self.digester.get().is_some_and(|d| d.version != at.version);
        let mut digests = self.digests.borrow_mut();
        if digests.get(&at.hash) != Some(at) || (self.is_live(&at.hash) && !stale) {
            return false;
        }
        digests.remove(&at.hash);
        true
    }

    /// Whether the index still holds the digest at `at`.
    pub(super) fn holds_digest(&self, at: &DigestRef) -> bool {
        self.digests.borrow().get(&at.hash) == Some(at)
    }

    /// Records that the digest at `from` was copied to `to` (compaction).
    pub(super) fn moved_digest(&self, from: &DigestRef, to: Location) -> bool {
        let mut digests = self.digests.borrow_mut();
        if digests.get(&from.hash) != Some(from) {
            return false;
        }
        digests.insert(from.hash, DigestRef::new(from.hash, from.version, to));
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

    /// Stores `body`, whose SHA-256 is `hash` ([`hash_of`]), unless the
    /// same bytes are stored already: queues its record and returns at
    /// once, with the body pinned; see [`Staged`].
    pub fn stage(&self, log: &SegmentLog, hash: [u8; 32], body: &[u8]) -> (Staged, Rc<Pin>) {
        let pin = self.pin(hash);
        (self.queue(log, hash, body), pin)
    }

    fn queue(&self, log: &SegmentLog, hash: [u8; 32], body: &[u8]) -> Staged {
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
            digest: RefCell::new(None),
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
        self.count_read(|r| r.bodies += 1);
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
        let mut payload = log.read(blob.location()).await?;
        if payload.get(..32) != Some(&blob.hash[..]) {
            return Err(MailError::Corrupt("blob hash does not match".into()));
        }
        let body = payload.split_off(32);
        if hash_of(&body) != blob.hash {
            return Err(MailError::Corrupt(
                "blob content does not match its hash".into(),
            ));
        }
        Ok(body)
    }

    /// The digest of the body `hash` made by the digester's version, read
    /// from disk (its record only, never the body); `None` when there is
    /// no such digest. A digest moved by compaction while it was read is
    /// read again from its new place.
    pub async fn digest(
        &self,
        log: &SegmentLog,
        hash: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, MailError> {
        let Some(digester) = self.digester.get() else {
            return Ok(None);
        };
        let current = || {
            self.digests
                .borrow()
                .get(hash)
                .filter(|d| d.version == digester.version)
                .copied()
        };
        let Some(first) = current() else {
            return Ok(None);
        };
        self.count_read(|r| r.digests += 1);
        match self.digest_at(log, &first).await {
            Err(e) => match current() {
                Some(now) if now != first => self.digest_at(log, &now).await.map(Some),
                _ => Err(e),
            },
            done => done.map(Some),
        }
    }

    async fn digest_at(&self, log: &SegmentLog, at: &DigestRef) -> Result<Vec<u8>, MailError> {
        let payload = log.read(at.location()).await?;
        match digests::decode(&payload) {
            Some((hash, version, digest)) if hash == at.hash && version == at.version => {
                Ok(digest.to_vec())
            }
            _ => Err(MailError::Corrupt(
                "digest record does not match its index entry".into(),
            )),
        }
    }

    /// Every stored body's reference, and its digest's (for a checkpoint).
    pub(super) fn refs(&self) -> (Vec<BlobRef>, Vec<DigestRef>) {
        let index = self.index.borrow();
        (
            index.values().copied().collect(),
            self.digests
                .borrow()
                .values()
                .filter(|d| index.contains_key(&d.hash))
                .copied()
                .collect(),
        )
    }

    /// The index of these references (loaded from a checkpoint).
    pub(super) fn from_refs(refs: Vec<BlobRef>, digests: Vec<DigestRef>) -> Self {
        Self {
            index: RefCell::new(refs.into_iter().map(|b| (b.hash, b)).collect()),
            digests: RefCell::new(digests.into_iter().map(|d| (d.hash, d)).collect()),
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
    /// The body's digest, durable before the body's outcome was taken: it
    /// is indexed with the body.
    digest: RefCell<Option<DigestRef>>,
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
        Some(self.answered(blobs, answer))
    }

    /// Takes the body's answer: records the body, and its digest, in the
    /// index once durable.
    fn answered(
        &self,
        blobs: &Blobs,
        answer: Result<Location, LogError>,
    ) -> Result<BlobRef, MailError> {
        let done = answer
            .map(|at| blobs.record(self.hash, at))
            .map_err(MailError::from);
        let digest = self.digest.borrow_mut().take();
        if let (Ok(_), Some(digest)) = (&done, digest) {
            blobs.record_digest_if_stored(digest);
        }
        *self.outcome.borrow_mut() = Some(done.clone());
        done
    }

    /// The body's SHA-256.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// Takes the body's digest, durable at `at` (made by `version`):
    /// indexed now if the body is stored, with the body if its outcome is
    /// not in yet, never if its record failed.
    pub(super) fn digest_durable(&self, blobs: &Blobs, version: u16, at: Location) {
        let digest = DigestRef::new(self.hash, version, at);
        match self.poll(blobs) {
            Some(Ok(_)) => blobs.record_digest_if_stored(digest),
            Some(Err(_)) => {}
            None => *self.digest.borrow_mut() = Some(digest),
        }
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
        let answer = appending.wait().await;
        self.answered(blobs, answer)
    }
}
