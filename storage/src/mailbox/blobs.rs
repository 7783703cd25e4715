//! Message bodies stored once per shard: content-addressed by SHA-256, so a
//! message delivered to fifty local recipients on one shard is written
//! once. The index (hash → log location) is rebuilt from the log at start;
//! the hash is stored at the head of each blob record so that recovery does
//! not hash every body again.

use std::cell::RefCell;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::ops::BlobRef;
use super::MailError;
use crate::kinds;
use crate::log::{Location, SegmentLog};

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

    /// Stores `body` unless the same bytes are stored already; returns where
    /// it lies once durable.
    pub async fn put(&self, log: &SegmentLog, body: &[u8]) -> Result<BlobRef, MailError> {
        let hash: [u8; 32] = Sha256::digest(body).into();
        if let Some(found) = self.index.borrow().get(&hash) {
            return Ok(*found);
        }
        let mut payload = Vec::with_capacity(32 + body.len());
        payload.extend_from_slice(&hash);
        payload.extend_from_slice(body);
        let at = log.append(kinds::BLOB, &payload).await?;
        let blob = to_ref(hash, at);
        self.index.borrow_mut().insert(hash, blob);
        Ok(blob)
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
